"""The embedding queue (embed/batching.py) with a fake embedder whose calls can be held: no timing asserted."""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from typing import Callable, Sequence

import numpy as np
import pytest

from embcluster.deadlines import call_deadline
from embcluster.embed.base import TextEmbedder
from embcluster.embed.batching import BatchedEmbedder, BatchingOptions, EmbedBatcher, EmbedBatchers
from embcluster.embed.long_text import TRUNCATE, Embedded, LongText
from embcluster.embed.priority import thread_nice
from embcluster.errors import Unavailable

DIM = 8
POOL = LongText(mode="pool")


def _row(text: str, long_text: LongText) -> np.ndarray:
    seed = hashlib.sha256(f"{long_text.mode}:{text}".encode()).digest()
    return np.frombuffer(seed[:DIM], dtype=np.uint8).astype(np.float32)


class FakeEmbedder:
    """A TextEmbedder: a row per text from its hash; records every call; can hold calls until released."""

    name = "fake"
    fingerprint = "fake:1"
    dim = DIM

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], LongText]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.held_word = ""  # "": every call waits while held
        self.entered = threading.Semaphore(0)  # released once per call, when the call starts

    def hold(self) -> None:
        """Calls from now on wait for :meth:`release`."""
        self.held_word = ""
        self.gate.clear()

    def gate_for(self, word: str) -> None:
        """While held, only calls whose first text contains ``word`` wait (the others go through)."""
        self.held_word = word

    def release(self) -> None:
        self.gate.set()

    def embed(self, inputs: Sequence[str]) -> np.ndarray:
        return self.embed_long(inputs, TRUNCATE).vectors

    def embed_long(self, texts: Sequence[str], long_text: LongText) -> Embedded:
        self.calls.append((list(texts), long_text))
        self.entered.release()
        if self.held_word in (texts[0] if texts else ""):
            assert self.gate.wait(30)
        bad = [t for t in texts if "bad" in t]
        if bad:
            raise ValueError(f"cannot embed {bad[0]!r}")
        vectors = np.stack([_row(t, long_text) for t in texts]) if texts else np.zeros((0, DIM), np.float32)
        return Embedded(vectors, np.array(["long" in t for t in texts], dtype=bool))


def _alone(texts: Sequence[str], long_text: LongText = TRUNCATE) -> np.ndarray:
    return np.stack([_row(t, long_text) for t in texts])


def _until(condition: Callable[[], bool]) -> None:
    """Wait (at most 10 s) until another thread has made ``condition`` true."""
    end = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.002)


class Caller(threading.Thread):
    """Embeds ``texts`` through ``batcher`` in its own thread; keeps the result or the error."""

    def __init__(self, batcher: EmbedBatcher, texts: Sequence[str], long_text: LongText = TRUNCATE,
                 deadline: float | None = None) -> None:
        super().__init__(daemon=True)
        self.batcher, self.texts, self.long_text, self.deadline = batcher, list(texts), long_text, deadline
        self.result: Embedded | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            with call_deadline(self.deadline):
                self.result = self.batcher.embed(self.texts, self.long_text)
        except BaseException as exc:  # the test looks at it
            self.error = exc

    def get(self) -> Embedded:
        self.join(30)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@pytest.fixture
def fake() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def batcher(fake: FakeEmbedder):  # type: ignore[no-untyped-def]
    b = EmbedBatcher(fake, BatchingOptions(batch_size=4, wait_ms=0, interactive_items=2))
    yield b
    fake.release()
    b.close(5)


def _first_call_held(fake: FakeEmbedder, batcher: EmbedBatcher, texts: Sequence[str] = ("first",)) -> Caller:
    """A call whose embedding is in progress and held: what is queued meanwhile goes into later batches."""
    fake.hold()
    first = Caller(batcher, texts)
    assert fake.entered.acquire(timeout=10)
    return first


def test_the_batched_embedder_is_a_text_embedder_with_the_wrapped_identity(fake: FakeEmbedder) -> None:
    batchers = EmbedBatchers(BatchingOptions())
    wrapped = batchers.wrap(fake)
    assert isinstance(wrapped, TextEmbedder)
    assert (wrapped.name, wrapped.fingerprint, wrapped.dim) == (fake.name, fake.fingerprint, fake.dim)
    assert batchers.wrap(fake) is wrapped and batchers.wrap(wrapped) is wrapped  # one queue per embedder
    np.testing.assert_array_equal(wrapped.embed(["x", "y"]), _alone(["x", "y"]))
    batchers.close()
    with pytest.raises(Unavailable, match="shutting down"):
        wrapped.embed(["x"])
    assert isinstance(EmbedBatchers(BatchingOptions()).wrap(fake), BatchedEmbedder)


