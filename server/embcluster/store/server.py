"""Qdrant through ``qdrant-client``: a Qdrant server (gRPC, ``prefer_grpc=True``) or the client's local mode.

One :class:`QdrantStoreFactory` holds one client for the whole service. Collections the
service creates are named ``<prefix><name>`` and use the default (unnamed) vector; a
collection the service attaches to (:meth:`QdrantStoreFactory.attach`) keeps its name and may
use a named vector.

Point ids: Qdrant takes unsigned ints and UUIDs. The rest of the service speaks UUID strings
(the vector log stores 16-byte ids), so an int id ``n`` is carried as the *tagged* UUID
:func:`int_point_id` (high 64 bits = :data:`INT_ID_TAG`, low 64 bits = ``n``) and converted at
this boundary in both directions; :func:`public_point_id` shows it to users as ``"n"``.

qdrant-client's local mode (``:memory:`` or a directory) is a pure-Python stand-in for
tests; it is not thread-safe, so every call in that mode is serialised by one lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
import warnings
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from ..errors import AlreadyExists, NotFound, Unavailable
from .base import (Condition, FieldEquals, FieldMissing, Hit, HitGroup, IndexState, Metric, PointFilter, PointId,
                   StoredPoint, VectorIndexSettings, select_payload)
from .ids import INT_ID_TAG, int_point_id, parse_public_point_id, public_point_id
from .ids import tagged_int as _tagged_int
from .qdrant_connection import QdrantConnection
from .qdrant_connection import short_error as _short_error
from .qdrant_config import (
    hnsw_config,
    index_state,
    optimizers_config,
    quantization_config,
    search_params,
    vector_params,
)

__all__ = [
    "INT_ID_TAG",
    "int_point_id",
    "public_point_id",
    "parse_public_point_id",
    "QdrantConnection",
    "QdrantStore",
    "QdrantStoreFactory",
]

logger = logging.getLogger(__name__)

_DISTANCES = {"cosine": qm.Distance.COSINE, "euclid": qm.Distance.EUCLID}
_INDEX_TYPES = {
    "integer": qm.PayloadSchemaType.INTEGER,
    "bool": qm.PayloadSchemaType.BOOL,
    "keyword": qm.PayloadSchemaType.KEYWORD,
}
# Distinct values one facet request may return. The server keeps the ``limit`` largest values and
# drops the rest silently (its default is 10): a reply that reaches the limit may be truncated,
# so value_counts then counts by scroll instead.
FACET_LIMIT = 1_000_000


def _to_qdrant(pid: PointId | int) -> int | str:
    if isinstance(pid, int):
        return pid
    u = pid if isinstance(pid, uuid.UUID) else uuid.UUID(pid)
    n = _tagged_int(u)
    return n if n is not None else str(u)


def _from_qdrant(raw: int | str) -> str:
    return int_point_id(raw) if isinstance(raw, int) else str(uuid.UUID(raw))


def _condition(cond: Condition) -> qm.Condition:
    if isinstance(cond, FieldEquals):
        return qm.FieldCondition(key=cond.key, match=qm.MatchValue(value=cond.value))
    if isinstance(cond, FieldMissing):
        return qm.IsEmptyCondition(is_empty=qm.PayloadField(key=cond.key))
    return qm.FieldCondition(key=cond.key, range=qm.Range(gt=cond.gt, lte=cond.lte))


def _filter(flt: PointFilter | None) -> qm.Filter | None:
    if flt is None or (not flt.must and not flt.must_not):
        return None
    return qm.Filter(
        must=[_condition(c) for c in flt.must] or None,
        must_not=[_condition(c) for c in flt.must_not] or None,
    )


def _selector(with_payload: bool | Sequence[str]) -> bool | list[str]:
    return with_payload if isinstance(with_payload, bool) else list(with_payload)


def _ids_filter(ids: Sequence[PointId]) -> qm.Filter:
    return qm.Filter(must=[qm.HasIdCondition(has_id=[_to_qdrant(i) for i in ids])])


def _is_unreachable(exc: BaseException) -> bool:
    """A connection-level failure (gRPC UNAVAILABLE / DEADLINE_EXCEEDED, or an HTTP transport error)."""
    code = getattr(exc, "code", None)
    if callable(code) and getattr(code(), "name", "") in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return True
    return type(exc).__name__ in ("ResponseHandlingException", "ConnectError", "ConnectTimeout", "ReadTimeout")


def _is_missing_point(exc: BaseException) -> bool:
    """A write that named a point the collection does not hold (server: NOT_FOUND / 404; local: KeyError)."""
    if isinstance(exc, KeyError):
        return True
    code = getattr(exc, "code", None)
    if callable(code) and getattr(code(), "name", "") == "NOT_FOUND":
        return True
    if getattr(exc, "status_code", None) == 404:
        return True
    return "No point with id" in str(exc)


class QdrantStore:
    """One Qdrant collection (``qdrant_name``), vectors under ``vector_name`` ("" = the unnamed one)."""

    def __init__(self, client: QdrantClient, qdrant_name: str, *, dim: int, metric: Metric,
                 vector_name: str = "", lock: threading.RLock | None = None, where: str = "Qdrant",
                 index: VectorIndexSettings = VectorIndexSettings()) -> None:
        self._client = client
        # Local mode (``lock`` given) searches exactly and warns about search params: none sent there.
        self._quantized = index.quantized
        self._search_params = search_params(index.ef, quantized=index.quantized) if lock is None else None
        self.qdrant_name = qdrant_name
        self.dim = dim
        self.metric: Metric = metric
        self.vector_name = vector_name
        self.where = where
        self.facet_limit = FACET_LIMIT
        self._mutex: Any = lock if lock is not None else contextlib.nullcontext()

    @contextlib.contextmanager
    def _call(self) -> Iterator[None]:
        """Serialises calls in local mode; a lost connection becomes :class:`Unavailable`."""
        with self._mutex:
            try:
                yield
            except Exception as exc:
                if _is_unreachable(exc):
                    raise Unavailable(f"Qdrant at {self.where} is unavailable: {_short_error(exc)[:300]}") from exc
                raise

    # --------------------------------------------------------------- helpers

    def _vector_in(self, vec: list[float]) -> Any:
        return {self.vector_name: vec} if self.vector_name else vec

    def _vector_out(self, raw: Any) -> np.ndarray | None:
        if raw is None:
            return None
        if isinstance(raw, dict):
            raw = raw.get(self.vector_name)
            if raw is None:
                return None
        return self._unit(np.asarray(raw, dtype=np.float32))

    def _unit(self, x: np.ndarray) -> np.ndarray:
        """Cosine vectors as unit vectors, as the pipeline assumes. The server normalises them
        on upsert; qdrant-client's local mode returns them as given once reloaded from disk."""
        if self.metric != "cosine":
            return x
        norms = np.linalg.norm(x, axis=-1, keepdims=True)
        return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)

    def _with_vectors(self, with_vectors: bool) -> bool | list[str]:
        if with_vectors and self.vector_name:
            return [self.vector_name]
        return with_vectors

    def _point(self, rec: Any, with_vectors: bool) -> StoredPoint:
        return StoredPoint(
            id=_from_qdrant(rec.id), payload=dict(rec.payload or {}),
            vector=self._vector_out(rec.vector) if with_vectors else None,
        )

    # --------------------------------------------------------------- VectorStore

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict[str, Any]], *,
               before_write: Callable[[], None] | None = None) -> None:
        """Upsert one batch and wait until it is applied."""
        if not len(ids):
            if before_write is not None:
                before_write()
            return
        rows = np.asarray(vectors, dtype=np.float32).tolist()
        batch = qm.Batch(
            ids=[_to_qdrant(i) for i in ids],
            vectors={self.vector_name: rows} if self.vector_name else rows,
            payloads=list(payloads),
        )
        if before_write is not None:
            before_write()
        with self._call():
            self._client.upsert(self.qdrant_name, points=batch, wait=True)

    def delete(self, ids: Sequence[str]) -> None:
        """Delete points by id (missing ids are ignored)."""
        if ids:
            with self._call():
                self._client.delete(self.qdrant_name, points_selector=qm.PointIdsList(
                    points=[_to_qdrant(i) for i in ids]), wait=True)

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False,
                 with_payload: bool | Sequence[str] = True) -> list[StoredPoint]:
        """Existing points among ``ids``."""
        if not ids:
            return []
        with self._call():
            recs = self._client.retrieve(self.qdrant_name, ids=[_to_qdrant(i) for i in ids],
                                         with_payload=_selector(with_payload),
                                         with_vectors=self._with_vectors(with_vectors))
        return select_payload([self._point(r, with_vectors) for r in recs], with_payload)

    def count(self, flt: PointFilter | None = None) -> int:
        """Exact count."""
        with self._call():
            return int(self._client.count(self.qdrant_name, count_filter=_filter(flt), exact=True).count)

    def scroll(
        self, *, limit: int, offset: str | None = None, flt: PointFilter | None = None,
        with_vectors: bool = False, with_payload: bool | Sequence[str] = True,
    ) -> tuple[list[StoredPoint], str | None]:
        """One page in id order and the next page's offset."""
        with self._call():
            recs, nxt = self._client.scroll(
                self.qdrant_name, scroll_filter=_filter(flt), limit=limit,
                offset=_to_qdrant(offset) if offset else None, with_payload=_selector(with_payload),
                with_vectors=self._with_vectors(with_vectors),
            )
        points = select_payload([self._point(r, with_vectors) for r in recs], with_payload)
        return points, (_from_qdrant(nxt) if nxt is not None else None)  # type: ignore[arg-type]

    def scroll_by(self, key: str, *, limit: int, flt: PointFilter | None = None,
                  descending: bool = False) -> list[StoredPoint]:
        """Up to ``limit`` points ordered by the integer payload ``key`` (Qdrant's ``order_by`` scroll)."""
        with self._call():
            recs, _ = self._client.scroll(
                self.qdrant_name, scroll_filter=_filter(flt), limit=limit, with_payload=True, with_vectors=False,
                order_by=qm.OrderBy(key=key, direction=qm.Direction.DESC if descending else qm.Direction.ASC),
            )
        return [self._point(r, False) for r in recs]

    def iter_vectors(self, *, page_size: int, flt: PointFilter | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
        """All matching vectors, page by page, as ``(ids, float32 matrix)``."""
        offset: str | None = None
        while True:
            points, offset = self.scroll(limit=page_size, offset=offset, flt=flt, with_vectors=True,
                                         with_payload=False)
            points = [p for p in points if p.vector is not None]  # a foreign point may lack our vector
            if points:
                yield [p.id for p in points], np.stack([p.vector for p in points]).astype(  # type: ignore[misc]
                    np.float32, copy=False).reshape(len(points), self.dim)
            if offset is None:
                return

    def set_fields(self, updates: Sequence[tuple[PointId, dict[str, Any]]]) -> None:
        """Merge fields with batched ``SetPayload`` operations, applied in one request.

        Points with identical field dicts share one operation; a point's keys are always in one
        operation. Points deleted meanwhile are skipped: Qdrant answers NOT_FOUND for a missing
        id (after applying the rest of that operation), so the batch is redone, idempotently,
        over the ids that still exist.
        """
        groups: dict[str, tuple[dict[str, Any], list[int | str]]] = {}
        for pid, fields in updates:
            key = json.dumps(fields, sort_keys=True)
            groups.setdefault(key, (fields, []))[1].append(_to_qdrant(pid))
        if not groups:
            return
        try:
            self._set_payload_batch(list(groups.values()))
        except Exception as exc:
            if not _is_missing_point(exc):
                raise
            with self._call():
                wanted = [i for _, ids in groups.values() for i in ids]
                found = self._client.retrieve(self.qdrant_name, ids=wanted, with_payload=False, with_vectors=False)
            existing = {r.id for r in found}
            logger.debug("set_fields on %s: %d of %d points no longer exist", self.qdrant_name,
                         len(wanted) - len(existing), len(wanted))
            kept = [(fields, [i for i in ids if i in existing]) for fields, ids in groups.values()]
            self._set_payload_batch([(fields, ids) for fields, ids in kept if ids])

    def _set_payload_batch(self, groups: list[tuple[dict[str, Any], list[int | str]]]) -> None:
        if not groups:
            return
        ops: list[qm.UpdateOperation] = [
            qm.SetPayloadOperation(set_payload=qm.SetPayload(payload=fields, points=ids))  # type: ignore[arg-type]
            for fields, ids in groups
        ]
        with self._call():
            self._client.batch_update_points(self.qdrant_name, update_operations=ops, wait=True)

    def delete_fields(self, ids: Sequence[str], keys: Sequence[str]) -> None:
        """Remove payload keys from existing points."""
        if ids and keys:
            with self._call():
                self._client.delete_payload(self.qdrant_name, keys=list(keys), points=_ids_filter(ids), wait=True)

    def search(self, vector: np.ndarray, *, limit: int, flt: PointFilter | None = None, ef: int = 0,
               exact: bool = False) -> list[Hit]:
        """Nearest points: cosine similarity, or L2 distance for Euclid (the server's HNSW or full scan).

        ``ef`` (0: the collection's) or ``exact`` for this search; local mode always scans exactly.
        """
        params = self._search_params
        if params is not None and (ef or exact):
            params = search_params(ef, exact, self._quantized)
        with self._call():
            resp = self._client.query_points(
                self.qdrant_name, query=np.asarray(vector, dtype=np.float32).tolist(),
                using=self.vector_name or None, query_filter=_filter(flt), limit=limit, with_payload=True,
                with_vectors=False, search_params=params,
            )
        return [(self._point(h, False), float(h.score)) for h in resp.points]

    def search_groups(self, vector: np.ndarray, *, key: str, groups: int, group_size: int,
                      flt: PointFilter | None = None) -> list[HitGroup]:
        """Hits grouped by ``key``: Qdrant's own group-by query (``query_points_groups``)."""
        with self._call():
            resp = self._client.query_points_groups(
                self.qdrant_name, query=np.asarray(vector, dtype=np.float32).tolist(), group_by=key,
                using=self.vector_name or None, query_filter=_filter(flt), limit=groups, group_size=group_size,
                with_payload=True, with_vectors=False, search_params=self._search_params,
            )
        return [(g.id, [(self._point(h, False), float(h.score)) for h in g.hits]) for g in resp.groups]

    def value_counts(self, key: str, flt: PointFilter | None = None) -> dict[Any, int]:
        """Exact count per value of ``key`` (the facet API; a scroll where it is not available)."""
        try:
            with self._call():
                resp = self._client.facet(self.qdrant_name, key=key, facet_filter=_filter(flt),
                                          limit=self.facet_limit, exact=True)
            if len(resp.hits) < self.facet_limit:
                return {hit.value: int(hit.count) for hit in resp.hits}
            logger.info("facet on %s.%s returned %d values, its limit: counting by scroll", self.qdrant_name,
                        key, len(resp.hits))
        except Exception as exc:  # e.g. a server without an index on ``key``
            logger.debug("facet on %s.%s failed (%s): counting by scroll", self.qdrant_name, key, exc)
        counts: dict[Any, int] = {}
        offset: str | None = None
        while True:
            points, offset = self.scroll(limit=1024, offset=offset, flt=flt, with_payload=[key])
            for p in points:
                value = p.payload.get(key)
                if isinstance(value, (bool, int, str)):
                    counts[value] = counts.get(value, 0) + 1
            if offset is None:
                return counts

    def create_indexes(self, indexed: dict[str, str]) -> None:
        """Create payload indexes (``integer|bool|keyword``); existing ones are kept."""
        with self._call(), warnings.catch_warnings():
            # local mode warns that payload indexes have no effect there; the server needs them
            warnings.filterwarnings("ignore", message="Payload indexes have no effect", category=UserWarning)
            for key, kind in indexed.items():
                self._client.create_payload_index(self.qdrant_name, field_name=key, field_schema=_INDEX_TYPES[kind],
                                                  wait=True)

    def index_state(self) -> IndexState:
        """The server's own account of its HNSW index (it builds it in the background)."""
        with self._call():
            return index_state(self._client.get_collection(self.qdrant_name))

    def pause_indexing(self) -> contextlib.AbstractContextManager[None]:
        """Nothing to pause: the server's optimizer runs beside writes."""
        return contextlib.nullcontext()

    def close(self) -> None:
        """Nothing to release: the factory owns the client."""


class QdrantStoreFactory:
    """Stores over one qdrant-client connection.

    Args:
        connection: Where Qdrant is; the connection is checked here (fails fast, naming the URL).
        prefix: Prefix of the Qdrant collections this factory creates.
        shard_number: Shards per created collection (server default when None).
        replication_factor: Replicas per shard (server default when None).
    """

    backend = "qdrant"
    can_attach = True

    def __init__(self, connection: QdrantConnection, *, prefix: str = "embcluster_",
                 shard_number: int | None = None, replication_factor: int | None = None) -> None:
        self.connection = connection
        self.prefix = prefix
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        self.client = connection.client()
        self._lock: threading.RLock | None = threading.RLock() if connection.path else None

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Serialises calls in local mode; a lost connection becomes :class:`Unavailable`."""
        with self._lock if self._lock is not None else contextlib.nullcontext():
            try:
                yield
            except Exception as exc:
                if _is_unreachable(exc):
                    raise Unavailable(f"Qdrant at {self.connection.where} is unavailable: "
                                      f"{_short_error(exc)[:300]}") from exc
                raise

    def qdrant_name(self, name: str) -> str:
        """The Qdrant collection behind service collection ``name``."""
        return self.prefix + name

    def native_name(self, name: str) -> str:
        """The Qdrant collection behind service collection ``name`` (:meth:`qdrant_name`)."""
        return self.qdrant_name(name)

    def create(self, name: str, *, dim: int, metric: Metric, indexed: dict[str, str],
               index: VectorIndexSettings = VectorIndexSettings()) -> QdrantStore:
        """Create the collection (shards/replicas from settings, HNSW from ``index``) and its payload indexes."""
        qname = self.qdrant_name(name)
        with self._guard():
            if self.client.collection_exists(qname):
                # Perhaps a create that died before it was recorded, perhaps someone's data: never
                # dropped here.
                raise AlreadyExists(
                    f"Qdrant collection {qname!r} already exists at {self.connection.where} but is not one of this "
                    "service's collections: attach it (AttachCollection), or delete it with a Qdrant client")
            self.client.create_collection(
                qname, vectors_config=qm.VectorParams(size=dim, distance=_DISTANCES[metric]),
                shard_number=self.shard_number, replication_factor=self.replication_factor,
                hnsw_config=hnsw_config(index), optimizers_config=optimizers_config(index, dim),
                quantization_config=quantization_config(index),
            )
        store = QdrantStore(self.client, qname, dim=dim, metric=metric, lock=self._lock, where=self.connection.where,
                            index=index)
        try:
            store.create_indexes(indexed)
        except BaseException:
            # Not left half-made: a later create would take it for someone else's collection.
            try:
                with self._guard():
                    self.client.delete_collection(qname)
            except Exception:
                logger.exception("removing Qdrant collection %s after its payload indexes failed", qname)
            raise
        return store

    def open(self, name: str, index: VectorIndexSettings = VectorIndexSettings()) -> QdrantStore:
        """Open a collection this factory created (``index``: ``ef`` for its searches)."""
        return self.open_qdrant(self.qdrant_name(name), index=index)

    def open_qdrant(self, qdrant_name: str, vector_name: str = "",
                    index: VectorIndexSettings = VectorIndexSettings()) -> QdrantStore:
        """Open any Qdrant collection by its own name (NOT_FOUND when missing)."""
        with self._guard():
            if not self.client.collection_exists(qdrant_name):
                raise NotFound(f"Qdrant collection {qdrant_name!r} not found at {self.connection.where}")
            info = self.client.get_collection(qdrant_name)
        dim, metric, vector_name = vector_params(info, vector_name, qdrant_name)
        return QdrantStore(self.client, qdrant_name, dim=dim, metric=metric, vector_name=vector_name, lock=self._lock,
                           where=self.connection.where, index=index)

    def attach(self, qdrant_name: str, vector_name: str = "") -> QdrantStore:
        """Open a collection the service did not create (same checks as :meth:`open_qdrant`)."""
        return self.open_qdrant(qdrant_name, vector_name)

    def drop(self, name: str) -> None:
        """Delete a collection this factory created (never an attached one)."""
        with self._guard():
            self.client.delete_collection(self.qdrant_name(name))

    def close(self) -> None:
        """Close the client."""
        self.client.close()
