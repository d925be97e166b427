"""The service's own float32 columnar copy of a collection's vectors: the fast read path.

Reading vectors back through the Qdrant Edge binding costs ≈ 60 s per million 384-d points
(Python lists per record; docs/architecture.md, "Storage facts"), which alone would blow a
one-minute re-cluster. So every write is also appended here, as fixed-size binary records in two
files with the same record numbering — ``vectors.ids`` ``(uuid: 16 bytes, op: u4, crc: u4)`` and
``vectors.f32`` ``(dim x f4)`` — and a run reads its vectors with plain ``pread`` calls (bounded
memory, no Python object per number). Keeping ids apart lets the live set be computed from 24
bytes per record instead of reading every vector.

The log is a cache, never the source of truth:

* it is written *ahead* of the store (append, then upsert), so whatever a crash leaves
  inconsistent lies after the last persisted checkpoint; on the next open that tail is
  checked against the store and corrected;
* an append is all-or-nothing: both files are written at the record's own offset (never
  "append mode", so a failed write cannot shift later records), and a write that fails (a full
  disk) is truncated back before the error is raised;
* every record carries a CRC-32 of its id, op and vector; every open checks them all, and a log
  with a bad record is rebuilt from the store (``repair``);
* a store write that fails takes its records back out of the log (``truncate``), then the ids
  are re-read from the store; if even that fails the log is marked ``stale`` and rebuilt before
  anything reads it again;
* before a run uses it, its live point count is compared with the store's; on a mismatch it
  is rebuilt from the store (slow, logged);
* when superseded records dominate, a run compacts it.

With ``sync`` (``durability=fsync``) each append is fdatasync'ed before it returns.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from ..fsio import (
    check_free_space,
    fdatasync_all,
    fdatasync_started,
    fsync_dir,
    pwrite_all,
    space_error,
    write_json_atomic,
)
from .base import VectorStore

__all__ = ["VectorLog", "LiveSet"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 1: records without a CRC (upgraded in place at open)
OP_UPSERT = 1
OP_DELETE = 2
CHECKPOINT_EVERY_S = 2.0
VERIFY_CHUNK = 8192  # records checked per read at open


ID_DTYPE = np.dtype([("id", "V16"), ("op", "<u4"), ("crc", "<u4")])
_V1_ID_DTYPE = np.dtype([("id", "V16"), ("op", "<u4")])
_HEAD = 20  # bytes of a record's id + op, the part its CRC covers besides the vector


def _id_bytes(ids: Sequence[str | uuid.UUID]) -> np.ndarray:
    return np.frombuffer(
        b"".join((i if isinstance(i, uuid.UUID) else uuid.UUID(i)).bytes for i in ids), dtype="V16"
    )


def _crcs(rec: np.ndarray, vecs: np.ndarray) -> np.ndarray:
    """CRC-32 of each record's id + op + vector bytes."""
    heads = _heads(rec)
    body = np.ascontiguousarray(vecs, "<f4").view(np.uint8).reshape(len(rec), -1)
    return np.fromiter((zlib.crc32(body[i], zlib.crc32(heads[i])) for i in range(len(rec))),
                       dtype="<u4", count=len(rec))


def _heads(rec: np.ndarray) -> np.ndarray:
    raw = np.ascontiguousarray(rec).view(np.uint8).reshape(len(rec), rec.dtype.itemsize)
    return raw[:, :_HEAD]


def _records(ids_raw: np.ndarray, ops: np.ndarray | int, vecs: np.ndarray) -> np.ndarray:
    """Id records with their CRCs."""
    rec = np.zeros(len(ids_raw), dtype=ID_DTYPE)
    rec["id"], rec["op"] = ids_raw, ops
    rec["crc"] = _crcs(rec, vecs)
    return rec


def _synced() -> None:
    """The wait of an append that is already synced (or needs no sync)."""


class LiveSet:
    """The latest record of every live point, as sorted record numbers of a log snapshot."""

    def __init__(self, rows: np.ndarray, end: int) -> None:
        self.rows = rows  # ascending record numbers
        self.end = end  # records in the log when this set was computed

    def __len__(self) -> int:
        return int(len(self.rows))


