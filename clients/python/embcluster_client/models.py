"""What :class:`~embcluster_client.Client` returns: frozen dataclasses, one per protobuf message.

Each model has the fields of its message, under the same names (see
``proto/embcluster/v1/embcluster.proto`` for what they mean), as plain Python values:

- enums are :mod:`embcluster_client.enums` members (``RunState.SUCCEEDED``, shown by name);
- ``google.protobuf.Struct`` fields (metadata, source, attributes, params, metrics) are dicts of
  plain JSON values; numbers without a fraction come back as ``int`` (a Struct holds doubles);
- RFC 3339 strings (``created_at``, ``finished_at``) are timezone-aware ``datetime``\\ s in UTC;
- a vector is a ``list[float]``;
- a field the message may leave unset (a proto3 ``optional`` scalar, or a message field that is
  absent by design, like a point's ``assignment`` before it is labelled) is ``None`` when unset.

Every model keeps the message it was read from as ``proto`` (left out of ``==`` and ``repr``),
so nothing of the wire format is out of reach. Messages that only wrap a list are returned as the
list (``list_collections``), or as a model that is iterable over it (:class:`PointPage`,
:class:`ClusterList`). The conversion is :mod:`embcluster_client.convert`.
"""

from __future__ import annotations

from dataclasses import field
from datetime import datetime
from typing import Any, Iterator

from embcluster.api.v1 import embcluster_pb2 as pb

from ._model_base import model_class, proto_field
from .enums import ClusterEventKind, Distance, EventFieldType, InputKind, LongText, RunState, SummaryKind
from .lifecycle_models import ClusterEvent
from .summary_models import ClusterLabelChange, ClusterSummary, SummaryField, SummaryKeyword, SummaryRepresentative

__all__ = [
    "InputKind",
    "Distance",
    "EventFieldType",
    "RunState",
    "SummaryKind",
    "ClusterEventKind",
    "ClusterEvent",
    "Schedule",
    "CollectionSettings",
    "NumericAttribute",
    "ImageMetadataSpec",
    "EventField",
    "EventSchema",
    "AttachedSource",
    "VectorIndexSettings",
    "VectorIndexState",
    "Collection",
    "ImageMetadata",
    "Assignment",
    "ItemResult",
    "Point",
    "PointPage",
    "KScore",
    "ClusteringRun",
    "DriftCandidate",
    "ClusterLabelChange",
    "SummaryKeyword",
    "SummaryField",
    "SummaryRepresentative",
    "ClusterSummary",
    "Cluster",
    "ClusterList",
    "Drift",
    "AnomalyFit",
    "AnomalyModel",
    "Model",
    "FieldContribution",
    "SearchHit",
    "SearchGroup",
    "Explanation",
    "InferredSchema",
    "IngestAck",
    "SnapshotSummary",
    "CollectionReport",
]

_model = model_class
_proto = proto_field


# Collections.


@_model
class Schedule:
    """When a collection re-clusters by itself; a trigger is off while None."""

    interval_s: float | None
    after_changes: int | None
    drift_psi: float | None
    k: int | None
    drift_ks: float | None
    anomaly_ratio: float | None
    anomaly_rate: float | None
    k_max: int | None  # a drift run may add clusters up to this k
    proto: pb.Schedule = _proto()


@_model
class CollectionSettings:
    """The settings that may change after creation (in a ``Collection``: the effective values)."""

    contamination: float | None
    min_cluster_size: int | None
    default_k: int | None
    seed: int | None
    anomaly_scorer: str | None
    threshold_mode: str | None
    anomaly_threshold: float | None
    schedule: Schedule | None
    long_text: LongText  # fixed at creation
    proto: pb.CollectionSettings = _proto()


@_model
class NumericAttribute:
    """An image attribute appended to the embedding as one scaled feature."""

    key: str
    low: float
    high: float
    log: bool
    weight: float | None
    default_value: float | None
    proto: pb.NumericAttribute = _proto()


@_model
class ImageMetadataSpec:
    """Which image metadata fields an IMAGE_METADATA collection renders and embeds."""

    text_fields: list[str]
    text_attributes: list[str]
    numeric_attributes: list[NumericAttribute]
    proto: pb.ImageMetadataSpec = _proto()


@_model
class EventField:
    """One typed field of an EVENT collection."""

    name: str
    type: EventFieldType
    weight: float
    required: bool
    log: bool
    clip: float
    buckets: int
    proto: pb.EventField = _proto()


@_model
class EventSchema:
    """The typed fields of an EVENT collection (``entity_key`` set: one profile per entity)."""

    fields: list[EventField]
    entity_key: str
    window_days: float
    max_profile_events: int
    proto: pb.EventSchema = _proto()


@_model
class AttachedSource:
    """The existing Qdrant collection behind an attached collection."""

    qdrant_collection: str
    vector_name: str
    field_prefix: str
    proto: pb.AttachedSource = _proto()


