"""The deadline of the call being served, so that a wait inside the core ends when its caller stops waiting.

The API layer sets it for every call (``api/errors.py``, from the gRPC deadline); the core reads
it (:func:`remaining`) where it waits on something slow that another thread is doing, such as a
text model that is still loading. Outside a call (tests, offline tools) there is no deadline.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from typing import Iterator

__all__ = ["call_deadline", "remaining"]

# A deadline further away than this is "none" (gRPC reports a call without one as ~infinite).
_NO_DEADLINE_S = 1e8

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("embcluster_call_deadline", default=None)


@contextlib.contextmanager
def call_deadline(seconds: float | None) -> Iterator[None]:
    """Within this block, waits in the core end after ``seconds`` (None: no deadline)."""
    deadline = None if seconds is None or seconds >= _NO_DEADLINE_S else time.monotonic() + max(0.0, seconds)
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        try:
            _deadline.reset(token)
        except ValueError:  # a stream finished from another context
            _deadline.set(None)


def remaining() -> float | None:
    """Seconds left before the current call's deadline (0 when past it), or None without one."""
    deadline = _deadline.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())