class VectorLog:
    """Append-only vector records of one collection (``vectors.ids``, ``vectors.f32``, ``vectors.json``).

    Appends happen under the collection's lock; reads of a :class:`LiveSet` may run
    concurrently with appends (records are fixed-size and only ever added at the end).

    Args:
        directory: The collection's directory.
        dim: Vector dimension.
        sync: fdatasync every append before it returns (``durability=fsync``).
        reserve_bytes: Refuse appends (RESOURCE_EXHAUSTED) while the disk has less free.
    """

    def __init__(self, directory: Path, dim: int, *, sync: bool = False, reserve_bytes: int = 0) -> None:
        self.dim = dim
        self.vec_bytes = 4 * dim
        self.sync = sync
        self.reserve_bytes = reserve_bytes
        self.directory = directory
        self.ids_path = directory / "vectors.ids"
        self.vec_path = directory / "vectors.f32"
        self.meta_path = directory / "vectors.json"
        self._lock = threading.Lock()
        self._meta_lock = threading.Lock()
        self._last_checkpoint = 0.0
        self.stale = False  # the store changed in a way the log could not record: rebuild before use
        fresh = not self.ids_path.exists() or not self.vec_path.exists()
        if fresh:
            self.ids_path.write_bytes(b"")
            self.vec_path.write_bytes(b"")
        meta = {"schema_version": SCHEMA_VERSION, "dim": dim, "checkpoint": 0, "clean": True}
        if self.meta_path.exists() and not fresh:
            meta = json.loads(self.meta_path.read_text())
            if meta.get("schema_version") not in (1, SCHEMA_VERSION) or meta.get("dim") != dim:
                raise ValueError(f"{self.meta_path}: unsupported vector log {meta}")
            if meta["schema_version"] == 1:
                self._upgrade_v1()
        # Records torn by a crash (past the checkpoint by construction) are dropped.
        count = min(self.ids_path.stat().st_size // ID_DTYPE.itemsize, self.vec_path.stat().st_size // self.vec_bytes)
        os.truncate(self.ids_path, count * ID_DTYPE.itemsize)
        os.truncate(self.vec_path, count * self.vec_bytes)
        # One read-write descriptor per file: appends pwrite at the record's own offset and reads
        # pread (both positionless: safe across threads).
        self._ids_fd = os.open(self.ids_path, os.O_RDWR)
        self._vec_fd = os.open(self.vec_path, os.O_RDWR)
        self.records = count
        self.checkpoint = min(int(meta["checkpoint"]), self.records)
        self.stale = bool(meta.get("stale", False))
        self.damaged = self._first_bad_record()  # a record whose CRC does not match, or None
        self.was_clean = (bool(meta["clean"]) and self.checkpoint == self.records and self.damaged is None
                          and not self.stale)
        self._write_meta(clean=False, quiet=True)

    def _upgrade_v1(self) -> None:
        """Rewrite a schema-1 log (no CRCs) with CRCs, in place of the old files."""
        old = np.fromfile(self.ids_path, dtype=_V1_ID_DTYPE)
        count = min(len(old), self.vec_path.stat().st_size // self.vec_bytes)
        vecs = np.fromfile(self.vec_path, dtype="<f4", count=count * self.dim).reshape(count, self.dim)
        tmp = self.ids_path.with_suffix(".ids.new")
        with open(tmp, "wb") as out:
            for s in range(0, count, VERIFY_CHUNK):
                part = old[s:s + VERIFY_CHUNK]
                out.write(_records(part["id"], part["op"], vecs[s:s + len(part)]).tobytes())
            out.flush()
            os.fsync(out.fileno())
        os.truncate(self.vec_path, count * self.vec_bytes)
        os.replace(tmp, self.ids_path)
        logger.info("vector log %s upgraded to schema %d (%d records)", self.ids_path, SCHEMA_VERSION, count)

    def _first_bad_record(self) -> int | None:
        """The first record whose CRC does not match its id, op and vector (None: all good)."""
        for s in range(0, self.records, VERIFY_CHUNK):
            n = min(VERIFY_CHUNK, self.records - s)
            rec, vecs = self._read_ids(s, n), self._read_vecs(s, n)
            bad = np.flatnonzero(_crcs(rec, vecs) != rec["crc"])
            if len(bad):
                return s + int(bad[0])
        return None

    # -------------------------------------------------------------- writing

    def check_space(self) -> None:
        """RESOURCE_EXHAUSTED if the disk holding the log has less than the reserve free."""
        check_free_space(self.directory, self.reserve_bytes)

    def append(self, ids: Sequence[str], vectors: np.ndarray | None, *, wait: bool = True) -> Callable[[], None]:
        """Append upserts (``vectors`` given) or deletes (None): all of them, or none (then it raises).

        Out of space is RESOURCE_EXHAUSTED naming the disk; the files are cut back to where they were.

        Args:
            ids: The points.
            vectors: Their vectors, or None for deletes.
            wait: With ``sync``, return only once the records are fdatasync'ed. False: return
                while the fdatasync runs (the caller does other work meanwhile) and wait through
                the returned function, which raises what the sync raised; the caller then takes
                the records back (:meth:`truncate`).

        Returns:
            The wait for the records' fdatasync (a no-op unless ``wait`` was False under ``sync``).
        """
        vecs = np.zeros((len(ids), self.dim), "<f4") if vectors is None else np.ascontiguousarray(vectors, "<f4")
        rec = _records(_id_bytes(ids), OP_DELETE if vectors is None else OP_UPSERT, vecs)
        with self._lock:
            self.check_space()
            start = self.records
            try:
                # Vectors first: a record counts once its id is written (torn tails are cut at open).
                pwrite_all(self._vec_fd, vecs.tobytes(), start * self.vec_bytes)
                pwrite_all(self._ids_fd, rec.tobytes(), start * ID_DTYPE.itemsize)
                if self.sync and wait:
                    fdatasync_all((self._vec_fd, self._ids_fd))
            except OSError as exc:
                self._cut(start)
                raise (space_error(exc, self.vec_path) or exc) from exc
            self.records = start + len(ids)
            if not self.sync or wait:
                return _synced
            pending = fdatasync_started((self._vec_fd, self._ids_fd))

        def synced() -> None:
            try:
                pending()
            except OSError as exc:
                raise (space_error(exc, self.vec_path) or exc) from exc

        return synced

    def truncate(self, records: int) -> None:
        """Take back the records from ``records`` on (a store write that failed after its append)."""
        with self._lock:
            if records < self.records:
                self._cut(records)
                self.records = records
                self.checkpoint = min(self.checkpoint, records)

    def _cut(self, records: int) -> None:
        """Truncate both files to ``records`` (shrinking needs no space); a failure is logged."""
        try:
            os.ftruncate(self._vec_fd, records * self.vec_bytes)
            os.ftruncate(self._ids_fd, records * ID_DTYPE.itemsize)
        except OSError:  # the next append overwrites the tail at its offset; open() cuts or CRC-checks it
            logger.exception("vector log %s: cutting back to %d records failed", self.ids_path, records)

    def mark_consistent(self) -> None:
        """Everything appended so far is known to match the store: advance the checkpoint."""
        self.checkpoint = self.records
        if time.monotonic() - self._last_checkpoint >= CHECKPOINT_EVERY_S:
            self._write_meta(clean=False, quiet=True)

    def mark_stale(self) -> None:
        """The store changed in a way the log could not record: rebuild it before the next read."""
        self.stale = True
        self._write_meta(clean=False, quiet=True)

    def _write_meta(self, *, clean: bool, quiet: bool = False) -> None:
        with self._meta_lock:  # one writer of vectors.json at a time (its temp file is shared)
            try:
                self._write_meta_locked(clean=clean)
            except OSError as exc:
                if not quiet:
                    raise
                # The checkpoint on disk stays older: the next open re-checks more of the tail.
                logger.warning("vector log %s: checkpoint not saved (%s)", self.meta_path, exc)

    def _write_meta_locked(self, *, clean: bool) -> None:
        self._last_checkpoint = time.monotonic()
        write_json_atomic(self.meta_path, {"schema_version": SCHEMA_VERSION, "dim": self.dim,
                                           "checkpoint": self.checkpoint, "clean": clean, "stale": self.stale})

    def close(self) -> None:
        """Persist the checkpoint as a clean shutdown and close the file."""
        with self._lock:
            for fd in (self._vec_fd, self._ids_fd):
                try:
                    os.fsync(fd)
                except OSError:
                    logger.exception("vector log %s: fsync at close failed", self.ids_path)
                os.close(fd)
        self._write_meta(clean=self.checkpoint == self.records and not self.stale, quiet=True)

    # -------------------------------------------------------------- reading

    def _read_ids(self, start: int, count: int) -> np.ndarray:
        raw = os.pread(self._ids_fd, count * ID_DTYPE.itemsize, start * ID_DTYPE.itemsize)
        return np.frombuffer(raw, dtype=ID_DTYPE)

    def _read_vecs(self, start: int, count: int) -> np.ndarray:
        raw = os.pread(self._vec_fd, count * self.vec_bytes, start * self.vec_bytes)
        return np.frombuffer(raw, dtype="<f4").reshape(-1, self.dim)

    def _ids_ops(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        part = self._read_ids(start, end - start)
        keys = np.ascontiguousarray(part["id"]).view("<u8").reshape(-1, 2)
        return keys, np.array(part["op"])

    def live(self) -> LiveSet:
        """The latest record per id, upserts only, for the log as it is now."""
        end = self.records
        keys, ops = self._ids_ops(0, end)
        if end == 0:
            return LiveSet(np.empty(0, dtype=np.int64), 0)
        order = np.lexsort((np.arange(end), keys[:, 1], keys[:, 0]))  # by id, then by position
        sk = keys[order]
        last = np.ones(end, dtype=bool)
        last[:-1] = (sk[1:] != sk[:-1]).any(axis=1)  # the final record of each id
        rows = order[last]
        rows = np.sort(rows[ops[rows] == OP_UPSERT])
        return LiveSet(rows.astype(np.int64), end)

    def ids_since(self, start: int) -> list[str]:
        """Distinct ids of records appended after record ``start``."""
        keys, _ = self._ids_ops(start, self.records)
        if not len(keys):
            return []
        return [str(uuid.UUID(bytes=bytes(b))) for b in np.unique(keys.view("V16").ravel())]

    def _gather(self, read: Callable[[int, int], np.ndarray], page: np.ndarray) -> np.ndarray:
        lo, hi = int(page[0]), int(page[-1]) + 1
        if hi - lo <= 4 * len(page):  # one contiguous read, then pick
            return read(lo, hi - lo)[page - lo]
        return np.concatenate([read(int(r), 1) for r in page])

    def iter_pages(self, live: LiveSet, page_size: int, rows: np.ndarray | None = None) -> Iterator[tuple[list[uuid.UUID], np.ndarray]]:
        """``(ids, float32 matrix)`` pages of the live set (or of the given sorted ``rows``).

        Ids come as ``uuid.UUID`` objects: the stores take them as they are, and the Edge
        binding parses them several times faster than strings.
        """
        rows = live.rows if rows is None else rows
        for s in range(0, len(rows), page_size):
            page = rows[s:s + page_size]
            ids = [uuid.UUID(bytes=bytes(b)) for b in self._gather(self._read_ids, page)["id"]]
            yield ids, np.array(self._gather(self._read_vecs, page), dtype=np.float32)

    def sample(self, live: LiveSet, size: int, seed: int) -> np.ndarray:
        """A seeded uniform sample of live vectors, read directly by record number."""
        return self.sample_with_ids(live, size, seed)[1]

    def sample_with_ids(self, live: LiveSet, size: int, seed: int) -> tuple[list[uuid.UUID], np.ndarray]:
        """:meth:`sample` with each vector's point id (the same points for the same seed), in log order."""
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(live.rows), size=min(size, len(live.rows)), replace=False))
        ids: list[uuid.UUID] = []
        parts = []
        for page_ids, vecs in self.iter_pages(live, 4096, rows=live.rows[pick]):
            ids.extend(page_ids)
            parts.append(vecs)
        return ids, np.concatenate(parts) if parts else np.empty((0, self.dim), dtype=np.float32)

    # -------------------------------------------------------------- repair

    def reconcile(self, ids: Sequence[str], store: VectorStore) -> None:
        """Append the store's truth for ``ids`` (after a failed or uncertain write)."""
        ids = list(dict.fromkeys(ids))
        for s in range(0, len(ids), 1024):
            chunk = ids[s:s + 1024]
            found = {p.id: p.vector for p in store.retrieve(chunk, with_vectors=True) if p.vector is not None}
            present = [i for i in chunk if i in found]
            if present:
                self.append(present, np.stack([found[i] for i in present]).astype(np.float32))
            missing = [i for i in chunk if i not in found]
            if missing:
                self.append(missing, None)

    def repair(self, store: VectorStore, page_size: int) -> None:
        """At open: rebuild a damaged or stale log from the store, else re-check an unclean tail."""
        if self.damaged is not None or self.stale:
            why = (f"record {self.damaged} of {self.records} fails its CRC" if self.damaged is not None
                   else "it was marked stale")
            logger.warning("vector log %s: %s: rebuilding it from the store", self.ids_path, why)
            self.rebuild(store, page_size)
        elif not self.was_clean:
            self.repair_tail(store)

    def repair_tail(self, store: VectorStore) -> int:
        """After an unclean stop: check every id written after the checkpoint against the store."""
        ids = self.ids_since(self.checkpoint)
        if ids:
            self.reconcile(ids, store)
            logger.warning("vector log %s: re-checked %d ids written after the last checkpoint",
                           self.ids_path, len(ids))
        self.checkpoint = self.records
        self._write_meta(clean=False, quiet=True)
        return len(ids)

    def rebuild(self, store: VectorStore, page_size: int) -> None:
        """Rewrite the log from the store (the slow read path); used when they disagree."""
        started = time.perf_counter()
        def pages() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for ids, vecs in store.iter_vectors(page_size=page_size):
                yield _records(_id_bytes(ids), OP_UPSERT, vecs), vecs

        count = self._rewrite(pages())
        logger.warning("vector log %s rebuilt from the store: %d points in %.1fs", self.ids_path, count,
                       time.perf_counter() - started)

    def compact(self, live: LiveSet) -> None:
        """Rewrite with only the live records (caller holds the collection lock: no appends)."""
        def pages() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for s in range(0, len(live.rows), 8192):
                page = live.rows[s:s + 8192]
                yield self._gather(self._read_ids, page), self._gather(self._read_vecs, page)

        before = self.records
        self._rewrite(pages())
        logger.info("vector log %s compacted: %d -> %d records", self.ids_path, before, self.records)

    def _rewrite(self, pages: Iterator[tuple[np.ndarray, np.ndarray]]) -> int:
        """Write new files from ``(id records, vectors)`` pages and swap them in (fsynced).

        Out of space leaves the old files in place (RESOURCE_EXHAUSTED naming the disk).
        """
        tmp_ids, tmp_vec = self.ids_path.with_suffix(".ids.new"), self.vec_path.with_suffix(".f32.new")
        count = 0
        try:
            with open(tmp_ids, "wb") as out_ids, open(tmp_vec, "wb") as out_vec:
                for rec, vecs in pages:
                    out_vec.write(np.ascontiguousarray(vecs, "<f4").tobytes())
                    out_ids.write(np.ascontiguousarray(rec, ID_DTYPE).tobytes())
                    count += len(rec)
                for f in (out_ids, out_vec):
                    f.flush()
                    os.fsync(f.fileno())
        except OSError as exc:
            for tmp in (tmp_ids, tmp_vec):
                tmp.unlink(missing_ok=True)
            raise (space_error(exc, self.vec_path) or exc) from exc
        with self._lock:
            try:
                # The vectors file first: a crash between the renames leaves more vectors than ids,
                # which open() cuts back (or its CRCs catch), and the count check before the next
                # run rebuilds anyway.
                os.replace(tmp_vec, self.vec_path)
                os.replace(tmp_ids, self.ids_path)
                fsync_dir(self.directory)
                self.records = count
                self.checkpoint = count
                self.damaged = None
                self.stale = False
            finally:  # whatever happened, appends and reads go on against the files in place
                os.close(self._ids_fd)
                os.close(self._vec_fd)
                self._ids_fd = os.open(self.ids_path, os.O_RDWR)
                self._vec_fd = os.open(self.vec_path, os.O_RDWR)
        self._write_meta(clean=False, quiet=True)
        return count
