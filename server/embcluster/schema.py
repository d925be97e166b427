"""Plain data types of the core API (what the gRPC layer converts to and from)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Sequence, Union

import numpy as np

from .anomaly.explain import FieldContribution
from .cluster.lifecycle import ClusterEvent
from .embed.long_text import DEFAULT_LONG_TEXT
from .insight.summary import ClusterSummary, RunSummaries
from .store.base import IndexState, Metric, VectorIndexSettings

if TYPE_CHECKING:
    from .embed.events import EventSchema

__all__ = [
    "InputKind",
    "VectorLike",
    "Schedule",
    "CollectionSettings",
    "CollectionSpec",
    "CollectionInfo",
    "AttachedSource",
    "AttachSpec",
    "ItemInput",
    "Assignment",
    "ItemResult",
    "PointView",
    "ClusterInfo",
    "ClusterDetail",
    "RunState",
    "RunInfo",
    "RunRequest",
    "SearchHit",
    "SearchGroup",
    "ModelInfo",
    "Explanation",
    "DriftReport",
    "DriftCandidate",
    "IMAGE_TEXT_FIELDS",
    "ImageMetadataInput",
    "NumericAttribute",
    "ImageMetadataSpec",
]

InputKind = Literal["text", "vector", "image_metadata", "event"]
VectorLike = Union[Sequence[float], np.ndarray]

IMAGE_TEXT_FIELDS = ("title", "caption", "alt_text", "tags")
"""The text fields of image metadata, in their default rendering order."""


@dataclass
class ImageMetadataInput:
    """Metadata of one image (no pixels): text fields, tags and free-form attributes."""

    title: str = ""
    caption: str = ""
    alt_text: str = ""
    tags: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)  # camera, colours, dimensions, ...

    def to_json(self) -> dict[str, Any]:
        """JSON form (what a point keeps under ``source.image``)."""
        return {"title": self.title, "caption": self.caption, "alt_text": self.alt_text,
                "tags": list(self.tags), "attributes": dict(self.attributes)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ImageMetadataInput":
        """Inverse of :meth:`to_json` (missing keys take their defaults)."""
        return cls(title=data.get("title", ""), caption=data.get("caption", ""), alt_text=data.get("alt_text", ""),
                   tags=list(data.get("tags") or []), attributes=dict(data.get("attributes") or {}))


@dataclass
class NumericAttribute:
    """A numeric image attribute appended as one feature: ``weight * (t(x) - t(low)) / (t(high) - t(low))``.

    ``t`` is ``log1p`` when ``log`` is set, else the identity. No fit is needed; values outside
    ``[low, high]`` are not clipped. ``default_value`` stands in for a missing attribute (None =
    the attribute is required).
    """

    key: str
    low: float
    high: float
    log: bool = False
    weight: float = 1.0
    default_value: float | None = None


@dataclass
class ImageMetadataSpec:
    """Which image metadata an IMAGE_METADATA collection renders and embeds (see ``embed/image.py``)."""

    text_fields: list[str] = field(default_factory=lambda: list(IMAGE_TEXT_FIELDS))
    text_attributes: list[str] = field(default_factory=list)
    numeric_attributes: list[NumericAttribute] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON form (kept in the collection record)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ImageMetadataSpec":
        """Inverse of :meth:`to_json`."""
        return cls(text_fields=list(data["text_fields"]), text_attributes=list(data["text_attributes"]),
                   numeric_attributes=[NumericAttribute(**a) for a in data["numeric_attributes"]])


@dataclass
class Schedule:
    """When a collection re-clusters by itself; each trigger is off while None.

    A schedule is set and replaced as a whole: an update that carries a schedule replaces the
    previous one, so ``Schedule()`` (every trigger None) switches re-clustering by itself off.
    """

    interval_s: float | None = None  # re-cluster every this many seconds
    after_changes: int | None = None  # ... after this many new, changed or deleted points
    drift_psi: float | None = None  # ... when the recent ingests' cluster-share PSI exceeds this
    k: int | None = None  # k of a scheduled run (None = the collection's default_k)
    # Novelty triggers (see embcluster.scheduler): the recent cluster_distance KS statistic, the
    # recent anomaly rate as a multiple of the fit sample's, the recent anomaly rate itself.
    drift_ks: float | None = None
    anomaly_ratio: float | None = None
    anomaly_rate: float | None = None
    # A drift-triggered run may add clusters for new groups of far points, up to this k; every
    # scheduled run keeps the clusters added so far (None = k is fixed).
    k_max: int | None = None

    @property
    def active(self) -> bool:
        """True if any trigger is on."""
        return self.interval_s is not None or self.after_changes is not None or self.drift_active

    @property
    def drift_active(self) -> bool:
        """True if any drift trigger (share PSI, distance KS, anomaly rate) is on."""
        return (self.drift_psi is not None or self.drift_ks is not None or self.anomaly_ratio is not None
                or self.anomaly_rate is not None)


@dataclass
class CollectionSettings:
    """Mutable per-collection settings (None in an update = leave unchanged)."""

    contamination: float | None = None
    min_cluster_size: int | None = None
    default_k: int | None = None
    seed: int | None = None
    anomaly_scorer: str | None = None  # ensemble | cblof | normalized | distance
    threshold_mode: str | None = None  # contamination | cluster_quantile | absolute
    anomaly_threshold: float | None = None  # the score threshold of the absolute mode
    schedule: Schedule | None = None  # replaced as a whole when given (see :class:`Schedule`)
    # truncate | pool: how texts longer than the model's window are embedded (fixed at creation;
    # None in a record written before this setting existed = truncate). See embed/long_text.py.
    long_text: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.schedule, dict):  # from JSON / asdict()
            self.schedule = Schedule(**self.schedule)

    @classmethod
    def defaults(cls) -> "CollectionSettings":
        """Effective values for a new collection (``anomaly_threshold`` stays unset, no schedule)."""
        return cls(contamination=0.01, min_cluster_size=3, default_k=8, seed=0, anomaly_scorer="ensemble",
                   threshold_mode="contamination", schedule=Schedule(), long_text=DEFAULT_LONG_TEXT)

    @property
    def long_text_mode(self) -> str:
        """The effective ``long_text`` (records older than the setting: truncate)."""
        return self.long_text or DEFAULT_LONG_TEXT

    def merged(self, update: "CollectionSettings") -> "CollectionSettings":
        """A copy with every non-None field of ``update`` applied."""
        values = asdict(self)
        values.update({k: v for k, v in asdict(update).items() if v is not None})
        return CollectionSettings(**values)


@dataclass
class CollectionSpec:
    """What a caller asks for when creating a collection."""

    name: str
    input_kind: InputKind = "text"
    metric: Metric = "cosine"
    embedding_model: str = ""  # tier model_dir: the model's directory
    vector_dim: int = 0  # VECTOR: required; TEXT, IMAGE_METADATA: 0 or the dimension the model must have
    embedding_tier: str = "full"  # see embcluster.embed.tiers (checked at creation)
    store_source: bool = True
    settings: CollectionSettings = field(default_factory=CollectionSettings)
    image_spec: ImageMetadataSpec | None = None  # IMAGE_METADATA (None = the default spec)
    event_schema: EventSchema | None = None  # EVENT (required there)
    vector_index: VectorIndexSettings | None = None  # the HNSW index (None = the defaults; fixed at creation)


@dataclass
class AttachedSource:
    """The existing Qdrant collection an attached collection clusters."""

    qdrant_collection: str
    vector_name: str = ""  # "" = the collection's unnamed vector
    field_prefix: str = ""  # the five reserved fields are stored as <prefix><name>


@dataclass
class AttachSpec:
    """What a caller asks for when attaching an existing Qdrant collection (``store=qdrant``)."""

    name: str
    qdrant_collection: str
    vector_name: str = ""  # required when the collection has several named vectors
    metric: Metric | None = None  # None = the collection's own distance; given = must match it
    field_prefix: str = ""
    settings: CollectionSettings = field(default_factory=CollectionSettings)


@dataclass
class CollectionInfo:
    """A collection as reported to callers."""

    name: str
    input_kind: InputKind
    metric: Metric
    dim: int
    embedder: str
    embedder_fingerprint: str
    store_source: bool
    settings: CollectionSettings
    point_count: int
    served_model_version: int
    cluster_count: int
    anomaly_count: int
    created_at: str
    image_spec: ImageMetadataSpec | None = None  # IMAGE_METADATA: the effective spec
    attached: "AttachedSource | None" = None  # set when the collection is an attached Qdrant collection
    event_schema: EventSchema | None = None  # EVENT: the schema
    featurizer_version: int = 0  # EVENT: the version every stored vector was written with
    featurizer_provisional: bool = False  # EVENT: fitted on the first batch only
    active_run: "RunInfo | None" = None  # the run in progress, if any
    last_run: "RunInfo | None" = None  # the newest run that ended, if any
    embedding_tier: str = "full"  # how its text model runs (embcluster.embed.tiers)
    vector_index: VectorIndexSettings | None = None  # the HNSW settings (None: an attached collection's own)
    index_state: IndexState | None = None  # how much of it the index covers, whether a build runs


@dataclass
class ItemInput:
    """One item to ingest or classify: text or a vector, plus the caller's id and metadata."""

    id: str = ""
    text: str | None = None
    vector: VectorLike | None = None
    metadata: dict[str, Any] | None = None
    image: ImageMetadataInput | None = None  # IMAGE_METADATA collections
    event: dict[str, Any] | None = None  # EVENT collections: field -> number/str/bool/datetime


