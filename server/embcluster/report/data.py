"""What a report shows, as plain JSON-serialisable dataclasses (no arrays, no models).

:class:`ReportData` is the one input of :func:`embcluster.report.html.render_html`; the API can
send it as JSON and a client can render it without the server (``from_json(to_json())`` gives
an equal object). Every string in it may come from a user (collection names, texts, labels,
ids): the renderer escapes them all.

Fields follow what a model version records (``models.py``, ``Model.metrics`` in the proto):
per-k scores are ``metrics["k_scores"]`` (proto ``KScore``), full-pass sizes ``sizes_full``,
the cluster matching ``matching``; cluster summaries leave ``label``, ``keywords`` and
``representatives`` for the summaries to fill.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

__all__ = ["ClusterSummary", "KScoreRow", "KSelection", "MapPoints", "ReportData", "Representative",
           "VersionEntry", "json_safe", "k_score_row"]


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN or infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass
class MapPoints:
    """The sampled points on the map, one list per column (row ``i`` of each is point ``i``).

    Attributes:
        ids: The caller's point ids (``external_id``).
        x: First projected coordinate.
        y: Second projected coordinate.
        cluster_id: Stable cluster id the served model gives the point.
        is_anomaly: The served model's anomaly decision.
        text: A short text shown on hover (the source text, cut), or "".
    """

    ids: list[str] = field(default_factory=list)
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    cluster_id: list[int] = field(default_factory=list)
    is_anomaly: list[bool] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        lengths = {name: len(getattr(self, name)) for name in ("ids", "x", "y", "cluster_id", "is_anomaly", "text")}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"map point columns differ in length: {lengths}")

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Representative:
    """A member near its cluster's centroid."""

    id: str
    text: str = ""
    distance: float | None = None  # to the centroid, in the collection's metric


@dataclass
class ClusterSummary:
    """One cluster of the reported model version.

    Attributes:
        cluster_id: Stable id (kept across versions by the matching).
        size: Points carrying this id.
        share: ``size`` over the collection's points.
        radius: RMS distance of its members to the centroid.
        anomaly_count: Its members flagged as anomalies.
        populated: False for a cluster too small at fit time (never assigned).
        label: A short name from the summaries ("" until they fill it).
        keywords: Distinctive words (TEXT) or field descriptions (EVENT).
        representatives: Members nearest the centroid.
        label_changed: The label differs from the previous version's for this id.
        x: The centroid's place on the map (None when not projected).
        y: Likewise.
    """

    cluster_id: int
    size: int
    share: float
    radius: float
    anomaly_count: int
    populated: bool = True
    label: str = ""
    keywords: list[str] = field(default_factory=list)
    representatives: list[Representative] = field(default_factory=list)
    label_changed: bool = False
    x: float | None = None
    y: float | None = None


@dataclass
class KScoreRow:
    """One candidate k of a k-range run (proto ``KScore``)."""

    k: int
    silhouette: float | None
    davies_bouldin: float | None
    calinski_harabasz: float | None
    inertia: float | None
    knee: bool = False
    mean_rank: float | None = None
    chosen: bool = False


@dataclass
class KSelection:
    """The choice of k of the run that fitted ``version`` (within ``k_min`` … ``k_max``)."""

    version: int
    k_min: int
    k_max: int
    chosen_k: int
    scores: list[KScoreRow] = field(default_factory=list)


@dataclass
class VersionEntry:
    """One saved model version, for the history over versions.

    ``sizes`` are the full-pass sizes per cluster (aligned with ``cluster_ids``; empty for a
    version saved before they were recorded); the drift figures compare it with the version
    before it (None for the first one or when not measurable).
    """

    version: int
    created_at: str
    k: int
    served: bool = False
    trigger: str = ""
    cluster_ids: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    points: int | None = None
    anomalies: int | None = None
    silhouette: float | None = None
    psi_versions: float | None = None
    centroid_shift_mean: float | None = None
    centroid_shift_max: float | None = None
    matching: dict[str, int] = field(default_factory=dict)  # persisted, appeared, vanished, split, merged
    events: dict[str, list[int]] = field(default_factory=dict)  # life-cycle event kind -> cluster ids (BIRTH, ...)


@dataclass
class ReportData:
    """Everything one report shows.

    Attributes:
        collection: Collection name.
        kind: Input kind (``text``, ``image_metadata``, ``event``, ``vector``).
        metric: ``cosine`` or ``euclid``.
        model_version: The reported (served) model version.
        generated_at: ISO time the report was made.
        point_count: Points in the collection.
        projection: How the map was made: ``pca`` (see ``projection.py``).
        explained: Share of the variance of the sample's non-anomalous points on each map axis.
        points: The sampled points on the map (``len(points)`` of ``point_count``).
        clusters: The model version's clusters.
        k_selection: The per-k scores of the run that chose k, or None (a fixed k).
        history: Saved model versions, oldest first.
        notes: Plain sentences shown under the title (what a kind cannot summarise, etc.).
    """

    collection: str
    kind: str
    metric: str
    model_version: int
    generated_at: str
    point_count: int
    projection: str = "pca"
    explained: list[float] = field(default_factory=list)
    points: MapPoints = field(default_factory=MapPoints)
    clusters: list[ClusterSummary] = field(default_factory=list)
    k_selection: KSelection | None = None
    history: list[VersionEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite numbers as None)."""
        out: dict[str, Any] = json_safe(asdict(self))
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ReportData":
        """Rebuild a report from :meth:`to_json`'s output."""
        ks = data.get("k_selection")
        return cls(
            collection=str(data["collection"]), kind=str(data["kind"]), metric=str(data["metric"]),
            model_version=int(data["model_version"]), generated_at=str(data["generated_at"]),
            point_count=int(data["point_count"]), projection=str(data.get("projection", "pca")),
            explained=[float(v) for v in data.get("explained") or []],
            points=MapPoints(**{k: list(v) for k, v in (data.get("points") or {}).items()}),
            clusters=[ClusterSummary(**{**c, "representatives": [Representative(**r) for r in c.get("representatives") or []]})
                      for c in data.get("clusters") or []],
            k_selection=None if ks is None else KSelection(
                version=int(ks["version"]), k_min=int(ks["k_min"]), k_max=int(ks["k_max"]),
                chosen_k=int(ks["chosen_k"]), scores=[KScoreRow(**s) for s in ks.get("scores") or []]),
            history=[VersionEntry(**v) for v in data.get("history") or []],
            notes=[str(n) for n in data.get("notes") or []],
        )


def k_score_row(raw: Mapping[str, Any]) -> KScoreRow:
    """A :class:`KScoreRow` from one entry of ``metrics["k_scores"]`` (``asdict`` of a ``KScore``)."""
    return KScoreRow(k=int(raw["k"]), silhouette=_opt_float(raw.get("silhouette")),
                     davies_bouldin=_opt_float(raw.get("davies_bouldin")),
                     calinski_harabasz=_opt_float(raw.get("calinski_harabasz")),
                     inertia=_opt_float(raw.get("inertia")), knee=bool(raw.get("knee", False)),
                     mean_rank=_opt_float(raw.get("mean_rank")), chosen=bool(raw.get("chosen", False)))
