"""Re-clustering by itself: a background thread that starts runs when a collection's schedule fires.

Every ``schedule_tick_s`` seconds the :class:`AutoRunner` looks at each collection and starts a
run through the same path as StartClustering (``EmbclusterService.start_clustering``) when

* ``interval``: ``schedule.interval_s`` seconds have passed since the last run started (or
  since the scheduler first saw the collection, if it never ran), and something changed since
  the last run: points ingested, replaced or deleted, another k, settings the served model was
  not fitted with, a featurizer it was not fitted on, or the collection is attached (its other
  writers are not counted);
* ``changes``: at least ``schedule.after_changes`` points were ingested, replaced or deleted
  since the snapshot of the last successful run;
* ``drift``: the population stability index of the recent ingests' cluster shares against the
  served model's fit sample exceeds ``schedule.drift_psi``, over at least ``drift_min_points``
  recent points and at least ``DRIFT_POINTS_PER_CLUSTER`` per cluster of the served model (the
  PSI of ``k`` shares drawn from ``n`` points of an unchanged distribution is about
  ``(k - 1) / n``: 0.5 for k=64 and n=200, which would re-trigger a run after every 200 points);
* ``drift`` also fires on what new content looks like, each over at least ``drift_min_points``
  recent points and guarded against sampling noise (:func:`novelty_figure`):
  ``schedule.drift_ks`` when the KS statistic of the recent ``cluster_distance`` against the fit
  sample's exceeds it and its noise floor ``KS_NOISE_C / sqrt(n) + KS_SKETCH_ERROR`` (the KS of
  ``n`` points of an unchanged distribution against a large reference exceeds ``1.63 / sqrt(n)``
  with probability 1%; the fit side is a 101-quantile sketch, interpolation error <= 0.01);
  ``schedule.anomaly_ratio`` when the recent anomaly rate exceeds that multiple of the fit
  sample's, and ``schedule.anomaly_rate`` when it exceeds that share; both only when it is also
  ``ANOMALY_FLOOR`` (one percentage point) above the fit's rate, so 0.1% -> 0.4% never fires, and
  more than ``ANOMALY_NOISE_Z`` binomial standard errors ``sqrt(p (1 - p) / n)`` above it. The
  run's ``trigger_detail`` says which figure fired and its value. A schedule with ``k_max`` lets
  a drift run add clusters (``RunRequest.grow_to``: :mod:`embcluster.cluster.novelty`), and every
  scheduled run then keeps the served model's k (up to ``k_max``) instead of going back to ``k``;
* ``restart``: a run was interrupted by a crash; it is re-run once after the start-up catch-up
  (at most ``restart_attempts`` times over successive crashes, counted in the run records).

One run per collection at a time: a busy collection is skipped (a run in progress, or a user's run
queued behind an automatic one: :class:`~embcluster.runs.RunManager` starts the queued run the
moment the automatic one ends, so no scheduled run can slip in between). A user's run asked for
while a scheduled one is active is queued behind it, not refused. A scheduled run that fails or is
cancelled holds that collection's schedule off for ``max(schedule_retry_s, interval_s)`` so a
failing run cannot hot-loop. An unexpected error while checking one collection (its store
unreachable, its record unwritable) is logged and that collection is left alone for
``max(schedule_retry_s, 1 s)``; the other collections are checked as usual. The change counter is persisted in the collection record when a
run starts and ends and by this thread whenever it moved.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from .config import Settings
from .errors import EmbclusterError, NotFound
from .runs import RunManager
from .schema import DriftReport, ModelInfo, RunInfo, RunRequest, RunState, Schedule

__all__ = ["AutoRunner", "ScheduleState", "ScheduleTarget", "TRIGGERS", "DRIFT_POINTS_PER_CLUSTER", "KS_NOISE_C",
           "KS_SKETCH_ERROR", "ANOMALY_FLOOR", "ANOMALY_NOISE_Z", "novelty_figure", "scheduled_k"]

logger = logging.getLogger(__name__)

TRIGGERS = ("manual", "interval", "changes", "drift", "restart")
#: Recent points per served cluster before the drift trigger may fire: keeps the PSI's sampling
#: noise of an unchanged distribution near (k - 1) / (20 k) ~ 0.05, under the usual 0.1 "stable".
DRIFT_POINTS_PER_CLUSTER = 20
#: Kolmogorov's c(alpha) at alpha = 1%: the KS of n points of an unchanged distribution against a
#: large reference sample stays under c / sqrt(n) 99% of the time (0.05 at n = 1,000).
KS_NOISE_C = 1.63
#: The fit side of the KS is a 101-quantile sketch, linear in between: error <= 1 / 100.
KS_SKETCH_ERROR = 0.01
#: The anomaly triggers need the recent rate this far above the fit's (0.1% -> 0.4% never fires).
ANOMALY_FLOOR = 0.01
#: ... and this many binomial standard errors of the fit's rate over the recent points above it.
ANOMALY_NOISE_Z = 3.0


def novelty_figure(schedule: Schedule, report: DriftReport, min_points: int) -> str | None:
    """Which novelty trigger of ``schedule`` fires on ``report`` (distance KS, anomaly ratio or rate), if any.

    Returns the figure, its value and its limit as one line, e.g. ``"distance KS 0.780 > 0.3 over
    1329 recent points"``; None when none fires or there are too few recent points to tell (the
    rules are in the module docstring).
    """
    n = report.recent_points
    if n < max(min_points, 1):
        return None
    ks = report.distance_ks
    if schedule.drift_ks is not None and ks is not None:
        floor = KS_NOISE_C / math.sqrt(n) + KS_SKETCH_ERROR
        if ks > schedule.drift_ks and ks > floor:
            return f"distance KS {ks:.3f} > {schedule.drift_ks:g} over {n} recent points (noise floor {floor:.3f})"
    rate, base = report.anomaly_rate_recent, report.anomaly_rate_fit
    if rate is None or base is None or (schedule.anomaly_ratio is None and schedule.anomaly_rate is None):
        return None
    noise = ANOMALY_NOISE_Z * math.sqrt(max(base * (1.0 - base), 1.0 / n) / n)
    if rate - base < max(ANOMALY_FLOOR, noise):
        return None
    if schedule.anomaly_ratio is not None and rate > schedule.anomaly_ratio * base:
        return (f"anomaly rate {rate:.2%} > {schedule.anomaly_ratio:g} x the fit's {base:.2%} "
                f"over {n} recent points")
    if schedule.anomaly_rate is not None and rate > schedule.anomaly_rate:
        return f"anomaly rate {rate:.2%} > {schedule.anomaly_rate:.2%} over {n} recent points (fit {base:.2%})"
    return None


def scheduled_k(schedule: Schedule, default_k: int, served_k: int) -> int:
    """k of a scheduled run: the schedule's (or default) k; with ``k_max``, the served k if a drift run grew it."""
    k = schedule.k or default_k
    if schedule.k_max is not None and served_k > k:
        return min(served_k, schedule.k_max)
    return k


