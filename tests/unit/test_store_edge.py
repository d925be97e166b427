"""Unit tests of the Qdrant Edge store (embcluster.store.edge) in a temporary directory.

These pin the observed engine behaviour the code relies on (docs/architecture.md, "Storage
facts"): thread safety of one shard, the exclusive open, durability without flush, the
bool-filter workaround. The behaviour every backend shares is in ``test_store_contract.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe

from embcluster.errors import FailedPrecondition
from embcluster.store.base import FieldEquals, FieldMissing, PointFilter
from embcluster import fsio
from embcluster.store import edge
from embcluster.store.edge import BOOL_MIRROR_PREFIX, WAL_DIR, EdgeStore
from embcluster.store.edge_factory import EdgeStoreFactory

from .test_store_contract import DIM, INDEXED, all_points, payload_for, uid, vectors


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


# --------------------------------------------------------------------------- payload updates


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


def test_acknowledged_upserts_survive_sigkill(tmp_path) -> None:
    root = tmp_path / "shards"
    src = Path(__file__).resolve().parents[2] / "server"
    code = textwrap.dedent(
        f"""
        import os, signal, sys, uuid
        sys.path.insert(0, {str(src)!r})
        import numpy as np
        from embcluster.store.edge_factory import EdgeStoreFactory
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


def test_nan_is_accepted_by_the_engine(store) -> None:
    """docs/architecture.md: the engine does not reject NaN; validation must (see test_validation)."""
    x = vectors(1)
    x[0, 1] = np.nan
    store.upsert([uid(1)], x, [{}])
    assert store.count() == 1


# ---------------------------------------------------------------- durability=fsync: the WAL, not every segment


class CountingShard:
    """A real shard whose flushes are counted (EdgeStore takes any shard object)."""

    def __init__(self, shard) -> None:
        self.inner = shard
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        self.inner.flush()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def _synced_paths(monkeypatch) -> list[str]:
    """Paths fdatasync'ed through embcluster.fsio from now on."""
    seen: list[str] = []
    real = os.fdatasync

    def record(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(fsio.os, "fdatasync", record)
    return seen


@pytest.fixture
def counted(tmp_path: Path):
    path = tmp_path / "shard"
    cfg = qe.EdgeConfig(vectors={"": qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Euclid)})
    shard = CountingShard(qe.EdgeShard.create(str(path), cfg))  # no payload index: none needed here
    yield shard, path
    shard.inner.close()


def test_sync_write_syncs_every_wal_file_and_flushes_no_segment(counted, monkeypatch) -> None:
    shard, path = counted
    synced = _synced_paths(monkeypatch)
    s = EdgeStore(shard, path, sync=True)  # type: ignore[arg-type]
    for b in range(3):
        s.upsert([uid(b * 10 + i) for i in range(10)], vectors(10, seed=b), [payload_for(i) for i in range(10)])
    s.delete([uid(0)])
    assert shard.flushes == 0
    wal_files = {str(f.resolve()) for f in (path / WAL_DIR).iterdir() if f.is_file()}
    assert wal_files and wal_files <= set(synced)
    assert len(synced) == 4 * len(wal_files)  # every acknowledged write, every WAL file


def test_sync_write_flushes_fully_when_due_or_without_the_wal(counted, monkeypatch) -> None:
    shard, path = counted
    monkeypatch.setattr(edge, "FULL_FLUSH_EVERY_S", 0.0)
    s = EdgeStore(shard, path, sync=True)  # type: ignore[arg-type]
    s.upsert([uid(1)], vectors(1), [{}])
    assert shard.flushes == 1
    monkeypatch.setattr(edge, "FULL_FLUSH_EVERY_S", 3600.0)
    monkeypatch.setattr(edge, "WAL_DIR", "no-such-dir")  # the engine's layout changed: flush as before
    s = EdgeStore(shard, path, sync=True)  # type: ignore[arg-type]
    s.upsert([uid(2)], vectors(1), [{}])
    s.delete([uid(2)])
    assert shard.flushes == 3
    s = EdgeStore(shard, path, sync=False)  # type: ignore[arg-type]  # durability=batched: neither
    synced = _synced_paths(monkeypatch)
    s.upsert([uid(3)], vectors(1), [{}])
    assert shard.flushes == 3 and synced == []


