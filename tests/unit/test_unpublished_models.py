"""A run's model version exists for callers only once it is served: failed, cancelled and
interrupted runs leave none behind (ListModels, GetModel, RollbackModel, exports), and every point
reads the served version's fields afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import embcluster.core.clustering as clustering
from embcluster.errors import NotFound
from embcluster.models import PENDING_MARKER
from embcluster.pipeline import EmbclusterService
from embcluster.schema import CollectionSpec, ItemInput, RunRequest, RunState
from embcluster.snapshot import export_collection

DIM = 8
NAME = "m"
N = 400  # 7 pages of 64 points: a write-back of several pages


def _points() -> np.ndarray:
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(4, DIM)) * 6
    return (centers[np.arange(N) % 4] + rng.normal(size=(N, DIM))).astype(np.float32)


def _stored(svc: EmbclusterService) -> dict[str, dict[str, Any]]:
    coll = svc.registry.get(NAME)
    out: dict[str, dict[str, Any]] = {}
    offset = None
    while True:
        points, offset = coll.store.scroll(limit=500, offset=offset)
        out.update({p.payload["external_id"]: p.payload for p in points})
        if offset is None:
            return out


def _served_everywhere(svc: EmbclusterService, before: dict[str, dict[str, Any]]) -> None:
    """Every point is stored with, and read as, the served version's fields, as before the run."""
    served = svc.get_collection(NAME).served_model_version
    stored = _stored(svc)
    assert {p["model_version"] for p in stored.values()} == {served}
    for ext, payload in before.items():
        view = svc.get_point(NAME, id=ext)
        assert not view.relabelling and view.assignment is not None
        assert (view.assignment.model_version, view.assignment.cluster_id) == (served, payload["cluster_id"])
        assert stored[ext]["cluster_id"] == payload["cluster_id"]


def _no_trace_of(svc: EmbclusterService, version: int) -> None:
    assert version not in [m.version for m in svc.list_models(NAME)]
    with pytest.raises(NotFound, match=f"model version {version}"):
        svc.get_model(NAME, version)
    with pytest.raises(NotFound, match=f"model version {version} not found"):
        svc.rollback(NAME, version)
    assert not (svc.registry.get(NAME).directory / "models" / f"v{version}").exists()


def _snapshot_models(path: str) -> list[int]:
    with tarfile.open(path) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert sorted({m.split("/")[1] for m in tar.getnames() if m.startswith("models/")}) == [
            f"v{v}" for v in manifest["model_versions"]]
    return [int(v) for v in manifest["model_versions"]]


def _cancel_active(svc: EmbclusterService) -> None:
    active = svc.runs.active(NAME)
    assert active is not None
    svc.cancel_run(NAME, active.run_id)


