"""The standard ``grpc.health.v1.Health`` service, safe to change while watchers hang up or stall.

grpcio-health-checking's servicer (1.85) sends each status change to the open ``Watch``
calls while holding the lock that a watcher's close callback takes. A send waits until
gRPC's serving thread has processed it; when that thread is at the same moment running the
close callback of a watcher that hung up, each waits for the other and the server never stops
(seen in CI: ``Server.stop`` hung in ``enter_graceful_shutdown`` after clients had cancelled
their watches). A send also waits for HTTP/2 flow control, so one client that never reads its
watch held the caller of every later change (and, there, the first answer of every new watch
held a gRPC worker).

Here nobody waits on a send but one sender thread: ``Watch``, :meth:`HealthService.set` and
:meth:`HealthService.enter_graceful_shutdown` queue what is to be sent, in order, under a lock
that is never held while sending, and return. The thread exists only while something is queued.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable, Iterable, TypeAlias

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["HealthService"]

logger = logging.getLogger(__name__)

Send: TypeAlias = Callable[[health_pb2.HealthCheckResponse], object]
Status: TypeAlias = health_pb2.HealthCheckResponse.ServingStatus.ValueType


class HealthService(health_pb2_grpc.HealthServicer):
    """``Check`` and a non-blocking ``Watch`` (no worker thread held per watcher) over a status per service name.

    The whole server is the service ``""`` and starts SERVING, as in grpcio-health-checking.
    Every watcher receives the statuses in the order they were set.
    """

    def __init__(self) -> None:
        # Statuses, watchers and the outbox. Taken by close callbacks on gRPC's serving thread:
        # never held while sending.
        self._lock = threading.Condition()
        self._status: dict[str, Status] = {"": health_pb2.HealthCheckResponse.SERVING}
        self._watchers: dict[str, set[Send]] = {}
        self._outbox: deque[tuple[tuple[Send, ...], health_pb2.HealthCheckResponse]] = deque()
        self._sender: threading.Thread | None = None
        self._final = False

    def Check(self, request: health_pb2.HealthCheckRequest,  # noqa: N802 - gRPC's method name
              context: grpc.ServicerContext) -> health_pb2.HealthCheckResponse:
        """The service's status; NOT_FOUND for a name never set."""
        with self._lock:
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
        with self._lock:
            self._watchers.setdefault(service, set()).add(send_response_callback)
            status = self._status.get(service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
            self._post((send_response_callback,), status)  # queued before any later change
        # Registered first: a call that ends after this runs the callback, one already over refuses it.
        if not context.add_callback(lambda: self._forget(service, send_response_callback)):
            self._forget(service, send_response_callback)

    # gRPC runs a non-blocking handler once and keeps the call open without a thread.
    Watch.experimental_non_blocking = True  # type: ignore[attr-defined]

    def set(self, service: str, status: Status) -> None:
        """Set a service's status and queue it for its watchers; ignored after :meth:`enter_graceful_shutdown`."""
        with self._lock:
            if self._final:
                return
            self._status[service] = status
            self._post(self._watchers.get(service, ()), status)

    def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING from now on, queued for its watchers; later :meth:`set` calls are ignored."""
        with self._lock:
            if self._final:
                return
            self._final = True
            for service in self._status:
                self._status[service] = health_pb2.HealthCheckResponse.NOT_SERVING
                self._post(self._watchers.get(service, ()), health_pb2.HealthCheckResponse.NOT_SERVING)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every queued status is sent; False if some are still queued."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._outbox, timeout)

    def _post(self, watchers: Iterable[Send], status: Status) -> None:
        """Queue one status for some watchers (the lock is held), starting the sender if it is not running."""
        watchers = tuple(watchers)
        if not watchers:
            return
        self._outbox.append((watchers, health_pb2.HealthCheckResponse(status=status)))
        if self._sender is None:
            self._sender = threading.Thread(target=self._send_queued, name="embcluster-health", daemon=True)
            self._sender.start()

    def _send_queued(self) -> None:
        """The sender thread: send the outbox in order, then end (a later change starts another)."""
        while True:
            with self._lock:
                if not self._outbox:
                    self._sender = None
                    self._lock.notify_all()
                    return
                watchers, response = self._outbox[0]
            for send in watchers:
                try:
                    send(response)  # waits for the client (flow control); returns at once once the call is over
                except Exception:  # noqa: BLE001 - one watcher's failure must not silence the others
                    logger.exception("health: sending a status to a watcher failed")
            with self._lock:
                self._outbox.popleft()
                self._lock.notify_all()

    def _forget(self, service: str, send: Send) -> None:
        """A watcher hung up (run by gRPC's serving thread: it must never wait on a send)."""
        with self._lock:
            watchers = self._watchers.get(service)
            if watchers is not None:
                watchers.discard(send)
                if not watchers:
                    del self._watchers[service]
