"""Conversions between protobuf messages and the core's plain types (the only place)."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any, Sequence

import numpy as np
from google.protobuf import json_format, struct_pb2

from ..cluster.lifecycle import ClusterEvent
from ..embed.tiers import DEFAULT_TIER
from ..errors import InvalidArgument, shown
from ..schema import (
    Assignment,
    AttachSpec,
    ClusterInfo,
    CollectionInfo,
    CollectionSettings,
    CollectionSpec,
    DriftReport,
    Explanation,
    ImageMetadataInput,
    ImageMetadataSpec,
    ItemInput,
    NumericAttribute,
    ItemResult,
    ModelInfo,
    PointView,
    RunInfo,
    RunRequest,
    RunState,
    Schedule,
    SearchGroup,
    SearchHit,
)
from ..core.report import RenderedReport
from ..store.base import IndexState, VectorIndexSettings
from ..snapshot import SnapshotSummary
from .convert_events import event_from_pb, event_schema_from_pb, event_schema_to_pb, infer_response_to_pb
from .convert_summaries import cluster_detail_to_pb, label_changes_to_pb, summaries_to_pb, summary_to_pb
from .v1 import embcluster_pb2 as pb

__all__ = [
    "report_to_pb",
    "spec_from_pb",
    "attach_spec_from_pb",
    "snapshot_to_pb",
    "settings_from_pb",
    "ingest_response_to_pb",
    "settings_to_pb",
    "schedule_from_pb",
    "schedule_to_pb",
    "drift_to_pb",
    "collection_to_pb",
    "items_from_pb",
    "vector_from_pb",
    "assignment_to_pb",
    "point_to_pb",
    "run_request_from_pb",
    "run_to_pb",
    "cluster_to_pb",
    "cluster_detail_to_pb",
    "hit_to_pb",
    "group_to_pb",
    "model_to_pb",
    "cluster_event_to_pb",
    "item_result_to_pb",
    "explanation_to_pb",
    "image_from_pb",
    "event_from_pb",
    "event_schema_from_pb",
    "event_schema_to_pb",
    "infer_response_to_pb",
    "image_to_pb",
    "image_spec_from_pb",
    "image_spec_to_pb",
]

_KINDS = {pb.INPUT_KIND_TEXT: "text", pb.INPUT_KIND_VECTOR: "vector", pb.INPUT_KIND_IMAGE_METADATA: "image_metadata",
          pb.INPUT_KIND_EVENT: "event"}
_KINDS_PB = {v: k for k, v in _KINDS.items()}
_METRICS = {pb.DISTANCE_UNSPECIFIED: "cosine", pb.DISTANCE_COSINE: "cosine", pb.DISTANCE_EUCLID: "euclid"}
_METRICS_PB = {"cosine": pb.DISTANCE_COSINE, "euclid": pb.DISTANCE_EUCLID}
_LONG_TEXT = {pb.CollectionSettings.LONG_TEXT_TRUNCATE: "truncate", pb.CollectionSettings.LONG_TEXT_POOL: "pool"}
_LONG_TEXT_PB = {v: k for k, v in _LONG_TEXT.items()}
_STATES = {
    RunState.PENDING: pb.RUN_STATE_PENDING,
    RunState.RUNNING: pb.RUN_STATE_RUNNING,
    RunState.SUCCEEDED: pb.RUN_STATE_SUCCEEDED,
    RunState.FAILED: pb.RUN_STATE_FAILED,
    RunState.CANCELLED: pb.RUN_STATE_CANCELLED,
    RunState.QUEUED: pb.RUN_STATE_QUEUED,
}


def settings_from_pb(msg: pb.CollectionSettings) -> CollectionSettings:
    """Only the fields that are present; an unknown ``long_text`` value is an invalid argument."""
    if msg.long_text and msg.long_text not in _LONG_TEXT:
        raise InvalidArgument(f"long_text must be LONG_TEXT_TRUNCATE or LONG_TEXT_POOL (or unset), got {msg.long_text}")
    return CollectionSettings(
        contamination=msg.contamination if msg.HasField("contamination") else None,
        min_cluster_size=msg.min_cluster_size if msg.HasField("min_cluster_size") else None,
        default_k=msg.default_k if msg.HasField("default_k") else None,
        seed=msg.seed if msg.HasField("seed") else None,
        anomaly_scorer=msg.anomaly_scorer if msg.HasField("anomaly_scorer") else None,
        threshold_mode=msg.threshold_mode if msg.HasField("threshold_mode") else None,
        anomaly_threshold=msg.anomaly_threshold if msg.HasField("anomaly_threshold") else None,
        schedule=schedule_from_pb(msg.schedule) if msg.HasField("schedule") else None,
        long_text=_LONG_TEXT[msg.long_text] if msg.long_text else None,
    )


def schedule_from_pb(msg: pb.Schedule) -> Schedule:
    """A schedule as a whole: unset triggers are off."""
    return Schedule(
        interval_s=msg.interval_s if msg.HasField("interval_s") else None,
        after_changes=msg.after_changes if msg.HasField("after_changes") else None,
        drift_psi=msg.drift_psi if msg.HasField("drift_psi") else None,
        k=msg.k if msg.HasField("k") else None,
        drift_ks=msg.drift_ks if msg.HasField("drift_ks") else None,
        anomaly_ratio=msg.anomaly_ratio if msg.HasField("anomaly_ratio") else None,
        anomaly_rate=msg.anomaly_rate if msg.HasField("anomaly_rate") else None,
        k_max=msg.k_max if msg.HasField("k_max") else None,
    )


def schedule_to_pb(s: Schedule | None) -> pb.Schedule:
    """The effective schedule (off triggers unset)."""
    s = s or Schedule()
    return pb.Schedule(interval_s=s.interval_s, after_changes=s.after_changes, drift_psi=s.drift_psi, k=s.k,
                       drift_ks=s.drift_ks, anomaly_ratio=s.anomaly_ratio, anomaly_rate=s.anomaly_rate,
                       k_max=s.k_max)


def settings_to_pb(s: CollectionSettings) -> pb.CollectionSettings:
    """Effective settings."""
    return pb.CollectionSettings(
        contamination=s.contamination, min_cluster_size=s.min_cluster_size, default_k=s.default_k, seed=s.seed,
        anomaly_scorer=s.anomaly_scorer, threshold_mode=s.threshold_mode, anomaly_threshold=s.anomaly_threshold,
        schedule=schedule_to_pb(s.schedule), long_text=_LONG_TEXT_PB[s.long_text_mode],
    )


def drift_to_pb(d: DriftReport) -> pb.Drift:
    """A drift report (None numbers stay unset; fields the message lacks are not sent)."""
    fields = pb.Drift.DESCRIPTOR.fields_by_name
    values = {k: v for k, v in asdict(d).items() if k in fields and k != "candidates"}
    return pb.Drift(**values, candidates=[
        pb.DriftCandidate(size=c.size, nearest_ids=c.nearest_ids, mean_distance=c.mean_distance,
                          separation=c.separation, keywords=c.keywords) for c in d.candidates])


def attach_spec_from_pb(req: pb.AttachCollectionRequest) -> AttachSpec:
    """An attach request (DISTANCE_UNSPECIFIED = the Qdrant collection's own distance)."""
    if req.distance not in _METRICS:
        raise InvalidArgument(f"distance must be DISTANCE_COSINE or DISTANCE_EUCLID (or unset), got {req.distance}")
    return AttachSpec(
        name=req.name, qdrant_collection=req.qdrant_collection, vector_name=req.vector_name,
        metric=None if req.distance == pb.DISTANCE_UNSPECIFIED else _METRICS[req.distance],  # type: ignore[arg-type]
        field_prefix=req.field_prefix, settings=settings_from_pb(req.settings),
    )


def spec_from_pb(req: pb.CreateCollectionRequest) -> CollectionSpec:
    """A create request; an unknown enum value is an invalid argument."""
    if req.input_kind not in _KINDS:
        raise InvalidArgument(f"input_kind must be one of {', '.join(pb.InputKind.Name(k) for k in _KINDS)}, "
                              f"got {req.input_kind}")
    if req.distance not in _METRICS:
        raise InvalidArgument(f"distance must be DISTANCE_COSINE or DISTANCE_EUCLID, got {req.distance}")
    return CollectionSpec(
        name=req.name, input_kind=_KINDS[req.input_kind], metric=_METRICS[req.distance],  # type: ignore[arg-type]
        embedding_model=req.embedding_model, vector_dim=req.vector_dim,
        store_source=req.store_source if req.HasField("store_source") else True,
        settings=settings_from_pb(req.settings),
        image_spec=image_spec_from_pb(req.image_metadata) if req.HasField("image_metadata") else None,
        event_schema=event_schema_from_pb(req.event_schema) if req.HasField("event_schema") else None,
        embedding_tier=req.embedding_tier or DEFAULT_TIER,
        vector_index=vector_index_from_pb(req.vector_index) if req.HasField("vector_index") else None,
    )


def vector_index_from_pb(msg: pb.VectorIndexSettings) -> VectorIndexSettings:
    """HNSW settings; a field left 0 takes its default (the core validates the rest)."""
    default = VectorIndexSettings()
    return VectorIndexSettings(m=msg.m or default.m, ef_construct=msg.ef_construct or default.ef_construct,
                               ef=msg.ef or default.ef, min_points=msg.min_points or default.min_points,
                               quantization=msg.quantization or default.quantization)


def vector_index_to_pb(index: VectorIndexSettings) -> pb.VectorIndexSettings:
    """The effective HNSW settings."""
    return pb.VectorIndexSettings(m=index.m, ef_construct=index.ef_construct, ef=index.ef, min_points=index.min_points,
                                  quantization=index.quantization)


def index_state_to_pb(state: IndexState) -> pb.VectorIndexState:
    """How much of the collection the index covers."""
    return pb.VectorIndexState(points=state.points, indexed_points=state.indexed_points, building=state.building)


def image_spec_from_pb(msg: pb.ImageMetadataSpec) -> ImageMetadataSpec:
    """An image metadata spec; no text fields listed = all four (the core validates the rest)."""
    default = ImageMetadataSpec()
    return ImageMetadataSpec(
        text_fields=list(msg.text_fields) or default.text_fields, text_attributes=list(msg.text_attributes),
        numeric_attributes=[
            NumericAttribute(key=a.key, low=a.low, high=a.high, log=a.log,
                             weight=a.weight if a.HasField("weight") else 1.0,
                             default_value=a.default_value if a.HasField("default_value") else None)
            for a in msg.numeric_attributes
        ],
    )


def image_spec_to_pb(spec: ImageMetadataSpec) -> pb.ImageMetadataSpec:
    """The effective spec."""
    return pb.ImageMetadataSpec(
        text_fields=spec.text_fields, text_attributes=spec.text_attributes,
        numeric_attributes=[pb.NumericAttribute(key=a.key, low=a.low, high=a.high, log=a.log, weight=a.weight,
                                                default_value=a.default_value)
                            for a in spec.numeric_attributes],
    )


def image_from_pb(msg: pb.ImageMetadata, where: str = "image") -> ImageMetadataInput:
    """Image metadata; attribute numbers arrive as floats (Struct holds doubles)."""
    attributes = _struct_to_dict(msg.attributes, f"{where}: attributes") if msg.HasField("attributes") else {}
    return ImageMetadataInput(title=msg.title, caption=msg.caption, alt_text=msg.alt_text, tags=list(msg.tags),
                              attributes=attributes)


def image_to_pb(image: ImageMetadataInput) -> pb.ImageMetadata:
    """Stored image metadata."""
    msg = pb.ImageMetadata(title=image.title, caption=image.caption, alt_text=image.alt_text, tags=image.tags)
    if image.attributes:
        msg.attributes.update(image.attributes)
    return msg


def collection_to_pb(c: CollectionInfo) -> pb.Collection:
    """A collection with live counts."""
    return pb.Collection(
        name=c.name, input_kind=_KINDS_PB[c.input_kind], distance=_METRICS_PB[c.metric], dim=c.dim,
        embedder=c.embedder, embedder_fingerprint=c.embedder_fingerprint, store_source=c.store_source,
        settings=settings_to_pb(c.settings), point_count=c.point_count,
        served_model_version=c.served_model_version, cluster_count=c.cluster_count,
        anomaly_count=c.anomaly_count, created_at=c.created_at,
        image_metadata=image_spec_to_pb(c.image_spec) if c.image_spec is not None else None,
        event_schema=event_schema_to_pb(c.event_schema) if c.event_schema is not None else None,
        featurizer_version=c.featurizer_version, featurizer_provisional=c.featurizer_provisional,
        attached=pb.AttachedSource(qdrant_collection=c.attached.qdrant_collection,
                                   vector_name=c.attached.vector_name, field_prefix=c.attached.field_prefix)
        if c.attached is not None else None,
        active_run=run_to_pb(c.active_run) if c.active_run is not None else None,
        last_run=run_to_pb(c.last_run) if c.last_run is not None else None,
        embedding_tier=c.embedding_tier,
        vector_index=vector_index_to_pb(c.vector_index) if c.vector_index is not None else None,
        index_state=index_state_to_pb(c.index_state) if c.index_state is not None else None,
    )


def _struct_to_dict(msg: struct_pb2.Struct, where: str) -> dict[str, Any]:
    """A Struct as a dict; a NaN or infinite number (JSON has none) is INVALID_ARGUMENT naming its key."""
    try:
        return json_format.MessageToDict(msg)
    except ValueError:
        key = _non_finite_key(msg)
        if key is None:
            raise
        raise InvalidArgument(f"{where}: {shown(key)} is not a finite number; NaN and infinity cannot be stored") from None


def _non_finite_key(value: Any, path: str = "") -> str | None:
    """The dotted key (``[i]`` for list items) of the first non-finite number in a Struct/Value/ListValue."""
    if isinstance(value, struct_pb2.Struct):
        for key, item in value.fields.items():
            found = _non_finite_key(item, f"{path}.{key}" if path else key)
            if found is not None:
                return found
    elif isinstance(value, struct_pb2.ListValue):
        for i, item in enumerate(value.values):
            found = _non_finite_key(item, f"{path}[{i}]")
            if found is not None:
                return found
    elif isinstance(value, struct_pb2.Value):
        kind = value.WhichOneof("kind")
        if kind == "number_value" and not math.isfinite(value.number_value):
            return path
        if kind in ("struct_value", "list_value"):
            return _non_finite_key(getattr(value, kind), path)
    return None


def _dict_to_struct(data: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(data)
    return out


def vector_from_pb(msg: pb.Vector, where: str) -> np.ndarray | list[float]:
    """``f32`` bytes (zero-copy view) or ``values``; the core validates dimension and values."""
    packed = msg.f32  # each attribute read builds a new object: read once
    if packed:
        if len(msg.values):
            raise InvalidArgument(f"{where}: vector has both values and f32; send one")
        if len(packed) % 4:
            raise InvalidArgument(f"{where}: vector f32 has {len(packed)} bytes, not a multiple of 4")
        return np.frombuffer(packed, dtype="<f4")
    return list(msg.values)


def items_from_pb(items: Any) -> list[ItemInput]:
    """Items as the core takes them."""
    out = []
    for i, it in enumerate(items):
        which = it.WhichOneof("content")
        out.append(
            ItemInput(
                id=it.id,
                text=it.text if which == "text" else None,
                vector=vector_from_pb(it.vector, f"item {i}") if which == "vector" else None,
                metadata=_struct_to_dict(it.metadata, f"item {i}: metadata") if it.HasField("metadata") else None,
                image=image_from_pb(it.image, f"item {i}") if which == "image" else None,
                event=event_from_pb(it.event, f"item {i}") if which == "event" else None,
            )
        )
    return out


def assignment_to_pb(a: Assignment) -> pb.Assignment:
    """The five fields."""
    return pb.Assignment(
        cluster_id=a.cluster_id, cluster_distance=a.cluster_distance, anomaly_score=a.anomaly_score,
        is_anomaly=a.is_anomaly, model_version=a.model_version,
    )


def point_to_pb(p: PointView) -> pb.Point:
    """A stored point."""
    msg = pb.Point(point_id=p.point_id, external_id=p.external_id, text=p.text,
                   metadata=_dict_to_struct(p.metadata), relabelling=p.relabelling)
    if p.assignment is not None:
        msg.assignment.CopyFrom(assignment_to_pb(p.assignment))
    if p.vector is not None:
        msg.vector.values.extend(p.vector)
    if p.image is not None:
        msg.image.CopyFrom(image_to_pb(p.image))
    if p.source is not None:
        msg.source.CopyFrom(_dict_to_struct(_finite(p.source)))
    return msg


def run_request_from_pb(req: pb.StartClusteringRequest) -> RunRequest:
    """k, a k range, or neither (the collection's default k)."""
    which = req.WhichOneof("k_spec")
    return RunRequest(
        k=req.k if which == "k" else None,
        k_range=(req.k_range.min, req.k_range.max) if which == "k_range" else None,
        seed=req.seed if req.HasField("seed") else None, sample_size=req.sample_size, n_init=req.n_init,
    )


def run_to_pb(r: RunInfo) -> pb.ClusteringRun:
    """A run's state."""
    return pb.ClusteringRun(
        run_id=r.run_id, collection=r.collection, state=_STATES[r.state], phase=r.phase, progress=r.progress,
        error=r.error, model_version=r.model_version, k=r.k,
        k_scores=[pb.KScore(k=int(s["k"]), silhouette=s["silhouette"], inertia=s["inertia"],
                            davies_bouldin=s["davies_bouldin"], calinski_harabasz=s["calinski_harabasz"],
                            knee=bool(s["knee"]), mean_rank=s["mean_rank"], chosen=bool(s["chosen"]))
                  for s in r.k_scores],
        created_at=r.created_at, finished_at=r.finished_at, points_labelled=r.points_labelled,
        trigger=r.trigger, trigger_detail=r.trigger_detail, attempt=r.attempt,
        waiting_for_run_id=r.waiting_for, waiting_for_trigger=r.waiting_for_trigger,
        label_changes=label_changes_to_pb(r.label_changes),
    )


def cluster_to_pb(c: ClusterInfo, model_version: int) -> pb.Cluster:
    """One cluster of the served version ``model_version``, with its summary if the version has one."""
    return pb.Cluster(cluster_id=c.cluster_id, size=c.size, radius=c.radius, anomaly_count=c.anomaly_count,
                      populated=c.populated,
                      summary=summary_to_pb(c.summary, model_version) if c.summary is not None else None)


def _finite(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (Struct cannot carry them)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _fit_to_pb(f: dict[str, Any]) -> pb.AnomalyFit:
    return pb.AnomalyFit(k=int(f.get("k", 0)), small_clusters=int(f.get("small_clusters", 0)),
                         small_share=float(f.get("small_share", 0.0)))


def anomaly_model_to_pb(a: dict[str, Any]) -> pb.AnomalyModel | None:
    """A model version's anomaly summary (``metrics["anomaly"]``); None for versions saved before it existed."""
    if not a:
        return None
    return pb.AnomalyModel(
        scorer=str(a.get("scorer", "")), small_clusters=int(a.get("small_clusters", 0)),
        small_share=float(a.get("small_share", 0.0)), degenerate=bool(a.get("degenerate", False)),
        fits=[_fit_to_pb(f) for f in a.get("components", [])],
        grouping=_fit_to_pb(a["grouping"]) if a.get("grouping") else None,
    )


def model_to_pb(m: ModelInfo, *, with_summaries: bool = True) -> pb.Model:
    """A model version; ``with_summaries`` False leaves the cluster summaries out (ListModels)."""
    return pb.Model(version=m.version, k=m.k, served=m.served, created_at=m.created_at, cluster_ids=m.cluster_ids,
                    params=_dict_to_struct(_finite(m.params)), metrics=_dict_to_struct(_finite(m.metrics)),
                    anomaly=anomaly_model_to_pb(m.metrics.get("anomaly") or {}),
                    summaries=summaries_to_pb(m.summaries, m.version) if with_summaries else [],
                    label_changes=label_changes_to_pb(m.summaries.label_changes) if m.summaries is not None else [],
                    events=[cluster_event_to_pb(e) for e in m.events])


def cluster_event_to_pb(e: ClusterEvent) -> pb.ClusterEvent:
    """One cluster life-cycle event."""
    return pb.ClusterEvent(kind=pb.ClusterEventKind.Value(f"CLUSTER_EVENT_KIND_{e.kind}"), cluster_id=e.cluster_id,
                           related_ids=list(e.related_ids), size_before=e.size_before, size_after=e.size_after,
                           share_before=e.share_before, share_after=e.share_after, model_version=e.model_version,
                           previous_version=e.previous_version, full_pass=e.full_pass)


def hit_to_pb(h: SearchHit) -> pb.SearchHit:
    """One search hit."""
    return pb.SearchHit(point=point_to_pb(h.point), score=h.score)


def group_to_pb(g: SearchGroup) -> pb.SearchGroup:
    """One cluster's hits in a search grouped by cluster."""
    return pb.SearchGroup(cluster_id=g.cluster_id, label=g.label, hits=[hit_to_pb(h) for h in g.hits])


def item_result_to_pb(r: ItemResult) -> pb.ItemResult:
    """Where an ingested item went."""
    return pb.ItemResult(point_id=r.point_id, external_id=r.external_id,
                         assignment=assignment_to_pb(r.assignment) if r.assignment else None, truncated=r.truncated,
                         embedding_reused=r.embedding_reused)


def ingest_response_to_pb(results: Sequence[ItemResult]) -> pb.IngestResponse:
    """An ingest's results, in request order, and how many of them were truncated or reused their vector."""
    return pb.IngestResponse(results=[item_result_to_pb(r) for r in results],
                             truncated_count=sum(r.truncated for r in results),
                             embedding_reused_count=sum(r.embedding_reused for r in results))


def explanation_to_pb(e: Explanation) -> pb.Explanation:
    """Why a point is (or is not) flagged."""
    return pb.Explanation(
        point=point_to_pb(e.point), model_version=e.model_version, scorer=e.scorer, cluster_id=e.cluster_id,
        distance=e.distance, cluster_radius=e.cluster_radius, distance_in_radii=e.distance_in_radii,
        reference_cluster_id=e.reference_cluster_id, reference_distance=e.reference_distance,
        reference_radius=e.reference_radius, anomaly_score=e.anomaly_score, threshold=e.threshold,
        is_anomaly=e.is_anomaly, normal_neighbours=[hit_to_pb(h) for h in e.normal_neighbours],
        anomaly_model=anomaly_model_to_pb(e.anomaly_model),
        field_contributions=[pb.FieldContribution(field=c.field, share=c.share, distance=c.distance)
                             for c in e.field_contributions],
    )


def snapshot_to_pb(s: SnapshotSummary) -> pb.SnapshotSummary:
    """An export's or import's summary."""
    return pb.SnapshotSummary(
        collection=s.collection, source_collection=s.source_collection, path=s.path, points=s.points,
        models=s.models, bytes=s.bytes, sha256=s.sha256, served_model_version=s.served_model_version,
        seconds=s.seconds,
    )


def report_to_pb(r: RenderedReport) -> pb.CollectionReport:
    """A rendered cluster report."""
    return pb.CollectionReport(
        collection=r.collection, model_version=r.model_version, html=r.html, points_drawn=r.points_drawn,
        point_count=r.point_count, anomalies_drawn=r.anomalies_drawn, clusters=r.clusters,
        labelled_clusters=r.labelled_clusters, versions=r.versions, k_curves=r.k_curves, summaries=r.summaries,
        generated_at=r.generated_at, seconds=r.seconds,
    )
