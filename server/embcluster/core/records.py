"""Collection records, open collections, point ids and the reserved payload fields.

The five reserved fields and the consistency rule they follow are described in
docs/architecture.md ("The payload contract").
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from ..embed.base import Embedder
from ..errors import NotFound, shown
from ..fsio import write_json_atomic
from ..models import ClusterModel, ModelStore
from ..schema import CollectionSettings, ImageMetadataSpec, InputKind
from ..store.base import FieldMissing, Metric, PointFilter, PointId, VectorIndexSettings, VectorStore
from ..store.vectorlog import VectorLog

__all__ = [
    "RESERVED_FIELDS",
    "SEQ_FIELD",
    "INDEXED_FIELDS",
    "RECORD_SCHEMA_VERSION",
    "CREATING_MARKER",
    "Backend",
    "point_id_for",
    "CollectionRecord",
    "OpenCollection",
]

logger = logging.getLogger(__name__)

RESERVED_FIELDS = ("cluster_id", "cluster_distance", "anomaly_score", "is_anomaly", "model_version")
# A point's ingest sequence number: given when the point is first stored, kept when it is replaced;
# ListPoints pages in its order (docs/architecture.md, "Listing every point").
SEQ_FIELD = "ingest_seq"
INDEXED_FIELDS = {"cluster_id": "integer", "is_anomaly": "bool", "model_version": "integer", "external_id": "keyword",
                  SEQ_FIELD: "integer"}
_ID_NAMESPACE = uuid.UUID("6f1c7d0e-6d1b-4b8e-9a51-8a6f0c2e4b11")
_ID_NAMESPACE_BYTES = _ID_NAMESPACE.bytes
_VARIANT_DIGIT = "89ab"
RECORD_SCHEMA_VERSION = 1
CREATING_MARKER = "creating"  # in a collection directory: its store was made, its record not yet saved

Backend = Literal["edge", "qdrant"]


def point_id_for(collection: str, external_id: str) -> str:
    """Point id of a caller id: UUIDv5 of (collection, external id); Qdrant takes only UUIDs/ints.

    Exactly ``str(uuid.uuid5(namespace, collection + NUL + external_id))``, spelled out on the
    SHA-1 hex digest: a third of the cost of building a ``uuid.UUID`` (one per ingested item).
    """
    h = hashlib.sha1(_ID_NAMESPACE_BYTES + f"{collection}\x00{external_id}".encode()).hexdigest()
    # version 5 in the 13th digit; the variant bits 10 in the 17th
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT_DIGIT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


@dataclass
class CollectionRecord:
    """What is persisted about a collection (``collection.json``)."""

    name: str
    input_kind: InputKind
    metric: Metric
    dim: int
    embedder: str
    embedder_fingerprint: str
    store_source: bool
    settings: CollectionSettings
    created_at: str
    served_version: int = 0
    next_version: int = 1
    next_cluster_id: int = 0
    # Scheduler bookkeeping: points ingested/deleted so far, the count at the last successful
    # run's snapshot, and when the last run started (epoch seconds). Saved at least when a run
    # starts and ends (and by the scheduler while it changes).
    changes_total: int = 0
    changes_at_run: int = 0
    last_run_at: float = 0.0
    # An attached Qdrant collection (store=qdrant): its own name, the vector clustered and the
    # prefix of the reserved fields; empty for collections the service created.
    external_collection: str = ""
    vector_name: str = ""
    field_prefix: str = ""
    image_spec: dict[str, Any] | None = None  # IMAGE_METADATA: ImageMetadataSpec.to_json()
    event_schema: dict[str, Any] | None = None  # EVENT: EventSchema.to_json()
    featurizer_version: int = 0  # EVENT: the version every stored vector is written with (0 = none yet)
    featurizer_provisional: bool = False  # EVENT: fitted on the first batch only
    store: Backend = "edge"  # the backend that holds its points (records older than this field: edge)
    embedding_tier: str = "full"  # how its text model runs (embcluster.embed.tiers; older records: full)
    vector_index: dict[str, Any] | None = None  # VectorIndexSettings.to_json() (None: older records, the defaults)

    @property
    def index(self) -> VectorIndexSettings:
        """The collection's HNSW settings."""
        return VectorIndexSettings.from_json(self.vector_index)

    @property
    def image(self) -> ImageMetadataSpec:
        """The IMAGE_METADATA spec (the default one for other kinds, where it is unused)."""
        return ImageMetadataSpec.from_json(self.image_spec) if self.image_spec else ImageMetadataSpec()

    def to_json(self) -> dict[str, Any]:
        """JSON form with a schema version."""
        return {**asdict(self), "schema_version": RECORD_SCHEMA_VERSION}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CollectionRecord":
        """Inverse of :meth:`to_json`."""
        if data.get("schema_version") != RECORD_SCHEMA_VERSION:
            raise ValueError(f"collection record schema_version {shown(data.get('schema_version'))} unsupported")
        data = {k: v for k, v in data.items() if k != "schema_version"}
        return cls(**{**data, "settings": CollectionSettings(**data["settings"])})


