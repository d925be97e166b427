"""Unit tests of the service core (embcluster.pipeline.EmbclusterService) on VECTOR collections.

Small synthetic data (8-d, 4 well-separated blobs, ~800 points), Qdrant Edge in tmp_path, no gRPC
and no text model.
"""

from __future__ import annotations

import dataclasses

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from embcluster.config import Settings
from embcluster.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from embcluster.models import ClusterModel
from embcluster.pipeline import RESERVED_FIELDS, EmbclusterService, point_id_for
from embcluster.runs import RunContext
from embcluster.schema import CollectionSettings, CollectionSpec, ItemInput, RunRequest, RunState
from embcluster.store.base import FieldEquals, PointFilter
from embcluster.store.edge_factory import EdgeStoreFactory

DIM = 8
K = 4
NAME = "vec"
CENTERS = np.random.default_rng(1234).normal(size=(K, DIM)) * 6.0


def blob_points(n: int, seed: int, scale: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % K
    x = CENTERS[labels] + rng.normal(scale=scale, size=(n, DIM))
    return x.astype(np.float32), labels


def items_for(x: np.ndarray, prefix: str = "p", start: int = 0) -> list[ItemInput]:
    return [ItemInput(id=f"{prefix}{start + i}", vector=row.tolist(), metadata={"i": start + i})
            for i, row in enumerate(x)]


def ingest_all(svc: EmbclusterService, items: list[ItemInput], batch: int = 250) -> list:
    out = []
    for s in range(0, len(items), batch):
        out.extend(svc.ingest(NAME, items[s:s + batch]))
    return out


def run_to_end(svc: EmbclusterService, name: str = NAME, k: int = K, **kw):
    info = svc.start_clustering(name, RunRequest(k=k, seed=0, **kw))
    assert info.model_version == 0 and info.collection == name
    svc.runs.wait(name, timeout=120)
    return svc.get_run(name, info.run_id)


def all_payloads(svc: EmbclusterService, name: str = NAME) -> dict[str, dict]:
    store = svc.registry.get(name).store
    out: dict[str, dict] = {}
    offset = None
    while True:
        page, offset = store.scroll(limit=500, offset=offset)
        for p in page:
            out[p.id] = p.payload
        if offset is None:
            return out


def store_of(svc: EmbclusterService, name: str = NAME):
    return svc.registry.get(name).store


@pytest.fixture
def svc(root: Path, make_service):
    service = make_service(root)
    yield service
    service.close()


@pytest.fixture
def coll(svc: EmbclusterService):
    svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM, metric="cosine",
                                         settings=CollectionSettings(contamination=0.02)))
    return svc


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    return blob_points(800, seed=0)


@pytest.fixture
def clustered(coll: EmbclusterService, data):
    x, _ = data
    ingest_all(coll, items_for(x))
    info = run_to_end(coll)
    assert info.state is RunState.SUCCEEDED, info.error
    return coll


def assert_all_labelled(svc: EmbclusterService, version: int, name: str = NAME) -> dict[str, dict]:
    payloads = all_payloads(svc, name)
    for pid, p in payloads.items():
        missing = [f for f in RESERVED_FIELDS if f not in p]
        assert not missing, f"{pid} lacks {missing}"
        assert p["model_version"] == version, (pid, p["model_version"], version)
    return payloads


def slow_set_fields(monkeypatch, store, *, block_on_call: int):
    """Make ``store.set_fields`` block on its ``block_on_call``-th call until released."""
    reached, release = threading.Event(), threading.Event()
    original = store.set_fields
    calls = {"n": 0}

    def wrapped(updates):
        calls["n"] += 1
        if calls["n"] == block_on_call:
            reached.set()
            release.wait(timeout=60)
        return original(updates)

    monkeypatch.setattr(store, "set_fields", wrapped)
    return reached, release


def block_at_model_save(monkeypatch, svc: EmbclusterService, *, on_call: int = 1):
    """Make the run block right after its ``on_call``-th model save, outside the collection lock.

    The first save happens after the fit, before the write-back; the second after the write-back.
    """
    models = svc.registry.get(NAME).models
    reached, release = threading.Event(), threading.Event()
    original = models.save
    calls = {"n": 0}

    def wrapped(model, **kw):
        out = original(model, **kw)
        calls["n"] += 1
        if calls["n"] == on_call:
            reached.set()
            release.wait(timeout=60)
        return out

    monkeypatch.setattr(models, "save", wrapped)
    return reached, release


# --------------------------------------------------------------------------- collections


def test_collection_crud(svc: EmbclusterService) -> None:
    info = svc.create_collection(CollectionSpec(name="a", input_kind="vector", vector_dim=DIM, metric="euclid"))
    assert (info.name, info.input_kind, info.metric, info.dim) == ("a", "vector", "euclid", DIM)
    assert info.point_count == 0 and info.served_model_version == 0 and info.cluster_count == 0
    assert info.settings == CollectionSettings.defaults()
    svc.create_collection(CollectionSpec(name="b", input_kind="vector", vector_dim=3,
                                         settings=CollectionSettings(default_k=5)))
    with pytest.raises(AlreadyExists):
        svc.create_collection(CollectionSpec(name="a", input_kind="vector", vector_dim=DIM))
    assert [c.name for c in svc.list_collections()] == ["a", "b"]
    assert svc.get_collection("b").settings.default_k == 5
    assert svc.get_collection("b").settings.contamination == CollectionSettings.defaults().contamination

    updated = svc.update_collection("a", CollectionSettings(contamination=0.1))
    assert updated.settings.contamination == 0.1
    assert updated.settings.default_k == CollectionSettings.defaults().default_k  # untouched
    with pytest.raises(InvalidArgument):
        svc.update_collection("a", CollectionSettings(contamination=0.7))
    assert svc.get_collection("a").settings.contamination == 0.1

    assert svc.delete_collection("a") is True
    with pytest.raises(NotFound):
        svc.get_collection("a")
    with pytest.raises(NotFound):
        svc.delete_collection("a")
    assert [c.name for c in svc.list_collections()] == ["b"]
    assert not (Path(svc.settings.data_dir) / "collections" / "a").exists()
    # the name can be used again
    again = svc.create_collection(CollectionSpec(name="a", input_kind="vector", vector_dim=2))
    assert again.dim == 2 and again.point_count == 0