@dataclass
class Assignment:
    """The five fields the service writes onto a point."""

    cluster_id: int
    cluster_distance: float
    anomaly_score: float
    is_anomaly: bool
    model_version: int

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "Assignment | None":
        """The assignment stored in a point's payload, if it has one."""
        if "model_version" not in payload:
            return None
        return cls(
            cluster_id=int(payload["cluster_id"]), cluster_distance=float(payload["cluster_distance"]),
            anomaly_score=float(payload["anomaly_score"]), is_anomaly=bool(payload["is_anomaly"]),
            model_version=int(payload["model_version"]),
        )


@dataclass
class ItemResult:
    """Where an ingested item went."""

    point_id: str
    external_id: str
    assignment: Assignment | None
    truncated: bool = False  # the item's text was longer than what its embedding read
    embedding_reused: bool = False  # unchanged re-ingest: the stored vector was kept, nothing embedded


@dataclass
class PointView:
    """A stored point as reported to callers."""

    point_id: str
    external_id: str
    metadata: dict[str, Any]
    text: str
    assignment: Assignment | None
    vector: list[float] | None = None
    image: ImageMetadataInput | None = None  # IMAGE_METADATA: the stored source (``text`` is its rendering)
    source: dict[str, Any] | None = None  # EVENT: the stored event fields, or a profile's aggregates
    relabelling: bool = False  # stored fields of another version: ``assignment`` is the served one's, computed


