"""Asyncio client for the embcluster.v1 gRPC service (same methods as ``EmbclusterClient``)."""
# Generated from client.py by clients/python/generate_aio.py: do not edit by hand.

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from embcluster.api.v1 import embcluster_pb2 as pb
from embcluster.api.v1 import embcluster_pb2_grpc as pb_grpc

from . import _requests as rq
from ._channel import Security, open_aio_channel
from ._typed_calls import typed_errors_aio
from .items import ItemLike, VectorLike

__all__ = ["AsyncEmbclusterClient"]

logger = logging.getLogger(__name__)


class AsyncEmbclusterClient:
    """Asyncio client for an embcluster server.

    Returns protobuf messages (``pb``); :class:`~embcluster_client.AsyncClient` wraps it and returns
    Python models. A failed call raises the :mod:`~embcluster_client.errors` exception of its
    status code (``NotFound``, ``InvalidArgument``, ...), a ``grpc.RpcError`` with the server's
    ``code()`` and ``details()``; streams raise it while they are iterated.

    Example::

        async with AsyncEmbclusterClient("127.0.0.1:50051") as client:
            await client.create_collection("docs")
            await client.ingest("docs", ["first text", {"id": "sku-1", "text": "second"}])
            await client.cluster("docs", k=8)
    """

    def __init__(
        self,
        target: str = rq.DEFAULT_TARGET,
        *,
        timeout: float = 30.0,
        max_message_bytes: int = rq.DEFAULT_MAX_MESSAGE_BYTES,
        channel: grpc.aio.Channel | None = None,
        api_key: str | None = None,
        tls: bool = False,
        ca_cert: str | Path | None = None,
        client_cert: str | Path | None = None,
        client_key: str | Path | None = None,
        server_name: str | None = None,
    ) -> None:
        """Opens a channel to the server.

        Args:
            target: ``host:port`` of the server.
            timeout: Deadline in seconds for each RPC.
            max_message_bytes: Send and receive message size limit of the channel.
            channel: An existing ``grpc.aio`` channel to use instead of opening one;
                ``close()`` leaves a channel given here open.
            api_key: API key sent on every call as ``authorization: Bearer <key>``.
            tls: Connect with TLS (implied by ``ca_cert``, ``client_cert`` or ``server_name``).
            ca_cert: PEM file of the CA that signed the server's certificate (default: system roots).
            client_cert: PEM client certificate for mTLS (with ``client_key``).
            client_key: PEM private key of ``client_cert``.
            server_name: Name to verify the server's certificate against, when not the target's host.
        """
        self._timeout = timeout
        self._owns_channel = channel is None
        security = Security(api_key, tls, ca_cert, client_cert, client_key, server_name)
        self._channel = channel or open_aio_channel(target, rq.channel_options(max_message_bytes), security)
        typed = typed_errors_aio(self._channel)
        self._stub = pb_grpc.EmbclusterStub(typed)
        self._health = health_pb2_grpc.HealthStub(typed)

    async def close(self) -> None:
        """Closes the channel if this client opened it."""
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> AsyncEmbclusterClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # Collections.

    async def create_collection(
        self,
        name: str,
        *,
        input_kind: rq.InputKindName = "text",
        distance: rq.DistanceName = "cosine",
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
        long_text: rq.LongTextName | None = None,
        embedding_tier: str = "",
        vector_index: pb.VectorIndexSettings | None = None,
    ) -> pb.Collection:
        """Creates a collection.

        Args:
            name: Collection name, ``[A-Za-z0-9_-]{1,64}``.
            input_kind: ``"text"`` (embedded by the server), ``"vector"`` or ``"image_metadata"``.
            distance: ``"cosine"`` or ``"euclid"``.
            embedding_model: Text collections: the model name; empty = server default. With
                ``embedding_tier="model_dir"``: the sentence-transformers model directory on the server.
            vector_dim: Vector collections: the vectors' dimension. Text and image metadata
                collections: 0, or the dimension their model must have.
            store_source: Keep each item's text (server default: True).
            contamination: Share of points flagged as anomalies, in (0, 0.5].
            min_cluster_size: Smallest fit-sample size of a populated cluster.
            default_k: k for runs that give none.
            seed: Seed for runs that give none.
            anomaly_scorer: ``ensemble`` (default), ``cblof``, ``normalized`` or ``distance``.
            threshold_mode: ``contamination`` (default), ``cluster_quantile`` or ``absolute``.
            anomaly_threshold: The score threshold of the ``absolute`` mode (``ensemble``: in
                multiples of the fit sample's median-to-90th-percentile spread, e.g. 3.0).
            image_metadata: Image metadata collections: which fields are rendered and embedded
                (see :func:`~embcluster_client.items.make_image_spec`); None = the default spec.
            schedule: When it re-clusters by itself (build one with
                :func:`embcluster_client.schedule`); None = never.
            event_schema: EVENT collections (required there): the typed fields, built with
                :func:`~embcluster_client.items.make_event_schema` or proposed by :meth:`infer_schema`.
            long_text: TEXT and image metadata collections: how a text longer than the model's
                window is embedded, ``"truncate"`` (its first window; the server default) or
                ``"pool"`` (the normalised mean of its windows); fixed at creation.
            embedding_tier: How the text model runs, fixed at creation: ``"full"`` (empty: the
                default), ``"onnx-int8"``, ``"static"`` (a static model distilled from the model:
                tens of times faster), ``"model_dir"`` or ``"gpu"``. The first collection on
                ``static`` or ``onnx-int8`` builds the tier (tens of seconds): give the call a
                deadline that covers it, or retry on UNAVAILABLE.
            vector_index: The HNSW index (``pb.VectorIndexSettings``: ``m``, ``ef_construct``,
                ``ef``, ``min_points``, ``quantization`` ``"none"`` or ``"int8"``; a field left 0
                or empty = its default); None = the defaults; fixed at creation.

        Returns:
            The created collection.
        """
        req = rq.create_collection(
            name,
            input_kind=input_kind,
            distance=distance,
            embedding_model=embedding_model,
            vector_dim=vector_dim,
            store_source=store_source,
            contamination=contamination,
            min_cluster_size=min_cluster_size,
            default_k=default_k,
            seed=seed,
            anomaly_scorer=anomaly_scorer,
            threshold_mode=threshold_mode,
            anomaly_threshold=anomaly_threshold,
            image_metadata=image_metadata,
            schedule=schedule,
            event_schema=event_schema,
            long_text=long_text,
            embedding_tier=embedding_tier,
            vector_index=vector_index,
        )
        return await self._stub.CreateCollection(req, timeout=self._timeout)

    async def attach_collection(
        self,
        name: str,
        qdrant_collection: str,
        *,
        vector_name: str = "",
        distance: rq.DistanceName | None = None,
        field_prefix: str = "",
        collection_settings: pb.CollectionSettings | None = None,
    ) -> pb.Collection:
        """Clusters an existing Qdrant collection the service did not create (server: store=qdrant).

        Only the five reserved fields are written onto its points (as ``<field_prefix><name>``);
        every other payload key is left as it is, and the Qdrant collection is never dropped.

        Args:
            name: The service's name for it, ``[A-Za-z0-9_-]{1,64}``.
            qdrant_collection: The existing Qdrant collection.
            vector_name: Which named vector to cluster (required when there are several).
            distance: ``"cosine"`` or ``"euclid"`` to check against the collection; None = its own.
            field_prefix: Prefix of the reserved fields, e.g. ``"ec_"``, when ``cluster_id`` etc. are taken.
            collection_settings: Settings (build with :func:`embcluster_client.settings`).

        Returns:
            The attached collection (``attached`` set).
        """
        req = rq.attach_collection(name, qdrant_collection, vector_name=vector_name, distance=distance,
                                   field_prefix=field_prefix, collection_settings=collection_settings)
        return await self._stub.AttachCollection(req, timeout=self._timeout)

    async def get_collection(self, name: str) -> pb.Collection:
        """Returns the collection ``name`` with its effective settings and counts."""
        req = pb.GetCollectionRequest(name=name)
        return await self._stub.GetCollection(req, timeout=self._timeout)

    async def list_collections(self) -> list[pb.Collection]:
        """Returns all collections."""
        resp = await self._stub.ListCollections(pb.ListCollectionsRequest(), timeout=self._timeout)
        return list(resp.collections)

    async def update_collection(
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
        schedule: pb.Schedule | None = None,
    ) -> pb.Collection:
        """Changes the given settings of a collection; None leaves a setting as it is.

        Args:
            name: The collection.
            contamination: Share of points flagged as anomalies by the next run.
            min_cluster_size: Smallest fit-sample size of a populated cluster.
            default_k: k for runs that give none.
            seed: Seed for runs that give none.
            anomaly_scorer: ``ensemble`` (default), ``cblof``, ``normalized`` or ``distance``.
            threshold_mode: ``contamination`` (default), ``cluster_quantile`` or ``absolute``.
            anomaly_threshold: The score threshold of the ``absolute`` mode (``ensemble``: in
                multiples of the fit sample's median-to-90th-percentile spread, e.g. 3.0).
            schedule: Replaces the re-clustering schedule as a whole (build one with
                :func:`embcluster_client.schedule`; an empty one switches it off).

        Returns:
            The updated collection.
        """
        req = rq.update_collection(
            name,
            contamination=contamination,
            min_cluster_size=min_cluster_size,
            default_k=default_k,
            seed=seed,
            anomaly_scorer=anomaly_scorer,
            threshold_mode=threshold_mode,
            anomaly_threshold=anomaly_threshold,
            schedule=schedule,
        )
        return await self._stub.UpdateCollection(req, timeout=self._timeout)

    async def delete_collection(self, name: str) -> bool:
        """Deletes a collection; returns whether it existed."""
        req = pb.DeleteCollectionRequest(name=name)
        resp = await self._stub.DeleteCollection(req, timeout=self._timeout)
        return resp.deleted

    # Points.

    async def ingest(self, collection: str, items: Iterable[ItemLike]) -> list[pb.ItemResult]:
        """Upserts items in one all-or-nothing request.

        Args:
            collection: The collection.
            items: Texts, vectors, ``pb.Item`` messages or dicts (see ``make_item``).

        Returns:
            One result per item, in order; ``result.truncated`` is set when the item's text was
            longer than what the server embedded of it (``sum(r.truncated for r in results)``
            counts them).

        Raises:
            TypeError, ValueError: an item cannot be converted (names its index).
        """
        resp = await self._stub.Ingest(rq.ingest(collection, items), timeout=self._timeout)
        return list(resp.results)

    async def ingest_many(
        self, collection: str, items: Iterable[ItemLike], *, batch_size: int = 256
    ) -> list[pb.ItemResult]:
        """Upserts items in batches of ``batch_size``, sent in order.

        Each batch is all-or-nothing; an error in a later batch (RPC or conversion)
        leaves the earlier batches stored.

        Args:
            collection: The collection.
            items: Texts, vectors, ``pb.Item`` messages or dicts; converted lazily.
            batch_size: Items per request.

        Returns:
            One result per item, in order.
        """
        results: list[pb.ItemResult] = []
        for req in rq.ingest_batches(collection, items, batch_size):
            resp = await self._stub.Ingest(req, timeout=self._timeout)
            results.extend(resp.results)
            logger.debug("ingested %d items into %s", len(results), collection)
        return results

    async def delete_points(
        self, collection: str, *, ids: Iterable[str] = (), point_ids: Iterable[str] = ()
    ) -> int:
        """Deletes points by caller id and/or point id; returns how many were deleted."""
        req = rq.delete_points(collection, ids=ids, point_ids=point_ids)
        resp = await self._stub.DeletePoints(req, timeout=self._timeout)
        return resp.deleted

    async def get_point(
        self,
        collection: str,
        *,
        id: str | None = None,
        point_id: str | None = None,
        with_vector: bool = False,
    ) -> pb.Point:
        """Fetches one point by caller id or point id.

        Args:
            collection: The collection.
            id: The caller id given at ingest.
            point_id: The point id returned by ingest.
            with_vector: Include the stored vector.

        Returns:
            The point.

        Raises:
            ValueError: not exactly one of ``id`` and ``point_id`` is given.
        """
        req = rq.get_point(collection, id=id, point_id=point_id, with_vector=with_vector)
        return await self._stub.GetPoint(req, timeout=self._timeout)

    async def list_cluster_members(
        self, collection: str, cluster_id: int, *, page_size: int = 100, page_token: str = ""
    ) -> pb.ListPointsResponse:
        """Returns one page of the points labelled ``cluster_id``."""
        req = rq.list_cluster_members(
            collection, cluster_id, page_size=page_size, page_token=page_token
        )
        return await self._stub.ListClusterMembers(req, timeout=self._timeout)

    async def iter_cluster_members(
        self, collection: str, cluster_id: int, *, page_size: int = 500
    ) -> AsyncIterator[pb.Point]:
        """Yields every point labelled ``cluster_id``, following page tokens."""
        token = ""
        while True:
            page = await self.list_cluster_members(
                collection, cluster_id, page_size=page_size, page_token=token
            )
            for item in page.points:
                yield item
            token = page.next_page_token
            if not token:
                return

    async def list_anomalies(
        self, collection: str, *, page_size: int = 100, page_token: str = ""
    ) -> pb.ListPointsResponse:
        """Returns one page of the points flagged as anomalies."""
        req = rq.list_anomalies(collection, page_size=page_size, page_token=page_token)
        return await self._stub.ListAnomalies(req, timeout=self._timeout)

    async def iter_anomalies(self, collection: str, *, page_size: int = 500) -> AsyncIterator[pb.Point]:
        """Yields every point flagged as an anomaly, following page tokens."""
        token = ""
        while True:
            page = await self.list_anomalies(collection, page_size=page_size, page_token=token)
            for item in page.points:
                yield item
            token = page.next_page_token
            if not token:
                return

    async def list_points(
        self,
        collection: str,
        *,
        cluster_id: int | None = None,
        anomalies: bool | None = None,
        model_version: int | None = None,
        page_size: int = 100,
        page_token: str = "",
    ) -> pb.ListPointsResponse:
        """Returns one page of every point, with its payload and the served model's assignment.

        Across the pages each point comes exactly once, also while points are ingested: new
        points come after the pages already read, a replaced point keeps its place.

        Args:
            collection: The collection.
            cluster_id: Only this cluster's points.
            anomalies: True: only flagged points; False: only unflagged ones.
            model_version: Only points whose stored labels are this version's.
            page_size: Points per page (at most 1000).
            page_token: The previous page's ``next_page_token`` (same filters); "" for the first.
        """
        req = rq.list_points(
            collection, cluster_id=cluster_id, anomalies=anomalies, model_version=model_version,
            page_size=page_size, page_token=page_token,
        )
        return await self._stub.ListPoints(req, timeout=self._timeout)

    async def iter_points(
        self,
        collection: str,
        *,
        cluster_id: int | None = None,
        anomalies: bool | None = None,
        model_version: int | None = None,
        page_size: int = 500,
    ) -> AsyncIterator[pb.Point]:
        """Yields every point (or those matching the filters of :meth:`list_points`) once, following page tokens."""
        token = ""
        while True:
            page = await self.list_points(
                collection, cluster_id=cluster_id, anomalies=anomalies, model_version=model_version,
                page_size=page_size, page_token=token,
            )
            for item in page.points:
                yield item
            token = page.next_page_token
            if not token:
                return

    # Clustering.

    async def start_clustering(
        self,
        collection: str,
        *,
        k: int | None = None,
        k_range: tuple[int, int] | None = None,
        seed: int | None = None,
        sample_size: int = 0,
        n_init: int = 0,
    ) -> pb.ClusteringRun:
        """Starts a clustering run.

        Args:
            collection: The collection.
            k: Number of clusters.
            k_range: ``(min, max)``: choose k by the server's rank vote. Neither k nor k_range
                uses the collection's default_k.
            seed: Random seed; None = the collection's seed.
            sample_size: Fit sample size; 0 = automatic.
            n_init: k-means restarts; 0 = server default.

        Returns:
            The new run (usually PENDING).

        Raises:
            ValueError: both ``k`` and ``k_range`` are given.
        """
        req = rq.start_clustering(
            collection, k=k, k_range=k_range, seed=seed, sample_size=sample_size, n_init=n_init
        )
        return await self._stub.StartClustering(req, timeout=self._timeout)

    async def get_clustering_run(self, collection: str, run_id: str) -> pb.ClusteringRun:
        """Returns the current state of a run."""
        req = rq.clustering_run(collection, run_id)
        return await self._stub.GetClusteringRun(req, timeout=self._timeout)

    async def cancel_clustering_run(self, collection: str, run_id: str) -> pb.ClusteringRun:
        """Asks the server to cancel a run; returns its state after the request."""
        req = rq.clustering_run(collection, run_id)
        return await self._stub.CancelClusteringRun(req, timeout=self._timeout)

    async def wait_for_run(
        self,
        collection: str,
        run_id: str,
        *,
        poll_interval: float = 0.2,
        timeout: float = 600.0,
        on_progress: Callable[[pb.ClusteringRun], None] | None = None,
    ) -> pb.ClusteringRun:
        """Polls a run until it SUCCEEDED, FAILED or was CANCELLED.

        QUEUED (waiting behind an automatic run of the collection), PENDING and RUNNING are not
        final: it keeps polling, and ``timeout`` counts the time queued too.

        Args:
            collection: The collection.
            run_id: The run.
            poll_interval: Seconds between polls.
            timeout: Seconds to wait in all.
            on_progress: Plain (non-async) callable called with the run after each poll.

        Returns:
            The succeeded run.

        Raises:
            RunFailed: the run ended FAILED or CANCELLED.
            TimeoutError: the run did not finish within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            run = await self.get_clustering_run(collection, run_id)
            logger.debug("run %s: %s %s %.2f", run_id, pb.RunState.Name(run.state), run.phase, run.progress)
            if on_progress is not None:
                on_progress(run)
            if rq.run_finished(run):
                return run
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"clustering run {run_id} not finished after {timeout}s")
            await asyncio.sleep(min(poll_interval, remaining))

    def watch_run(self, collection: str, run_id: str, *, timeout: float | None = None) -> AsyncIterator[pb.ClusteringRun]:
        """Streams the run's state now and at each change of state, phase or progress, until it ends.

        No polling: the server pushes each change (``WatchClusteringRun``). The stream ends after
        the final state (SUCCEEDED, FAILED or CANCELLED); ``cancel()`` the returned call to stop
        early. An unknown run raises ``NotFound`` on iteration.

        Example::

            async for run in client.watch_run("docs", run_id):
                print(run.phase, run.progress)

        Args:
            collection: The collection.
            run_id: The run.
            timeout: Deadline in seconds for the whole stream; None = no deadline.
        """
        return self._stub.WatchClusteringRun(rq.clustering_run(collection, run_id), timeout=timeout)

    async def cluster(
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
        on_progress: Callable[[pb.ClusteringRun], None] | None = None,
    ) -> pb.ClusteringRun:
        """Starts a clustering run and waits for it (see ``start_clustering``, ``wait_for_run``).

        If an automatic run (a schedule's, or an EVENT collection's featurizer fit) is in
        progress, the server queues this one behind it (``RUN_STATE_QUEUED``) and this waits for both.

        Returns:
            The succeeded run.

        Raises:
            RunFailed: the run ended FAILED or CANCELLED.
            TimeoutError: the run did not finish within ``timeout``.
        """
        run = await self.start_clustering(
            collection, k=k, k_range=k_range, seed=seed, sample_size=sample_size, n_init=n_init
        )
        return await self.wait_for_run(
            collection,
            run.run_id,
            poll_interval=poll_interval,
            timeout=timeout,
            on_progress=on_progress,
        )

    async def list_clusters(self, collection: str) -> pb.ListClustersResponse:
        """Returns the served model's version and clusters."""
        req = pb.ListClustersRequest(collection=collection)
        return await self._stub.ListClusters(req, timeout=self._timeout)

    async def get_cluster(self, collection: str, cluster_id: int, model_version: int = 0) -> pb.ClusterSummary:
        """Returns one cluster's summary (label, keywords or fields, representatives) as the run that
        fitted ``model_version`` (0 = the served one) computed it; ``NotFound`` for an unknown id or version.

        ``kind`` says what it holds: ``SUMMARY_KIND_KEYWORDS`` (text), ``SUMMARY_KIND_FIELDS`` (events),
        ``SUMMARY_KIND_REPRESENTATIVES_ONLY`` (vectors), or ``SUMMARY_KIND_UNSPECIFIED`` for a version
        without summaries (its own figures only).
        """
        req = pb.GetClusterRequest(collection=collection, cluster_id=cluster_id, model_version=model_version)
        return await self._stub.GetCluster(req, timeout=self._timeout)

    async def get_drift(self, collection: str) -> pb.Drift:
        """Returns how far the collection has moved from its served model (unset = not measurable yet)."""
        return await self._stub.GetDrift(rq.get_drift(collection), timeout=self._timeout)

    def ingest_stream(self, collection: str, batches: Iterable[Iterable[ItemLike]]) -> AsyncIterator[pb.IngestStreamResponse]:
        """Streams batches (a feed); yields one acknowledgement per batch, in order.

        Each batch is all-or-nothing: a rejected batch comes back with ``error_code`` and
        ``error_message`` set and the stream goes on. Batches are converted lazily, so the
        input may be an endless generator.
        """
        requests = (rq.ingest(collection, batch) for batch in batches)
        return self._stub.IngestStream(requests)

    def watch_anomalies(self, collection: str) -> AsyncIterator[pb.Point]:
        """Yields points flagged at ingest as they arrive; ``cancel()`` the returned call to stop."""
        return self._stub.WatchAnomalies(pb.WatchAnomaliesRequest(collection=collection))

    async def explain_point(
        self, collection: str, *, id: str | None = None, point_id: str | None = None, neighbours: int = 5
    ) -> pb.Explanation:
        """Explains a point's flag: its cluster, distances against radii, nearest normal neighbours."""
        req = rq.explain_point(collection, id=id, point_id=point_id, neighbours=neighbours)
        return await self._stub.ExplainPoint(req, timeout=self._timeout)

    async def list_models(self, collection: str) -> list[pb.Model]:
        """Returns every saved model version of the collection, oldest first."""
        req = pb.ListModelsRequest(collection=collection)
        return list((await self._stub.ListModels(req, timeout=self._timeout)).models)

    async def get_model(self, collection: str, version: int = 0) -> pb.Model:
        """Returns one model version (0 = the served one) with its parameters and metrics."""
        req = pb.GetModelRequest(collection=collection, version=version)
        return await self._stub.GetModel(req, timeout=self._timeout)

    def watch_cluster_events(self, collection: str, since_version: int = 0) -> AsyncIterator[pb.ClusterEvent]:
        """Yields cluster life-cycle events: those stored after ``since_version``, then each new version's.

        First the events of the published versions after ``since_version`` (0: every version still
        stored; pass the served version to see only what comes next), oldest first, then those of
        each version a run serves from now on. ``cancel()`` the returned call to stop; the stream
        ends with ``NotFound`` if the collection is deleted.
        """
        req = pb.WatchClusterEventsRequest(collection=collection, since_version=since_version)
        return self._stub.WatchClusterEvents(req)

    async def rollback_model(self, collection: str, version: int) -> pb.ClusteringRun:
        """Starts a run that serves ``version`` again, rewriting every point's fields to it.

        Wait for it with :meth:`wait_for_run`.
        """
        req = pb.RollbackModelRequest(collection=collection, version=version)
        return await self._stub.RollbackModel(req, timeout=self._timeout)

    # Reads.

    async def infer_schema(
        self, samples: Iterable[Mapping[str, Any] | pb.Event], *, entity_key: str = ""
    ) -> pb.InferSchemaResponse:
        """Asks the server to propose an ``EventSchema`` from sample events (nothing is stored).

        Args:
            samples: Events as dicts of field values (see :func:`~embcluster_client.items.make_event`).
            entity_key: Propose a profile schema keyed by this field.

        Returns:
            The proposed ``schema`` (pass it to ``create_collection(event_schema=...)``) and ``notes``.
        """
        req = rq.infer_schema(samples, entity_key=entity_key)
        return await self._stub.InferSchema(req, timeout=self._timeout)

    async def fit_featurizer(self, collection: str) -> pb.ClusteringRun:
        """Starts a featurizer refit of an EVENT collection (re-featurizes every point, then
        re-clusters if a model is served). Wait for it with :meth:`wait_for_run`.
        """
        req = pb.FitFeaturizerRequest(collection=collection)
        return await self._stub.FitFeaturizer(req, timeout=self._timeout)

    async def classify(self, collection: str, items: Iterable[ItemLike]) -> list[pb.Assignment]:
        """Assigns items to clusters with the served model without storing them.

        Args:
            collection: The collection.
            items: Texts, vectors, ``pb.Item`` messages or dicts; ids and metadata are ignored.

        Returns:
            One assignment per item, in order.
        """
        resp = await self._stub.Classify(rq.classify(collection, items), timeout=self._timeout)
        return list(resp.assignments)

    async def search(
        self,
        collection: str,
        query: str | VectorLike | pb.ImageMetadata | pb.Event | Mapping[str, Any],
        *,
        limit: int = 10,
        cluster_id: int | None = None,
        ef: int = 0,
        exact: bool = False,
    ) -> list[pb.SearchHit]:
        """Finds the points nearest to a query.

        Args:
            collection: The collection.
            query: A text, a vector (sequence of numbers / 1-D array), or image metadata
                (``pb.ImageMetadata`` or a dict with ``title``/``caption``/``alt_text``/``tags``/``attributes``),
                or an event (``pb.Event``, see :func:`~embcluster_client.items.make_event`).
            limit: Maximum number of hits.
            cluster_id: Only search members of this cluster.
            ef: Candidates kept in the vector index for this search, [10, 10000] (0: the
                collection's ``vector_index.ef``): more, better recall, slower.
            exact: Scan every point instead of the index (the reference for measuring recall).

        Returns:
            The hits, best first.
        """
        req = rq.search(collection, query, limit=limit, cluster_id=cluster_id, ef=ef, exact=exact)
        resp = await self._stub.Search(req, timeout=self._timeout)
        return list(resp.hits)

    async def search_groups(
        self,
        collection: str,
        query: str | VectorLike | pb.ImageMetadata | pb.Event | Mapping[str, Any],
        *,
        groups: int = 5,
        group_size: int = 3,
    ) -> list[pb.SearchGroup]:
        """Finds the best hits per cluster: "trail running shoes / road running shoes / sandals".

        Args:
            collection: The collection (it needs a served model).
            query: As for :meth:`search`.
            groups: Most clusters (at most 100).
            group_size: Most hits per cluster (at most 100; ``groups * group_size`` at most 1000).

        Returns:
            The groups, best first (the cluster with the best hit first), each with its
            ``cluster_id``, its ``label`` from the served version's summaries ("" without) and its
            ``hits``, best first.
        """
        req = rq.search(collection, query, group_by_cluster=(groups, group_size))
        resp = await self._stub.Search(req, timeout=self._timeout)
        return list(resp.groups)

    # Move and back up.

    async def export_collection(
        self, collection: str, path: str, *, overwrite: bool = False, timeout: float | None = None
    ) -> pb.SnapshotSummary:
        """Has the server write ``collection`` to a snapshot file.

        Args:
            collection: The collection.
            path: The snapshot file **on the server's machine** (absolute, or relative to the
                server's ``<data_dir>/snapshots``); outside that directory and the server's
                ``EMBCLUSTER_SNAPSHOT_DIRS``, PERMISSION_DENIED.
            overwrite: Replace an existing file (otherwise ALREADY_EXISTS).
            timeout: Deadline in seconds (default: the larger of the client's and one hour).

        Returns:
            The summary: points, model versions, bytes and sha256 of the file.
        """
        req = rq.export_collection(collection, path, overwrite=overwrite)
        return await self._stub.ExportCollection(req, timeout=self._snapshot_timeout(timeout))

    async def import_collection(
        self, path: str, *, name: str = "", timeout: float | None = None
    ) -> pb.SnapshotSummary:
        """Has the server create a collection from a snapshot file, in its own storage backend.

        Args:
            path: The snapshot file **on the server's machine**.
            name: The new collection's name (default: the name in the snapshot).
            timeout: Deadline in seconds (default: the larger of the client's and one hour).

        Returns:
            The summary: the collection created, points, model versions, the served version.
        """
        req = rq.import_collection(path, name=name)
        return await self._stub.ImportCollection(req, timeout=self._snapshot_timeout(timeout))

    # Look.

    async def get_report(
        self, collection: str, *, sample_size: int = 0, timeout: float | None = None
    ) -> pb.CollectionReport:
        """Has the server make the collection's cluster report: one self-contained HTML file.

        Args:
            collection: The collection (it needs a served model: FAILED_PRECONDITION before).
            sample_size: Most points drawn on the map (0 = 10,000; at most 50,000).
            timeout: Deadline in seconds (default: the larger of the client's and five minutes).

        Returns:
            The report: ``html`` (bytes, UTF-8) and what it holds (``model_version``,
            ``points_drawn``, ``clusters``, ...).
        """
        req = rq.get_report(collection, sample_size=sample_size)
        deadline = timeout if timeout is not None else max(self._timeout, rq.REPORT_TIMEOUT_S)
        return await self._stub.GetReport(req, timeout=deadline)

    async def write_report(
        self, collection: str, path: str | Path, *, sample_size: int = 0, timeout: float | None = None
    ) -> pb.CollectionReport:
        """Writes the collection's cluster report (see :meth:`get_report`) to ``path``; open it in a browser.

        Returns:
            The report, as :meth:`get_report` returns it.
        """
        report = await self.get_report(collection, sample_size=sample_size, timeout=timeout)
        Path(path).write_bytes(report.html)
        return report

    def _snapshot_timeout(self, timeout: float | None) -> float:
        return timeout if timeout is not None else max(self._timeout, rq.SNAPSHOT_TIMEOUT_S)

    async def health(self) -> str:
        """Returns the server's overall health status name, e.g. ``"SERVING"``."""
        req = health_pb2.HealthCheckRequest(service="")
        resp = await self._health.Check(req, timeout=self._timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
