"""Search grouped by a payload field, for a backend without a group-by query (Qdrant Edge).

Qdrant's own group-by (``query_points_groups``) is used where the backend has it; this is the
same result built from plain searches, exactly:

1. one search for ``groups x group_size x OVERSAMPLE`` hits, grouped by the field's value in the
   order of their best hit — usually enough to find the best ``groups`` groups, because a group
   that has no hit among the first L hits has its best hit below all of them;
2. only when fewer than ``groups`` groups turned up (one huge group near the query): each
   remaining value of the field (a facet count) is asked for its best hit in one batch;
3. the chosen groups that may have more members than they got (the first search stopped at its
   limit) are asked for their ``group_size`` best hits in one batch.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from .base import Hit, HitGroup

__all__ = ["OVERSAMPLE", "grouped_search"]

OVERSAMPLE = 4  # first search: this many times the hits the groups can hold
MIN_FIRST_LIMIT = 64


def _group(hits: Sequence[Hit], key: str, group_size: int) -> dict[Any, list[Hit]]:
    """Hits by the value of ``key`` (int or str; others left out), groups in order of their best hit."""
    out: dict[Any, list[Hit]] = {}
    for point, score in hits:
        value = point.payload.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            continue
        members = out.setdefault(value, [])
        if len(members) < group_size:
            members.append((point, score))
    return out


def grouped_search(*, search: Callable[[int], list[Hit]],
                   search_each: Callable[[Sequence[Any], int], list[list[Hit]]],
                   values: Callable[[], Sequence[Any]], key: str, groups: int, group_size: int,
                   higher_is_better: bool) -> list[HitGroup]:
    """The best ``groups`` groups of hits by ``key``, each with its ``group_size`` best hits.

    Args:
        search: ``limit -> hits`` best first, over the points the caller's filter admits.
        search_each: ``(values, limit) -> hits per value``: the same search restricted to each value of ``key``.
        values: Every value of ``key`` among those points.
        key: The payload field to group by.
        groups: Most groups returned.
        group_size: Most hits per group.
        higher_is_better: Scores are similarities (cosine) rather than distances (euclid).
    """
    limit = max(groups * group_size * OVERSAMPLE, MIN_FIRST_LIMIT)
    hits = search(limit)
    exhausted = len(hits) < limit  # the search saw every point: each group is complete
    found = _group(hits, key, group_size)
    if len(found) < groups and not exhausted:
        unseen = [v for v in values() if v not in found]
        for value, best in zip(unseen, search_each(unseen, 1)):
            if best:
                found[value] = best
        sign = -1.0 if higher_is_better else 1.0
        found = dict(sorted(found.items(), key=lambda item: sign * item[1][0][1]))  # stable: ties keep order
    chosen = list(found)[:groups]
    if not exhausted:
        short = [v for v in chosen if len(found[v]) < group_size]
        for value, best in zip(short, search_each(short, group_size)):
            found[value] = best or found[value]
    return [(v, found[v]) for v in chosen]