@dataclass
class ClusterInfo:
    """One cluster of the served model."""

    cluster_id: int
    size: int
    radius: float
    anomaly_count: int
    populated: bool
    summary: ClusterSummary | None = None  # the served version's summary of it (None: none stored)


@dataclass
class ClusterDetail:
    """One cluster of a model version, as the run that fitted it summarised it (``GetCluster``)."""

    model_version: int
    summary: ClusterSummary
    summarized: bool  # False: the version has no summaries; ``summary`` holds its own figures only


@dataclass
class ClusterListing:
    """The served model's clusters; sizes count points carrying its fields (see docs/architecture.md)."""

    version: int
    clusters: list[ClusterInfo]
    provisional: bool  # the sizes do not add up to point_count (points are being relabelled)
    point_count: int


class RunState(str, enum.Enum):
    """Life cycle of a clustering run: [QUEUED ->] PENDING -> RUNNING -> SUCCEEDED | FAILED | CANCELLED.

    QUEUED: a run asked for by hand while an automatic one was active; it starts when that one
    ends (see :meth:`embcluster.runs.RunManager.start`).
    """

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    QUEUED = "queued"

    @property
    def finished(self) -> bool:
        """True once the run can no longer change."""
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


@dataclass
class RunRequest:
    """Parameters of a clustering run, validated."""

    k: int | None = None
    k_range: tuple[int, int] | None = None
    seed: int | None = None
    sample_size: int = 0
    n_init: int = 0
    rollback_to: int = 0  # a rollback run: serve this saved version again (no fit)
    refit_featurizer: bool = False  # an EVENT featurizer refit (then a re-cluster if a model is served)
    grow_to: int = 0  # a drift-triggered run: add clusters for new groups of far points, up to this k