@dataclass
class OpenCollection:
    """An open collection: record, store, model and the lock that orders labelling."""

    record: CollectionRecord
    store: VectorStore
    vlog: VectorLog
    directory: Path
    models: ModelStore
    model: ClusterModel | None = None
    embedder: Embedder | None = None
    featurizer: Any = None  # EVENT: the loaded EventFeaturizer (see core/event_kind.py)
    # Held while labelling with the served model and writing (ingest, write-back pages) and
    # while switching versions, so no point is labelled with a version that is no longer served
    # after the catch-up has passed it.
    lock: threading.RLock = field(default_factory=threading.RLock)
    closed: bool = False  # set (under ``lock``) when the collection is deleted or the service closes
    auto_fit_after: int = 0  # EVENT: after a failed automatic featurizer fit, retry from this many points
    # Ingest sequence numbers (SEQ_FIELD), read from the store at first use (0 = not yet), under ``lock``.
    seq_next: int = 0
    unsequenced: bool = True  # points without a sequence number may exist (older data); known once seq_next is

    @property
    def name(self) -> str:
        """The collection's name."""
        return self.record.name

    def check_open(self) -> None:
        """Writers call this under ``lock``: a deleted collection takes no more writes."""
        if self.closed:
            raise NotFound(f"collection {shown(self.record.name)} not found (deleted)")

    def save(self) -> None:
        """Write the record (``collection.json``) atomically."""
        write_json_atomic(self.directory / "collection.json", self.record.to_json())

    def ensure_sequence(self) -> None:
        """Read where the ingest sequence stands, once (caller holds ``lock``).

        The next number is above every stored one and at least the clock in microseconds, so
        numbers keep rising across restarts even when the newest point was deleted (as long as
        the clock does not step back). A store made before sequence numbers gets its index here.
        """
        if self.seq_next:
            return
        self.store.create_indexes({SEQ_FIELD: "integer"})
        top = self.store.scroll_by(SEQ_FIELD, limit=1, descending=True)
        stored = int(top[0].payload[SEQ_FIELD]) if top else 0
        self.seq_next = max(stored + 1, time.time_ns() // 1000)
        self.unsequenced = self.store.count(PointFilter(must=(FieldMissing(SEQ_FIELD),))) > 0

    def sequence(self, ids: Sequence[PointId], payloads: Sequence[dict[str, Any]],
                 fresh: Sequence[bool] | None = None) -> None:
        """Set each payload's ingest sequence number (caller holds ``lock``, then writes these points).

        A point the store already holds keeps its number (or its lack of one: older data), so a
        replaced point never moves in ListPoints' order; new points get the next numbers, in
        batch order, never below the clock in microseconds. ``fresh[i]``: ``ids[i]`` was made for this
        call (a random id for an item without one), so the store cannot hold it and is not asked.
        """
        self.ensure_sequence()
        known = [str(i) for n, i in enumerate(ids) if fresh is None or not fresh[n]]
        kept = ({p.id: p.payload.get(SEQ_FIELD)
                 for p in self.store.retrieve(list(dict.fromkeys(known)), with_payload=[SEQ_FIELD])} if known else {})
        nxt = max(self.seq_next, time.time_ns() // 1000)
        given: dict[str, int] = {}
        for pid, payload in zip(ids, payloads):
            key = str(pid)
            if key in kept:
                if kept[key] is not None:
                    payload[SEQ_FIELD] = kept[key]
                continue
            if key not in given:
                given[key], nxt = nxt, nxt + 1
            payload[SEQ_FIELD] = given[key]
        self.seq_next = nxt

    def write_points(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]) -> None:
        """Upsert points into the vector log and the store as one step (caller holds ``lock``).

        The log is appended first: a crash between the two leaves the doubt in the log's tail,
        which the next open repairs against the store; a failed upsert takes its records back
        out of the log (:meth:`undo_log`). Under ``durability=fsync`` the log's fdatasync runs
        while the store converts the batch and is waited for before the store changes, so the
        log is still durable first.
        """
        mark = self.vlog.records
        synced = self.vlog.append(ids, vectors, wait=False)
        try:
            self.store.upsert(ids, vectors, payloads, before_write=synced)
        except BaseException:
            self.undo_log(mark, ids)
            raise
        self.vlog.mark_consistent()

    def undo_log(self, mark: int, ids: Sequence[str]) -> None:
        """After a store write that failed: cut the log back to ``mark``, then re-read ``ids`` from the store.

        The cut alone restores the log for an all-or-nothing store; the re-read covers a store
        that took part of the write. If the re-read fails too (the disk is still full), the log
        is marked stale and rebuilt from the store before anything reads it.
        """
        self.vlog.truncate(mark)
        try:
            self.vlog.reconcile(ids, self.store)
        except Exception:
            logger.warning("vector log of %s: re-reading %d ids after a failed write failed; it is rebuilt "
                           "from the store before its next use", self.record.name, len(ids), exc_info=True)
            self.vlog.mark_stale()
