"""Channel options, request builders and run-state helpers shared by both clients."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any, Literal

from embcluster.api.v1 import embcluster_pb2 as pb

from .errors import RunFailed
from .items import ItemLike, VectorLike, iter_items, make_image_metadata, make_items, make_vector

__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "channel_options",
    "InputKindName",
    "DistanceName",
    "LongTextName",
    "settings",
    "schedule",
    "get_drift",
    "create_collection",
    "attach_collection",
    "update_collection",
    "ingest",
    "ingest_batches",
    "delete_points",
    "get_point",
    "list_cluster_members",
    "list_anomalies",
    "start_clustering",
    "clustering_run",
    "classify",
    "search",
    "infer_schema",
    "run_finished",
    "SNAPSHOT_TIMEOUT_S",
    "REPORT_TIMEOUT_S",
    "get_report",
    "export_collection",
    "import_collection",
]

InputKindName = Literal["text", "vector", "image_metadata", "event"]
DistanceName = Literal["cosine", "euclid"]
LongTextName = Literal["truncate", "pool"]

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
SNAPSHOT_TIMEOUT_S = 3600.0  # default deadline of ExportCollection / ImportCollection
REPORT_TIMEOUT_S = 300.0  # default deadline of GetReport (seconds on the server; more on a busy one)

_INPUT_KINDS = {"text": pb.INPUT_KIND_TEXT, "vector": pb.INPUT_KIND_VECTOR,
                "image_metadata": pb.INPUT_KIND_IMAGE_METADATA, "event": pb.INPUT_KIND_EVENT}
_DISTANCES = {"cosine": pb.DISTANCE_COSINE, "euclid": pb.DISTANCE_EUCLID}
_LONG_TEXT = {"truncate": pb.CollectionSettings.LONG_TEXT_TRUNCATE, "pool": pb.CollectionSettings.LONG_TEXT_POOL}


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Returns channel options that set both message size limits to ``max_message_bytes``."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def settings(
    *,
    contamination: float | None = None,
    min_cluster_size: int | None = None,
    default_k: int | None = None,
    seed: int | None = None,
    anomaly_scorer: str | None = None,
    threshold_mode: str | None = None,
    anomaly_threshold: float | None = None,
    schedule: pb.Schedule | None = None,
    long_text: LongTextName | None = None,
) -> pb.CollectionSettings:
    """Builds ``CollectionSettings`` with only the given fields set.

    ``long_text`` is ``"truncate"`` or ``"pool"`` (how texts longer than the model's window are
    embedded; fixed at creation); raises ValueError on another value.
    """
    if long_text is not None and long_text not in _LONG_TEXT:
        raise ValueError(f"long_text must be one of {sorted(_LONG_TEXT)} or None, got {long_text!r}")
    given = {"contamination": contamination, "min_cluster_size": min_cluster_size, "default_k": default_k,
             "seed": seed, "anomaly_scorer": anomaly_scorer, "threshold_mode": threshold_mode,
             "anomaly_threshold": anomaly_threshold, "schedule": schedule,
             "long_text": _LONG_TEXT[long_text] if long_text is not None else None}
    return pb.CollectionSettings(**{name: value for name, value in given.items() if value is not None})


def schedule(
    *,
    interval_s: float | None = None,
    after_changes: int | None = None,
    drift_psi: float | None = None,
    k: int | None = None,
    drift_ks: float | None = None,
    anomaly_ratio: float | None = None,
    anomaly_rate: float | None = None,
    k_max: int | None = None,
) -> pb.Schedule:
    """Builds a ``Schedule``: when a collection re-clusters by itself.

    A schedule replaces the collection's previous one as a whole; ``schedule()`` with no
    arguments switches re-clustering by itself off.

    Args:
        interval_s: Re-cluster every this many seconds (>= 1).
        after_changes: Re-cluster after this many ingested, replaced or deleted points (>= 1).
        drift_psi: Re-cluster when the recent ingests' cluster-share PSI exceeds this (> 0).
        k: k of a scheduled run; None = the collection's default_k.
        drift_ks: Re-cluster when the recent cluster_distance KS statistic exceeds this, in (0, 1)
            (recommended 0.3).
        anomaly_ratio: Re-cluster when the recent anomaly rate exceeds this multiple of the fit's,
            > 1 (recommended 5).
        anomaly_rate: Re-cluster when the recent anomaly rate exceeds this share, in (0, 1).
        k_max: A drift-triggered run may add clusters for new groups, up to this k (> k).
    """
    given = {"interval_s": interval_s, "after_changes": after_changes, "drift_psi": drift_psi, "k": k,
             "drift_ks": drift_ks, "anomaly_ratio": anomaly_ratio, "anomaly_rate": anomaly_rate, "k_max": k_max}
    for name in ("after_changes", "k", "k_max"):  # unsigned on the wire: a negative value cannot even be sent
        value = given[name]
        if value is not None and value < 0:
            raise ValueError(f"schedule {name} must be >= {1 if name == 'after_changes' else 2}, got {value} "
                             "(leave it unset for none)")
    return pb.Schedule(**{name: value for name, value in given.items() if value is not None})


def get_drift(collection: str) -> pb.GetDriftRequest:
    """Builds a ``GetDriftRequest``."""
    return pb.GetDriftRequest(collection=collection)


def attach_collection(
    name: str,
    qdrant_collection: str,
    *,
    vector_name: str = "",
    distance: DistanceName | None = None,
    field_prefix: str = "",
    collection_settings: pb.CollectionSettings | None = None,
) -> pb.AttachCollectionRequest:
    """Builds an ``AttachCollectionRequest``; ``distance=None`` = the Qdrant collection's own."""
    if distance is not None and distance not in _DISTANCES:
        raise ValueError(f"distance must be one of {sorted(_DISTANCES)} or None, got {distance!r}")
    return pb.AttachCollectionRequest(
        name=name, qdrant_collection=qdrant_collection, vector_name=vector_name,
        distance=_DISTANCES[distance] if distance is not None else pb.DISTANCE_UNSPECIFIED,
        field_prefix=field_prefix, settings=collection_settings,
    )


