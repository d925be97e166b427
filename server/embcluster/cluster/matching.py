"""Stable cluster ids: match a new fit's centroids to the previous model's (Hungarian)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..store.base import Metric
from .assign import pairwise_distance

__all__ = ["MatchReport", "match_clusters"]


@dataclass
class MatchReport:
    """How the new clusters relate to the previous model's."""

    persisted: list[int] = field(default_factory=list)
    appeared: list[int] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)


def match_clusters(
    new_centroids: np.ndarray, new_radius: np.ndarray, old_centroids: np.ndarray | None,
    old_ids: np.ndarray | None, old_radius: np.ndarray | None, *, metric: Metric, next_id: int,
) -> tuple[np.ndarray, MatchReport, int]:
    """Give each new centroid a stable id.

    A new cluster inherits an old id when the optimal one-to-one assignment (Hungarian, on
    centroid distance) pairs them and their centroids are closer than the larger of the two
    radii — i.e. each centroid lies within the other's typical member distance. Others get
    fresh ids from ``next_id`` (ids are never reused in a collection).

    Returns the ids (one per new centroid row), the report and the next free id.
    """
    from scipy.optimize import linear_sum_assignment

    k = len(new_centroids)
    ids = np.full(k, -1, dtype=np.int64)
    report = MatchReport()
    if old_centroids is not None and old_ids is not None and old_radius is not None and len(old_centroids):
        dist = pairwise_distance(new_centroids, old_centroids, metric)
        rows, cols = linear_sum_assignment(dist)
        for r, c in zip(rows, cols):
            if dist[r, c] <= max(new_radius[r], old_radius[c]):
                ids[r] = int(old_ids[c])
        kept = set(int(i) for i in ids if i >= 0)
        report.persisted = sorted(kept)
        report.vanished = sorted(int(i) for i in old_ids if int(i) not in kept)
    for r in range(k):
        if ids[r] < 0:
            ids[r] = next_id
            report.appeared.append(next_id)
            next_id += 1
    return ids, report, next_id
