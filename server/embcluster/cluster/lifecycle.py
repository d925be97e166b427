"""Cluster life-cycle events of a new model version: BIRTH, DEATH, SPLIT, MERGE, GROW, SHRINK.

Pure: derived from the id matching (:class:`~embcluster.cluster.matching.MatchReport`, made on
the fit sample) and the clusters' sizes in the new and the previous version. Every event names
one cluster id (``cluster_id``) and reports that id's size and share of the version's points
before (previous version) and after (new version); a size is 0 where the id does not exist.

* **SPLIT** (``cluster_id`` = the old id, ``related_ids`` = the new ids that each took >= 20% of
  its members, the old id among them when it persisted): reported instead of the BIRTH of the
  new ids among them, and instead of the old id's DEATH when none kept its id.
* **MERGE** (``cluster_id`` = the new id, ``related_ids`` = the old ids that each gave >= 20% of
  its members): reported instead of the new id's BIRTH and of the DEATH of the old ids that went
  into it.
* **BIRTH**: a new id no SPLIT or MERGE explains; **DEATH**: an old id no SPLIT or MERGE explains.
  New content that the previous model filed under old clusters looks like a split of them, or a
  merge of them, in the matching (the fit sample's new points carry old ids). A new id whose old
  clusters (the parents it took points from) all kept their ids, and whose centroid lies farther
  from each parent's centroid than that parent's radius (RMS member distance on its fit sample),
  is therefore a BIRTH, with those parents in ``related_ids`` (where its points were filed): the
  halves of a real split lie within the parent's radius (a Gaussian's half-centroid is ~0.8 σ along
  one axis from the centre, the radius the RMS over every axis), and a real merge (k went down)
  takes the ids of the clusters it replaced. See :func:`novel_clusters`. What remains a SPLIT
  needs two children, or one that did not keep the id; a MERGE two parents.
* **GROW** / **SHRINK**: a persisting id without a SPLIT or MERGE whose share of the version's
  points changed by more than :data:`GROW_RATIO` (relative: ``share_after / share_before``
  above ``1 + GROW_RATIO`` or below ``1 / (1 + GROW_RATIO)``) **and** by more than
  :data:`GROW_MIN_DELTA` (absolute, so clusters of a few points do not fire on noise).

Sizes: the full-pass sizes (``sizes_full``, every point, counted by the write-back) when both
versions have them, else the fit-sample sizes of both (``sizes_sample``). Unpopulated clusters
(below ``min_cluster_size`` on the fit sample: never assigned) are left out on both sides.

The first model of a collection (no previous model) reports every populated cluster as a BIRTH;
so does a model fitted in a new feature space (an EVENT featurizer refit: no matching), which also
reports the DEATH of every cluster of the model it replaces. A rollback derives nothing: it serves
a version that keeps the events its own run stored.

The thresholds were measured: see docs/architecture.md ("Cluster life-cycle events").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..store.base import Metric
from .assign import pairwise_distance
from .matching import MatchReport

__all__ = ["BIRTH", "DEATH", "SPLIT", "MERGE", "GROW", "SHRINK", "KINDS", "GROW_RATIO", "GROW_MIN_DELTA",
           "ClusterEvent", "VersionSizes", "derive_events", "sizes_of", "events_from_json", "novel_clusters", "parents_of"]

BIRTH, DEATH, SPLIT, MERGE, GROW, SHRINK = "BIRTH", "DEATH", "SPLIT", "MERGE", "GROW", "SHRINK"
KINDS = (BIRTH, DEATH, SPLIT, MERGE, GROW, SHRINK)

# A persisting cluster's share must change by more than 25% of itself AND by more than 0.01 of the points
# to be a GROW or SHRINK. Re-fits of unchanged data (bench/bench_lifecycle.py: WordNet glosses x MiniLM, fit
# sample 3,000 of 5,141, other seeds) moved the share of such a cluster by at most 13% (k = 8, 5 seeds) and
# 15% (k = 20, 8 seeds), at most 0.015 absolute: about half way to firing. Either bound alone fires there.
GROW_RATIO = 0.25
GROW_MIN_DELTA = 0.01


@dataclass(frozen=True)
class ClusterEvent:
    """What happened to one cluster id in a new model version.

    Attributes:
        kind: BIRTH, DEATH, SPLIT, MERGE, GROW or SHRINK.
        cluster_id: The id it is about (SPLIT: the old id; MERGE: the new id).
        related_ids: SPLIT: the new ids it went to; MERGE: the old ids it came from; else empty.
        size_before: The id's points in the previous version (0: it did not exist).
        size_after: The id's points in this version (0: it no longer exists).
        share_before: ``size_before`` over the previous version's points.
        share_after: ``size_after`` over this version's points.
        model_version: The version that reports it.
        previous_version: The version it is compared with (0: none).
        full_pass: Sizes counted over every point (else over the fit sample).
    """

    kind: str
    cluster_id: int
    related_ids: tuple[int, ...] = ()
    size_before: int = 0
    size_after: int = 0
    share_before: float = 0.0
    share_after: float = 0.0
    model_version: int = 0
    previous_version: int = 0
    full_pass: bool = False

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (shares rounded to 6 digits, as stored in ``model.json``)."""
        out = asdict(self)
        out["related_ids"] = list(self.related_ids)
        out["share_before"] = round(self.share_before, 6)
        out["share_after"] = round(self.share_after, 6)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ClusterEvent":
        """Read one back (unknown keys are ignored: a newer server may add some)."""
        return cls(kind=str(data["kind"]), cluster_id=int(data["cluster_id"]),
                   related_ids=tuple(int(i) for i in data.get("related_ids") or ()),
                   size_before=int(data.get("size_before", 0)), size_after=int(data.get("size_after", 0)),
                   share_before=float(data.get("share_before", 0.0)), share_after=float(data.get("share_after", 0.0)),
                   model_version=int(data.get("model_version", 0)),
                   previous_version=int(data.get("previous_version", 0)), full_pass=bool(data.get("full_pass")))


