"""Clustering runs: at most one per collection at a time, on a bounded worker pool.

Run records are JSON files beside the collection, so a run's outcome survives a restart;
a run that was in flight when the process died is marked failed on the next start (its
partial write-back is undone by the catch-up that start performs).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from .errors import FailedPrecondition, NotFound, Unavailable, shown
from .fsio import read_json, write_json_atomic
from .schema import RunInfo, RunRequest, RunState
from .validation import check_run_id

__all__ = ["RunCancelled", "RunContext", "RunManager", "utcnow", "KEEP_RUNS"]

KEEP_RUNS = 200  # run records kept per collection (older ones are removed at start-up)

logger = logging.getLogger(__name__)


def utcnow() -> str:
    """RFC 3339 timestamp."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class RunCancelled(Exception):
    """Raised inside a run when its cancellation was requested."""


class RunContext:
    """What a running job sees: progress reporting and cancellation checks."""

    def __init__(self, info: RunInfo, save: Callable[[RunInfo], None],
                 notify: Callable[[], None] | None = None) -> None:
        self.info = info
        self._save = save
        self._notify = notify  # wakes watchers of the run (RunManager.watch)
        self._cancel = threading.Event()

    def progress(self, phase: str, fraction: float, *, persist: bool = False, cancellable: bool = True) -> None:
        """Report the phase and overall progress (0..1).

        Raises :class:`RunCancelled` if asked to stop, unless ``cancellable`` is False (the run
        has committed and must finish).
        """
        self.info.phase = phase
        self.info.progress = max(self.info.progress, min(1.0, fraction))
        if persist:
            self._save(self.info)
        elif self._notify is not None:
            self._notify()
        if cancellable:
            self.check()

    def check(self) -> None:
        """Raise :class:`RunCancelled` if cancellation was requested."""
        if self._cancel.is_set():
            raise RunCancelled()

    def cancel(self) -> None:
        """Ask the run to stop at its next check."""
        self._cancel.set()


