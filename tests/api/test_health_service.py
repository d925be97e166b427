"""The health service never waits on a send where a hanging-up or stalled watcher could hold it."""

from __future__ import annotations

import threading
from typing import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2

from embcluster.api.health import HealthService

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def _returns(work: Callable[[], object], within_s: float = 5.0) -> bool:
    """Whether ``work`` returns within ``within_s`` seconds on another thread (False: it is stuck)."""
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(within_s)
    return not thread.is_alive()


class Call:
    """A Watch call as gRPC keeps it: close callbacks, and sends that wait for the client and the serving thread."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []
        self.sent: list[int] = []
        self.over = False
        self.during_send: Callable[[], None] | None = None  # run once, by the next send, before it completes
        self.reading = threading.Event()
        self.reading.set()

    def add_callback(self, callback: Callable[[], None]) -> bool:
        if self.over:
            return False
        self.callbacks.append(callback)
        return True

    def send(self, response: health_pb2.HealthCheckResponse) -> None:
        self.sent.append(response.status)
        if self.during_send is not None:
            work, self.during_send = self.during_send, None
            work()
        self.reading.wait()  # a client that does not read holds the send (HTTP/2 flow control)

    def hang_up(self) -> None:
        """What gRPC's serving thread does when the client cancels: the call's close callbacks."""
        self.over = True
        for callback in self.callbacks:
            callback()


def _watch(health: HealthService, call: Call | None = None, service: str = "") -> Call:
    call = call or Call()
    health.Watch(health_pb2.HealthCheckRequest(service=service), call, call.send)  # type: ignore[arg-type]
    return call


@pytest.mark.parametrize("path", ["watch", "set", "enter_graceful_shutdown"])
def test_a_watcher_hanging_up_while_a_status_is_sent_does_not_deadlock(path: str) -> None:
    """grpcio-health-checking 1.85 holds its lock while sending, and the close callback needs it."""
    health = HealthService()
    other = _watch(health)
    sending = Call()
    # The send completes only after the serving thread has run the other watcher's close callback.
    sending.during_send = lambda: None if _returns(other.hang_up) else pytest.fail("close callback stuck")
    if path == "watch":
        _watch(health, sending)
    else:
        sending.during_send, first = None, sending.during_send
        _watch(health, sending)
        assert health.flush(5)
        sending.during_send = first
        health.set("", NOT_SERVING) if path == "set" else health.enter_graceful_shutdown()
    assert health.flush(5)
    assert other.over and sending.sent == ([SERVING] if path == "watch" else [SERVING, NOT_SERVING])
    health.set("", SERVING)
    assert health.flush(5)
    # It may have been sent the change it hung up during (gRPC drops that), never one set after.
    assert other.sent[0] == SERVING and SERVING not in other.sent[1:]


def test_a_watcher_that_does_not_read_holds_no_caller_and_no_other_watcher_loses_a_status() -> None:
    health = HealthService()
    stalled = Call()
    stalled.reading.clear()
    _watch(health, stalled)
    assert _returns(lambda: health.set("", NOT_SERVING))
    later = Call()
    assert _returns(lambda: _watch(health, later))  # a new watch holds no gRPC worker
    assert _returns(health.enter_graceful_shutdown)
    assert not health.flush(0.2)  # still queued behind the stalled watcher
    stalled.reading.set()  # it reads again (or gRPC cancels its call: the send returns)
    assert health.flush(5)
    assert stalled.sent == [SERVING, NOT_SERVING, NOT_SERVING]
    assert later.sent == [NOT_SERVING, NOT_SERVING]  # the status when it came, then the shutdown


def test_watchers_see_each_change_in_order_and_stop_hearing_once_gone() -> None:
    health = HealthService()
    a, b, other = _watch(health), _watch(health), _watch(health, service="embcluster.v1.Embcluster")
    for status in (NOT_SERVING, SERVING, NOT_SERVING, SERVING):
        health.set("", status)
    assert health.flush(5)
    a.hang_up()
    health.set("", NOT_SERVING)
    health.set("embcluster.v1.Embcluster", SERVING)
    assert health.flush(5)
    assert a.sent == [SERVING, NOT_SERVING, SERVING, NOT_SERVING, SERVING]
    assert b.sent == a.sent + [NOT_SERVING]
    assert other.sent == [UNKNOWN, SERVING]


def test_a_watch_whose_call_is_already_over_is_not_kept() -> None:
    health = HealthService()
    call = Call()
    call.over = True
    _watch(health, call)
    health.set("", NOT_SERVING)
    assert health.flush(5)
    assert call.sent == [SERVING]  # the first answer was queued; gRPC drops a send to an ended call


class _Context:
    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details


@pytest.mark.parametrize("service, status, code", [("", SERVING, None), ("nope", 0, grpc.StatusCode.NOT_FOUND)])
def test_check(service: str, status: int, code: grpc.StatusCode | None) -> None:
    context = _Context()
    reply = HealthService().Check(health_pb2.HealthCheckRequest(service=service), context)  # type: ignore[arg-type]
    assert (reply.status, context.code) == (status, code)
    if code is not None:
        assert "'nope'" in context.details
