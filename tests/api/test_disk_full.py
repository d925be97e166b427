"""A full disk through gRPC: RESOURCE_EXHAUSTED naming the disk, reads go on, nothing acknowledged is lost.

Two disks: a real 48 MiB tmpfs the test mounts (root only; skipped with the reason otherwise), and
a fault-injecting layer that always runs — the vector log's writes and the Qdrant Edge shard's
updates fail with ENOSPC (the engine's own wording) once a byte budget is spent.
"""

from __future__ import annotations

import errno
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc
import numpy as np
import pytest

from embcluster.config import Settings
from embcluster.core.records import point_id_for
from embcluster.errors import ResourceExhausted
from embcluster.store import vectorlog

from .conftest import Running

DIM = 128
BATCH = 100
NAME = "full"


class Budget:
    """Bytes the fake disk still takes (None: unlimited)."""

    def __init__(self, left: int | None) -> None:
        self.left = left

    def take(self, n: int) -> int:
        """How many of ``n`` bytes fit; raises ENOSPC if not all do (after taking what fits)."""
        if self.left is None:
            return n
        fits = min(n, self.left)
        self.left -= fits
        return fits


class FaultyShard:
    """An EdgeShard whose updates fail the way the engine reports a full disk once the budget is spent."""

    def __init__(self, inner: Any, budget: Budget) -> None:
        self._inner = inner
        self._budget = budget

    def update(self, op: Any) -> None:
        if self._budget.left is not None:
            if self._budget.left < BATCH * DIM * 4:
                self._budget.left = 0
                raise Exception("Service internal error: failed to write WAL: No space left on device (os error 28)")
            self._budget.left -= BATCH * DIM * 4
        self._inner.update(op)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _ingest_until_full(r: Running, rng: np.random.Generator, acked: dict[str, np.ndarray], start: int) -> tuple[int, grpc.RpcError]:
    """Ingest batches until one is refused; returns the next id number and the error."""
    n = start
    for _ in range(5000):
        vecs = rng.normal(size=(BATCH, DIM)).astype(np.float32)
        ids = [f"p{n + i}" for i in range(BATCH)]
        try:
            r.client.ingest(NAME, [{"id": i, "vector": v.tolist()} for i, v in zip(ids, vecs)])
        except grpc.RpcError as exc:
            return n, exc
        acked.update(zip(ids, vecs))
        n += BATCH
    raise AssertionError("the disk never filled up")


def _ingest_some(r: Running, rng: np.random.Generator, acked: dict[str, np.ndarray], start: int, batches: int) -> None:
    for b in range(batches):
        vecs = rng.normal(size=(BATCH, DIM)).astype(np.float32)
        ids = [f"p{start + b * BATCH + i}" for i in range(BATCH)]
        r.client.ingest(NAME, [{"id": i, "vector": v.tolist()} for i, v in zip(ids, vecs)])
        acked.update(zip(ids, vecs))


def _log_vectors(r: Running) -> dict[str, np.ndarray]:
    vlog = r.service.registry.get(NAME).vlog
    out: dict[str, np.ndarray] = {}
    for ids, vecs in vlog.iter_pages(vlog.live(), 512):
        out.update((str(i), v) for i, v in zip(ids, vecs))
    return out


