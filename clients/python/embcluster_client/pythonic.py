"""The Pythonic client: the service's calls returning :mod:`~embcluster_client.models`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import grpc

from embcluster.api.v1 import embcluster_pb2 as pb

from . import _requests as rq
from ._adapt import (
    ack_model,
    as_message,
    cluster_event_model,
    distance_name,
    long_text_name,
    kind_name,
    point_model,
    progress_callback,
    run_model,
    runs_as_models,
)
from .client import EmbclusterClient
from .convert import to_model
from .enums import Distance, InputKind, LongText
from .items import ItemLike, VectorLike
from .models import (
    Assignment,
    ClusterEvent,
    ClusteringRun,
    ClusterList,
    ClusterSummary,
    Collection,
    CollectionReport,
    CollectionSettings,
    Drift,
    EventSchema,
    Explanation,
    ImageMetadataSpec,
    InferredSchema,
    IngestAck,
    ItemResult,
    Model,
    Point,
    PointPage,
    Schedule,
    SearchGroup,
    SearchHit,
    SnapshotSummary,
    VectorIndexSettings,
)
from .streams import Stream

__all__ = ["Client"]


class Client:
    """Client for an embcluster server that speaks Python: models, enum names, dicts, typed errors.

    The methods are those of the protobuf client :class:`~embcluster_client.EmbclusterClient`, with
    the same arguments, but they return the frozen dataclasses of :mod:`embcluster_client.models`
    (``run.state`` is ``RunState.SUCCEEDED``, ``point.metadata`` a dict, ``created_at`` a
    ``datetime``); each keeps its message as ``.proto``, and ``client.grpc`` is the protobuf client
    underneath. A failed call raises the :mod:`~embcluster_client.errors` exception of its status
    code (``NotFound``, ``InvalidArgument``, ...; all ``grpc.RpcError``\\ s).

    Example::

        with Client("127.0.0.1:50051") as client:
            client.create_collection("docs")
            client.ingest("docs", ["first text", {"id": "sku-1", "text": "second"}])
            client.cluster("docs", k=8)
    """

    def __init__(
        self,
        target: str = rq.DEFAULT_TARGET,
        *,
        timeout: float = 30.0,
        max_message_bytes: int = rq.DEFAULT_MAX_MESSAGE_BYTES,
        channel: grpc.Channel | None = None,
        api_key: str | None = None,
        tls: bool = False,
        ca_cert: str | Path | None = None,
        client_cert: str | Path | None = None,
        client_key: str | Path | None = None,
        server_name: str | None = None,
        client: EmbclusterClient | None = None,
    ) -> None:
        """Opens a channel to the server (the arguments are ``EmbclusterClient``'s).

        Args:
            target: ``host:port`` of the server.
            timeout: Deadline in seconds for each RPC.
            max_message_bytes: Send and receive message size limit of the channel.
            channel: An existing channel to use instead of opening one.
            api_key: API key sent on every call as ``authorization: Bearer <key>``.
            tls: Connect with TLS (implied by ``ca_cert``, ``client_cert`` or ``server_name``).
            ca_cert: PEM file of the CA that signed the server's certificate.
            client_cert: PEM client certificate for mTLS (with ``client_key``).
            client_key: PEM private key of ``client_cert``.
            server_name: Name to verify the server's certificate against.
            client: A protobuf client to wrap instead (the other arguments are then ignored);
                ``close()`` leaves it open.
        """
        self._owns_client = client is None
        self.grpc = client if client is not None else EmbclusterClient(
            target, timeout=timeout, max_message_bytes=max_message_bytes, channel=channel, api_key=api_key,
            tls=tls, ca_cert=ca_cert, client_cert=client_cert, client_key=client_key, server_name=server_name)

    def close(self) -> None:
        """Closes the protobuf client if this client opened it."""
        if self._owns_client:
            self.grpc.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Collections.

    def create_collection(
        self,
        name: str,
        *,
        input_kind: rq.InputKindName | InputKind = "text",
        distance: rq.DistanceName | Distance = "cosine",
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
        image_metadata: ImageMetadataSpec | pb.ImageMetadataSpec | None = None,
        schedule: Schedule | pb.Schedule | None = None,
        event_schema: EventSchema | pb.EventSchema | None = None,
        long_text: rq.LongTextName | LongText | None = None,
        embedding_tier: str = "",
        vector_index: VectorIndexSettings | pb.VectorIndexSettings | None = None,
    ) -> Collection:
        """Creates a collection (arguments as :meth:`EmbclusterClient.create_collection`).

        ``input_kind`` and ``distance`` may also be ``InputKind``/``Distance`` members, and
        ``image_metadata``, ``schedule`` and ``event_schema`` models (e.g. the ``schema`` of
        :meth:`infer_schema`).

        Returns:
            The created collection.
        """
        created = self.grpc.create_collection(
            name, input_kind=kind_name(input_kind), distance=cast(rq.DistanceName, distance_name(distance)),
            embedding_model=embedding_model, vector_dim=vector_dim, store_source=store_source,
            contamination=contamination, min_cluster_size=min_cluster_size, default_k=default_k, seed=seed,
            anomaly_scorer=anomaly_scorer, threshold_mode=threshold_mode, anomaly_threshold=anomaly_threshold,
            image_metadata=as_message(image_metadata), schedule=as_message(schedule), event_schema=as_message(event_schema),
            long_text=long_text_name(long_text), embedding_tier=embedding_tier,
            vector_index=as_message(vector_index))
        return to_model(created, Collection)

    def attach_collection(
        self,
        name: str,
        qdrant_collection: str,
        *,
        vector_name: str = "",
        distance: rq.DistanceName | Distance | None = None,
        field_prefix: str = "",
        collection_settings: CollectionSettings | pb.CollectionSettings | None = None,
    ) -> Collection:
        """Clusters an existing Qdrant collection (see :meth:`EmbclusterClient.attach_collection`).

        Returns:
            The attached collection (``attached`` set).
        """
        attached = self.grpc.attach_collection(
            name, qdrant_collection, vector_name=vector_name, distance=distance_name(distance),
            field_prefix=field_prefix, collection_settings=as_message(collection_settings))
        return to_model(attached, Collection)

    def get_collection(self, name: str) -> Collection:
        """Returns the collection ``name`` with its effective settings and counts."""
        return to_model(self.grpc.get_collection(name), Collection)

    def list_collections(self) -> list[Collection]:
        """Returns all collections."""
        return [to_model(c, Collection) for c in self.grpc.list_collections()]

    def update_collection(
        self,
        name: str,
        *,
        contamination: float | None = None,
        min_cluster_size: int | None = None,
        default_k: int | None = None,
        seed: int | None = None,
        anomaly_scorer: str | None = None,
        threshold_mode: str | None = None,
        anomaly_threshold: float | None = None,
        schedule: Schedule | pb.Schedule | None = None,
    ) -> Collection:
        """Changes the given settings of a collection; None leaves a setting as it is
        (see :meth:`EmbclusterClient.update_collection`).

        Returns:
            The updated collection.
        """
        updated = self.grpc.update_collection(
            name, contamination=contamination, min_cluster_size=min_cluster_size, default_k=default_k,
            seed=seed, anomaly_scorer=anomaly_scorer, threshold_mode=threshold_mode,
            anomaly_threshold=anomaly_threshold, schedule=as_message(schedule))
        return to_model(updated, Collection)

    def delete_collection(self, name: str) -> bool:
        """Deletes a collection; returns whether it existed."""
        return self.grpc.delete_collection(name)

    # Points.

    def ingest(self, collection: str, items: Iterable[ItemLike]) -> list[ItemResult]:
        """Upserts items in one all-or-nothing request (texts, vectors, dicts: see ``make_item``).

        Returns:
            One result per item, in order.
        """
        return [to_model(r, ItemResult) for r in self.grpc.ingest(collection, items)]

    def ingest_many(
        self, collection: str, items: Iterable[ItemLike], *, batch_size: int = 256
    ) -> list[ItemResult]:
        """Upserts items in batches of ``batch_size``, sent in order; each batch is all-or-nothing.

        Returns:
            One result per item, in order.
        """
        return [to_model(r, ItemResult) for r in self.grpc.ingest_many(collection, items, batch_size=batch_size)]

    def delete_points(
        self, collection: str, *, ids: Iterable[str] = (), point_ids: Iterable[str] = ()
    ) -> int:
        """Deletes points by caller id and/or point id; returns how many were deleted."""
        return self.grpc.delete_points(collection, ids=ids, point_ids=point_ids)

    def get_point(
        self,
        collection: str,
        *,
        id: str | None = None,
        point_id: str | None = None,
        with_vector: bool = False,
    ) -> Point:
        """Fetches one point by caller id or point id (``vector`` only ``with_vector``).

        Raises:
            NotFound: no such point.
            ValueError: not exactly one of ``id`` and ``point_id`` is given.
        """
        found = self.grpc.get_point(collection, id=id, point_id=point_id, with_vector=with_vector)
        return to_model(found, Point)

    def list_cluster_members(
        self, collection: str, cluster_id: int, *, page_size: int = 100, page_token: str = ""
    ) -> PointPage:
        """Returns one page of the points labelled ``cluster_id``."""
        page = self.grpc.list_cluster_members(collection, cluster_id, page_size=page_size, page_token=page_token)
        return to_model(page, PointPage)

    def iter_cluster_members(
        self, collection: str, cluster_id: int, *, page_size: int = 500
    ) -> Iterator[Point]:
        """Yields every point labelled ``cluster_id``, following page tokens."""
        for point in self.grpc.iter_cluster_members(collection, cluster_id, page_size=page_size):
            yield to_model(point, Point)

    def list_anomalies(
        self, collection: str, *, page_size: int = 100, page_token: str = ""
    ) -> PointPage:
        """Returns one page of the points flagged as anomalies."""
        page = self.grpc.list_anomalies(collection, page_size=page_size, page_token=page_token)
        return to_model(page, PointPage)

    def iter_anomalies(self, collection: str, *, page_size: int = 500) -> Iterator[Point]:
        """Yields every point flagged as an anomaly, following page tokens."""
        for point in self.grpc.iter_anomalies(collection, page_size=page_size):
            yield to_model(point, Point)

    def list_points(
        self,
        collection: str,
        *,
        cluster_id: int | None = None,
        anomalies: bool | None = None,
        model_version: int | None = None,
        page_size: int = 100,
        page_token: str = "",
    ) -> PointPage:
        """Returns one page of every point (see :meth:`EmbclusterClient.list_points`)."""
        page = self.grpc.list_points(
            collection, cluster_id=cluster_id, anomalies=anomalies, model_version=model_version,
            page_size=page_size, page_token=page_token,
        )
        return to_model(page, PointPage)

    def iter_points(
        self,
        collection: str,
        *,
        cluster_id: int | None = None,
        anomalies: bool | None = None,
        model_version: int | None = None,
        page_size: int = 500,
    ) -> Iterator[Point]:
        """Yields every point (or those matching the filters) exactly once, following page tokens."""
        for point in self.grpc.iter_points(
            collection, cluster_id=cluster_id, anomalies=anomalies, model_version=model_version, page_size=page_size
        ):
            yield to_model(point, Point)

    # Clustering.

    def start_clustering(
        self,
        collection: str,
        *,
        k: int | None = None,
        k_range: tuple[int, int] | None = None,
        seed: int | None = None,
        sample_size: int = 0,
        n_init: int = 0,
    ) -> ClusteringRun:
        """Starts a clustering run (see :meth:`EmbclusterClient.start_clustering`).

        Returns:
            The new run (usually ``RunState.PENDING``).
        """
        run = self.grpc.start_clustering(
            collection, k=k, k_range=k_range, seed=seed, sample_size=sample_size, n_init=n_init)
        return to_model(run, ClusteringRun)

    def get_clustering_run(self, collection: str, run_id: str) -> ClusteringRun:
        """Returns the current state of a run."""
        return to_model(self.grpc.get_clustering_run(collection, run_id), ClusteringRun)

    def cancel_clustering_run(self, collection: str, run_id: str) -> ClusteringRun:
        """Asks the server to cancel a run; returns its state after the request."""
        return to_model(self.grpc.cancel_clustering_run(collection, run_id), ClusteringRun)

    def wait_for_run(
        self,
        collection: str,
        run_id: str,
        *,
        poll_interval: float = 0.2,
        timeout: float = 600.0,
        on_progress: Callable[[ClusteringRun], None] | None = None,
    ) -> ClusteringRun:
        """Polls a run until it SUCCEEDED, FAILED or was CANCELLED.

        Args:
            collection: The collection.
            run_id: The run.
            poll_interval: Seconds between polls.
            timeout: Seconds to wait in all.
            on_progress: Called with the run after each poll.

        Returns:
            The succeeded run.

        Raises:
            RunFailed: the run ended FAILED or CANCELLED (its ``run`` is a ``ClusteringRun`` model).
            TimeoutError: the run did not finish within ``timeout``.
        """
        with runs_as_models():
            run = self.grpc.wait_for_run(
                collection, run_id, poll_interval=poll_interval, timeout=timeout, on_progress=progress_callback(on_progress))
        return to_model(run, ClusteringRun)

    def watch_run(self, collection: str, run_id: str, *, timeout: float | None = None) -> Stream[ClusteringRun]:
        """Streams the run's state now and at each change of state, phase or progress, until it ends.

        ``cancel()`` the returned stream to stop early; an unknown run raises ``NotFound`` on
        iteration (see :meth:`EmbclusterClient.watch_run`).
        """
        return Stream(self.grpc.watch_run(collection, run_id, timeout=timeout), run_model)

    def cluster(
        self,
        collection: str,
        *,
        k: int | None = None,
        k_range: tuple[int, int] | None = None,
        seed: int | None = None,
        sample_size: int = 0,
        n_init: int = 0,
        poll_interval: float = 0.2,
        timeout: float = 600.0,
        on_progress: Callable[[ClusteringRun], None] | None = None,
    ) -> ClusteringRun:
        """Starts a clustering run and waits for it (see :meth:`start_clustering`, :meth:`wait_for_run`).

        Returns:
            The succeeded run (``k`` chosen, ``k_scores`` per candidate when a range was given).

        Raises:
            RunFailed: the run ended FAILED or CANCELLED (its ``run`` is a ``ClusteringRun`` model).
            TimeoutError: the run did not finish within ``timeout``.
        """
        with runs_as_models():
            run = self.grpc.cluster(
                collection, k=k, k_range=k_range, seed=seed, sample_size=sample_size, n_init=n_init,
                poll_interval=poll_interval, timeout=timeout, on_progress=progress_callback(on_progress))
        return to_model(run, ClusteringRun)

    def list_clusters(self, collection: str) -> ClusterList:
        """Returns the served model's version and clusters (iterate over it for the clusters)."""
        return to_model(self.grpc.list_clusters(collection), ClusterList)

    def get_cluster(self, collection: str, cluster_id: int, model_version: int = 0) -> ClusterSummary:
        """Returns one cluster's summary as the run that fitted ``model_version`` (0 = served) computed it.

        ``kind`` is ``SummaryKind.KEYWORDS``, ``FIELDS``, ``REPRESENTATIVES_ONLY``, or ``UNSPECIFIED``
        for a version without summaries; ``NotFound`` for an unknown id or version.
        """
        return to_model(self.grpc.get_cluster(collection, cluster_id, model_version), ClusterSummary)

    def get_drift(self, collection: str) -> Drift:
        """Returns how far the collection has moved from its served model (None = not measurable yet)."""
        return to_model(self.grpc.get_drift(collection), Drift)

    def ingest_stream(self, collection: str, batches: Iterable[Iterable[ItemLike]]) -> Stream[IngestAck]:
        """Streams batches (a feed); yields one acknowledgement per batch, in order.

        A rejected batch comes back with ``error_code`` and ``error_message`` set (``ok`` false)
        and the stream goes on; batches are converted lazily.
        """
        return Stream(self.grpc.ingest_stream(collection, batches), ack_model)

    def watch_anomalies(self, collection: str) -> Stream[Point]:
        """Yields points flagged at ingest as they arrive; ``cancel()`` the returned stream to stop."""
        return Stream(self.grpc.watch_anomalies(collection), point_model)

    def explain_point(
        self, collection: str, *, id: str | None = None, point_id: str | None = None, neighbours: int = 5
    ) -> Explanation:
        """Explains a point's flag: its cluster, distances against radii, nearest normal neighbours."""
        explained = self.grpc.explain_point(collection, id=id, point_id=point_id, neighbours=neighbours)
        return to_model(explained, Explanation)

    def list_models(self, collection: str) -> list[Model]:
        """Returns every saved model version of the collection, oldest first."""
        return [to_model(model, Model) for model in self.grpc.list_models(collection)]

    def get_model(self, collection: str, version: int = 0) -> Model:
        """Returns one model version (0 = the served one) with its parameters and metrics as dicts."""
        return to_model(self.grpc.get_model(collection, version), Model)

    def watch_cluster_events(self, collection: str, since_version: int = 0) -> Stream[ClusterEvent]:
        """Yields cluster life-cycle events: those stored after ``since_version``, then each new version's.

        ``since_version`` 0 replays every version still stored; the served version's number shows
        only what comes next. ``cancel()`` the returned stream to stop (see
        :meth:`EmbclusterClient.watch_cluster_events`).
        """
        return Stream(self.grpc.watch_cluster_events(collection, since_version), cluster_event_model)

    def rollback_model(self, collection: str, version: int) -> ClusteringRun:
        """Starts a run that serves ``version`` again; wait for it with :meth:`wait_for_run`."""
        return to_model(self.grpc.rollback_model(collection, version), ClusteringRun)

    # Reads.

    def infer_schema(
        self, samples: Iterable[Mapping[str, Any] | pb.Event], *, entity_key: str = ""
    ) -> InferredSchema:
        """Asks the server to propose an ``EventSchema`` from sample events (nothing is stored).

        Returns:
            The proposed ``schema`` (pass it to ``create_collection(event_schema=...)``) and ``notes``.
        """
        return to_model(self.grpc.infer_schema(samples, entity_key=entity_key), InferredSchema)

    def fit_featurizer(self, collection: str) -> ClusteringRun:
        """Starts a featurizer refit of an EVENT collection; wait for it with :meth:`wait_for_run`."""
        return to_model(self.grpc.fit_featurizer(collection), ClusteringRun)

    def classify(self, collection: str, items: Iterable[ItemLike]) -> list[Assignment]:
        """Assigns items to clusters with the served model without storing them; one per item."""
        return [to_model(a, Assignment) for a in self.grpc.classify(collection, items)]

    def search(
        self,
        collection: str,
        query: str | VectorLike | pb.ImageMetadata | pb.Event | Mapping[str, Any],
        *,
        limit: int = 10,
        cluster_id: int | None = None,
        ef: int = 0,
        exact: bool = False,
    ) -> list[SearchHit]:
        """Finds the points nearest to a query (see :meth:`EmbclusterClient.search`); best first."""
        hits = self.grpc.search(collection, query, limit=limit, cluster_id=cluster_id, ef=ef, exact=exact)
        return [to_model(hit, SearchHit) for hit in hits]

    def search_groups(
        self,
        collection: str,
        query: str | VectorLike | pb.ImageMetadata | pb.Event | Mapping[str, Any],
        *,
        groups: int = 5,
        group_size: int = 3,
    ) -> list[SearchGroup]:
        """The best hits per cluster, best cluster first, each with its label
        (see :meth:`EmbclusterClient.search_groups`)."""
        found = self.grpc.search_groups(collection, query, groups=groups, group_size=group_size)
        return [to_model(group, SearchGroup) for group in found]

    # Move and back up.

    def export_collection(
        self, collection: str, path: str, *, overwrite: bool = False, timeout: float | None = None
    ) -> SnapshotSummary:
        """Has the server write ``collection`` to a snapshot file on its machine
        (see :meth:`EmbclusterClient.export_collection`)."""
        summary = self.grpc.export_collection(collection, path, overwrite=overwrite, timeout=timeout)
        return to_model(summary, SnapshotSummary)

    def import_collection(
        self, path: str, *, name: str = "", timeout: float | None = None
    ) -> SnapshotSummary:
        """Has the server create a collection from a snapshot file on its machine
        (see :meth:`EmbclusterClient.import_collection`)."""
        summary = self.grpc.import_collection(path, name=name, timeout=timeout)
        return to_model(summary, SnapshotSummary)

    # Look.

    def get_report(
        self, collection: str, *, sample_size: int = 0, timeout: float | None = None
    ) -> CollectionReport:
        """Has the server make the collection's cluster report, one self-contained HTML file
        (see :meth:`EmbclusterClient.get_report`); ``.html`` is its bytes."""
        report = self.grpc.get_report(collection, sample_size=sample_size, timeout=timeout)
        return to_model(report, CollectionReport)

    def write_report(
        self, collection: str, path: str | Path, *, sample_size: int = 0, timeout: float | None = None
    ) -> CollectionReport:
        """Writes the collection's cluster report to ``path`` (open it in a browser); returns it."""
        report = self.grpc.write_report(collection, path, sample_size=sample_size, timeout=timeout)
        return to_model(report, CollectionReport)

    def health(self) -> str:
        """Returns the server's overall health status name, e.g. ``"SERVING"``."""
        return self.grpc.health()

