"""One behavioural contract for every ``VectorStore`` backend.

Parametrized over Qdrant Edge, qdrant-client's local mode (the code path of the server backend)
and — only when ``QDRANT_URL`` is set (``QDRANT_API_KEY``, ``QDRANT_GRPC_PORT`` optional) — a real
Qdrant server (skipped with the reason otherwise).
Engine-specific behaviour (Edge's WAL lock, SIGKILL durability, the bool mirror) stays in
``test_store_edge.py``.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from qdrant_client import QdrantClient

from embcluster.store.base import FieldEquals, FieldMissing, FieldRange, PointFilter, StoreFactory, VectorStore
from embcluster.store.edge_factory import EdgeStoreFactory
from embcluster.store.server import QdrantConnection, QdrantStoreFactory, int_point_id

INDEXED = {"cluster_id": "integer", "is_anomaly": "bool", "model_version": "integer", "external_id": "keyword"}
DIM = 4
QDRANT_URL = os.environ.get("QDRANT_URL", "")  # the test reads it; the core never does


def uid(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def vectors(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def payload_for(i: int) -> dict:
    return {"external_id": f"e{i}", "cluster_id": i % 3, "is_anomaly": i % 5 == 0, "meta": {"i": i}}


@dataclass
class Backend:
    """A factory plus how to reopen a store on it."""

    kind: str
    factory: StoreFactory

    def reopen(self, store: VectorStore, name: str) -> VectorStore:
        store.close()
        return self.factory.open(name)


@pytest.fixture(params=["edge", "qdrant-local", "qdrant-server"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    kind = request.param
    if kind == "edge":
        yield Backend(kind, EdgeStoreFactory(tmp_path / "shards"))
        return
    if kind == "qdrant-local":
        factory = QdrantStoreFactory(QdrantConnection(path=":memory:"), prefix="t_")
        yield Backend(kind, factory)
        factory.close()
        return
    if not QDRANT_URL:
        pytest.skip("QDRANT_URL is not set: the real-server run of the store contract is skipped")
    prefix = f"ectest_{uuid.uuid4().hex[:8]}_"
    conn = QdrantConnection(url=QDRANT_URL, api_key=os.environ.get("QDRANT_API_KEY"),
                            grpc_port=int(os.environ.get("QDRANT_GRPC_PORT", "6334")))
    factory = QdrantStoreFactory(conn, prefix=prefix)
    yield Backend(kind, factory)
    for c in factory.client.get_collections().collections:
        if c.name.startswith(prefix):
            factory.client.delete_collection(c.name)
    factory.close()


@pytest.fixture
def store(backend: Backend) -> Iterator[VectorStore]:
    s = backend.factory.create("c", dim=DIM, metric="euclid", indexed=INDEXED)
    yield s
    try:
        s.close()
    except Exception:
        pass


@pytest.fixture
def filled(store: VectorStore) -> VectorStore:
    n = 50
    store.upsert([uid(i) for i in range(n)], vectors(n), [payload_for(i) for i in range(n)])
    return store


def all_points(store: VectorStore, flt: PointFilter | None = None, limit: int = 7) -> list[Any]:
    out = []
    offset = None
    while True:
        page, offset = store.scroll(limit=limit, offset=offset, flt=flt)
        assert len(page) <= limit
        out.extend(page)
        if offset is None:
            return out


# --------------------------------------------------------------------------- basics


def test_create_records_dim_and_metric(backend: Backend) -> None:
    s = backend.factory.create("cos", dim=5, metric="cosine", indexed={})
    assert (s.dim, s.metric) == (5, "cosine")
    s = backend.reopen(s, "cos")
    assert (s.dim, s.metric) == (5, "cosine")
    s.close()
    e = backend.factory.create("euc", dim=3, metric="euclid", indexed={})
    assert (e.dim, e.metric) == (3, "euclid")
    e.close()


def test_upsert_retrieve_count(store: VectorStore) -> None:
    x = vectors(10)
    store.upsert([uid(i) for i in range(10)], x, [payload_for(i) for i in range(10)])
    assert store.count() == 10
    got = {p.id: p for p in store.retrieve([uid(3), uid(7), uid(999)], with_vectors=True)}
    assert set(got) == {uid(3), uid(7)}
    np.testing.assert_allclose(got[uid(3)].vector, x[3], rtol=1e-6)
    assert got[uid(3)].vector.dtype == np.float32
    assert got[uid(7)].payload["external_id"] == "e7"
    assert got[uid(7)].payload["meta"] == {"i": 7}
    assert got[uid(7)].payload["is_anomaly"] is False
    no_vec = store.retrieve([uid(3)])
    assert no_vec[0].vector is None
    assert store.retrieve([]) == []


def test_uuid_objects_are_accepted_as_ids(store: VectorStore) -> None:
    store.set_fields([])  # no-op
    store.upsert([uid(1)], vectors(1), [{"external_id": "a"}])
    store.set_fields([(uuid.UUID(uid(1)), {"cluster_id": 4})])
    assert store.retrieve([uid(1)])[0].payload["cluster_id"] == 4


def test_upsert_replaces(store: VectorStore) -> None:
    store.upsert([uid(1)], vectors(1, seed=1), [{"external_id": "a", "cluster_id": 1}])
    store.upsert([uid(1)], vectors(1, seed=2), [{"external_id": "b"}])
    assert store.count() == 1
    (p,) = store.retrieve([uid(1)], with_vectors=True)
    assert p.payload == {"external_id": "b"}  # replaced, not merged
    np.testing.assert_allclose(p.vector, vectors(1, seed=2)[0], rtol=1e-6)


def test_delete(filled: VectorStore) -> None:
    filled.delete([uid(0), uid(1), uid(12345)])
    filled.delete([])
    assert filled.count() == 48
    assert filled.retrieve([uid(0), uid(1)]) == []


@pytest.mark.parametrize("limit", [1, 7, 64])
def test_scroll_pages_cover_every_point_once(filled: VectorStore, limit: int) -> None:
    pts = all_points(filled, limit=limit)
    ids = [p.id for p in pts]
    assert len(ids) == 50
    assert set(ids) == {uid(i) for i in range(50)}
    assert ids == sorted(ids, key=uuid.UUID)  # id order


def test_scroll_with_filter_and_payload_selector(filled: VectorStore) -> None:
    flt = PointFilter(must=(FieldEquals("cluster_id", 1),))
    pts = all_points(filled, flt=flt, limit=4)
    assert {p.id for p in pts} == {uid(i) for i in range(50) if i % 3 == 1}
    page, _ = filled.scroll(limit=5, with_payload=["cluster_id"])
    assert page and all(set(p.payload) == {"cluster_id"} for p in page)
    page, _ = filled.scroll(limit=5, with_payload=False, with_vectors=True)
    assert all(p.payload == {} and p.vector is not None and p.vector.shape == (DIM,) for p in page)


def test_iter_vectors(filled: VectorStore) -> None:
    seen: dict[str, np.ndarray] = {}
    for ids, mat in filled.iter_vectors(page_size=16):
        assert mat.dtype == np.float32 and mat.shape == (len(ids), DIM)
        assert len(ids) <= 16
        for i, pid in enumerate(ids):
            assert pid not in seen
            seen[pid] = mat[i]
    assert len(seen) == 50
    np.testing.assert_allclose(seen[uid(42)], vectors(50)[42], rtol=1e-6)
    flt = PointFilter(must=(FieldEquals("cluster_id", 2),))
    n = sum(len(ids) for ids, _ in filled.iter_vectors(page_size=5, flt=flt))
    assert n == sum(1 for i in range(50) if i % 3 == 2)


# --------------------------------------------------------------------------- filters


def test_filter_int_equals(filled: VectorStore) -> None:
    for c in range(3):
        expected = sum(1 for i in range(50) if i % 3 == c)
        assert filled.count(PointFilter(must=(FieldEquals("cluster_id", c),))) == expected
    assert filled.count(PointFilter(must_not=(FieldEquals("cluster_id", 0),))) == 50 - 17
    assert filled.count(PointFilter(must=(FieldEquals("cluster_id", 99),))) == 0


def test_filter_keyword_equals(filled: VectorStore) -> None:
    assert filled.count(PointFilter(must=(FieldEquals("external_id", "e4"),))) == 1


def test_filter_bool_equals(filled: VectorStore) -> None:
    true_n = sum(1 for i in range(50) if i % 5 == 0)
    assert filled.count(PointFilter(must=(FieldEquals("is_anomaly", True),))) == true_n
    assert filled.count(PointFilter(must=(FieldEquals("is_anomaly", False),))) == 50 - true_n
    assert filled.count(PointFilter(must_not=(FieldEquals("is_anomaly", True),))) == 50 - true_n
    both = PointFilter(must=(FieldEquals("is_anomaly", True), FieldEquals("cluster_id", 0)))
    assert filled.count(both) == sum(1 for i in range(50) if i % 5 == 0 and i % 3 == 0)


def test_bools_read_back_as_bools(filled: VectorStore) -> None:
    filled.set_fields([(uid(1), {"is_anomaly": True})])
    read = (
        [p.payload for p in filled.retrieve([uid(i) for i in range(50)])]
        + [p.payload for p in all_points(filled)]
        + [p.payload for p, _ in filled.search(vectors(1)[0], limit=50)]
    )
    assert len(read) == 150
    for payload in read:
        assert isinstance(payload["is_anomaly"], bool)
        assert set(payload) == {"external_id", "cluster_id", "is_anomaly", "meta"}, payload
    assert filled.count(PointFilter(must=(FieldEquals("is_anomaly", True),))) == 11


def test_bool_filter_after_set_fields_flip(filled: VectorStore) -> None:
    flagged = [uid(i) for i in range(50) if i % 5 == 0]
    filled.set_fields([(pid, {"is_anomaly": False}) for pid in flagged])
    assert filled.count(PointFilter(must=(FieldEquals("is_anomaly", True),))) == 0
    assert filled.count(PointFilter(must=(FieldEquals("is_anomaly", False),))) == 50


def test_field_missing(filled: VectorStore) -> None:
    filled.upsert([uid(100), uid(101)], vectors(2, seed=5), [{"external_id": "x"}, {"cluster_id": None}])
    missing = PointFilter(must=(FieldMissing("cluster_id"),))
    assert filled.count(missing) == 2
    assert {p.id for p in all_points(filled, flt=missing)} == {uid(100), uid(101)}
    assert filled.count(PointFilter(must_not=(FieldMissing("cluster_id"),))) == 50


# --------------------------------------------------------------------------- payload updates


def test_set_fields_merges(filled: VectorStore) -> None:
    filled.set_fields([(uid(2), {"cluster_id": 7, "model_version": 3}), (uid(4), {"new": "v"})])
    (p2,) = filled.retrieve([uid(2)])
    assert p2.payload["cluster_id"] == 7 and p2.payload["model_version"] == 3
    assert p2.payload["external_id"] == "e2" and p2.payload["meta"] == {"i": 2}  # untouched
    (p4,) = filled.retrieve([uid(4)])
    assert p4.payload["new"] == "v" and p4.payload["cluster_id"] == 4 % 3
    assert filled.count(PointFilter(must=(FieldEquals("cluster_id", 7),))) == 1
    assert filled.count(PointFilter(must=(FieldEquals("model_version", 3),))) == 1


def test_set_fields_shared_and_distinct_dicts(filled: VectorStore) -> None:
    """Identical dicts may share an operation; every point still gets exactly its own keys."""
    updates = [(uid(i), {"cluster_id": 10 + i % 2, "model_version": 9}) for i in range(20)]
    updates += [(uid(i), {"cluster_id": 100 + i, "cluster_distance": i / 10, "model_version": 9})
                for i in range(20, 50)]
    filled.set_fields(updates)
    got = {p.id: p.payload for p in all_points(filled, limit=64)}
    for i in range(20):
        assert got[uid(i)]["cluster_id"] == 10 + i % 2 and "cluster_distance" not in got[uid(i)]
    for i in range(20, 50):
        assert got[uid(i)]["cluster_id"] == 100 + i
        assert got[uid(i)]["cluster_distance"] == pytest.approx(i / 10)
    assert filled.count(PointFilter(must=(FieldEquals("model_version", 9),))) == 50


def test_set_fields_skips_deleted_points(filled: VectorStore) -> None:
    filled.delete([uid(5)])
    filled.set_fields([(uid(5), {"cluster_id": 9}), (uid(6), {"cluster_id": 9}), (uid(777), {"cluster_id": 9})])
    assert filled.count() == 50 - 1  # the missing points were not re-created
    assert [p.id for p in filled.retrieve([uid(5), uid(777)])] == []
    assert filled.count(PointFilter(must=(FieldEquals("cluster_id", 9),))) == 1


def test_delete_fields(filled: VectorStore) -> None:
    filled.delete_fields([uid(0), uid(3)], ["cluster_id", "is_anomaly"])
    filled.delete_fields([], ["cluster_id"])
    (p0,) = filled.retrieve([uid(0)])
    assert "cluster_id" not in p0.payload and "is_anomaly" not in p0.payload
    assert p0.payload["external_id"] == "e0"
    assert filled.count(PointFilter(must=(FieldMissing("cluster_id"),))) == 2
    assert filled.count(PointFilter(must=(FieldEquals("is_anomaly", True),))) == 10 - 1
    assert filled.count(PointFilter(must=(FieldEquals("is_anomaly", False),))) == 40 - 1


def test_value_counts(filled: VectorStore) -> None:
    assert filled.value_counts("cluster_id") == {0: 17, 1: 17, 2: 16}
    anomalies = filled.value_counts("cluster_id", PointFilter(must=(FieldEquals("is_anomaly", True),)))
    expected: dict[int, int] = {}
    for i in range(0, 50, 5):
        expected[i % 3] = expected.get(i % 3, 0) + 1
    assert anomalies == expected


def test_value_counts_are_exact_beyond_a_facet_page(backend: Backend, store: VectorStore) -> None:
    """More distinct values than Qdrant's default facet limit (10): every value, exactly counted."""
    n = 120
    store.upsert([uid(i) for i in range(n)], vectors(n), [{"cluster_id": i % 37, "is_anomaly": i % 2 == 0}
                                                          for i in range(n)])
    expected = {c: sum(1 for i in range(n) if i % 37 == c) for c in range(37)}
    assert store.value_counts("cluster_id") == expected
    flagged = {c: sum(1 for i in range(0, n, 2) if i % 37 == c) for c in range(37)}
    assert store.value_counts("cluster_id", PointFilter(must=(FieldEquals("is_anomaly", True),))) == flagged
    if backend.kind != "edge":  # a facet reply that reaches its limit may be truncated: counted by scroll
        store.facet_limit = 5  # type: ignore[attr-defined]
        assert store.value_counts("cluster_id") == expected