@dataclass
class VersionSizes:
    """A version's populated clusters and their sizes, by stable id."""

    version: int
    sample: dict[int, int] = field(default_factory=dict)
    full: dict[int, int] | None = None  # None: no full-pass count (versions before it, or a stopped pass)


def sizes_of(version: int, cluster_ids: Sequence[int], populated: Sequence[bool],
             metrics: Mapping[str, Any]) -> VersionSizes:
    """The sizes a model version recorded (``metrics['sizes_sample']``, ``metrics['sizes_full']``), by id.

    Args:
        version: The version.
        cluster_ids: Its stable id per centroid row.
        populated: Whether each row is assigned at all.
        metrics: Its metrics (``sizes_*`` are per centroid row).
    """
    def by_id(values: Any) -> dict[int, int] | None:
        if not isinstance(values, list) or len(values) != len(cluster_ids):
            return None
        return {int(c): int(s) for c, s, p in zip(cluster_ids, values, populated) if p}

    return VersionSizes(version=version, sample=by_id(metrics.get("sizes_sample")) or {},
                        full=by_id(metrics.get("sizes_full")))


def parents_of(report: MatchReport) -> dict[int, set[int]]:
    """New id -> the old ids it took points from in a split or a merge."""
    out: dict[int, set[int]] = {}
    for old, news in report.split.items():
        for new in news:
            out.setdefault(int(new), set()).add(int(old))
    for new, olds in report.merged.items():
        out.setdefault(int(new), set()).update(int(o) for o in olds)
    return out


def novel_clusters(report: MatchReport | Mapping[str, Any], new_centroids: Mapping[int, np.ndarray],
                   old_centroids: Mapping[int, np.ndarray], old_radius: Mapping[int, float],
                   metric: Metric) -> set[int]:
    """New ids of splits and merges that are new content, not parts of old clusters (module docstring).

    Args:
        report: The matching (a ``MatchReport`` or its stored dict).
        new_centroids: The new version's centroids by id.
        old_centroids: The previous version's centroids by id.
        old_radius: The previous version's radius (RMS member distance on its fit sample) by id.
        metric: The collection's distance.
    """
    m = _report(report)
    persisted = set(m.persisted)
    out = set()
    for new, parents in parents_of(m).items():
        if new in persisted or new not in new_centroids or not parents <= persisted:
            continue
        if not all(p in old_centroids and p in old_radius for p in parents):
            continue
        c = np.asarray(new_centroids[new], dtype=np.float64)[None, :]
        far = [float(pairwise_distance(c, np.asarray(old_centroids[p], dtype=np.float64)[None, :], metric)[0, 0])
               > float(old_radius[p]) for p in parents]
        if all(far):
            out.add(new)
    return out