class RunManager:
    """Starts, tracks, cancels and persists clustering runs."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="run")
        self._lock = threading.Lock()
        self._active: dict[str, tuple[RunContext, Future[None]]] = {}  # collection -> its run
        # Bumped on every state/progress change; watchers wait on it (see ``watch``).
        self._changed = threading.Condition()
        self._generation = 0
        #: Called with (final run info, seconds it took) when a run ends (metrics).
        self.on_finished: list[Callable[[RunInfo, float], None]] = []
        self._runs_dirs: dict[str, Path] = {}
        self._holds: dict[str, int] = {}  # collection -> holders (exports) while no run may start

    def register(self, collection: str, runs_dir: Path, *, mark_interrupted: bool = True) -> list[RunInfo]:
        """Track a collection's run directory; runs left RUNNING by a dead process become FAILED.

        Args:
            collection: The collection's name.
            runs_dir: Where its run records live.
            mark_interrupted: False for offline tools: unfinished records are left as they are,
                for the next server start to mark and re-run.

        Returns:
            The runs that were interrupted (now FAILED), oldest first; the caller decides
            whether to re-run them.
        """
        self._runs_dirs[collection] = runs_dir
        records: list[tuple[str, Path]] = []
        interrupted: list[RunInfo] = []
        for path in runs_dir.glob("*.json") if runs_dir.exists() else []:
            info = RunInfo.from_json(read_json(path))
            if not info.state.finished:
                if not mark_interrupted:
                    interrupted.append(info)
                    records.append((info.created_at, path))
                    continue
                info.state = RunState.FAILED
                info.error = "interrupted: the server stopped during the run"
                info.finished_at = utcnow()
                write_json_atomic(path, info.to_json())
                logger.warning("run %s of %s was interrupted by a restart", info.run_id, collection)
                interrupted.append(info)
            records.append((info.created_at, path))
        for _, path in sorted(records)[:-KEEP_RUNS]:  # the oldest beyond the last KEEP_RUNS
            path.unlink(missing_ok=True)
        return sorted(interrupted, key=lambda r: r.created_at)

    @contextmanager
    def hold(self, collection: str) -> Iterator[None]:
        """No run of ``collection`` starts inside this block (snapshots); refused while one is active."""
        with self._lock:
            if collection in self._active:
                ctx, _ = self._active[collection]
                raise FailedPrecondition(f"collection {shown(collection)} has run {ctx.info.run_id} in progress; "
                                         "wait for it (or cancel it) and retry")
            self._holds[collection] = self._holds.get(collection, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._holds[collection] -= 1
                if not self._holds[collection]:
                    del self._holds[collection]

    def unregister(self, collection: str) -> None:
        """Forget a (deleted) collection."""
        self._runs_dirs.pop(collection, None)

    def start(self, collection: str, request: RunRequest, job: Callable[[RunContext], None], *,
              trigger: str = "manual", attempt: int = 0) -> RunInfo:
        """Queue ``job`` as a new run, unless one is active for the collection.

        Args:
            collection: The collection's name.
            request: The validated run parameters (kept in the record, e.g. to re-run it).
            job: The work; it reports progress and checks cancellation through its context.
            trigger: What started it: manual, interval, changes, drift or restart.
            attempt: 0, or how many times an interrupted run has been re-run (restart).
        """
        with self._lock:
            if collection not in self._runs_dirs:
                raise NotFound(f"collection {shown(collection)} not found")
            if collection in self._active:
                ctx, _ = self._active[collection]
                raise FailedPrecondition(
                    f"collection {shown(collection)} already has run {ctx.info.run_id} in progress; "
                    "wait for it or cancel it"
                )
            if self._holds.get(collection):
                raise FailedPrecondition(f"collection {shown(collection)} is being exported; "
                                         "start the run when the export ends")
            info = RunInfo(
                run_id=uuid.uuid4().hex[:16], collection=collection, state=RunState.PENDING,
                request=request, created_at=utcnow(), trigger=trigger, attempt=attempt,
            )
            ctx = RunContext(info, self._save, self._notify)
            self._save(info)
            snapshot = RunInfo.from_json(info.to_json())  # before the worker can touch it
            # The run's log lines carry the request id of the call that started it.
            try:
                future = self._pool.submit(self._execute, ctx, job, contextvars.copy_context())
            except RuntimeError:  # the pool is shut down: the service is closing
                info.state, info.error, info.finished_at = RunState.CANCELLED, "the server is shutting down", utcnow()
                self._save(info)
                raise Unavailable("the server is shutting down") from None
            self._active[collection] = (ctx, future)
            return snapshot

    def _execute(self, ctx: RunContext, job: Callable[[RunContext], None],
                 context: contextvars.Context | None = None) -> None:
        if context is not None:  # in the starting call's context (its request id in the run's logs)
            return context.run(self._execute, ctx, job)
        info = ctx.info
        started = time.perf_counter()
        try:
            info.state = RunState.RUNNING
            self._save(info)
            ctx.check()
            job(ctx)
            info.state, info.progress, info.phase = RunState.SUCCEEDED, 1.0, "done"
        except RunCancelled:
            info.state, info.phase = RunState.CANCELLED, "cancelled"
            logger.info("run %s of %s cancelled", info.run_id, info.collection)
        except Exception as exc:
            info.state, info.error = RunState.FAILED, f"{type(exc).__name__}: {exc}"
            logger.exception("run %s of %s failed", info.run_id, info.collection)
        finally:
            info.finished_at = utcnow()
            for callback in self.on_finished:  # before watchers can see the final state
                try:
                    callback(info, time.perf_counter() - started)
                except Exception:
                    logger.exception("run-finished callback failed")
            try:
                self._save(info)
            except Exception:  # e.g. a full disk: the collection must still take runs afterwards
                logger.exception("run %s of %s: final state not saved", info.run_id, info.collection)
            finally:
                with self._lock:
                    self._active.pop(info.collection, None)

    def _save(self, info: RunInfo) -> None:
        runs_dir = self._runs_dirs.get(info.collection)
        if runs_dir is not None and runs_dir.parent.exists():
            write_json_atomic(runs_dir / f"{info.run_id}.json", info.to_json())
        self._notify()

    def _notify(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def watch(self, collection: str, run_id: str, *, is_active: Callable[[], bool] = lambda: True,
              poll_s: float = 0.5) -> Iterator[RunInfo]:
        """Yield the run's state now and after every change of state, phase or progress.

        Ends after yielding a finished state, or when ``is_active()`` turns false (checked at
        least every ``poll_s`` seconds). Raises NotFound for an unknown run.
        """
        last: tuple[object, ...] | None = None
        while is_active():
            with self._changed:
                seen = self._generation
            info = self.get(collection, run_id)
            key = (info.state, info.phase, round(info.progress, 3), info.k, info.model_version,
                   info.points_labelled, info.error)
            if key != last:
                last = key
                yield info
            if info.state.finished:
                return
            with self._changed:
                self._changed.wait_for(lambda: self._generation != seen, timeout=poll_s)

    def get(self, collection: str, run_id: str) -> RunInfo:
        """Current state of a run (live if active, else from disk)."""
        with self._lock:
            active = self._active.get(collection)
            if active and active[0].info.run_id == run_id:
                return RunInfo.from_json(active[0].info.to_json())
        runs_dir = self._runs_dirs.get(collection)
        check_run_id(run_id)  # before it names a file: a long one is ENAMETOOLONG, a path one a traversal
        path = runs_dir / f"{run_id}.json" if runs_dir else None
        if path is None or not path.exists():
            raise NotFound(f"run {shown(run_id)} not found in collection {shown(collection)}")
        return RunInfo.from_json(read_json(path))

    def cancel(self, collection: str, run_id: str) -> RunInfo:
        """Request cancellation; a finished run is returned unchanged."""
        with self._lock:
            active = self._active.get(collection)
            if active and active[0].info.run_id == run_id:
                active[0].cancel()
        return self.get(collection, run_id)

    def active(self, collection: str) -> RunInfo | None:
        """The collection's run in progress, if any."""
        with self._lock:
            active = self._active.get(collection)
            return RunInfo.from_json(active[0].info.to_json()) if active else None

    def wait(self, collection: str, timeout: float | None = None) -> None:
        """Block until the collection's active run (if any) ends."""
        with self._lock:
            active = self._active.get(collection)
        if active:
            active[1].result(timeout=timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel every active run and wait for the workers (each cancellation is logged at INFO)."""
        with self._lock:
            running = list(self._active.values())
        for ctx, _ in running:
            info = ctx.info
            logger.info("shutdown: cancelling run %s of %s (%s, %d%%)", info.run_id, info.collection, info.phase,
                        round(100 * info.progress))
            ctx.cancel()
        for _, fut in running:
            try:
                fut.result(timeout=timeout)
            except Exception:  # already logged by the run
                pass
        self._pool.shutdown(wait=True, cancel_futures=True)
