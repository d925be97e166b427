"""Builds the gRPC server: the servicer, health, reflection, the observability, auth and error interceptors, TLS."""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..auth import KeyRing, check_exposure, is_loopback
from ..config import Settings
from ..errors import Unavailable
from ..pipeline import EmbclusterService
from .auth import AuthInterceptor
from .errors import ErrorInterceptor
from .observe import ObservabilityInterceptor
from .servicer import EmbclusterServicer
from .streams import StreamLimitInterceptor, StreamSlots
from .tls import server_credentials
from .v1 import embcluster_pb2 as pb
from .v1 import embcluster_pb2_grpc as pb_grpc

__all__ = ["SERVICE_NAME", "GrpcServer"]

logger = logging.getLogger(__name__)

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
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
        )
        pb_grpc.add_EmbclusterServicer_to_server(EmbclusterServicer(service), self._server)
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self._server,
        )
        address = f"{settings.host}:{settings.port}"
        try:
            credentials = server_credentials(settings)
            self.port = (self._server.add_secure_port(address, credentials) if credentials is not None
                         else self._server.add_insecure_port(address))
        except RuntimeError as exc:
            raise Unavailable(f"cannot bind {address}: {exc}") from exc
        if self.port == 0:
            raise Unavailable(f"cannot bind {address} (in use?)")
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

    def start(self) -> None:
        """Start serving and report SERVING on the health service."""
        self._server.start()
        for name in ("", SERVICE_NAME):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        logger.info("serving embcluster on %s (%s, %s)", self.address, "TLS" if self.tls else "plaintext",
                    f"{len(self.keys)} API keys" if self.keys else "no API keys")

    def wait(self) -> None:
        """Block until the server stops."""
        self._server.wait_for_termination()

    def stop(self, grace: float | None = None, *, cancel_wait_s: float = CANCEL_WAIT_S) -> bool:
        """Report NOT_SERVING, let in-flight calls finish for ``grace`` seconds, cancel the rest, stop.

        Always returns within ``grace + cancel_wait_s`` seconds, whatever the open streams: True
        when every call ended, False (logged) when a handler outlived its cancellation.
        """
        grace = self.grace_s if grace is None else grace
        self._health.enter_graceful_shutdown()
        if self._server.stop(grace).wait(grace + cancel_wait_s):
            return True
        logger.warning("shutdown: %d streaming calls still open %.1f s after the grace period; stopping without them",
                       self.streams.open, cancel_wait_s)
        return False