def _report(report: MatchReport | Mapping[str, Any]) -> MatchReport:
    """A ``MatchReport`` from itself or its stored dict (JSON keys are strings)."""
    if isinstance(report, MatchReport):
        return report
    return MatchReport(
        persisted=[int(i) for i in report.get("persisted", [])],
        appeared=[int(i) for i in report.get("appeared", [])],
        vanished=[int(i) for i in report.get("vanished", [])],
        split={int(k): [int(i) for i in v] for k, v in (report.get("split") or {}).items()},
        merged={int(k): [int(i) for i in v] for k, v in (report.get("merged") or {}).items()},
    )


def derive_events(report: MatchReport | Mapping[str, Any], new: VersionSizes,
                  previous: VersionSizes | None, *, novel: set[int] | frozenset[int] = frozenset()) -> list[ClusterEvent]:
    """The life-cycle events of version ``new`` against ``previous`` (see the module docstring).

    Args:
        report: The matching of ``new`` against ``previous`` (a ``MatchReport`` or its stored dict;
            ignored when ``previous`` is None).
        new: The new version's populated clusters and sizes.
        previous: The version it replaces (None: the first model).
        novel: New ids of splits and merges that are new content (:func:`novel_clusters`): BIRTHs.

    Returns:
        Events ordered by kind (as in :data:`KINDS`), then cluster id.
    """
    m = _report(report)
    full = new.full is not None and (previous is None or previous.full is not None)
    after = (new.full if full else new.sample) or {}
    before: dict[int, int] = ((previous.full if full else previous.sample) or {}) if previous is not None else {}
    total_after, total_before = sum(after.values()), sum(before.values())
    prev_version = previous.version if previous is not None else 0

    def event(kind: str, cid: int, related: Sequence[int] = ()) -> ClusterEvent:
        b, a = before.get(cid, 0), after.get(cid, 0)
        return ClusterEvent(kind=kind, cluster_id=cid, related_ids=tuple(sorted(related)), size_before=b,
                            size_after=a, share_before=b / total_before if total_before else 0.0,
                            share_after=a / total_after if total_after else 0.0, model_version=new.version,
                            previous_version=prev_version, full_pass=full)

    if previous is None:
        return [event(BIRTH, cid) for cid in sorted(after)]
    events: list[ClusterEvent] = []
    parents = parents_of(m)
    split = {}
    for o, news in m.split.items():
        kept = [n for n in news if n in after and n not in novel]
        if o in before and (len(kept) >= 2 or (kept and o not in after)):
            split[o] = kept
    merged = {n: [o for o in olds if o in before] for n, olds in m.merged.items() if n in after and n not in novel}
    merged = {n: olds for n, olds in merged.items() if len(olds) >= 2}
    split_children = {n for news in split.values() for n in news}
    merge_parents = {o for olds in merged.values() for o in olds}
    matched = set(m.persisted)
    for cid in sorted(split):
        events.append(event(SPLIT, cid, split[cid]))
    for cid in sorted(merged):
        events.append(event(MERGE, cid, merged[cid]))
    for cid in sorted(after):
        if cid not in before and cid not in matched and cid not in split_children and cid not in merged:
            events.append(event(BIRTH, cid, sorted(parents.get(cid, ())) if cid in novel else ()))
    for cid in sorted(before):
        if cid not in after and cid not in split and cid not in merge_parents:
            events.append(event(DEATH, cid))
    for cid in sorted(set(before) & set(after)):
        if cid in split or cid in merged:
            continue
        e = event(GROW, cid)
        if abs(e.share_after - e.share_before) <= GROW_MIN_DELTA:
            continue
        if e.share_after > e.share_before * (1 + GROW_RATIO):
            events.append(e)
        elif e.share_after * (1 + GROW_RATIO) < e.share_before:
            events.append(event(SHRINK, cid))
    return sorted(events, key=lambda e: (KINDS.index(e.kind), e.cluster_id))


def events_from_json(data: Any) -> list[ClusterEvent]:
    """A version's stored events (``model.json``'s ``events``; absent in versions before events: none)."""
    return [ClusterEvent.from_json(e) for e in data or []]