def _epoch(timestamp: str, default: float) -> float:
    """Epoch seconds of an RFC 3339 timestamp (``default`` if it is empty or malformed)."""
    try:
        return datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return default


@dataclass
class ScheduleState:
    """One collection's scheduling inputs, as the service reports them."""

    schedule: Schedule | None
    default_k: int
    changes_since_run: int
    changes_total: int
    last_run_at: float  # epoch seconds the last run started (0 = never)
    served_version: int
    catching_up: bool  # the start-up catch-up is still relabelling
    served_k: int = 0  # clusters of the served model (0 = none), read from memory
    attached: bool = False  # a foreign Qdrant collection: its other writers' changes are not counted
    model_current: bool = False  # the served model was fitted with today's settings (and featurizer)


class ScheduleTarget(Protocol):
    """What the scheduler needs of the service (:class:`~embcluster.core.service.EmbclusterService`
    provides it; a test can give a stand-in without any store)."""

    runs: RunManager

    def collection_names(self) -> list[str]:
        """Names of the open collections."""
        ...

    def schedule_state(self, name: str) -> "ScheduleState":
        """One collection's scheduling inputs."""
        ...

    def save_counters(self, name: str) -> None:
        """Persist the collection's change counter now."""
        ...

    def maybe_fit_featurizer(self, name: str) -> RunInfo | None:
        """Queue an EVENT collection's automatic featurizer fit if it is due."""
        ...

    def start_clustering(self, name: str, request: RunRequest, *, trigger: str = "manual",
                         attempt: int = 0, trigger_detail: str = "") -> RunInfo:
        """Queue a clustering run."""
        ...

    def rollback(self, name: str, version: int, *, trigger: str = "manual", attempt: int = 0) -> RunInfo:
        """Queue a run that serves an earlier model version again."""
        ...

    def fit_featurizer(self, name: str, *, trigger: str = "manual", attempt: int = 0) -> RunInfo:
        """Queue an EVENT collection's featurizer refit."""
        ...

    def drift(self, name: str) -> DriftReport:
        """How far the collection has moved from its served model."""
        ...

    def get_model(self, name: str, version: int) -> ModelInfo:
        """One model version (0 = the served one)."""
        ...

    def point_count(self, name: str) -> int:
        """Points stored in the collection."""
        ...


