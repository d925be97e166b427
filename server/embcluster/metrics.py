"""Prometheus metrics of one service: counters and histograms recorded as work happens, and
gauges read from the service when scraped.

Each :class:`ServiceMetrics` owns its own :class:`~prometheus_client.CollectorRegistry` (never the
process-global one), so several services can live in one process (tests, benchmarks). Every
series is listed in README.md ("Metrics"); :data:`SERIES` names them for tests and docs.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Protocol
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer, generate_latest, make_wsgi_app
from prometheus_client.registry import Collector

from .cluster.lifecycle import KINDS
from .errors import EmbclusterError
from .schema import DriftReport

if TYPE_CHECKING:
    from .schema import ClusterInfo, CollectionInfo, RunInfo

__all__ = ["ServiceMetrics", "ServiceCollector", "MetricsEndpoint", "SERIES", "DRIFT_FIELDS", "WSGIApp"]

logger = logging.getLogger(__name__)

#: A WSGI application: ``(environ, start_response) -> body chunks``.
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_EMBED_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_RUN_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

#: Numeric fields of :class:`~embcluster.schema.DriftReport` exported as ``embcluster_drift_<field>``.
DRIFT_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(DriftReport)
    if f.name not in ("collection", "model_version", "previous_version", "candidates")  # candidates: GetDrift only
)

#: name -> (type, labels) of every series, as exposed (counters with their ``_total`` suffix).
SERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "embcluster_rpc_requests_total": ("counter", ("method", "code")),
    "embcluster_rpc_duration_seconds": ("histogram", ("method",)),
    "embcluster_points_ingested_total": ("counter", ("collection",)),
    "embcluster_embed_batch_duration_seconds": ("histogram", ("embedder",)),
    "embcluster_texts_truncated_total": ("counter", ("collection",)),
    "embcluster_embeddings_reused_total": ("counter", ("collection",)),
    "embcluster_runs_total": ("counter", ("state",)),
    "embcluster_run_duration_seconds": ("histogram", ("state",)),
    "embcluster_cluster_events_total": ("counter", ("collection", "kind")),
    "embcluster_collection_points": ("gauge", ("collection",)),
    "embcluster_cluster_points": ("gauge", ("collection", "cluster_id")),
    "embcluster_collection_clusters": ("gauge", ("collection",)),
    "embcluster_collection_anomalies": ("gauge", ("collection",)),
    "embcluster_collection_anomaly_rate": ("gauge", ("collection",)),
    "embcluster_collection_model_version": ("gauge", ("collection",)),
    **{f"embcluster_drift_{name}": ("gauge", ("collection",)) for name in DRIFT_FIELDS},
}


class _Observed(Protocol):
    """What the scrape-time collector reads (``EmbclusterService`` provides it)."""

    def collection_names(self) -> list[str]: ...

    def get_collection(self, name: str) -> CollectionInfo: ...

    def list_clusters(self, name: str) -> tuple[int, list[ClusterInfo]]: ...


class ServiceCollector(Collector):
    """Gauges read from the service at scrape time: sizes, anomalies, served model, drift.

    A collection deleted between listing and reading is skipped, and so is one whose reading
    fails otherwise (logged): one broken collection never fails the whole scrape. Drift gauges
    appear once the service offers ``drift(name)`` and only for values it could measure (None
    is left out).
    """

    def __init__(self, service: _Observed) -> None:
        self._service = service
        # collection -> (state key, info, clusters): counts are re-read only when the key moved
        # (each read scans indexes: ~0.5 s per million points).
        self._cache: dict[str, tuple[Any, CollectionInfo, list[ClusterInfo]]] = {}

    def describe(self) -> list[Metric]:
        return []  # no collect() at registration: the service may not be open yet

    def collect(self) -> Iterator[Metric]:
        g = {name: GaugeMetricFamily(name, doc, labels=labels) for name, doc, labels in (
            ("embcluster_collection_points", "Points stored in a collection.", ["collection"]),
            ("embcluster_cluster_points", "Points labelled with a cluster of the served model.", ["collection", "cluster_id"]),
            ("embcluster_collection_clusters", "Populated clusters of the served model.", ["collection"]),
            ("embcluster_collection_anomalies", "Points flagged as anomalies.", ["collection"]),
            ("embcluster_collection_anomaly_rate", "Flagged share of the collection's points.", ["collection"]),
            ("embcluster_collection_model_version", "Served model version (0 = none).", ["collection"]),
        )}
        drift = {name: GaugeMetricFamily(f"embcluster_drift_{name}", f"Drift of the served model: {name}.",
                                         labels=["collection"]) for name in DRIFT_FIELDS}
        drift_of = getattr(self._service, "drift", None)
        key_of = getattr(self._service, "state_key", None)
        names = self._service.collection_names()
        for gone in set(self._cache) - set(names):
            del self._cache[gone]
        for c in names:
            try:
                key = key_of(c) if key_of is not None else None
                cached = self._cache.get(c)
                if key is not None and cached is not None and cached[0] == key:
                    info, clusters = cached[1], cached[2]
                else:
                    info, clusters = self._read(c)
                    if key is not None:
                        self._cache[c] = (key, info, clusters)
            except EmbclusterError:  # deleted meanwhile
                continue
            except Exception:  # e.g. its store closed by a concurrent delete
                logger.warning("metrics of collection %s not exported", c, exc_info=True)
                continue
            g["embcluster_collection_points"].add_metric([c], info.point_count)
            g["embcluster_collection_clusters"].add_metric([c], info.cluster_count)
            g["embcluster_collection_anomalies"].add_metric([c], info.anomaly_count)
            g["embcluster_collection_anomaly_rate"].add_metric([c], info.anomaly_count / max(info.point_count, 1))
            g["embcluster_collection_model_version"].add_metric([c], info.served_model_version)
            for cl in clusters:
                g["embcluster_cluster_points"].add_metric([c, str(cl.cluster_id)], cl.size)
            if drift_of is not None:
                try:
                    report: Any = drift_of(c)
                except EmbclusterError:  # deleted meanwhile
                    continue
                except Exception:  # a scrape must not fail because one report did
                    logger.warning("drift of %s not exported", c, exc_info=True)
                    continue
                for name in DRIFT_FIELDS:
                    value = getattr(report, name, None)
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        drift[name].add_metric([c], float(value))
        yield from g.values()
        yield from drift.values()

    def _read(self, name: str) -> tuple[CollectionInfo, list[ClusterInfo]]:
        """A collection's counts and, with a served model, its cluster sizes (scans the store's indexes)."""
        info = self._service.get_collection(name)
        clusters: list[ClusterInfo] = []
        if info.served_model_version:
            try:
                _, clusters = self._service.list_clusters(name)
            except EmbclusterError:  # model gone meanwhile
                clusters = []
        return info, clusters


class ServiceMetrics:
    """The instruments of one service and the registry that exposes them.

    Args:
        registry: Registry to use; default a fresh one of its own.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.rpc_requests = Counter("embcluster_rpc_requests", "gRPC calls by method and final status code.",
                                    ["method", "code"], registry=self.registry)
        self.rpc_duration = Histogram("embcluster_rpc_duration_seconds",
                                      "gRPC call latency (a stream: until its last message).", ["method"],
                                      buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.points_ingested = Counter("embcluster_points_ingested", "Points accepted by Ingest/IngestStream.",
                                       ["collection"], registry=self.registry)
        self.embed_duration = Histogram("embcluster_embed_batch_duration_seconds",
                                        "Time to embed one ingest/classify/search batch.", ["embedder"],
                                        buckets=_EMBED_BUCKETS, registry=self.registry)
        self.texts_truncated = Counter(
            "embcluster_texts_truncated", "Texts longer than what was embedded of them (ingest, classify, search).",
            ["collection"], registry=self.registry)
        self.embeddings_reused = Counter(
            "embcluster_embeddings_reused", "Ingested items whose stored vector was reused: same id, same content.",
            ["collection"], registry=self.registry)
        self.runs = Counter("embcluster_runs", "Clustering runs by final state.", ["state"], registry=self.registry)
        self.run_duration = Histogram("embcluster_run_duration_seconds",
                                      "Clustering run wall time, start to final state.", ["state"],
                                      buckets=_RUN_BUCKETS, registry=self.registry)
        self.cluster_events = Counter(
            "embcluster_cluster_events", "Cluster life-cycle events (BIRTH, DEATH, SPLIT, MERGE, GROW, SHRINK) "
            "of the model versions served, counted when each is served.", ["collection", "kind"],
            registry=self.registry)
        self._watched = False
        self._lock = threading.Lock()
        self._rpc_children: dict[tuple[str, str], tuple[Any, Any]] = {}  # skips label checks per call

    def watch(self, service: _Observed) -> None:
        """Export the service's scrape-time gauges (once)."""
        with self._lock:
            if not self._watched:
                self.registry.register(ServiceCollector(service))
                self._watched = True

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """One finished gRPC call."""
        children = self._rpc_children.get((method, code))
        if children is None:
            children = (self.rpc_requests.labels(method, code), self.rpc_duration.labels(method))
            self._rpc_children[(method, code)] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_ingest(self, collection: str, points: int) -> None:
        """Points accepted into a collection."""
        self.points_ingested.labels(collection).inc(points)

    def forget_collection(self, collection: str) -> None:
        """Drop a deleted collection's recorded series (else its label stays until the process ends)."""
        for counter in (self.points_ingested, self.texts_truncated, self.embeddings_reused):
            try:
                counter.remove(collection)
            except KeyError:  # nothing was recorded for it
                pass
        for kind in KINDS:
            try:
                self.cluster_events.remove(collection, kind)
            except KeyError:
                pass

    def observe_truncated(self, collection: str, texts: int) -> None:
        """Texts of a batch that were longer than what was embedded (0 still creates the series)."""
        self.texts_truncated.labels(collection).inc(texts)

    def observe_reused(self, collection: str, items: int) -> None:
        """Items of an ingest that kept their stored vector instead of being embedded again."""
        self.embeddings_reused.labels(collection).inc(items)

    def observe_embed(self, embedder: str, seconds: float) -> None:
        """One embedding batch."""
        self.embed_duration.labels(embedder).observe(seconds)

    def observe_run(self, info: RunInfo, seconds: float) -> None:
        """A run reached its final state."""
        state = info.state.value
        self.runs.labels(state).inc()
        self.run_duration.labels(state).observe(seconds)

    def observe_cluster_events(self, collection: str, kinds: Iterable[str]) -> None:
        """The events of a version just served (one kind per event)."""
        for kind in kinds:
            self.cluster_events.labels(collection, kind).inc()

    def render(self) -> bytes:
        """The text exposition format of every series (what a scrape returns)."""
        return generate_latest(self.registry)


class MetricsEndpoint:
    """An HTTP(S) server answering ``GET /metrics`` from one registry, on a daemon thread.

    Args:
        metrics: The metrics to expose.
        host: Bind address (loopback by default in the settings: metrics name collections).
        port: Port; 0 picks a free one (see :attr:`port`).
        authorize: Given the request's ``Authorization`` header (or None), the HTTP status to answer
            with: 200 serves the metrics, anything else refuses (401 asks for a bearer token).
            None = open (no keys configured).
        certfile: PEM certificate (chain): HTTPS instead of HTTP (with ``keyfile``).
        keyfile: PEM private key of ``certfile``.
        client_cafile: PEM CA bundle: scrapers must present a certificate it signed (mTLS).
        routes: More WSGI apps on the same port, by path prefix (``"/report"`` serves ``/report``
            and everything under ``/report/``); each authorizes its own requests. Every other
            path is the metrics.
    """

    def __init__(self, metrics: ServiceMetrics, host: str, port: int, *,
                 authorize: Callable[[str | None], int] | None = None, certfile: str | None = None,
                 keyfile: str | None = None, client_cafile: str | None = None,
                 routes: Mapping[str, WSGIApp] | None = None) -> None:
        app = make_wsgi_app(metrics.registry)
        if authorize is not None:
            app = _guarded(app, authorize)
        if routes:
            app = _routed(app, dict(routes))

        class Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self._server = make_server(host, port, app, Server, handler_class=_QuietHandler)
        if certfile and keyfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
            if client_cafile:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(cafile=client_cafile)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()
        self.host = host
        self.port = int(self._server.server_port)
        shown_host = f"[{host}]" if ":" in host else host
        self.base_url = f"{'https' if certfile else 'http'}://{shown_host}:{self.port}"
        self.url = f"{self.base_url}/metrics"
        logger.info("metrics on %s%s", self.url, " (API key required)" if authorize is not None else "")

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


_REASONS = {401: "401 Unauthorized", 403: "403 Forbidden"}


def _routed(default: WSGIApp, routes: dict[str, WSGIApp]) -> WSGIApp:
    """A WSGI app sending each request to the app of its path prefix, else to ``default``."""
    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        for prefix, app in routes.items():
            if path == prefix or path.startswith(prefix + "/"):
                return app(environ, start_response)
        return default(environ, start_response)
    return route


def _guarded(app: Any, authorize: Callable[[str | None], int]) -> Any:
    """A WSGI app that answers only requests ``authorize`` lets through."""
    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        status = authorize(environ.get("HTTP_AUTHORIZATION"))
        if status == 200:
            return app(environ, start_response)
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        if status == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="embcluster"'))
        start_response(_REASONS.get(status, f"{status} Refused"), headers)
        return [b"a valid API key with the read scope and no collection restriction is required "
                b"(Authorization: Bearer <key>)\n"]
    return guarded


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass
