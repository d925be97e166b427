"""The service's own float32 columnar copy of a collection's vectors: the fast read path.

Reading vectors back through the Qdrant Edge binding costs ≈ 60 s per million 384-d points
(Python lists per record; DESIGN.md, "Measured costs"), which alone would blow a one-minute
re-cluster. So every write is also appended here, as fixed-size binary records
``(uuid: 16 bytes, op: u4, vector: dim x f4)``, and a run reads its vectors from this file
with plain ``pread`` calls (bounded memory, no Python object per number).

The log is a cache, never the source of truth:

* it is written *ahead* of the store (append, then upsert), so whatever a crash leaves
  inconsistent lies after the last persisted checkpoint; on the next open that tail is
  checked against the store and corrected;
* a store write that raises is reconciled at once (the ids are re-read from the store);
* before a run uses it, its live point count is compared with the store's; on a mismatch it
  is rebuilt from the store (slow, logged);
* when superseded records dominate, a run compacts it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..fsio import write_json_atomic
from .base import VectorStore

__all__ = ["VectorLog", "LiveSet"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
OP_UPSERT = 1
OP_DELETE = 2
CHECKPOINT_EVERY_S = 2.0


def _dtype(dim: int) -> np.dtype:
    return np.dtype([("id", "V16"), ("op", "<u4"), ("vec", "<f4", (dim,))])


def _id_bytes(ids: Sequence[str]) -> np.ndarray:
    return np.frombuffer(b"".join(uuid.UUID(i).bytes for i in ids), dtype="V16")


class LiveSet:
    """The latest record of every live point, as sorted record numbers of a log snapshot."""

    def __init__(self, rows: np.ndarray, end: int) -> None:
        self.rows = rows  # ascending record numbers
        self.end = end  # records in the log when this set was computed

    def __len__(self) -> int:
        return int(len(self.rows))


class VectorLog:
    """Append-only vector records of one collection (``vectors.log`` + ``vectors.json``).

    Appends happen under the collection's lock; reads of a :class:`LiveSet` may run
    concurrently with appends (records are fixed-size and only ever added at the end).
    """

    def __init__(self, directory: Path, dim: int) -> None:
        self.dim = dim
        self.dtype = _dtype(dim)
        self.path = directory / "vectors.log"
        self.meta_path = directory / "vectors.json"
        self._lock = threading.Lock()
        self._last_checkpoint = 0.0
        fresh = not self.path.exists()
        if fresh:
            self.path.touch()
        meta = {"schema_version": SCHEMA_VERSION, "dim": dim, "checkpoint": 0, "clean": True}
        if self.meta_path.exists() and not fresh:
            meta = json.loads(self.meta_path.read_text())
            if meta.get("schema_version") != SCHEMA_VERSION or meta.get("dim") != dim:
                raise ValueError(f"{self.meta_path}: unsupported vector log {meta}")
        size = self.path.stat().st_size
        whole = size - size % self.dtype.itemsize
        if whole != size:  # a record torn by a crash: drop it (it is after the checkpoint)
            os.truncate(self.path, whole)
        self._file = open(self.path, "ab")
        self.records = whole // self.dtype.itemsize
        self.checkpoint = min(int(meta["checkpoint"]), self.records)
        self.was_clean = bool(meta["clean"]) and self.checkpoint == self.records
        self._write_meta(clean=False)

    # -------------------------------------------------------------- writing

    def append(self, ids: Sequence[str], vectors: np.ndarray | None) -> None:
        """Append upserts (``vectors`` given) or deletes (None), flushed to the OS."""
        rec = np.zeros(len(ids), dtype=self.dtype)
        rec["id"] = _id_bytes(ids)
        if vectors is None:
            rec["op"] = OP_DELETE
        else:
            rec["op"] = OP_UPSERT
            rec["vec"] = vectors
        with self._lock:
            self._file.write(rec.tobytes())
            self._file.flush()  # in the OS page cache: survives a killed process
            self.records += len(ids)

    def mark_consistent(self) -> None:
        """Everything appended so far is known to match the store: advance the checkpoint."""
        self.checkpoint = self.records
        if time.monotonic() - self._last_checkpoint >= CHECKPOINT_EVERY_S:
            self._write_meta(clean=False)

    def _write_meta(self, *, clean: bool) -> None:
        self._last_checkpoint = time.monotonic()
        write_json_atomic(self.meta_path, {"schema_version": SCHEMA_VERSION, "dim": self.dim,
                                           "checkpoint": self.checkpoint, "clean": clean})

    def close(self) -> None:
        """Persist the checkpoint as a clean shutdown and close the file."""
        with self._lock:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        self._write_meta(clean=self.checkpoint == self.records)

    # -------------------------------------------------------------- reading

    def _read(self, start: int, count: int) -> np.ndarray:
        with open(self.path, "rb") as f:
            raw = os.pread(f.fileno(), count * self.dtype.itemsize, start * self.dtype.itemsize)
        return np.frombuffer(raw, dtype=self.dtype)

    def _ids_ops(self, start: int, end: int, chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
        keys = np.empty((end - start, 2), dtype="<u8")
        ops = np.empty(end - start, dtype="<u4")
        for s in range(start, end, chunk):
            part = self._read(s, min(chunk, end - s))
            keys[s - start:s - start + len(part)] = np.ascontiguousarray(part["id"]).view("<u8").reshape(-1, 2)
            ops[s - start:s - start + len(part)] = part["op"]
        return keys, ops

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
        uniq = np.unique(keys.view("V16").ravel()) if len(keys) else []
        return [str(uuid.UUID(bytes=bytes(b))) for b in uniq]

    def iter_pages(self, live: LiveSet, page_size: int, rows: np.ndarray | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
        """``(ids, float32 matrix)`` pages of the live set (or of the given sorted ``rows``)."""
        rows = live.rows if rows is None else rows
        for s in range(0, len(rows), page_size):
            page = rows[s:s + page_size]
            lo, hi = int(page[0]), int(page[-1]) + 1
            if hi - lo <= 4 * len(page):  # one contiguous read, then pick
                block = self._read(lo, hi - lo)[page - lo]
            else:
                block = np.concatenate([self._read(int(r), 1) for r in page])
            ids = [str(uuid.UUID(bytes=bytes(b))) for b in block["id"]]
            yield ids, np.array(block["vec"], dtype=np.float32)

    def sample(self, live: LiveSet, size: int, seed: int) -> np.ndarray:
        """A seeded uniform sample of live vectors, read directly by record number."""
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(live.rows), size=min(size, len(live.rows)), replace=False))
        parts = [vecs for _, vecs in self.iter_pages(live, 4096, rows=live.rows[pick])]
        return np.concatenate(parts) if parts else np.empty((0, self.dim), dtype=np.float32)

    # -------------------------------------------------------------- repair

    def reconcile(self, ids: Sequence[str], store: VectorStore) -> None:
        """Append the store's truth for ``ids`` (after a failed or uncertain write)."""
        ids = list(dict.fromkeys(ids))
        for s in range(0, len(ids), 1024):
            chunk = ids[s:s + 1024]
            found = {p.id: p.vector for p in store.retrieve(chunk, with_vectors=True)}
            present = [i for i in chunk if i in found]
            if present:
                self.append(present, np.stack([found[i] for i in present]).astype(np.float32))
            missing = [i for i in chunk if i not in found]
            if missing:
                self.append(missing, None)

    def repair_tail(self, store: VectorStore) -> int:
        """After an unclean stop: check every id written after the checkpoint against the store."""
        ids = self.ids_since(self.checkpoint)
        if ids:
            self.reconcile(ids, store)
            logger.warning("vector log %s: re-checked %d ids written after the last checkpoint",
                           self.path, len(ids))
        self.checkpoint = self.records
        self._write_meta(clean=False)
        return len(ids)

    def rebuild(self, store: VectorStore, page_size: int) -> None:
        """Rewrite the log from the store (the slow read path); used when they disagree."""
        started = time.perf_counter()
        tmp = self.path.with_suffix(".rebuild")
        count = 0
        with open(tmp, "wb") as out:
            for ids, vecs in store.iter_vectors(page_size=page_size):
                rec = np.zeros(len(ids), dtype=self.dtype)
                rec["id"], rec["op"], rec["vec"] = _id_bytes(ids), OP_UPSERT, vecs
                out.write(rec.tobytes())
                count += len(ids)
            out.flush()
            os.fsync(out.fileno())
        self._swap(tmp, count)
        logger.warning("vector log %s rebuilt from the store: %d points in %.1fs", self.path, count,
                       time.perf_counter() - started)

    def compact(self, live: LiveSet) -> None:
        """Rewrite with only the live records (caller holds the collection lock: no appends)."""
        tmp = self.path.with_suffix(".compact")
        with open(tmp, "wb") as out:
            for s in range(0, len(live.rows), 8192):
                page = live.rows[s:s + 8192]
                lo, hi = int(page[0]), int(page[-1]) + 1
                out.write(self._read(lo, hi - lo)[page - lo].tobytes())
            out.flush()
            os.fsync(out.fileno())
        before = self.records
        self._swap(tmp, len(live.rows))
        logger.info("vector log %s compacted: %d -> %d records", self.path, before, self.records)

    def _swap(self, tmp: Path, count: int) -> None:
        with self._lock:
            self._file.close()
            os.replace(tmp, self.path)
            self._file = open(self.path, "ab")
            self.records = count
            self.checkpoint = count
        self._write_meta(clean=False)