def _export_vectors(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with tarfile.open(path) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for name in sorted(members):
            if name.startswith("points/") and name.endswith(".ids"):
                raw_ids = tar.extractfile(members[name]).read()  # type: ignore[union-attr]
                raw_vec = tar.extractfile(members[name[:-4] + ".f32"]).read()  # type: ignore[union-attr]
                vecs = np.frombuffer(raw_vec, dtype="<f4").reshape(-1, DIM)
                for k in range(len(raw_ids) // 16):
                    out[str(uuid.UUID(bytes=raw_ids[16 * k:16 * k + 16]))] = vecs[k]
    return out


def _scenario(r: Running, tmp_path: Path, fill: Callable[[], None], free: Callable[[], None], where: str, *,
              reopen: bool = True) -> None:
    """Fill the disk, check the refusal and the reads, free it, then check every acknowledged point."""
    c = r.client
    c.create_collection(NAME, input_kind="vector", vector_dim=DIM, distance="euclid", min_cluster_size=1)
    rng = np.random.default_rng(7)
    acked: dict[str, np.ndarray] = {}
    _ingest_some(r, rng, acked, 0, 4)
    c.cluster(NAME, k=3, seed=0)  # a served model: later ingests are labelled too
    fill()
    n, err = _ingest_until_full(r, rng, acked, 4 * BATCH)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
    assert "disk space" in (err.details() or "") and where in (err.details() or ""), err.details()
    # Reads go on while the disk is full.
    assert c.get_collection(NAME).name == NAME
    some = next(iter(acked))
    assert c.get_point(NAME, id=some).external_id == some
    assert len(c.search(NAME, acked[some].tolist(), limit=5)) == 5
    for _ in range(3):  # the refusal repeats and corrupts nothing
        with pytest.raises(grpc.RpcError) as again:
            _ingest_some(r, rng, {}, n, 1)
        assert again.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    free()
    _ingest_some(r, rng, acked, n + 10 * BATCH, 6)  # space is back: the next points are right

    def check(got: dict[str, np.ndarray], what: str) -> None:
        wrong = [i for i, v in acked.items() if not np.array_equal(got.get(point_id_for(NAME, i)), v)]
        assert not wrong, f"{len(wrong)} of {len(acked)} acknowledged points wrong in the {what}: {wrong[:5]}"

    def stored_vector(i: str) -> np.ndarray:
        vec = c.get_point(NAME, id=i, with_vector=True).vector
        return np.frombuffer(vec.f32, dtype="<f4") if vec.f32 else np.asarray(vec.values, dtype=np.float32)

    stored = {point_id_for(NAME, i): stored_vector(i) for i in acked}
    check(stored, "store")
    assert c.get_collection(NAME).point_count == len(acked)
    c.cluster(NAME, k=4, seed=1)  # raises unless it succeeded
    check(_log_vectors(r), "vector log")
    out = tmp_path / "export.tar"
    c.export_collection(NAME, str(out))
    check(_export_vectors(out), "export")
    # And after a restart (the log's CRCs are checked at open).
    r.service.close()
    again_svc = type(r.service)(r.settings)
    if not reopen:  # the shard does not fit twice: opening it is refused, not a SIGBUS
        with pytest.raises(ResourceExhausted, match="disk space"):
            again_svc.open()
        return
    again_svc.open()
    try:
        vlog = again_svc.registry.get(NAME).vlog
        assert vlog.damaged is None
        got: dict[str, np.ndarray] = {}
        for ids, vecs in vlog.iter_pages(vlog.live(), 512):
            got.update((str(i), v) for i, v in zip(ids, vecs))
        check(got, "vector log after a restart")
    finally:
        again_svc.close()


@pytest.fixture
def make_running() -> Iterator[Callable[[Settings], Running]]:
    made: list[Running] = []

    def make(settings: Settings) -> Running:
        made.append(Running(settings))
        return made[-1]

    yield make
    for r in made:
        try:
            r.client.close()
            r.server.stop(grace=0)
        finally:
            r.service.close()


@pytest.mark.parametrize("fails_in", ["vector log", "store"])
def test_full_disk_through_a_fault_injecting_layer(tmp_path: Path, make_running, monkeypatch: pytest.MonkeyPatch,
                                                   fails_in: str) -> None:  # type: ignore[no-untyped-def]
    r = make_running(Settings(data_dir=tmp_path / "data", port=0, snapshot_dirs=[tmp_path], min_free_mb=0))
    budget = Budget(None)
    real_pwrite = vectorlog.pwrite_all

    def pwrite_all(fd: int, data: bytes, offset: int) -> None:
        fits = budget.take(len(data))
        real_pwrite(fd, data[:fits], offset)  # a torn write: what fits lands, then the error
        if fits < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vectorlog, "pwrite_all", pwrite_all)

    def fill() -> None:
        store = r.service.registry.get(NAME).store
        store._shard = FaultyShard(store._shard, budget)  # type: ignore[attr-defined]
        per_batch = BATCH * (DIM * 4 + vectorlog.ID_DTYPE.itemsize) + BATCH * DIM * 4
        vlog_part = BATCH * (DIM * 4 + vectorlog.ID_DTYPE.itemsize)
        budget.left = 5 * per_batch + (vlog_part // 3 if fails_in == "vector log" else vlog_part + 100)

    def free() -> None:
        budget.left = None

    _scenario(r, tmp_path, fill, free, str(tmp_path / "data"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs (a new or reopened shard takes about 14 MiB there) at ``tmp_path/disk`` (skipped where mounting is not permitted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(disk)],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs for the disk-full test: {exc}")
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the disk-full test (needs root): {res.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)


def test_full_disk_on_a_small_tmpfs(tmp_path: Path, small_disk: Path, make_running) -> None:  # type: ignore[no-untyped-def]
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (16 * 2**20))  # taken from the start, freed later: the space that comes back
    r = make_running(Settings(data_dir=small_disk / "data", port=0, snapshot_dirs=[tmp_path], min_free_mb=2))

    def fill() -> None:
        """The ingest fills the disk."""

    def free() -> None:
        ballast.unlink()

    _scenario(r, tmp_path, fill, free, str(small_disk / "data"), reopen=False)
