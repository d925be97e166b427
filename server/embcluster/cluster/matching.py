"""Stable cluster ids: match a new fit's clusters to the previous model's by shared members.

Both models label the same fit sample; the contingency table (new cluster x old id) counts
shared points. The Hungarian algorithm pairs clusters to maximise total overlap, and a pair
is kept when the two share a majority of the smaller one's members. A kept pair inherits the
old id; any other new cluster gets a fresh id (ids are never reused in a collection).

The same table describes what happened: an old cluster **split** when at least two new
clusters each took >= 20% of its members; a new cluster **merged** old ones when at least two
old clusters each gave >= 20% of its members; **appeared**/**vanished** are the unmatched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["MatchReport", "match_clusters", "SHARE"]

SHARE = 0.2


@dataclass
class MatchReport:
    """How the new clusters relate to the previous model's (stable ids throughout)."""

    persisted: list[int] = field(default_factory=list)
    appeared: list[int] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)
    split: dict[int, list[int]] = field(default_factory=dict)  # old id -> new ids
    merged: dict[int, list[int]] = field(default_factory=dict)  # new id -> old ids


def match_clusters(
    new_rows: np.ndarray, k_new: int, old_ids_of_sample: np.ndarray | None, old_ids: np.ndarray | None,
    *, next_id: int,
) -> tuple[np.ndarray, MatchReport, int]:
    """Give each new cluster (row) a stable id.

    Args:
        new_rows: New cluster row of each sample point.
        k_new: Number of new clusters.
        old_ids_of_sample: The previous model's cluster id of each sample point (None: no model).
        old_ids: The previous model's cluster ids.
        next_id: First never-used id of the collection.

    Returns:
        The id of each new row, the report, and the next free id.
    """
    from scipy.optimize import linear_sum_assignment

    ids = np.full(k_new, -1, dtype=np.int64)
    report = MatchReport()
    if old_ids_of_sample is not None and old_ids is not None and len(old_ids):
        old_index = {int(o): j for j, o in enumerate(old_ids)}
        cols = np.fromiter((old_index[int(o)] for o in old_ids_of_sample), dtype=np.int64, count=len(new_rows))
        table = np.zeros((k_new, len(old_ids)), dtype=np.int64)
        np.add.at(table, (new_rows, cols), 1)
        new_size, old_size = table.sum(axis=1), table.sum(axis=0)
        rows, matched_cols = linear_sum_assignment(-table)
        for r, c in zip(rows, matched_cols):
            if table[r, c] > 0 and 2 * table[r, c] > min(new_size[r], old_size[c]):
                ids[r] = int(old_ids[c])
        kept = {int(i) for i in ids if i >= 0}
        report.persisted = sorted(kept)
        report.vanished = sorted(int(o) for o in old_ids if int(o) not in kept)
        unmatched = np.flatnonzero(ids < 0)
        ids[unmatched] = np.arange(next_id, next_id + len(unmatched))
        report.appeared = [int(i) for i in ids[unmatched]]
        took = (table >= SHARE * old_size[None, :]) & (old_size[None, :] > 0)  # new r took >= 20% of old c
        gave = (table >= SHARE * new_size[:, None]) & (new_size[:, None] > 0)  # old c gave >= 20% of new r
        for c in np.flatnonzero(took.sum(axis=0) >= 2):
            report.split[int(old_ids[c])] = sorted(int(i) for i in ids[took[:, c]])
        for r in np.flatnonzero(gave.sum(axis=1) >= 2):
            report.merged[int(ids[r])] = sorted(int(o) for o in old_ids[gave[r]])
        return ids, report, next_id + len(unmatched)
    ids = np.arange(next_id, next_id + k_new, dtype=np.int64)
    report.appeared = [int(i) for i in ids]
    return ids, report, next_id + k_new
