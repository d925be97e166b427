"""Clustering runs: at most one per collection at a time, on a bounded worker pool.

Run records are JSON files beside the collection, so a run's outcome survives a restart;
a run that was in flight when the process died is marked failed on the next start (its
partial write-back is undone by the catch-up that start performs).

**Queueing.** A run asked for by hand (trigger ``manual``) while an *automatic* run is active
(any other trigger: an EVENT featurizer's automatic fit, a schedule, a restart re-run) does not
fail: it is recorded QUEUED, with the automatic run's id and trigger in ``waiting_for`` /
``waiting_for_trigger``, and starts as soon as that run ends, whatever its outcome. At most one
run is queued per collection: the same request again returns the queued run, another one is
FAILED_PRECONDITION naming it. A manual run while another manual run is active stays
FAILED_PRECONDITION (the message names the run and how to wait for it), and so does any
automatic run while a run is active or queued, so the scheduler never starts one ahead of a
queued run. A queued run can be cancelled; a graceful shutdown cancels it; a crash leaves it
to the next start, which marks it FAILED like any interrupted run (and the scheduler re-runs the
newest interrupted run of the collection, see :mod:`embcluster.scheduler`).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from .deadlines import call_deadline
from .errors import FailedPrecondition, NotFound, Unavailable, shown
from .fsio import read_json, write_json_atomic
from .schema import RunInfo, RunRequest, RunState
from .validation import check_run_id

__all__ = ["RunCancelled", "RunContext", "RunManager", "utcnow", "KEEP_RUNS", "MANUAL"]

KEEP_RUNS = 200  # run records kept per collection (older ones are removed at start-up)
MANUAL = "manual"  # the trigger of a run a caller asked for; every other trigger is automatic

logger = logging.getLogger(__name__)

# How long starting a run waits for the previous run whose final state is already visible to finish saving.
_FINISHING_WAIT_S = 30.0


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


@dataclass
class _Queued:
    """A manual run waiting for the collection's automatic run to end."""

    ctx: RunContext
    job: Callable[[RunContext], None]
    context: contextvars.Context  # the starting call's (its request id in the run's logs)


def _copy(info: RunInfo) -> RunInfo:
    """A snapshot of a run's state that the worker cannot change under the caller."""
    return RunInfo.from_json(info.to_json())


def _wait_hint(collection: str, run_id: str) -> str:
    return f"wait for it with client.wait_for_run({collection!r}, {run_id!r}) or cancel it, then start again"


