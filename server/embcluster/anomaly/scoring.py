"""Anomaly scores computed from the stored cluster model alone, in O(k·d) per point.

Scores say how strange a point is (higher = stranger); the decision (is it flagged) is made
separately, by a threshold (``threshold.py``). Three scorers:

``distance``
    Distance to the nearest populated centroid. Fine when clusters have similar spread; blind
    to rare behaviour that forms its own tight cluster (its points sit close to *a* centroid).
``normalized``
    That distance divided by the cluster's radius (RMS member distance on the fit sample), as
    BigQuery ML's k-means anomaly detection does: each point is judged against its own
    cluster's spread. Prefer it when clusters differ in spread and rare groups are not a concern.
``cblof`` (default)
    Cluster-based, size-aware (after He et al.'s CBLOF): clusters holding less than
    ``RARE_SHARE`` = 1/5 of an average cluster's share of the fit sample are *rare*; every point
    is scored by its distance to the nearest centroid of a non-rare (*large*) cluster. For
    members of large clusters this is the plain distance; points of rare clusters (fraud rings,
    bots, misconfigured devices: tight, but few) are measured against the bulk of the data and
    stand out. The robust default: on the bench's five labelled outlier sets it beat IsolationForest
    on mean AUROC and matched its mean average precision (``bench/bench_anomaly.py``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SCORERS", "DEFAULT_SCORER", "RARE_SHARE", "large_clusters", "score"]

SCORERS = ("cblof", "normalized", "distance")
DEFAULT_SCORER = "cblof"
RARE_SHARE = 0.2


def large_clusters(sizes: np.ndarray, *, rare_share: float = RARE_SHARE) -> np.ndarray:
    """Clusters that are not rare: at least ``rare_share`` x the average cluster's size."""
    sizes = np.asarray(sizes, dtype=np.float64)
    if sizes.sum() <= 0:
        return np.ones(len(sizes), dtype=bool)
    large = sizes >= rare_share * sizes.sum() / len(sizes)
    return large if large.any() else np.ones(len(sizes), dtype=bool)


def score(method: str, dist_all: np.ndarray, rows: np.ndarray, radius: np.ndarray, large: np.ndarray) -> np.ndarray:
    """Anomaly score per point.

    Args:
        method: One of :data:`SCORERS`.
        dist_all: ``(n, k)`` distances of each point to every centroid.
        rows: Nearest populated centroid row of each point.
        radius: RMS member distance per centroid row (``normalized``).
        large: Non-rare cluster mask per centroid row (``cblof``).
    """
    n = len(rows)
    if method == "distance":
        return dist_all[np.arange(n), rows].astype(np.float64)
    if method == "normalized":
        return dist_all[np.arange(n), rows] / np.maximum(radius[rows], 1e-9)
    if method == "cblof":
        return dist_all[:, np.flatnonzero(large)].min(axis=1).astype(np.float64)
    raise ValueError(f"unknown anomaly scorer {method!r}; known: {', '.join(SCORERS)}")
