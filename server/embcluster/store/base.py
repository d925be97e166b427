"""The ``VectorStore`` protocol and the backend-neutral types it speaks.

Shaped so that both Qdrant Edge (in-process shard) and a Qdrant server (qdrant-client over
gRPC) can implement it: string point ids (UUIDs), JSON payloads, simple filters (equality,
missing, integer range), paged scrolls with an opaque offset or ordered by an integer field,
nearest-neighbour search (plain or grouped by a payload field), and per-point partial payload
updates.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ContextManager, Iterator, Literal, Protocol, Sequence, Union

import numpy as np

__all__ = [
    "Metric",
    "PointId",
    "FieldEquals",
    "FieldMissing",
    "FieldRange",
    "Condition",
    "PointFilter",
    "narrow",
    "StoredPoint",
    "select_payload",
    "Hit",
    "HitGroup",
    "VectorIndexSettings",
    "IndexState",
    "VectorStore",
    "ForeignStore",
    "StoreFactory",
]

Metric = Literal["cosine", "euclid"]
# Point ids are UUIDs, as strings or as uuid.UUID objects (the fast path of bulk writes).
PointId = Union[str, uuid.UUID]


@dataclass(frozen=True)
class FieldEquals:
    """Payload ``key`` equals ``value`` (int, str or bool)."""

    key: str
    value: int | str | bool


@dataclass(frozen=True)
class FieldMissing:
    """Payload ``key`` is absent or null."""

    key: str


@dataclass(frozen=True)
class FieldRange:
    """Integer payload ``key`` within ``(gt, lte]`` (either bound None: open on that side)."""

    key: str
    gt: int | None = None
    lte: int | None = None


Condition = Union[FieldEquals, FieldMissing, FieldRange]


@dataclass(frozen=True)
class PointFilter:
    """All of ``must`` and none of ``must_not``."""

    must: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()


def narrow(flt: PointFilter | None, *conds: Condition) -> PointFilter:
    """``flt`` (None: every point) with ``conds`` added to its ``must``."""
    if flt is None:
        return PointFilter(must=conds)
    return PointFilter(must=(*flt.must, *conds), must_not=flt.must_not)


@dataclass
class StoredPoint:
    """A point as read back from the store."""

    id: str
    payload: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = None


def select_payload(points: list[StoredPoint], with_payload: bool | Sequence[str]) -> list[StoredPoint]:
    """Keep only the selected payload keys of ``points`` (a selected key a point lacks stays absent)."""
    if not isinstance(with_payload, bool):
        keep = set(with_payload)
        for p in points:
            p.payload = {k: v for k, v in p.payload.items() if k in keep}
    return points


Hit = tuple[StoredPoint, float]  # a point and the store's score (cosine similarity, or L2 distance)
HitGroup = tuple[Any, list[Hit]]  # a payload value and its best hits, best first


@dataclass(frozen=True)
class VectorIndexSettings:
    """The HNSW vector index of one collection (fixed at creation; see the README's "Vector index").

    Attributes:
        m: Edges per node of the graph (more: better recall, more memory, slower build).
        ef_construct: Candidates kept while building (more: better graph, slower build).
        ef: Candidates kept while searching (more: better recall, slower search).
        min_points: No index is built below this many points: a full scan is fast enough and exact.
        quantization: ``none`` (float32 only) or ``int8``: the graph is built and walked on
            1-byte codes of the vectors (kept in RAM, a quarter of the float32 size) and the best
            candidates are rescored on the float32 vectors (oversampling 2). Builds about twice
            as fast and searches faster at the same ``ef``, for slightly lower recall.
    """

    m: int = 16
    ef_construct: int = 100
    ef: int = 128
    min_points: int = 20_000
    quantization: str = "none"

    @property
    def quantized(self) -> bool:
        """The vectors also have int8 codes (see ``quantization``)."""
        return self.quantization == "int8"

    def to_json(self) -> dict[str, Any]:
        """JSON form (kept in the collection record); ``quantization`` only when set, so a record
        without codes stays readable by a server older than the setting."""
        data = asdict(self)
        if not self.quantized:
            del data["quantization"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "VectorIndexSettings":
        """Inverse of :meth:`to_json`; None (a record older than the index) is the defaults, and so
        is a field an older record lacks."""
        return cls(**data) if data else cls()


@dataclass(frozen=True)
class IndexState:
    """How much of a collection the vector index covers.

    Attributes:
        points: Points stored.
        indexed_points: Points in indexed segments (searched through the graph); the others are
            scanned exactly.
        building: An index build is running (in the background).
    """

    points: int
    indexed_points: int
    building: bool = False


class VectorStore(Protocol):
    """One collection's points: vectors plus JSON payload."""

    dim: int
    metric: Metric

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict[str, Any]], *,
               before_write: Callable[[], None] | None = None) -> None:
        """Insert or replace points, durably, as one operation.

        ``before_write`` is called once the batch is converted for the store and before the store
        changes (the vector log's sync finishes there, overlapped with the conversion); if it
        raises, nothing is written.
        """
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Delete points (missing ids are ignored)."""
        ...

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False,
                 with_payload: bool | Sequence[str] = True) -> list[StoredPoint]:
        """The points among ``ids`` that exist, in no particular order (payload: all, none or these keys)."""
        ...

    def count(self, flt: PointFilter | None = None) -> int:
        """Exact number of points matching ``flt``."""
        ...

    def scroll(
        self, *, limit: int, offset: str | None = None, flt: PointFilter | None = None,
        with_vectors: bool = False, with_payload: bool | Sequence[str] = True,
    ) -> tuple[list[StoredPoint], str | None]:
        """One page in id order and the offset of the next page (None at the end)."""
        ...

    def scroll_by(self, key: str, *, limit: int, flt: PointFilter | None = None,
                  descending: bool = False) -> list[StoredPoint]:
        """Up to ``limit`` points ordered by the integer payload ``key`` (points without it are left out).

        Pages by a :class:`FieldRange` on ``key`` in ``flt`` (the backends page an ordered scroll
        by value, not by offset); ``key`` needs an integer index (:meth:`create_indexes`).
        """
        ...

    def iter_vectors(self, *, page_size: int, flt: PointFilter | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
        """Every matching point's id and vector, page by page as ``(ids, float32 matrix)``."""
        ...

    def set_fields(self, updates: Sequence[tuple[PointId, dict[str, Any]]]) -> None:
        """Merge each payload dict into its point's payload; each point's keys in one write."""
        ...

    def delete_fields(self, ids: Sequence[str], keys: Sequence[str]) -> None:
        """Remove payload ``keys`` from points (missing points are ignored)."""
        ...

    def search(self, vector: np.ndarray, *, limit: int, flt: PointFilter | None = None, ef: int = 0,
               exact: bool = False) -> list[tuple[StoredPoint, float]]:
        """Nearest points with the store's score (cosine similarity, or L2 distance).

        ``ef`` (0: the collection's) is this search's candidate list in the HNSW graph; ``exact``
        scans every point instead (the reference the index is measured against). Not both.
        """
        ...

    def search_groups(self, vector: np.ndarray, *, key: str, groups: int, group_size: int,
                      flt: PointFilter | None = None) -> list[HitGroup]:
        """The best hits grouped by the value of payload ``key`` (points without it are left out).

        At most ``groups`` groups, best group (the one with the best hit) first, each with its
        ``group_size`` best hits, best first; ``key`` is an indexed integer or keyword field.
        """
        ...

    def value_counts(self, key: str, flt: PointFilter | None = None) -> dict[Any, int]:
        """Exact count of points per value of an indexed payload ``key``."""
        ...

    def create_indexes(self, indexed: dict[str, str]) -> None:
        """Create payload indexes (``integer|bool|keyword``) that do not exist yet."""
        ...

    def index_state(self) -> IndexState:
        """How much of the collection the vector index covers, and whether a build runs."""
        ...

    def pause_indexing(self) -> ContextManager[None]:
        """No vector index build runs inside (a run's write-back); one that is due starts after."""
        ...

    def close(self) -> None:
        """Release the collection's resources."""
        ...