# --------------------------------------------------------------------------- search


def test_search_nearest_euclid(filled: VectorStore) -> None:
    x = vectors(50)
    hits = filled.search(x[10], limit=3)
    assert hits[0][0].id == uid(10)
    assert hits[0][1] == pytest.approx(0.0, abs=1e-4)
    dists = np.linalg.norm(x - x[10], axis=1)
    assert [p.id for p, _ in hits] == [uid(i) for i in np.argsort(dists)[:3]]
    assert [s for _, s in hits] == pytest.approx(np.sort(dists)[:3].tolist(), abs=1e-4)


def test_search_with_cluster_filter(filled: VectorStore) -> None:
    hits = filled.search(vectors(1, seed=9)[0], limit=50, flt=PointFilter(must=(FieldEquals("cluster_id", 1),)))
    assert len(hits) == 17
    assert all(p.payload["cluster_id"] == 1 for p, _ in hits)


def test_search_cosine_scores_similarity(backend: Backend) -> None:
    s = backend.factory.create("cos", dim=3, metric="cosine", indexed={})
    s.upsert([uid(0), uid(1)], np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32), [{}, {}])
    hits = s.search(np.array([1.0, 0.1, 0.0]), limit=2)
    assert hits[0][0].id == uid(0)
    assert hits[0][1] > hits[1][1]
    assert hits[0][1] == pytest.approx(1 / np.sqrt(1.01), rel=1e-4)
    s.close()