def test_invalid_names_and_specs(svc: EmbclusterService) -> None:
    with pytest.raises(InvalidArgument):
        svc.create_collection(CollectionSpec(name="../x", input_kind="vector", vector_dim=DIM))
    with pytest.raises(InvalidArgument):
        svc.create_collection(CollectionSpec(name="x", input_kind="vector", vector_dim=0))
    with pytest.raises(InvalidArgument):
        svc.get_collection("../../etc")
    assert svc.list_collections() == []


def test_settings_persist_across_restart(coll: EmbclusterService, root: Path, make_service) -> None:
    coll.update_collection(NAME, CollectionSettings(min_cluster_size=7))
    coll.close()
    svc2 = make_service(root)
    try:
        assert svc2.get_collection(NAME).settings.min_cluster_size == 7
        assert svc2.get_collection(NAME).settings.contamination == 0.02
    finally:
        svc2.close()


# --------------------------------------------------------------------------- ingest before a model


def test_ingest_before_model_has_no_assignment(coll: EmbclusterService, data) -> None:
    x, _ = data
    res = coll.ingest(NAME, items_for(x[:10]))
    assert len(res) == 10
    assert all(r.assignment is None for r in res)
    assert res[3].external_id == "p3" and res[3].point_id == point_id_for(NAME, "p3")
    p = coll.get_point(NAME, id="p3", with_vector=True)
    assert p.assignment is None and p.metadata == {"i": 3}
    v = np.asarray(x[3], dtype=np.float64)
    np.testing.assert_allclose(p.vector, v / np.linalg.norm(v), rtol=1e-5)  # cosine: stored unit length
    assert not any(f in q for q in all_payloads(coll).values() for f in RESERVED_FIELDS)
    with pytest.raises(FailedPrecondition):
        coll.classify(NAME, items_for(x[:1]))
    with pytest.raises(FailedPrecondition):
        coll.list_clusters(NAME)


def test_ingest_without_id_gets_random_uuid(coll: EmbclusterService, data) -> None:
    x, _ = data
    res = coll.ingest(NAME, [ItemInput(vector=x[0].tolist()), ItemInput(vector=x[0].tolist())])
    assert res[0].point_id != res[1].point_id
    uuid.UUID(res[0].point_id)
    assert coll.get_collection(NAME).point_count == 2


def test_ingest_is_all_or_nothing_on_invalid_item(coll: EmbclusterService, data) -> None:
    x, _ = data
    items = items_for(x[:5])
    items[3] = ItemInput(id="bad", vector=[float("nan")] * DIM)
    with pytest.raises(InvalidArgument, match="item 3"):
        coll.ingest(NAME, items)
    assert coll.get_collection(NAME).point_count == 0


def test_reingest_same_id_replaces(coll: EmbclusterService, data) -> None:
    x, _ = data
    ingest_all(coll, items_for(x[:20]))
    new = ItemInput(id="p5", vector=x[6].tolist(), metadata={"v": 2})
    coll.ingest(NAME, [new])
    assert coll.get_collection(NAME).point_count == 20
    p = coll.get_point(NAME, id="p5", with_vector=True)
    assert p.metadata == {"v": 2}
    v = np.asarray(x[6], dtype=np.float64)
    np.testing.assert_allclose(p.vector, v / np.linalg.norm(v), rtol=1e-5)


def test_delete_points(coll: EmbclusterService, data) -> None:
    x, _ = data
    res = ingest_all(coll, items_for(x[:20]))
    assert coll.delete_points(NAME, ids=["p1", "p2", "nope"]) == 2
    assert coll.delete_points(NAME, point_ids=[res[7].point_id, str(uuid.uuid4())]) == 1
    assert coll.delete_points(NAME, ids=["p1"]) == 0
    assert coll.get_collection(NAME).point_count == 17
    for pid in ("p1", "p2", "p7"):
        with pytest.raises(NotFound):
            coll.get_point(NAME, id=pid)
    coll.get_point(NAME, id="p8")
    with pytest.raises(InvalidArgument):
        coll.delete_points(NAME)
    with pytest.raises(InvalidArgument):
        coll.delete_points(NAME, point_ids=["not-a-uuid"])


def test_get_point_arguments(coll: EmbclusterService, data) -> None:
    x, _ = data
    res = coll.ingest(NAME, items_for(x[:2]))
    assert coll.get_point(NAME, point_id=res[1].point_id).external_id == "p1"
    with pytest.raises(InvalidArgument):
        coll.get_point(NAME)
    with pytest.raises(InvalidArgument):
        coll.get_point(NAME, id="p1", point_id=res[1].point_id)


# --------------------------------------------------------------------------- a full run