class RunManager:
    """Starts, queues, tracks, cancels and persists clustering runs."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="run")
        self._lock = threading.Lock()
        self._active: dict[str, tuple[RunContext, Future[None]]] = {}  # collection -> its run
        self._queued: dict[str, _Queued] = {}  # collection -> the manual run waiting for its active run
        self._closing = False  # shutdown began: queued runs are not started any more
        # Bumped on every state/progress change; watchers wait on it (see ``watch``).
        self._changed = threading.Condition()
        self._generation = 0
        #: Called with (final run info, seconds it took) when a run ends (metrics).
        self.on_finished: list[Callable[[RunInfo, float], None]] = []
        self._runs_dirs: dict[str, Path] = {}
        self._holds: dict[str, int] = {}  # collection -> holders (exports) while no run may start
        self._last: dict[str, RunInfo] = {}  # collection -> its newest finished run (GetCollection)

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
        self._last.pop(collection, None)
        for path in runs_dir.glob("*.json") if runs_dir.exists() else []:
            info = RunInfo.from_json(read_json(path))
            self._remember(info)
            if not info.state.finished:
                if not mark_interrupted:
                    interrupted.append(info)
                    records.append((info.created_at, path))
                    continue
                info.error = ("interrupted: the server stopped during the run" if info.state is not RunState.QUEUED
                              else f"interrupted: the server stopped while the run was queued behind run "
                                   f"{info.waiting_for} ({info.waiting_for_trigger})")
                info.state = RunState.FAILED
                info.finished_at = utcnow()
                write_json_atomic(path, info.to_json())
                self._remember(info)
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
        """Forget a (deleted) collection; its queued run, if any, is cancelled."""
        with self._lock:
            self._runs_dirs.pop(collection, None)
            self._last.pop(collection, None)
            queued = self._queued.pop(collection, None)
        if queued is not None:
            self._end_queued(queued, "the collection was deleted")

    def start(self, collection: str, request: RunRequest, job: Callable[[RunContext], None], *,
              trigger: str = MANUAL, attempt: int = 0, trigger_detail: str = "") -> RunInfo:
        """Start ``job`` as a new run, or queue it behind the collection's automatic run.

        A manual run while an automatic one is active comes back QUEUED and starts when that
        one ends (see the module docstring); asked for again with the same request while it is
        queued, the queued run is returned.

        Args:
            collection: The collection's name.
            request: The validated run parameters (kept in the record, e.g. to re-run it).
            job: The work; it reports progress and checks cancellation through its context.
            trigger: What started it: manual, interval, changes, drift or restart.
            attempt: 0, or how many times an interrupted run has been re-run (restart).
            trigger_detail: What an automatic trigger saw (e.g. the drift figure that fired).

        Raises:
            FailedPrecondition: A run is active that this one cannot queue behind (a manual run,
                or this one is automatic), another run is queued, or an export holds runs off.
        """
        deadline = time.monotonic() + _FINISHING_WAIT_S
        while True:
            finishing = self._finishing(collection)
            if finishing is None or time.monotonic() >= deadline:
                break
            # The active run's final state is already visible (a client's wait_for_run has returned), but
            # its worker is still saving it: starting the next run must not fail for that.
            try:
                finishing.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:  # the run's own outcome is its record's business, not this call's
                pass
        with self._lock:
            if collection not in self._runs_dirs:
                raise NotFound(f"collection {shown(collection)} not found")
            queued = self._queued.get(collection)
            if queued is not None:
                waiting = queued.ctx.info
                if trigger == MANUAL and waiting.request == request:  # the same request again: the same run
                    return _copy(waiting)
                raise FailedPrecondition(
                    f"collection {shown(collection)} already has run {waiting.run_id} queued (behind the "
                    f"{waiting.waiting_for_trigger} run {waiting.waiting_for}); "
                    f"{_wait_hint(collection, waiting.run_id)}")
            if collection in self._active:
                current = self._active[collection][0].info
                if trigger == MANUAL and current.trigger != MANUAL:
                    return self._enqueue(collection, request, job, current)
                raise FailedPrecondition(
                    f"collection {shown(collection)} already has run {current.run_id} ({current.trigger}) in progress; "
                    f"{_wait_hint(collection, current.run_id)}")
            if self._holds.get(collection):
                raise FailedPrecondition(f"collection {shown(collection)} is being exported; "
                                         "start the run when the export ends")
            info = RunInfo(
                run_id=uuid.uuid4().hex[:16], collection=collection, state=RunState.PENDING,
                request=request, created_at=utcnow(), trigger=trigger, attempt=attempt,
                trigger_detail=trigger_detail,
            )
            ctx = RunContext(info, self._save, self._notify)
            self._save(info)
            snapshot = _copy(info)  # before the worker can touch it
            # The run's log lines carry the request id of the call that started it.
            if not self._submit(ctx, job, contextvars.copy_context()):
                raise Unavailable("the server is shutting down")
            return snapshot

    def _finishing(self, collection: str) -> Future[None] | None:
        """The future of the collection's active run if that run has already reached its final state."""
        with self._lock:
            active = self._active.get(collection)
            return active[1] if active and active[0].info.state.finished else None

    def _enqueue(self, collection: str, request: RunRequest, job: Callable[[RunContext], None],
                 ahead: RunInfo) -> RunInfo:
        """Record a manual run QUEUED behind the automatic run ``ahead`` (caller holds ``_lock``)."""
        info = RunInfo(
            run_id=uuid.uuid4().hex[:16], collection=collection, state=RunState.QUEUED, phase="queued",
            request=request, created_at=utcnow(), trigger=MANUAL, waiting_for=ahead.run_id,
            waiting_for_trigger=ahead.trigger,
        )
        self._save(info)
        self._queued[collection] = _Queued(RunContext(info, self._save, self._notify), job, contextvars.copy_context())
        logger.info("run %s of %s queued behind the %s run %s", info.run_id, collection, ahead.trigger, ahead.run_id)
        return _copy(info)

    def _submit(self, ctx: RunContext, job: Callable[[RunContext], None], context: contextvars.Context) -> bool:
        """Hand a PENDING run to the pool and make it the collection's active run (caller holds ``_lock``).

        Returns False, the run recorded CANCELLED, if the pool is shut down (the service is closing).
        """
        info = ctx.info
        try:
            future = self._pool.submit(self._execute, ctx, job, context)
        except RuntimeError:
            info.state, info.error, info.finished_at = RunState.CANCELLED, "the server is shutting down", utcnow()
            self._save(info)
            return False
        self._active[info.collection] = (ctx, future)
        return True

    def _start_queued(self, collection: str) -> None:
        """The collection's active run has ended: start its queued run, if any (caller holds ``_lock``)."""
        queued = self._queued.pop(collection, None)
        if queued is None:
            return
        info = queued.ctx.info
        info.state, info.phase = RunState.PENDING, "pending"
        try:
            self._save(info)
        except Exception:  # e.g. a full disk: the run still starts (and saves again as it runs)
            logger.exception("run %s of %s: state not saved", info.run_id, collection)
        if self._submit(queued.ctx, queued.job, queued.context):
            logger.info("run %s of %s starts: the %s run %s it waited for has ended", info.run_id, collection,
                        info.waiting_for_trigger, info.waiting_for)

    def _end_queued(self, queued: _Queued, error: str = "") -> None:
        """Record a queued run CANCELLED (it never started) and tell the run-finished callbacks."""
        info = queued.ctx.info
        info.state, info.phase, info.error, info.finished_at = RunState.CANCELLED, "cancelled", error, utcnow()
        logger.info("queued run %s of %s cancelled%s", info.run_id, info.collection, f": {error}" if error else "")
        self._finished(info, 0.0)
        try:
            self._save(info)
        except Exception:
            logger.exception("run %s of %s: final state not saved", info.run_id, info.collection)

    def _execute(self, ctx: RunContext, job: Callable[[RunContext], None],
                 context: contextvars.Context | None = None) -> None:
        if context is not None:  # in the starting call's context (its request id in the run's logs) ...
            return context.run(self._execute, ctx, job)
        with call_deadline(None):  # ... but not under its deadline: a run outlives the call that started it
            self._run_job(ctx, job)

    def _run_job(self, ctx: RunContext, job: Callable[[RunContext], None]) -> None:
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
            self._finished(info, time.perf_counter() - started)  # before watchers can see the final state
            try:
                self._save(info)
            except Exception:  # e.g. a full disk: the collection must still take runs afterwards
                logger.exception("run %s of %s: final state not saved", info.run_id, info.collection)
            finally:
                with self._lock:  # one step: no other run can start between this one and the queued one
                    self._active.pop(info.collection, None)
                    if not self._closing and info.collection in self._runs_dirs:
                        self._start_queued(info.collection)

    def _finished(self, info: RunInfo, seconds: float) -> None:
        for callback in self.on_finished:
            try:
                callback(info, seconds)
            except Exception:
                logger.exception("run-finished callback failed")

    def _save(self, info: RunInfo) -> None:
        runs_dir = self._runs_dirs.get(info.collection)
        if runs_dir is not None and runs_dir.parent.exists():
            write_json_atomic(runs_dir / f"{info.run_id}.json", info.to_json())
        if runs_dir is not None:  # a deleted collection's cancelled run is not remembered for a new one
            self._remember(info)
        self._notify()

    def _remember(self, info: RunInfo) -> None:
        """Keep a copy of ``info`` as its collection's last run if it ended and is the newest so far."""
        if not info.state.finished:
            return
        known = self._last.get(info.collection)
        if known is None or (info.created_at, info.finished_at) >= (known.created_at, known.finished_at):
            self._last[info.collection] = _copy(info)

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
        """Current state of a run (live if active or queued, else from disk)."""
        with self._lock:
            active = self._active.get(collection)
            if active and active[0].info.run_id == run_id:
                return _copy(active[0].info)
            queued = self._queued.get(collection)
            if queued and queued.ctx.info.run_id == run_id:
                return _copy(queued.ctx.info)
        runs_dir = self._runs_dirs.get(collection)
        check_run_id(run_id)  # before it names a file: a long one is ENAMETOOLONG, a path one a traversal
        path = runs_dir / f"{run_id}.json" if runs_dir else None
        if path is None or not path.exists():
            raise NotFound(f"run {shown(run_id)} not found in collection {shown(collection)}")
        return RunInfo.from_json(read_json(path))

    def cancel(self, collection: str, run_id: str) -> RunInfo:
        """Request cancellation; a queued run is cancelled at once; a finished run is returned unchanged."""
        with self._lock:
            active = self._active.get(collection)
            if active and active[0].info.run_id == run_id:
                active[0].cancel()
            queued = self._queued.get(collection)
            if queued and queued.ctx.info.run_id == run_id:
                del self._queued[collection]
            else:
                queued = None
        if queued is not None:
            self._end_queued(queued)
        return self.get(collection, run_id)

    def active(self, collection: str) -> RunInfo | None:
        """The collection's run in progress, if any."""
        with self._lock:
            active = self._active.get(collection)
            return _copy(active[0].info) if active else None

    def queued(self, collection: str) -> RunInfo | None:
        """The collection's queued run, if any (there is one only while a run is active)."""
        with self._lock:
            queued = self._queued.get(collection)
            return _copy(queued.ctx.info) if queued else None

    def last(self, collection: str) -> RunInfo | None:
        """The collection's newest run that ended (succeeded, failed or cancelled), if any.

        A run whose final state watchers already see (it is set before the record is saved) counts.
        """
        with self._lock:
            active = self._active.get(collection)
            known = active[0].info if active and active[0].info.state.finished else self._last.get(collection)
            return _copy(known) if known is not None else None

    def wait(self, collection: str, timeout: float | None = None) -> None:
        """Block until the collection has no run active or queued."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                active = self._active.get(collection)
            if not active:
                return
            # A queued run is active before the one it waited for has returned: the loop sees it.
            active[1].result(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel every queued and active run and wait for the workers (each cancellation is logged at INFO)."""
        with self._lock:
            self._closing = True
            queued = list(self._queued.values())
            self._queued.clear()
            running = list(self._active.values())
        for waiting in queued:
            self._end_queued(waiting, "the server stopped before the run started")
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
