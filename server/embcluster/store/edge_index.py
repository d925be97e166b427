"""HNSW indexes for Qdrant Edge shards, built in the background, off the request path.

Qdrant Edge builds its HNSW graph only when asked (``EdgeShard.optimize()``); until then, and for
points written since, a search scans the unindexed segments exactly. Two measured facts shape
how the build runs (qdrant-edge-py 0.9.0; ``tests/unit/test_edge_index.py`` pins both):

* ``optimize()`` holds the GIL for the whole build (minutes for 100k+ points), so run in a thread
  of the server it would stop every request;
* a second process cannot open a shard the server holds (its WAL is locked).

So a build (:class:`IndexBuilder`) works on a copy, in a child process:

1. writes held: the shard is flushed and its directory copied to ``<root>/.build-<name>.<random>``;
   from then on every write is applied to the live shard *and* kept in a journal;
2. a child process (``python -m embcluster.store.edge_index <copy>``, niced) loads the copy,
   runs ``optimize()``, flushes and closes it;
3. the journal is replayed onto the copy while writes go on, the last of it with writes held; the
   copy is flushed and every file and directory of it synced (``fsync_tree``);
4. reads and writes held: the live shard is closed and moved to ``.old-<name>``, the copy moved in
   and loaded; then ``.old-<name>`` is renamed to ``.trash-<name>.<random>`` (the directory synced:
   the swap is committed, a later open never restores the old shard over newer writes) and removed.
   If that commit fails the store takes no more writes (``UNAVAILABLE``) and no more builds until a
   restart restores ``.old-<name>``, which holds every acknowledged write.

A crash before step 4 leaves the live shard as it was (the copy is removed at the next open); a
crash during step 4 leaves ``.old-<name>``, which holds every acknowledged write and which the
next open restores (:func:`recover`). A build is not started while the store's indexing is
paused (a run's write-back); a build running when a pause starts, or whose journal outgrows
:data:`JOURNAL_MAX_BYTES`, is cancelled, and started again when it is due.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import qdrant_edge as qe

from ..fsio import allocated_bytes, check_free_space, fsync_tree
from .base import VectorIndexSettings
from .edge_convert import edge_vector, graph_params

__all__ = [
    "FULL_SCAN_KB",
    "JOURNAL_MAX_BYTES",
    "UNINDEXED_MIN",
    "UNINDEXED_SHARE",
    "SwapGate",
    "IndexBuilder",
    "build_dir",
    "new_build_dir",
    "new_trash_dir",
    "remove_leftovers",
    "probe_unindexed",
    "recover",
]

logger = logging.getLogger(__name__)

# Below this many unindexed points a build is not worth it: they are scanned exactly (a few ms).
UNINDEXED_MIN = 5_000
# ... nor while the unindexed points are under 1/UNINDEXED_SHARE of the collection.
UNINDEXED_SHARE = 50
# HNSW's full_scan_threshold (KB of vectors): a filtered search whose filter matches fewer points
# than this scores them exactly, found through the payload index (~13k points of 384-d: a few ms);
# one that matches more walks the graph (with ACORN below 40% selectivity: see edge.py).
FULL_SCAN_KB = 20_000
# A journal (writes made while a build runs) larger than this cancels the build.
JOURNAL_MAX_BYTES = 512 << 20
SWAP_TAIL_OPS = 4  # journaled writes left for the replay with writes held
CATCH_UP_ROUNDS = 8  # replays of the journal onto the copy while writes go on, at most
CHECK_EVERY_S = 1.0  # at most one look at the shard's index state per second after writes
RETRY_AFTER_S = 60.0  # after a failed or cancelled build
CHILD_NICE = 10


def build_dir(root: Path, name: str, what: str) -> Path:
    """``<root>/.<what>-<name>``: a collection name never starts with a dot, so never a shard."""
    return root / f".{what}-{name}"


def new_build_dir(root: Path, name: str) -> Path:
    """A build's own copy, ``.build-<name>.<random>`` (names have no dots): a build orphaned by a
    killed server (its child runs on, holding the GIL, until its optimize ends) never shares a
    directory with a later one."""
    return root / f".build-{name}.{uuid.uuid4().hex[:12]}"


def new_trash_dir(root: Path, name: str) -> Path:
    """Where a swapped-out shard goes before it is deleted, ``.trash-<name>.<random>``: never one
    that an earlier, half-finished delete left."""
    return root / f".trash-{name}.{uuid.uuid4().hex[:12]}"


def remove_leftovers(root: Path, name: str) -> None:
    """Remove the copies and trash of shard ``name``'s builds."""
    for path in [*root.glob(f".build-{name}.*"), *root.glob(f".trash-{name}.*"), build_dir(root, name, "trash")]:
        shutil.rmtree(path, ignore_errors=True)


