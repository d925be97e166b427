"""Cluster summaries (``embcluster.insight``) to protobuf: ``ClusterSummary`` and ``ClusterLabelChange``."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from ..insight.event_summary import FieldFinding
from ..insight.labels import LabelChange
from ..insight.summary import ClusterSummary, RunSummaries
from ..schema import ClusterDetail
from .v1 import embcluster_pb2 as pb

__all__ = ["summary_to_pb", "summaries_to_pb", "label_change_to_pb", "label_changes_to_pb", "cluster_detail_to_pb"]

_KINDS = {
    "keywords": pb.SUMMARY_KIND_KEYWORDS,
    "fields": pb.SUMMARY_KIND_FIELDS,
    "representatives_only": pb.SUMMARY_KIND_REPRESENTATIVES_ONLY,
}


def _num(value: float | None) -> float | None:
    """A finite float, or None (unset) for a missing or non-finite one."""
    return float(value) if value is not None and math.isfinite(value) else None


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0


def _field_to_pb(f: FieldFinding) -> pb.SummaryField:
    return pb.SummaryField(field=f.field, kind=f.kind, text=f.text, score=_finite(f.score), median=_num(f.median),
                           overall_median=_num(f.overall_median), effect=_num(f.effect), low=_num(f.low),
                           high=_num(f.high), category=f.category, share=_num(f.share),
                           overall_share=_num(f.overall_share), lift=_num(f.lift))


def summary_to_pb(s: ClusterSummary, model_version: int, *, summarized: bool = True) -> pb.ClusterSummary:
    """One cluster's summary; ``summarized`` False: a version without summaries (kind UNSPECIFIED)."""
    return pb.ClusterSummary(
        cluster_id=s.cluster_id, model_version=model_version,
        kind=_KINDS[s.kind] if summarized else pb.SUMMARY_KIND_UNSPECIFIED,
        size=s.size, share=_finite(s.share), radius=_finite(s.radius), anomaly_count=s.anomaly_count,
        label=s.label, label_changed=s.label_changed, previous_label=s.previous_label,
        keywords=[pb.SummaryKeyword(term=k.term, score=_finite(k.score)) for k in s.keywords],
        fields=[_field_to_pb(f) for f in s.fields],
        representatives=[pb.SummaryRepresentative(id=r.id, text=r.text, distance=_finite(r.distance))
                         for r in s.representatives],
        sample_size=s.sample_size,
    )


def summaries_to_pb(summaries: RunSummaries | None, model_version: int) -> list[pb.ClusterSummary]:
    """Every cluster's summary of a version, by cluster id ([] without summaries)."""
    return [summary_to_pb(s, model_version) for s in summaries.clusters] if summaries is not None else []


def label_change_to_pb(c: LabelChange) -> pb.ClusterLabelChange:
    """A persisting cluster's replaced label."""
    return pb.ClusterLabelChange(cluster_id=c.cluster_id, old_label=c.old, new_label=c.new,
                                 similarity=_finite(c.similarity))


def label_changes_to_pb(changes: Sequence[LabelChange | Mapping[str, Any]]) -> list[pb.ClusterLabelChange]:
    """Label changes, from a version's summaries or a run record's JSON (``{cluster_id, old, new, similarity}``)."""
    return [label_change_to_pb(c if isinstance(c, LabelChange) else
                               LabelChange(int(c["cluster_id"]), str(c["old"]), str(c["new"]), float(c["similarity"])))
            for c in changes]


def cluster_detail_to_pb(d: ClusterDetail) -> pb.ClusterSummary:
    """``GetCluster``'s answer."""
    return summary_to_pb(d.summary, d.model_version, summarized=d.summarized)