def test_run_labels_every_point(clustered: EmbclusterService, data) -> None:
    svc = clustered
    x, y = data
    info = svc.get_collection(NAME)
    assert info.served_model_version == 1
    assert info.point_count == 800
    assert info.cluster_count == K
    payloads = assert_all_labelled(svc, 1)
    assert len(payloads) == 800

    # the clusters are the blobs
    by_blob: dict[int, set[int]] = {}
    for i in range(800):
        by_blob.setdefault(int(y[i]), set()).add(payloads[point_id_for(NAME, f"p{i}")]["cluster_id"])
    assert all(len(ids) == 1 for ids in by_blob.values())
    assert len({next(iter(s)) for s in by_blob.values()}) == K

    version, clusters = svc.list_clusters(NAME)
    assert version == 1 and len(clusters) == K
    assert sum(c.size for c in clusters) == 800
    assert all(c.populated and c.size == 200 for c in clusters)
    assert {c.cluster_id for c in clusters} == {p["cluster_id"] for p in payloads.values()}
    flagged = sum(1 for p in payloads.values() if p["is_anomaly"])
    assert info.anomaly_count == flagged
    assert sum(c.anomaly_count for c in clusters) == flagged
    assert 0 < flagged <= 0.05 * 800  # contamination 0.02 on the fit sample
    model = svc.registry.get(NAME).model
    assert model.scorer == "ensemble" and model.large.all()  # four equal blobs: none is rare
    summary = svc.get_model(NAME, 0).metrics["anomaly"]
    assert summary["grouping"] == {"k": K, "small_clusters": 0, "small_share": 0.0}
    # The ensemble's k = 2 fit must split four equal blobs unevenly, so some fit has a small cluster.
    assert [c["k"] for c in summary["components"]] == [2, 4, 8, 16, 32] and not summary["degenerate"]
    for p in payloads.values():
        assert p["cluster_distance"] >= 0
    # cblof when every cluster is large (none rare) = the distance to its own centroid
    as_cblof = dataclasses.replace(model, scorer="cblof").assign(x)
    np.testing.assert_allclose(as_cblof.anomaly_score, as_cblof.cluster_distance, rtol=1e-6)

    # radius = RMS of members' cluster_distance
    for c in clusters:
        d = np.array([p["cluster_distance"] for p in payloads.values() if p["cluster_id"] == c.cluster_id])
        assert c.radius == pytest.approx(float(np.sqrt((d ** 2).mean())), rel=1e-4)


def test_run_record(clustered: EmbclusterService) -> None:
    svc = clustered
    (run_file,) = list((Path(svc.settings.data_dir) / "collections" / NAME / "runs").glob("*.json"))
    info = svc.get_run(NAME, run_file.stem)
    assert info.state is RunState.SUCCEEDED and info.progress == 1.0
    assert info.model_version == 1 and info.k == K and info.points_labelled == 800
    with pytest.raises(NotFound):
        svc.get_run(NAME, "0123456789abcdef")
    # cancelling a finished run changes nothing
    assert svc.cancel_run(NAME, info.run_id).state is RunState.SUCCEEDED


def test_run_listing_views(clustered: EmbclusterService) -> None:
    svc = clustered
    _, clusters = svc.list_clusters(NAME)
    cid = clusters[0].cluster_id
    members, token = [], ""
    while True:
        page, token = svc.list_cluster_members(NAME, cid, page_size=30, page_token=token)
        members.extend(page)
        if not token:
            break
    assert len(members) == clusters[0].size
    assert len({m.point_id for m in members}) == len(members)
    assert all(m.assignment is not None and m.assignment.cluster_id == cid for m in members)
    with pytest.raises(NotFound):
        svc.list_cluster_members(NAME, 10_000)
    anomalies, _ = svc.list_anomalies(NAME, page_size=1000)
    assert len(anomalies) == svc.get_collection(NAME).anomaly_count
    assert all(a.assignment.is_anomaly for a in anomalies)


def test_ingest_after_model_is_labelled(clustered: EmbclusterService) -> None:
    svc = clustered
    x2, y2 = blob_points(40, seed=7)
    res = svc.ingest(NAME, items_for(x2, prefix="n"))
    assert all(r.assignment is not None and r.assignment.model_version == 1 for r in res)
    # same blob -> same cluster as the fitted points of that blob
    fitted = svc.get_point(NAME, id="p0").assignment.cluster_id  # p0 is blob 0
    assert all(r.assignment.cluster_id == fitted for r, b in zip(res, y2) if b == 0)
    stored = svc.get_point(NAME, id="n5").assignment
    assert stored == res[5].assignment


def test_classify_stores_nothing(clustered: EmbclusterService) -> None:
    svc = clustered
    x2, y2 = blob_points(12, seed=8)
    before = svc.get_collection(NAME).point_count
    out = svc.classify(NAME, [ItemInput(id=f"p{i}", vector=v.tolist()) for i, v in enumerate(x2)])
    assert len(out) == 12
    assert all(a.model_version == 1 for a in out)
    assert svc.get_collection(NAME).point_count == before
    # classify with an existing id does not touch that point
    assert svc.get_point(NAME, id="p0").metadata == {"i": 0}
    # classify agrees with ingest
    res = svc.ingest(NAME, items_for(x2, prefix="c"))
    assert [r.assignment for r in res] == out
    far = np.full(DIM, 1.0)
    far[0] = -50.0
    (a,) = svc.classify(NAME, [ItemInput(vector=far.tolist())])
    assert a.is_anomaly


