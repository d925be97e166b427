"""Micro-batching: the texts of concurrent calls embedded together, on worker threads of their own.

A model embeds a batch of texts for far less per text than one text alone (all-MiniLM-L6-v2 on
2 CPU cores: about 3.4 ms per text in a batch of 64, 22 ms for one alone). So every call's texts
go through a queue per embedder (:class:`EmbedBatcher`); a worker thread takes what is queued, up
to ``EMBED_BATCH_SIZE`` texts, embeds them in one call of the wrapped embedder and hands each
caller its own rows.

* **Gathering.** A worker takes whatever is queued in its lane when it is free; while it is
  busy new requests queue up and go together into its next batch. When it is idle and a batch is
  not full it waits at most ``EMBED_BATCH_WAIT_MS`` for more (0: never wait).
* **Two lanes, two workers.** A request of at most ``EMBED_INTERACTIVE_ITEMS`` texts (a Classify
  or Search query, a single-item Ingest) is *interactive*; a larger one is *bulk* and is cut into
  chunks of at most ``EMBED_BATCH_SIZE`` texts (sorted by length first, as sentence-transformers'
  own ``encode`` does, so chunks pad little). Each lane has its own worker thread, so a query
  never waits for a bulk chunk: its forward pass runs beside the bulk one (except on an embedder
  that takes one call at a time, the ``static`` tier, where it waits for that chunk: milliseconds).
  The bulk worker runs at nice ``EMBED_BULK_NICE`` (Linux; :mod:`.priority`), and so do torch's
  threads it starts, so while the cores are short the operating system gives them to queries,
  vector calls and writes first; alone, bulk embedding runs at full speed. ONNX Runtime's threads
  (the ``onnx-int8`` tier) belong to its session and keep their priority. Neither lane can starve
  the other.
* **No repeated work.** Identical texts of one request, and of the requests embedded together,
  are embedded once (per long-text setting).
* **Errors** reach only the requests they belong to: when a batch of several requests fails, each
  is embedded again alone, and only the one that fails alone gets the error.
* **Deadlines and cancellation.** A caller waits at most until its call's deadline, and stops
  waiting when its gRPC call is cancelled (:func:`embcluster.deadlines.wait_until`); its texts
  not yet embedded are dropped from the queue, and the call gets ``UNAVAILABLE``.
* **Shutdown.** :meth:`EmbedBatcher.close` refuses new requests (``UNAVAILABLE``: the server is
  shutting down), lets both workers finish what is queued, and fails whatever is still queued after
  its timeout with ``UNAVAILABLE``; nothing is dropped silently.

Results equal those of embedding each request alone, up to float rounding of different batch
shapes (padding changes the matrix shapes, not the masked result) — except on the ``onnx-int8``
tier, whose activations are quantized per batch, so a row moves a little with its batch mates.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..deadlines import wait_until
from ..errors import Unavailable
from .base import Embedder, TextEmbedder
from .long_text import TRUNCATE, Embedded, LongText
from .priority import lower_thread_priority

__all__ = ["BatchingOptions", "EmbedBatcher", "BatchedEmbedder", "EmbedBatchers"]

logger = logging.getLogger(__name__)

INTERACTIVE, BULK = 0, 1
_LANE_NAMES = ("interactive", "bulk")


@dataclass(frozen=True)
class BatchingOptions:
    """How the batcher gathers texts (the ``EMBED_*`` settings).

    Attributes:
        batch_size: Texts per call of the wrapped embedder at most (a bulk request's chunk).
        wait_ms: How long an idle worker waits for more texts when a batch is not full.
        interactive_items: Requests of at most this many texts take the interactive lane.
        bulk_nice: The bulk lane's worker thread runs at this nice value (0: normal priority).
    """

    batch_size: int = 64
    wait_ms: float = 0.0
    interactive_items: int = 8
    bulk_nice: int = 10


class _Request:
    """One caller's texts: deduplicated, cut into slices as the worker takes them, rows filled in."""

    def __init__(self, texts: Sequence[str], long_text: LongText, lane: int, dim: int) -> None:
        first: dict[str, int] = {}
        self.inverse = np.fromiter((first.setdefault(t, len(first)) for t in texts), dtype=np.int64, count=len(texts))
        unique = list(first)
        if lane == BULK:  # longest first, like SentenceTransformer.encode: chunks of similar lengths pad little
            unique.sort(key=len, reverse=True)
            position = {t: i for i, t in enumerate(unique)}
            self.inverse = np.fromiter((position[t] for t in texts), dtype=np.int64, count=len(texts))
        self.unique = unique
        self.long_text = long_text
        self.lane = lane
        self.taken = 0  # unique texts handed to the worker so far
        self.left = len(unique)  # unique texts not embedded yet
        self.vectors = np.zeros((len(unique), dim), dtype=np.float32)
        self.truncated = np.zeros(len(unique), dtype=bool)
        self.error: BaseException | None = None
        self.abandoned = False  # the caller stopped waiting: drop what is not taken yet
        self.done = threading.Event()

    def finish(self, error: BaseException | None = None) -> None:
        if self.done.is_set():
            return
        self.error = error
        self.done.set()

    def result(self) -> Embedded:
        return Embedded(self.vectors[self.inverse], self.truncated[self.inverse])


@dataclass
class _Slice:
    """Unique texts ``[start, stop)`` of one request, embedded in one batch."""

    request: _Request
    start: int
    stop: int
    texts: list[str] = field(default_factory=list)


class EmbedBatcher:
    """A queue in front of one embedder, in two lanes, and a worker thread per lane that empties it.

    The two workers may call the embedder at the same time: an embedder that cannot take
    concurrent calls serialises them itself (a lock of its own).

    Args:
        embedder: Any :class:`~embcluster.embed.base.Embedder`; texts longer than its window are
            embedded with its ``embed_long`` when it has one (:class:`TextEmbedder`), else ``embed``.
        options: Batch size, gathering wait, interactive lane size, the bulk worker's priority.
    """

    def __init__(self, embedder: Embedder, options: BatchingOptions) -> None:
        self.embedder = embedder
        self.options = options
        self._long = isinstance(embedder, TextEmbedder)  # has embed_long (checked once: a Protocol check is slow)
        self._lanes: tuple[deque[_Request], deque[_Request]] = (deque(), deque())
        self._lock = threading.Lock()
        # a condition per lane on the one lock: a request wakes its own lane's worker, not both
        self._wake = (threading.Condition(self._lock), threading.Condition(self._lock))
        self._closing = False
        self._threads: list[threading.Thread | None] = [None, None]  # a worker per lane, started on demand
        self.batches = 0  # embed calls made (tests, benchmarks)

    # ------------------------------------------------------------------ callers

    def embed(self, texts: Sequence[str], long_text: LongText = TRUNCATE) -> Embedded:
        """Embed ``texts`` together with whatever other callers have queued; rows in ``texts``' order.

        Raises:
            Unavailable: the server is shutting down, or the call's deadline passed or it was
                cancelled before its texts were embedded.
            Exception: whatever the embedder raised for these texts.
        """
        if not texts:
            return Embedded.whole(np.zeros((0, self.embedder.dim), dtype=np.float32))
        lane = INTERACTIVE if len(texts) <= self.options.interactive_items else BULK
        request = _Request(texts, long_text, lane, self.embedder.dim)
        with self._lock:
            if self._closing:
                raise Unavailable("the server is shutting down: texts are no longer embedded")
            self._lanes[lane].append(request)
            self._start_worker(lane)
            self._wake[lane].notify()
        if not wait_until(request.done):
            with self._lock:
                request.abandoned = True
                if request.taken == 0 and request in self._lanes[lane]:
                    self._lanes[lane].remove(request)
            if not request.done.is_set():
                raise Unavailable(f"the call ended (deadline or cancelled) while {len(texts)} text(s) waited "
                                  "to be embedded")
        if request.error is not None:
            raise request.error
        return request.result()

    @property
    def closing(self) -> bool:
        """Whether :meth:`close` has begun (new requests are refused)."""
        return self._closing

    def pending(self) -> int:
        """Requests queued and not finished (tests, benchmarks)."""
        with self._lock:
            return len(self._lanes[0]) + len(self._lanes[1])

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new requests, finish the queued ones (at most ``timeout`` s), fail what is left."""
        with self._lock:
            self._closing = True
            for wake in self._wake:
                wake.notify_all()
            threads = [t for t in self._threads if t is not None]
        end = time.monotonic() + timeout
        for thread in threads:  # the lanes finish side by side: one timeout for both
            thread.join(max(0.0, end - time.monotonic()))
        with self._lock:
            left = [r for lane in self._lanes for r in lane]
            for lane in self._lanes:
                lane.clear()
        for request in left:
            request.finish(Unavailable("the server shut down before these texts were embedded"))
        if left:
            logger.warning("shutdown: %d embedding request(s) of %s not finished within %.0f s were failed",
                           len(left), self.embedder.name, timeout)

    # ------------------------------------------------------------------ the worker

    def _start_worker(self, lane: int) -> None:
        if self._threads[lane] is None:
            name = f"embed-{self.embedder.name}-{_LANE_NAMES[lane]}"
            thread = threading.Thread(target=self._run, args=(lane,), name=name, daemon=True)
            thread.start()  # kept only once started (a failed start leaves the lane to the next caller);
            self._threads[lane] = thread  # it cannot end before this: its end waits for the condition held here

    def _run(self, lane: int) -> None:
        try:
            if lane == BULK:  # before its first forward pass: torch's threads it starts inherit the priority
                lower_thread_priority(self.options.bulk_nice)
            while True:
                with self._lock:
                    slices = self._gather(lane)
                if slices is None:
                    return
                self._embed(slices)
        finally:  # also when something no handler catches (SystemExit) ends the thread: a new one takes over
            with self._lock:
                self._threads[lane] = None
                if self._lanes[lane] and not self._closing:
                    self._start_worker(lane)

    def _queued(self, lane: int) -> int:
        """Texts of ``lane`` queued and not yet handed to its worker."""
        return sum(len(r.unique) - r.taken for r in self._lanes[lane])

    def _gather(self, lane: int) -> list[_Slice] | None:
        """The next batch's slices of ``lane`` (call holding the lock); None when closed and empty."""
        queue = self._lanes[lane]
        while not queue:
            if self._closing:
                return None
            self._wake[lane].wait()
        size = self.options.batch_size
        if self.options.wait_ms > 0 and not self._closing and self._queued(lane) < size:
            until = time.monotonic() + self.options.wait_ms / 1000
            while self._queued(lane) < size and not self._closing and (left := until - time.monotonic()) > 0:
                self._wake[lane].wait(left)
        slices: list[_Slice] = []
        room = size
        while queue and room > 0:
            request = queue[0]
            if request.abandoned:
                queue.popleft()
                continue
            start = request.taken
            stop = min(len(request.unique), start + room)
            request.taken = stop
            slices.append(_Slice(request, start, stop, request.unique[start:stop]))
            room -= stop - start
            if stop == len(request.unique):
                queue.popleft()
        return slices

    def _embed(self, slices: list[_Slice]) -> None:
        groups: dict[LongText, list[_Slice]] = {}
        for s in slices:
            groups.setdefault(s.request.long_text, []).append(s)
        pending = [(long_text, s) for long_text, group in groups.items() for s in group]  # not embedded yet
        try:
            for long_text, group in groups.items():
                try:
                    self._embed_group(group, long_text)
                except Exception as exc:  # several requests: find whose texts fail, alone
                    if len(group) == 1:
                        self._fail(group, exc)
                    else:
                        for s in group:
                            try:
                                self._embed_group([s], long_text)
                            except Exception as alone:
                                self._fail([s], alone)
                            pending.remove((long_text, s))
                        continue
                for s in group:
                    pending.remove((long_text, s))
        except BaseException as fatal:
            # The worker thread is going down: every request of this batch not embedded yet (its
            # other long-text groups too) gets the error now, not a wait until its deadline.
            self._fail([s for _, s in pending], fatal)
            raise

    def _embed_group(self, group: list[_Slice], long_text: LongText) -> None:
        # identical texts of the requests embedded together: once
        first: dict[str, int] = {}
        rows = [np.fromiter((first.setdefault(t, len(first)) for t in s.texts), dtype=np.int64, count=len(s.texts))
                for s in group]
        embedded = self._call(list(first), long_text)
        with self._lock:  # two workers count
            self.batches += 1
        for s, r in zip(group, rows):
            request = s.request
            request.vectors[s.start:s.stop] = embedded.vectors[r]
            request.truncated[s.start:s.stop] = embedded.truncated[r]
            request.left -= s.stop - s.start
            if request.left == 0:
                request.finish()

    def _call(self, texts: list[str], long_text: LongText) -> Embedded:
        if self._long:
            return self.embedder.embed_long(texts, long_text)  # type: ignore[attr-defined]
        return Embedded.whole(np.asarray(self.embedder.embed(texts), dtype=np.float32))

    @staticmethod
    def _fail(group: list[_Slice], exc: BaseException) -> None:
        for s in group:
            with_error = s.request
            with_error.abandoned = True  # its other slices are not embedded any more
            with_error.finish(exc)


class BatchedEmbedder:
    """An :class:`~embcluster.embed.base.TextEmbedder` whose calls go through an :class:`EmbedBatcher`.

    ``name``, ``fingerprint`` and ``dim`` are the wrapped embedder's, so a collection records the
    same model whether or not its calls are batched.
    """

    def __init__(self, batcher: EmbedBatcher) -> None:
        self.batcher = batcher
        inner = batcher.embedder
        self.name = inner.name
        self.fingerprint = inner.fingerprint
        self.dim = inner.dim

    @property
    def inner(self) -> Embedder:
        """The wrapped embedder."""
        return self.batcher.embedder

    def embed(self, inputs: Sequence[Any]) -> np.ndarray:
        """Embed texts (long ones truncated); rows in order."""
        return self.batcher.embed(list(inputs)).vectors

    def embed_long(self, texts: Sequence[str], long_text: LongText) -> Embedded:
        """Embed texts, long ones truncated or pooled (see :mod:`embcluster.embed.long_text`)."""
        return self.batcher.embed(list(texts), long_text)


class EmbedBatchers:
    """One :class:`EmbedBatcher` per embedder of a service, made on first use, closed together.

    Args:
        options: The batching settings every batcher uses.
    """

    def __init__(self, options: BatchingOptions) -> None:
        self.options = options
        self._by_embedder: dict[int, tuple[Embedder, BatchedEmbedder]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def wrap(self, embedder: Embedder) -> BatchedEmbedder:
        """The batched face of ``embedder`` (the same one for every caller of this service)."""
        if isinstance(embedder, BatchedEmbedder):
            return embedder
        with self._lock:
            found = self._by_embedder.get(id(embedder))
            if found is None:
                batched = BatchedEmbedder(EmbedBatcher(embedder, self.options))
                if self._closed:  # wrapped after shutdown began: refuses at once, never starts a thread
                    batched.batcher.close(0)
                # the embedder is kept beside its id so the id is never reused while the entry lives
                found = self._by_embedder[id(embedder)] = (embedder, batched)
            return found[1]

    def batchers(self) -> list[EmbedBatcher]:
        """The batchers made so far."""
        with self._lock:
            return [b.batcher for _, b in self._by_embedder.values()]

    def close(self, timeout: float = 30.0) -> None:
        """Close every batcher: queued texts are embedded (within ``timeout`` s each) or failed."""
        with self._lock:
            self._closed = True
        for batcher in self.batchers():
            batcher.close(timeout)
