"""The standard ``grpc.health.v1.Health`` service, safe to change while watchers hang up.

grpcio-health-checking's servicer (1.85) sends each status change to the open ``Watch``
calls while holding the lock that a watcher's close callback takes. A send waits until
gRPC's serving thread has processed it; when that thread is at the same moment running the
close callback of a watcher that hung up, each waits for the other and the server never stops
(seen in CI: ``Server.stop`` hung in ``enter_graceful_shutdown`` after clients had cancelled
their watches). Here the state lock is never held while sending; a second lock only keeps
status changes in order for every watcher.
"""

from __future__ import annotations

import threading
from typing import Callable, TypeAlias

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["HealthService"]

Send: TypeAlias = Callable[[health_pb2.HealthCheckResponse], object]
Status: TypeAlias = health_pb2.HealthCheckResponse.ServingStatus.ValueType


class HealthService(health_pb2_grpc.HealthServicer):
    """``Check`` and a non-blocking ``Watch`` (no worker thread held per watcher) over a status per service name.

    The whole server is the service ``""`` and starts SERVING, as in grpcio-health-checking.
    """

    def __init__(self) -> None:
        self._state = threading.Lock()  # statuses and watchers; taken by close callbacks, never held while sending
        self._sending = threading.Lock()  # one change sent at a time, so every watcher sees the changes in order
        self._status: dict[str, Status] = {"": health_pb2.HealthCheckResponse.SERVING}
        self._watchers: dict[str, set[Send]] = {}
        self._final = False

    def Check(self, request: health_pb2.HealthCheckRequest,  # noqa: N802 - gRPC's method name
              context: grpc.ServicerContext) -> health_pb2.HealthCheckResponse:
        """The service's status; NOT_FOUND for a name never set."""
        with self._state:
            status = self._status.get(request.service)
        if status is None:
            context.set_code(grpc.StatusCode.NOT_FOUND)
            context.set_details(f"no health status for service {request.service!r}")
            return health_pb2.HealthCheckResponse()
        return health_pb2.HealthCheckResponse(status=status)

    def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext,  # noqa: N802
              send_response_callback: Send) -> None:
        """Send the status now and on every change, until the caller hangs up (SERVICE_UNKNOWN while unset)."""
        service = request.service
        with self._sending:  # no change slips between the first answer and the registration
            with self._state:
                status = self._status.get(service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
                self._watchers.setdefault(service, set()).add(send_response_callback)
            if not context.add_callback(lambda: self._forget(service, send_response_callback)):
                self._forget(service, send_response_callback)  # already over: the callback would never run
                return
            send_response_callback(health_pb2.HealthCheckResponse(status=status))

    # gRPC runs a non-blocking handler once and keeps the call open without a thread; sends come from set().
    Watch.experimental_non_blocking = True  # type: ignore[attr-defined]

    def set(self, service: str, status: Status) -> None:
        """Set a service's status and tell its watchers; ignored after :meth:`enter_graceful_shutdown`."""
        with self._sending:
            with self._state:
                if self._final:
                    return
                self._status[service] = status
                watchers = list(self._watchers.get(service, ()))
            _tell(watchers, status)

    def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING from now on, told to its watchers; later :meth:`set` calls are ignored."""
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        with self._sending:
            with self._state:
                if self._final:
                    return
                self._final = True
                for service in self._status:
                    self._status[service] = not_serving
                watchers = [send for service in self._status for send in self._watchers.get(service, ())]
            _tell(watchers, not_serving)

    def _forget(self, service: str, send: Send) -> None:
        """A watcher hung up (run by gRPC's serving thread: it must never wait on a send)."""
        with self._state:
            self._watchers.get(service, set()).discard(send)


def _tell(watchers: list[Send], status: Status) -> None:
    """Send one status to each watcher; a watcher that hung up meanwhile is skipped by gRPC."""
    response = health_pb2.HealthCheckResponse(status=status)
    for send in watchers:
        send(response)
