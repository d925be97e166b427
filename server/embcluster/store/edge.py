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
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import qdrant_edge as qe

from ..errors import FailedPrecondition
from ..fsio import DirectorySync, allocated_bytes, check_free_space, space_error
from .base import (
    Condition,
    FieldEquals,
    FieldMissing,
    ForeignStore,
    Hit,
    HitGroup,
    Metric,
    PointFilter,
    PointId,
    StoredPoint,
    narrow,
)
from .grouping import grouped_search

__all__ = ["EdgeStore", "EdgeStoreFactory", "WAL_DIR", "FULL_FLUSH_EVERY_S"]

logger = logging.getLogger(__name__)

WAL_DIR = "wal"  # the engine's write-ahead log, inside the shard directory
# A full flush (WAL + segments) at most this often within acknowledged writes under sync: what a
# restart after a power loss replays from the WAL (the Qdrant server's own flush_interval_sec).
FULL_FLUSH_EVERY_S = 5.0

_DISTANCES = {"cosine": qe.Distance.Cosine, "euclid": qe.Distance.Euclid}
_INDEX_TYPES = {
    "integer": qe.PayloadSchemaType.Integer,
    "bool": qe.PayloadSchemaType.Bool,
    "keyword": qe.PayloadSchemaType.Keyword,
}


# qdrant-edge-py 0.9.0 turns MatchValue(True) into MatchValue(1), so no filter can match a
# boolean payload value. Each boolean-indexed key is therefore mirrored as 0/1 under
# BOOL_MIRROR_PREFIX + key (integer-indexed); filters use the mirror, reads hide it.
BOOL_MIRROR_PREFIX = "_ec_bool_"


def _condition(cond: Condition) -> qe.FieldCondition:
    if isinstance(cond, FieldEquals):
        if isinstance(cond.value, bool):
            return qe.FieldCondition(key=BOOL_MIRROR_PREFIX + cond.key, match=qe.MatchValue(int(cond.value)))
        return qe.FieldCondition(key=cond.key, match=qe.MatchValue(cond.value))
    if isinstance(cond, FieldMissing):
        return qe.FieldCondition(key=cond.key, is_empty=True)
    # Integer bounds as floats: exact below 2**53, far beyond any ingest sequence number.
    return qe.FieldCondition(key=cond.key, range=qe.RangeFloat(
        gt=float(cond.gt) if cond.gt is not None else None, lte=float(cond.lte) if cond.lte is not None else None))


def _filter(flt: PointFilter | None) -> qe.Filter | None:
    if flt is None or (not flt.must and not flt.must_not):
        return None
    return qe.Filter(
        must=[_condition(c) for c in flt.must] or None,
        must_not=[_condition(c) for c in flt.must_not] or None,
    )


def _with_mirrors(payload: dict[str, Any], bool_keys: frozenset[str]) -> dict[str, Any]:
    mirrors = {BOOL_MIRROR_PREFIX + k: int(v) for k, v in payload.items() if k in bool_keys and isinstance(v, bool)}
    return {**payload, **mirrors} if mirrors else payload


def _payload_selector(with_payload: bool | Sequence[str]) -> Any:
    if isinstance(with_payload, bool):
        return with_payload
    return qe.PayloadSelector.Include(list(with_payload))


def _vector(raw: Any) -> np.ndarray | None:
    if raw is None:
        return None
    if isinstance(raw, dict):  # named vectors: ours is the default, unnamed one
        raw = raw.get("")
    return np.asarray(raw, dtype=np.float32)


def _point(rec: Any, with_vectors: bool) -> StoredPoint:
    return StoredPoint(
        id=str(rec.id),
        payload={k: v for k, v in (rec.payload or {}).items() if not k.startswith(BOOL_MIRROR_PREFIX)},
        vector=_vector(rec.vector) if with_vectors else None,
    )


@contextlib.contextmanager
def _space_errors(path: Path) -> Iterator[None]:
    """Out of space inside the engine (a plain Exception from the binding) as RESOURCE_EXHAUSTED."""
    try:
        yield
    except Exception as exc:
        err = space_error(exc, path)
        if err is None or err is exc:
            raise
        raise err from exc