class ForeignStore(VectorStore, Protocol):
    """A collection the service did not create, as :meth:`StoreFactory.attach` opens it."""

    vector_name: str  # the named vector clustered ("" = the unnamed one)


class StoreFactory(Protocol):
    """Creates, opens and drops the per-collection stores of one backend.

    Capabilities are declared here, not probed: ``can_attach`` says whether :meth:`attach`
    works (a Qdrant server) or refuses (the embedded store).
    """

    backend: str  # "edge" or "qdrant": recorded with each collection, checked when it is opened
    can_attach: bool  # whether a collection the service did not create can be attached

    def native_name(self, name: str) -> str:
        """The backend's own name of the store of collection ``name``."""
        ...

    def attach(self, native_name: str, vector_name: str = "") -> ForeignStore:
        """Open a collection the service did not create (FailedPrecondition where ``can_attach`` is False)."""
        ...

    def close(self) -> None:
        """Release what the factory holds (a client connection); stores it opened are closed first."""
        ...

    def create(self, name: str, *, dim: int, metric: Metric, indexed: dict[str, str],
               index: VectorIndexSettings = VectorIndexSettings()) -> VectorStore:
        """Create an empty store; ``indexed`` maps payload keys to ``integer|bool|keyword``; ``index``: its HNSW."""
        ...

    def open(self, name: str, index: VectorIndexSettings = VectorIndexSettings()) -> VectorStore:
        """Open an existing store (``index``: the collection's HNSW settings, as created)."""
        ...

    def drop(self, name: str) -> None:
        """Delete a store and its data."""
        ...
