"""Builds the gRPC server: the servicer, health, reflection, the observability and error interceptors."""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..config import Settings
from ..errors import Unavailable
from ..pipeline import EmbclusterService
from .errors import ErrorInterceptor
from .observe import ObservabilityInterceptor
from .servicer import EmbclusterServicer
from .streams import StreamLimitInterceptor, StreamSlots
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
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            raise Unavailable(f"cannot bind {address}: {exc}") from exc
        if self.port == 0:
            raise Unavailable(f"cannot bind {address} (in use?)")
        self.address = f"{settings.host}:{self.port}"

    def start(self) -> None:
        """Start serving and report SERVING on the health service."""
        self._server.start()
        for name in ("", SERVICE_NAME):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        logger.info("serving embcluster on %s", self.address)

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
