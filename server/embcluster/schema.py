"""Plain data types of the core API (what the gRPC layer converts to and from)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Sequence, Union

import numpy as np

from .store.base import Metric

__all__ = [
    "InputKind",
    "VectorLike",
    "CollectionSettings",
    "CollectionSpec",
    "CollectionInfo",
    "ItemInput",
    "Assignment",
    "ItemResult",
    "PointView",
    "ClusterInfo",
    "RunState",
    "RunInfo",
    "RunRequest",
    "SearchHit",
    "ModelInfo",
    "Explanation",
]

InputKind = Literal["text", "vector"]
VectorLike = Union[Sequence[float], np.ndarray]


@dataclass
class CollectionSettings:
    """Mutable per-collection settings (None in an update = leave unchanged)."""

    contamination: float | None = None
    min_cluster_size: int | None = None
    default_k: int | None = None
    seed: int | None = None
    anomaly_scorer: str | None = None  # cblof | normalized | distance
    threshold_mode: str | None = None  # contamination | cluster_quantile | absolute
    anomaly_threshold: float | None = None  # the score threshold of the absolute mode

    @classmethod
    def defaults(cls) -> "CollectionSettings":
        """Effective values for a new collection (``anomaly_threshold`` stays unset)."""
        return cls(contamination=0.01, min_cluster_size=3, default_k=8, seed=0, anomaly_scorer="cblof",
                   threshold_mode="contamination")

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
    embedding_model: str = ""
    vector_dim: int = 0
    store_source: bool = True
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


@dataclass
class ItemInput:
    """One item to ingest or classify: text or a vector, plus the caller's id and metadata."""

    id: str = ""
    text: str | None = None
    vector: VectorLike | None = None
    metadata: dict[str, Any] | None = None


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


@dataclass
class PointView:
    """A stored point as reported to callers."""

    point_id: str
    external_id: str
    metadata: dict[str, Any]
    text: str
    assignment: Assignment | None
    vector: list[float] | None = None


@dataclass
class ClusterInfo:
    """One cluster of the served model."""

    cluster_id: int
    size: int
    radius: float
    anomaly_count: int
    populated: bool


class RunState(str, enum.Enum):
    """Life cycle of a clustering run."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

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


@dataclass
class SearchHit:
    """A search result."""

    point: PointView
    score: float
