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
    Cluster-based local outlier factor, size-aware: clusters are split into *large* and
    *small* (He et al., 2003: the largest clusters that hold ``ALPHA`` = 90% of the sample, or
    up to a size drop of ``BETA`` = 5x). Every point is scored by its distance to the nearest
    *large* centroid divided by that cluster's radius. For members of large clusters this is
    the normalized score; points of small clusters (fraud rings, bots, misconfigured devices)
    are scored against the populated bulk of the data and stand out. The robust default.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SCORERS", "DEFAULT_SCORER", "ALPHA", "BETA", "large_clusters", "score"]

SCORERS = ("cblof", "normalized", "distance")
DEFAULT_SCORER = "cblof"
ALPHA = 0.9
BETA = 5.0


def large_clusters(sizes: np.ndarray, *, alpha: float = ALPHA, beta: float = BETA) -> np.ndarray:
    """CBLOF's large clusters: by size, until ``alpha`` of the points or a ``beta``-fold size drop."""
    order = np.argsort(-sizes, kind="stable")
    total = sizes.sum()
    large = np.zeros(len(sizes), dtype=bool)
    covered = 0
    for i, row in enumerate(order):
        if sizes[row] == 0:
            break
        large[row] = True
        covered += sizes[row]
        nxt = sizes[order[i + 1]] if i + 1 < len(order) else 0
        if covered >= alpha * total or (nxt > 0 and sizes[row] >= beta * nxt):
            break
    if not large.any():
        large[:] = True
    return large


def score(method: str, dist_all: np.ndarray, rows: np.ndarray, radius: np.ndarray, large: np.ndarray) -> np.ndarray:
    """Anomaly score per point.

    Args:
        method: One of :data:`SCORERS`.
        dist_all: ``(n, k)`` distances of each point to every centroid.
        rows: Nearest populated centroid row of each point.
        radius: RMS member distance per centroid row.
        large: Large-cluster mask per centroid row (``cblof``).
    """
    n = len(rows)
    own = dist_all[np.arange(n), rows]
    if method == "distance":
        return own.astype(np.float64)
    if method == "normalized":
        return own / np.maximum(radius[rows], 1e-9)
    if method == "cblof":
        cols = np.flatnonzero(large)
        masked = dist_all[:, cols]
        nearest = masked.argmin(axis=1)
        return masked[np.arange(n), nearest] / np.maximum(radius[cols[nearest]], 1e-9)
    raise ValueError(f"unknown anomaly scorer {method!r}; known: {', '.join(SCORERS)}")