# --------------------------------------------------------------------------- life cycle


def test_reopen_keeps_points_and_bool_filters(backend: Backend) -> None:
    s = backend.factory.create("d", dim=DIM, metric="euclid", indexed=INDEXED)
    s.upsert([uid(1)], vectors(1), [payload_for(1)])
    s = backend.reopen(s, "d")
    assert s.count() == 1
    s.set_fields([(uid(1), {"is_anomaly": True})])
    assert s.count(PointFilter(must=(FieldEquals("is_anomaly", True),))) == 1
    s.close()
    backend.factory.drop("d")
    s = backend.factory.create("d", dim=DIM, metric="euclid", indexed=INDEXED)
    assert s.count() == 0
    s.close()


def test_concurrent_upserts_from_threads(store: VectorStore) -> None:
    per_thread, n_threads = 40, 4
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)

    def work(t: int) -> None:
        try:
            barrier.wait()
            for b in range(4):
                base = t * per_thread + b * 10
                ids = [uid(base + j) for j in range(10)]
                store.upsert(ids, vectors(10, seed=base), [payload_for(base + j) for j in range(10)])
                store.count()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors
    assert store.count() == per_thread * n_threads
    assert len({p.id for p in all_points(store, limit=128)}) == per_thread * n_threads


def test_wrong_dimension_upsert_raises(store: VectorStore) -> None:
    with pytest.raises(Exception) as ei:
        store.upsert([uid(1)], vectors(1, dim=DIM + 1), [{}])
    assert not isinstance(ei.value, AssertionError)
    assert store.count() == 0