@dataclass
class RunInfo:
    """A clustering run's state, persisted as JSON beside the collection."""

    run_id: str
    collection: str
    state: RunState
    request: RunRequest
    phase: str = "pending"
    progress: float = 0.0
    error: str = ""
    model_version: int = 0
    k: int = 0
    k_scores: list[dict[str, float]] = field(default_factory=list)
    created_at: str = ""
    finished_at: str = ""
    points_labelled: int = 0
    trigger: str = "manual"  # manual | interval | changes | drift | restart
    # What the trigger saw, e.g. "distance KS 0.78 > 0.3 over 1329 recent points" (empty: manual).
    trigger_detail: str = ""
    attempt: int = 0  # re-runs of an interrupted run after restarts (0 = the original request)
    # A run queued behind an automatic one: that run's id and trigger (kept once it has started).
    waiting_for: str = ""
    waiting_for_trigger: str = ""
    # A succeeded run: persisting clusters whose label it replaced ({cluster_id, old, new, similarity}).
    label_changes: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        data = asdict(self)
        data["state"] = self.state.value
        data["request"]["k_range"] = list(self.request.k_range) if self.request.k_range else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunInfo":
        """Inverse of :meth:`to_json`."""
        req = dict(data["request"])
        req["k_range"] = tuple(req["k_range"]) if req.get("k_range") else None
        return cls(**{**data, "state": RunState(data["state"]), "request": RunRequest(**req)})


@dataclass
class Explanation:
    """Why a point is (or is not) flagged under the served model."""

    point: PointView
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
    normal_neighbours: list["SearchHit"]
    anomaly_model: dict[str, Any] = field(default_factory=dict)  # the model's metrics["anomaly"]
    field_contributions: list[FieldContribution] = field(default_factory=list)  # EVENT collections


@dataclass
class ModelInfo:
    """A saved cluster model version."""

    version: int
    k: int
    served: bool
    created_at: str
    cluster_ids: list[int]
    params: dict[str, Any]
    metrics: dict[str, Any]
    summaries: RunSummaries | None = None  # what each cluster is (None: saved before summaries, or none made)
    events: list[ClusterEvent] = field(default_factory=list)  # life-cycle events against the previous version


@dataclass
class SearchHit:
    """A search result."""

    point: PointView
    score: float


@dataclass
class SearchGroup:
    """The best hits of one cluster in a search grouped by cluster."""

    cluster_id: int
    label: str  # the cluster's label in the served version's summaries ("" without them)
    hits: list[SearchHit]


@dataclass
class DriftCandidate:
    """A group forming among the recent anomalies of the served model (a cluster a run could add)."""

    size: int  # anomalies in the group, among those read (at most the server's candidate cap)
    nearest_ids: list[str]  # a few members, closest to the group's centroid first
    mean_distance: float  # its members' mean cluster_distance to the served model
    separation: float  # spread around its own centroid / mean_distance (lower = more distinct)
    keywords: list[str] = field(default_factory=list)  # TEXT: the group's distinctive words


@dataclass
class DriftReport:
    """How far a collection has moved from its served model (None = not measurable yet).

    ``recent_*`` describe the points labelled online since the served model was published
    (a bounded window of the newest ones); ``fit_*`` the model's own fit sample.
    """

    collection: str
    model_version: int  # the served version (0 = no model)
    previous_version: int  # the version it is compared against (0 = none)
    recent_points: int
    psi_shares: float | None  # population stability index of cluster shares, recent vs fit sample
    psi_versions: float | None  # PSI of cluster shares, served vs previous version (full passes)
    centroid_shift_mean: float | None  # mean distance moved by clusters matched to the previous version
    centroid_shift_max: float | None
    distance_p50_fit: float | None
    distance_p90_fit: float | None
    distance_p50_recent: float | None
    distance_p90_recent: float | None
    distance_ks: float | None  # two-sample KS statistic, fit-sample vs recent cluster_distance
    anomaly_rate_fit: float | None
    anomaly_rate_recent: float | None
    # Groups forming among the recent anomalies (GetDrift only; the scheduler does not compute them).
    candidates: list["DriftCandidate"] = field(default_factory=list)
