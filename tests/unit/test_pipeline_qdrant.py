"""The service core over the Qdrant backend (qdrant-client's local mode), and attaching to an
existing Qdrant collection that the service did not create.

Local mode is a slow pure-Python stand-in, so the data is tiny: 8-d vectors in 4 blobs.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from qdrant_client import models as qm

from embcluster.config import Settings
from embcluster.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from embcluster.pipeline import RESERVED_FIELDS, EmbclusterService
from embcluster.schema import AttachSpec, CollectionSpec, ItemInput, RunRequest, RunState
from embcluster.store.server import QdrantConnection, QdrantStoreFactory

DIM = 8
K = 4
CENTERS = np.random.default_rng(7).normal(size=(K, DIM)) * 6.0


def blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % K
    return (CENTERS[labels] + rng.normal(scale=0.3, size=(n, DIM))).astype(np.float32), labels


@pytest.fixture
def factory() -> Iterator[QdrantStoreFactory]:
    f = QdrantStoreFactory(QdrantConnection(path=":memory:"), prefix="ec_test_")
    yield f
    f.close()


def service(root: Path, factory: QdrantStoreFactory) -> EmbclusterService:
    svc = EmbclusterService(Settings(data_dir=root, page_size=32, store="qdrant", qdrant_path=":memory:"),
                            store_factory=factory)
    svc.open()
    return svc


def run(svc: EmbclusterService, name: str, k: int = K) -> None:
    info = svc.start_clustering(name, RunRequest(k=k, seed=0))
    svc.runs.wait(name, timeout=120)
    done = svc.get_run(name, info.run_id)
    assert done.state == RunState.SUCCEEDED, done.error


def raw_payloads(factory: QdrantStoreFactory, qname: str) -> dict[Any, dict[str, Any]]:
    out: dict[Any, dict[str, Any]] = {}
    offset = None
    while True:
        recs, offset = factory.client.scroll(qname, limit=64, offset=offset, with_payload=True)
        out.update({r.id: r.payload for r in recs})
        if offset is None:
            return out


def dump(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False)


# --------------------------------------------------------------------------- the service's own collections


def test_pipeline_end_to_end_on_qdrant_local(tmp_path: Path, factory: QdrantStoreFactory) -> None:
    svc = service(tmp_path / "d", factory)
    svc.create_collection(CollectionSpec(name="v", input_kind="vector", metric="euclid", vector_dim=DIM))
    assert factory.client.collection_exists("ec_test_v")
    x, labels = blobs(160)
    svc.ingest("v", [ItemInput(id=f"p{i}", vector=row.tolist(), metadata={"i": i}) for i, row in enumerate(x)])
    run(svc, "v")
    info = svc.get_collection("v")
    assert (info.point_count, info.served_model_version, info.cluster_count) == (160, 1, K)
    version, clusters = svc.list_clusters("v")
    assert version == 1 and sum(c.size for c in clusters) == 160
    # the four blobs are four clusters
    by_point = {svc.get_point("v", id=f"p{i}").assignment.cluster_id for i in range(K)}  # type: ignore[union-attr]
    assert len(by_point) == K
    members, _ = svc.list_cluster_members("v", clusters[0].cluster_id, page_size=1000)
    assert len(members) == clusters[0].size
    anomalies, _ = svc.list_anomalies("v", page_size=1000)
    assert len(anomalies) == svc.get_collection("v").anomaly_count
    got = svc.classify("v", [ItemInput(vector=CENTERS[2].tolist())])
    assert got[0].cluster_id == svc.get_point("v", id="p2").assignment.cluster_id  # type: ignore[union-attr]
    far = svc.classify("v", [ItemInput(vector=(CENTERS[0] + 60).tolist())])
    assert far[0].is_anomaly
    hits = svc.search("v", vector=x[5].tolist(), limit=3, cluster_id=got[0].cluster_id)
    assert hits and all(h.point.assignment.cluster_id == got[0].cluster_id for h in hits)  # type: ignore[union-attr]
    # online labelling at ingest, then delete
    res = svc.ingest("v", [ItemInput(id="new", vector=x[1].tolist())])
    assert res[0].assignment is not None and res[0].assignment.model_version == 1
    assert svc.delete_points("v", ids=["new", "p0"]) == 2
    svc.close()
    svc = service(tmp_path / "d", factory)  # the same Qdrant, a new process view
    assert svc.get_collection("v").point_count == 159
    assert svc.list_clusters("v")[0] == 1
    assert svc.delete_collection("v")
    assert not factory.client.collection_exists("ec_test_v")
    svc.close()


# --------------------------------------------------------------------------- attaching


def foreign_collection(factory: QdrantStoreFactory, name: str, *, own_cluster_id: bool = False) -> list[Any]:
    """A collection built with qdrant-client: two named vectors, int and UUID ids, rich payloads."""
    factory.client.create_collection(name, vectors_config={
        "image": qm.VectorParams(size=DIM, distance=qm.Distance.COSINE),
        "title": qm.VectorParams(size=3, distance=qm.Distance.EUCLID),
    })
    x, _ = blobs(80, seed=3)
    ids: list[Any] = [i for i in range(40)] + [str(uuid.UUID(int=10**20 + i)) for i in range(40)]
    points = []
    for i, pid in enumerate(ids):
        payload: dict[str, Any] = {
            "sku": f"SKU-{i:04d}", "name": "Crème brûlée ☕ №" + str(i), "price": i * 1.25,
            "tags": ["a", "ü", i], "dims": {"w": i, "h": {"deep": [1, {"x": None}]}}, "in_stock": i % 2 == 0,
        }
        if own_cluster_id:
            payload["cluster_id"] = f"theirs-{i % 3}"
            payload["is_anomaly"] = "no"
        points.append(qm.PointStruct(id=pid, vector={"image": x[i].tolist(), "title": [0.0, 1.0, float(i)]},
                                     payload=payload))
    factory.client.upsert(name, points=points, wait=True)
    return ids


def test_attach_clusters_and_keeps_every_other_key(tmp_path: Path, factory: QdrantStoreFactory) -> None:
    ids = foreign_collection(factory, "shop")
    before = {pid: dump(p) for pid, p in raw_payloads(factory, "shop").items()}
    svc = service(tmp_path / "d", factory)
    info = svc.attach_collection(AttachSpec(name="shop-map", qdrant_collection="shop", vector_name="image"))
    assert (info.input_kind, info.metric, info.dim, info.point_count) == ("vector", "cosine", DIM, 80)
    assert info.attached is not None and info.attached.qdrant_collection == "shop"
    run(svc, "shop-map")
    after = raw_payloads(factory, "shop")
    assert set(after) == set(before)
    for pid, payload in after.items():
        assert all(f in payload for f in RESERVED_FIELDS), payload
        rest = {k: v for k, v in payload.items() if k not in RESERVED_FIELDS}
        assert dump(rest) == before[pid]
    # reads through the service: int ids are shown as ints, the owner's keys under metadata
    p7 = svc.get_point("shop-map", point_id="7")
    assert p7.point_id == "7" and p7.metadata["sku"] == "SKU-0007" and p7.assignment is not None
    assert p7.metadata["name"] == "Crème brûlée ☕ №7"
    ex = svc.explain("shop-map", point_id="7", neighbours=3)
    assert ex.point.point_id == "7" and all(h.point.point_id != "7" for h in ex.normal_neighbours)
    u = svc.get_point("shop-map", point_id=ids[50])
    assert u.point_id == ids[50] and u.assignment is not None
    _, clusters = svc.list_clusters("shop-map")
    assert sorted(c.size for c in clusters) == [20] * K  # the four blobs
    members, _ = svc.list_cluster_members("shop-map", clusters[0].cluster_id, page_size=1000)
    assert len(members) == clusters[0].size
    hits = svc.search("shop-map", vector=CENTERS[1].tolist(), limit=5)
    assert len(hits) == 5 and all(h.point.assignment is not None for h in hits)
    assert svc.classify("shop-map", [ItemInput(vector=CENTERS[1].tolist())])[0].cluster_id == hits[0].point.assignment.cluster_id  # type: ignore[union-attr]
    # the owner's points are not written through the service
    with pytest.raises(FailedPrecondition, match="your own Qdrant client"):
        svc.ingest("shop-map", [ItemInput(id="x", vector=CENTERS[0].tolist())])
    with pytest.raises(FailedPrecondition):
        svc.delete_points("shop-map", point_ids=["7"])
    # a point the owner adds later is labelled by the next run
    factory.client.upsert("shop", points=[qm.PointStruct(id=999, vector={"image": CENTERS[0].tolist()},
                                                         payload={"sku": "late"})], wait=True)
    run(svc, "shop-map")
    assert svc.get_point("shop-map", point_id="999").assignment is not None
    # deleting the attached collection keeps the Qdrant collection and removes only our fields
    svc.delete_collection("shop-map")
    assert factory.client.collection_exists("shop")
    final = raw_payloads(factory, "shop")
    assert {pid: dump(p) for pid, p in final.items() if pid != 999} == before
    assert final[999] == {"sku": "late"}
    svc.close()


def test_attach_with_prefix_when_names_are_taken(tmp_path: Path, factory: QdrantStoreFactory) -> None:
    foreign_collection(factory, "legacy", own_cluster_id=True)
    before = {pid: dump(p) for pid, p in raw_payloads(factory, "legacy").items()}
    svc = service(tmp_path / "d", factory)
    with pytest.raises(FailedPrecondition, match=r"\['cluster_id', 'is_anomaly'\].*field_prefix"):
        svc.attach_collection(AttachSpec(name="m", qdrant_collection="legacy", vector_name="image"))
    svc.attach_collection(AttachSpec(name="m", qdrant_collection="legacy", vector_name="image", field_prefix="ec_"))
    run(svc, "m")
    stored = [f"ec_{f}" for f in RESERVED_FIELDS]
    after = raw_payloads(factory, "legacy")
    for pid, payload in after.items():
        assert all(f in payload for f in stored)
        assert dump({k: v for k, v in payload.items() if k not in stored}) == before[pid]
        assert payload["cluster_id"].startswith("theirs-")  # the owner's key, untouched
    # every listing reads the prefixed names
    _, clusters = svc.list_clusters("m")
    assert sum(c.size for c in clusters) == 80
    for c in clusters:
        members, _ = svc.list_cluster_members("m", c.cluster_id, page_size=1000)
        assert len(members) == c.size
        assert all(p.assignment.cluster_id == c.cluster_id for p in members)  # type: ignore[union-attr]
        assert sum(1 for p in after.values() if p["ec_cluster_id"] == c.cluster_id) == c.size
    anomalies, _ = svc.list_anomalies("m", page_size=1000)
    assert len(anomalies) == sum(1 for p in after.values() if p["ec_is_anomaly"] is True)
    # the same Qdrant collection under the same prefix is refused; survives a restart
    with pytest.raises(AlreadyExists):
        svc.attach_collection(AttachSpec(name="m2", qdrant_collection="legacy", vector_name="image",
                                         field_prefix="ec_"))
    svc.close()
    svc = service(tmp_path / "d", factory)
    assert svc.get_collection("m").attached.field_prefix == "ec_"  # type: ignore[union-attr]
    assert sum(c.size for c in svc.list_clusters("m")[1]) == 80
    svc.close()


def test_list_points_and_grouped_search_on_an_attached_collection(tmp_path: Path, factory: QdrantStoreFactory) -> None:
    """Its points have no ingest sequence number: paged in point-id order; grouped by our prefixed field."""
    ids = foreign_collection(factory, "legacy", own_cluster_id=True)
    indexes = set(factory.client.get_collection("legacy").payload_schema)
    svc = service(tmp_path / "d", factory)
    svc.attach_collection(AttachSpec(name="m", qdrant_collection="legacy", vector_name="image", field_prefix="ec_"))
    run(svc, "m")
    listed: list[str] = []
    token = ""
    while True:
        page, token = svc.list_points("m", page_size=9, page_token=token)
        listed.extend(p.point_id for p in page)
        if not token:
            break
    assert len(listed) == len(set(listed)) == 80
    assert set(listed) == {str(i) if isinstance(i, int) else i for i in ids}
    truth = {pid: svc.get_point("m", point_id=pid).assignment for pid in listed}
    cid = truth[listed[0]].cluster_id  # type: ignore[union-attr]
    members, _ = svc.list_points("m", cluster_id=cid, page_size=1000)
    assert {p.point_id for p in members} == {pid for pid, a in truth.items() if a.cluster_id == cid}  # type: ignore[union-attr]
    groups = svc.search_groups("m", vector=CENTERS[2].tolist(), groups=3, group_size=2)
    assert len(groups) == 3 and all(len(g.hits) == 2 for g in groups)
    for g in groups:  # by our ec_cluster_id, never the owner's "theirs-*" cluster_id
        assert all(h.point.assignment.cluster_id == g.cluster_id for h in g.hits)  # type: ignore[union-attr]
    assert set(factory.client.get_collection("legacy").payload_schema) - indexes <= {f"ec_{f}" for f in RESERVED_FIELDS}
    svc.close()


def test_attach_errors_name_the_problem(tmp_path: Path, factory: QdrantStoreFactory) -> None:
    foreign_collection(factory, "shop")
    svc = service(tmp_path / "d", factory)
    with pytest.raises(NotFound, match="'nope'"):
        svc.attach_collection(AttachSpec(name="a", qdrant_collection="nope"))
    with pytest.raises(NotFound, match=r"no vector named 'audio'.*\['image', 'title'\]"):
        svc.attach_collection(AttachSpec(name="a", qdrant_collection="shop", vector_name="audio"))
    with pytest.raises(FailedPrecondition, match="several named vectors"):
        svc.attach_collection(AttachSpec(name="a", qdrant_collection="shop"))
    with pytest.raises(InvalidArgument, match="field_prefix '9x-'"):
        svc.attach_collection(AttachSpec(name="a", qdrant_collection="shop", vector_name="image", field_prefix="9x-"))
    with pytest.raises(InvalidArgument, match="'euclid' given.*'cosine'"):
        svc.attach_collection(AttachSpec(name="a", qdrant_collection="shop", vector_name="image", metric="euclid"))
    with pytest.raises(InvalidArgument, match="collection name"):
        svc.attach_collection(AttachSpec(name="bad name", qdrant_collection="shop", vector_name="image"))
    assert svc.list_collections() == []
    svc.create_collection(CollectionSpec(name="own", input_kind="vector", metric="euclid", vector_dim=DIM))
    with pytest.raises(FailedPrecondition, match="this service's own collection 'own'"):
        svc.attach_collection(AttachSpec(name="a", qdrant_collection="ec_test_own"))
    svc.close()


def test_attach_needs_the_qdrant_backend(tmp_path: Path) -> None:
    svc = EmbclusterService(Settings(data_dir=tmp_path / "d"))
    svc.open()
    with pytest.raises(FailedPrecondition, match="store=qdrant"):
        svc.attach_collection(AttachSpec(name="a", qdrant_collection="shop"))
    svc.close()


def test_attached_collection_deleted_by_its_owner_is_a_clear_start_error(tmp_path: Path,
                                                                          factory: QdrantStoreFactory) -> None:
    foreign_collection(factory, "gone")
    svc = service(tmp_path / "d", factory)
    svc.attach_collection(AttachSpec(name="g", qdrant_collection="gone", vector_name="image"))
    svc.close()
    factory.client.delete_collection("gone")
    svc = EmbclusterService(Settings(data_dir=tmp_path / "d"), store_factory=factory)
    with pytest.raises(FailedPrecondition, match=r"'g' is attached to a Qdrant collection that is gone.*remove"):
        svc.open()
    svc.close()


def test_a_collection_is_opened_only_by_the_backend_that_holds_it(tmp_path: Path, factory: QdrantStoreFactory) -> None:
    svc = service(tmp_path / "d", factory)
    svc.create_collection(CollectionSpec(name="q", input_kind="vector", metric="euclid", vector_dim=DIM))
    svc.close()
    edge = EmbclusterService(Settings(data_dir=tmp_path / "d"))  # same data dir, the embedded store
    with pytest.raises(FailedPrecondition, match=r"'q' lives in the 'qdrant' store, the server runs store='edge'"):
        edge.open()
    edge.close()
    assert factory.client.collection_exists("ec_test_q")  # nothing of it was dropped


def test_a_create_that_died_before_its_record_leaves_nothing_behind(tmp_path: Path, factory: QdrantStoreFactory) -> None:
    svc = service(tmp_path / "d", factory)
    svc.create_collection(CollectionSpec(name="half", input_kind="vector", metric="euclid", vector_dim=DIM))
    svc.close()
    directory = tmp_path / "d" / "collections" / "half"
    (directory / "collection.json").unlink()  # as if the process died between the store and the record
    (directory / "creating").touch()
    svc = service(tmp_path / "d", factory)
    try:
        assert not directory.exists() and not factory.client.collection_exists("ec_test_half")
        svc.create_collection(CollectionSpec(name="half", input_kind="vector", metric="euclid", vector_dim=DIM))
    finally:
        svc.close()
    # without the marker the Qdrant collection is not known to be ours: it is left alone
    (directory / "collection.json").unlink()
    svc = service(tmp_path / "d", factory)
    try:
        assert factory.client.collection_exists("ec_test_half")
    finally:
        svc.close()
