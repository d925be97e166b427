"""Run records: interrupted runs become FAILED at start-up, and old records are pruned."""

from __future__ import annotations

from pathlib import Path

from embcluster.fsio import write_json_atomic
from embcluster.runs import KEEP_RUNS, RunManager
from embcluster.schema import RunInfo, RunRequest, RunState


def test_register_fails_interrupted_runs_and_keeps_the_newest_records(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for i in range(KEEP_RUNS + 5):
        state = RunState.RUNNING if i == KEEP_RUNS + 4 else RunState.SUCCEEDED
        info = RunInfo(run_id=f"r{i:04d}", collection="c", state=state, request=RunRequest(k=2),
                       created_at=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}.000+00:00")
        write_json_atomic(runs / f"{info.run_id}.json", info.to_json())
    manager = RunManager(workers=1)
    manager.register("c", runs)
    kept = sorted(p.stem for p in runs.glob("*.json"))
    assert len(kept) == KEEP_RUNS and kept[0] == "r0005" and kept[-1] == f"r{KEEP_RUNS + 4:04d}"
    last = manager.get("c", f"r{KEEP_RUNS + 4:04d}")
    assert last.state is RunState.FAILED and "interrupted" in last.error
    manager.shutdown()
