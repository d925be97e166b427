"""The health service never waits on gRPC while holding the lock a hanging-up watcher needs."""

from __future__ import annotations

import threading
from typing import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2

from embcluster.api.health import HealthService

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


class Call:
    """A Watch call as gRPC keeps it: close callbacks, and sends that wait for the serving thread."""

    def __init__(self, serving_thread: Callable[[Callable[[], None]], bool]) -> None:
        self.callbacks: list[Callable[[], None]] = []
        self.sent: list[int] = []
        self.hang_up_during_send = False
        self._serving_thread = serving_thread
        self.over = False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        if self.over:
            return False
        self.callbacks.append(callback)
        return True

    def send(self, response: health_pb2.HealthCheckResponse) -> None:
        self.sent.append(response.status)
        if self.hang_up_during_send:
            # gRPC's serving thread runs the close callback of a client that just hung up before it
            # gets to this send's completion, and the send waits for that completion.
            self.hang_up_during_send = False
            assert self._serving_thread(self.hang_up), "the close callback waited on the sender: deadlock"

    def hang_up(self) -> None:
        self.over = True
        for callback in self.callbacks:
            callback()


def _on_another_thread(work: Callable[[], None]) -> bool:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(5)
    return not thread.is_alive()


def _watch(health: HealthService, service: str = "") -> Call:
    call = Call(_on_another_thread)
    health.Watch(health_pb2.HealthCheckRequest(service=service), call, call.send)  # type: ignore[arg-type]
    return call


def test_a_watcher_hanging_up_while_a_status_is_sent_does_not_deadlock() -> None:
    health = HealthService()
    first, second = _watch(health), _watch(health)
    first.hang_up_during_send = second.hang_up_during_send = True
    health.enter_graceful_shutdown()  # grpcio-health-checking 1.85's servicer never returns here
    assert first.sent == [SERVING, NOT_SERVING] and second.sent == [SERVING, NOT_SERVING]
    health.set("", SERVING)  # ignored once shutting down, and no one is left to tell
    assert first.sent == [SERVING, NOT_SERVING]


def test_watchers_see_each_change_and_stop_hearing_once_gone() -> None:
    health = HealthService()
    a, b, other = _watch(health), _watch(health), _watch(health, "embcluster.v1.Embcluster")
    assert other.sent == [health_pb2.HealthCheckResponse.SERVICE_UNKNOWN]
    health.set("", NOT_SERVING)
    a.hang_up()
    health.set("", SERVING)
    health.set("embcluster.v1.Embcluster", SERVING)
    assert a.sent == [SERVING, NOT_SERVING]
    assert b.sent == [SERVING, NOT_SERVING, SERVING]
    assert other.sent == [health_pb2.HealthCheckResponse.SERVICE_UNKNOWN, SERVING]


def test_a_watch_whose_call_is_already_over_is_not_kept() -> None:
    health = HealthService()
    call = Call(_on_another_thread)
    call.over = True
    health.Watch(health_pb2.HealthCheckRequest(service=""), call, call.send)  # type: ignore[arg-type]
    health.set("", NOT_SERVING)
    assert call.sent == []


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