class EdgeStore:
    """A collection stored in one ``EdgeShard``.

    Args:
        shard: The open shard.
        path: Its directory.
        sync: Make every acknowledged write durable before it returns (``durability=fsync``).
        reserve_bytes: Refuse writes while the disk has less free (``min_free_mb``).
    """

    def __init__(self, shard: qe.EdgeShard, path: Path, *, sync: bool = False, reserve_bytes: int = 0) -> None:
        self._shard = shard
        self.path = path
        self.sync = sync
        self.reserve_bytes = reserve_bytes
        params = shard_vector_params(path)
        self.dim = params[0]
        self.metric: Metric = params[1]
        self._bool_keys = frozenset(
            key for key, info in shard.info().payload_schema.items() if info.data_type == qe.PayloadSchemaType.Bool
        )
        self._wal = DirectorySync(path / WAL_DIR)
        self._flushed_at = time.monotonic()

    def _update(self, op: Any, *, acknowledged: bool = True) -> None:
        """Apply an update operation (checked for space first); an acknowledged write is made durable if ``sync``.

        Label writes (``set_fields``, ``delete_fields``) are not synced one by one: a run's
        write-back lost to a power loss is redone by the catch-up every start performs.
        """
        check_free_space(self.path, self.reserve_bytes)
        with _space_errors(self.path):
            self._shard.update(op)
            if self.sync and acknowledged:
                self._make_durable()

    def _make_durable(self) -> None:
        """Sync the WAL (the update is in it); a full flush when one is due or the WAL is not as expected."""
        now = time.monotonic()
        if now - self._flushed_at < FULL_FLUSH_EVERY_S and self._wal.sync():
            return
        self._shard.flush()
        self._flushed_at = now

    def flush(self) -> None:
        """Sync the WAL and the segments to disk."""
        with _space_errors(self.path):
            self._shard.flush()

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict[str, Any]], *,
               before_write: Callable[[], None] | None = None) -> None:
        """Upsert in one update call: the WAL makes it durable and all-or-nothing."""
        # UUID objects, not strings: the binding parses string ids several times slower.
        points = [
            qe.Point(id=uuid.UUID(pid), vector=vec, payload=_with_mirrors(payload, self._bool_keys))
            for pid, vec, payload in zip(ids, vectors.tolist(), payloads)
        ]
        op = qe.UpdateOperation.upsert_points(points)
        if before_write is not None:
            before_write()
        self._update(op)

    def delete(self, ids: Sequence[str]) -> None:
        """Delete points by id."""
        if ids:
            self._update(qe.UpdateOperation.delete_points(list(ids)))

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False,
                 with_payload: bool | Sequence[str] = True) -> list[StoredPoint]:
        """Existing points among ``ids``."""
        if not ids:
            return []
        recs = self._shard.retrieve(list(ids), with_payload=_payload_selector(with_payload), with_vector=with_vectors)
        return [_point(r, with_vectors) for r in recs]

    def count(self, flt: PointFilter | None = None) -> int:
        """Exact count."""
        return int(self._shard.count(qe.CountRequest(exact=True, filter=_filter(flt))))

    def scroll(
        self, *, limit: int, offset: str | None = None, flt: PointFilter | None = None,
        with_vectors: bool = False, with_payload: bool | Sequence[str] = True,
    ) -> tuple[list[StoredPoint], str | None]:
        """One page in id order."""
        recs, nxt = self._shard.scroll(
            qe.ScrollRequest(
                offset=uuid.UUID(offset) if offset else None, limit=limit, filter=_filter(flt),
                with_payload=_payload_selector(with_payload), with_vector=with_vectors,
            )
        )
        return [_point(r, with_vectors) for r in recs], (str(nxt) if nxt is not None else None)

    def scroll_by(self, key: str, *, limit: int, flt: PointFilter | None = None,
                  descending: bool = False) -> list[StoredPoint]:
        """Up to ``limit`` points ordered by the integer payload ``key`` (the shard's ordered scroll)."""
        recs, _ = self._shard.scroll(
            qe.ScrollRequest(limit=limit, filter=_filter(flt), with_payload=True, with_vector=False,
                             order_by=qe.OrderBy(key, qe.Direction.Desc if descending else qe.Direction.Asc))
        )
        return [_point(r, False) for r in recs]

    def iter_vectors(self, *, page_size: int, flt: PointFilter | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
        """All matching vectors, page by page (bounded memory)."""
        offset: str | None = None
        while True:
            recs, nxt = self._shard.scroll(
                qe.ScrollRequest(
                    offset=uuid.UUID(offset) if offset else None, limit=page_size,
                    filter=_filter(flt), with_payload=False, with_vector=True,
                )
            )
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
        with _space_errors(self.path):
            for pid, fields in updates:
                try:
                    self._shard.update(qe.UpdateOperation.set_payload([pid], _with_mirrors(fields, self._bool_keys)))
                except Exception as exc:  # the binding raises plain Exception
                    if "No point with id" not in str(exc):
                        raise

    def delete_fields(self, ids: Sequence[str], keys: Sequence[str]) -> None:
        """Remove payload keys from existing points."""
        if ids:
            self._update(
                qe.UpdateOperation.delete_payload_by_filter(
                    qe.Filter(must=[qe.HasIdCondition({uuid.UUID(i) for i in ids})]),
                    [*keys, *(BOOL_MIRROR_PREFIX + k for k in keys if k in self._bool_keys)],
                ),
                acknowledged=False,
            )

    @staticmethod
    def _nearest(query: list[float], limit: int, flt: PointFilter | None) -> qe.QueryRequest:
        return qe.QueryRequest(limit=limit, query=qe.Query.Nearest(query), filter=_filter(flt), with_payload=True,
                               with_vector=False)

    def search(self, vector: np.ndarray, *, limit: int, flt: PointFilter | None = None) -> list[Hit]:
        """Exact nearest neighbours (Edge does a full scan below its indexing threshold)."""
        hits = self._shard.query(self._nearest(np.asarray(vector, dtype=np.float32).tolist(), limit, flt))
        return [(_point(h, False), float(h.score)) for h in hits]

    def search_groups(self, vector: np.ndarray, *, key: str, groups: int, group_size: int,
                      flt: PointFilter | None = None) -> list[HitGroup]:
        """Hits grouped by ``key`` (Edge has no group-by query: :func:`~.grouping.grouped_search`)."""
        query = np.asarray(vector, dtype=np.float32).tolist()

        def each(values: Sequence[Any], limit: int) -> list[list[Hit]]:
            if not values:
                return []
            batch = self._shard.query_batch(qe.QueryBatchRequest(
                [self._nearest(query, limit, narrow(flt, FieldEquals(key, v))) for v in values]))
            return [[(_point(h, False), float(h.score)) for h in hits] for hits in batch]

        def values() -> list[Any]:
            # The index's values, counts approximate: ~25x cheaper than exact counts, and a value
            # whose points are all deleted only costs an empty query.
            resp = self._shard.facet(qe.FacetRequest(key=key, limit=1_000_000, exact=False, filter=_filter(flt)))
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
        resp = self._shard.facet(qe.FacetRequest(key=key, limit=1_000_000, exact=True, filter=_filter(flt)))
        return {hit.value: int(hit.count) for hit in resp.hits}

    def create_indexes(self, indexed: dict[str, str]) -> None:
        """Create the payload indexes the shard does not have yet (a bool one with its 0/1 mirror).

        A bool index added to a shard that holds points filters only points written after it
        (their mirrors); the service adds only integer ones to existing shards.
        """
        have = set(self._shard.info().payload_schema)
        for key, kind in indexed.items():
            if key not in have:
                for op in _index_ops(key, kind):
                    self._update(op)
        self._bool_keys = self._bool_keys | {k for k, kind in indexed.items() if kind == "bool"}

    def close(self) -> None:
        """Flush and close the shard (a flush that fails on a full disk is logged: the WAL has the writes)."""
        try:
            self.flush()
        except Exception:
            logger.exception("flushing shard %s at close failed", self.path)
        self._shard.close()


def _index_ops(key: str, kind: str) -> list[Any]:
    """The update operations that index ``key`` (a bool key also gets its 0/1 mirror)."""
    ops = [qe.UpdateOperation.create_field_index(key, _INDEX_TYPES[kind])]
    if kind == "bool":
        ops.append(qe.UpdateOperation.create_field_index(BOOL_MIRROR_PREFIX + key, _INDEX_TYPES["integer"]))
    return ops


def shard_vector_params(path: Path) -> tuple[int, Metric]:
    """Dimension and metric recorded in a shard's ``edge_config.json``."""
    import json

    cfg = json.loads((path / "edge_config.json").read_text())
    params = cfg["vectors"][""]
    distance = str(params["distance"]).lower()
    return int(params["size"]), ("euclid" if distance.startswith("euclid") else "cosine")


class EdgeStoreFactory:
    """Shards under ``<root>/<name>``; the server process owns every shard it opens."""

    backend = "edge"
    can_attach = False  # an embedded shard is always the service's own

    def __init__(self, root: Path, *, sync: bool = False, reserve_bytes: int = 0) -> None:
        self.root = root
        self.sync = sync
        self.reserve_bytes = reserve_bytes

    def native_name(self, name: str) -> str:
        """The shard's directory name (the collection's own name)."""
        return name

    def attach(self, native_name: str, vector_name: str = "") -> ForeignStore:
        """Refused: the embedded store holds only collections the service created."""
        raise FailedPrecondition("attaching an existing Qdrant collection needs store=qdrant "
                                 "(this server runs the embedded Qdrant Edge store)")

    def close(self) -> None:
        """Nothing to release: each store closes its own shard."""

    def create(self, name: str, *, dim: int, metric: Metric, indexed: dict[str, str]) -> EdgeStore:
        """Create a shard and its payload indexes."""
        path = self.root / name
        if path.exists():
            shutil.rmtree(path)  # leftovers of a create that crashed before it was recorded
        self.root.mkdir(parents=True, exist_ok=True)
        check_free_space(self.root, self.reserve_bytes)  # the engine mmaps what it creates: no SIGBUS
        cfg = qe.EdgeConfig(vectors={"": qe.EdgeVectorParams(size=dim, distance=_DISTANCES[metric])})
        shard = None
        try:
            with _space_errors(path):
                shard = qe.EdgeShard.create(str(path), cfg)
                for key, kind in indexed.items():
                    for op in _index_ops(key, kind):
                        shard.update(op)
                if self.sync:
                    shard.flush()
        except BaseException:
            if shard is not None:
                with contextlib.suppress(Exception):
                    shard.close()
            shutil.rmtree(path, ignore_errors=True)
            raise
        return EdgeStore(shard, path, sync=self.sync, reserve_bytes=self.reserve_bytes)

    def open(self, name: str) -> EdgeStore:
        """Open an existing shard; a shard held by another process is a clear error."""
        path = self.root / name
        if self.reserve_bytes:  # loading rewrites the shard's data into new mapped files (~its size): no SIGBUS
            check_free_space(self.root, self.reserve_bytes + allocated_bytes(path),
                             "the reserve (min_free_mb) plus the shard's own size, which loading it needs")
        try:
            shard = qe.EdgeShard.load(str(path))
        except Exception as exc:  # the binding raises plain Exception
            err = space_error(exc, path)
            if err is not None:
                raise err from exc
            if "WouldBlock" in str(exc) or "WAL" in str(exc):
                raise FailedPrecondition(
                    f"shard {str(path)!r} is open in another process (is another embcluster "
                    f"server running on this data directory?): {exc}"
                ) from exc
            raise
        return EdgeStore(shard, path, sync=self.sync, reserve_bytes=self.reserve_bytes)

    def drop(self, name: str) -> None:
        """Remove the shard directory."""
        shutil.rmtree(self.root / name, ignore_errors=True)
