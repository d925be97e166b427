"""Scheduled re-clustering and drift through the service core (VECTOR collections, Qdrant Edge, no gRPC).

Most tests drive the scheduler by calling ``svc.autorun.tick()`` with the background thread
slowed to a crawl, so which run starts when is deterministic; one test lets the thread fire
a drift run by itself.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from embcluster.config import Settings
from embcluster.errors import InvalidArgument
from embcluster.fsio import write_json_atomic
from embcluster.pipeline import EmbclusterService
from embcluster.runs import RunManager
from embcluster.schema import (
    CollectionSettings,
    CollectionSpec,
    ItemInput,
    RunInfo,
    RunRequest,
    RunState,
    Schedule,
)
from embcluster.scheduler import DRIFT_POINTS_PER_CLUSTER, AutoRunner, ScheduleState

DIM = 8
K = 4
NAME = "sched"
CENTERS = np.random.default_rng(7).normal(size=(K, DIM)) * 6.0
SLOW_TICK = 3600.0  # the thread never ticks on its own in these tests: they call tick()


def blobs(n: int, seed: int, weights: list[float] | None = None, scale: float = 0.4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = rng.choice(K, size=n, p=weights) if weights else np.arange(n) % K
    return (CENTERS[labels] + rng.normal(scale=scale, size=(n, DIM))).astype(np.float32)


def ingest(svc: EmbclusterService, x: np.ndarray, prefix: str, batch: int = 250) -> None:
    for s in range(0, len(x), batch):
        svc.ingest(NAME, [ItemInput(id=f"{prefix}{s + i}", vector=v.tolist()) for i, v in enumerate(x[s:s + batch])])


@pytest.fixture
def make(make_service):  # type: ignore[no-untyped-def]
    """Services whose scheduler thread never ticks by itself (the tests call ``tick()``)."""
    return lambda root, **overrides: make_service(root, **{"schedule_tick_s": SLOW_TICK, **overrides})


def runs_on_disk(root: Path) -> list[RunInfo]:
    return sorted((RunInfo.from_json(json.loads(p.read_text()))
                   for p in (root / "collections" / NAME / "runs").glob("*.json")), key=lambda r: r.created_at)


@pytest.fixture
def clustered(root: Path, make):
    svc = make(root, drift_min_points=100)
    svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM, metric="cosine",
                                         settings=CollectionSettings(default_k=K)))
    ingest(svc, blobs(800, 0), "a")
    run = svc.start_clustering(NAME, RunRequest(k=K, seed=0))
    svc.runs.wait(NAME, timeout=120)
    assert svc.get_run(NAME, run.run_id).state is RunState.SUCCEEDED
    yield svc
    svc.close()


@pytest.mark.parametrize("schedule, message", [
    (Schedule(interval_s=0.0), "interval_s must be in [1, 31,622,400] seconds"),
    (Schedule(interval_s=-5.0), "got -5.0"),
    (Schedule(interval_s=math.nan), "got nan"),
    (Schedule(interval_s=0.5), "got 0.5"),
    (Schedule(after_changes=0), "after_changes must be >= 1 point, got 0"),
    (Schedule(after_changes=-3), "got -3"),
    (Schedule(drift_psi=0.0), "drift_psi must be in (0, 100], got 0.0"),
    (Schedule(drift_psi=-0.2), "got -0.2"),
    (Schedule(drift_psi=math.inf), "got inf"),
    (Schedule(interval_s=60.0, k=1), "schedule k must be in [2, 10000], got 1"),
])
def test_invalid_schedules_are_invalid_arguments(root: Path, schedule: Schedule, message: str, make) -> None:
    svc = make(root)
    try:
        with pytest.raises(InvalidArgument) as e:
            svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM,
                                                 settings=CollectionSettings(schedule=schedule)))
        assert message in e.value.message
        svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM))
        with pytest.raises(InvalidArgument) as e:
            svc.update_collection(NAME, CollectionSettings(schedule=schedule))
        assert message in e.value.message
        assert svc.get_collection(NAME).settings.schedule == Schedule()  # unchanged: off
    finally:
        svc.close()


def test_a_schedule_is_replaced_as_a_whole_survives_a_restart_and_an_empty_one_switches_it_off(root: Path, make) -> None:
    svc = make(root)
    svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM,
                                         settings=CollectionSettings(schedule=Schedule(interval_s=60, k=3))))
    assert svc.get_collection(NAME).settings.schedule == Schedule(interval_s=60.0, k=3)
    svc.update_collection(NAME, CollectionSettings(contamination=0.05))  # no schedule given: unchanged
    assert svc.get_collection(NAME).settings.schedule == Schedule(interval_s=60.0, k=3)
    svc.update_collection(NAME, CollectionSettings(schedule=Schedule(after_changes=10, drift_psi=0.2)))
    svc.close()
    svc = make(root)
    try:
        got = svc.get_collection(NAME).settings
        assert got.schedule == Schedule(after_changes=10, drift_psi=0.2) and got.contamination == 0.05
        svc.update_collection(NAME, CollectionSettings(schedule=Schedule()))
        assert not svc.get_collection(NAME).settings.schedule.active
    finally:
        svc.close()


def test_drift_rises_after_a_shifted_distribution_is_ingested(clustered: EmbclusterService) -> None:
    svc = clustered
    report = svc.drift(NAME)
    assert report.model_version == 1 and report.previous_version == 0 and report.recent_points == 0
    assert report.psi_shares is None and report.psi_versions is None and report.centroid_shift_mean is None
    assert report.distance_p50_fit is not None and report.distance_p90_fit >= report.distance_p50_fit
    assert 0 < report.anomaly_rate_fit < 0.05

    ingest(svc, blobs(400, 1), "same")  # the fit distribution again
    same = svc.drift(NAME)
    assert same.recent_points == 400
    assert same.psi_shares < 0.05 and same.distance_ks < 0.15

    ingest(svc, blobs(1200, 2, weights=[0.85, 0.05, 0.05, 0.05], scale=1.2), "shift")  # shares and spread move
    shifted = svc.drift(NAME)
    assert shifted.recent_points == 1600
    assert shifted.psi_shares > 0.3 > same.psi_shares
    assert shifted.distance_ks > 0.3 and shifted.distance_p50_recent > same.distance_p50_recent
    assert shifted.anomaly_rate_recent > shifted.anomaly_rate_fit

    run = svc.start_clustering(NAME, RunRequest(k=K, seed=0))
    svc.runs.wait(NAME, timeout=120)
    assert svc.get_run(NAME, run.run_id).state is RunState.SUCCEEDED
    after = svc.drift(NAME)
    assert (after.model_version, after.previous_version, after.recent_points) == (2, 1, 0)
    assert after.psi_versions is not None and after.psi_versions > 0.1  # one cluster grew a lot
    assert after.centroid_shift_max is not None and after.centroid_shift_max >= after.centroid_shift_mean >= 0


def test_a_drift_threshold_triggers_a_run_by_itself(root: Path, make) -> None:
    svc = make(root, schedule_tick_s=0.05, drift_min_points=300)
    try:
        svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM, settings=CollectionSettings(
            default_k=K, schedule=Schedule(drift_psi=0.25))))
        ingest(svc, blobs(800, 0), "a")
        assert svc.autorun.wait_ticks(5)
        assert svc.get_collection(NAME).served_model_version == 0  # no model: drift cannot fire
        run = svc.start_clustering(NAME, RunRequest(k=K, seed=0))
        svc.runs.wait(NAME, timeout=120)
        ingest(svc, blobs(250, 1, weights=[0.85, 0.05, 0.05, 0.05]), "few")  # shifted but < drift_min_points
        assert svc.autorun.wait_ticks(5)
        assert svc.get_collection(NAME).served_model_version == 1
        ingest(svc, blobs(250, 2, weights=[0.85, 0.05, 0.05, 0.05]), "more")
        deadline = time.monotonic() + 60
        while svc.get_collection(NAME).served_model_version < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        svc.wait_idle()
        runs = runs_on_disk(root)
        assert [r.trigger for r in runs] == ["manual", "drift"], runs
        assert runs[0].run_id == run.run_id and runs[1].state is RunState.SUCCEEDED and runs[1].k == K
        assert svc.drift(NAME).recent_points == 0  # a new window for the new version: no re-trigger
        assert svc.autorun.wait_ticks(5)
        assert len(runs_on_disk(root)) == 2
    finally:
        svc.close()


def test_a_change_count_triggers_a_run_and_is_reset_by_it(clustered: EmbclusterService, root: Path) -> None:
    svc = clustered
    svc.update_collection(NAME, CollectionSettings(schedule=Schedule(after_changes=100)))
    assert svc.autorun.tick() == []
    ingest(svc, blobs(60, 3), "b")
    assert svc.delete_points(NAME, ids=["a0", "a1", "missing"]) == 2
    assert svc.schedule_state(NAME).changes_since_run == 62
    assert svc.autorun.tick() == []
    ingest(svc, blobs(40, 4), "c")
    started = svc.autorun.tick()
    assert [r.trigger for r in started] == ["changes"] and started[0].request.k == K
    assert svc.autorun.tick() == []  # busy (or done): never a second run for the same changes
    svc.runs.wait(NAME, timeout=120)
    assert svc.get_run(NAME, started[0].run_id).state is RunState.SUCCEEDED
    assert svc.schedule_state(NAME).changes_since_run == 0
    assert svc.autorun.tick() == []
    saved = json.loads((root / "collections" / NAME / "collection.json").read_text())
    assert saved["changes_total"] - saved["changes_at_run"] == 0 and saved["changes_total"] >= 902


def test_the_change_counter_is_persisted_while_it_moves(clustered: EmbclusterService, root: Path) -> None:
    svc = clustered
    ingest(svc, blobs(30, 5), "d")
    svc.autorun.tick()  # the scheduler saves a moved counter
    saved = json.loads((root / "collections" / NAME / "collection.json").read_text())
    assert saved["changes_total"] - saved["changes_at_run"] == 30


def test_an_interval_triggers_runs_and_a_failed_scheduled_run_backs_off(clustered: EmbclusterService) -> None:
    svc = clustered
    svc.autorun.settings = svc.settings.model_copy(update={"schedule_retry_s": 120.0})
    svc.update_collection(NAME, CollectionSettings(schedule=Schedule(interval_s=30, k=3)))
    now = time.time()
    assert svc.autorun.tick(now) == []  # 0 s since the last run
    started = svc.autorun.tick(now + 31)
    assert [(r.trigger, r.request.k) for r in started] == [("interval", 3)]
    svc.runs.wait(NAME, timeout=120)
    assert svc.get_run(NAME, started[0].run_id).state is RunState.SUCCEEDED
    assert svc.autorun.tick(time.time() + 5) == []  # measured from that run's start
    assert svc.autorun.tick(time.time() + 31) == []  # nothing changed since: no run, no new version
    assert svc.get_collection(NAME).served_model_version == 2
    svc.update_collection(NAME, CollectionSettings(contamination=0.05))  # a setting the model was not fitted with
    rerun = svc.autorun.tick(time.time() + 31)
    assert [r.trigger for r in rerun] == ["interval"]
    svc.runs.wait(NAME, timeout=120)
    assert svc.get_model(NAME, 0).params["contamination"] == 0.05 and svc.get_collection(NAME).served_model_version == 3
    assert svc.autorun.tick(time.time() + 31) == []  # current again

    ingest(svc, blobs(5, 9), "late")  # one change is enough for the next interval
    again = svc.autorun.tick(time.time() + 31)
    assert [r.trigger for r in again] == ["interval"]
    svc.cancel_run(NAME, again[0].run_id)  # a scheduled run that does not succeed ...
    svc.runs.wait(NAME, timeout=120)
    assert svc.get_run(NAME, again[0].run_id).state is RunState.CANCELLED
    t = time.time()
    assert svc.autorun.tick(t + 31) == []  # ... holds the schedule off for max(retry, interval)
    assert svc.autorun.tick(t + 100) == []
    assert [r.trigger for r in svc.autorun.tick(t + 125)] == ["interval"]
    svc.runs.wait(NAME, timeout=120)


def test_no_scheduled_run_while_another_is_active_or_the_collection_is_too_small(root: Path, make) -> None:
    svc = make(root)
    try:
        svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM, settings=CollectionSettings(
            default_k=K, schedule=Schedule(after_changes=1))))
        ingest(svc, blobs(3, 0), "a")  # 3 points < k = 4: nothing a run could do
        assert svc.autorun.tick() == []
        ingest(svc, blobs(400, 1), "b")
        manual = svc.start_clustering(NAME, RunRequest(k=K, seed=0))
        assert svc.autorun.tick() == []  # one run per collection: the manual one is active
        svc.runs.wait(NAME, timeout=120)
        assert svc.get_run(NAME, manual.run_id).state is RunState.SUCCEEDED
        assert svc.autorun.tick() == []  # the manual run covered those changes
    finally:
        svc.close()


def test_a_users_run_queues_behind_a_scheduled_one_and_no_scheduled_run_starts_ahead_of_it(root: Path, make) -> None:
    svc = make(root)
    try:
        svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM, settings=CollectionSettings(
            default_k=K, schedule=Schedule(after_changes=1))))
        ingest(svc, blobs(400, 1), "b")
        with svc.registry.get(NAME).lock:  # the run waits for this lock before its first step: it stays active
            [scheduled] = svc.autorun.tick()
            assert scheduled.trigger == "changes"
            mine = svc.start_clustering(NAME, RunRequest(k=3, seed=2))  # not FAILED_PRECONDITION
            assert (mine.state, mine.waiting_for, mine.waiting_for_trigger) == (
                RunState.QUEUED, scheduled.run_id, "changes")
            ingest(svc, blobs(5, 9), "c")  # changes that are due again (the lock is re-entrant) ...
            assert svc.autorun.tick() == []  # ... but a run is active and the user's is queued: nothing starts
        svc.runs.wait(NAME, timeout=120)
        first, second = svc.get_run(NAME, scheduled.run_id), svc.get_run(NAME, mine.run_id)
        assert first.state is RunState.SUCCEEDED and second.state is RunState.SUCCEEDED
        assert (first.model_version, second.model_version) == (1, 2)  # the user's run after the scheduled one
        assert svc.get_collection(NAME).served_model_version == 2 and svc.get_model(NAME, 2).k == 3
    finally:
        svc.close()


def _interrupt(root: Path, request: RunRequest, attempt: int = 0) -> RunInfo:
    """A run record as a killed process leaves it: RUNNING."""
    info = RunInfo(run_id=f"dead{attempt}", collection=NAME, state=RunState.RUNNING, request=request,
                   phase="assigning", created_at="2099-01-01T00:00:00.000+00:00", trigger="interval", attempt=attempt)
    write_json_atomic(root / "collections" / NAME / "runs" / f"{info.run_id}.json", info.to_json())
    return info


def test_a_run_interrupted_by_a_crash_is_re_run_once_after_restart(clustered: EmbclusterService, root: Path, make) -> None:
    clustered.close()
    _interrupt(root, RunRequest(k=3, seed=5))
    svc = make(root)
    try:
        assert svc.get_run(NAME, "dead0").state is RunState.FAILED
        assert svc.get_collection(NAME).served_model_version == 1  # the previous model stays served
        started = svc.autorun.tick()
        assert len(started) == 1
        rerun = started[0]
        assert (rerun.trigger, rerun.attempt, rerun.request.k, rerun.request.seed) == ("restart", 1, 3, 5)
        svc.runs.wait(NAME, timeout=120)
        done = svc.get_run(NAME, rerun.run_id)
        assert done.state is RunState.SUCCEEDED and done.k == 3
        assert svc.get_collection(NAME).served_model_version == done.model_version
        assert svc.autorun.tick() == []  # once
    finally:
        svc.close()

    _interrupt(root, RunRequest(k=3, seed=5), attempt=1)  # the re-run itself died: no further attempt
    svc = make(root)
    try:
        assert svc.autorun.tick() == []
        assert [r.state for r in runs_on_disk(root)].count(RunState.RUNNING) == 0
    finally:
        svc.close()


def test_a_collection_that_cannot_be_checked_does_not_starve_the_others(root: Path, make) -> None:
    svc = make(root, schedule_retry_s=60.0)
    try:
        for name in ("a-broken", NAME):  # "a-broken" is checked first
            svc.create_collection(CollectionSpec(name=name, input_kind="vector", vector_dim=DIM, settings=CollectionSettings(
                default_k=K, schedule=Schedule(after_changes=1))))
            x = blobs(40, 0)
            svc.ingest(name, [ItemInput(id=f"p{i}", vector=v.tolist()) for i, v in enumerate(x)])
        # Its record cannot be written (the temp file's path is taken by a directory): a real OS error.
        blocker = root / "collections" / "a-broken" / ".collection.json.tmp"
        blocker.mkdir()
        now = time.time()
        started = svc.autorun.tick(now)
        assert [r.collection for r in started] == [NAME]
        svc.runs.wait(NAME, timeout=120)
        blocker.rmdir()
        assert svc.autorun.tick(now + 30) == []  # the broken one is left alone for a while ...
        retried = svc.autorun.tick(now + 61)  # ... then checked again, and its changes fire
        assert [(r.collection, r.trigger) for r in retried] == [("a-broken", "changes")]
        svc.runs.wait("a-broken", timeout=120)
    finally:
        svc.close()


def test_drift_of_many_clusters_waits_for_enough_points_to_tell_it_from_noise(root: Path, make) -> None:
    k = 32
    svc = make(root, drift_min_points=100)
    try:
        svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM, settings=CollectionSettings(
            default_k=k, schedule=Schedule(drift_psi=0.05))))
        ingest(svc, blobs(1600, 0), "a")
        run = svc.start_clustering(NAME, RunRequest(k=k, seed=0))
        svc.runs.wait(NAME, timeout=120)
        assert svc.get_run(NAME, run.run_id).state is RunState.SUCCEEDED
        ingest(svc, blobs(300, 1), "same")  # the fit distribution again: 300 points over 32 shares
        noise = svc.drift(NAME)
        assert noise.recent_points == 300 < DRIFT_POINTS_PER_CLUSTER * k
        assert noise.psi_shares > 0.05  # sampling noise alone passes the threshold ...
        assert svc.autorun.tick() == []  # ... so it does not fire yet
        ingest(svc, blobs(400, 2, weights=[0.97, 0.01, 0.01, 0.01]), "shift")  # a real shift, 700 points in all
        started = svc.autorun.tick()
        assert [r.trigger for r in started] == ["drift"]
        svc.runs.wait(NAME, timeout=120)
    finally:
        svc.close()


def test_an_offline_open_leaves_interrupted_runs_for_the_server(clustered: EmbclusterService, root: Path, make) -> None:
    clustered.close()
    _interrupt(root, RunRequest(k=3, seed=5))
    offline = EmbclusterService(Settings(data_dir=root, schedule_tick_s=SLOW_TICK))
    offline.open(background=False)  # what `embcluster export --data-dir` does
    try:
        assert offline.get_run(NAME, "dead0").state is RunState.RUNNING  # untouched
        assert offline.autorun.tick() == []
    finally:
        offline.close()
    svc = make(root)
    try:
        assert svc.get_run(NAME, "dead0").state is RunState.FAILED
        started = svc.autorun.tick()
        assert len(started) == 1 and started[0].trigger == "restart"
        svc.runs.wait(NAME, timeout=120)
    finally:
        svc.close()


class _Target:
    """A stand-in for the service: the scheduler needs only the ScheduleTarget protocol, no store."""

    def __init__(self, state: ScheduleState) -> None:
        self.runs = RunManager(1)
        self.state = state
        self.started: list[tuple[str, RunRequest, str]] = []

    def collection_names(self) -> list[str]:
        return ["x"]

    def schedule_state(self, name: str) -> ScheduleState:
        return self.state

    def save_counters(self, name: str) -> None:
        pass

    def maybe_fit_featurizer(self, name: str) -> RunInfo | None:
        return None

    def start_clustering(self, name: str, request: RunRequest, *, trigger: str = "manual",
                         attempt: int = 0, trigger_detail: str = "") -> RunInfo:
        self.started.append((name, request, trigger))
        return RunInfo(run_id=f"r{len(self.started)}", collection=name, state=RunState.PENDING, request=request,
                       trigger=trigger)

    def rollback(self, name: str, version: int, *, trigger: str = "manual", attempt: int = 0) -> RunInfo:
        raise AssertionError("not expected")

    def fit_featurizer(self, name: str, *, trigger: str = "manual", attempt: int = 0) -> RunInfo:
        raise AssertionError("not expected")

    def drift(self, name: str):  # type: ignore[no-untyped-def]
        raise AssertionError("not expected")

    def get_model(self, name: str, version: int):  # type: ignore[no-untyped-def]
        raise AssertionError("not expected")

    def point_count(self, name: str) -> int:
        return 1000


def test_the_scheduler_runs_against_its_protocol_without_a_store() -> None:
    state = ScheduleState(schedule=Schedule(after_changes=100, k=3), default_k=8, changes_since_run=150,
                          changes_total=150, last_run_at=0.0, served_version=1, catching_up=False)
    target = _Target(state)
    runner = AutoRunner(target, Settings(data_dir="/nonexistent"))
    started = runner.tick(now=1000.0)
    assert [r.trigger for r in started] == ["changes"] and target.started[0][1].k == 3
    state.changes_since_run = 10
    runner.tick(now=1001.0)  # below the threshold: nothing more
    assert len(target.started) == 1
    target.runs.shutdown()
