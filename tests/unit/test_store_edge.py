"""Unit tests of the Qdrant Edge store (embcluster.store.edge) in a temporary directory.

These pin the observed engine behaviour DESIGN.md relies on: thread safety of one shard,
the exclusive open, durability without flush, the bool-filter workaround.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from embcluster.errors import FailedPrecondition
from embcluster.store.base import FieldEquals, FieldMissing, PointFilter
from embcluster.store.edge import BOOL_MIRROR_PREFIX, EdgeStore, EdgeStoreFactory

INDEXED = {"cluster_id": "integer", "is_anomaly": "bool", "model_version": "integer", "external_id": "keyword"}
DIM = 4


def uid(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def vectors(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def payload_for(i: int) -> dict:
    return {"external_id": f"e{i}", "cluster_id": i % 3, "is_anomaly": i % 5 == 0, "meta": {"i": i}}


@pytest.fixture
def factory(tmp_path: Path) -> EdgeStoreFactory:
    return EdgeStoreFactory(tmp_path / "shards")


@pytest.fixture
def store(factory: EdgeStoreFactory):
    s = factory.create("c", dim=DIM, metric="euclid", indexed=INDEXED)
    yield s
    try:
        s.close()
    except Exception:
        pass


@pytest.fixture
def filled(store: EdgeStore) -> EdgeStore:
    n = 50
    store.upsert([uid(i) for i in range(n)], vectors(n), [payload_for(i) for i in range(n)])
    return store


def all_points(store: EdgeStore, flt: PointFilter | None = None, limit: int = 7) -> list:
    out = []
    offset = None
    while True:
        page, offset = store.scroll(limit=limit, offset=offset, flt=flt)
        assert len(page) <= limit
        out.extend(page)
        if offset is None:
            return out


# --------------------------------------------------------------------------- basics


def test_create_records_dim_and_metric(factory) -> None:
    s = factory.create("cos", dim=5, metric="cosine", indexed={})
    assert (s.dim, s.metric) == (5, "cosine")
    s.close()
    s = factory.open("cos")
    assert (s.dim, s.metric) == (5, "cosine")
    s.close()
    e = factory.create("euc", dim=3, metric="euclid", indexed={})
    assert (e.dim, e.metric) == (3, "euclid")
    e.close()


def test_upsert_retrieve_count(store) -> None:
    x = vectors(10)
    store.upsert([uid(i) for i in range(10)], x, [payload_for(i) for i in range(10)])
    assert store.count() == 10
    got = {p.id: p for p in store.retrieve([uid(3), uid(7), uid(999)], with_vectors=True)}
    assert set(got) == {uid(3), uid(7)}
    np.testing.assert_allclose(got[uid(3)].vector, x[3], rtol=1e-6)
    assert got[uid(7)].payload["external_id"] == "e7"
    assert got[uid(7)].payload["meta"] == {"i": 7}
    assert got[uid(7)].payload["is_anomaly"] is False
    no_vec = store.retrieve([uid(3)])
    assert no_vec[0].vector is None
    assert store.retrieve([]) == []


def test_upsert_replaces(store) -> None:
    store.upsert([uid(1)], vectors(1, seed=1), [{"external_id": "a", "cluster_id": 1}])
    store.upsert([uid(1)], vectors(1, seed=2), [{"external_id": "b"}])
    assert store.count() == 1
    (p,) = store.retrieve([uid(1)], with_vectors=True)
    assert p.payload == {"external_id": "b"}  # replaced, not merged
    np.testing.assert_allclose(p.vector, vectors(1, seed=2)[0], rtol=1e-6)


def test_delete(filled) -> None:
    filled.delete([uid(0), uid(1), uid(12345)])
    filled.delete([])
    assert filled.count() == 48
    assert filled.retrieve([uid(0), uid(1)]) == []


@pytest.mark.parametrize("limit", [1, 7, 50, 64])
def test_scroll_pages_cover_every_point_once(filled, limit) -> None:
    pts = all_points(filled, limit=limit)
    ids = [p.id for p in pts]
    assert len(ids) == 50
    assert set(ids) == {uid(i) for i in range(50)}
    assert ids == sorted(ids, key=uuid.UUID)  # id order


def test_scroll_with_filter_and_payload_selector(filled) -> None:
    flt = PointFilter(must=(FieldEquals("cluster_id", 1),))
    pts = all_points(filled, flt=flt, limit=4)
    assert {p.id for p in pts} == {uid(i) for i in range(50) if i % 3 == 1}
    page, _ = filled.scroll(limit=5, with_payload=["cluster_id"])
    assert page and all(set(p.payload) == {"cluster_id"} for p in page)
    page, _ = filled.scroll(limit=5, with_payload=False, with_vectors=True)
    assert all(p.payload == {} and p.vector is not None and p.vector.shape == (DIM,) for p in page)


def test_iter_vectors(filled) -> None:
    seen: dict[str, np.ndarray] = {}
    for ids, mat in filled.iter_vectors(page_size=16):
        assert mat.dtype == np.float32 and mat.shape == (len(ids), DIM)
        assert len(ids) <= 16
        for i, pid in enumerate(ids):
            assert pid not in seen
            seen[pid] = mat[i]
    assert len(seen) == 50
    x = vectors(50)
    np.testing.assert_allclose(seen[uid(42)], x[42], rtol=1e-6)
    flt = PointFilter(must=(FieldEquals("cluster_id", 2),))
    n = sum(len(ids) for ids, _ in filled.iter_vectors(page_size=5, flt=flt))
    assert n == sum(1 for i in range(50) if i % 3 == 2)


# --------------------------------------------------------------------------- filters


def test_filter_int_equals(filled) -> None:
    for c in range(3):
        expected = sum(1 for i in range(50) if i % 3 == c)
        assert filled.count(PointFilter(must=(FieldEquals("cluster_id", c),))) == expected
    assert filled.count(PointFilter(must_not=(FieldEquals("cluster_id", 0),))) == 50 - 17
    assert filled.count(PointFilter(must=(FieldEquals("cluster_id", 99),))) == 0


def test_filter_keyword_equals(filled) -> None:
    assert filled.count(PointFilter(must=(FieldEquals("external_id", "e4"),))) == 1


def test_filter_bool_equals_uses_mirror(filled) -> None:
    true_n = sum(1 for i in range(50) if i % 5 == 0)
    assert filled.count(PointFilter(must=(FieldEquals("is_anomaly", True),))) == true_n
    assert filled.count(PointFilter(must=(FieldEquals("is_anomaly", False),))) == 50 - true_n
    assert filled.count(PointFilter(must_not=(FieldEquals("is_anomaly", True),))) == 50 - true_n
    both = PointFilter(must=(FieldEquals("is_anomaly", True), FieldEquals("cluster_id", 0)))
    assert filled.count(both) == sum(1 for i in range(50) if i % 5 == 0 and i % 3 == 0)


def test_bool_mirror_never_read_back(filled) -> None:
    filled.set_fields([(uid(1), {"is_anomaly": True})])
    read = (
        [p.payload for p in filled.retrieve([uid(i) for i in range(50)])]
        + [p.payload for p in all_points(filled)]
        + [p.payload for p, _ in filled.search(vectors(1)[0], limit=50)]
    )
    assert len(read) == 150
    for payload in read:
        assert "is_anomaly" in payload
        assert not any(k.startswith(BOOL_MIRROR_PREFIX) for k in payload), payload
    assert filled.count(PointFilter(must=(FieldEquals("is_anomaly", True),))) == 11


def test_bool_filter_after_set_fields_flip(filled) -> None:
    flagged = [uid(i) for i in range(50) if i % 5 == 0]
    filled.set_fields([(pid, {"is_anomaly": False}) for pid in flagged])
    assert filled.count(PointFilter(must=(FieldEquals("is_anomaly", True),))) == 0
    assert filled.count(PointFilter(must=(FieldEquals("is_anomaly", False),))) == 50


def test_field_missing(filled) -> None:
    filled.upsert([uid(100), uid(101)], vectors(2, seed=5), [{"external_id": "x"}, {"cluster_id": None}])
    missing = PointFilter(must=(FieldMissing("cluster_id"),))
    assert filled.count(missing) == 2
    assert {p.id for p in all_points(filled, flt=missing)} == {uid(100), uid(101)}
    assert filled.count(PointFilter(must_not=(FieldMissing("cluster_id"),))) == 50


# --------------------------------------------------------------------------- payload updates


def test_set_fields_merges(filled) -> None:
    filled.set_fields([(uid(2), {"cluster_id": 7, "model_version": 3}), (uid(4), {"new": "v"})])
    (p2,) = filled.retrieve([uid(2)])
    assert p2.payload["cluster_id"] == 7 and p2.payload["model_version"] == 3
    assert p2.payload["external_id"] == "e2" and p2.payload["meta"] == {"i": 2}  # untouched
    (p4,) = filled.retrieve([uid(4)])
    assert p4.payload["new"] == "v" and p4.payload["cluster_id"] == 4 % 3
    assert filled.count(PointFilter(must=(FieldEquals("cluster_id", 7),))) == 1
    assert filled.count(PointFilter(must=(FieldEquals("model_version", 3),))) == 1


def test_set_fields_skips_deleted_points(filled) -> None:
    filled.delete([uid(5)])
    filled.set_fields([(uid(5), {"cluster_id": 9}), (uid(6), {"cluster_id": 9}), (uid(777), {"cluster_id": 9})])
    assert filled.count() == 50 - 1  # the missing points were not re-created
    assert [p.id for p in filled.retrieve([uid(5), uid(777)])] == []
    assert filled.count(PointFilter(must=(FieldEquals("cluster_id", 9),))) == 1


def test_delete_fields(filled) -> None:
    filled.delete_fields([uid(0), uid(3)], ["cluster_id", "is_anomaly"])
    filled.delete_fields([], ["cluster_id"])
    (p0,) = filled.retrieve([uid(0)])
    assert "cluster_id" not in p0.payload and "is_anomaly" not in p0.payload
    assert p0.payload["external_id"] == "e0"
    assert filled.count(PointFilter(must=(FieldMissing("cluster_id"),))) == 2
    # uid(0) was an anomaly; its mirror went with it, so the bool filter no longer counts it
    assert filled.count(PointFilter(must=(FieldEquals("is_anomaly", True),))) == 10 - 1
    assert filled.count(PointFilter(must=(FieldEquals("is_anomaly", False),))) == 40 - 1


def test_value_counts(filled) -> None:
    counts = filled.value_counts("cluster_id")
    assert counts == {0: 17, 1: 17, 2: 16}
    anomalies = filled.value_counts("cluster_id", PointFilter(must=(FieldEquals("is_anomaly", True),)))
    expected: dict[int, int] = {}
    for i in range(0, 50, 5):
        expected[i % 3] = expected.get(i % 3, 0) + 1
    assert anomalies == expected


# --------------------------------------------------------------------------- search


def test_search_nearest_euclid(filled) -> None:
    x = vectors(50)
    hits = filled.search(x[10], limit=3)
    assert hits[0][0].id == uid(10)
    assert hits[0][1] == pytest.approx(0.0, abs=1e-4)
    dists = np.linalg.norm(x - x[10], axis=1)
    expected = [uid(i) for i in np.argsort(dists)[:3]]
    assert [p.id for p, _ in hits] == expected


def test_search_with_cluster_filter(filled) -> None:
    hits = filled.search(vectors(1, seed=9)[0], limit=50, flt=PointFilter(must=(FieldEquals("cluster_id", 1),)))
    assert len(hits) == 17
    assert all(p.payload["cluster_id"] == 1 for p, _ in hits)


def test_search_cosine_scores_similarity(factory) -> None:
    s = factory.create("cos", dim=3, metric="cosine", indexed={})
    s.upsert([uid(0), uid(1)], np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32), [{}, {}])
    hits = s.search(np.array([1.0, 0.1, 0.0]), limit=2)
    assert hits[0][0].id == uid(0)
    assert hits[0][1] > hits[1][1]
    assert hits[0][1] == pytest.approx(1 / np.sqrt(1.01), rel=1e-4)
    s.close()


# --------------------------------------------------------------------------- engine behaviour


def test_second_open_fails(factory, store) -> None:
    with pytest.raises(FailedPrecondition, match="another process"):
        factory.open("c")


def test_reopen_after_close_and_drop(factory, tmp_path) -> None:
    s = factory.create("d", dim=DIM, metric="euclid", indexed=INDEXED)
    s.upsert([uid(1)], vectors(1), [payload_for(1)])
    s.close()
    s = factory.open("d")
    assert s.count() == 1
    # the bool mirror survives a reopen (the bool keys are re-read from the schema)
    s.set_fields([(uid(1), {"is_anomaly": True})])
    assert s.count(PointFilter(must=(FieldEquals("is_anomaly", True),))) == 1
    s.close()
    factory.drop("d")
    assert not (factory.root / "d").exists()


def test_create_over_leftovers(factory) -> None:
    (factory.root / "x").mkdir(parents=True)
    (factory.root / "x" / "junk").write_text("crash leftovers")
    s = factory.create("x", dim=DIM, metric="euclid", indexed={})
    assert s.count() == 0
    s.close()


def test_concurrent_upserts_from_threads(store) -> None:
    per_thread, n_threads = 100, 4
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)

    def work(t: int) -> None:
        try:
            barrier.wait()
            for b in range(10):
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


def test_acknowledged_upserts_survive_sigkill(tmp_path) -> None:
    root = tmp_path / "shards"
    src = Path(__file__).resolve().parents[2] / "server"
    code = textwrap.dedent(
        f"""
        import os, signal, sys, uuid
        sys.path.insert(0, {str(src)!r})
        import numpy as np
        from embcluster.store.edge import EdgeStoreFactory
        from pathlib import Path
        s = EdgeStoreFactory(Path({str(root)!r})).create("k", dim=4, metric="euclid", indexed={{"cluster_id": "integer"}})
        x = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
        for start in range(0, 100, 25):
            ids = [str(uuid.UUID(int=i + 1)) for i in range(start, start + 25)]
            s.upsert(ids, x[start:start + 25], [{{"cluster_id": i % 4}} for i in range(start, start + 25)])
        print("ok", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr
    assert proc.returncode == -9
    s = EdgeStoreFactory(root).open("k")
    try:
        assert s.count() == 100
        assert s.count(PointFilter(must=(FieldEquals("cluster_id", 3),))) == 25
        (p,) = s.retrieve([uid(99)], with_vectors=True)
        np.testing.assert_allclose(p.vector, np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)[99])
    finally:
        s.close()


def test_wrong_dimension_upsert_raises(store) -> None:
    with pytest.raises(Exception) as ei:
        store.upsert([uid(1)], vectors(1, dim=DIM + 1), [{}])
    assert not isinstance(ei.value, AssertionError)
    assert store.count() == 0


def test_nan_is_accepted_by_the_engine(store) -> None:
    """DESIGN.md: the engine does not reject NaN; validation must (see test_validation)."""
    x = vectors(1)
    x[0, 1] = np.nan
    store.upsert([uid(1)], x, [{}])
    assert store.count() == 1