def test_failed_and_cancelled_runs_leave_no_model_version(tmp_path: Path, make_service,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    svc = make_service(tmp_path / "data", schedule_tick_s=3600.0)
    svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", metric="euclid", vector_dim=DIM))
    svc.ingest(NAME, [ItemInput(id=f"p{i}", vector=v) for i, v in enumerate(_points())])
    first = svc.start_clustering(NAME, RunRequest(k=4, seed=0))
    svc.runs.wait(NAME, timeout=120)
    assert svc.get_run(NAME, first.run_id).state is RunState.SUCCEEDED
    before = _stored(svc)
    coll = svc.registry.get(NAME)
    announced: list[int] = []  # the versions whose cluster events were announced (watchers, metrics)
    svc.clustering.on_published.append(lambda name, version, events: announced.append(version))

    def cancel_then(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            _cancel_active(svc)
            return original(*args, **kwargs)
        return wrapped

    def on_call(n: int, action: Callable[[], None], original: Callable[..., Any]) -> Callable[..., Any]:
        calls = [0]

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == n:
                action()
            return original(*args, **kwargs)
        return wrapped

    def fail() -> None:
        raise OSError("disk gone (simulated)")

    store_set_fields, save_metadata = coll.store.set_fields, coll.models.save_metadata
    def at_write_back_page(action: Callable[[], None]) -> Callable[[pytest.MonkeyPatch], None]:
        return lambda mp: mp.setattr(coll.store, "set_fields", on_call(3, action, store_set_fields))

    phases: list[tuple[str, Callable[[pytest.MonkeyPatch], None], RunState]] = [
        ("fitting", lambda mp: mp.setattr(clustering, "fit_kmeans", cancel_then(clustering.fit_kmeans)),
         RunState.CANCELLED),
        ("calibrating", lambda mp: mp.setattr(clustering, "calibrate", cancel_then(clustering.calibrate)),
         RunState.CANCELLED),
        ("write-back", at_write_back_page(lambda: _cancel_active(svc)), RunState.CANCELLED),
        ("summarizing", lambda mp: mp.setattr(clustering, "summarize_run_safely",
                                              cancel_then(clustering.summarize_run_safely)), RunState.CANCELLED),
        ("switching", lambda mp: mp.setattr(coll.models, "save_metadata", cancel_then(save_metadata)),
         RunState.CANCELLED),
        ("write-back failure", at_write_back_page(fail), RunState.FAILED),
    ]
    for phase, inject, expected in phases:
        with monkeypatch.context() as mp:
            inject(mp)
            run = svc.start_clustering(NAME, RunRequest(k=3, seed=1))
            svc.runs.wait(NAME, timeout=120)
        ended = svc.get_run(NAME, run.run_id)
        assert ended.state is expected, (phase, ended.state, ended.error)
        assert ended.model_version > 1, phase  # it took a number (never reused) ...
        _no_trace_of(svc, ended.model_version)  # ... and left no model of it
        assert [m.version for m in svc.list_models(NAME)] == [1], phase
        assert svc.get_collection(NAME).served_model_version == 1
        _served_everywhere(svc, before)
    summary = export_collection(svc, NAME, str(tmp_path / "after-cancels.tar"))
    assert summary.models == 1 and _snapshot_models(summary.path) == [1]
    good = svc.start_clustering(NAME, RunRequest(k=3, seed=1))
    svc.runs.wait(NAME, timeout=120)
    done = svc.get_run(NAME, good.run_id)
    assert done.state is RunState.SUCCEEDED and done.model_version == 8  # 2..7 went to the runs above
    assert [m.version for m in svc.list_models(NAME)] == [1, 8]
    assert announced == [8]  # the cancelled and failed runs announced no cluster events
    assert svc.get_model(NAME, 8).events and all(e.model_version == 8 for e in svc.get_model(NAME, 8).events)
    assert svc.get_model(NAME, 8).served
    assert not list((coll.directory / "models").glob(f"v*/{PENDING_MARKER}"))  # published: no marker left


def test_a_version_a_crash_left_unpublished_is_deleted_at_the_next_start(tmp_path: Path, make_service) -> None:
    root = tmp_path / "data"
    code = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        from embcluster.config import Settings
        from embcluster.pipeline import EmbclusterService
        from embcluster.schema import CollectionSpec, ItemInput, RunRequest
        svc = EmbclusterService(Settings(data_dir={str(root)!r}, page_size=64, schedule_tick_s=3600.0))
        svc.open()
        svc.create_collection(CollectionSpec(name={NAME!r}, input_kind="vector", metric="euclid", vector_dim={DIM}))
        rng = np.random.default_rng(3)
        x = (rng.normal(size=(4, {DIM})) * 6)[np.arange({N}) % 4] + rng.normal(size=({N}, {DIM}))
        svc.ingest({NAME!r}, [ItemInput(id=f"p{{i}}", vector=v.tolist()) for i, v in enumerate(x)])
        svc.start_clustering({NAME!r}, RunRequest(k=4, seed=0))
        svc.runs.wait({NAME!r}, timeout=120)
        store = svc.registry.get({NAME!r}).store
        original, calls = store.set_fields, [0]
        def set_fields(updates):
            calls[0] += 1
            if calls[0] == 3:  # two pages of v2 written: the process dies mid write-back
                print("dying", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            return original(updates)
        store.set_fields = set_fields
        svc.start_clustering({NAME!r}, RunRequest(k=3, seed=1))
        svc.runs.wait({NAME!r}, timeout=120)
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip() == "dying" and proc.returncode == -9, proc.stderr[-2000:]
    assert (root / "collections" / NAME / "models" / "v2").exists()  # what the dead process left
    svc = make_service(root, schedule_tick_s=3600.0)
    svc.wait_idle()
    assert [m.version for m in svc.list_models(NAME)] == [1]
    _no_trace_of(svc, 2)
    stored = _stored(svc)
    assert {p["model_version"] for p in stored.values()} == {1}  # the start-up catch-up put them back
    assert all(svc.get_point(NAME, id=ext).assignment.model_version == 1 for ext in stored)
    svc.close()
    # A crash between a run's switch and the marker's removal: the served version stays, published.
    (root / "collections" / NAME / "models" / "v1" / PENDING_MARKER).write_text("")
    svc = make_service(root, schedule_tick_s=3600.0)
    assert [m.version for m in svc.list_models(NAME)] == [1]
    assert not (root / "collections" / NAME / "models" / "v1" / PENDING_MARKER).exists()
