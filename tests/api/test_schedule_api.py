"""Schedules, run triggers and GetDrift over gRPC, with the sync and the asyncio client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Iterator

import grpc
import numpy as np
import pytest
from embcluster_client import AsyncEmbclusterClient, pb, schedule

from embcluster.config import Settings

from .conftest import Running

DIM = 6


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Running]:
    s = Running(Settings(data_dir=tmp_path / "data", port=0, schedule_tick_s=3600, drift_min_points=10))
    yield s
    s.stop()


def _points(n: int, seed: int, weights: list[float] | None = None) -> list[dict]:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(3).normal(size=(3, DIM)) * 5
    labels = rng.choice(3, size=n, p=weights) if weights else np.arange(n) % 3
    x = centers[labels] + rng.normal(scale=0.3, size=(n, DIM))
    return [{"id": f"s{seed}-{i}", "vector": v} for i, v in enumerate(x)]


def test_schedule_round_trip_and_switch_off(srv: Running) -> None:
    c = srv.client
    col = c.create_collection("s", input_kind="vector", vector_dim=DIM,
                              schedule=schedule(interval_s=3600, after_changes=500, k=3))
    sched = col.settings.schedule
    assert (sched.interval_s, sched.after_changes, sched.k) == (3600.0, 500, 3) and not sched.HasField("drift_psi")
    col = c.update_collection("s", contamination=0.05)  # no schedule: unchanged
    assert col.settings.schedule.after_changes == 500
    col = c.update_collection("s", schedule=schedule(drift_psi=0.2))  # replaced as a whole
    sched = col.settings.schedule
    assert sched.drift_psi == 0.2 and not sched.HasField("interval_s") and not sched.HasField("after_changes")
    col = c.update_collection("s", schedule=schedule())  # empty: off
    assert col.settings.schedule == pb.Schedule()
    assert c.get_collection("s").settings.schedule == pb.Schedule()


@pytest.mark.parametrize("bad, shown", [
    (schedule(interval_s=0), "got 0.0"),
    (schedule(interval_s=-10), "got -10.0"),
    (schedule(after_changes=0), "got 0"),
    (schedule(drift_psi=0), "drift_psi must be in (0, 100], got 0.0"),
    (schedule(drift_psi=-1), "got -1.0"),
])
def test_invalid_schedules_are_invalid_argument(srv: Running, bad: pb.Schedule, shown: str) -> None:
    c = srv.client
    with pytest.raises(grpc.RpcError) as e:
        c.create_collection("bad", input_kind="vector", vector_dim=DIM, schedule=bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and shown in e.value.details()
    c.create_collection("ok", input_kind="vector", vector_dim=DIM)
    with pytest.raises(grpc.RpcError) as e:
        c.update_collection("ok", schedule=bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and shown in e.value.details()


def test_get_drift_and_run_triggers(srv: Running) -> None:
    c = srv.client
    c.create_collection("d", input_kind="vector", vector_dim=DIM, default_k=3)
    empty = c.get_drift("d")
    assert empty.model_version == 0 and not empty.HasField("psi_shares") and not empty.HasField("distance_ks")
    c.ingest_many("d", _points(300, 0), batch_size=100)
    run = c.cluster("d", k=3, seed=0)
    assert run.trigger == "manual" and run.attempt == 0
    assert c.get_clustering_run("d", run.run_id).trigger == "manual"

    c.ingest_many("d", _points(200, 1, weights=[0.9, 0.05, 0.05]), batch_size=100)
    drift = c.get_drift("d")
    assert drift.collection == "d" and drift.model_version == run.model_version and drift.recent_points == 200
    assert drift.psi_shares > 0.3 and drift.HasField("distance_ks") and drift.HasField("anomaly_rate_fit")
    assert not drift.HasField("psi_versions")  # no previous version yet

    c.update_collection("d", schedule=schedule(after_changes=100))
    started = srv.service.autorun.tick()
    assert [r.trigger for r in started] == ["changes"]
    srv.service.runs.wait("d", timeout=60)
    got = c.get_clustering_run("d", started[0].run_id)
    assert got.state == pb.RUN_STATE_SUCCEEDED and got.trigger == "changes"

    async def via_asyncio() -> pb.Drift:
        async with AsyncEmbclusterClient(srv.server.address, timeout=60) as ac:
            return await ac.get_drift("d")

    after = asyncio.run(via_asyncio())
    assert after.model_version == got.model_version and after.previous_version == run.model_version
    assert after.recent_points == 0 and after.HasField("psi_versions") and after.HasField("centroid_shift_max")
    with pytest.raises(grpc.RpcError) as e:
        c.get_drift("missing")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
