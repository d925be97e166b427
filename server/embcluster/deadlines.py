"""The deadline of the call being served, so that a wait inside the core ends when its caller stops waiting.

The API layer sets it for every call (``api/errors.py``, from the gRPC deadline, with the call's
``is_active`` so that a cancelled call is noticed too); the core reads it (:func:`remaining`,
:func:`wait_until`) where it waits on something slow that another thread is doing, such as a
text model that is still loading or texts queued for the embedding worker. Outside a call
(tests, offline tools) there is no deadline.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from typing import Callable, Iterator

__all__ = ["call_deadline", "remaining", "wait_until"]

# A deadline further away than this is "none" (gRPC reports a call without one as ~infinite).
_NO_DEADLINE_S = 1e8

# How often a wait looks whether its call was cancelled (gRPC offers no wake-up that costs nothing per call).
_CANCEL_POLL_S = 0.05

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("embcluster_call_deadline", default=None)
_is_active: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar(
    "embcluster_call_is_active", default=None)


@contextlib.contextmanager
def call_deadline(seconds: float | None, is_active: Callable[[], bool] | None = None) -> Iterator[None]:
    """Within this block, waits in the core end after ``seconds`` (None: no deadline), or once
    ``is_active()`` says the call is over (cancelled by its client)."""
    deadline = None if seconds is None or seconds >= _NO_DEADLINE_S else time.monotonic() + max(0.0, seconds)
    token = _deadline.set(deadline)
    active_token = _is_active.set(is_active)
    try:
        yield
    finally:
        try:
            _deadline.reset(token)
            _is_active.reset(active_token)
        except ValueError:  # a stream finished from another context
            _deadline.set(None)
            _is_active.set(None)


def remaining() -> float | None:
    """Seconds left before the current call's deadline (0 when past it), or None without one."""
    deadline = _deadline.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def wait_until(done: threading.Event) -> bool:
    """Wait for ``done`` while the current call lasts: False when its deadline passed or it was cancelled first."""
    deadline = _deadline.get()
    is_active = _is_active.get()
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if is_active is not None:
            timeout = _CANCEL_POLL_S if timeout is None else min(timeout, _CANCEL_POLL_S)
        if done.wait(timeout):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        if is_active is not None and not is_active():
            return False
