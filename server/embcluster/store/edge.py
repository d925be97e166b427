"""Qdrant Edge: the Qdrant engine in-process, one shard per collection on local disk.

Observed behaviour this relies on (docs/architecture.md, "Storage facts"; tested in
``tests/unit/test_store_edge.py``): one shard is safe to use from many threads; a second open
of the same directory fails (WAL lock), so the server process owns its shards; acknowledged
updates survive SIGKILL through the WAL; a wrong dimension is rejected, NaN is not
(validation is ours).

Storage faults: every write first checks the disk keeps ``reserve_bytes`` free (the engine
grows memory-mapped files, and a write through a mapping the disk cannot back is a SIGBUS, not
an error), and out of space inside the engine is RESOURCE_EXHAUSTED naming the shard. With
``sync`` (``durability=fsync``) each acknowledged write (upsert, delete) is made durable before
the call returns by an fdatasync of the shard's write-ahead log (``<shard>/wal``): the engine
writes every update there before applying it and replays it from there when the shard is loaded
(tested: ``test_acknowledged_write_is_recovered_from_the_wal``), so the segments need not be
synced per write. ``EdgeShard.flush()`` (WAL and every segment file: ≈ 8x the cost of the WAL
sync, the largest single cost of an ingest) runs at most every ``FULL_FLUSH_EVERY_S`` within
acknowledged writes, which bounds the replay after a power loss, and whenever the WAL directory
is not as expected. Label writes are not synced (the start-up catch-up redoes a write-back a
power loss cut short).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import qdrant_edge as qe

from ..errors import Unavailable
from ..fsio import DirectorySync, check_free_space, fsync_dir, space_error
from .base import (
    FieldEquals,
    FieldMissing,
    Hit,
    HitGroup,
    IndexState,
    Metric,
    PointFilter,
    PointId,
    StoredPoint,
    VectorIndexSettings,
    narrow,
)
from .edge_convert import (BOOL_MIRROR_PREFIX, edge_filter, edge_point, graph_params, index_ops, payload_selector,
                           shard_vector_params, with_mirrors)
from .edge_index import (FULL_SCAN_KB, UNINDEXED_MIN, IndexBuilder, SwapGate, build_dir, new_trash_dir,
                         probe_unindexed)
from .grouping import grouped_search

__all__ = ["BOOL_MIRROR_PREFIX", "EdgeStore", "edge_config", "load_shard", "space_errors", "WAL_DIR",
           "FULL_FLUSH_EVERY_S"]

logger = logging.getLogger(__name__)

WAL_DIR = "wal"  # the engine's write-ahead log, inside the shard directory
# A full flush (WAL + segments) at most this often within acknowledged writes under sync: what a
# restart after a power loss replays from the WAL (the Qdrant server's own flush_interval_sec).
FULL_FLUSH_EVERY_S = 5.0

_DISTANCES = {"cosine": qe.Distance.Cosine, "euclid": qe.Distance.Euclid}


@contextlib.contextmanager
def space_errors(path: Path) -> Iterator[None]:
    """Out of space inside the engine (a plain Exception from the binding) as RESOURCE_EXHAUSTED."""
    try:
        yield
    except Exception as exc:
        err = space_error(exc, path)
        if err is None or err is exc:
            raise
        raise err from exc


def edge_config(dim: int, metric: Metric, index: VectorIndexSettings) -> qe.EdgeConfig:
    """A shard's configuration: its vectors and the HNSW and optimizer settings.

    ``payload_m=0``: no extra per-payload-value graphs. The indexed payload fields are the
    reserved ones, which every re-cluster rewrites (``model_version`` has one value, ``is_anomaly``
    nearly one): each would be another full graph, stale after the next run.
    Filtered searches walk the main graph (with ACORN), or score exactly below ``FULL_SCAN_KB`` of matches.
    The optimizer indexes a segment once it holds ``UNINDEXED_MIN`` points (or ``min_points``,
    if fewer); :class:`~.edge_index.IndexBuilder` decides when a build runs at all.
    ``quantization="int8"``: the optimizer also writes int8 codes (quantile 0.99: the extreme 1% of
    values clipped rather than stretching every code's range), kept in RAM.
    """
    hnsw = qe.HnswIndexConfig(m=index.m, ef_construct=index.ef_construct, full_scan_threshold=FULL_SCAN_KB,
                              max_indexing_threads=0, payload_m=0)
    kb = max(1, min(index.min_points, UNINDEXED_MIN) * dim * 4 // 1024)
    codes = (qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, always_ram=True)
             if index.quantized else None)
    return qe.EdgeConfig(vectors={"": qe.EdgeVectorParams(size=dim, distance=_DISTANCES[metric])}, hnsw_config=hnsw,
                         optimizers=qe.EdgeOptimizersConfig(indexing_threshold=kb), quantization_config=codes)


class EdgeStore:
    """A collection stored in one ``EdgeShard``, with its HNSW index built in the background.

    Args:
        shard: The open shard.
        path: Its directory.
        sync: Make every acknowledged write durable before it returns (``durability=fsync``).
        reserve_bytes: Refuse writes while the disk has less free (``min_free_mb``).
        index: The collection's HNSW settings (``ef`` at search time; the rest for builds).
    """

    def __init__(self, shard: qe.EdgeShard, path: Path, *, sync: bool = False, reserve_bytes: int = 0,
                 index: VectorIndexSettings = VectorIndexSettings()) -> None:
        self._shard = shard
        self.path = path
        self.sync = sync
        self.reserve_bytes = reserve_bytes
        self.index = index
        params = shard_vector_params(path)
        self.dim = params[0]
        self.metric: Metric = params[1]
        self._bool_keys = frozenset(
            key for key, info in shard.info().payload_schema.items() if info.data_type == qe.PayloadSchemaType.Bool
        )
        self._wal = DirectorySync(path / WAL_DIR)
        self._flushed_at = time.monotonic()
        # Set when an index swap loaded the new shard but could not commit (see swap_in): no write
        # is taken from then on, so the old shard the next open restores lacks none.
        self._refusing: str | None = None
        # Writes are serialised (a build's copy and swap hold them); reads share the shard
        # except while a built index is swapped in.
        self.write_lock = threading.RLock()
        self.gate = SwapGate()
        self.indexer = IndexBuilder(self, index)
        # ACORN: a filtered walk of the graph that also looks at neighbours' neighbours. Without it
        # (and without per-value graphs, payload_m=0) a filter matching scattered points (the
        # anomalies) cuts the graph apart: measured 1 hit of 10 at 6% selectivity, 86% recall with it.
        self._search_params = graph_params(index.ef, index.quantized)
        # Points written since the last build (or since the open's probe): each is outside the
        # graph. Edge moves a point out of its indexed segment on *any* write to it, payload
        # included (copy-on-write of an immutable segment), so a write-back unindexes everything.
        self.unindexed = 0

    def _update(self, op: Any, *, acknowledged: bool = True, points: int = 1, nbytes: int = 0) -> None:
        """Apply an update operation (checked for space first); an acknowledged write is made durable if ``sync``.

        Label writes (``set_fields``, ``delete_fields``) are not synced one by one: a run's
        write-back lost to a power loss is redone by the catch-up every start performs.
        """
        check_free_space(self.path, self.reserve_bytes)
        with self.write_lock, space_errors(self.path):
            self._check_writable()
            self._shard.update(op)
            self.unindexed += points
            self.indexer.record(op, points, nbytes, tolerant=False)
            if self.sync and acknowledged:
                self._make_durable()

    def _check_writable(self) -> None:
        """Refuse a write after an index swap that could not be committed (call under ``write_lock``)."""
        if self._refusing is not None:
            raise Unavailable(self._refusing)

    def _make_durable(self) -> None:
        """Sync the WAL (the update is in it); a full flush when one is due or the WAL is not as expected."""
        now = time.monotonic()
        if now - self._flushed_at < FULL_FLUSH_EVERY_S and self._wal.sync():
            return
        self._shard.flush()
        self._flushed_at = now

    def flush(self) -> None:
        """Sync the WAL and the segments to disk."""
        with self.gate.read(), space_errors(self.path):
            self._shard.flush()

    # ------------------------------------------------------------------ the vector index

    def raw_index_state(self) -> tuple[int, int]:
        """``(points, points written since the last build)``: cheap, for deciding when to build."""
        with self.gate.read():
            points = int(self._shard.info().points_count)
        return points, min(points, self.unindexed)

    def probe_unindexed(self) -> int:
        """Points outside the graph, estimated by asking the engine (:func:`~.edge_index.probe_unindexed`)."""
        with self.gate.read():
            return probe_unindexed(self._shard, self.index.ef, quantized=self.index.quantized)

    def index_state(self) -> IndexState:
        """How much of the shard the HNSW index covers, and whether a build runs.

        The larger of two estimates of the points outside the graph: the points written since the
        last build (counted; a point written twice counts twice) and the engine's answer
        (:meth:`probe_unindexed`; measured reliable after a load, but not at once after writes in
        the same process: right after a write-back it still found every moved point).
        """
        unindexed = self.probe_unindexed()
        with self.gate.read():
            points = int(self._shard.info().points_count)
        unindexed = max(unindexed, min(points, self.unindexed))
        return IndexState(points=points, indexed_points=max(0, points - unindexed), building=self.indexer.building)

    def build_index_here(self) -> None:
        """Build the index in this process, blocking: it holds the GIL for minutes (benches only, never the server)."""
        with self.write_lock, self.gate.exclusive():
            self._shard.optimize()
            self.unindexed = 0

    def pause_indexing(self) -> contextlib.AbstractContextManager[None]:
        """No index build runs inside (a run's write-back); a due one starts after."""
        return self.indexer.paused()

    def load_copy(self, built: Path) -> Any:
        """Open the indexed copy where it was built (to replay the journal onto it)."""
        return load_shard(built, edge_config(self.dim, self.metric, self.index))

    @staticmethod
    def replay(shard: Any, entries: Sequence[tuple[Any, bool, int]]) -> None:
        """Apply journaled writes to ``shard`` (a label of a point deleted meanwhile is skipped)."""
        for op, tolerant, _ in entries:
            _apply(shard, op, tolerant)

    def swap_in(self, built: Path, unindexed: int) -> None:
        """Replace the shard by the indexed copy ``built``, on which every write was replayed (and synced).

        Called with writes and reads held. Until the copy is loaded in its place, the old shard
        waits as ``.old-<name>`` (restored by the next open if this process dies now); once it is
        loaded, ``.old-<name>`` is renamed away (and the directory synced) before anything else,
        so a later open never restores it over writes acknowledged by the new shard. If that
        commit fails, the store refuses writes (``UNAVAILABLE``) until a restart restores the old
        shard.
        """
        root, name = self.path.parent, self.path.name
        old = build_dir(root, name, "old")
        if old.exists():  # a previous swap did not finish: restoring it is the next open's job
            raise RuntimeError(f"{old} exists (an earlier index swap did not finish); not swapping")
        self._shard.close()
        moved = False
        shard = None
        try:
            os.rename(self.path, old)
            moved = True
            os.rename(built, self.path)
            fsync_dir(root)
            shard = load_shard(self.path, edge_config(self.dim, self.metric, self.index))
        except BaseException:
            logger.exception("swapping in the index of %s failed: the shard as it was is restored", name)
            if shard is not None:
                with contextlib.suppress(Exception):
                    shard.close()
            if moved:
                if self.path.exists():
                    shutil.rmtree(self.path, ignore_errors=True)
                os.rename(old, self.path)
            self._shard = load_shard(self.path, None)
            raise
        self._shard = shard
        self.unindexed = unindexed
        # The WAL directory is now the copy's: its names are synced afresh, and the next
        # acknowledged write does a full flush.
        self._wal = DirectorySync(self.path / WAL_DIR)
        self._flushed_at = 0.0
        # The commit: .old goes away for good (renamed whole, never deleted in place, and the
        # directory synced) before any write is taken, so no later open restores it over them.
        trash = new_trash_dir(root, name)
        try:
            os.rename(old, trash)
            fsync_dir(root)
        except BaseException as exc:
            self._refusing = (f"shard {name}: an index swap could not be committed ({exc}); it takes no writes "
                              "until the server restarts, which restores the shard as it was before the swap "
                              "(every acknowledged write is in it)")
            logger.error("%s", self._refusing)
            raise
        shutil.rmtree(trash, ignore_errors=True)

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict[str, Any]], *,
               before_write: Callable[[], None] | None = None) -> None:
        """Upsert in one update call: the WAL makes it durable and all-or-nothing."""
        # UUID objects, not strings: the binding parses string ids several times slower.
        points = [
            qe.Point(id=uuid.UUID(pid), vector=vec, payload=with_mirrors(payload, self._bool_keys))
            for pid, vec, payload in zip(ids, vectors.tolist(), payloads)
        ]
        op = qe.UpdateOperation.upsert_points(points)
        if before_write is not None:
            before_write()
        self._update(op, points=len(points), nbytes=int(vectors.nbytes))
        self.indexer.poke()

    def delete(self, ids: Sequence[str]) -> None:
        """Delete points by id."""
        if ids:
            self._update(qe.UpdateOperation.delete_points(list(ids)), points=0)  # a delete moves nothing

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False,
                 with_payload: bool | Sequence[str] = True) -> list[StoredPoint]:
        """Existing points among ``ids``."""
        if not ids:
            return []
        with self.gate.read():
            recs = self._shard.retrieve(list(ids), with_payload=payload_selector(with_payload),
                                        with_vector=with_vectors)
        return [edge_point(r, with_vectors) for r in recs]

    def count(self, flt: PointFilter | None = None) -> int:
        """Exact count."""
        with self.gate.read():
            return int(self._shard.count(qe.CountRequest(exact=True, filter=edge_filter(flt))))

    def scroll(
        self, *, limit: int, offset: str | None = None, flt: PointFilter | None = None,
        with_vectors: bool = False, with_payload: bool | Sequence[str] = True,
    ) -> tuple[list[StoredPoint], str | None]:
        """One page in id order."""
        with self.gate.read():
            recs, nxt = self._shard.scroll(qe.ScrollRequest(
                offset=uuid.UUID(offset) if offset else None, limit=limit, filter=edge_filter(flt),
                with_payload=payload_selector(with_payload), with_vector=with_vectors,
            ))
        return [edge_point(r, with_vectors) for r in recs], (str(nxt) if nxt is not None else None)

    def scroll_by(self, key: str, *, limit: int, flt: PointFilter | None = None,
                  descending: bool = False) -> list[StoredPoint]:
        """Up to ``limit`` points ordered by the integer payload ``key`` (the shard's ordered scroll)."""
        with self.gate.read():
            recs, _ = self._shard.scroll(qe.ScrollRequest(
                limit=limit, filter=edge_filter(flt), with_payload=True, with_vector=False,
                order_by=qe.OrderBy(key, qe.Direction.Desc if descending else qe.Direction.Asc)))
        return [edge_point(r, False) for r in recs]

    def iter_vectors(self, *, page_size: int, flt: PointFilter | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
        """All matching vectors, page by page (bounded memory; the shard is held per page only)."""
        offset: str | None = None
        while True:
            with self.gate.read():
                recs, nxt = self._shard.scroll(qe.ScrollRequest(
                    offset=uuid.UUID(offset) if offset else None, limit=page_size,
                    filter=edge_filter(flt), with_payload=False, with_vector=True,
                ))
            if recs:
                ids = [str(r.id) for r in recs]
                mat = np.asarray([r.vector for r in recs], dtype=np.float32).reshape(len(recs), self.dim)
                yield ids, mat
            if nxt is None:
                return
            offset = str(nxt)

    def set_fields(self, updates: Sequence[tuple[PointId, dict[str, Any]]]) -> None:
        """Merge payload fields per point (one operation per point, so its keys land together).

        Points deleted meanwhile are skipped: a point that no longer exists needs no label.
        """
        check_free_space(self.path, self.reserve_bytes)
        with self.write_lock, space_errors(self.path):
            self._check_writable()
            for pid, fields in updates:
                op = qe.UpdateOperation.set_payload([pid], with_mirrors(fields, self._bool_keys))
                _apply(self._shard, op, tolerant=True)
                self.unindexed += 1
                self.indexer.record(op, 1, 0, tolerant=True)
        self.indexer.poke()  # a write-back outside a pause (a small catch-up) may make a build due

    def delete_fields(self, ids: Sequence[str], keys: Sequence[str]) -> None:
        """Remove payload keys from existing points."""
        if ids:
            self._update(
                qe.UpdateOperation.delete_payload_by_filter(
                    qe.Filter(must=[qe.HasIdCondition({uuid.UUID(i) for i in ids})]),
                    [*keys, *(BOOL_MIRROR_PREFIX + k for k in keys if k in self._bool_keys)],
                ),
                acknowledged=False, points=len(ids),
            )

    def _params(self, ef: int, exact: bool) -> qe.SearchParams:
        if exact:  # every point scored on its float32 vector, codes or not (tested)
            return qe.SearchParams(exact=True)
        return graph_params(ef, self.index.quantized) if ef else self._search_params  # the latter: built once

    def _nearest(self, query: list[float], limit: int, flt: PointFilter | None, ef: int = 0,
                 exact: bool = False) -> qe.QueryRequest:
        return qe.QueryRequest(limit=limit, query=qe.Query.Nearest(query), filter=edge_filter(flt), with_payload=True,
                               with_vector=False, params=self._params(ef, exact))

    def search(self, vector: np.ndarray, *, limit: int, flt: PointFilter | None = None, ef: int = 0,
               exact: bool = False) -> list[Hit]:
        """Nearest neighbours: the HNSW graph over indexed segments (``ef``: 0 is the collection's), an exact
        scan of the rest; ``exact`` scans everything (the reference the index is measured against)."""
        with self.gate.read():
            hits = self._shard.query(self._nearest(np.asarray(vector, dtype=np.float32).tolist(), limit, flt, ef,
                                                   exact))
        return [(edge_point(h, False), float(h.score)) for h in hits]

    def search_groups(self, vector: np.ndarray, *, key: str, groups: int, group_size: int,
                      flt: PointFilter | None = None) -> list[HitGroup]:
        """Hits grouped by ``key`` (Edge has no group-by query: :func:`~.grouping.grouped_search`)."""
        query = np.asarray(vector, dtype=np.float32).tolist()

        def each(values: Sequence[Any], limit: int) -> list[list[Hit]]:
            if not values:
                return []
            with self.gate.read():
                batch = self._shard.query_batch(qe.QueryBatchRequest(
                    [self._nearest(query, limit, narrow(flt, FieldEquals(key, v))) for v in values]))
            return [[(edge_point(h, False), float(h.score)) for h in hits] for hits in batch]

        def values() -> list[Any]:
            # The index's values, counts approximate: ~25x cheaper than exact counts, and a value
            # whose points are all deleted only costs an empty query.
            with self.gate.read():
                resp = self._shard.facet(qe.FacetRequest(key=key, limit=1_000_000, exact=False, filter=edge_filter(flt)))
            return [hit.value for hit in resp.hits]

        def search(limit: int, leave_out: Sequence[Any]) -> list[Hit]:
            base = flt or PointFilter()
            return self.search(vector, limit=limit, flt=PointFilter(must=base.must, must_not=(
                *base.must_not, FieldMissing(key), *(FieldEquals(key, v) for v in leave_out))))

        return grouped_search(search=search, search_each=each,
                              values=values, key=key, groups=groups, group_size=group_size,
                              higher_is_better=self.metric == "cosine")

    def value_counts(self, key: str, flt: PointFilter | None = None) -> dict[Any, int]:
        """Exact facet counts of an indexed key."""
        with self.gate.read():
            resp = self._shard.facet(qe.FacetRequest(key=key, limit=1_000_000, exact=True, filter=edge_filter(flt)))
        return {hit.value: int(hit.count) for hit in resp.hits}

    def create_indexes(self, indexed: dict[str, str]) -> None:
        """Create the payload indexes the shard does not have yet (a bool one with its 0/1 mirror).

        A bool index added to a shard that holds points filters only points written after it
        (their mirrors); the service adds only integer ones to existing shards.
        """
        with self.gate.read():
            have = set(self._shard.info().payload_schema)
        for key, kind in indexed.items():
            if key not in have:
                for op in index_ops(key, kind):
                    self._update(op)
        self._bool_keys = self._bool_keys | {k for k, kind in indexed.items() if kind == "bool"}

    def close(self) -> None:
        """Cancel an index build, flush and close the shard (a flush that fails on a full disk is logged)."""
        self.indexer.close()
        try:
            self.flush()
        except Exception:
            logger.exception("flushing shard %s at close failed", self.path)
        self._shard.close()


def _apply(shard: qe.EdgeShard, op: Any, tolerant: bool) -> None:
    """Apply ``op``; ``tolerant``: a point deleted meanwhile is skipped (a label needs no point)."""
    try:
        shard.update(op)
    except Exception as exc:  # the binding raises plain Exception
        if not tolerant or "No point with id" not in str(exc):
            raise


def load_shard(path: Path, config: qe.EdgeConfig | None) -> qe.EdgeShard:
    """Load a shard (``config``: the index settings to keep in its ``edge_config.json``)."""
    return qe.EdgeShard.load(str(path), config)
