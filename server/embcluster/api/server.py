"""Builds the gRPC server: the servicer, health, reflection, the observability, auth and error interceptors, TLS."""

from __future__ import annotations

import errno
import logging
import socket
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ..auth import KeyRing, check_exposure, is_loopback
from ..config import Settings
from ..errors import Unavailable
from ..pipeline import EmbclusterService
from .auth import AuthInterceptor
from .errors import ErrorInterceptor
from .health import HealthService
from .observe import ObservabilityInterceptor
from .reflection import enable_reflection
from .servicer import EmbclusterServicer
from .streams import StreamLimitInterceptor, StreamSlots
from .tls import server_credentials
from .v1 import embcluster_pb2 as pb
from .v1 import embcluster_pb2_grpc as pb_grpc

__all__ = ["SERVICE_NAME", "GrpcServer"]

logger = logging.getLogger(__name__)

HEALTH_FLUSH_S = 1.0  # at stop: how long health watchers get to receive NOT_SERVING
CANCEL_WAIT_S = 5.0  # after the grace period: how long cancelled calls get to end before stop() returns
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Embcluster"].full_name


class GrpcServer:
    """A started gRPC server over an opened :class:`EmbclusterService`.

    Args:
        service: The core, already opened.
        settings: Host, port, worker and message-size settings.
        observe: Request ids + RPC metrics (:class:`ObservabilityInterceptor`); default on.
    """

    def __init__(self, service: EmbclusterService, settings: Settings, *, observe: bool = True) -> None:
        self.service = service
        # Outermost first: request ids and metrics see the status the error interceptor set.
        # Innermost: the stream cap, so its RESOURCE_EXHAUSTED is mapped like any domain error.
        self.streams = StreamSlots(settings.open_streams_limit, settings.open_streams_per_client)
        self.grace_s = settings.shutdown_grace_s
        interceptors: list[grpc.ServerInterceptor] = [ErrorInterceptor(), StreamLimitInterceptor(self.streams)]
        if observe:  # off only to measure what it costs (bench/bench_metrics.py)
            interceptors.insert(0, ObservabilityInterceptor(service.metrics))
        # Security: API keys (outside the error interceptor and the stream cap: a refused call
        # reaches neither) and TLS; refuse an open server on a non-loopback address.
        self.keys = KeyRing.load(settings.api_keys_file, settings.api_keys)
        self.tls = settings.tls_cert_file is not None
        self._check_exposure(settings)
        if self.keys:
            interceptors.insert(1 if observe else 0, AuthInterceptor(self.keys))
        limit = settings.max_message_bytes
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix="grpc"),
            interceptors=interceptors,
            # Over-limit messages are refused by gRPC before parsing: RESOURCE_EXHAUSTED.
            # No SO_REUSEPORT (gRPC's default): with it a second server binds a port in use without
            # a word and the kernel splits the calls between the two.
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
                     ("grpc.so_reuseport", 0)],
        )
        pb_grpc.add_EmbclusterServicer_to_server(EmbclusterServicer(service), self._server)
        self._health = HealthService()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        enable_reflection((SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), self._server)
        address = f"{settings.host}:{settings.port}"
        credentials = server_credentials(settings)
        # A fixed port is asked of the OS first: a port in use is then our one line, not gRPC's log line too.
        problem = _bind_problem(settings.host, settings.port) if settings.port else None
        if problem is not None:
            raise Unavailable(f"cannot bind {address}: {problem}")
        try:
            self.port = (self._server.add_secure_port(address, credentials) if credentials is not None
                         else self._server.add_insecure_port(address))
        except RuntimeError:  # gRPC says only "Failed to bind"; the OS says why
            self.port = 0
        if self.port == 0:  # lost a race for the port, or a reason the probe cannot see
            why = _bind_problem(settings.host, settings.port) or "gRPC could not bind it (GRPC_VERBOSITY=debug says why)"
            raise Unavailable(f"cannot bind {address}: {why}")
        self.address = f"{settings.host}:{self.port}"

    def _check_exposure(self, settings: Settings) -> None:
        binds = {"gRPC": settings.host}
        if settings.metrics_enabled:
            binds["metrics"] = settings.metrics_host
        for warning in check_exposure(binds, bool(self.keys), settings.insecure_open):
            logger.warning("%s", warning)
        if self.keys and not self.tls and any(not is_loopback(h) for h in binds.values()):
            logger.warning("API keys are configured but the gRPC port has no TLS (tls_cert_file): keys cross "
                           "the network in plaintext")

    def start(self, *, ready: bool = True) -> None:
        """Start serving; health reports SERVING, or NOT_SERVING until :meth:`set_ready` when not ``ready``.

        ``embcluster serve`` starts NOT_SERVING while its default text model loads: calls are
        answered at once (those that need the model wait for it), and health checks, load
        balancers and ``embcluster health`` see when the model is ready.
        """
        self._server.start()
        self._set_health(health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING)
        logger.info("serving embcluster on %s (%s, %s)%s", self.address, "TLS" if self.tls else "plaintext",
                    f"{len(self.keys)} API keys" if self.keys else "no API keys",
                    "" if ready else "; health NOT_SERVING until the text model is loaded")

    def set_ready(self) -> None:
        """Report SERVING on the health service (for the whole server and the embcluster service)."""
        self._set_health(health_pb2.HealthCheckResponse.SERVING)

    def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for name in ("", SERVICE_NAME):
            self._health.set(name, status)

    def wait(self) -> None:
        """Block until the server stops."""
        self._server.wait_for_termination()

    def stop(self, grace: float | None = None, *, cancel_wait_s: float = CANCEL_WAIT_S) -> bool:
        """Report NOT_SERVING, let in-flight calls finish for ``grace`` seconds, cancel the rest, stop.

        Always returns within ``grace + cancel_wait_s`` seconds, whatever the open streams: True
        when every call ended, False (logged) when a handler outlived its cancellation.
        """
        grace = self.grace_s if grace is None else grace
        started = time.monotonic()
        self._health.enter_graceful_shutdown()
        # Health watchers hear NOT_SERVING before their calls are cancelled; one that does not read is
        # not waited for past HEALTH_FLUSH_S (the cancellation ends its send).
        self._health.flush(min(grace, HEALTH_FLUSH_S))
        grace = max(0.0, grace - (time.monotonic() - started))
        if self._server.stop(grace).wait(grace + cancel_wait_s):
            return True
        logger.warning("shutdown: %d streaming calls still open %.1f s after the grace period; stopping without them",
                       self.streams.open, cancel_wait_s)
        return False


def _bind_problem(host: str, port: int) -> str | None:
    """Why the OS would refuse to bind ``host:port`` (None: it would not), asked with a probe socket."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host!r} ({exc.strerror})"
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does: TIME_WAIT is no conflict
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return ("address already in use (another embcluster serve?); stop that process or choose "
                            "another port (--port or EMBCLUSTER_PORT; 0 = any free port)")
                if exc.errno == errno.EACCES:
                    return f"permission denied (ports below 1024 need privileges; {exc.strerror})"
                if exc.errno == errno.EADDRNOTAVAIL:
                    return f"{host!r} is not an address of this machine ({exc.strerror})"
                return exc.strerror or str(exc)
    return None