@_model
class VectorIndexSettings:
    """The HNSW vector index of a collection (``m``, ``ef_construct``, ``ef``, ``min_points``, ``quantization``)."""

    m: int
    ef_construct: int
    ef: int
    min_points: int
    quantization: str
    proto: pb.VectorIndexSettings = _proto()


@_model
class VectorIndexState:
    """How much of a collection the vector index covers, and whether a build runs."""

    points: int
    indexed_points: int
    building: bool
    proto: pb.VectorIndexState = _proto()


@_model
class Collection:
    """A collection with its effective settings and counts."""

    name: str
    input_kind: InputKind
    distance: Distance
    dim: int
    embedder: str
    embedder_fingerprint: str
    store_source: bool
    settings: CollectionSettings
    point_count: int
    served_model_version: int  # 0 = no model yet
    cluster_count: int
    anomaly_count: int
    created_at: datetime | None
    image_metadata: ImageMetadataSpec | None  # IMAGE_METADATA collections
    event_schema: EventSchema | None  # EVENT collections
    featurizer_version: int
    featurizer_provisional: bool
    attached: AttachedSource | None  # collections made by attach_collection
    active_run: ClusteringRun | None  # the run in progress (or queued), if any
    last_run: ClusteringRun | None  # the newest run that ended, if any
    embedding_tier: str  # how its text model runs: full, onnx-int8, static, model_dir or gpu
    vector_index: VectorIndexSettings | None  # the HNSW settings (None for an attached collection)
    index_state: VectorIndexState | None
    proto: pb.Collection = _proto()


# Points.


@_model
class ImageMetadata:
    """Metadata of one image (no pixels)."""

    title: str
    caption: str
    alt_text: str
    tags: list[str]
    attributes: dict[str, Any]
    proto: pb.ImageMetadata = _proto()


@_model
class Assignment:
    """The five fields the service writes onto a point."""

    cluster_id: int
    cluster_distance: float
    anomaly_score: float
    is_anomaly: bool
    model_version: int
    proto: pb.Assignment = _proto()


@_model
class ItemResult:
    """One ingested item: its point id and, once the collection has a model, its assignment."""

    point_id: str
    external_id: str
    assignment: Assignment | None
    truncated: bool  # the text was longer than what was embedded of it
    embedding_reused: bool  # unchanged re-ingest (same id and content): the stored vector was kept
    proto: pb.ItemResult = _proto()


@_model
class Point:
    """A stored point."""

    point_id: str
    external_id: str
    metadata: dict[str, Any]
    text: str
    assignment: Assignment | None  # None until the point is labelled
    vector: list[float] | None  # only when asked for
    image: ImageMetadata | None  # IMAGE_METADATA collections
    source: dict[str, Any] | None  # EVENT collections: the stored event or profile
    relabelling: bool
    proto: pb.Point = _proto()


@_model
class PointPage:
    """One page of points (iterate over it for its points); ``next_page_token`` is "" on the last."""

    points: list[Point]
    next_page_token: str
    proto: pb.ListPointsResponse = _proto()

    def __iter__(self) -> Iterator[Point]:
        return iter(self.points)

    def __len__(self) -> int:
        return len(self.points)


# Clustering.


@_model
class KScore:
    """One candidate k of a k range, with the scores of its rank vote."""

    k: int
    silhouette: float
    inertia: float
    davies_bouldin: float
    calinski_harabasz: float
    knee: bool
    mean_rank: float
    chosen: bool
    proto: pb.KScore = _proto()


@_model
class ClusteringRun:
    """A clustering run (also a featurizer refit or a rollback)."""

    run_id: str
    collection: str
    state: RunState
    phase: str
    progress: float
    error: str
    model_version: int
    k: int
    k_scores: list[KScore]
    created_at: datetime | None
    finished_at: datetime | None  # None while it runs
    points_labelled: int
    trigger: str
    trigger_detail: str  # what an automatic trigger saw ("" for a manual run)
    attempt: int
    waiting_for_run_id: str  # QUEUED: the automatic run it waits for
    waiting_for_trigger: str  # QUEUED: that run's trigger
    label_changes: list[ClusterLabelChange]  # SUCCEEDED: the persisting clusters it renamed
    proto: pb.ClusteringRun = _proto()


@_model
class Cluster:
    """One cluster of the served model (``summary``: what it is; None when the version has none)."""

    cluster_id: int
    size: int
    radius: float
    anomaly_count: int
    populated: bool
    summary: ClusterSummary | None
    proto: pb.Cluster = _proto()


@_model
class ClusterList:
    """The served model's clusters (iterate over it for them) and what the sizes count."""

    model_version: int
    clusters: list[Cluster]
    provisional: bool
    point_count: int
    proto: pb.ListClustersResponse = _proto()

    def __iter__(self) -> Iterator[Cluster]:
        return iter(self.clusters)

    def __len__(self) -> int:
        return len(self.clusters)


@_model
class DriftCandidate:
    """A group of recent anomalies that a run could make a cluster (``Drift.candidates``)."""

    size: int
    nearest_ids: list[str]
    mean_distance: float
    separation: float
    keywords: list[str]
    proto: pb.DriftCandidate = _proto()


@_model
class Drift:
    """How far a collection has moved from its served model; None = not measurable yet."""

    collection: str
    model_version: int
    previous_version: int
    recent_points: int
    psi_shares: float | None
    psi_versions: float | None
    centroid_shift_mean: float | None
    centroid_shift_max: float | None
    distance_p50_fit: float | None
    distance_p90_fit: float | None
    distance_p50_recent: float | None
    distance_p90_recent: float | None
    distance_ks: float | None
    anomaly_rate_fit: float | None
    anomaly_rate_recent: float | None
    candidates: list[DriftCandidate]  # groups forming among the recent anomalies, largest first
    proto: pb.Drift = _proto()


# Models and anomalies.


@_model
class AnomalyFit:
    """How one k-means fit of the anomaly scorer splits its fit sample."""

    k: int
    small_clusters: int
    small_share: float
    proto: pb.AnomalyFit = _proto()


@_model
class AnomalyModel:
    """Whether the anomaly scorer has small (rare) clusters to measure against the bulk."""

    scorer: str
    small_clusters: int
    small_share: float
    degenerate: bool
    fits: list[AnomalyFit]
    grouping: AnomalyFit | None
    proto: pb.AnomalyModel = _proto()


@_model
class Model:
    """A saved model version: parameters and metrics as dicts."""

    version: int
    k: int
    served: bool
    created_at: datetime | None
    cluster_ids: list[int]
    params: dict[str, Any]
    metrics: dict[str, Any]
    anomaly: AnomalyModel | None
    summaries: list[ClusterSummary]  # get_model only; [] from list_models and for versions without
    label_changes: list[ClusterLabelChange]
    events: list[ClusterEvent]  # against params["previous_version"]; [] for versions saved before events
    proto: pb.Model = _proto()


@_model
class FieldContribution:
    """One event field's part of a point's distance to its reference centroid."""

    field: str
    share: float
    distance: float
    proto: pb.FieldContribution = _proto()


@_model
class SearchHit:
    """A point found by ``search`` and its score (cosine similarity or euclidean distance)."""

    point: Point
    score: float
    proto: pb.SearchHit = _proto()


@_model
class SearchGroup:
    """One cluster's best hits in ``search_groups``: its id, its label ("" without summaries), its hits."""

    cluster_id: int
    label: str
    hits: list[SearchHit]
    proto: pb.SearchGroup = _proto()

    def __iter__(self) -> Iterator[SearchHit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)


@_model
class Explanation:
    """Why a point is (or is not) flagged."""

    point: Point
    model_version: int
    scorer: str
    cluster_id: int
    distance: float
    cluster_radius: float
    distance_in_radii: float
    reference_cluster_id: int
    reference_distance: float
    reference_radius: float
    anomaly_score: float
    threshold: float
    is_anomaly: bool
    normal_neighbours: list[SearchHit]
    anomaly_model: AnomalyModel | None
    field_contributions: list[FieldContribution]
    proto: pb.Explanation = _proto()


# Events, feeds and snapshots.


@_model
class InferredSchema:
    """An ``EventSchema`` proposed from sample events, with one note per field."""

    schema: EventSchema
    notes: list[str]
    proto: pb.InferSchemaResponse = _proto()


@_model
class IngestAck:
    """The acknowledgement of one batch of ``ingest_stream``.

    ``error_code`` is "" on success, else a status code name (e.g. ``"INVALID_ARGUMENT"``) and
    nothing of the batch was stored; ``errors.from_status(ack.error_code, ack.error_message)``
    makes the matching exception.
    """

    sequence: int
    results: list[ItemResult]
    error_code: str
    error_message: str
    proto: pb.IngestStreamResponse = _proto()

    @property
    def ok(self) -> bool:
        """The batch was stored."""
        return not self.error_code


@_model
class SnapshotSummary:
    """What an export wrote or an import read."""

    collection: str
    source_collection: str
    path: str
    points: int
    models: int
    bytes: int
    sha256: str
    served_model_version: int
    seconds: float
    proto: pb.SnapshotSummary = _proto()


# Look.


@_model
class CollectionReport:
    """A collection's cluster report: ``html`` is one self-contained HTML document (UTF-8 bytes)."""

    collection: str
    model_version: int
    html: bytes = field(repr=False)
    points_drawn: int
    point_count: int
    anomalies_drawn: int
    clusters: int
    labelled_clusters: int
    versions: int
    k_curves: bool
    summaries: bool
    generated_at: datetime | None
    seconds: float
    proto: pb.CollectionReport = _proto()