def test_concurrent_callers_each_get_their_own_rows_from_shared_batches(fake: FakeEmbedder,
                                                                       batcher: EmbedBatcher) -> None:
    first = _first_call_held(fake, batcher)
    callers = [Caller(batcher, [f"text {i}", "shared"] if i % 2 else [f"text {i}"]) for i in range(12)]
    _until(lambda: batcher.pending() == 12)
    fake.release()
    np.testing.assert_array_equal(first.get().vectors, _alone(["first"]))
    for c in callers:
        np.testing.assert_array_equal(c.get().vectors, _alone(c.texts))
    # 12 requests of 1-2 texts (18 texts) went through in batches of at most 4, not one by one
    later = fake.calls[1:]
    assert all(len(texts) <= 4 and len(set(texts)) == len(texts) for texts, _ in later)
    assert len(later) < 12
    assert sum(len(texts) for texts, _ in later) < 18  # "shared" embedded once per batch it is in


def test_identical_texts_are_embedded_once(fake: FakeEmbedder, batcher: EmbedBatcher) -> None:
    first = _first_call_held(fake, batcher)
    a = Caller(batcher, ["same", "same"])
    b = Caller(batcher, ["other"])
    c = Caller(batcher, ["same"])
    _until(lambda: batcher.pending() == 3)
    fake.release()
    first.get()
    for caller in (a, b, c):
        np.testing.assert_array_equal(caller.get().vectors, _alone(caller.texts))
    assert fake.calls[1:] == [(["same", "other"], TRUNCATE)]
    # within one bulk request too
    assert batcher.embed(["x", "y", "x", "z", "y"]).vectors.shape == (5, DIM)
    assert sorted(fake.calls[-1][0]) == ["x", "y", "z"]


def test_a_bulk_request_is_cut_into_chunks_longest_first_and_keeps_its_order(fake: FakeEmbedder,
                                                                             batcher: EmbedBatcher) -> None:
    texts = [f"t{'x' * (i % 5)}{i}" for i in range(11)] + ["t0"]  # a repeated text too
    got = batcher.embed(texts)
    np.testing.assert_array_equal(got.vectors, _alone(texts))
    sizes = [len(t) for t, _ in fake.calls]
    assert sizes == [4, 4, 3]  # 11 unique texts, chunks of the batch size
    lengths = [len(t) for call, _ in fake.calls for t in call]
    assert lengths == sorted(lengths, reverse=True)


def test_an_interactive_request_never_waits_for_a_bulk_chunk(fake: FakeEmbedder, batcher: EmbedBatcher) -> None:
    fake.hold()
    bulk = Caller(batcher, [f"bulk {i}" for i in range(12)])  # 3 chunks of 4; the first one is held
    assert fake.entered.acquire(timeout=10)
    fake.gate_for("bulk")  # from now on only bulk chunks wait
    queries = [Caller(batcher, [f"query {i}"]) for i in range(2)]
    for c in queries:  # embedded beside the held chunk, by the interactive lane's own worker
        np.testing.assert_array_equal(c.get().vectors, _alone(c.texts))
    assert bulk.is_alive()
    fake.release()
    np.testing.assert_array_equal(bulk.get().vectors, _alone(bulk.texts))
    assert [len(texts) for texts, _ in fake.calls if texts[0].startswith("bulk")] == [4, 4, 4]


def test_a_stream_of_small_requests_cannot_starve_a_bulk_one(fake: FakeEmbedder, batcher: EmbedBatcher) -> None:
    first = _first_call_held(fake, batcher, ["first"])  # the interactive lane is busy ...
    small = [Caller(batcher, [f"small {i}"]) for i in range(3)]
    _until(lambda: batcher.pending() == 3)  # ... and more small requests wait for it
    fake.gate_for("first")
    bulk = Caller(batcher, [f"bulk {i}" for i in range(6)])
    np.testing.assert_array_equal(bulk.get().vectors, _alone(bulk.texts))  # done while the small lane is held
    assert all(c.is_alive() for c in small)
    fake.release()
    first.get()
    for c in small:
        np.testing.assert_array_equal(c.get().vectors, _alone(c.texts))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads have a nice value of their own on Linux")