def recover(root: Path, name: str) -> None:
    """Settle what a build that a crash interrupted left of shard ``name`` (call before opening it).

    ``.old-<name>`` exists only while a finished build is swapped in: it holds every
    acknowledged write, the shard in its place may not, so it is restored.
    """
    old = build_dir(root, name, "old")
    if old.exists():
        shutil.rmtree(root / name, ignore_errors=True)
        os.rename(old, root / name)
        logger.warning("restored shard %s after an interrupted index swap", name)
    remove_leftovers(root, name)


class SwapGate:
    """Reads share the shard; swapping it in waits for them and keeps new ones out.

    Reentrant for reading threads (a grouped search runs searches inside its own read).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._swapping = False
        self._local = threading.local()

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """Hold the shard for one read."""
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            with self._cond:
                while self._swapping:
                    self._cond.wait()
                self._readers += 1
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                with self._cond:
                    self._readers -= 1
                    if not self._readers:
                        self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the shard alone (no read runs inside)."""
        with self._cond:
            while self._swapping:
                self._cond.wait()
            self._swapping = True
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._swapping = False
                self._cond.notify_all()


class BuildHost(Protocol):
    """What :class:`IndexBuilder` needs of the store it indexes (:class:`~.edge.EdgeStore`)."""

    path: Path
    reserve_bytes: int
    write_lock: threading.RLock
    gate: SwapGate

    def raw_index_state(self) -> tuple[int, int]:
        """``(points, points outside the graph)`` of the live shard (cheap: called after writes)."""
        ...

    def flush(self) -> None:
        """Sync the shard to disk."""
        ...

    def load_copy(self, built: Path) -> Any:
        """Open the built copy where it is."""
        ...

    def replay(self, shard: Any, entries: Sequence[tuple[Any, bool, int]]) -> None:
        """Apply journaled writes to ``shard``."""
        ...

    def swap_in(self, built: Path, unindexed: int) -> None:
        """Replace the live shard by ``built`` (reads and writes held); ``unindexed``: points written meanwhile."""
        ...


def probe_unindexed(shard: Any, ef: int, samples: int = 32, quantized: bool = False) -> int:
    """Estimate the points of ``shard`` outside the graph: an indexed-only search per sampled point.

    ``info().indexed_vectors_count`` cannot tell: it still counts points a write moved out of an
    indexed segment. A sampled point that a search of the indexed segments alone finds is in the
    graph; the share not found scales to the collection. (Edge's ``indexed_only`` also searches
    unindexed segments too small to need an index, so their points count as indexed.)
    """
    rng = random.Random()
    info = shard.info()
    points = int(info.points_count)
    if points == 0 or int(info.indexed_vectors_count) == 0:
        return points
    seen: set[str] = set()
    missed = 0
    for _ in range(samples * 2):
        recs, _ = shard.scroll(qe.ScrollRequest(offset=uuid.UUID(int=rng.getrandbits(128)), limit=1,
                                                with_payload=False, with_vector=True))
        if not recs or str(recs[0].id) in seen:
            continue
        vector = edge_vector(recs[0].vector)
        if vector is None:
            continue
        seen.add(str(recs[0].id))
        # Rescored on float32 over int8 codes: a near-duplicate cannot outrank the point itself.
        hits = shard.query(qe.QueryRequest(limit=1, query=qe.Query.Nearest(vector.tolist()), with_payload=False,
                                           with_vector=False, params=graph_params(ef, quantized, indexed_only=True)))
        missed += not hits or hits[0].id != recs[0].id
        if len(seen) >= samples:
            break
    return round(points * missed / max(len(seen), 1))


def child_main(argv: list[str]) -> int:
    """The build itself, in its own process: load the copy, optimize, flush, close; print figures."""
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICE)
    start = time.perf_counter()
    shard = qe.EdgeShard.load(argv[0])
    try:
        shard.optimize()
        shard.flush()
        info = shard.info()
    finally:
        shard.close()
    print(json.dumps({"optimize_s": round(time.perf_counter() - start, 3), "points": info.points_count,
                      "indexed": info.indexed_vectors_count}))
    return 0


