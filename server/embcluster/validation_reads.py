"""Limits of read requests, checked once at the boundary: page sizes, search limits, grouped search, the
report's sample. Messages show the offending value."""

from __future__ import annotations

from .errors import InvalidArgument
from .validation import VECTOR_INDEX_BOUNDS

__all__ = ["check_page_size", "check_report_sample", "check_search_limit", "check_group_search", "check_search_mode",
           "DEFAULT_REPORT_POINTS", "MAX_REPORT_POINTS", "MAX_SEARCH_HITS", "MAX_GROUPS"]

DEFAULT_REPORT_POINTS = 10_000  # points on a report's map: ~2.5 MB of HTML (bench/bench_report.py)
MAX_REPORT_POINTS = 50_000  # ~15 MB of HTML at most: inside the default 32 MiB message limit


def check_page_size(page_size: int) -> int:
    """0 means the default (100); at most 1000."""
    if page_size == 0:
        return 100
    if not (1 <= page_size <= 1000):
        raise InvalidArgument(f"page_size must be in [1, 1000], got {page_size}")
    return page_size


def check_report_sample(sample_size: int) -> int:
    """Points a report draws on its map: 0 means the default (10,000); at most 50,000."""
    if sample_size == 0:
        return DEFAULT_REPORT_POINTS
    if not (1 <= sample_size <= MAX_REPORT_POINTS):
        raise InvalidArgument(f"sample_size must be in [1, {MAX_REPORT_POINTS}] (0 = {DEFAULT_REPORT_POINTS}), "
                              f"got {sample_size}")
    return sample_size


MAX_SEARCH_HITS = 1000  # hits one Search returns: its limit, or groups x group_size
MAX_GROUPS = 100


def check_search_limit(limit: int) -> int:
    """0 means the default (10); at most 1000."""
    if limit == 0:
        return 10
    if not (1 <= limit <= MAX_SEARCH_HITS):
        raise InvalidArgument(f"limit must be in [1, {MAX_SEARCH_HITS}], got {limit}")
    return limit


def check_search_mode(ef: int, exact: bool) -> None:
    """A plain search's own ``ef`` (0: the collection's; else within the index's bounds) or ``exact``, not both."""
    low, high = VECTOR_INDEX_BOUNDS["ef"]
    if isinstance(ef, bool) or not isinstance(ef, int):
        raise InvalidArgument(f"ef must be an integer in [{low}, {high}] (0 = the collection's vector_index.ef), "
                              f"got {ef!r}")
    if ef and not (low <= ef <= high):
        raise InvalidArgument(f"ef must be in [{low}, {high}] (0 = the collection's vector_index.ef), got {ef}")
    if ef and exact:
        raise InvalidArgument(f"give ef ({ef}) or exact, not both: an exact search walks no graph")


def check_group_search(groups: int, group_size: int, *, limit: int = 0, cluster_id: int | None = None,
                       ef: int = 0, exact: bool = False) -> tuple[int, int]:
    """Groups (0: 5) and hits per group (0: 3) of a search grouped by cluster; plain search's limit,
    cluster_id, ef and exact must be unset."""
    if ef or exact:
        raise InvalidArgument(f"{'ef ' + str(ef) if ef else 'exact'} applies to plain search; a search grouped by "
                              "cluster uses the collection's vector_index.ef")
    if limit:
        raise InvalidArgument(f"limit {limit} applies to plain search; a search grouped by cluster takes "
                              "groups and group_size")
    if cluster_id is not None:
        raise InvalidArgument(f"cluster_id {cluster_id} restricts a plain search to one cluster; a search grouped "
                              "by cluster searches them all: give one or the other")
    groups = groups or 5
    group_size = group_size or 3
    for name, value in (("groups", groups), ("group_size", group_size)):
        if not (1 <= value <= MAX_GROUPS):
            raise InvalidArgument(f"{name} must be in [1, {MAX_GROUPS}], got {value}")
    if groups * group_size > MAX_SEARCH_HITS:
        raise InvalidArgument(f"groups x group_size must be at most {MAX_SEARCH_HITS}, got {groups} x {group_size} "
                              f"= {groups * group_size}")
    return groups, group_size