def create_collection(
    name: str,
    *,
    input_kind: InputKindName = "text",
    distance: DistanceName = "cosine",
    embedding_model: str = "",
    vector_dim: int = 0,
    store_source: bool | None = None,
    contamination: float | None = None,
    min_cluster_size: int | None = None,
    default_k: int | None = None,
    seed: int | None = None,
    anomaly_scorer: str | None = None,
    threshold_mode: str | None = None,
    anomaly_threshold: float | None = None,
    image_metadata: pb.ImageMetadataSpec | None = None,
    schedule: pb.Schedule | None = None,
    event_schema: pb.EventSchema | None = None,
    long_text: LongTextName | None = None,
    embedding_tier: str = "",
    vector_index: pb.VectorIndexSettings | None = None,
) -> pb.CreateCollectionRequest:
    """Builds a ``CreateCollectionRequest``; raises ValueError on an unknown kind or distance."""
    if input_kind not in _INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {sorted(_INPUT_KINDS)}, got {input_kind!r}")
    if distance not in _DISTANCES:
        raise ValueError(f"distance must be one of {sorted(_DISTANCES)}, got {distance!r}")
    req = pb.CreateCollectionRequest(
        name=name,
        input_kind=_INPUT_KINDS[input_kind],
        distance=_DISTANCES[distance],
        embedding_model=embedding_model,
        vector_dim=vector_dim,
        embedding_tier=embedding_tier,
        settings=settings(
            contamination=contamination,
            min_cluster_size=min_cluster_size,
            default_k=default_k,
            seed=seed,
            anomaly_scorer=anomaly_scorer,
            threshold_mode=threshold_mode,
            anomaly_threshold=anomaly_threshold,
            schedule=schedule,
            long_text=long_text,
        ),
    )
    if store_source is not None:
        req.store_source = store_source
    if image_metadata is not None:
        req.image_metadata.CopyFrom(image_metadata)
    if event_schema is not None:
        req.event_schema.CopyFrom(event_schema)
    if vector_index is not None:
        req.vector_index.CopyFrom(vector_index)
    return req


