"""The collection registry: the one place that creates, attaches, adopts, opens and deletes collections.

A collection exists once its directory holds ``collection.json``. Building one (create, attach,
import) always takes the same steps here: a fresh directory, the store (with a ``creating``
marker once the store is ours), the record, then registration with the run queue.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..config import Settings
from ..embed.batching import BatchingOptions, EmbedBatchers
from ..embed.registry import EmbedderRegistry
from ..embed.vector import VectorEmbedder
from ..errors import AlreadyExists, EmbclusterError, FailedPrecondition, InvalidArgument, NotFound, shown
from ..fsio import read_json
from ..metrics import ServiceMetrics
from ..models import ModelStore
from ..runs import RunInfo, RunManager, utcnow
from ..schema import AttachSpec, CollectionSettings, CollectionSpec
from ..store.attached import AttachedStore, taken_keys
from ..store.base import FieldMissing, Metric, PointFilter, StoreFactory, VectorIndexSettings, VectorStore
from ..store.vectorlog import VectorLog
from ..validation import check_attach_spec, check_effective_settings, check_name, check_spec
from .event_kind import EventKind
from .kinds import ImageMetadataKind, Kind, TextKind, VectorKind
from .records import CREATING_MARKER, INDEXED_FIELDS, RESERVED_FIELDS, CollectionRecord, OpenCollection

__all__ = ["Kinds", "CollectionRegistry"]

logger = logging.getLogger(__name__)


class Kinds:
    """The strategy of each input kind, for one service."""

    def __init__(self, settings: Settings, embedders: EmbedderRegistry, metrics: ServiceMetrics) -> None:
        # the service's embedding queues: the texts of concurrent calls are embedded together
        self.batchers = EmbedBatchers(BatchingOptions(batch_size=settings.embed_batch_size,
                                                      wait_ms=settings.embed_batch_wait_ms,
                                                      interactive_items=settings.embed_interactive_items,
                                                      bulk_nice=settings.embed_bulk_nice))
        args = (settings, embedders, metrics, self.batchers)
        self.event = EventKind(*args)
        kinds: list[Kind] = [TextKind(*args), ImageMetadataKind(*args), VectorKind(*args), self.event]
        self._by_name: dict[str, Kind] = {k.kind: k for k in kinds}

    def __getitem__(self, kind: str) -> Kind:
        return self._by_name[kind]

    def of(self, coll: OpenCollection) -> Kind:
        """The kind of an open collection."""
        return self._by_name[coll.record.input_kind]

    def check_embedder(self, record: CollectionRecord) -> None:
        """Before importing ``record``: this server has the text model it was embedded with."""
        kind = self._by_name.get(record.input_kind)
        if kind is not None:
            kind.check_embedder(record)


class CollectionRegistry:
    """The open collections of one service and their directories under ``<data_dir>/collections``.

    Args:
        settings: Data directory, page size.
        store_factory: The backend's stores.
        runs: The run queue; each collection is registered with it.
        kinds: Input kind strategies (a new collection's embedder).
        owns_factory: Close ``store_factory`` in :meth:`close`.
    """

    def __init__(self, settings: Settings, store_factory: StoreFactory, runs: RunManager, kinds: Kinds, *,
                 owns_factory: bool = False) -> None:
        self.settings = settings
        self.root = Path(settings.data_dir)
        self.store_factory = store_factory
        self.runs = runs
        self.kinds = kinds
        self._owns_factory = owns_factory
        self._collections: dict[str, OpenCollection] = {}
        self._lock = threading.Lock()
        self._reserved_names: set[str] = set()  # names being imported (not yet visible)
        self.on_unregister: list[Callable[[str], None]] = []  # called (under the lock) as a delete begins
        self.on_deleted: list[Callable[[str], None]] = []  # called once a deleted collection is closed

    # ------------------------------------------------------------------ lookups

    def get(self, name: str) -> OpenCollection:
        """The open collection ``name`` (NotFound if there is none)."""
        coll = self._collections.get(name)
        if coll is None:
            raise NotFound(f"collection {shown(name)} not found")
        return coll

    def names(self) -> list[str]:
        """Names of the open collections, sorted."""
        with self._lock:
            return sorted(self._collections)

    def all(self) -> list[OpenCollection]:
        """Every open collection, by name."""
        with self._lock:
            colls = sorted(self._collections.items())
        return [c for _, c in colls]

    def vector_log(self, directory: Path, dim: int) -> VectorLog:
        """Open (or start) a collection's vector log with the durability and space settings."""
        return VectorLog(directory, dim, sync=self.settings.durability == "fsync",
                         reserve_bytes=self.settings.reserve_bytes)

    def directory(self, name: str) -> Path:
        """Where collection ``name`` keeps its record, vector log, models and runs."""
        return self.root / "collections" / name

    # ------------------------------------------------------------------ opening

    def open_all(self, *, mark_interrupted: bool) -> list[tuple[OpenCollection, list[RunInfo]]]:
        """Open every recorded collection; returns each with its runs a crash interrupted."""
        coll_root = self.root / "collections"
        coll_root.mkdir(parents=True, exist_ok=True)
        opened = []
        for directory in sorted(p for p in coll_root.iterdir() if p.is_dir()):
            rec_path = directory / "collection.json"
            if not rec_path.exists():  # a create that died before recording: discard
                self._discard_unrecorded(directory)
                continue
            coll = self._open_one(directory, rec_path)
            record = coll.record
            interrupted = self.runs.register(record.name, directory / "runs", mark_interrupted=mark_interrupted)
            if mark_interrupted:  # versions a run saved but never served (a crash before its switch)
                discarded = coll.models.settle(record.served_version)
                if discarded:
                    logger.warning("collection %s: deleted model versions %s, saved by runs a restart interrupted "
                                   "before they were served", record.name, discarded)
            self._collections[record.name] = coll
            logger.info("opened collection %s (%d points, model v%d)", record.name,
                        coll.store.count(), record.served_version)
            opened.append((coll, interrupted))
        return opened

    def _discard_unrecorded(self, directory: Path) -> None:
        """Remove what a create (or import) that died before saving its record left behind.

        Its store is dropped only if the ``creating`` marker says this service made it: the marker
        is written right after the store's creation succeeds, so a name refused by the backend (a
        collection of someone else's) never gets one.
        """
        if (directory / CREATING_MARKER).exists():
            try:
                self.store_factory.drop(directory.name)
                logger.warning("removed the store of %s, whose creation a crash interrupted", directory.name)
            except Exception:
                logger.exception("store of the unfinished collection %s not removed", directory.name)
        shutil.rmtree(directory, ignore_errors=True)

    def _open_one(self, directory: Path, rec_path: Path) -> OpenCollection:
        """Open one collection's store, vector log and served model; a failure is a clear error."""
        store: VectorStore | None = None
        try:
            record = CollectionRecord.from_json(read_json(rec_path))
            store = self.open_store(record)
            coll = OpenCollection(record=record, store=store, vlog=self.vector_log(directory, record.dim),
                                  directory=directory, models=ModelStore(directory / "models"))
            coll.vlog.repair(store, self.settings.page_size)
            if record.served_version:
                coll.model = coll.models.load(record.served_version)
            return coll
        except EmbclusterError:
            if store is not None:
                store.close()
            raise
        except Exception as exc:
            if store is not None:
                store.close()  # release the shard's WAL lock
            raise FailedPrecondition(f"collection at {shown(str(directory))} cannot be opened: "
                                     f"{type(exc).__name__}: {exc}") from exc

    def open_store(self, record: CollectionRecord) -> VectorStore:
        """The store of a recorded collection: the factory's own, or an attached Qdrant collection."""
        backend = self.store_factory.backend
        if record.store != backend:  # never open (or later drop) a same-named collection of another backend
            raise FailedPrecondition(
                f"collection {shown(record.name)} lives in the {shown(record.store)} store, the server runs store="
                f"{shown(backend)}: start it with store={record.store}, or move the collection with "
                "`embcluster export` / `embcluster import`")
        if not record.external_collection:
            return self.store_factory.open(record.name, record.index)
        if not self.store_factory.can_attach:
            raise FailedPrecondition(f"collection {shown(record.name)} is attached to Qdrant collection "
                                     f"{shown(record.external_collection)}: start the server with store=qdrant")
        try:
            inner = self.store_factory.attach(record.external_collection, record.vector_name)
        except NotFound as exc:
            raise FailedPrecondition(
                f"collection {shown(record.name)} is attached to a Qdrant collection that is gone ({exc.message}): "
                f"restore it, or remove {shown(str(self.directory(record.name)))} to forget the attachment"
            ) from exc
        return AttachedStore(inner, RESERVED_FIELDS, record.field_prefix)

    # ------------------------------------------------------------------ building

    def _check_free(self, name: str) -> None:
        """ALREADY_EXISTS if ``name`` is open or being imported (call under the lock)."""
        if name in self._collections or name in self._reserved_names:
            raise AlreadyExists(f"collection {shown(name)} already exists")

    def _fresh_directory(self, name: str) -> Path:
        directory = self.directory(name)
        shutil.rmtree(directory, ignore_errors=True)  # leftovers of a crashed create/import
        directory.mkdir(parents=True)
        return directory

    def new_store(self, name: str, *, dim: int, metric: Metric,
                  index: VectorIndexSettings = VectorIndexSettings()) -> VectorStore:
        """A fresh directory and an empty store for collection ``name``, marked as being created.

        A crash before :meth:`record_created` leaves the marker: the next start drops the store.
        """
        directory = self._fresh_directory(name)
        store = self.store_factory.create(name, dim=dim, metric=metric, indexed=INDEXED_FIELDS, index=index)
        (directory / CREATING_MARKER).touch()  # ours now: a crash before the record drops it at start-up
        return store

    @staticmethod
    def record_created(coll: OpenCollection) -> None:
        """Save the record of a new collection: from now on it exists after a restart."""
        coll.save()
        (coll.directory / CREATING_MARKER).unlink(missing_ok=True)

    def _add_locked(self, coll: OpenCollection) -> None:
        self.runs.register(coll.record.name, coll.directory / "runs")
        self._collections[coll.record.name] = coll

    def adopt(self, coll: OpenCollection) -> None:
        """Make a collection built elsewhere (an import, under :meth:`reserve_name`) visible."""
        with self._lock:
            self._add_locked(coll)

    @contextmanager
    def reserve_name(self, name: str) -> Iterator[None]:
        """Keep ``name`` from being created while an import builds it; ALREADY_EXISTS if taken."""
        with self._lock:
            self._check_free(name)
            self._reserved_names.add(name)
        try:
            yield
        finally:
            with self._lock:
                self._reserved_names.discard(name)

    def create(self, spec: CollectionSpec) -> OpenCollection:
        """Create a collection; its embedder's name and fingerprint are recorded."""
        check_spec(spec)
        setup = self.kinds[spec.input_kind].setup(spec)
        emb = setup.embedder
        with self._lock:
            self._check_free(spec.name)
            index = spec.vector_index or VectorIndexSettings()
            store = self.new_store(spec.name, dim=emb.dim, metric=spec.metric, index=index)
            record = CollectionRecord(
                name=spec.name, input_kind=spec.input_kind, metric=spec.metric, dim=emb.dim,
                embedder=emb.name, embedder_fingerprint=emb.fingerprint, store_source=spec.store_source,
                settings=check_effective_settings(CollectionSettings.defaults().merged(spec.settings)),
                created_at=utcnow(), image_spec=setup.image_spec, event_schema=setup.event_schema,
                store=self.store_factory.backend,  # type: ignore[arg-type]
                embedding_tier=spec.embedding_tier,
                vector_index=index.to_json(),
            )
            directory = self.directory(spec.name)
            coll = OpenCollection(record=record, store=store, vlog=self.vector_log(directory, emb.dim), directory=directory,
                                  models=ModelStore(directory / "models"), embedder=emb)
            self.record_created(coll)
            self._add_locked(coll)
        logger.info("created collection %s (%s, %s, %d-d, %s, tier %s)", spec.name, spec.input_kind, spec.metric,
                    emb.dim, emb.name, spec.embedding_tier)
        return coll

    def attach(self, spec: AttachSpec) -> OpenCollection:
        """Record an existing Qdrant collection the service did not create as a VECTOR collection."""
        check_attach_spec(spec)
        factory = self.store_factory
        if not factory.can_attach:
            raise FailedPrecondition("attaching an existing Qdrant collection needs store=qdrant "
                                     "(this server runs the embedded Qdrant Edge store)")
        prefix = spec.field_prefix
        stored = [prefix + f for f in RESERVED_FIELDS]
        with self._lock:
            self._check_free(spec.name)
            for other in self._collections.values():
                rec = other.record
                if not rec.external_collection and factory.native_name(rec.name) == spec.qdrant_collection:
                    raise FailedPrecondition(f"Qdrant collection {shown(spec.qdrant_collection)} is this service's own "
                                             f"collection {shown(rec.name)}: use it directly")
                if rec.external_collection == spec.qdrant_collection and rec.field_prefix == prefix:
                    raise AlreadyExists(f"Qdrant collection {shown(spec.qdrant_collection)} is already attached as "
                                        f"{shown(rec.name)} with field_prefix {shown(prefix)}")
            inner = factory.attach(spec.qdrant_collection, spec.vector_name)
            if spec.metric is not None and spec.metric != inner.metric:
                raise InvalidArgument(f"distance {shown(spec.metric)} given, but vector {shown(inner.vector_name or '(unnamed)')} "
                                      f"of Qdrant collection {shown(spec.qdrant_collection)} uses {shown(inner.metric)}")
            taken = taken_keys(inner, stored)
            if taken:
                hint = "choose another field_prefix" if prefix else "give a field_prefix such as 'ec_'"
                raise FailedPrecondition(f"Qdrant collection {shown(spec.qdrant_collection)} already has payload keys "
                                         f"{taken} that embcluster would write: {hint}")
            inner.create_indexes({prefix + k: v for k, v in INDEXED_FIELDS.items() if k in RESERVED_FIELDS})
            emb = VectorEmbedder(inner.dim)
            directory = self._fresh_directory(spec.name)
            record = CollectionRecord(
                name=spec.name, input_kind="vector", metric=inner.metric, dim=inner.dim, embedder=emb.name,
                embedder_fingerprint=emb.fingerprint, store_source=False,
                settings=check_effective_settings(CollectionSettings.defaults().merged(spec.settings)),
                created_at=utcnow(), external_collection=spec.qdrant_collection, vector_name=inner.vector_name,
                field_prefix=prefix, store=factory.backend,  # type: ignore[arg-type]
            )
            store = AttachedStore(inner, RESERVED_FIELDS, prefix)
            coll = OpenCollection(record=record, store=store, vlog=self.vector_log(directory, inner.dim),
                                  directory=directory, models=ModelStore(directory / "models"), embedder=emb)
            coll.save()
            self._add_locked(coll)
        logger.info("attached Qdrant collection %s as %s (%s, %d-d, vector %r, field prefix %r)",
                    spec.qdrant_collection, spec.name, inner.metric, inner.dim, inner.vector_name, prefix)
        return coll

    # ------------------------------------------------------------------ deleting and closing

    def delete(self, name: str) -> bool:
        """Delete a collection, its points and models (an active run is cancelled first)."""
        with self._lock:  # from here on, new calls see NOT_FOUND and no run can start
            coll = self.get(check_name(name))
            self._collections.pop(name)
            self.runs.unregister(name)
            for hook in self.on_unregister:
                hook(name)
        active = self.runs.active(name)
        if active:
            self.runs.cancel(name, active.run_id)
            self.runs.wait(name)  # a cancelled run stops at its next page
        with coll.lock:  # in-flight writers finish first; later ones see `closed`
            if coll.record.external_collection:
                self._remove_written_fields(coll)
            coll.closed = True
            coll.store.close()
            coll.vlog.close()
        for hook in self.on_deleted:  # again: an ingest that held coll.lock may have re-created state
            hook(name)
        # Record first: without it a half-deleted directory is discarded at the next start.
        (coll.directory / "collection.json").unlink(missing_ok=True)
        if not coll.record.external_collection:  # an attached collection is its owner's: never dropped
            self.store_factory.drop(name)
        shutil.rmtree(coll.directory, ignore_errors=True)
        logger.info("deleted collection %s", name)
        return True

    def _remove_written_fields(self, coll: OpenCollection) -> None:
        """Take the reserved fields this service wrote off an attached collection's points."""
        labelled = PointFilter(must_not=(FieldMissing("model_version"),))
        try:
            previous: list[str] = []
            while True:
                points, _ = coll.store.scroll(limit=self.settings.page_size, flt=labelled, with_payload=False)
                if not points:
                    return
                ids = [p.id for p in points]
                if ids == previous:  # the deletes did not take: never spin on the same page
                    raise RuntimeError(f"fields of {len(ids)} points could not be removed")
                coll.store.delete_fields(ids, RESERVED_FIELDS)
                previous = ids
        except Exception:
            logger.exception("removing the fields written on attached collection %s failed; its other "
                             "payload keys are untouched", coll.record.name)

    def _size_for_log(self, coll: OpenCollection) -> str:
        if self.store_factory.backend != "edge":  # a remote count is a network call: not at shutdown
            return ""
        try:
            return f" ({coll.store.count()} points)"
        except Exception:  # only a log line: closing goes on
            return ""

    def close(self) -> None:
        """Close every collection's store and vector log (and the store factory, if it is ours).

        Each collection is logged at INFO before and after (closing an Edge shard flushes it,
        seconds for a large one).
        """
        with self._lock:
            for coll in self._collections.values():
                with coll.lock:
                    coll.closed = True
                    started = time.perf_counter()
                    logger.info("closing collection %s%s…", coll.record.name, self._size_for_log(coll))
                    coll.store.close()
                    coll.vlog.close()
                    logger.info("closed collection %s in %.1f s", coll.record.name, time.perf_counter() - started)
            self._collections.clear()
        if self._owns_factory:
            self.store_factory.close()
            self._owns_factory = False