def test_acknowledged_write_is_recovered_from_the_wal(tmp_path) -> None:
    """What makes the WAL sync enough: segments that lost every write since their last flush (a
    power loss) get each acknowledged point back from the WAL when the shard is loaded."""
    root = tmp_path / "shards"
    s = EdgeStoreFactory(root, sync=True).create("w", dim=DIM, metric="euclid", indexed=INDEXED)
    x = vectors(30)
    s.upsert([uid(i) for i in range(10)], x[:10], [payload_for(i) for i in range(10)])
    s.flush()
    shutil.copytree(root / "w" / "segments", tmp_path / "flushed-segments")
    s.upsert([uid(i) for i in range(10, 30)], x[10:], [payload_for(i) for i in range(10, 30)])
    s.delete([uid(0)])
    lost = tmp_path / "after-power-loss"
    shutil.copytree(root / "w", lost / "w", ignore=shutil.ignore_patterns("segments"))
    shutil.copytree(tmp_path / "flushed-segments", lost / "w" / "segments")
    s.close()
    restored = EdgeStoreFactory(lost).open("w")
    try:
        assert restored.count() == 29
        assert restored.retrieve([uid(0)]) == []
        (p,) = restored.retrieve([uid(29)], with_vectors=True)
        np.testing.assert_allclose(p.vector, x[29])
        assert p.payload == payload_for(29)
        assert restored.count(PointFilter(must=(FieldEquals("is_anomaly", True),))) == \
            sum(bool(payload_for(i)["is_anomaly"]) for i in range(1, 30))
    finally:
        restored.close()


def test_directory_sync(tmp_path, monkeypatch) -> None:
    d = tmp_path.resolve() / "wal"
    sync = fsio.DirectorySync(d)
    assert not sync.sync()  # missing
    d.mkdir()
    assert not sync.sync()  # empty: nothing made durable
    (d / "a").write_bytes(b"1")
    (d / "b").write_bytes(b"2")
    (d / "sub").mkdir()
    synced = _synced_paths(monkeypatch)
    dirs: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(fsio.os, "fsync", lambda fd: (dirs.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    assert sync.sync()
    assert sorted(synced) == [str(d / "a"), str(d / "b")] and dirs == [str(d)]
    assert sync.sync()
    assert dirs == [str(d)]  # same entries: the directory is not synced again
    os.rename(d / "b", d / "c")
    assert sync.sync()
    assert dirs == [str(d), str(d)]


def test_fdatasync_all_syncs_every_file_and_raises_after_all_finished(tmp_path, monkeypatch) -> None:
    paths = [tmp_path / f"f{i}" for i in range(4)]
    fds = []
    for p in paths:
        p.write_bytes(b"x")
        fds.append(os.open(p, os.O_RDONLY))
    synced = _synced_paths(monkeypatch)
    try:
        fsio.fdatasync_all(fds)
        assert sorted(synced) == sorted(str(p.resolve()) for p in paths)
        real = os.fdatasync
        done: list[int] = []

        def fail_second(fd: int) -> None:
            if fd == fds[1]:
                raise OSError(5, "Input/output error")
            real(fd)
            done.append(fd)

        monkeypatch.setattr(fsio.os, "fdatasync", fail_second)
        with pytest.raises(OSError, match="Input/output"):
            fsio.fdatasync_all(fds)
        assert sorted(done) == sorted(fds[:1] + fds[2:])
    finally:
        for fd in fds:
            os.close(fd)


def test_upsert_calls_before_write_before_the_store_changes(store) -> None:
    seen: list[int] = []
    store.upsert([uid(1), uid(2)], vectors(2), [{}, {}], before_write=lambda: seen.append(store.count()))
    assert seen == [0] and store.count() == 2

    def refuse() -> None:
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError):
        store.upsert([uid(3)], vectors(1), [{}], before_write=refuse)
    assert store.count() == 2 and store.retrieve([uid(3)]) == []
