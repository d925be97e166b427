"""Anomaly scores computed from the stored cluster model alone (O(1) per assigned point).

``distance``: the distance to the nearest populated centroid. Simple and comparable across
clusters when clusters have similar spread; the first scorer, and the default for now.
``normalized``: that distance divided by the cluster's radius (RMS member distance), so a
point is judged against its own cluster's spread (as BigQuery ML's k-means detection does).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SCORERS", "score"]

SCORERS = ("distance", "normalized")


def score(method: str, distances: np.ndarray, rows: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Anomaly score per point; higher is stranger."""
    if method == "distance":
        return distances.astype(np.float64)
    if method == "normalized":
        return distances / np.maximum(radius[rows], 1e-9)
    raise ValueError(f"unknown anomaly scorer {method!r}; known: {', '.join(SCORERS)}")
