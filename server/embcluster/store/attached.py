"""A Qdrant collection the service did not create, seen through the service's payload contract.

:class:`AttachedStore` wraps the store of a foreign collection so the pipeline can treat it
like its own:

* the reserved fields (``cluster_id`` …) are stored under ``<prefix><name>``: keys in
  ``set_fields``/``delete_fields``, filters, payload selectors and ``value_counts`` are renamed
  on the way in, and read payloads renamed back;
* every other key of a point belongs to its owner: it is never written, and reads present
  it under ``meta`` (how the service shows caller metadata), so a foreign ``cluster_id`` can
  never be mistaken for ours when a prefix is in use;
* points cannot be upserted or deleted through the service (they are the owner's data).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, ContextManager, Iterator, Sequence

import numpy as np

from ..errors import FailedPrecondition
from .base import (
    Condition,
    FieldEquals,
    FieldMissing,
    FieldRange,
    Hit,
    HitGroup,
    IndexState,
    PointFilter,
    PointId,
    StoredPoint,
    VectorStore,
    select_payload,
)

__all__ = ["AttachedStore", "taken_keys"]

logger = logging.getLogger(__name__)


def taken_keys(store: VectorStore, keys: Sequence[str]) -> list[str]:
    """The ``keys`` that at least one point of ``store`` already carries (non-empty)."""
    return [k for k in keys if store.count(PointFilter(must_not=(FieldMissing(k),)))]


class AttachedStore:
    """``inner`` with the reserved ``fields`` stored under ``prefix`` and the rest read-only.

    Args:
        inner: The foreign collection's store.
        fields: The names the service writes (the five reserved fields).
        prefix: Prefix of those names in the collection ("" = the names themselves).
    """

    def __init__(self, inner: VectorStore, fields: Sequence[str], prefix: str = "") -> None:
        self.inner = inner
        self.prefix = prefix
        self.dim = inner.dim
        self.metric = inner.metric
        self._to_stored = {f: prefix + f for f in fields}
        self._from_stored = {prefix + f: f for f in fields}

    # --------------------------------------------------------------- renaming

    def _key(self, key: str) -> str:
        return self._to_stored.get(key, key)

    def _cond(self, cond: Condition) -> Condition:
        if isinstance(cond, FieldEquals):
            return FieldEquals(self._key(cond.key), cond.value)
        if isinstance(cond, FieldMissing):
            return FieldMissing(self._key(cond.key))
        return FieldRange(self._key(cond.key), cond.gt, cond.lte)

    def _filter(self, flt: PointFilter | None) -> PointFilter | None:
        if flt is None:
            return None
        return PointFilter(must=tuple(self._cond(c) for c in flt.must),
                           must_not=tuple(self._cond(c) for c in flt.must_not))

    def _present(self, point: StoredPoint) -> StoredPoint:
        ours: dict[str, Any] = {}
        theirs: dict[str, Any] = {}
        for k, v in point.payload.items():
            if k in self._from_stored:
                ours[self._from_stored[k]] = v
            else:
                theirs[k] = v
        point.payload = {**ours, "meta": theirs} if theirs or ours else {}
        return point

    def _selector(self, with_payload: bool | Sequence[str]) -> bool | Sequence[str]:
        if isinstance(with_payload, bool):
            return with_payload
        if all(k in self._to_stored for k in with_payload):
            return [self._to_stored[k] for k in with_payload]
        return True  # e.g. "meta": the owner's keys are not known in advance

    # --------------------------------------------------------------- VectorStore

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict[str, Any]], *,
               before_write: Callable[[], None] | None = None) -> None:
        """Refused: the points of an attached collection are its owner's."""
        raise FailedPrecondition("points of an attached collection are written with your own Qdrant client, "
                                 "not through embcluster")

    def delete(self, ids: Sequence[str]) -> None:
        """Refused (see :meth:`upsert`)."""
        raise FailedPrecondition("points of an attached collection are deleted with your own Qdrant client, "
                                 "not through embcluster")

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False,
                 with_payload: bool | Sequence[str] = True) -> list[StoredPoint]:
        """Existing points, payloads presented."""
        points = [self._present(p) for p in self.inner.retrieve(ids, with_vectors=with_vectors,
                                                                with_payload=self._selector(with_payload))]
        return select_payload(points, with_payload)

    def count(self, flt: PointFilter | None = None) -> int:
        """Exact count."""
        return self.inner.count(self._filter(flt))

    def scroll(
        self, *, limit: int, offset: str | None = None, flt: PointFilter | None = None,
        with_vectors: bool = False, with_payload: bool | Sequence[str] = True,
    ) -> tuple[list[StoredPoint], str | None]:
        """One page, payloads presented."""
        points, nxt = self.inner.scroll(limit=limit, offset=offset, flt=self._filter(flt), with_vectors=with_vectors,
                                        with_payload=self._selector(with_payload))
        return select_payload([self._present(p) for p in points], with_payload), nxt

    def scroll_by(self, key: str, *, limit: int, flt: PointFilter | None = None,
                  descending: bool = False) -> list[StoredPoint]:
        """Ordered by a (renamed) integer key, payloads presented."""
        return [self._present(p) for p in self.inner.scroll_by(self._key(key), limit=limit, flt=self._filter(flt),
                                                                descending=descending)]

    def iter_vectors(self, *, page_size: int, flt: PointFilter | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
        """All matching vectors."""
        return self.inner.iter_vectors(page_size=page_size, flt=self._filter(flt))

    def set_fields(self, updates: Sequence[tuple[PointId, dict[str, Any]]]) -> None:
        """Write reserved fields only (under the prefix); any other key is a programming error."""
        renamed = []
        for pid, fields in updates:
            foreign = [k for k in fields if k not in self._to_stored]
            if foreign:
                raise ValueError(f"attached collections take only the reserved fields, not {foreign}")
            renamed.append((pid, {self._to_stored[k]: v for k, v in fields.items()}))
        self.inner.set_fields(renamed)

    def delete_fields(self, ids: Sequence[str], keys: Sequence[str]) -> None:
        """Remove reserved fields (under the prefix); other keys are never removed."""
        foreign = [k for k in keys if k not in self._to_stored]
        if foreign:
            raise ValueError(f"attached collections lose only the reserved fields, not {foreign}")
        self.inner.delete_fields(ids, [self._to_stored[k] for k in keys])

    def search(self, vector: np.ndarray, *, limit: int, flt: PointFilter | None = None, ef: int = 0,
               exact: bool = False) -> list[Hit]:
        """Nearest points, payloads presented."""
        return [(self._present(p), s)
                for p, s in self.inner.search(vector, limit=limit, flt=self._filter(flt), ef=ef, exact=exact)]

    def search_groups(self, vector: np.ndarray, *, key: str, groups: int, group_size: int,
                      flt: PointFilter | None = None) -> list[HitGroup]:
        """Hits grouped by a (renamed) key, payloads presented."""
        found = self.inner.search_groups(vector, key=self._key(key), groups=groups, group_size=group_size,
                                         flt=self._filter(flt))
        return [(value, [(self._present(p), s) for p, s in hits]) for value, hits in found]

    def value_counts(self, key: str, flt: PointFilter | None = None) -> dict[Any, int]:
        """Counts per value of a (renamed) key."""
        return self.inner.value_counts(self._key(key), self._filter(flt))

    def create_indexes(self, indexed: dict[str, str]) -> None:
        """Indexes on (renamed) keys of the owner's collection."""
        self.inner.create_indexes({self._key(k): v for k, v in indexed.items()})

    def index_state(self) -> IndexState:
        """The owner's collection's index (its server builds it)."""
        return self.inner.index_state()

    def pause_indexing(self) -> ContextManager[None]:
        """As the inner store (a Qdrant server indexes on its own: nothing to pause)."""
        return self.inner.pause_indexing()

    def close(self) -> None:
        """Close the inner store (never drops the collection)."""
        self.inner.close()
