"""RunManager.watch: every change of a run is seen once, the stream ends with the run; and the
run-finished callbacks (metrics) get the final state and duration."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from embcluster.errors import NotFound
from embcluster.logs import request_id_var
from embcluster.runs import RunContext, RunManager
from embcluster.schema import RunInfo, RunRequest, RunState


def test_watch_sees_each_step_and_ends_with_the_run(tmp_path: Path) -> None:
    manager = RunManager(workers=1)
    manager.register("c", tmp_path / "runs")
    finished: list[tuple[RunInfo, float]] = []
    manager.on_finished.append(lambda info, s: finished.append((info, s)))
    go = [threading.Event() for _ in range(4)]  # the watcher releases each step after seeing the last
    seen_ids: list[str] = []

    def job(ctx: RunContext) -> None:
        seen_ids.append(request_id_var.get())
        for i, step in enumerate(go[:3]):
            step.wait(10)
            ctx.progress(f"step{i}", (i + 1) / 4)  # not persisted: watchers are woken anyway
        go[3].wait(10)

    token = request_id_var.set("rid-1")
    try:
        run = manager.start("c", RunRequest(k=2), job)
    finally:
        request_id_var.reset(token)
    states: list[RunInfo] = []

    def watch() -> None:
        for info in manager.watch("c", run.run_id, poll_s=30):  # no poll: only wake-ups
            states.append(info)
            if info.phase.startswith("step"):
                n = int(info.phase[-1]) + 1
                if n < len(go):
                    go[n].set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    go[0].set()
    watcher.join(20)
    assert not watcher.is_alive()
    phases = [s.phase for s in states]
    assert phases[-1] == "done" and states[-1].state is RunState.SUCCEEDED
    assert ["step0", "step1", "step2"] == [p for p in phases if p.startswith("step")]
    assert [s.progress for s in states] == sorted(s.progress for s in states)
    assert seen_ids == ["rid-1"]  # the run's thread runs in the starting call's context
    assert len(finished) == 1 and finished[0][0].state is RunState.SUCCEEDED and finished[0][1] >= 0
    # A finished run: one state; an unknown one: NOT_FOUND; a watcher that goes away stops.
    assert [s.state for s in manager.watch("c", run.run_id)] == [RunState.SUCCEEDED]
    with pytest.raises(NotFound):
        next(manager.watch("c", "feedfacefeedface"))
    assert list(manager.watch("c", run.run_id, is_active=lambda: False)) == []
    manager.shutdown()


def test_failed_and_cancelled_runs_reach_the_callbacks(tmp_path: Path) -> None:
    manager = RunManager(workers=1)
    manager.register("c", tmp_path / "runs")
    ended: list[str] = []
    manager.on_finished.append(lambda info, s: ended.append(info.state.value))
    manager.on_finished.insert(0, lambda info, s: 1 / 0)  # a broken callback does not stop the others

    def boom(ctx: RunContext) -> None:
        raise RuntimeError("no")

    manager.start("c", RunRequest(k=2), boom)
    manager.wait("c", timeout=10)
    release = threading.Event()

    def slow(ctx: RunContext) -> None:
        release.wait(10)
        ctx.progress("x", 0.5)

    run = manager.start("c", RunRequest(k=2), slow)
    manager.cancel("c", run.run_id)
    release.set()
    last = list(manager.watch("c", run.run_id))[-1]
    assert last.state is RunState.CANCELLED
    manager.wait("c", timeout=10)
    assert ended == ["failed", "cancelled"]
    manager.shutdown()


def test_last_is_the_newest_ended_run_and_survives_a_restart(tmp_path: Path) -> None:
    """GetCollection's last_run: the newest finished run, also after the records are re-read at start-up."""
    manager = RunManager(workers=1)
    manager.register("c", tmp_path / "runs")
    assert manager.last("c") is None

    def fail(ctx: RunContext) -> None:
        raise ValueError("no luck")

    first = manager.start("c", RunRequest(k=2), lambda ctx: None)
    manager.wait("c", timeout=10)
    assert manager.last("c").run_id == first.run_id and manager.last("c").state is RunState.SUCCEEDED
    second = manager.start("c", RunRequest(k=3), fail)
    manager.wait("c", timeout=10)
    last = manager.last("c")
    assert last.run_id == second.run_id and last.state is RunState.FAILED and "no luck" in last.error
    manager.shutdown()

    again = RunManager(workers=1)  # a restart: the records on disk decide
    again.register("c", tmp_path / "runs")
    assert again.last("c").run_id == second.run_id
    again.unregister("c")
    assert again.last("c") is None
    again.shutdown()