def test_create_that_fails_midway_leaves_no_collection(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """A half-made Qdrant collection would later be refused as someone else's."""
    if backend.kind == "edge":
        pytest.skip("Qdrant collections only")
    factory: QdrantStoreFactory = backend.factory  # type: ignore[assignment]

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("index creation refused")

    monkeypatch.setattr(factory.client, "create_payload_index", refuse)
    with pytest.raises(RuntimeError, match="refused"):
        factory.create("half", dim=DIM, metric="euclid", indexed=INDEXED)
    assert not factory.client.collection_exists(factory.qdrant_name("half"))
    monkeypatch.undo()
    factory.create("half", dim=DIM, metric="euclid", indexed=INDEXED).close()  # the name is free


# --------------------------------------------------------------------------- qdrant-only: int ids


def test_unsigned_int_ids_round_trip(backend: Backend) -> None:
    """Foreign collections may use unsigned-int ids; they travel as tagged UUIDs."""
    if backend.kind == "edge":
        pytest.skip("int ids only occur in attached Qdrant collections")
    s = backend.factory.create("ints", dim=DIM, metric="euclid", indexed=INDEXED)
    ids = [int_point_id(n) for n in (0, 7, 2**63 + 5)] + [uid(3)]
    s.upsert(ids, vectors(4), [payload_for(i) for i in range(4)])
    assert {p.id for p in all_points(s, limit=2)} == set(ids)
    s.set_fields([(ids[1], {"cluster_id": 42}), (uuid.UUID(ids[2]), {"cluster_id": 42})])
    assert s.count(PointFilter(must=(FieldEquals("cluster_id", 42),))) == 2
    got = {p.id for p in s.retrieve(ids, with_vectors=True)}
    assert got == set(ids)
    assert {i for batch, _ in s.iter_vectors(page_size=3) for i in batch} == set(ids)
    s.delete_fields([ids[0]], ["cluster_id"])
    assert s.count(PointFilter(must=(FieldMissing("cluster_id"),))) == 1
    s.delete([ids[0]])
    assert s.count() == 3
    s.close()


def test_value_counts_without_facet_counts_by_scroll(backend: Backend, filled: VectorStore,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that refuses the facet (e.g. no index on the key) still gets exact counts."""
    if backend.kind == "edge":
        pytest.skip("the fallback belongs to the qdrant-client store")

    def no_facet(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Bad request: Index required but not found for \"cluster_id\"")

    monkeypatch.setattr(QdrantClient, "facet", no_facet)
    assert filled.value_counts("cluster_id") == {0: 17, 1: 17, 2: 16}
    assert filled.value_counts("is_anomaly") == {True: 10, False: 40}
    assert filled.value_counts("cluster_id", PointFilter(must=(FieldEquals("is_anomaly", True),))) == {0: 4, 1: 3, 2: 3}


# --------------------------------------------------------------------------- ordered scrolls, ranges, groups


def test_scroll_by_orders_by_an_integer_field_and_pages_by_range(backend: Backend) -> None:
    s = backend.factory.create("seq", dim=DIM, metric="euclid", indexed={**INDEXED, "seq": "integer"})
    n = 30
    order = np.random.default_rng(3).permutation(n)  # sequence numbers unrelated to the ids' order
    s.upsert([uid(i) for i in range(n)], vectors(n), [{**payload_for(i), "seq": int(100 + order[i])} for i in range(n)])
    s.upsert([uid(n)], vectors(1, seed=4), [payload_for(n)])  # no "seq": left out
    got: list[int] = []
    after = 0
    while True:
        page = s.scroll_by("seq", limit=7, flt=PointFilter(must=(FieldRange("seq", gt=after),)))
        got.extend(p.payload["seq"] for p in page)
        if len(page) < 7:
            break
        after = page[-1].payload["seq"]
    assert got == list(range(100, 100 + n))
    top = s.scroll_by("seq", limit=2, descending=True)
    assert [p.payload["seq"] for p in top] == [129, 128]
    within = s.scroll_by("seq", limit=100, flt=PointFilter(must=(FieldRange("seq", gt=104, lte=110),
                                                                    FieldEquals("cluster_id", 1))))
    assert [p.payload["seq"] for p in within] == sorted(100 + int(order[i]) for i in range(n)
                                                         if 104 < 100 + order[i] <= 110 and i % 3 == 1)
    s.close()


def test_an_index_added_to_a_store_that_holds_points(backend: Backend) -> None:
    s = backend.factory.create("late", dim=DIM, metric="euclid", indexed=INDEXED)
    s.upsert([uid(i) for i in range(12)], vectors(12), [{**payload_for(i), "seq": 50 - i} for i in range(12)])
    s.create_indexes({"seq": "integer", "cluster_id": "integer"})  # one new, one existing: no error
    s.create_indexes({"seq": "integer"})
    assert [p.payload["seq"] for p in s.scroll_by("seq", limit=3)] == [39, 40, 41]
    s = backend.reopen(s, "late")
    assert [p.payload["seq"] for p in s.scroll_by("seq", limit=2, descending=True)] == [50, 49]
    s.close()


def test_retrieve_with_a_payload_selector(filled: VectorStore) -> None:
    got = {p.id: p.payload for p in filled.retrieve([uid(1), uid(2), uid(999)], with_payload=["cluster_id", "nope"])}
    assert got == {uid(1): {"cluster_id": 1}, uid(2): {"cluster_id": 2}}
    assert all(p.payload == {} for p in filled.retrieve([uid(1)], with_payload=False))


def brute_groups(x: np.ndarray, labels: list[int], q: np.ndarray, groups: int, size: int) -> list[tuple[int, list[str]]]:
    """Exact euclid groups: clusters by their nearest member, each with its nearest ``size`` members."""
    d = np.linalg.norm(x - q, axis=1)
    by: dict[int, list[int]] = {}
    for i in np.argsort(d, kind="stable"):
        by.setdefault(labels[i], []).append(int(i))
    ranked = sorted(by.items(), key=lambda kv: d[kv[1][0]])[:groups]
    return [(c, [uid(i) for i in members[:size]]) for c, members in ranked]


# 7 values: every value asked at once; 60: one search first, then the short groups (Edge's two paths).
@pytest.mark.parametrize("values", [7, 60])
@pytest.mark.parametrize("groups,size", [(3, 2), (5, 4), (2, 30)])
def test_search_groups_match_brute_force(backend: Backend, groups: int, size: int, values: int) -> None:
    s = backend.factory.create("grp", dim=DIM, metric="euclid", indexed=INDEXED)
    rng = np.random.default_rng(11)
    n = 240 if values == 7 else 600
    labels = [int(c) for c in rng.integers(0, values, size=n)]
    centers = rng.normal(size=(values, DIM)) * 3
    x = (centers[labels] + rng.normal(size=(n, DIM))).astype(np.float32)
    s.upsert([uid(i) for i in range(n)], x, [{"cluster_id": labels[i]} for i in range(n)])
    s.upsert([uid(n)], x[:1], [{}])  # no cluster_id: never in a group
    for q in (centers[0], centers[3] + 0.5, rng.normal(size=DIM)):
        got = s.search_groups(q.astype(np.float32), key="cluster_id", groups=groups, group_size=size)
        assert [(c, [p.id for p, _ in hits]) for c, hits in got] == brute_groups(x, labels, q, groups, size)
        for c, hits in got:
            assert all(p.payload["cluster_id"] == c for p, _ in hits)
            scores = [sc for _, sc in hits]
            assert scores == sorted(scores)
    s.close()


@pytest.mark.parametrize("others", [3, 40])
def test_search_groups_when_one_group_crowds_the_query(backend: Backend, others: int) -> None:
    """The nearest hundreds of points all belong to one group: the others are still found, in order."""
    s = backend.factory.create("crowd", dim=DIM, metric="cosine", indexed=INDEXED)
    rng = np.random.default_rng(12)
    big = (np.array([1.0, 0, 0, 0]) + rng.normal(scale=0.05, size=(300, DIM))).astype(np.float32)
    far = [[-1, 0, 0, 0.2 + 0.01 * i] for i in range(others - 3)]  # more groups, all far from the query
    small = [(np.array(v, dtype=np.float32) + rng.normal(scale=0.05, size=(5, DIM))).astype(np.float32)
             for v in ([0.2, 1, 0, 0], [-0.5, 0, 1, 0], [-1, 0, 0, 0.2], *far)]
    x = np.concatenate([big, *small])
    labels = [0] * 300 + [c for c in range(1, others + 1) for _ in range(5)]
    s.upsert([uid(i) for i in range(len(x))], x, [{"cluster_id": c, "k": "x"} for c in labels])
    got = s.search_groups(np.array([1.0, 0, 0, 0], dtype=np.float32), key="cluster_id", groups=3, group_size=2,
                          flt=PointFilter(must=(FieldEquals("k", "x"),)))
    assert [c for c, _ in got] == [0, 1, 2]
    assert all(len(hits) == 2 for _, hits in got)
    best = [hits[0][1] for _, hits in got]
    assert best == sorted(best, reverse=True)  # cosine: similarities, best first
    s.close()


def test_search_groups_among_many_large_groups(backend: Backend) -> None:
    """Every search round finds one more group only (30 tight groups of 80 along a line)."""
    s = backend.factory.create("line", dim=DIM, metric="euclid", indexed=INDEXED)
    rng = np.random.default_rng(13)
    x = np.concatenate([np.array([3.0 * g, 0, 0, 0]) + rng.normal(scale=0.01, size=(80, DIM))
                        for g in range(30)]).astype(np.float32)
    labels = [g for g in range(30) for _ in range(80)]
    s.upsert([uid(i) for i in range(len(x))], x, [{"cluster_id": c} for c in labels])
    q = np.array([30.2, 0, 0, 0], dtype=np.float32)  # group 10, then 11, 9, 12, 8, ...
    got = s.search_groups(q, key="cluster_id", groups=6, group_size=2)
    assert [(c, [p.id for p, _ in hits]) for c, hits in got] == brute_groups(x, labels, q, 6, 2)
    assert [c for c, _ in got] == [10, 11, 9, 12, 8, 13]
    s.close()