def test_search_within_cluster(clustered: EmbclusterService, data) -> None:
    svc = clustered
    x, _ = data
    hits = svc.search(NAME, vector=x[0].tolist(), limit=5)
    assert hits[0].point.external_id == "p0"
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    _, clusters = svc.list_clusters(NAME)
    other = next(c.cluster_id for c in clusters if c.cluster_id != hits[0].point.assignment.cluster_id)
    scoped = svc.search(NAME, vector=x[0].tolist(), limit=50, cluster_id=other)
    assert len(scoped) == 50
    assert all(h.point.assignment.cluster_id == other for h in scoped)
    assert all(h.point.external_id != "p0" for h in scoped)
    with pytest.raises(InvalidArgument):
        svc.search(NAME, vector=x[0].tolist(), limit=1001)
    with pytest.raises(InvalidArgument):
        svc.search(NAME, vector=[1.0, 2.0])


def test_rerun_keeps_cluster_ids(clustered: EmbclusterService) -> None:
    svc = clustered
    before = {pid: p["cluster_id"] for pid, p in all_payloads(svc).items()}
    x2, _ = blob_points(80, seed=11)
    ingest_all(svc, items_for(x2, prefix="q"))
    info = run_to_end(svc)
    assert info.state is RunState.SUCCEEDED, info.error
    assert info.model_version == 2
    after = assert_all_labelled(svc, 2)
    assert len(after) == 880
    kept = sum(1 for pid, cid in before.items() if after[pid]["cluster_id"] == cid)
    assert kept >= 0.95 * len(before)
    _, clusters = svc.list_clusters(NAME)
    assert sorted(c.cluster_id for c in clusters) == sorted(set(before.values()))
    assert sum(c.size for c in clusters) == 880


def test_rerun_with_k_range(clustered: EmbclusterService) -> None:
    svc = clustered
    info = svc.start_clustering(NAME, RunRequest(k_range=(2, 6), seed=0))
    svc.runs.wait(NAME, timeout=120)
    info = svc.get_run(NAME, info.run_id)
    assert info.state is RunState.SUCCEEDED, info.error
    assert info.k == K
    assert [s["k"] for s in info.k_scores] == [2, 3, 4, 5, 6]
    assert_all_labelled(svc, 2)


def test_start_validates_request(coll: EmbclusterService, data) -> None:
    with pytest.raises(FailedPrecondition, match="empty"):
        coll.start_clustering(NAME, RunRequest(k=2))
    x, _ = data
    coll.ingest(NAME, items_for(x[:5]))
    with pytest.raises(InvalidArgument, match="k=6 exceeds the collection's 5 points"):
        coll.start_clustering(NAME, RunRequest(k=6))
    with pytest.raises(NotFound):
        coll.start_clustering("missing", RunRequest(k=2))


# --------------------------------------------------------------------------- restart


def test_restart_keeps_points_payloads_and_model(clustered: EmbclusterService, root: Path, make_service) -> None:
    svc = clustered
    before_payloads = all_payloads(svc)
    _, before_clusters = svc.list_clusters(NAME)
    before_info = svc.get_collection(NAME)
    svc.close()

    svc2 = make_service(root)
    try:
        svc2.wait_idle()
        info = svc2.get_collection(NAME)
        assert info.point_count == 800 and info.served_model_version == 1
        assert info.cluster_count == before_info.cluster_count
        assert info.anomaly_count == before_info.anomaly_count
        assert all_payloads(svc2) == before_payloads
        assert svc2.list_clusters(NAME) == (1, before_clusters)
        x2, _ = blob_points(4, seed=3)
        res = svc2.ingest(NAME, items_for(x2, prefix="r"))
        assert all(r.assignment.model_version == 1 for r in res)
        p0 = svc2.get_point(NAME, id="p0", with_vector=True)
        (a,) = svc2.classify(NAME, [ItemInput(vector=p0.vector)])
        assert a.cluster_id == p0.assignment.cluster_id
        # the next run continues the version and id sequences
        info = run_to_end(svc2)
        assert info.state is RunState.SUCCEEDED and info.model_version == 2
    finally:
        svc2.close()


