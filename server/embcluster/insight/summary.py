"""Cluster summaries of a clustering run: what each cluster is, stored as JSON with the model version.

:func:`summarize` takes the run's labelled sample (:class:`SummaryInput`) and returns one
:class:`ClusterSummary` per cluster, by the collection's kind:

========================== ====================== ============================================
input kind                 summary ``kind``       what it holds besides size, share, radius,
                                                  anomalies and representatives
========================== ====================== ============================================
TEXT, IMAGE_METADATA       ``keywords``           c-TF-IDF keywords (:mod:`.keywords`), label
EVENT                      ``fields``             field findings (:mod:`.event_summary`), label
VECTOR, or no source       ``representatives_only`` nothing more
========================== ====================== ============================================

A persisting cluster keeps its previous label unless its keywords really changed
(:mod:`.labels`); :attr:`RunSummaries.label_changes` lists the labels this run replaced.
Everything serialises to plain dicts with a ``schema_version`` (never pickle).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from ..errors import shown
from ..store.base import Metric
from .event_summary import EventSummaryConfig, FieldFinding, event_table, event_text, field_findings
from .keywords import Keyword, KeywordConfig, cluster_keywords
from .labels import DEFAULT_STABILITY_THRESHOLD, LabelChange, LabelDecision, LabelState, stabilize_labels
from .representatives import DEFAULT_EXCERPT_CHARS, Representative, centroid_distances, excerpt, nearest_indices

__all__ = ["SUMMARY_SCHEMA_VERSION", "SummaryKind", "ClusterSummary", "RunSummaries", "SummaryInput",
           "ClusterTotals", "SummaryConfig", "summary_kind", "summarize"]

logger = logging.getLogger(__name__)

SUMMARY_SCHEMA_VERSION = 1
SummaryKind = Literal["keywords", "fields", "representatives_only"]
_KINDS = ("keywords", "fields", "representatives_only")


def _kw_json(kws: Sequence[Keyword]) -> list[dict[str, Any]]:
    return [{"term": k.term, "score": float(f"{k.score:.6g}")} for k in kws]


def _kw_from(data: Sequence[Mapping[str, Any]]) -> list[Keyword]:
    return [Keyword(term=str(k["term"]), score=float(k["score"])) for k in data]


def _check_schema(data: Mapping[str, Any], what: str) -> None:
    if data.get("schema_version") != SUMMARY_SCHEMA_VERSION:
        raise ValueError(f"{what}: schema_version {shown(data.get('schema_version'))}, "
                         f"expected {SUMMARY_SCHEMA_VERSION}")


@dataclass
class ClusterSummary:
    """What one cluster of a model version is.

    Attributes:
        cluster_id: The stable cluster id.
        size: Points in the cluster (the full pass when the run supplied it, else the sample).
        share: ``size`` over all clusters' sizes.
        radius: RMS distance of its members to the centroid.
        anomaly_count: Members flagged as anomalies.
        kind: ``keywords``, ``fields`` or ``representatives_only`` (see the module doc).
        label: Short name ("" for representatives_only).
        label_changed: A persisting cluster whose label this run replaced.
        previous_label: The previous version's label (None: a new cluster id or no previous summary).
        keywords: Distinctive terms with scores, best first (EVENT: the findings' texts and scores).
        fields: EVENT: the field findings, best first.
        representatives: Members nearest the centroid, nearest first.
        label_basis: The keywords the label was made from (what the next run compares against).
        sample_size: Members of this cluster in the sample the summary was computed from.
    """

    cluster_id: int
    size: int
    share: float
    radius: float
    anomaly_count: int
    kind: SummaryKind
    label: str = ""
    label_changed: bool = False
    previous_label: str | None = None
    keywords: list[Keyword] = field(default_factory=list)
    fields: list[FieldFinding] = field(default_factory=list)
    representatives: list[Representative] = field(default_factory=list)
    label_basis: list[Keyword] = field(default_factory=list)
    sample_size: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict with ``schema_version``."""
        return {
            "schema_version": SUMMARY_SCHEMA_VERSION,
            "cluster_id": int(self.cluster_id), "size": int(self.size), "share": float(f"{self.share:.6g}"),
            "radius": float(f"{self.radius:.6g}"), "anomaly_count": int(self.anomaly_count), "kind": self.kind,
            "label": self.label, "label_changed": bool(self.label_changed), "previous_label": self.previous_label,
            "keywords": _kw_json(self.keywords), "fields": [f.to_json() for f in self.fields],
            "representatives": [{"id": r.id, "distance": float(f"{r.distance:.6g}"), "text": r.text}
                                for r in self.representatives],
            "label_basis": _kw_json(self.label_basis), "sample_size": int(self.sample_size),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ClusterSummary":
        """Inverse of :meth:`to_json`; refuses another ``schema_version`` or an unknown kind."""
        _check_schema(data, "cluster summary")
        if data["kind"] not in _KINDS:
            raise ValueError(f"cluster summary: kind {shown(data['kind'])}, expected one of {_KINDS}")
        return cls(
            cluster_id=int(data["cluster_id"]), size=int(data["size"]), share=float(data["share"]),
            radius=float(data["radius"]), anomaly_count=int(data["anomaly_count"]), kind=data["kind"],
            label=str(data.get("label", "")), label_changed=bool(data.get("label_changed", False)),
            previous_label=data.get("previous_label"), keywords=_kw_from(data.get("keywords", [])),
            fields=[FieldFinding.from_json(f) for f in data.get("fields", [])],
            representatives=[Representative(id=str(r["id"]), distance=float(r["distance"]), text=str(r.get("text", "")))
                             for r in data.get("representatives", [])],
            label_basis=_kw_from(data.get("label_basis", [])), sample_size=int(data.get("sample_size", 0)),
        )


@dataclass
class RunSummaries:
    """Every cluster's summary of one model version, and the labels the run changed.

    Attributes:
        input_kind: The collection's kind (text, image_metadata, event, vector).
        clusters: One summary per cluster id, by id.
        label_changes: Persisting clusters whose label this run replaced (old -> new).
        sample_points: Points of the sample the summaries were computed from.
    """

    input_kind: str
    clusters: list[ClusterSummary] = field(default_factory=list)
    label_changes: list[LabelChange] = field(default_factory=list)
    sample_points: int = 0

    def by_id(self) -> dict[int, ClusterSummary]:
        """The summaries by cluster id."""
        return {s.cluster_id: s for s in self.clusters}

    def label_states(self) -> dict[int, LabelState]:
        """What the next run's label stability compares against (:func:`summarize`'s ``previous``)."""
        return {s.cluster_id: LabelState(s.label, tuple(s.label_basis)) for s in self.clusters}

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict with ``schema_version`` (store it beside the model version's JSON)."""
        return {
            "schema_version": SUMMARY_SCHEMA_VERSION, "input_kind": self.input_kind,
            "sample_points": int(self.sample_points), "clusters": [c.to_json() for c in self.clusters],
            "label_changes": [{"cluster_id": int(c.cluster_id), "old": c.old, "new": c.new,
                               "similarity": float(f"{c.similarity:.6g}")} for c in self.label_changes],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RunSummaries":
        """Inverse of :meth:`to_json`; refuses another ``schema_version``."""
        _check_schema(data, "run summaries")
        return cls(input_kind=str(data["input_kind"]), sample_points=int(data.get("sample_points", 0)),
                   clusters=[ClusterSummary.from_json(c) for c in data.get("clusters", [])],
                   label_changes=[LabelChange(int(c["cluster_id"]), str(c["old"]), str(c["new"]),
                                              float(c["similarity"])) for c in data.get("label_changes", [])])


@dataclass(frozen=True)
class SummaryInput:
    """A clustering run's labelled sample, one entry per point (all sequences the same length).

    Attributes:
        ids: Point ids to show (external ids where the point has one).
        cluster_ids: Stable cluster id of each point under the new model.
        distances: Distance of each point to its cluster's centroid (``Assignments.cluster_distance``);
            None = computed from ``vectors`` and ``centroids``.
        is_anomaly: Each point's anomaly flag (None: none flagged; ignored when totals are given).
        texts: TEXT / IMAGE_METADATA: each point's source text (``payload["source"]["text"]``; None or
            "" for a point without one).
        sources: EVENT: each point's ``payload["source"]`` (``{"event": ...}`` or a profile).
        event_fields: EVENT: field name -> schema type (:func:`.event_summary.fields_of`).
        vectors: The points' vectors (only needed when ``distances`` is None).
        centroids: Cluster id -> centroid (only needed when ``distances`` is None).
        metric: The collection's distance (with ``vectors``).
    """

    ids: Sequence[str]
    cluster_ids: np.ndarray | Sequence[int]
    distances: np.ndarray | Sequence[float] | None = None
    is_anomaly: np.ndarray | Sequence[bool] | None = None
    texts: Sequence[str | None] | None = None
    sources: Sequence[Mapping[str, Any] | None] | None = None
    event_fields: Mapping[str, str] | None = None
    vectors: np.ndarray | None = None
    centroids: Mapping[int, np.ndarray] | None = None
    metric: Metric = "cosine"


@dataclass(frozen=True)
class ClusterTotals:
    """Full-pass figures per cluster id (the write-back's counts), preferred over the sample's."""

    sizes: Mapping[int, int]
    radius: Mapping[int, float] = field(default_factory=dict)
    anomalies: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SummaryConfig:
    """How summaries are computed.

    Attributes:
        keywords: Keyword sampling, tokens and count.
        events: Thresholds of EVENT field findings.
        max_events_per_cluster: EVENT rows sampled per cluster (seeded with ``keywords.seed``).
        representatives: Representatives per cluster.
        excerpt_chars: Length of a representative's excerpt at most.
        label_threshold: Weighted Jaccard below which a persisting cluster's label is replaced.
    """

    keywords: KeywordConfig = field(default_factory=KeywordConfig)
    events: EventSummaryConfig = field(default_factory=EventSummaryConfig)
    max_events_per_cluster: int = 1000
    representatives: int = 5
    excerpt_chars: int = DEFAULT_EXCERPT_CHARS
    label_threshold: float = DEFAULT_STABILITY_THRESHOLD


def summary_kind(input_kind: str, data: SummaryInput) -> SummaryKind:
    """``keywords`` for TEXT / IMAGE_METADATA with texts, ``fields`` for EVENT with sources, else representatives only."""
    if input_kind in ("text", "image_metadata") and data.texts is not None and any(data.texts):
        return "keywords"
    if input_kind == "event" and data.sources is not None and data.event_fields and any(data.sources):
        return "fields"
    return "representatives_only"


def _distances(data: SummaryInput, labels: np.ndarray) -> np.ndarray:
    if data.distances is not None:
        return np.asarray(data.distances, dtype=np.float64)
    if data.vectors is None or data.centroids is None:
        raise ValueError("give distances, or vectors and centroids")
    d = np.zeros(len(labels))
    for c in np.unique(labels).tolist():
        rows = np.flatnonzero(labels == c)
        d[rows] = centroid_distances(data.vectors[rows], data.centroids[c], data.metric)
    return d


def _check_lengths(data: SummaryInput, n: int) -> None:
    for name in ("ids", "distances", "is_anomaly", "texts", "sources", "vectors"):
        value = getattr(data, name)
        if value is not None and len(value) != n:
            raise ValueError(f"{name} has {len(value)} entries, cluster_ids {n}")


def _sample_rows(labels: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """Positions of at most ``cap`` points per cluster (seeded), ascending."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels).tolist():
        rows = np.flatnonzero(labels == c)
        keep.append(rows if len(rows) <= cap else rng.choice(rows, size=cap, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def summarize(input_kind: str, data: SummaryInput, *, totals: ClusterTotals | None = None,
              previous: RunSummaries | None = None, background: Mapping[str, int] | None = None,
              config: SummaryConfig | None = None) -> RunSummaries:
    """Summaries of every cluster of a run, for the collection's kind (see the module doc).

    Args:
        input_kind: The collection's kind: ``text``, ``image_metadata``, ``event`` or ``vector``.
        data: The run's labelled sample.
        totals: Full-pass sizes, radii and anomaly counts per cluster id (None: from the sample).
        previous: The previous version's summaries (label stability; None = first run).
        background: TEXT: the whole collection's term counts (:func:`.keywords.count_terms`);
            None = the sample's texts are the background.
        config: Sampling and thresholds.

    Returns:
        One summary per cluster id of the sample and of ``totals``, by id, and the label changes.
    """
    cfg = config or SummaryConfig()
    labels = np.asarray(data.cluster_ids, dtype=np.int64)
    n = len(labels)
    _check_lengths(data, n)
    dist = _distances(data, labels)
    flags = np.zeros(n, dtype=bool) if data.is_anomaly is None else np.asarray(data.is_anomaly, dtype=bool)
    kind = summary_kind(input_kind, data)

    keywords: dict[int, list[Keyword]] = {}
    findings: dict[int, list[FieldFinding]] = {}
    if kind == "keywords":
        assert data.texts is not None  # summary_kind
        keywords = cluster_keywords(data.texts, labels, config=cfg.keywords, background=background)
    elif kind == "fields":
        assert data.sources is not None and data.event_fields is not None  # summary_kind
        rows = _sample_rows(labels, cfg.max_events_per_cluster, cfg.keywords.seed)
        table = event_table([data.sources[i] for i in rows.tolist()], data.event_fields)
        findings = field_findings(table, labels[rows], config=cfg.events)
        keywords = {c: [Keyword(f.text, f.score) for f in fs] for c, fs in findings.items()}

    def shown_text(i: int) -> str:
        if kind == "keywords" and data.texts is not None:
            return excerpt(data.texts[i], cfg.excerpt_chars)
        if kind == "fields" and data.sources is not None and data.event_fields is not None:
            return excerpt(event_text(data.sources[i], data.event_fields), cfg.excerpt_chars)
        return ""

    reps = {c: [Representative(id=str(data.ids[i]), distance=float(dist[i]), text=shown_text(i)) for i in idx.tolist()]
            for c, idx in nearest_indices(labels, dist, count=cfg.representatives).items()}

    in_sample, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    row_of = {int(c): r for r, c in enumerate(in_sample.tolist())}
    sq = np.bincount(inverse, weights=dist**2, minlength=len(in_sample))
    flagged = np.bincount(inverse, weights=flags, minlength=len(in_sample))
    cluster_set = sorted(set(row_of) | set(totals.sizes if totals else ()))
    sizes = {c: int(totals.sizes.get(c, 0)) if totals else int(counts[row_of[c]]) for c in cluster_set}
    whole = max(sum(sizes.values()), 1)

    decisions: dict[int, LabelDecision] = {}
    changes: list[LabelChange] = []
    if kind != "representatives_only":
        decisions, changes = stabilize_labels(previous.label_states() if previous else {},
                                              {c: keywords.get(c, []) for c in cluster_set},
                                              threshold=cfg.label_threshold)
    out = []
    for c in cluster_set:
        r = row_of.get(c)
        m = int(counts[r]) if r is not None else 0
        radius = float(np.sqrt(sq[r] / m)) if r is not None else 0.0
        anomalies = int(flagged[r]) if r is not None else 0
        if totals is not None:  # the full pass's figures where the run has them
            radius = float(totals.radius.get(c, radius))
            anomalies = int(totals.anomalies.get(c, 0)) if totals.anomalies else anomalies
        dec = decisions.get(c)
        out.append(ClusterSummary(
            cluster_id=c, size=sizes[c], share=sizes[c] / whole, radius=radius, anomaly_count=anomalies, kind=kind,
            label=dec.label if dec else "", label_changed=dec.changed if dec else False,
            previous_label=dec.previous_label if dec else None, keywords=keywords.get(c, []),
            fields=findings.get(c, []), representatives=reps.get(c, []),
            label_basis=list(dec.basis) if dec else [], sample_size=m,
        ))
    logger.debug("summarised %d clusters (%s) from %d sample points", len(out), kind, n)
    return RunSummaries(input_kind=input_kind, clusters=out, label_changes=changes, sample_points=n)
