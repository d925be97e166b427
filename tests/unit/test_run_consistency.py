"""Runs against concurrent writes and a damaged vector log: every point ends on the served version."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from embcluster.pipeline import EmbclusterService
from embcluster.schema import CollectionSpec, ItemInput, RunRequest, RunState

DIM = 8


def _blobs(n_per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(4, DIM)) * 6
    x = np.concatenate([c + rng.normal(size=(n_per, DIM)) for c in centers]).astype(np.float32)
    return x, centers


def _versions(svc: EmbclusterService, name: str) -> dict[str, tuple[int, int]]:
    coll = svc.registry.get(name)
    out: dict[str, tuple[int, int]] = {}
    offset = None
    while True:
        points, offset = coll.store.scroll(limit=500, offset=offset)
        for p in points:
            out[p.payload["external_id"]] = (p.payload["model_version"], p.payload["cluster_id"])
        if offset is None:
            return out


def test_point_replaced_during_write_back_gets_the_label_of_its_new_vector(tmp_path: Path, make_service) -> None:
    svc = make_service(tmp_path / "data")
    x, centers = _blobs(100)
    svc.create_collection(CollectionSpec(name="c", input_kind="vector", metric="euclid", vector_dim=DIM))
    svc.ingest("c", [ItemInput(id=f"p{i}", vector=v) for i, v in enumerate(x)])
    svc.start_clustering("c", RunRequest(k=4, seed=0))
    svc.runs.wait("c")
    coll = svc.registry.get("c")
    moved = "p5"  # a blob-0 point that will be moved to blob 3 while run 2 is writing
    original = coll.store.set_fields
    calls = {"n": 0}

    def set_fields(updates):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:  # after the run read its snapshot, before it wrote p5's page
            svc.ingest("c", [ItemInput(id=moved, vector=centers[3].astype(np.float32))])
        return original(updates)

    coll.store.set_fields = set_fields  # type: ignore[method-assign]
    run = svc.start_clustering("c", RunRequest(k=4, seed=1))
    svc.runs.wait("c")
    coll.store.set_fields = original  # type: ignore[method-assign]
    assert svc.get_run("c", run.run_id).state is RunState.SUCCEEDED
    served = svc.get_collection("c").served_model_version
    expected = svc.classify("c", [ItemInput(vector=centers[3].astype(np.float32))])[0].cluster_id
    labels = _versions(svc, "c")
    assert labels[moved] == (served, expected)
    assert {v for v, _ in labels.values()} == {served}
    svc.close()


def test_missing_vector_log_is_rebuilt_from_the_store(tmp_path: Path, make_service) -> None:
    svc = make_service(tmp_path / "data")
    x, _ = _blobs(60)
    svc.create_collection(CollectionSpec(name="c", input_kind="vector", vector_dim=DIM))
    svc.ingest("c", [ItemInput(id=f"p{i}", vector=v) for i, v in enumerate(x)])
    svc.close()
    for name in ("vectors.ids", "vectors.f32", "vectors.json"):
        (tmp_path / "data" / "collections" / "c" / name).unlink()
    svc = make_service(tmp_path / "data")
    run = svc.start_clustering("c", RunRequest(k=4))
    svc.runs.wait("c")
    info = svc.get_run("c", run.run_id)
    assert info.state is RunState.SUCCEEDED and info.points_labelled == 240
    assert len(svc.registry.get("c").vlog.live()) == 240
    svc.close()


def test_versions_are_never_reused_after_a_failed_run(tmp_path: Path, make_service) -> None:
    svc = make_service(tmp_path / "data")
    x, _ = _blobs(60)
    svc.create_collection(CollectionSpec(name="c", input_kind="vector", vector_dim=DIM))
    svc.ingest("c", [ItemInput(id=f"p{i}", vector=v) for i, v in enumerate(x)])
    svc.start_clustering("c", RunRequest(k=4))
    svc.runs.wait("c")
    coll = svc.registry.get("c")
    original = coll.store.set_fields
    calls = {"n": 0}

    def failing(updates):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return original(updates)

    coll.store.set_fields = failing  # type: ignore[method-assign]
    bad = svc.start_clustering("c", RunRequest(k=3))
    svc.runs.wait("c")
    coll.store.set_fields = original  # type: ignore[method-assign]
    failed = svc.get_run("c", bad.run_id)
    assert failed.state is RunState.FAILED and "disk full" in failed.error
    assert svc.get_collection("c").served_model_version == 1
    assert {v for v, _ in _versions(svc, "c").values()} == {1}
    good = svc.start_clustering("c", RunRequest(k=3))
    svc.runs.wait("c")
    assert svc.get_run("c", good.run_id).model_version == 3
    svc.close()


def test_fields_of_a_never_served_run_are_cleared_at_the_next_start(tmp_path: Path, make_service) -> None:
    """A process that died during the first run: no model is served, so no point may keep fields."""
    svc = make_service(tmp_path / "data")
    x, _ = _blobs(30)
    svc.create_collection(CollectionSpec(name="c", input_kind="vector", vector_dim=DIM))
    svc.ingest("c", [ItemInput(id=f"p{i}", vector=v) for i, v in enumerate(x)])
    coll = svc.registry.get("c")
    points, _ = coll.store.scroll(limit=50)
    fake = {"cluster_id": 0, "cluster_distance": 0.1, "anomaly_score": 9.0, "is_anomaly": True, "model_version": 1}
    coll.store.set_fields([(p.id, fake) for p in points[:10]])  # what a killed first run leaves behind
    svc.close()
    svc = make_service(tmp_path / "data")
    svc.wait_idle()
    assert svc.get_collection("c").served_model_version == 0
    assert svc.list_anomalies("c")[0] == []
    assert all(svc.get_point("c", id=f"p{i}").assignment is None for i in range(len(x)))
    svc.close()


def test_delete_while_ingesting_answers_not_found(tmp_path: Path, make_service) -> None:
    import threading

    from embcluster.errors import NotFound

    svc = make_service(tmp_path / "data")
    x, _ = _blobs(50)
    svc.create_collection(CollectionSpec(name="c", input_kind="vector", vector_dim=DIM))
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            try:
                svc.ingest("c", [ItemInput(id=f"w{i}-{j}", vector=v) for j, v in enumerate(x[:20])])
            except BaseException as exc:  # noqa: BLE001 - collected and checked below
                errors.append(exc)
                return
            i += 1

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while svc.get_collection("c").point_count == 0 and not errors:  # the writers are writing
        assert time.monotonic() < deadline, "no writer got a batch in"
        time.sleep(0.01)
    assert svc.delete_collection("c")
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert errors and all(isinstance(e, NotFound) for e in errors), errors
    svc.close()