def test_ingest_survives_sigkill(root: Path, make_service) -> None:
    """Acknowledged ingests survive a killed process; the next open repairs and a run labels them all."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        f"""
        import os, signal
        import numpy as np
        from embcluster.config import Settings
        from embcluster.pipeline import EmbclusterService
        from embcluster.schema import CollectionSpec, ItemInput
        svc = EmbclusterService(Settings(data_dir={str(root)!r}, page_size=64))
        svc.open()
        svc.create_collection(CollectionSpec(name={NAME!r}, input_kind="vector", vector_dim={DIM}))
        x = np.random.default_rng(0).normal(size=(300, {DIM}))
        for s in range(0, 300, 100):
            svc.ingest({NAME!r}, [ItemInput(id=f"k{{s + i}}", vector=v.tolist()) for i, v in enumerate(x[s:s + 100])])
        print("ok", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr[-2000:]
    assert proc.returncode == -9
    svc = make_service(root)
    try:
        assert svc.get_collection(NAME).point_count == 300
        assert svc.get_point(NAME, id="k299").external_id == "k299"
        assert run_to_end(svc, k=3).state is RunState.SUCCEEDED
        assert len(assert_all_labelled(svc, 1)) == 300
    finally:
        svc.close()


def test_second_service_on_same_dir_is_refused(coll: EmbclusterService, root: Path) -> None:
    other = EmbclusterService(Settings(data_dir=root))
    with pytest.raises(FailedPrecondition):
        other.open()


# --------------------------------------------------------------------------- failure, cancel, exclusivity


def test_failed_write_back_keeps_previous_version(clustered: EmbclusterService, monkeypatch) -> None:
    svc = clustered
    before = {pid: p["cluster_id"] for pid, p in all_payloads(svc).items()}
    store = store_of(svc)
    original = store.set_fields
    calls = {"n": 0}

    def failing(updates):
        calls["n"] += 1
        if calls["n"] == 4:  # after three pages of v2 were written
            raise RuntimeError("disk on fire")
        return original(updates)

    monkeypatch.setattr(store, "set_fields", failing)
    info = run_to_end(svc)
    assert info.state is RunState.FAILED
    assert "disk on fire" in info.error
    assert calls["n"] > 4  # the revert wrote the three pages back
    assert svc.get_collection(NAME).served_model_version == 1
    after = assert_all_labelled(svc, 1)
    assert {pid: p["cluster_id"] for pid, p in after.items()} == before
    assert svc.list_clusters(NAME)[0] == 1
    # new points are still labelled with v1, and the next run gets a fresh version number
    monkeypatch.setattr(store, "set_fields", original)
    res = svc.ingest(NAME, items_for(blob_points(2, seed=5)[0], prefix="f"))
    assert res[0].assignment.model_version == 1
    ok = run_to_end(svc)
    assert ok.state is RunState.SUCCEEDED and ok.model_version == 3
    assert_all_labelled(svc, 3)


def test_failed_assign_keeps_previous_version(clustered: EmbclusterService, monkeypatch) -> None:
    svc = clustered
    original = ClusterModel.assign
    calls = {"n": 0}

    def failing(self, x):
        if self.version == 2:
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("assign failed")
        return original(self, x)

    monkeypatch.setattr(ClusterModel, "assign", failing)
    info = run_to_end(svc)
    assert info.state is RunState.FAILED and "assign failed" in info.error
    assert svc.get_collection(NAME).served_model_version == 1
    assert_all_labelled(svc, 1)
    assert store_of(svc).count(PointFilter(must=(FieldEquals("model_version", 2),))) == 0


def test_failed_first_run_leaves_points_unlabelled(coll: EmbclusterService, data, monkeypatch) -> None:
    svc = coll
    x, _ = data
    ingest_all(svc, items_for(x))
    store = store_of(svc)
    original = store.set_fields
    calls = {"n": 0}

    def failing(updates):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return original(updates)

    monkeypatch.setattr(store, "set_fields", failing)
    info = run_to_end(svc)
    assert info.state is RunState.FAILED
    assert svc.get_collection(NAME).served_model_version == 0
    payloads = all_payloads(svc)
    assert len(payloads) == 800
    assert not [pid for pid, p in payloads.items() if any(f in p for f in RESERVED_FIELDS)]
    assert svc.get_collection(NAME).anomaly_count == 0
    with pytest.raises(FailedPrecondition):
        svc.classify(NAME, items_for(x[:1]))


def test_cancelled_run_keeps_previous_version(clustered: EmbclusterService, monkeypatch) -> None:
    svc = clustered
    before = {pid: p["cluster_id"] for pid, p in all_payloads(svc).items()}
    reached, release = slow_set_fields(monkeypatch, store_of(svc), block_on_call=3)
    info = svc.start_clustering(NAME, RunRequest(k=K, seed=5))
    assert reached.wait(timeout=60), "the run never reached its write-back"
    running = svc.get_run(NAME, info.run_id)
    assert running.state is RunState.RUNNING and running.phase == "assigning"
    assert svc.runs.active(NAME).run_id == info.run_id
    svc.cancel_run(NAME, info.run_id)
    release.set()
    svc.runs.wait(NAME, timeout=120)
    done = svc.get_run(NAME, info.run_id)
    assert done.state is RunState.CANCELLED
    assert done.points_labelled < 800
    assert svc.runs.active(NAME) is None
    assert svc.get_collection(NAME).served_model_version == 1
    after = assert_all_labelled(svc, 1)
    assert {pid: p["cluster_id"] for pid, p in after.items()} == before


def test_second_start_while_active_is_refused(clustered: EmbclusterService, monkeypatch) -> None:
    svc = clustered
    reached, release = slow_set_fields(monkeypatch, store_of(svc), block_on_call=1)
    first = svc.start_clustering(NAME, RunRequest(k=K))
    try:
        assert reached.wait(timeout=60)
        with pytest.raises(FailedPrecondition, match=first.run_id):
            svc.start_clustering(NAME, RunRequest(k=K))
    finally:
        release.set()
    svc.runs.wait(NAME, timeout=120)
    assert svc.get_run(NAME, first.run_id).state is RunState.SUCCEEDED
    # once finished, a new run may start
    assert run_to_end(svc).state is RunState.SUCCEEDED


def test_ingest_during_run_is_caught_up(clustered: EmbclusterService, monkeypatch) -> None:
    svc = clustered
    reached, release = block_at_model_save(monkeypatch, svc)  # fitted, not yet written back
    info = svc.start_clustering(NAME, RunRequest(k=K, seed=3))
    try:
        assert reached.wait(timeout=60)
        x2, _ = blob_points(30, seed=21)
        res = svc.ingest(NAME, items_for(x2, prefix="d"))
    finally:
        release.set()
    svc.runs.wait(NAME, timeout=120)
    assert svc.get_run(NAME, info.run_id).state is RunState.SUCCEEDED
    assert all(r.assignment.model_version == 1 for r in res)  # labelled online with the served model
    assert_all_labelled(svc, 2)  # ... and caught up after the switch
    assert svc.get_collection(NAME).point_count == 830


def test_ingest_racing_the_write_back_ends_consistent(clustered: EmbclusterService, monkeypatch) -> None:
    svc = clustered
    reached, release = slow_set_fields(monkeypatch, store_of(svc), block_on_call=2)
    info = svc.start_clustering(NAME, RunRequest(k=K, seed=3))
    x2, _ = blob_points(30, seed=22)
    holder: dict = {}
    t = threading.Thread(target=lambda: holder.setdefault("r", svc.ingest(NAME, items_for(x2, prefix="d"))))
    try:
        assert reached.wait(timeout=60)
        t.start()  # waits for the collection lock, held while a page is written
        t.join(timeout=0.05)  # still blocked on it: the write-back page holds the lock until released
        assert t.is_alive()
    finally:
        release.set()
    t.join(timeout=60)
    svc.runs.wait(NAME, timeout=120)
    assert svc.get_run(NAME, info.run_id).state is RunState.SUCCEEDED
    assert {r.assignment.model_version for r in holder["r"]} <= {1, 2}
    assert_all_labelled(svc, 2)
    assert svc.get_collection(NAME).point_count == 830


def test_delete_collection_cancels_active_run(clustered: EmbclusterService, monkeypatch) -> None:
    svc = clustered
    reached, release = slow_set_fields(monkeypatch, store_of(svc), block_on_call=2)
    info = svc.start_clustering(NAME, RunRequest(k=K))
    assert reached.wait(timeout=60)
    threading.Timer(0.2, release.set).start()
    assert svc.delete_collection(NAME) is True
    assert svc.runs.active(NAME) is None
    with pytest.raises(NotFound):
        svc.get_collection(NAME)
    assert info.run_id


# --------------------------------------------------------------------------- catch-up on open


def test_stale_versions_are_caught_up_on_open(clustered: EmbclusterService, root: Path, make_service) -> None:
    svc = clustered
    truth = {pid: p["cluster_id"] for pid, p in all_payloads(svc).items()}
    svc.close()

    # Simulate a process that died mid-run: some points carry another version's fields.
    store = EdgeStoreFactory(root / "shards").open(NAME)
    victims = sorted(truth)[::7]
    bogus = {"cluster_id": 999, "cluster_distance": 9.0, "anomaly_score": 9.0, "is_anomaly": True,
             "model_version": 77}
    store.set_fields([(pid, bogus) for pid in victims])
    unlabelled = [pid for pid in sorted(truth)[1::50] if pid not in victims]
    store.delete_fields(unlabelled, list(RESERVED_FIELDS))
    assert store.count(PointFilter(must=(FieldEquals("model_version", 77),))) == len(victims)
    store.close()

    svc2 = make_service(root)
    try:
        svc2.wait_idle()
        assert svc2.get_collection(NAME).served_model_version == 1
        after = assert_all_labelled(svc2, 1)
        assert {pid: p["cluster_id"] for pid, p in after.items()} == truth
        assert store_of(svc2).count(PointFilter(must=(FieldEquals("cluster_id", 999),))) == 0
        _, clusters = svc2.list_clusters(NAME)
        assert sum(c.size for c in clusters) == 800
    finally:
        svc2.close()


def test_interrupted_run_record_marked_failed(clustered: EmbclusterService, root: Path, make_service) -> None:
    svc = clustered
    runs_dir = root / "collections" / NAME / "runs"
    (run_file,) = list(runs_dir.glob("*.json"))
    import json

    data = json.loads(run_file.read_text())
    data.update(state="running", run_id="feedfacefeedface", phase="assigning")
    (runs_dir / "feedfacefeedface.json").write_text(json.dumps(data))
    svc.close()
    svc2 = make_service(root)
    try:
        info = svc2.get_run(NAME, "feedfacefeedface")
        assert info.state is RunState.FAILED and "interrupted" in info.error
    finally:
        svc2.close()


# --------------------------------------------------------------------------- euclidean collections


def test_euclid_collection_run(svc: EmbclusterService) -> None:
    svc.create_collection(CollectionSpec(name="eu", input_kind="vector", vector_dim=DIM, metric="euclid"))
    x, y = blob_points(400, seed=2)
    for s in range(0, 400, 200):
        svc.ingest("eu", items_for(x[s:s + 200], start=s))
    p = svc.get_point("eu", id="p1", with_vector=True)
    np.testing.assert_allclose(p.vector, x[1], rtol=1e-6)  # not normalised under euclid
    info = run_to_end(svc, "eu")
    assert info.state is RunState.SUCCEEDED, info.error
    payloads = assert_all_labelled(svc, 1, "eu")
    ids_per_blob = {}
    for i in range(400):
        ids_per_blob.setdefault(int(y[i]), set()).add(payloads[point_id_for("eu", f"p{i}")]["cluster_id"])
    assert all(len(v) == 1 for v in ids_per_blob.values())
    d = payloads[point_id_for("eu", "p1")]["cluster_distance"]
    assert 0 < d < 3.0  # an L2 distance within a blob of scale 0.4 in 8-d


# --------------------------------------------------------------------------- settings, k changes, sampling


def test_contamination_update_applies_to_next_run(clustered: EmbclusterService) -> None:
    svc = clustered
    first = svc.get_collection(NAME).anomaly_count
    assert first <= 0.02 * 800
    svc.update_collection(NAME, CollectionSettings(contamination=0.2))
    assert svc.get_collection(NAME).anomaly_count == first  # only from the next run
    assert run_to_end(svc).state is RunState.SUCCEEDED
    flagged = svc.get_collection(NAME).anomaly_count
    assert 0.17 * 800 <= flagged <= 0.2 * 800
    payloads = assert_all_labelled(svc, 2)
    assert sum(p["is_anomaly"] for p in payloads.values()) == flagged


def test_unpopulated_clusters_get_no_points(coll: EmbclusterService, data) -> None:
    svc = coll
    x, _ = data
    ingest_all(svc, items_for(x))
    svc.update_collection(NAME, CollectionSettings(min_cluster_size=150))
    # 6 clusters over 800 points: at least one has fewer than 150 members, so is unpopulated
    assert run_to_end(svc, k=6).state is RunState.SUCCEEDED
    info = svc.get_collection(NAME)
    _, clusters = svc.list_clusters(NAME)
    populated = {c.cluster_id for c in clusters if c.populated}
    empty = {c.cluster_id for c in clusters if not c.populated}
    assert len(clusters) == 6 and empty
    assert info.cluster_count == len(populated)
    assert all(c.size == 0 and c.anomaly_count == 0 for c in clusters if not c.populated)
    assert sum(c.size for c in clusters) == 800
    payloads = assert_all_labelled(svc, 1)
    assert {p["cluster_id"] for p in payloads.values()} <= populated
    a = svc.classify(NAME, items_for(x[:50]))
    assert {r.cluster_id for r in a} <= populated


def test_all_clusters_small_falls_back_to_all_populated(coll: EmbclusterService, data) -> None:
    svc = coll
    x, _ = data
    ingest_all(svc, items_for(x[:200]))
    svc.update_collection(NAME, CollectionSettings(min_cluster_size=100_000))
    assert run_to_end(svc).state is RunState.SUCCEEDED
    assert svc.get_collection(NAME).cluster_count == K


def test_k_change_gives_fresh_ids_never_reused(clustered: EmbclusterService) -> None:
    svc = clustered
    _, c1 = svc.list_clusters(NAME)
    ids1 = {c.cluster_id for c in c1}
    assert ids1 == {0, 1, 2, 3}
    assert run_to_end(svc, k=5).state is RunState.SUCCEEDED
    _, c2 = svc.list_clusters(NAME)
    ids2 = {c.cluster_id for c in c2}
    assert len(ids2) == 5
    assert ids1 <= ids2  # every blob persists
    assert ids2 - ids1 == {4}
    assert run_to_end(svc, k=3).state is RunState.SUCCEEDED
    _, c3 = svc.list_clusters(NAME)
    ids3 = {c.cluster_id for c in c3}
    assert len(ids3) == 3
    assert all(i in ids2 or i >= 5 for i in ids3)  # a vanished id never comes back as a new cluster
    assert_all_labelled(svc, 3)
    assert {p["cluster_id"] for p in all_payloads(svc).values()} <= ids3


def test_run_on_a_sample(coll: EmbclusterService, data) -> None:
    svc = coll
    x, y = data
    ingest_all(svc, items_for(x))
    info = run_to_end(svc, sample_size=200)
    assert info.state is RunState.SUCCEEDED, info.error
    model = svc.registry.get(NAME).model
    assert model.params["sample_size"] == 200
    assert sum(model.metrics["sizes_sample"]) == 200
    assert model.metrics["points_labelled"] == 800
    payloads = assert_all_labelled(svc, 1)
    per_blob = {}
    for i in range(800):
        per_blob.setdefault(int(y[i]), set()).add(payloads[point_id_for(NAME, f"p{i}")]["cluster_id"])
    assert all(len(v) == 1 for v in per_blob.values())


# --------------------------------------------------------------------------- concurrency with a run


def test_ingest_during_first_run_is_caught_up(coll: EmbclusterService, data, monkeypatch) -> None:
    svc = coll
    x, _ = data
    ingest_all(svc, items_for(x))
    reached, release = block_at_model_save(monkeypatch, svc)
    svc.start_clustering(NAME, RunRequest(k=K))
    try:
        assert reached.wait(timeout=60)
        res = svc.ingest(NAME, items_for(blob_points(20, seed=30)[0], prefix="z"))
    finally:
        release.set()
    svc.runs.wait(NAME, timeout=120)
    assert all(r.assignment is None for r in res)
    assert_all_labelled(svc, 1)
    assert svc.get_collection(NAME).point_count == 820


def test_points_deleted_during_write_back_stay_deleted(clustered: EmbclusterService, monkeypatch) -> None:
    svc = clustered
    store = store_of(svc)
    page1, nxt = store.scroll(limit=64, with_payload=False)
    page2, _ = store.scroll(limit=64, offset=nxt, with_payload=False)
    doomed = [p.id for p in page2[::3]] + [p.id for p in page1[:5]]
    reached, release = block_at_model_save(monkeypatch, svc)  # after the run read its points
    info = svc.start_clustering(NAME, RunRequest(k=K))
    try:
        assert reached.wait(timeout=60)
        assert svc.delete_points(NAME, point_ids=doomed) == len(doomed)
    finally:
        release.set()
    svc.runs.wait(NAME, timeout=120)
    assert svc.get_run(NAME, info.run_id).state is RunState.SUCCEEDED
    assert svc.get_collection(NAME).point_count == 800 - len(doomed)
    assert store.retrieve(doomed) == []  # labelling did not resurrect them
    assert_all_labelled(svc, 2)
    _, clusters = svc.list_clusters(NAME)
    assert sum(c.size for c in clusters) == 800 - len(doomed)


def test_close_during_run_cancels_and_restart_is_consistent(clustered: EmbclusterService, root: Path,
                                                             monkeypatch, make_service) -> None:
    svc = clustered
    reached, release = slow_set_fields(monkeypatch, store_of(svc), block_on_call=3)
    info = svc.start_clustering(NAME, RunRequest(k=K, seed=9))
    assert reached.wait(timeout=60)
    timer = threading.Timer(0.3, release.set)
    timer.start()
    svc.close()
    timer.join()
    svc2 = make_service(root)
    try:
        svc2.wait_idle()
        assert svc2.get_run(NAME, info.run_id).state in (RunState.CANCELLED, RunState.FAILED)
        assert svc2.get_collection(NAME).served_model_version == 1
        assert_all_labelled(svc2, 1)
    finally:
        svc2.close()


# --------------------------------------------------------------------------- known bugs


def test_cancel_right_after_write_back_is_reverted(clustered: EmbclusterService, monkeypatch) -> None:
    svc = clustered
    coll = svc.registry.get(NAME)
    original = coll.models.save

    def save_then_cancel(model, **kw):
        out = original(model, **kw)
        if "points_labelled" in model.metrics:  # the save after the write-back
            svc.cancel_run(NAME, svc.runs.active(NAME).run_id)
        return out

    monkeypatch.setattr(coll.models, "save", save_then_cancel)
    info = svc.start_clustering(NAME, RunRequest(k=K))
    svc.runs.wait(NAME, timeout=120)
    state = svc.get_run(NAME, info.run_id).state
    served = svc.get_collection(NAME).served_model_version
    assert (state, served) in ((RunState.CANCELLED, 1), (RunState.SUCCEEDED, 2))
    assert_all_labelled(svc, served)


def test_cancel_after_switch_is_consistent(clustered: EmbclusterService, monkeypatch) -> None:
    svc = clustered
    coll = svc.registry.get(NAME)
    reached, release = block_at_model_save(monkeypatch, svc)
    original_save = coll.save

    def save_then_cancel():
        original_save()
        if coll.record.served_version == 2:
            svc.cancel_run(NAME, svc.runs.active(NAME).run_id)

    monkeypatch.setattr(coll, "save", save_then_cancel)
    info = svc.start_clustering(NAME, RunRequest(k=K))
    try:
        assert reached.wait(timeout=60)
        late = svc.ingest(NAME, items_for(blob_points(10, seed=40)[0], prefix="late"))
        assert all(r.assignment.model_version == 1 for r in late)
    finally:
        release.set()
    svc.runs.wait(NAME, timeout=120)
    state = svc.get_run(NAME, info.run_id).state
    served = svc.get_collection(NAME).served_model_version
    assert (state, served) in ((RunState.CANCELLED, 1), (RunState.SUCCEEDED, 2))
    assert_all_labelled(svc, served)


def test_start_returns_pending_run(clustered: EmbclusterService, monkeypatch) -> None:
    svc = clustered
    original_submit = ThreadPoolExecutor.submit

    def submit_and_let_worker_start(pool, fn, /, *args, **kwargs):
        fut = original_submit(pool, fn, *args, **kwargs)
        if args and isinstance(args[0], RunContext):  # a run (other pools submit as usual)
            ctx = args[0]
            deadline = time.monotonic() + 10
            while ctx.info.state is RunState.PENDING and time.monotonic() < deadline:
                time.sleep(0.001)  # a legal interleaving: the worker thread runs first
        return fut

    monkeypatch.setattr(ThreadPoolExecutor, "submit", submit_and_let_worker_start)
    info = svc.start_clustering(NAME, RunRequest(k=K))
    svc.runs.wait(NAME, timeout=120)
    assert info.state is RunState.PENDING


def test_search_rejects_zero_vector_under_cosine(clustered: EmbclusterService) -> None:
    with pytest.raises(InvalidArgument, match="all-zero"):
        clustered.search(NAME, vector=[0.0] * DIM, limit=3)


def test_old_model_versions_are_pruned_but_never_the_served_one_or_its_predecessor(root: Path, make_service) -> None:
    svc = make_service(root, keep_model_versions=3)
    try:
        svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM, metric="cosine"))
        ingest_all(svc, items_for(blob_points(200, seed=0)[0]))
        for _ in range(5):
            assert run_to_end(svc).state is RunState.SUCCEEDED
        assert [m.version for m in svc.list_models(NAME)] == [3, 4, 5]
        assert not list((svc.registry.get(NAME).directory / "models").glob(".v*"))  # nothing half-deleted left
        svc.rollback(NAME, 3)  # a rollback is a run too (it writes no new version)
        svc.runs.wait(NAME, timeout=120)
        assert svc.get_collection(NAME).served_model_version == 3
        assert run_to_end(svc).state is RunState.SUCCEEDED  # v6 over v3
        assert [m.version for m in svc.list_models(NAME)] == [3, 4, 5, 6]  # the newest 3, and v6's predecessor
        assert svc.drift(NAME).previous_version == 3
        assert run_to_end(svc).state is RunState.SUCCEEDED  # v7 over v6
        assert [m.version for m in svc.list_models(NAME)] == [5, 6, 7]
        with pytest.raises(NotFound, match="saved versions: \\[5, 6, 7\\]"):
            svc.rollback(NAME, 3)
    finally:
        svc.close()
