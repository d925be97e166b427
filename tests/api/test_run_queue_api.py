"""Over gRPC: a run asked for while the service's own automatic run is in progress is QUEUED and
runs after it (never FAILED_PRECONDITION); a queued run can be cancelled; a cancelled or failed run
leaves no model version in ListModels, GetModel, RollbackModel or an export."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import grpc
import numpy as np
import pytest
from embcluster_client import RunFailed, make_event_schema, pb

from embcluster.config import Settings
from embcluster.embed.events import EventFeaturizer

from .conftest import Running

SCHEMA = make_event_schema([
    {"name": "amount", "type": "numeric", "log": True, "required": True},
    {"name": "merchant", "type": "categorical", "buckets": 8},
    {"name": "ts", "type": "timestamp"},
])
EVENTS = 2_000


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Running]:
    # The automatic featurizer fit starts once the collection holds 2,000 points: at the end of the
    # last Ingest call below, so no ingest waits behind the held fit.
    s = Running(Settings(data_dir=tmp_path / "data", port=0, schedule_tick_s=3600, featurizer_min_points=EVENTS))
    yield s
    s.stop()


def _events(n: int) -> list[dict[str, Any]]:
    return [{"id": f"tx{i}", "event": {
        "amount": 500.0 + i % 50 if i % 3 == 0 else 5.0 + i % 7,
        "merchant": "electronics" if i % 3 == 0 else ["cafe", "grocery", "bakery"][i % 3],
        "ts": datetime(2026, 10, 1 + i % 28, 2 if i % 3 == 0 else 13, i % 60, tzinfo=timezone.utc),
    }} for i in range(n)]


@pytest.fixture
def held_auto_fit(srv: Running, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """The automatic featurizer fit is held (``fitting`` is set once it is) until ``release`` is set."""
    fitting, release = threading.Event(), threading.Event()
    original = EventFeaturizer.fit

    def held(self: EventFeaturizer, records: Any, *, version: int, provisional: bool) -> EventFeaturizer:
        if not provisional:  # the refit, not the first batch's provisional fit
            fitting.set()
            release.wait(60)
        return original(self, records, version=version, provisional=provisional)

    monkeypatch.setattr(EventFeaturizer, "fit", held)
    c = srv.client
    c.create_collection("ev", input_kind="event", distance="euclid", event_schema=SCHEMA)
    items = _events(EVENTS)
    for i in range(0, EVENTS, 500):
        c.ingest("ev", items[i:i + 500])
    try:
        assert fitting.wait(30), "the service did not start its automatic featurizer fit"
        yield fitting, release
    finally:
        release.set()


def _fails(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def test_a_run_asked_for_during_the_automatic_featurizer_fit_is_queued_and_then_runs(
        srv: Running, held_auto_fit: tuple[threading.Event, threading.Event]) -> None:
    _, release = held_auto_fit
    c = srv.client
    auto = srv.service.runs.active("ev")
    assert auto is not None and auto.trigger == "changes" and auto.request.refit_featurizer
    run = c.start_clustering("ev", k=4, seed=0)  # at once, while the service's own fit runs
    assert (run.state, run.phase, run.waiting_for_run_id, run.waiting_for_trigger) == (
        pb.RUN_STATE_QUEUED, "queued", auto.run_id, "changes")
    assert c.get_clustering_run("ev", run.run_id).state == pb.RUN_STATE_QUEUED
    assert c.start_clustering("ev", k=4, seed=0).run_id == run.run_id  # the same request: the same run
    for other in (lambda: c.start_clustering("ev", k=5), lambda: c.fit_featurizer("ev")):
        err = _fails(other)
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and f"run {run.run_id} queued" in err.details()
    watch = c.watch_run("ev", run.run_id, timeout=120)
    first = next(watch)
    with ThreadPoolExecutor(1) as pool:
        waited = pool.submit(c.wait_for_run, "ev", run.run_id, poll_interval=0.05, timeout=120)
        release.set()
        done = waited.result(timeout=150)  # QUEUED was not final for the client
    states = [first.state] + [r.state for r in watch]
    assert states[0] == pb.RUN_STATE_QUEUED and states[-1] == pb.RUN_STATE_SUCCEEDED
    assert pb.RUN_STATE_RUNNING in states
    assert done.state == pb.RUN_STATE_SUCCEEDED and done.k == 4 and done.waiting_for_run_id == auto.run_id
    assert c.get_clustering_run("ev", auto.run_id).state == pb.RUN_STATE_SUCCEEDED
    info = c.get_collection("ev")
    # The queued run clustered the fitted featurizer's vectors.
    assert (info.featurizer_version, info.featurizer_provisional) == (2, False)
    assert info.served_model_version == done.model_version
    assert c.get_model("ev").params["featurizer_version"] == 2


def test_a_queued_run_can_be_cancelled(srv: Running, held_auto_fit: tuple[threading.Event, threading.Event]) -> None:
    _, release = held_auto_fit
    c = srv.client
    auto = srv.service.runs.active("ev")
    run = c.start_clustering("ev", k=4)
    cancelled = c.cancel_clustering_run("ev", run.run_id)
    assert cancelled.state == pb.RUN_STATE_CANCELLED and cancelled.finished_at
    with pytest.raises(RunFailed):
        c.wait_for_run("ev", run.run_id, timeout=10)
    release.set()
    srv.service.runs.wait("ev", timeout=120)
    assert c.get_clustering_run("ev", auto.run_id).state == pb.RUN_STATE_SUCCEEDED
    assert c.get_clustering_run("ev", run.run_id).state == pb.RUN_STATE_CANCELLED  # it never started
    assert srv.service.runs.active("ev") is None
    assert c.list_models("ev") == [] and c.get_collection("ev").served_model_version == 0


def test_cancelled_and_failed_runs_leave_no_model_version(srv: Running, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    c = srv.client
    c.create_collection("vec", input_kind="vector", distance="euclid", vector_dim=4)
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(3, 4)) * 5)[np.arange(3000) % 3] + rng.normal(size=(3000, 4))
    c.ingest_many("vec", [{"id": f"p{i}", "vector": v} for i, v in enumerate(x)])
    first = c.cluster("vec", k=3, seed=0)
    store = srv.service.registry.get("vec").store
    original = store.set_fields

    def fault(kind: str) -> Any:
        calls = [0]

        def set_fields(updates: Any) -> None:
            calls[0] += 1
            if calls[0] == 2:  # one page of the new version written
                if kind == "cancel":
                    srv.service.cancel_run("vec", srv.service.runs.active("vec").run_id)
                else:
                    raise OSError("disk gone (simulated)")
            original(updates)
        return set_fields

    for kind, final in (("cancel", pb.RUN_STATE_CANCELLED), ("fail", pb.RUN_STATE_FAILED)):
        with monkeypatch.context() as mp:
            mp.setattr(store, "set_fields", fault(kind))
            run = c.start_clustering("vec", k=4, seed=1)
            srv.service.runs.wait("vec", timeout=120)
        ended = c.get_clustering_run("vec", run.run_id)
        assert ended.state == final and ended.model_version > first.model_version
        assert [m.version for m in c.list_models("vec")] == [first.model_version]
        for call in (lambda: c.get_model("vec", ended.model_version),
                     lambda: c.rollback_model("vec", ended.model_version)):
            assert _fails(call).code() == grpc.StatusCode.NOT_FOUND
        for p in c.get_point("vec", id="p0"), c.get_point("vec", id="p2999"):
            assert p.assignment.model_version == first.model_version and not p.relabelling
    summary = c.export_collection("vec", "vec.tar")
    assert (summary.models, summary.served_model_version) == (1, first.model_version)
