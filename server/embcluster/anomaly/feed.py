"""Live feed of newly flagged points, for watchers of a collection (in-process pub/sub).

Each watcher gets a bounded queue. Publishing never blocks ingest: a watcher that falls
``capacity`` points behind is marked overflowed and dropped, and its stream ends with an
error that says so, rather than losing points silently or growing memory without bound.
"""

from __future__ import annotations

import queue
import threading
from typing import Generic, Iterable, TypeVar

__all__ = ["AnomalyFeed", "Subscription"]

T = TypeVar("T")


class Subscription(Generic[T]):
    """One watcher's queue."""

    def __init__(self, capacity: int) -> None:
        self.queue: queue.Queue[T] = queue.Queue(maxsize=capacity)
        self.overflowed = False
        self.closed = False  # the collection was deleted

    def get(self, timeout: float) -> T | None:
        """The next item, or None after ``timeout`` seconds."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None


class AnomalyFeed(Generic[T]):
    """Per-collection fan-out of flagged points to subscribers."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._subs: dict[str, set[Subscription[T]]] = {}
        self._lock = threading.Lock()

    def subscribe(self, collection: str) -> Subscription[T]:
        """Start watching a collection."""
        sub: Subscription[T] = Subscription(self.capacity)
        with self._lock:
            self._subs.setdefault(collection, set()).add(sub)
        return sub

    def unsubscribe(self, collection: str, sub: Subscription[T]) -> None:
        """Stop watching."""
        with self._lock:
            self._subs.get(collection, set()).discard(sub)

    def publish(self, collection: str, items: Iterable[T]) -> None:
        """Offer items to every watcher of the collection, without blocking."""
        with self._lock:
            subs = list(self._subs.get(collection, ()))
        if not subs:
            return
        items = list(items)
        for sub in subs:
            for item in items:
                try:
                    sub.queue.put_nowait(item)
                except queue.Full:
                    sub.overflowed = True
                    self.unsubscribe(collection, sub)
                    break

    def close(self, collection: str) -> None:
        """End every watcher of a (deleted) collection."""
        with self._lock:
            subs = self._subs.pop(collection, set())
        for sub in subs:
            sub.closed = True

    def watchers(self, collection: str) -> int:
        """Number of active watchers (tests and metrics)."""
        with self._lock:
            return len(self._subs.get(collection, ()))