def test_the_bulk_lane_runs_at_the_lower_priority_and_so_do_the_threads_it_starts(fake: FakeEmbedder) -> None:
    base = thread_nice()
    assert base is not None
    batcher = EmbedBatcher(fake, BatchingOptions(batch_size=4, interactive_items=2, bulk_nice=min(19, base + 7)))
    seen: dict[str, tuple[int | None, int | None]] = {}
    real = fake.embed_long

    def embed_long(texts: Sequence[str], long_text: LongText) -> Embedded:
        started: list[int | None] = []  # what a thread the worker starts (torch's, say) inherits
        child = threading.Thread(target=lambda: started.append(thread_nice()))
        child.start()
        child.join()
        seen[texts[0].split()[0]] = (thread_nice(), started[0])
        return real(texts, long_text)

    fake.embed_long = embed_long  # type: ignore[method-assign]
    try:
        batcher.embed(["query"])
        batcher.embed(["bulk a", "bulk b", "bulk c"])
        batcher.embed(["query again"])
    finally:
        batcher.close(5)
    assert seen["query"] == (base, base)
    assert seen["bulk"] == (min(19, base + 7), min(19, base + 7))
    assert thread_nice() == base  # the callers' threads keep theirs


def test_a_bulk_nice_of_zero_leaves_the_priority_alone(fake: FakeEmbedder) -> None:
    batcher = EmbedBatcher(fake, BatchingOptions(batch_size=4, interactive_items=2, bulk_nice=0))
    seen: list[int | None] = []
    real = fake.embed_long

    def embed_long(texts: Sequence[str], long_text: LongText) -> Embedded:
        seen.append(thread_nice())
        return real(texts, long_text)

    fake.embed_long = embed_long  # type: ignore[method-assign]
    try:
        batcher.embed(["bulk a", "bulk b", "bulk c"])
    finally:
        batcher.close(5)
    assert seen == [thread_nice()]


def test_an_error_reaches_only_the_request_whose_texts_fail(fake: FakeEmbedder, batcher: EmbedBatcher) -> None:
    first = _first_call_held(fake, batcher)
    good = Caller(batcher, ["good"])
    bad = Caller(batcher, ["bad one"])
    _until(lambda: batcher.pending() == 2)
    fake.release()
    first.get()
    np.testing.assert_array_equal(good.get().vectors, _alone(["good"]))
    with pytest.raises(ValueError, match="bad one"):
        bad.get()
    assert batcher.embed(["after"]).vectors.shape == (1, DIM)  # the worker goes on


def test_long_text_settings_are_embedded_apart_and_keep_their_flags(fake: FakeEmbedder, batcher: EmbedBatcher) -> None:
    first = _first_call_held(fake, batcher)
    cut = Caller(batcher, ["a long text", "b"])
    pooled = Caller(batcher, ["a long text"], POOL)
    _until(lambda: batcher.pending() == 2)
    fake.release()
    first.get()
    got_cut, got_pooled = cut.get(), pooled.get()
    np.testing.assert_array_equal(got_cut.vectors, _alone(["a long text", "b"]))
    np.testing.assert_array_equal(got_pooled.vectors, _alone(["a long text"], POOL))
    assert got_cut.truncated.tolist() == [True, False] and got_pooled.truncated.tolist() == [True]
    assert sorted(lt.mode for _, lt in fake.calls[1:]) == ["pool", "truncate"]


def test_a_caller_past_its_deadline_stops_waiting_and_its_texts_are_dropped(fake: FakeEmbedder,
                                                                          batcher: EmbedBatcher) -> None:
    first = _first_call_held(fake, batcher)
    late = Caller(batcher, ["never embedded"], deadline=0.05)
    with pytest.raises(Unavailable, match="deadline or cancelled"):
        late.get()
    assert batcher.pending() == 0
    fake.release()
    first.get()
    assert batcher.embed(["next"]).vectors.shape == (1, DIM)
    assert all("never embedded" not in texts for texts, _ in fake.calls)


def test_a_cancelled_call_stops_waiting(fake: FakeEmbedder, batcher: EmbedBatcher) -> None:
    first = _first_call_held(fake, batcher)
    active = threading.Event()
    active.set()
    outcome: list[BaseException] = []

    def cancelled_call() -> None:
        with call_deadline(None, is_active=active.is_set):
            try:
                batcher.embed(["cancelled"])
            except Unavailable as exc:
                outcome.append(exc)

    t = threading.Thread(target=cancelled_call, daemon=True)
    t.start()
    _until(lambda: batcher.pending() == 1)
    active.clear()  # the client cancels
    t.join(10)
    assert not t.is_alive() and len(outcome) == 1
    fake.release()
    first.get()


def test_shutdown_finishes_queued_work_and_refuses_new_work(fake: FakeEmbedder, batcher: EmbedBatcher) -> None:
    first = _first_call_held(fake, batcher)
    queued = Caller(batcher, ["queued"])
    _until(lambda: batcher.pending() == 1)
    closer = threading.Thread(target=batcher.close, daemon=True)
    closer.start()
    _until(lambda: batcher.closing)
    with pytest.raises(Unavailable, match="shutting down"):
        batcher.embed(["too late"])
    fake.release()
    closer.join(10)
    np.testing.assert_array_equal(first.get().vectors, _alone(["first"]))
    np.testing.assert_array_equal(queued.get().vectors, _alone(["queued"]))


