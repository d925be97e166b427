"""Nearest-centroid assignment: one matrix product per page, O(k·d) per point."""

from __future__ import annotations

import numpy as np

from ..store.base import Metric

__all__ = ["assign_nearest", "nearest_rows", "pairwise_distance"]


def pairwise_distance(x: np.ndarray, centroids: np.ndarray, metric: Metric) -> np.ndarray:
    """``(n, k)`` distances: ``1 - cos`` for cosine (rows assumed unit length), L2 for euclid."""
    prod = x @ centroids.T
    if metric == "cosine":
        return 1.0 - prod
    sq = (x * x).sum(axis=1)[:, None] - 2.0 * prod + (centroids * centroids).sum(axis=1)[None, :]
    return np.sqrt(np.maximum(sq, 0.0))


def assign_nearest(
    x: np.ndarray, centroids: np.ndarray, metric: Metric, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Row index of the nearest allowed centroid and the distance to it, per point."""
    dist = np.maximum(pairwise_distance(np.asarray(x, dtype=np.float32), centroids, metric), 0.0)
    rows = nearest_rows(dist, allowed)
    return rows, dist[np.arange(len(rows)), rows].astype(np.float64)


def nearest_rows(dist_all: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """Per point, the column of ``dist_all`` with the smallest distance among the allowed ones."""
    if allowed is None or allowed.all():
        return dist_all.argmin(axis=1)
    return np.where(allowed[None, :], dist_all, np.inf).argmin(axis=1)
