"""Storage faults below the API: torn appends cut back, CRCs caught at open, out of space recognised."""

from __future__ import annotations

import errno
import uuid
from pathlib import Path

import numpy as np
import pytest

from embcluster.errors import ResourceExhausted
from embcluster.fsio import check_free_space, space_error
from embcluster.store import vectorlog
from embcluster.store.edge_factory import EdgeStoreFactory
from embcluster.store.vectorlog import VectorLog

DIM = 6


def _ids(n: int, start: int = 0) -> list[str]:
    return [str(uuid.UUID(int=start + i + 1)) for i in range(n)]


def _vecs(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def _read_all(log: VectorLog) -> dict[str, np.ndarray]:
    return {str(i): v for ids, vecs in log.iter_pages(log.live(), page_size=7) for i, v in zip(ids, vecs)}


def test_a_failed_append_is_cut_back_and_later_records_stay_aligned(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    log = VectorLog(tmp_path, DIM)
    log.append(_ids(10), _vecs(10, 0))
    real = vectorlog.pwrite_all
    left = [DIM * 4 * 3 + 5]  # room for three vectors and a bit: a torn write

    def pwrite_all(fd: int, data: bytes, offset: int) -> None:
        fits = min(len(data), left[0])
        left[0] -= fits
        real(fd, data[:fits], offset)
        if fits < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vectorlog, "pwrite_all", pwrite_all)
    with pytest.raises(ResourceExhausted, match="disk space") as err:
        log.append(_ids(5, 10), _vecs(5, 1))
    assert str(tmp_path) in err.value.message
    assert log.records == 10
    assert (tmp_path / "vectors.f32").stat().st_size == 10 * DIM * 4  # the torn bytes are gone
    assert (tmp_path / "vectors.ids").stat().st_size == 10 * vectorlog.ID_DTYPE.itemsize
    left[0] = 10**9  # space is back
    log.append(_ids(5, 20), _vecs(5, 2))
    got = _read_all(log)
    assert sorted(got) == sorted(_ids(10) + _ids(5, 20))
    for i, v in zip(_ids(5, 20), _vecs(5, 2)):
        np.testing.assert_array_equal(got[i], v)
    log.close()
    again = VectorLog(tmp_path, DIM)
    assert again.damaged is None and again.records == 15


def test_a_torn_record_is_detected_at_open_and_repaired_from_the_store(tmp_path: Path) -> None:
    store = EdgeStoreFactory(tmp_path / "shards").create("c", dim=DIM, metric="euclid", indexed={})
    log = VectorLog(tmp_path, DIM)
    ids, vecs = _ids(40), _vecs(40, 0)
    log.append(ids, vecs)
    store.upsert(ids, vecs, [{}] * 40)
    log.mark_consistent()
    log.close()
    with open(tmp_path / "vectors.f32", "r+b") as f:  # the tail of the last vector overwritten
        f.seek(40 * DIM * 4 - 6)
        f.write(b"\xff" * 6)
    again = VectorLog(tmp_path, DIM)
    assert again.damaged == 39 and not again.was_clean
    again.repair(store, page_size=16)
    assert again.damaged is None
    got = _read_all(again)
    assert sorted(got) == sorted(ids)
    for i, v in zip(ids, vecs):
        np.testing.assert_array_equal(got[i], v)
    again.close()
    assert VectorLog(tmp_path, DIM).was_clean
    store.close()


def test_a_schema_1_log_is_upgraded_with_crcs(tmp_path: Path) -> None:
    import json

    ids, vecs = _ids(9), _vecs(9, 3)
    old = np.zeros(9, dtype=[("id", "V16"), ("op", "<u4")])
    old["id"] = np.frombuffer(b"".join(uuid.UUID(i).bytes for i in ids), dtype="V16")
    old["op"] = vectorlog.OP_UPSERT
    (tmp_path / "vectors.ids").write_bytes(old.tobytes())
    (tmp_path / "vectors.f32").write_bytes(vecs.tobytes())
    (tmp_path / "vectors.json").write_text(json.dumps({"schema_version": 1, "dim": DIM, "checkpoint": 9,
                                                       "clean": True}))
    log = VectorLog(tmp_path, DIM)
    assert log.records == 9 and log.damaged is None and log.was_clean
    got = _read_all(log)
    np.testing.assert_array_equal(got[ids[4]], vecs[4])


def test_out_of_space_is_recognised_and_names_the_disk(tmp_path: Path) -> None:
    err = space_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert isinstance(err, ResourceExhausted) and str(tmp_path) in err.message
    assert space_error(OSError(errno.EDQUOT, "Disk quota exceeded"), tmp_path) is not None
    edge = Exception("Service runtime error: IO Error: Failed to flush x: No space left on device (os error 28)")
    assert isinstance(space_error(edge, tmp_path), ResourceExhausted)
    assert space_error(OSError(errno.EACCES, "denied"), tmp_path) is None
    assert space_error(ValueError("bad"), tmp_path) is None
    check_free_space(tmp_path, 0)
    with pytest.raises(ResourceExhausted, match="MiB free"):
        check_free_space(tmp_path, 2**62)


def test_edge_out_of_space_is_resource_exhausted_and_leaves_the_shard_usable(tmp_path: Path) -> None:
    store = EdgeStoreFactory(tmp_path / "shards").create("c", dim=DIM, metric="euclid", indexed={})

    class Full:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def update(self, op: object) -> None:
            raise Exception("Service internal error: No space left on device (os error 28)")

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    real = store._shard
    store._shard = Full(real)  # type: ignore[assignment]
    with pytest.raises(ResourceExhausted, match="disk space"):
        store.upsert(_ids(2), _vecs(2, 0), [{}, {}])
    store._shard = real
    assert store.count() == 0
    store.upsert(_ids(2), _vecs(2, 0), [{}, {}])
    assert store.count() == 2
    reserve = EdgeStoreFactory(tmp_path / "shards2", reserve_bytes=2**62)
    with pytest.raises(ResourceExhausted, match="min_free_mb"):
        reserve.create("c", dim=DIM, metric="euclid", indexed={})
    store.close()


def test_the_error_interceptor_turns_a_full_disk_anywhere_into_resource_exhausted(tmp_path: Path) -> None:
    import grpc

    from embcluster.api.errors import ErrorInterceptor

    class Aborted(Exception):
        pass

    class Context:
        def __init__(self) -> None:
            self.status: tuple[grpc.StatusCode, str] | None = None

        def code(self) -> None:
            return None

        def time_remaining(self) -> float:
            return 60.0

        def is_active(self) -> bool:  # grpc.ServicerContext's; the interceptor hands it to call_deadline
            return True

        def abort(self, code: grpc.StatusCode, details: str) -> None:
            self.status = (code, details)
            raise Aborted

    def handler(exc: Exception):  # type: ignore[no-untyped-def]
        def call(request: object, context: object) -> None:
            raise exc
        return grpc.unary_unary_rpc_method_handler(call)

    class Details:
        method = "/embcluster.v1.Embcluster/CreateCollection"

    record = tmp_path / "collection.json"
    cases = [(OSError(errno.ENOSPC, "No space left on device", str(record)), grpc.StatusCode.RESOURCE_EXHAUSTED),
             (RuntimeError("boom"), grpc.StatusCode.INTERNAL)]
    for exc, want in cases:
        wrapped = ErrorInterceptor().intercept_service(lambda _d, e=exc: handler(e), Details())
        ctx = Context()
        with pytest.raises(Aborted):
            wrapped.unary_unary(None, ctx)
        assert ctx.status is not None and ctx.status[0] == want
    ctx = Context()
    wrapped = ErrorInterceptor().intercept_service(lambda _d: handler(cases[0][0]), Details())
    with pytest.raises(Aborted):
        wrapped.unary_unary(None, ctx)
    assert ctx.status is not None and str(record) in ctx.status[1]


def test_a_failed_log_sync_fails_the_ingest_and_leaves_store_and_log_as_they_were(root: Path, make_service,
                                                                                  monkeypatch) -> None:
    """durability=fsync: the log's fdatasync overlaps the store's conversion of the batch but is
    waited for before the store changes; when it fails, neither holds the batch."""
    import os

    from embcluster.schema import CollectionSpec, ItemInput

    svc = make_service(root, durability="fsync")
    svc.create_collection(CollectionSpec(name="v", input_kind="vector", vector_dim=DIM, metric="euclid"))
    x = _vecs(20, 0)
    items = [ItemInput(id=f"p{i}", vector=x[i].tolist()) for i in range(20)]
    svc.ingest("v", items[:10])
    real = os.fdatasync

    def log_disk_full(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("vectors.ids"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", log_disk_full)
    with pytest.raises(ResourceExhausted, match="out of disk space"):
        svc.ingest("v", items[10:])
    coll = svc.registry.get("v")
    assert svc.get_collection("v").point_count == 10
    assert len(_read_all(coll.vlog)) == 10
    monkeypatch.setattr(os, "fdatasync", real)
    svc.ingest("v", items[10:])
    assert svc.get_collection("v").point_count == 20
    logged = _read_all(coll.vlog)
    assert len(logged) == 20
    (p,) = coll.store.retrieve([svc.get_point("v", id="p15").point_id], with_vectors=True)
    np.testing.assert_array_equal(logged[str(p.id)], x[15])
