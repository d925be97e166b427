"""RunManager's queue: a manual run asked for while an automatic run is active waits (QUEUED) and
starts when that run ends; one queued run per collection; cancel, shutdown, delete and restart."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from embcluster.deadlines import call_deadline, wait_until
from embcluster.errors import FailedPrecondition
from embcluster.fsio import write_json_atomic
from embcluster.runs import RunContext, RunManager
from embcluster.schema import RunInfo, RunRequest, RunState


class Gate:
    """A job that blocks until released, then succeeds, fails or is cancelled; records what ran."""

    def __init__(self, log: list[str], name: str, outcome: str = "succeed") -> None:
        self.log, self.name, self.outcome = log, name, outcome
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self, ctx: RunContext) -> None:
        self.started.set()
        self.log.append(f"{self.name} start")
        assert self.release.wait(30), "never released"
        self.log.append(f"{self.name} end")
        if self.outcome == "fail":
            raise RuntimeError("automatic run broke")
        ctx.progress("working", 0.5)  # a cancel asked meanwhile is honoured here


@pytest.fixture
def manager(tmp_path: Path):  # type: ignore[no-untyped-def]
    m = RunManager(workers=2)  # two workers: the queue, not a busy pool, must be what makes a run wait
    m.register("c", tmp_path / "runs")
    yield m
    m.shutdown()


@pytest.mark.parametrize("outcome", ["succeed", "fail", "cancel"])
def test_a_manual_run_queues_behind_an_automatic_one_and_starts_when_it_ends(manager: RunManager,
                                                                            outcome: str) -> None:
    log: list[str] = []
    auto = Gate(log, "auto", "fail" if outcome == "fail" else "succeed")
    ran = Gate(log, "manual")
    ended: list[str] = []
    manager.on_finished.append(lambda info, s: ended.append(f"{info.trigger} {info.state.value}"))
    first = manager.start("c", RunRequest(refit_featurizer=True), auto, trigger="changes")
    assert auto.started.wait(10)
    queued = manager.start("c", RunRequest(k=3, seed=1), ran)  # manual: the default trigger
    assert (queued.state, queued.phase, queued.waiting_for, queued.waiting_for_trigger) == (
        RunState.QUEUED, "queued", first.run_id, "changes")
    assert manager.get("c", queued.run_id).state is RunState.QUEUED
    assert manager.queued("c").run_id == queued.run_id and manager.active("c").run_id == first.run_id
    seen: list[RunInfo] = []
    watcher = threading.Thread(target=lambda: seen.extend(manager.watch("c", queued.run_id, poll_s=30)))
    watcher.start()
    # The same request again: the same queued run. Another one: refused, naming the queued run.
    assert manager.start("c", RunRequest(k=3, seed=1), ran).run_id == queued.run_id
    with pytest.raises(FailedPrecondition, match=f"run {queued.run_id} queued .*client.wait_for_run"):
        manager.start("c", RunRequest(k=4), ran)
    # No automatic run starts ahead of (or beside) the queued one.
    with pytest.raises(FailedPrecondition):
        manager.start("c", RunRequest(k=3), ran, trigger="interval")
    if outcome == "cancel":
        manager.cancel("c", first.run_id)
    auto.release.set()
    assert ran.started.wait(10)
    # The watcher sees the latest state when it wakes: hold the manual run until it has seen it running.
    deadline = time.monotonic() + 10
    while RunState.RUNNING not in [s.state for s in seen] and time.monotonic() < deadline:
        time.sleep(0.01)
    ran.release.set()
    manager.wait("c", timeout=30)  # waits for the queued run too
    watcher.join(10)
    assert log == ["auto start", "auto end", "manual start", "manual end"]
    expected_first = {"succeed": RunState.SUCCEEDED, "fail": RunState.FAILED, "cancel": RunState.CANCELLED}[outcome]
    assert manager.get("c", first.run_id).state is expected_first
    done = manager.get("c", queued.run_id)
    assert done.state is RunState.SUCCEEDED and done.waiting_for == first.run_id  # the record keeps what it waited for
    states = [s.state for s in seen]
    assert states[0] is RunState.QUEUED and states[-1] is RunState.SUCCEEDED
    assert RunState.RUNNING in states
    assert ended == [f"changes {expected_first.value}", "manual succeeded"]


def test_a_second_manual_run_is_refused_with_how_to_wait(manager: RunManager) -> None:
    log: list[str] = []
    first = Gate(log, "first")
    run = manager.start("c", RunRequest(k=3), first)
    assert first.started.wait(10)
    with pytest.raises(FailedPrecondition) as err:
        manager.start("c", RunRequest(k=3), Gate(log, "second"))
    assert run.run_id in err.value.message and f"client.wait_for_run('c', '{run.run_id}')" in err.value.message
    assert manager.queued("c") is None
    first.release.set()
    manager.wait("c", timeout=30)
    assert log == ["first start", "first end"]


def test_a_queued_run_can_be_cancelled_and_never_starts(manager: RunManager, tmp_path: Path) -> None:
    log: list[str] = []
    auto = Gate(log, "auto")
    ended: list[str] = []
    manager.on_finished.append(lambda info, s: ended.append(info.state.value))
    manager.start("c", RunRequest(k=3), auto, trigger="drift")
    assert auto.started.wait(10)
    queued = manager.start("c", RunRequest(k=3), Gate(log, "manual"))
    cancelled = manager.cancel("c", queued.run_id)
    assert cancelled.state is RunState.CANCELLED and cancelled.finished_at
    assert manager.queued("c") is None and ended == ["cancelled"]
    on_disk = RunInfo.from_json(json.loads((tmp_path / "runs" / f"{queued.run_id}.json").read_text()))
    assert on_disk.state is RunState.CANCELLED
    # Another manual run may queue now.
    again = manager.start("c", RunRequest(k=5), Gate(log, "again"))
    assert again.state is RunState.QUEUED
    manager.cancel("c", again.run_id)
    auto.release.set()
    manager.wait("c", timeout=30)
    assert log == ["auto start", "auto end"]


def test_shutdown_and_delete_cancel_a_queued_run(tmp_path: Path) -> None:
    for how in ("shutdown", "delete"):
        manager = RunManager(workers=1)
        manager.register("c", tmp_path / how)
        log: list[str] = []
        auto = Gate(log, "auto")
        manager.start("c", RunRequest(k=3), auto, trigger="interval")
        assert auto.started.wait(10)
        queued = manager.start("c", RunRequest(k=3), Gate(log, "manual"))
        threading.Timer(0.2, auto.release.set).start()
        if how == "shutdown":
            manager.shutdown()
            info = manager.get("c", queued.run_id)
            assert info.state is RunState.CANCELLED and "stopped before the run started" in info.error
        else:
            manager.unregister("c")
            manager.wait("c", timeout=30)
            manager.shutdown()
        assert "manual start" not in log


def test_a_queued_run_a_crash_left_is_failed_and_is_the_run_to_redo(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    auto = RunInfo(run_id="auto1", collection="c", state=RunState.RUNNING, request=RunRequest(refit_featurizer=True),
                   phase="featurizing", created_at="2026-01-01T00:00:00.000+00:00", trigger="changes")
    queued = RunInfo(run_id="mine1", collection="c", state=RunState.QUEUED, request=RunRequest(k=4), phase="queued",
                     created_at="2026-01-01T00:00:01.000+00:00", waiting_for="auto1", waiting_for_trigger="changes")
    for info in (auto, queued):
        write_json_atomic(runs / f"{info.run_id}.json", info.to_json())
    manager = RunManager(workers=1)
    interrupted = manager.register("c", runs)
    try:
        assert [r.run_id for r in interrupted] == ["auto1", "mine1"]  # the newest, the user's, is re-run
        mine = manager.get("c", "mine1")
        assert mine.state is RunState.FAILED
        assert mine.error == "interrupted: the server stopped while the run was queued behind run auto1 (changes)"
    finally:
        manager.shutdown()


def test_a_run_started_once_the_previous_ones_final_state_is_visible_does_not_fail(manager: RunManager) -> None:
    """A client's wait_for_run returns at the final state, before the worker has saved it and let go of
    the collection; the next StartClustering used to be FAILED_PRECONDITION in that window (the EVENT demo
    hit it in CI). It now waits for the previous run's worker."""
    log: list[str] = []
    in_callback, release = threading.Event(), threading.Event()

    def slow_end(info: RunInfo, seconds: float) -> None:  # holds the window open: final state set, not saved
        if info.request.k == 2:
            in_callback.set()
            assert release.wait(30)

    manager.on_finished.append(slow_end)
    first_job, second_job = Gate(log, "first"), Gate(log, "second")
    first_job.release.set()
    second_job.release.set()
    first = manager.start("c", RunRequest(k=2, seed=0), first_job)
    assert in_callback.wait(10)
    assert manager.get("c", first.run_id).state is RunState.SUCCEEDED  # what the client's wait sees
    timer = threading.Timer(0.3, release.set)
    timer.start()
    second = manager.start("c", RunRequest(k=3, seed=0), second_job)
    timer.join()
    assert second.state is RunState.PENDING and second.run_id != first.run_id
    manager.wait("c", timeout=30)
    assert manager.get("c", second.run_id).state is RunState.SUCCEEDED
    assert log == ["first start", "first end", "second start", "second end"]


def test_a_run_outlives_the_deadline_and_the_end_of_the_call_that_started_it(manager: RunManager) -> None:
    """A run keeps the starting call's context (its request id) but not its deadline: a job that waits
    for another thread (texts queued for the embedding worker) must not fail once that call is over."""
    done = threading.Event()
    waited: list[bool] = []

    def job(ctx: RunContext) -> None:
        threading.Timer(0.3, done.set).start()  # the worker finishes well after the call has ended
        waited.append(wait_until(done))

    with call_deadline(0.01, is_active=lambda: False):  # the call: nearly out of time, and already over
        info = manager.start("c", RunRequest(k=3, seed=1), job)
    manager.wait("c", timeout=10)
    assert waited == [True]
    assert manager.get("c", info.run_id).state is RunState.SUCCEEDED
