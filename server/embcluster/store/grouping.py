"""Search grouped by a payload field, for a backend without a group-by query (Qdrant Edge).

Qdrant's own group-by (``query_points_groups``) is used where the backend has it; this is the
same result built from plain searches, exactly:

1. the field's values (a facet of its index); when there are few (``values x group_size`` at most
   the L below), each value is asked for its ``group_size`` best hits in one batch, and the
   groups are ranked by their best hit;
2. else up to ``SEARCH_ROUNDS`` searches for L = ``groups x group_size x OVERSAMPLE`` hits (at
   least ``MIN_FIRST_LIMIT``), each leaving out the groups found before, until ``groups`` groups
   are found. Groups rank in the order their best hit appears: a group with no hit among a
   round's L hits has its best hit below all of them, so below every group that round found.
   The chosen groups that may have more members than they got are then asked for their
   ``group_size`` best hits in one batch;
3. groups still missing after those rounds (the query sits among many large groups): every
   value is asked as in 1.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from .base import Hit, HitGroup

__all__ = ["OVERSAMPLE", "grouped_search"]

OVERSAMPLE = 4  # each search: this many times the hits the groups can hold
MIN_FIRST_LIMIT = 64
SEARCH_ROUNDS = 3


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


def grouped_search(*, search: Callable[[int, Sequence[Any]], list[Hit]],
                   search_each: Callable[[Sequence[Any], int], list[list[Hit]]],
                   values: Callable[[], Sequence[Any]], key: str, groups: int, group_size: int,
                   higher_is_better: bool) -> list[HitGroup]:
    """The best ``groups`` groups of hits by ``key``, each with its ``group_size`` best hits.

    Args:
        search: ``(limit, values left out) -> hits`` best first, over the points the caller's filter
            admits that carry ``key`` with none of those values.
        search_each: ``(values, limit) -> hits per value``: the same search restricted to each value of ``key``.
        values: Every value of ``key`` among those points (a value without points costs a query, nothing else).
        key: The payload field to group by.
        groups: Most groups returned.
        group_size: Most hits per group.
        higher_is_better: Scores are similarities (cosine) rather than distances (euclid).
    """
    limit = max(groups * group_size * OVERSAMPLE, MIN_FIRST_LIMIT)
    every = [v for v in values() if not isinstance(v, bool) and isinstance(v, (int, str))]

    def each_value() -> list[HitGroup]:
        ranked = [(v, best) for v, best in zip(every, search_each(every, group_size)) if best]
        sign = -1.0 if higher_is_better else 1.0
        ranked.sort(key=lambda item: sign * item[1][0][1])  # stable: ties keep the facet's order
        return ranked[:groups]

    if len(every) * group_size <= limit:
        return each_value()
    found: dict[Any, list[Hit]] = {}
    complete: set[Any] = set()
    for _ in range(SEARCH_ROUNDS):
        hits = search(limit, list(found))
        new = _group(hits, key, group_size)
        found.update(new)
        if len(hits) < limit:  # it saw every remaining point: its groups are complete, there are no others
            complete.update(new)
            break
        if len(found) >= groups:
            break
    else:
        return each_value()
    chosen = list(found)[:groups]
    short = [v for v in chosen if v not in complete and len(found[v]) < group_size]
    for value, best in zip(short, search_each(short, group_size)):
        found[value] = best or found[value]
    return [(v, found[v]) for v in chosen]
