"""A cap on the streaming calls open at once: each one holds a gRPC worker thread for its whole life."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from ..errors import ResourceExhausted

__all__ = ["StreamSlots"]


class StreamSlots:
    """Counts open streams; one over ``limit`` is refused rather than queued.

    Without a cap, as many idle watchers as there are worker threads would leave none for unary
    calls, and every later request would wait in gRPC's queue with no error.

    Args:
        limit: Streams allowed at once (below the number of gRPC worker threads).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._open = 0

    @property
    def open(self) -> int:
        """Streams open now."""
        return self._open

    @contextmanager
    def hold(self, method: str) -> Iterator[None]:
        """Hold a slot for the body of one streaming call; RESOURCE_EXHAUSTED when none is free."""
        if not self._free.acquire(blocking=False):
            raise ResourceExhausted(
                f"{method}: {self.limit} streaming calls are already open on this server "
                f"(max_open_streams={self.limit}); close one and call again, or raise "
                "EMBCLUSTER_MAX_OPEN_STREAMS (it must stay below EMBCLUSTER_GRPC_WORKERS)")
        with self._lock:
            self._open += 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1
            self._free.release()
