"""Anomaly scores computed from a stored model alone (higher = stranger).

Scores say how strange a point is; the decision (is it flagged) is made separately, by a
threshold (``threshold.py``). Four scorers:

``ensemble`` (default)
    The anomaly model's own k-means fits at several k (``ensemble.py``), each scored like
    ``cblof`` below, normalised on the fit sample (0 = its median, 1 = its 90th percentile) and
    averaged. It does not depend on the grouping's k, and holds when anomalies form mid-sized
    groups of their own: see ``bench/bench_anomaly.py`` for the measured trade-offs.
``cblof``
    Cluster-based, size-aware (He et al.'s CBLOF, unweighted): every point is scored by its
    distance to the nearest centroid of a *large* cluster of the grouping model. Members of large
    clusters get their plain distance; members of small ones (fraud rings, bots: tight but few)
    are measured against the bulk of the data. Which clusters are large is decided by
    :func:`large_clusters` (the classic alpha/beta split).
``normalized``
    Distance to the nearest populated centroid divided by that cluster's radius (RMS member
    distance on the fit sample), as BigQuery ML's k-means anomaly detection does.
``distance``
    Distance to the nearest populated centroid. Blind to rare behaviour that forms its own tight
    cluster (its points sit close to *a* centroid).
"""

from __future__ import annotations

from ..errors import shown

import numpy as np

__all__ = ["SCORERS", "DEFAULT_SCORER", "ALPHA", "BETA", "large_clusters", "score"]

SCORERS = ("ensemble", "cblof", "normalized", "distance")
DEFAULT_SCORER = "ensemble"
ALPHA = 0.9  # large clusters hold at least this share of the points together ...
BETA = 5.0  # ... or end where the next cluster is this many times smaller


def large_clusters(sizes: np.ndarray, *, alpha: float = ALPHA, beta: float = BETA) -> np.ndarray:
    """Large (non-rare) clusters by He et al.'s alpha/beta rule.

    Clusters sorted by size, largest first; the large ones are the first ``b``, where ``b`` is the
    first position at which either the clusters so far hold ``alpha`` of the points, or the next
    cluster is ``beta`` times smaller than the last one taken. A rare group that forms its own
    mid-sized cluster therefore counts as small as long as the bulk is larger than it, whatever
    the average cluster share (the rule this replaced, "below 1/5 of the average share", called
    no cluster rare once anomalies were a few percent of the data).
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    large = np.zeros(len(sizes), dtype=bool)
    total = sizes.sum()
    if total <= 0:
        large[:] = True
        return large
    order = np.argsort(-sizes, kind="stable")
    s = sizes[order]
    cum = np.cumsum(s) / total
    b = len(s)
    for i in range(len(s)):
        if cum[i] >= alpha:
            b = i + 1
            break
        if i + 1 < len(s) and s[i + 1] > 0 and s[i] >= beta * s[i + 1]:
            b = i + 1
            break
    large[order[:b]] = True
    return large


def score(method: str, dist_all: np.ndarray, rows: np.ndarray, radius: np.ndarray, large: np.ndarray, *,
          ensemble: np.ndarray | None = None) -> np.ndarray:
    """Anomaly score per point.

    Args:
        method: One of :data:`SCORERS`.
        dist_all: ``(n, k)`` distances of each point to every centroid of the grouping model.
        rows: Nearest populated centroid row of each point.
        radius: RMS member distance per centroid row (``normalized``).
        large: Large cluster mask per centroid row (``cblof``).
        ensemble: The ensemble's scores (``ensemble``; from ``ensemble.ensemble_scores``).
    """
    n = len(rows)
    if method == "ensemble":
        if ensemble is None:
            raise ValueError("the ensemble scorer needs the anomaly model's scores")
        return np.asarray(ensemble, dtype=np.float64)
    if method == "distance":
        return dist_all[np.arange(n), rows].astype(np.float64)
    if method == "normalized":
        return dist_all[np.arange(n), rows] / np.maximum(radius[rows], 1e-9)
    if method == "cblof":
        return dist_all[:, np.flatnonzero(large)].min(axis=1).astype(np.float64)
    raise ValueError(f"unknown anomaly scorer {shown(method)}; known: {', '.join(SCORERS)}")
