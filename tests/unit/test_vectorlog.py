"""The vector log: live set, crash tails, reconciliation, rebuild and compaction."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from embcluster.store.edge_factory import EdgeStoreFactory
from embcluster.store.vectorlog import VectorLog

DIM = 6


def _ids(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


def _vecs(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def _read_all(log: VectorLog) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for ids, vecs in log.iter_pages(log.live(), page_size=7):
        for i, v in zip(ids, vecs):
            assert str(i) not in out
            out[str(i)] = v
    return out


def test_latest_record_wins_and_deletes_hide(tmp_path: Path) -> None:
    log = VectorLog(tmp_path, DIM)
    ids = _ids(20)
    first, second = _vecs(20, 0), _vecs(20, 1)
    log.append(ids, first)
    log.append(ids[5:10], second[5:10])  # replacements
    log.append(ids[:3], None)  # deletes
    log.append(ids[1:2], second[1:2])  # re-created after delete
    got = _read_all(log)
    assert sorted(got) == sorted(ids[1:2] + ids[3:])
    np.testing.assert_array_equal(got[ids[7]], second[7])
    np.testing.assert_array_equal(got[ids[12]], first[12])
    np.testing.assert_array_equal(got[ids[1]], second[1])
    assert len(log.live()) == 18
    assert sorted(log.ids_since(20)) == sorted(ids[:3] + ids[5:10])
    sample = log.sample(log.live(), 5, seed=3)
    assert sample.shape == (5, DIM)
    np.testing.assert_array_equal(sample, log.sample(log.live(), 5, seed=3))


def test_sample_with_ids_gives_each_sampled_vector_its_id(tmp_path: Path) -> None:
    log = VectorLog(tmp_path, DIM)
    ids = _ids(50)
    log.append(ids, _vecs(50, 0))
    log.append(ids[10:20], _vecs(10, 1))  # replaced: the sample must show the latest vector under its id
    log.append(ids[:5], None)  # deleted: never sampled
    latest = _read_all(log)
    got_ids, got = log.sample_with_ids(log.live(), 12, seed=4)
    assert len(got_ids) == len(set(got_ids)) == len(got) == 12
    for i, v in zip(got_ids, got):
        np.testing.assert_array_equal(v, latest[str(i)])
    np.testing.assert_array_equal(got, log.sample(log.live(), 12, seed=4))  # the same points as sample()
    all_ids, _ = log.sample_with_ids(log.live(), 100, seed=0)  # larger than the live set: all of it
    assert sorted(map(str, all_ids)) == sorted(latest)


def test_torn_tail_is_cut_and_unclean_open_is_detected(tmp_path: Path) -> None:
    log = VectorLog(tmp_path, DIM)
    log.append(_ids(4), _vecs(4, 0))
    log.mark_consistent()
    log.close()
    assert VectorLog(tmp_path, DIM).was_clean  # and this open leaves it "running"
    with open(tmp_path / "vectors.f32", "ab") as f:  # half a vector of a record that never finished
        f.write(b"\x00" * 10)
    again = VectorLog(tmp_path, DIM)
    assert not again.was_clean
    assert again.records == 4 and len(again.live()) == 4


def test_repair_tail_and_reconcile_follow_the_store(tmp_path: Path) -> None:
    store = EdgeStoreFactory(tmp_path / "shards").create("c", dim=DIM, metric="euclid", indexed={})
    log = VectorLog(tmp_path, DIM)
    ids = _ids(10)
    vecs = _vecs(10, 0)
    log.append(ids, vecs)
    store.upsert(ids, vecs, [{}] * 10)
    log.mark_consistent()
    # A crash between the log append and the store write: the log claims what the store lacks.
    log.append(ids[:2], _vecs(2, 9))
    log.append(_ids(12)[10:], _vecs(2, 8))
    assert len(log.live()) == 12
    assert log.repair_tail(store) == 4
    got = _read_all(log)
    assert sorted(got) == sorted(ids)
    np.testing.assert_allclose(got[ids[0]], vecs[0])
    store.close()


def test_rebuild_and_compact_keep_exactly_the_live_points(tmp_path: Path) -> None:
    store = EdgeStoreFactory(tmp_path / "shards").create("c", dim=DIM, metric="euclid", indexed={})
    ids = _ids(50)
    vecs = _vecs(50, 0)
    store.upsert(ids, vecs, [{}] * 50)
    log = VectorLog(tmp_path, DIM)
    log.rebuild(store, page_size=16)
    got = _read_all(log)
    assert sorted(got) == sorted(ids)
    np.testing.assert_allclose(got[ids[33]], vecs[33])
    for _ in range(3):
        log.append(ids[:40], _vecs(40, 5))
    log.append(ids[40:], None)
    assert log.records == 50 + 120 + 10
    log.compact(log.live())
    assert log.records == 40 == len(log.live())
    got = _read_all(log)
    np.testing.assert_array_equal(got[ids[3]], _vecs(40, 5)[3])
    log.close()
    reopened = VectorLog(tmp_path, DIM)
    assert reopened.was_clean and len(reopened.live()) == 40
    store.close()


def test_wrong_dimension_is_refused(tmp_path: Path) -> None:
    VectorLog(tmp_path, DIM).close()
    with pytest.raises(ValueError, match="unsupported"):
        VectorLog(tmp_path, DIM + 1)


def test_synced_append_fdatasyncs_both_files_and_a_failed_sync_takes_the_records_back(tmp_path: Path,
                                                                                       monkeypatch) -> None:
    import os

    log = VectorLog(tmp_path, DIM, sync=True)
    synced: list[str] = []
    real = os.fdatasync

    def record(fd: int) -> None:
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", record)
    log.append(_ids(3), _vecs(3, 0))
    assert sorted(synced) == ["vectors.f32", "vectors.ids"] and log.records == 3

    def fail_on_ids(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("vectors.ids"):
            raise OSError(5, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fail_on_ids)
    with pytest.raises(OSError):
        log.append(_ids(5)[3:], _vecs(2, 1))
    assert log.records == 3
    assert (tmp_path / "vectors.ids").stat().st_size == 3 * 24
    monkeypatch.setattr(os, "fdatasync", real)
    assert sorted(_read_all(log)) == sorted(_ids(3))
    log.close()


def test_deferred_sync_is_waited_for_and_its_failure_raised_by_the_wait(tmp_path: Path, monkeypatch) -> None:
    import errno
    import os

    from embcluster.errors import ResourceExhausted

    log = VectorLog(tmp_path, DIM, sync=True)
    real = os.fdatasync
    synced: list[str] = []
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    wait = log.append(_ids(2), _vecs(2, 0), wait=False)
    wait()
    assert sorted(os.path.basename(p) for p in synced) == ["vectors.f32", "vectors.ids"] and log.records == 2

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", full)
    wait = log.append(_ids(4)[2:], _vecs(2, 1), wait=False)  # the write itself succeeded
    with pytest.raises(ResourceExhausted, match="out of disk space"):
        wait()
    monkeypatch.setattr(os, "fdatasync", real)
    log.truncate(2)  # what the caller does (OpenCollection.undo_log)
    assert sorted(_read_all(log)) == sorted(_ids(2))
    assert VectorLog(tmp_path, DIM, sync=False).append(_ids(1), _vecs(1, 2), wait=False) is not None
    log.close()