@dataclass
class _Tracked:
    """What the runner remembers per collection (in memory)."""

    first_seen: float
    persisted_changes: int
    run_id: str = ""  # the scheduled run it started last, until it finishes
    not_before: float = 0.0  # back-off after a failed scheduled run
    quiet_until: float = 0.0  # not checked at all until then (after an unexpected error checking it)


class AutoRunner:
    """The scheduler thread, built by the service (the composition root) against :class:`ScheduleTarget`.

    Args:
        service: What it watches and starts runs on (the service's collections).
        settings: Tick period, retry back-off, restart attempts, drift minimum.
    """

    def __init__(self, service: ScheduleTarget, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self._tracked: dict[str, _Tracked] = {}
        self._restarts: dict[str, RunInfo] = {}
        self._tick_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ticked = threading.Condition()
        self.ticks = 0  # background ticks completed (tests wait on it instead of sleeping)

    def add_restart(self, collection: str, interrupted: RunInfo) -> None:
        """Re-run ``interrupted`` (a run a crash left unfinished) once the collection is caught up."""
        self._restarts[collection] = interrupted

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="embcluster-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread; runs it started go on until the service shuts them down."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def wait_ticks(self, n: int, timeout: float = 60.0) -> bool:
        """Wait until the background thread has completed ``n`` more ticks; False on timeout."""
        with self._ticked:
            target = self.ticks + n
            return self._ticked.wait_for(lambda: self.ticks >= target, timeout=timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.schedule_tick_s):
            try:
                self.tick()
            except Exception:  # never let one bad tick end scheduling
                logger.exception("scheduler tick failed")
            with self._ticked:
                self.ticks += 1
                self._ticked.notify_all()

    def tick(self, now: float | None = None) -> list[RunInfo]:
        """Check every collection once; returns the runs started."""
        with self._tick_lock:
            now = time.time() if now is None else now
            started: list[RunInfo] = []
            names = self.service.collection_names()
            for gone in set(self._tracked) - set(names):
                del self._tracked[gone]
            for name in names:
                if self._stop.is_set():
                    break
                tracked = self._tracked.get(name)
                if tracked is not None and now < tracked.quiet_until:
                    continue
                try:
                    run = self._check(name, now)
                except NotFound:  # deleted meanwhile
                    self._tracked.pop(name, None)
                    continue
                except Exception:  # one broken collection must not starve the others
                    wait = max(self.settings.schedule_retry_s, 1.0)
                    logger.exception("scheduler: checking %s failed; next check in %.0f s", name, wait)
                    self._tracked.setdefault(name, _Tracked(first_seen=now, persisted_changes=-1)).quiet_until = now + wait
                    continue
                if run is not None:
                    started.append(run)
            return started

    def _check(self, name: str, now: float) -> RunInfo | None:
        svc = self.service
        state = svc.schedule_state(name)
        tracked = self._tracked.get(name)
        if tracked is None:
            tracked = self._tracked[name] = _Tracked(first_seen=now, persisted_changes=-1)  # unknown: save
        if state.changes_total != tracked.persisted_changes:  # keep the counter across a crash
            svc.save_counters(name)
            tracked.persisted_changes = state.changes_total
        if svc.runs.active(name) is not None:
            return None
        schedule = state.schedule or Schedule()
        if tracked.run_id:  # the last scheduled run has ended: back off if it did not succeed
            try:
                last = svc.runs.get(name, tracked.run_id)
            except NotFound:
                last = None
            if last is not None and last.state.finished and last.state is not RunState.SUCCEEDED:
                wait = max(self.settings.schedule_retry_s, schedule.interval_s or 0.0)
                tracked.not_before = _epoch(last.finished_at, now) + wait
                logger.warning("scheduled run %s of %s ended %s (%s); next scheduled run in %.0f s at the earliest",
                               last.run_id, name, last.state.value, last.error or "no error", wait)
            tracked.run_id = ""
        if name in self._restarts:
            if state.catching_up:
                return None
            restarted = self._restart(name, self._restarts[name])  # kept if this raises: retried
            del self._restarts[name]
            return restarted
        if not self._stop.is_set():
            fitting = svc.maybe_fit_featurizer(name)  # EVENT: an automatic featurizer fit that is due
            if fitting is not None:
                return fitting
        if now < tracked.not_before or not schedule.active:
            return None
        due = self._due(name, state, schedule, tracked, now)
        if due is None or self._stop.is_set():  # no new run once the service is closing
            return None
        trigger, why = due
        k = scheduled_k(schedule, state.default_k, state.served_k)
        grow_to = schedule.k_max if trigger == "drift" and schedule.k_max is not None and state.served_k else 0
        request = RunRequest(k=k, grow_to=grow_to)
        try:
            run = svc.start_clustering(name, request, trigger=trigger, trigger_detail=why)
        except EmbclusterError as exc:
            if svc.runs.active(name) is not None:  # a run started by hand meanwhile: just skip
                return None
            tracked.not_before = now + max(self.settings.schedule_retry_s, schedule.interval_s or 0.0)
            logger.warning("scheduled run of %s (%s) not started: %s", name, trigger, exc)
            return None
        tracked.run_id = run.run_id
        return run

    def _due(self, name: str, state: ScheduleState, schedule: Schedule, tracked: _Tracked,
             now: float) -> tuple[str, str] | None:
        """The trigger that fires now and what it saw, if any (and the collection can be clustered at all)."""
        k = scheduled_k(schedule, state.default_k, state.served_k)
        trigger, why = None, ""
        if schedule.interval_s is not None:
            since = now - max(state.last_run_at, tracked.first_seen)
            # Nothing changed since the served model (points, k, settings, featurizer): a run would
            # refit the same points into the same model under a new version number, for nothing.
            unchanged = (state.served_version and not state.changes_since_run and state.served_k == k
                         and state.model_current and not state.attached)
            if since >= schedule.interval_s and not unchanged:
                trigger, why = "interval", f"{since:.1f} s since the last run >= {schedule.interval_s:g} s"
        if trigger is None and schedule.after_changes is not None and state.changes_since_run >= schedule.after_changes:
            trigger, why = "changes", f"{state.changes_since_run} changed points >= {schedule.after_changes}"
        if trigger is None and schedule.drift_active and state.served_version:
            report = self.service.drift(name)
            if (schedule.drift_psi is not None and report.psi_shares is not None and report.recent_points >= self.settings.drift_min_points
                    and report.psi_shares > schedule.drift_psi):
                bins = (state.served_k if state.served_k and report.model_version == state.served_version
                        else self.service.get_model(name, report.model_version).k)  # no file read per tick
                if report.recent_points >= DRIFT_POINTS_PER_CLUSTER * bins:
                    trigger, why = "drift", (f"cluster-share PSI {report.psi_shares:.3f} > {schedule.drift_psi:g} "
                                             f"over {report.recent_points} recent points")
                else:
                    logger.debug("%s: PSI %.3f over %d recent points of %d clusters: too few to tell drift from noise",
                                 name, report.psi_shares, report.recent_points, bins)
            if trigger is None:
                novel = novelty_figure(schedule, report, self.settings.drift_min_points)
                if novel is not None:
                    trigger, why = "drift", novel
        if trigger is None:
            return None
        count = self.service.point_count(name)
        if count < max(k, 1):  # nothing a run could do yet; not a failure
            logger.debug("%s: %s trigger, but %d points < k=%d", name, trigger, count, k)
            return None
        logger.info("scheduler: re-clustering %s (trigger %s: %s)", name, trigger, why)
        return trigger, why

    def _restart(self, name: str, interrupted: RunInfo) -> RunInfo | None:
        """Re-run an interrupted run with its own request, unless it already used its attempts."""
        attempt = interrupted.attempt + 1
        if attempt > self.settings.restart_attempts:
            logger.warning("run %s of %s was interrupted again (re-run %d of at most %d): not re-running it",
                           interrupted.run_id, name, interrupted.attempt, self.settings.restart_attempts)
            return None
        req = interrupted.request
        try:
            if req.rollback_to:
                run = self.service.rollback(name, req.rollback_to, trigger="restart", attempt=attempt)
            elif req.refit_featurizer:  # an EVENT featurizer refit (and the re-cluster it entails)
                run = self.service.fit_featurizer(name, trigger="restart", attempt=attempt)
            else:
                run = self.service.start_clustering(name, req, trigger="restart", attempt=attempt)
        except EmbclusterError as exc:
            logger.warning("interrupted run %s of %s not re-run: %s", interrupted.run_id, name, exc)
            return None
        logger.info("scheduler: re-running %s's interrupted run %s as %s (trigger restart, attempt %d)",
                    name, interrupted.run_id, run.run_id, attempt)
        self._tracked.setdefault(name, _Tracked(first_seen=time.time(), persisted_changes=-1)).run_id = run.run_id
        return run