class IndexBuilder:
    """Builds one shard's HNSW index in the background when it is due (see the module docstring).

    Args:
        host: The store.
        settings: The collection's index settings (``min_points``).
        on_built: Called with the build's figures after a swap (tests, metrics).
    """

    def __init__(self, host: BuildHost, settings: VectorIndexSettings,
                 on_built: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.host = host
        self.settings = settings
        self.on_built = on_built
        self.journal: list[tuple[Any, bool, int]] | None = None  # (op, tolerant, points) while a build runs
        self.last_build: dict[str, Any] | None = None
        self._journal_bytes = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._cancelled = threading.Event()
        self._pauses = 0
        self._closed = False
        self._next_check = 0.0
        self._not_before = 0.0
        self._unsettled_logged = False
        self._recheck: threading.Timer | None = None
        self._failures = 0  # builds failed in a row (the retry's back-off doubles with each)

    @property
    def building(self) -> bool:
        """A build is running."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def due(self) -> bool:
        """Enough points, and enough of them unindexed, for a build to pay off."""
        points, unindexed = self.host.raw_index_state()
        return points >= self.settings.min_points and unindexed >= max(UNINDEXED_MIN, points // UNINDEXED_SHARE)

    def record(self, op: Any, points: int, nbytes: int, tolerant: bool) -> None:
        """Keep a write made while a build runs (call under ``write_lock``, after applying it)."""
        if self.journal is None:
            return
        self.journal.append((op, tolerant, points))
        self._journal_bytes += nbytes + 200 * points
        if self._journal_bytes > JOURNAL_MAX_BYTES:
            logger.info("index build of %s cancelled: %d MiB written meanwhile", self.host.path.name,
                        self._journal_bytes >> 20)
            self.cancel(wait=False)

    def poke(self, force: bool = False) -> None:
        """After writes: start a build if one is due (looks at most once per second unless ``force``)."""
        now = time.monotonic()
        if not force and now < self._next_check:
            if not self.building:  # else the last writes of a burst would never be looked at (a build looks at its end)
                self._look_again_at(self._next_check)
            return
        self._next_check = now + CHECK_EVERY_S
        with self._lock:
            if self._closed or self._pauses or self.building:
                return
            retry_at = self._not_before if now < self._not_before else None
            if retry_at is None:
                if not self.due() or self._unsettled():
                    return
                self._cancelled.clear()
                self._thread = threading.Thread(target=self._run, name=f"index-{self.host.path.name}", daemon=True)
                self._thread.start()
                return
        self._look_again_at(retry_at)

    def _look_again_at(self, when: float) -> None:
        """One deferred :meth:`poke` at ``when`` (monotonic), unless one is pending: a due build needs no further write."""
        with self._lock:
            if self._closed or self._recheck is not None:
                return
            self._recheck = threading.Timer(max(0.0, when - time.monotonic()), self._looked_again)
            self._recheck.daemon = True
            self._recheck.name = f"index-check-{self.host.path.name}"
            self._recheck.start()

    def _looked_again(self) -> None:
        with self._lock:
            self._recheck = None
        self.wait(CHECK_EVERY_S)  # a build just ending would make this look a no-op (a long one looks at its end)
        try:
            self.poke(force=True)
        except Exception:  # a write's own look fails to its caller; this one has none: logged, not raised
            logger.warning("deferred look at the vector index of %s failed", self.host.path.name, exc_info=True)

    def _unsettled(self) -> bool:
        """Whether an earlier swap left ``.old-<name>`` (only the next open settles it): no build until then."""
        old = build_dir(self.host.path.parent, self.host.path.name, "old")
        if not old.exists():
            return False
        if not self._unsettled_logged:
            logger.error("index builds of %s stop until a restart: %s is left by a swap that did not finish",
                         self.host.path.name, old)
            self._unsettled_logged = True
        return True

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No build runs inside; a running one is cancelled; one that is due starts after."""
        with self._lock:
            self._pauses += 1
        self.cancel(wait=True, retry_now=True)
        try:
            yield
        finally:
            with self._lock:
                self._pauses -= 1
            self.poke(force=True)

    def cancel(self, *, wait: bool, retry_now: bool = False) -> None:
        """Stop a running build (its copy is removed; the live shard is untouched)."""
        self._cancelled.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()
        if retry_now:
            self._not_before = 0.0

    def close(self) -> None:
        """Cancel any build and start no other (the store is closing)."""
        with self._lock:
            self._closed = True
            recheck, self._recheck = self._recheck, None
        if recheck is not None:
            recheck.cancel()
        self.cancel(wait=True)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running build to end; True if none runs now."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.building

    def _catch_up_and_swap(self, built: Path) -> dict[str, Any]:
        """Replay the journal onto the copy while writes go on, then the rest with writes held; swap.

        Only the swap itself (close, rename, load) keeps reads out; replaying 20k journaled points
        in there held them for seconds.
        """
        host = self.host
        copy = host.load_copy(built)
        done = 0
        try:
            for _ in range(CATCH_UP_ROUNDS):
                with host.write_lock:
                    tail = (self.journal or [])[done:]
                if len(tail) <= SWAP_TAIL_OPS or self._cancelled.is_set():
                    break
                host.replay(copy, tail)  # writes go on meanwhile, into the journal
                done += len(tail)
            copy.flush()
            fsync_tree(built)  # the copy is the shard from the swap on: on disk before the old one goes (bulk, writes go on)
            with host.write_lock:
                if self._cancelled.is_set():
                    return {}
                journal, self.journal = self.journal or [], None
                host.replay(copy, journal[done:])
                copy.flush()
                copy.close()
                copy = None
                fsync_tree(built)  # what the last replay changed (little: the rest was synced above)
                swap_start = time.perf_counter()
                with host.gate.exclusive():
                    host.swap_in(built, sum(points for _, _, points in journal))
                return {"swap_s": round(time.perf_counter() - swap_start, 3), "replayed": len(journal),
                        "replayed_with_writes_held": len(journal) - done}
        finally:
            if copy is not None:
                with contextlib.suppress(Exception):
                    copy.close()

    def _run(self) -> None:
        host = self.host
        name = host.path.name
        built = new_build_dir(host.path.parent, name)
        start = time.perf_counter()
        try:
            with host.write_lock:
                if self._cancelled.is_set():
                    return
                shutil.rmtree(built, ignore_errors=True)
                check_free_space(host.path.parent, host.reserve_bytes + allocated_bytes(host.path),
                                 "the reserve (min_free_mb) plus a copy of the shard, which an index build needs")
                host.flush()
                shutil.copytree(host.path, built)
                self.journal, self._journal_bytes = [], 0
            copied_s = time.perf_counter() - start
            self._proc = subprocess.Popen([sys.executable, "-m", __name__, str(built)], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True)
            if self._cancelled.is_set():  # a cancel that came before the child existed found nothing to kill
                self._proc.kill()
            out, err = self._proc.communicate()
            if self._cancelled.is_set():
                return
            if self._proc.returncode != 0:
                raise RuntimeError(f"index build process exited with {self._proc.returncode}: {err.strip()[-2000:]}")
            figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
            swapped = self._catch_up_and_swap(built)
            if not swapped:  # cancelled meanwhile
                return
            figures.update(swapped)
            figures.update(copy_s=round(copied_s, 3), total_s=round(time.perf_counter() - start, 3))
            self.last_build = figures
            logger.info("vector index of %s built: %s", name, figures)
            if self.on_built is not None:
                self.on_built(figures)
            self._failures = 0
        except Exception:
            self._failures += 1
            wait_s = RETRY_AFTER_S * 2 ** min(self._failures - 1, 6)  # a lasting fault is retried ever more rarely
            logger.exception("building the vector index of %s failed (searches stay exact scans); next try in %.0f s",
                             name, wait_s)
            self._not_before = time.monotonic() + wait_s
        finally:
            with host.write_lock:
                self.journal = None
            self._proc = None
            if self._cancelled.is_set() and not self._closed:
                self._not_before = max(self._not_before, time.monotonic() + (0 if self._pauses else RETRY_AFTER_S))
            shutil.rmtree(built, ignore_errors=True)
            if not self._pauses:  # (a pause looks when it ends) what was written meanwhile may be due; a failed
                # or cancelled build is tried again after its back-off, with or without another write
                self._look_again_at(max(self._not_before, time.monotonic() + CHECK_EVERY_S))


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