def update_collection(
    name: str,
    *,
    contamination: float | None = None,
    min_cluster_size: int | None = None,
    default_k: int | None = None,
    seed: int | None = None,
    anomaly_scorer: str | None = None,
    threshold_mode: str | None = None,
    anomaly_threshold: float | None = None,
    schedule: pb.Schedule | None = None,
) -> pb.UpdateCollectionRequest:
    """Builds an ``UpdateCollectionRequest`` that changes only the given settings.

    A given ``schedule`` replaces the previous one as a whole (see :func:`schedule`).
    """
    return pb.UpdateCollectionRequest(
        name=name,
        settings=settings(
            contamination=contamination,
            min_cluster_size=min_cluster_size,
            default_k=default_k,
            seed=seed,
            anomaly_scorer=anomaly_scorer,
            threshold_mode=threshold_mode,
            anomaly_threshold=anomaly_threshold,
            schedule=schedule,
        ),
    )


def ingest(collection: str, items: Iterable[ItemLike]) -> pb.IngestRequest:
    """Builds one ``IngestRequest`` from user values (see :func:`make_item`)."""
    return pb.IngestRequest(collection=collection, items=make_items(items))


def ingest_batches(
    collection: str, items: Iterable[ItemLike], batch_size: int
) -> Iterator[pb.IngestRequest]:
    """Yields ``IngestRequest`` batches of at most ``batch_size`` items, converting lazily.

    Conversion errors name the item's index in ``items`` as a whole.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    converted = iter_items(items)
    while batch := list(islice(converted, batch_size)):
        yield pb.IngestRequest(collection=collection, items=batch)


def delete_points(
    collection: str, *, ids: Iterable[str] = (), point_ids: Iterable[str] = ()
) -> pb.DeletePointsRequest:
    """Builds a ``DeletePointsRequest``."""
    return pb.DeletePointsRequest(collection=collection, ids=list(ids), point_ids=list(point_ids))


def get_point(
    collection: str, *, id: str | None = None, point_id: str | None = None, with_vector: bool = False
) -> pb.GetPointRequest:
    """Builds a ``GetPointRequest``; raises ValueError unless exactly one of id/point_id is given."""
    return pb.GetPointRequest(collection=collection, with_vector=with_vector, **_point_key(id, point_id))


def explain_point(
    collection: str, *, id: str | None = None, point_id: str | None = None, neighbours: int = 5
) -> pb.ExplainPointRequest:
    """Builds an ``ExplainPointRequest``; raises ValueError unless exactly one of id/point_id is given."""
    return pb.ExplainPointRequest(collection=collection, neighbours=neighbours, **_point_key(id, point_id))


def _point_key(id: str | None, point_id: str | None) -> dict[str, str]:
    """The ``key`` oneof of point requests: exactly one of the caller's id or the point id."""
    if (id is None) == (point_id is None):
        raise ValueError("give exactly one of id or point_id")
    return {"id": id} if id is not None else {"point_id": point_id}  # type: ignore[dict-item]


def list_cluster_members(
    collection: str, cluster_id: int, *, page_size: int = 100, page_token: str = ""
) -> pb.ListClusterMembersRequest:
    """Builds a ``ListClusterMembersRequest``."""
    return pb.ListClusterMembersRequest(
        collection=collection, cluster_id=cluster_id, page_size=page_size, page_token=page_token
    )


def list_anomalies(
    collection: str, *, page_size: int = 100, page_token: str = ""
) -> pb.ListAnomaliesRequest:
    """Builds a ``ListAnomaliesRequest``."""
    return pb.ListAnomaliesRequest(collection=collection, page_size=page_size, page_token=page_token)


def list_points(
    collection: str, *, cluster_id: int | None = None, anomalies: bool | None = None,
    model_version: int | None = None, page_size: int = 100, page_token: str = "",
) -> pb.ListPointsRequest:
    """Builds a ``ListPointsRequest`` (a filter left None is not sent)."""
    req = pb.ListPointsRequest(collection=collection, page_size=page_size, page_token=page_token)
    if cluster_id is not None:
        req.cluster_id = cluster_id
    if anomalies is not None:
        req.is_anomaly = anomalies
    if model_version is not None:
        req.model_version = model_version
    return req