def test_shutdown_fails_what_is_left_after_its_timeout_with_a_clear_error(fake: FakeEmbedder,
                                                                         batcher: EmbedBatcher) -> None:
    first = _first_call_held(fake, batcher)
    queued = Caller(batcher, ["queued"])
    _until(lambda: batcher.pending() == 1)
    batcher.close(timeout=0.01)  # the held call does not finish in time
    with pytest.raises(Unavailable, match="shut down before these texts were embedded"):
        queued.get()
    fake.release()
    np.testing.assert_array_equal(first.get().vectors, _alone(["first"]))  # in progress: it finishes


def test_shutdown_waits_for_the_bulk_lane_too(fake: FakeEmbedder, batcher: EmbedBatcher) -> None:
    fake.hold()
    fake.gate_for("bulk")  # only bulk chunks wait
    held = Caller(batcher, [f"bulk {i}" for i in range(3)])
    assert fake.entered.acquire(timeout=10)
    queued = Caller(batcher, [f"bulk more {i}" for i in range(3)])
    _until(lambda: batcher.pending() == 1)
    query = Caller(batcher, ["query"])
    np.testing.assert_array_equal(query.get().vectors, _alone(["query"]))
    closer = threading.Thread(target=batcher.close, daemon=True)
    closer.start()
    _until(lambda: batcher.closing)
    time.sleep(0.3)
    assert closer.is_alive()  # waiting for the held bulk chunk and the one queued behind it
    fake.release()
    closer.join(10)
    assert not closer.is_alive()
    for c in (held, queued):  # both embedded before close returned
        np.testing.assert_array_equal(c.get().vectors, _alone(c.texts))


class Fatal(BaseException):
    """What no handler catches (like SystemExit): it ends the worker thread."""


def test_an_error_that_ends_the_worker_reaches_every_request_of_its_batch(fake: FakeEmbedder, batcher: EmbedBatcher,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ended: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: ended.append(args.exc_value))  # the worker's end
    real = fake.embed_long

    def embed_long(texts: Sequence[str], long_text: LongText) -> Embedded:
        if any("fatal" in t for t in texts):
            raise Fatal("worker ends")
        return real(texts, long_text)

    fake.embed_long = embed_long  # type: ignore[method-assign]
    first = _first_call_held(fake, batcher)
    fatal = Caller(batcher, ["fatal"], POOL, deadline=10)
    other = Caller(batcher, ["other"], deadline=10)  # same batch, other long-text group, after the fatal one
    _until(lambda: batcher.pending() == 2)
    fake.release()
    first.get()
    for caller in (fatal, other):
        with pytest.raises(Fatal):  # at once, not UNAVAILABLE at the deadline
            caller.get()
    _until(lambda: len(ended) == 1)
    assert isinstance(ended[0], Fatal)
    np.testing.assert_array_equal(batcher.embed(["after"]).vectors, _alone(["after"]))  # a new worker takes over
    with pytest.raises(Fatal):  # the bulk lane's worker alike
        batcher.embed(["fatal a", "fatal b", "fatal c"])
    _until(lambda: len(ended) == 2)
    texts = ["after a", "after b", "after c"]
    np.testing.assert_array_equal(batcher.embed(texts).vectors, _alone(texts))  # a new bulk worker


def test_an_error_that_ends_the_worker_while_requests_are_retried_alone_reaches_the_rest(
        fake: FakeEmbedder, batcher: EmbedBatcher, monkeypatch: pytest.MonkeyPatch) -> None:
    ended: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: ended.append(args.exc_value))
    real = fake.embed_long

    def embed_long(texts: Sequence[str], long_text: LongText) -> Embedded:
        if texts == ["first"]:
            return real(texts, long_text)
        if len(texts) > 1:
            raise ValueError("together")  # the shared batch fails: each request is retried alone
        if texts == ["a"]:
            raise Fatal("worker ends")  # ... and the first retry ends the worker
        return real(texts, long_text)

    fake.embed_long = embed_long  # type: ignore[method-assign]
    first = _first_call_held(fake, batcher)
    a = Caller(batcher, ["a"], deadline=10)
    b = Caller(batcher, ["b"], deadline=10)  # never retried: it gets the same error at once
    _until(lambda: batcher.pending() == 2)
    fake.release()
    first.get()
    for caller in (a, b):
        with pytest.raises(Fatal):
            caller.get()
    _until(lambda: len(ended) == 1)