def start_clustering(
    collection: str,
    *,
    k: int | None = None,
    k_range: tuple[int, int] | None = None,
    seed: int | None = None,
    sample_size: int = 0,
    n_init: int = 0,
) -> pb.StartClusteringRequest:
    """Builds a ``StartClusteringRequest``; raises ValueError if both k and k_range are given."""
    if k is not None and k_range is not None:
        raise ValueError("give at most one of k or k_range")
    req = pb.StartClusteringRequest(collection=collection, sample_size=sample_size, n_init=n_init)
    if k is not None:
        req.k = k
    elif k_range is not None:
        k_min, k_max = k_range
        req.k_range.CopyFrom(pb.KRange(min=k_min, max=k_max))
    if seed is not None:
        req.seed = seed
    return req


def clustering_run(collection: str, run_id: str) -> pb.GetClusteringRunRequest:
    """Builds the request used by GetClusteringRun and CancelClusteringRun."""
    return pb.GetClusteringRunRequest(collection=collection, run_id=run_id)


def classify(collection: str, items: Iterable[ItemLike]) -> pb.ClassifyRequest:
    """Builds a ``ClassifyRequest`` from user values (see :func:`make_item`)."""
    return pb.ClassifyRequest(collection=collection, items=make_items(items))


def search(
    collection: str, query: str | VectorLike | pb.ImageMetadata | pb.Event | Mapping[str, Any], *, limit: int = 10,
    cluster_id: int | None = None, group_by_cluster: tuple[int, int] | None = None, ef: int = 0, exact: bool = False,
) -> pb.SearchRequest:
    """Builds a ``SearchRequest``: a str query is text, an ``ImageMetadata`` or a dict image metadata
    (``title``/``caption``/``alt_text``/``tags``/``attributes``), anything else a vector.
    ``group_by_cluster=(groups, group_size)`` asks for the best hits per cluster (``limit`` is then not sent)."""
    req = pb.SearchRequest(collection=collection, limit=0 if group_by_cluster is not None else limit, ef=ef,
                           exact=exact)
    if group_by_cluster is not None:
        req.group_by_cluster.CopyFrom(pb.ClusterGrouping(groups=group_by_cluster[0], group_size=group_by_cluster[1]))
    if isinstance(query, str):
        req.text = query
    elif isinstance(query, pb.ImageMetadata):
        req.image.CopyFrom(query)
    elif isinstance(query, pb.Event):
        req.event.CopyFrom(query)
    elif isinstance(query, Mapping):
        req.image.CopyFrom(make_image_metadata(**query))
    else:
        req.vector.CopyFrom(make_vector(query))
    if cluster_id is not None:
        req.cluster_id = cluster_id
    return req


def run_finished(run: pb.ClusteringRun) -> bool:
    """Returns True if ``run`` SUCCEEDED, False while it is still going (QUEUED, PENDING, RUNNING).

    Raises:
        RunFailed: the run is FAILED or CANCELLED.
    """
    if run.state == pb.RUN_STATE_SUCCEEDED:
        return True
    if run.state in (pb.RUN_STATE_FAILED, pb.RUN_STATE_CANCELLED):
        raise RunFailed(run)
    return False


def export_collection(collection: str, path: str, *, overwrite: bool = False) -> pb.ExportCollectionRequest:
    """ExportCollection request: ``path`` is on the server's machine."""
    return pb.ExportCollectionRequest(collection=collection, path=path, overwrite=overwrite)


def import_collection(path: str, *, name: str = "") -> pb.ImportCollectionRequest:
    """ImportCollection request: ``path`` is on the server's machine; ``name`` empty = the snapshot's."""
    return pb.ImportCollectionRequest(path=path, name=name)


def infer_schema(samples: Iterable[Mapping[str, Any] | pb.Event], *, entity_key: str = "") -> pb.InferSchemaRequest:
    """Builds an ``InferSchemaRequest`` from sample events (dicts or ``pb.Event``)."""
    from .items import make_event

    return pb.InferSchemaRequest(
        samples=[s if isinstance(s, pb.Event) else make_event(s) for s in samples], entity_key=entity_key)


def get_report(collection: str, *, sample_size: int = 0) -> pb.GetReportRequest:
    """GetReport request: ``sample_size`` points at most on the map (0 = the server's default, 10,000)."""
    if sample_size < 0:
        raise ValueError(f"sample_size must be >= 0 (0 = the server's default), got {sample_size}")
    return pb.GetReportRequest(collection=collection, sample_size=sample_size)
