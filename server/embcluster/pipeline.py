"""The service core: collections, ingest, clustering runs, classify and search, in plain Python.

Composes the stages (validate → embed → store → assign/score) and owns the consistency rule
of DESIGN.md:

* the five reserved fields of a point are always written together, in one store operation;
* a run writes its new version's fields onto every point page by page while the previous
  version stays served, then switches the served version, then catches up the points that
  arrived during the run (``model_version != served``);
* what reads see during a write-back: each point shows the fields of exactly one version —
  the served one or the one being written (its ``model_version`` says which); listings by
  ``cluster_id``/``is_anomaly`` match either. Cluster ids are matched across versions, so a
  persisting cluster has the same id in both;
* a run that fails or is cancelled, or a process that dies mid-run, leaves the previous
  version served; its partial write-back is reverted to the served version (immediately,
  or by the catch-up every start performs).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .anomaly.ensemble import fit_components
from .anomaly.explain import field_contributions
from .anomaly.report import anomaly_summary
from .anomaly.scoring import DEFAULT_SCORER, large_clusters
from .anomaly.threshold import calibrate_thresholds, decide
from .anomaly.feed import AnomalyFeed, Subscription
from .cluster.assign import nearest_rows, pairwise_distance
from .cluster.choose_k import choose_k
from .cluster.kmeans import default_n_init, fit_kmeans, refine_minibatch
from .cluster.matching import match_clusters
from .cluster.quality import quality
from .config import Settings
from .metrics import ServiceMetrics
from .embed.base import Embedder
from .embed.events import EventSchema
from .embed.image import ImageMetadataEmbedder, render_image_metadata
from .embed.registry import EmbedderRegistry
from .embed.vector import VectorEmbedder
from .errors import AlreadyExists, EmbclusterError, FailedPrecondition, InvalidArgument, NotFound
from .eventops import EventOps, source_view
from .fsio import read_json, write_json_atomic
from .autorun import AutoRunner, ScheduleState
from .drift import RecentWindow, fit_summary, recent_drift, version_drift
from .models import ClusterModel, ModelStore
from .scheduler import RunContext, RunManager, utcnow
from .schema import (
    AttachedSource,
    AttachSpec,
    Assignment,
    ClusterInfo,
    CollectionInfo,
    CollectionSettings,
    CollectionSpec,
    DriftReport,
    Explanation,
    ImageMetadataInput,
    ImageMetadataSpec,
    ItemInput,
    ItemResult,
    ModelInfo,
    PointView,
    RunInfo,
    RunRequest,
    SearchHit,
    VectorLike,
)
from .store.base import FieldEquals, FieldMissing, PointFilter, PointId, StoreFactory, VectorStore
from .store import make_store_factory
from .store.attached import AttachedStore, taken_keys
from .store.ids import parse_public_point_id, public_point_id
from .store.vectorlog import LiveSet, VectorLog
from .validation import (
    check_effective_settings,
    check_items,
    check_name,
    check_page_size,
    check_query,
    check_run_request,
    check_settings,
    check_spec,
    check_attach_spec,
)

__all__ = ["EmbclusterService", "point_id_for", "RESERVED_FIELDS"]

logger = logging.getLogger(__name__)

RESERVED_FIELDS = ("cluster_id", "cluster_distance", "anomaly_score", "is_anomaly", "model_version")
INDEXED_FIELDS = {"cluster_id": "integer", "is_anomaly": "bool", "model_version": "integer", "external_id": "keyword"}
_ID_NAMESPACE = uuid.UUID("6f1c7d0e-6d1b-4b8e-9a51-8a6f0c2e4b11")
RECORD_SCHEMA_VERSION = 1
CREATING_MARKER = "creating"  # in a collection directory: its store was made, its record not yet saved
WARM_MAX_ITER = 10  # Lloyd iterations from the previous model's centroids (same k)
MAX_REFINE_BATCHES = 3  # mini-batches of sample size each, drawn from the rest of the collection


def point_id_for(collection: str, external_id: str) -> str:
    """Point id of a caller id: UUIDv5 of (collection, external id); Qdrant takes only UUIDs/ints."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{collection}\x00{external_id}"))


@dataclass
class CollectionRecord:
    """What is persisted about a collection (``collection.json``)."""

    name: str
    input_kind: str
    metric: str
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
    store: str = "edge"  # the backend that holds its points (records older than this field: edge)

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
            raise ValueError(f"collection record schema_version {data.get('schema_version')!r} unsupported")
        data = {k: v for k, v in data.items() if k != "schema_version"}
        return cls(**{**data, "settings": CollectionSettings(**data["settings"])})


@dataclass
class _Collection:
    """An open collection: record, store, model and the lock that orders labelling."""

    record: CollectionRecord
    store: VectorStore
    vlog: VectorLog
    directory: Path
    models: ModelStore
    model: ClusterModel | None = None
    embedder: Embedder | None = None
    featurizer: Any = None  # EVENT: the loaded EventFeaturizer (see eventops.py)
    # Held while labelling with the served model and writing (ingest, write-back pages) and
    # while switching versions, so no point is labelled with a version that is no longer served
    # after the catch-up has passed it.
    lock: threading.RLock = field(default_factory=threading.RLock)
    closed: bool = False  # set (under ``lock``) when the collection is deleted or the service closes
    auto_fit_after: int = 0  # EVENT: after a failed automatic featurizer fit, retry from this many points

    def check_open(self) -> None:
        """Writers call this under ``lock``: a deleted collection takes no more writes."""
        if self.closed:
            raise NotFound(f"collection {self.record.name!r} not found (deleted)")

    def save(self) -> None:
        write_json_atomic(self.directory / "collection.json", self.record.to_json())


class EmbclusterService(EventOps):
    """Everything the API offers, usable without gRPC.

    Args:
        settings: The service settings (read once at start-up).
        embedders: Text model registry; shared between services in tests.
        store_factory: Vector store backend; default the one ``settings.store`` names
            (:func:`~embcluster.store.make_store_factory`).
    """

    def __init__(
        self, settings: Settings, *, embedders: EmbedderRegistry | None = None,
        store_factory: StoreFactory | None = None,
    ) -> None:
        self.settings = settings
        self.embedders = embedders or EmbedderRegistry(settings)
        self.root = Path(settings.data_dir)
        self._owns_factory = store_factory is None  # a factory made here is closed by close()
        self.store_factory = store_factory or make_store_factory(settings)
        self.runs = RunManager(settings.run_workers)
        self.metrics = ServiceMetrics()  # its own registry: several services may share a process
        self.metrics.watch(self)
        self.runs.on_finished.append(self.metrics.observe_run)
        self._collections: dict[str, _Collection] = {}
        self._lock = threading.Lock()
        self.anomaly_feed: AnomalyFeed[PointView] = AnomalyFeed()
        self._catchups: list[threading.Thread] = []
        self._recent: dict[str, RecentWindow] = {}  # collection -> recent online labels (drift)
        self._version_drift: dict[tuple[str, int], dict[str, float | None]] = {}  # (name, served) -> numbers
        self.autorun = AutoRunner(self, settings)
        self._reserved_names: set[str] = set()  # names being imported (not yet visible)

    # ------------------------------------------------------------------ life cycle

    def open(self, *, background: bool = True) -> None:
        """Open every collection under the data directory and repair interrupted work.

        Args:
            background: The server's start (default): interrupted runs are marked failed and
                re-run, interrupted write-backs and refits are repaired, the scheduler starts.
                ``False`` (offline tools such as ``embcluster export --data-dir``) opens the
                collections as they are and leaves all of that to the next server start.
        """
        coll_root = self.root / "collections"
        coll_root.mkdir(parents=True, exist_ok=True)
        for directory in sorted(p for p in coll_root.iterdir() if p.is_dir()):
            rec_path = directory / "collection.json"
            if not rec_path.exists():  # a create that died before recording: discard
                self._discard_unrecorded(directory)
                continue
            coll = self._open_one(directory, rec_path)
            record = coll.record
            interrupted = self.runs.register(record.name, directory / "runs", mark_interrupted=background)
            self._collections[record.name] = coll
            logger.info("opened collection %s (%d points, model v%d)", record.name,
                        coll.store.count(), record.served_version)
            if not background:
                continue
            if interrupted:  # re-run the newest one once the start-up catch-up is done
                self.autorun.add_restart(record.name, interrupted[-1])
            self._event_open(coll)  # EVENT: finish a refit a crash interrupted
            if not interrupted:  # EVENT: a fit due before a crash or while a run was active
                self._maybe_auto_refit(coll)
            if coll.store.count(self._stale(coll)):  # a run died mid write-back: undo it
                thread = threading.Thread(target=self._catch_up_safely, args=(coll,), daemon=True,
                                          name=f"catch-up-{record.name}")
                thread.start()
                self._catchups.append(thread)
        if background:
            self.autorun.start()

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

    def _open_one(self, directory: Path, rec_path: Path) -> _Collection:
        """Open one collection's store, vector log and served model; a failure is a clear error."""
        store: VectorStore | None = None
        try:
            record = CollectionRecord.from_json(read_json(rec_path))
            store = self._open_store(record)
            coll = _Collection(record=record, store=store, vlog=VectorLog(directory, record.dim),
                               directory=directory, models=ModelStore(directory / "models"))
            if not coll.vlog.was_clean:
                coll.vlog.repair_tail(store)
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
            raise FailedPrecondition(f"collection at {str(directory)!r} cannot be opened: "
                                     f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Stop the scheduler and runs, and close every store."""
        self.autorun.stop()
        self.runs.shutdown()
        for thread in self._catchups:
            thread.join(timeout=30)
        with self._lock:
            for coll in self._collections.values():
                with coll.lock:
                    coll.closed = True
                    coll.store.close()
                    coll.vlog.close()
            self._collections.clear()
        close_factory = getattr(self.store_factory, "close", None)
        if self._owns_factory and close_factory is not None:
            close_factory()
            self._owns_factory = False

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait for start-up catch-ups and active runs (tests and tools)."""
        for thread in self._catchups:
            thread.join(timeout=timeout)
        for name in list(self._collections):
            self.runs.wait(name, timeout=timeout)

    # ------------------------------------------------------------------ collections

    def _get(self, name: str) -> _Collection:
        coll = self._collections.get(name)
        if coll is None:
            raise NotFound(f"collection {name!r} not found")
        return coll

    def _embedder(self, coll: _Collection) -> Embedder:
        if coll.embedder is None:
            rec = coll.record
            if rec.input_kind == "vector":
                coll.embedder = VectorEmbedder(rec.dim)
            else:
                emb: Embedder = self.embedders.text(rec.embedder)
                if rec.input_kind == "image_metadata":
                    emb = ImageMetadataEmbedder(emb, rec.image)
                if emb.fingerprint != rec.embedder_fingerprint or emb.dim != rec.dim:
                    raise FailedPrecondition(
                        f"collection {rec.name!r} was created with model {rec.embedder!r} "
                        f"({rec.embedder_fingerprint[:19]}…, {rec.dim}-d); the server now has "
                        f"{emb.fingerprint[:19]}…, {emb.dim}-d. Restore that model or re-create the collection"
                    )
                coll.embedder = emb
        return coll.embedder

    def create_collection(self, spec: CollectionSpec) -> CollectionInfo:
        """Create a collection; its embedder's name and fingerprint are recorded."""
        check_spec(spec)
        if spec.input_kind == "text":
            emb: Embedder = self.embedders.text(spec.embedding_model)
        elif spec.input_kind == "image_metadata":
            emb = ImageMetadataEmbedder(self.embedders.text(spec.embedding_model), spec.image_spec or ImageMetadataSpec())
        elif spec.input_kind == "event":
            featurizer, emb_name, emb_fp = self._event_setup(spec)
            emb = VectorEmbedder(featurizer.dim)  # the width only: event vectors come from the featurizer
            emb.name, emb.fingerprint = emb_name, emb_fp
        else:
            emb = VectorEmbedder(spec.vector_dim)
        with self._lock:
            if spec.name in self._collections or spec.name in self._reserved_names:
                raise AlreadyExists(f"collection {spec.name!r} already exists")
            directory = self.root / "collections" / spec.name
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            store = self.store_factory.create(spec.name, dim=emb.dim, metric=spec.metric, indexed=INDEXED_FIELDS)
            (directory / CREATING_MARKER).touch()  # ours now: a crash before the record drops it at start-up
            record = CollectionRecord(
                name=spec.name, input_kind=spec.input_kind, metric=spec.metric, dim=emb.dim,
                embedder=emb.name, embedder_fingerprint=emb.fingerprint, store_source=spec.store_source,
                settings=check_effective_settings(CollectionSettings.defaults().merged(spec.settings)),
                created_at=utcnow(),
                image_spec=(spec.image_spec or ImageMetadataSpec()).to_json()
                if spec.input_kind == "image_metadata" else None,
                event_schema=featurizer.schema.to_json() if spec.input_kind == "event" else None,
                store=self.store_factory.backend,
            )
            coll = _Collection(record=record, store=store, vlog=VectorLog(directory, emb.dim), directory=directory,
                               models=ModelStore(directory / "models"), embedder=emb)
            coll.save()  # the record is what makes the collection exist after a restart
            (directory / CREATING_MARKER).unlink()
            self.runs.register(spec.name, directory / "runs")
            self._collections[spec.name] = coll
        logger.info("created collection %s (%s, %s, %d-d, %s)", spec.name, spec.input_kind, spec.metric,
                    emb.dim, emb.name)
        return self._info(coll)

    def attach_collection(self, spec: AttachSpec) -> CollectionInfo:
        """Cluster an existing Qdrant collection the service did not create (``store=qdrant``).

        The collection is recorded as a VECTOR collection over ``spec.vector_name``; the service
        writes only the five reserved fields (as ``<field_prefix><name>``) and creates payload
        indexes on them; every other payload key stays as it is.

        Raises:
            InvalidArgument: a malformed name or prefix, or a distance that is not the collection's.
            FailedPrecondition: the server runs Qdrant Edge; or the reserved names are taken.
            NotFound: no such Qdrant collection or vector name.
        """
        check_attach_spec(spec)
        attach = getattr(self.store_factory, "attach", None)
        if attach is None:
            raise FailedPrecondition("attaching an existing Qdrant collection needs store=qdrant "
                                     "(this server runs the embedded Qdrant Edge store)")
        prefix = spec.field_prefix
        stored = [prefix + f for f in RESERVED_FIELDS]
        with self._lock:
            if spec.name in self._collections or spec.name in self._reserved_names:
                raise AlreadyExists(f"collection {spec.name!r} already exists")
            qdrant_name = getattr(self.store_factory, "qdrant_name", None)
            for other in self._collections.values():
                rec = other.record
                if not rec.external_collection and qdrant_name is not None \
                        and qdrant_name(rec.name) == spec.qdrant_collection:
                    raise FailedPrecondition(f"Qdrant collection {spec.qdrant_collection!r} is this service's own "
                                             f"collection {rec.name!r}: use it directly")
                if rec.external_collection == spec.qdrant_collection and rec.field_prefix == prefix:
                    raise AlreadyExists(f"Qdrant collection {spec.qdrant_collection!r} is already attached as "
                                        f"{rec.name!r} with field_prefix {prefix!r}")
            inner = attach(spec.qdrant_collection, spec.vector_name)
            if spec.metric is not None and spec.metric != inner.metric:
                raise InvalidArgument(f"distance {spec.metric!r} given, but vector {inner.vector_name or '(unnamed)'!r} "
                                      f"of Qdrant collection {spec.qdrant_collection!r} uses {inner.metric!r}")
            taken = taken_keys(inner, stored)
            if taken:
                hint = "choose another field_prefix" if prefix else "give a field_prefix such as 'ec_'"
                raise FailedPrecondition(f"Qdrant collection {spec.qdrant_collection!r} already has payload keys "
                                         f"{taken} that embcluster would write: {hint}")
            inner.create_indexes({prefix + k: v for k, v in INDEXED_FIELDS.items() if k in RESERVED_FIELDS})
            emb = VectorEmbedder(inner.dim)
            directory = self.root / "collections" / spec.name
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            record = CollectionRecord(
                name=spec.name, input_kind="vector", metric=inner.metric, dim=inner.dim, embedder=emb.name,
                embedder_fingerprint=emb.fingerprint, store_source=False,
                settings=check_effective_settings(CollectionSettings.defaults().merged(spec.settings)),
                created_at=utcnow(), external_collection=spec.qdrant_collection, vector_name=inner.vector_name,
                field_prefix=prefix, store=self.store_factory.backend,
            )
            store = AttachedStore(inner, RESERVED_FIELDS, prefix)
            coll = _Collection(record=record, store=store, vlog=VectorLog(directory, inner.dim), directory=directory,
                               models=ModelStore(directory / "models"), embedder=emb)
            coll.save()
            self.runs.register(spec.name, directory / "runs")
            self._collections[spec.name] = coll
        logger.info("attached Qdrant collection %s as %s (%s, %d-d, vector %r, field prefix %r)",
                    spec.qdrant_collection, spec.name, inner.metric, inner.dim, inner.vector_name, prefix)
        return self._info(coll)

    def _open_store(self, record: CollectionRecord) -> VectorStore:
        """The store of a recorded collection: the factory's own, or an attached Qdrant collection."""
        backend = self.store_factory.backend
        if record.store != backend:  # never open (or later drop) a same-named collection of another backend
            raise FailedPrecondition(
                f"collection {record.name!r} lives in the {record.store!r} store, the server runs store="
                f"{backend!r}: start it with store={record.store}, or move the collection with "
                "`embcluster export` / `embcluster import`")
        if not record.external_collection:
            return self.store_factory.open(record.name)
        attach = getattr(self.store_factory, "attach", None)
        if attach is None:
            raise FailedPrecondition(f"collection {record.name!r} is attached to Qdrant collection "
                                     f"{record.external_collection!r}: start the server with store=qdrant")
        try:
            inner = attach(record.external_collection, record.vector_name)
        except NotFound as exc:
            raise FailedPrecondition(
                f"collection {record.name!r} is attached to a Qdrant collection that is gone ({exc.message}): "
                f"restore it, or remove {str(self.root / 'collections' / record.name)!r} to forget the attachment"
            ) from exc
        return AttachedStore(inner, RESERVED_FIELDS, record.field_prefix)

    @staticmethod
    def _check_writable(coll: _Collection) -> None:
        if coll.record.external_collection:
            raise FailedPrecondition(
                f"collection {coll.record.name!r} is attached to Qdrant collection "
                f"{coll.record.external_collection!r}: write its points with your own Qdrant client; "
                "new and changed points are labelled by the next run's catch-up")

    def _remove_written_fields(self, coll: _Collection) -> None:
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

    def get_collection(self, name: str) -> CollectionInfo:
        """A collection with live counts."""
        return self._info(self._get(check_name(name)))

    def list_collections(self) -> list[CollectionInfo]:
        """Every collection, by name."""
        with self._lock:
            colls = sorted(self._collections.items())
        return [self._info(c) for _, c in colls]

    def update_collection(self, name: str, settings: CollectionSettings) -> CollectionInfo:
        """Change mutable settings; they apply from the next run."""
        coll = self._get(check_name(name))
        check_settings(settings)
        with coll.lock:
            coll.record.settings = check_effective_settings(coll.record.settings.merged(settings))
            coll.save()
        return self._info(coll)

    def delete_collection(self, name: str) -> bool:
        """Delete a collection, its points and models (an active run is cancelled first)."""
        with self._lock:  # from here on, new calls see NOT_FOUND and no run can start
            coll = self._get(check_name(name))
            self._collections.pop(name)
            self.runs.unregister(name)
            self._recent.pop(name, None)
            self._version_drift = {k: v for k, v in self._version_drift.items() if k[0] != name}
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
        self._recent.pop(name, None)  # again: an ingest that held coll.lock may have re-created it
        self.metrics.forget_collection(name)
        self.anomaly_feed.close(name)
        # Record first: without it a half-deleted directory is discarded at the next start.
        (coll.directory / "collection.json").unlink(missing_ok=True)
        if not coll.record.external_collection:  # an attached collection is its owner's: never dropped
            self.store_factory.drop(name)
        shutil.rmtree(coll.directory, ignore_errors=True)
        logger.info("deleted collection %s", name)
        return True

    def _info(self, coll: _Collection) -> CollectionInfo:
        rec = coll.record
        model = coll.model
        return CollectionInfo(
            name=rec.name, input_kind=rec.input_kind,  # type: ignore[arg-type]
            metric=rec.metric, dim=rec.dim,  # type: ignore[arg-type]
            embedder=rec.embedder, embedder_fingerprint=rec.embedder_fingerprint,
            store_source=rec.store_source, settings=rec.settings, point_count=coll.store.count(),
            served_model_version=rec.served_version,
            cluster_count=int(model.populated.sum()) if model else 0,
            anomaly_count=coll.store.count(PointFilter(must=(FieldEquals("is_anomaly", True),))) if model else 0,
            created_at=rec.created_at, image_spec=rec.image if rec.input_kind == "image_metadata" else None,
            event_schema=EventSchema.from_json(rec.event_schema) if rec.event_schema else None,
            featurizer_version=rec.featurizer_version, featurizer_provisional=rec.featurizer_provisional,
            attached=AttachedSource(rec.external_collection, rec.vector_name, rec.field_prefix)
            if rec.external_collection else None,
        )

    # ------------------------------------------------------------------ points

    def _embed(self, coll: _Collection, items: Sequence[ItemInput], parsed: np.ndarray | None) -> np.ndarray:
        """Vectors of validated items (``parsed``: the matrix validation built for VECTOR input)."""
        emb = self._embedder(coll)
        started = time.perf_counter()
        if coll.record.input_kind == "text":
            vectors = emb.embed([it.text for it in items])
        elif coll.record.input_kind == "image_metadata":
            image_emb: ImageMetadataEmbedder = emb  # type: ignore[assignment]
            if all(it.image is not None for it in items):
                vectors = image_emb.embed([it.image for it in items])  # type: ignore[misc]
            else:  # a text query (validation lets no other mix through)
                vectors = image_emb.embed_texts([it.text or "" for it in items])
        else:
            vectors = emb.embed(parsed)  # type: ignore[arg-type]
        self.metrics.observe_embed(emb.name, time.perf_counter() - started)
        if not np.isfinite(vectors).all():
            bad = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
            raise InvalidArgument(f"item {bad}: the embedding has non-finite values")
        if coll.record.metric == "cosine":
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return vectors.astype(np.float32)

    def ingest(self, name: str, items: Sequence[ItemInput]) -> list[ItemResult]:
        """Embed, label with the served model (if any) and upsert a batch, all or nothing.

        Returns per item its point id and, when a model is served, its five fields.
        """
        coll = self._get(check_name(name))
        self._check_writable(coll)
        rec = coll.record
        if rec.input_kind == "event":
            return self._ingest_events(coll, items)  # records its points in the metrics itself
        image_spec = rec.image  # parsed once per call, not once per item
        parsed = check_items(items, kind=rec.input_kind, dim=rec.dim, settings=self.settings,  # type: ignore[arg-type]
                             cosine=rec.metric == "cosine", image_spec=image_spec)
        vectors = self._embed(coll, items, parsed)
        ids = [point_id_for(name, it.id) if it.id else str(uuid.uuid4()) for it in items]
        # What a point shows as its text: the text itself, or the rendering of its image metadata.
        texts = ([render_image_metadata(it.image, image_spec) for it in items]  # type: ignore[arg-type]
                 if rec.input_kind == "image_metadata" else [it.text for it in items])
        payloads: list[dict[str, Any]] = []
        for it, text in zip(items, texts):
            payload: dict[str, Any] = {"external_id": it.id, "meta": it.metadata or {}}
            if rec.store_source and text is not None:
                payload["source"] = {"text": text}
                if it.image is not None:
                    payload["source"]["image"] = it.image.to_json()
            payloads.append(payload)
        with coll.lock:
            assigned = coll.model.assign(vectors) if coll.model else None
            fields = assigned.payloads() if assigned is not None else None
            if fields is not None:
                for payload, five in zip(payloads, fields):
                    payload.update(five)
            coll.check_open()
            self._write_points(coll, ids, vectors, payloads)
            rec.changes_total += len(ids)
            if assigned is not None:  # drift: what the served model saw of the newest ingests
                self._recent_window(name).add(assigned.model_version, assigned.rows, assigned.cluster_distance,
                                              assigned.is_anomaly)
        self.metrics.observe_ingest(name, len(items))
        labels = [Assignment(**five) for five in fields] if fields is not None else [None] * len(items)
        if assigned is not None and assigned.is_anomaly.any():
            self.anomaly_feed.publish(name, (
                PointView(point_id=ids[i], external_id=items[i].id, metadata=items[i].metadata or {},
                          text=texts[i] or "", assignment=labels[i], image=items[i].image)
                for i in np.flatnonzero(assigned.is_anomaly).tolist()
            ))
        return [ItemResult(point_id=pid, external_id=it.id, assignment=label)
                for pid, it, label in zip(ids, items, labels)]

    @staticmethod
    def _write_points(coll: _Collection, ids: Sequence[str], vectors: np.ndarray,
                      payloads: Sequence[dict[str, Any]]) -> None:
        """Upsert points into the vector log and the store as one step (caller holds ``coll.lock``).

        The log is appended first: a crash between the two leaves the doubt in the log's tail,
        which the next open repairs against the store; a failed upsert reconciles it now.
        """
        coll.vlog.append(ids, vectors)
        try:
            coll.store.upsert(ids, vectors, payloads)
        except BaseException:
            coll.vlog.reconcile(ids, coll.store)
            raise
        coll.vlog.mark_consistent()

    def delete_points(self, name: str, *, ids: Sequence[str] = (), point_ids: Sequence[str] = ()) -> int:
        """Delete points by caller id and/or point id; returns how many existed."""
        coll = self._get(check_name(name))
        self._check_writable(coll)
        targets = [point_id_for(name, i) for i in ids] + [self._check_point_id(p) for p in point_ids]
        if not targets:
            raise InvalidArgument("give at least one id or point_id to delete")
        with coll.lock:
            coll.check_open()
            existing = [p.id for p in coll.store.retrieve(targets)]
            if existing:
                coll.vlog.append(existing, None)
                try:
                    coll.store.delete(existing)
                except BaseException:
                    coll.vlog.reconcile(existing, coll.store)
                    raise
                coll.vlog.mark_consistent()
                coll.record.changes_total += len(existing)
        return len(existing)

    @staticmethod
    def _check_point_id(point_id: str) -> str:
        try:
            return parse_public_point_id(point_id)  # a UUID, or an attached collection's unsigned int
        except ValueError:
            raise InvalidArgument(f"point_id {point_id!r} is not a UUID (or, in an attached collection, "
                                  "an unsigned int)") from None

    @staticmethod
    def _view(point: Any, with_vector: bool = False) -> PointView:
        payload = point.payload
        return PointView(
            point_id=public_point_id(point.id), external_id=payload.get("external_id", ""), metadata=payload.get("meta", {}),
            text=(payload.get("source") or {}).get("text", ""), assignment=Assignment.from_payload(payload),
            vector=point.vector.tolist() if with_vector and point.vector is not None else None,
            image=ImageMetadataInput.from_json(payload["source"]["image"])
            if "image" in (payload.get("source") or {}) else None,
            source=source_view(payload.get("source")),
        )

    def get_point(self, name: str, *, id: str = "", point_id: str = "", with_vector: bool = False) -> PointView:
        """One point with its payload (and vector, if asked)."""
        coll = self._get(check_name(name))
        if bool(id) == bool(point_id):
            raise InvalidArgument("give exactly one of id or point_id")
        pid = point_id_for(name, id) if id else self._check_point_id(point_id)
        found = coll.store.retrieve([pid], with_vectors=with_vector)
        if not found:
            raise NotFound(f"point {id or point_id!r} not found in collection {name!r}")
        return self._view(found[0], with_vector)

    def _page(self, coll: _Collection, flt: PointFilter, page_size: int, token: str) -> tuple[list[PointView], str]:
        offset = self._check_point_id(token) if token else None
        points, nxt = coll.store.scroll(limit=check_page_size(page_size), offset=offset, flt=flt)
        return [self._view(p) for p in points], nxt or ""

    def list_cluster_members(self, name: str, cluster_id: int, *, page_size: int = 100, page_token: str = "") -> tuple[list[PointView], str]:
        """Points carrying ``cluster_id``, paged in point-id order."""
        coll = self._get(check_name(name))
        if coll.model is None:
            raise FailedPrecondition(f"collection {name!r} has no cluster model yet: start a clustering run")
        if coll.model.row_of(cluster_id) is None:
            raise NotFound(f"cluster {cluster_id} not in model v{coll.model.version} of {name!r}")
        return self._page(coll, PointFilter(must=(FieldEquals("cluster_id", cluster_id),)), page_size, page_token)

    def list_anomalies(self, name: str, *, page_size: int = 100, page_token: str = "") -> tuple[list[PointView], str]:
        """Flagged points, paged in point-id order."""
        coll = self._get(check_name(name))
        return self._page(coll, PointFilter(must=(FieldEquals("is_anomaly", True),)), page_size, page_token)

    # ------------------------------------------------------------------ reads with the model

    def classify(self, name: str, items: Sequence[ItemInput]) -> list[Assignment]:
        """Label items with the served model without storing them."""
        coll = self._get(check_name(name))
        rec = coll.record
        if rec.input_kind == "event":
            return self._classify_events(coll, items)
        parsed = check_items(items, kind=rec.input_kind, dim=rec.dim, settings=self.settings,  # type: ignore[arg-type]
                             cosine=rec.metric == "cosine", with_ids=False, image_spec=rec.image)
        model = coll.model
        if model is None:
            raise FailedPrecondition(f"collection {name!r} has no cluster model yet: start a clustering run")
        assigned = model.assign(self._embed(coll, items, parsed))
        return [Assignment(**five) for five in assigned.payloads()]

    def search(self, name: str, *, text: str | None = None, vector: VectorLike | None = None,
               limit: int = 10, cluster_id: int | None = None, image: ImageMetadataInput | None = None,
               event: dict[str, Any] | None = None) -> list[SearchHit]:
        """Nearest stored points to a text, vector, image metadata or event, optionally within one cluster."""
        coll = self._get(check_name(name))
        rec = coll.record
        if rec.input_kind == "event" or event is not None:
            if rec.input_kind != "event" or text is not None or vector is not None or image is not None:
                raise InvalidArgument(f"collection {name!r} is {rec.input_kind.upper()}: search it with "
                                      f"{'an event' if rec.input_kind == 'event' else 'its own kind of query'}")
            if event is None:
                raise InvalidArgument("give an event to search an EVENT collection")
            return self._search_event(coll, event, limit or 10, cluster_id)
        parsed = check_query(text, vector, kind=rec.input_kind, dim=rec.dim, settings=self.settings,  # type: ignore[arg-type]
                             cosine=rec.metric == "cosine", image=image, image_spec=rec.image)
        if limit == 0:
            limit = 10
        if not (1 <= limit <= 1000):
            raise InvalidArgument(f"limit must be in [1, 1000], got {limit}")
        flt = PointFilter(must=(FieldEquals("cluster_id", int(cluster_id)),)) if cluster_id is not None else None
        query = self._embed(coll, [ItemInput(text=text, vector=vector, image=image)], parsed)[0]
        return [SearchHit(point=self._view(p), score=s) for p, s in coll.store.search(query, limit=limit, flt=flt)]

    def subscribe_anomalies(self, name: str) -> Subscription[PointView]:
        """Watch the points flagged at ingest from now on (unsubscribe via ``anomaly_feed``)."""
        self._get(check_name(name))
        return self.anomaly_feed.subscribe(name)

    def explain(self, name: str, *, id: str = "", point_id: str = "", neighbours: int = 5) -> Explanation:
        """Why a point is (or is not) flagged, under the served model."""
        coll = self._get(check_name(name))
        model = coll.model
        if model is None:
            raise FailedPrecondition(f"collection {name!r} has no cluster model yet: start a clustering run")
        if coll.record.input_kind == "event" and self._event_model(coll) is None:
            # A refit switched the featurizer: stored vectors and the served model are in different
            # feature spaces until its re-cluster is served (Classify is refused the same way).
            raise FailedPrecondition(
                f"collection {name!r} has no cluster model on featurizer v{coll.record.featurizer_version} "
                "yet (a featurizer refit is under way or its clustering run has not finished)")
        if not (0 <= neighbours <= 100):
            raise InvalidArgument(f"neighbours must be in [0, 100], got {neighbours}")
        point = self.get_point(name, id=id, point_id=point_id, with_vector=True)
        vec = np.asarray(point.vector, dtype=np.float32)[None, :]
        rows, dist_all = model.distances(vec)
        row = int(rows[0])
        large = np.flatnonzero(model.large)
        ref = int(large[dist_all[0, large].argmin()])
        labels = model.assign(vec)
        normal = coll.store.search(vec[0], limit=neighbours + 1,
                                   flt=PointFilter(must=(FieldEquals("is_anomaly", False),)))
        contributions = []
        if coll.record.input_kind == "event" and coll.featurizer is not None and coll.featurizer.kind == "event":
            contributions = field_contributions(vec[0], model.centroids[ref], coll.featurizer.field_layout(),
                                                model.metric)
        return Explanation(
            point=point, model_version=model.version, scorer=model.scorer,
            cluster_id=int(model.cluster_ids[row]), distance=float(dist_all[0, row]),
            cluster_radius=float(model.radius[row]),
            distance_in_radii=float(dist_all[0, row] / max(model.radius[row], 1e-9)),
            reference_cluster_id=int(model.cluster_ids[ref]), reference_distance=float(dist_all[0, ref]),
            reference_radius=float(model.radius[ref]), anomaly_score=float(labels.anomaly_score[0]),
            threshold=float(model.thresholds[row]), is_anomaly=bool(labels.is_anomaly[0]),
            normal_neighbours=[SearchHit(point=self._view(p), score=sc) for p, sc in normal
                               if public_point_id(p.id) != point.point_id][:neighbours],
            anomaly_model=model.anomaly_summary(), field_contributions=contributions,
        )

    def list_clusters(self, name: str) -> tuple[int, list[ClusterInfo]]:
        """Clusters of the served model with live sizes and anomaly counts."""
        coll = self._get(check_name(name))
        model = coll.model
        if model is None:
            raise FailedPrecondition(f"collection {name!r} has no cluster model yet: start a clustering run")
        sizes = coll.store.value_counts("cluster_id")
        anomalies = coll.store.value_counts("cluster_id", PointFilter(must=(FieldEquals("is_anomaly", True),)))
        full_radius = model.metrics.get("radius_full") or [float(r) for r in model.radius]
        return model.version, [
            ClusterInfo(cluster_id=int(cid), size=sizes.get(int(cid), 0), radius=float(full_radius[r]),
                        anomaly_count=anomalies.get(int(cid), 0), populated=bool(model.populated[r]))
            for r, cid in enumerate(model.cluster_ids)
        ]

    # ------------------------------------------------------------------ clustering runs

    def start_clustering(self, name: str, request: RunRequest, *, trigger: str = "manual",
                         attempt: int = 0) -> RunInfo:
        """Validate and queue a clustering run; returns it (state PENDING).

        Args:
            name: The collection.
            request: k or a k range (neither = the collection's default_k), seed, sample size.
            trigger: What started it (manual; the scheduler passes interval, changes, drift or restart).
            attempt: Re-run count of an interrupted run (the scheduler's restart re-runs).
        """
        coll = self._get(check_name(name))
        req = check_run_request(request, point_count=coll.store.count(),
                                default_k=int(coll.record.settings.default_k or 8))
        return self._start_run(name, req, lambda ctx: self._run(coll, req, ctx), trigger=trigger, attempt=attempt)

    def list_models(self, name: str) -> list[ModelInfo]:
        """Every saved model version of a collection, oldest first."""
        coll = self._get(check_name(name))
        out = []
        for v in coll.models.versions():
            try:
                out.append(self._model_info(coll, coll.models.load_meta(v)))
            except FileNotFoundError:  # deleted by a run's pruning since the listing
                continue
        return out

    def get_model(self, name: str, version: int) -> ModelInfo:
        """One model version (0 = the served one)."""
        coll = self._get(check_name(name))
        version = version or coll.record.served_version
        try:
            return self._model_info(coll, coll.models.load_meta(version))
        except FileNotFoundError:  # never saved, or deleted by a run's pruning
            raise NotFound(f"model version {version} not found in collection {name!r}"
                           + ("" if coll.record.served_version else " (no model yet)")) from None

    @staticmethod
    def _model_info(coll: _Collection, meta: dict[str, Any]) -> ModelInfo:
        return ModelInfo(version=int(meta["version"]), k=int(meta["k"]),
                         served=int(meta["version"]) == coll.record.served_version, created_at=meta["created_at"],
                         cluster_ids=[int(i) for i in meta["cluster_ids"]], params=meta["params"],
                         metrics=meta["metrics"])

    def rollback(self, name: str, version: int, *, trigger: str = "manual", attempt: int = 0) -> RunInfo:
        """Serve an earlier model version again: a run that rewrites every point's fields to it."""
        coll = self._get(check_name(name))
        if version not in coll.models.versions():
            raise NotFound(f"model version {version} not found in collection {name!r}; "
                           f"saved versions: {coll.models.versions()}")
        if version == coll.record.served_version:
            raise FailedPrecondition(f"model version {version} is already served in {name!r}")
        model = coll.models.load(version)
        self._check_model_featurizer(coll, model)

        def job(ctx: RunContext) -> None:
            ctx.info.model_version, ctx.info.k = version, model.k
            ctx.progress("reading", 0.0, persist=True)
            self._publish(coll, model, self._live_vectors(coll, ctx), ctx, start=0.05)

        return self._start_run(name, RunRequest(k=model.k, rollback_to=version), job, trigger=trigger,
                               attempt=attempt)

    def _start_run(self, name: str, req: RunRequest, job: Callable[[RunContext], None], *,
                   trigger: str = "manual", attempt: int = 0) -> RunInfo:
        """Queue a run (FAILED_PRECONDITION while one is active or an export holds runs off)."""
        return self.runs.start(name, req, job, trigger=trigger, attempt=attempt)

    def hold_runs(self, name: str) -> AbstractContextManager[None]:
        """No run (clustering, rollback, refit) starts on ``name`` inside this block; refused while one is active."""
        return self.runs.hold(name)

    @contextmanager
    def reserve_name(self, name: str) -> Iterator[None]:
        """Keep ``name`` from being created while an import builds it; ALREADY_EXISTS if taken."""
        with self._lock:
            if name in self._collections or name in self._reserved_names:
                raise AlreadyExists(f"collection {name!r} already exists")
            self._reserved_names.add(name)
        try:
            yield
        finally:
            with self._lock:
                self._reserved_names.discard(name)

    def watch_run(self, name: str, run_id: str, *, is_active: Callable[[], bool] = lambda: True) -> Iterator[RunInfo]:
        """A run's state now and after each change of state, phase or progress, until it ends."""
        self._get(check_name(name))
        return self.runs.watch(name, run_id, is_active=is_active)

    def get_run(self, name: str, run_id: str) -> RunInfo:
        """A run's state and progress."""
        self._get(check_name(name))
        return self.runs.get(name, run_id)

    def cancel_run(self, name: str, run_id: str) -> RunInfo:
        """Ask a run to stop; the previous model stays served."""
        self._get(check_name(name))
        return self.runs.cancel(name, run_id)

    # ------------------------------------------------------------------ scheduling and drift

    def _recent_window(self, name: str) -> RecentWindow:
        window = self._recent.get(name)
        if window is None:
            window = self._recent.setdefault(name, RecentWindow(self.settings.drift_window))
        return window

    def drift(self, name: str) -> DriftReport:
        """How far a collection has moved from its served model (see :mod:`embcluster.drift`).

        Compares the served version with the one it replaced (cluster-share PSI of their full
        passes, centroid shift of matched clusters) and the served version's fit sample with
        the points labelled online since it was served (share PSI, distance quantiles and KS,
        anomaly rate). Numbers that cannot be measured yet are None.
        """
        coll = self._get(check_name(name))
        model = coll.model
        window = self._recent_window(name).snapshot()
        if model is None:
            return DriftReport(collection=name, model_version=0, previous_version=0, recent_points=0,
                               psi_shares=None, psi_versions=None, centroid_shift_mean=None,
                               centroid_shift_max=None, distance_p50_fit=None, distance_p90_fit=None,
                               distance_p50_recent=None, distance_p90_recent=None, distance_ks=None,
                               anomaly_rate_fit=None, anomaly_rate_recent=None)
        previous = int(model.params.get("previous_version") or 0)
        key = (name, model.version)
        versions = self._version_drift.get(key)
        if versions is None:  # fixed for a served version: computed once
            try:
                prev_model = coll.models.load(previous) if previous else None
            except FileNotFoundError:  # pruned (keep_model_versions): no version comparison
                prev_model = None
            versions = version_drift(model, prev_model)
            with self._lock:  # the scheduler and a scrape may both get here
                self._version_drift = {k: v for k, v in self._version_drift.items() if k[0] != name}
                self._version_drift[key] = versions
        recent = recent_drift(model, window)
        return DriftReport(
            collection=name, model_version=model.version, previous_version=previous,
            recent_points=window.count if window.model_version == model.version else 0,
            psi_shares=recent["psi_shares"], psi_versions=versions["psi_versions"],
            centroid_shift_mean=versions["centroid_shift_mean"], centroid_shift_max=versions["centroid_shift_max"],
            distance_p50_fit=recent["distance_p50_fit"], distance_p90_fit=recent["distance_p90_fit"],
            distance_p50_recent=recent["distance_p50_recent"], distance_p90_recent=recent["distance_p90_recent"],
            distance_ks=recent["distance_ks"], anomaly_rate_fit=recent["anomaly_rate_fit"],
            anomaly_rate_recent=recent["anomaly_rate_recent"],
        )

    def collection_names(self) -> list[str]:
        """Names of the open collections."""
        with self._lock:
            return sorted(self._collections)

    def schedule_state(self, name: str) -> ScheduleState:
        """What the scheduler needs to decide whether ``name`` is due for a run."""
        coll = self._get(name)
        rec = coll.record
        return ScheduleState(
            schedule=rec.settings.schedule, default_k=int(rec.settings.default_k or 8),
            changes_since_run=rec.changes_total - rec.changes_at_run, changes_total=rec.changes_total,
            last_run_at=rec.last_run_at, served_version=rec.served_version,
            catching_up=self._catching_up(name), served_k=coll.model.k if coll.model is not None else 0,
            attached=bool(rec.external_collection), model_current=self._model_current(coll),
        )

    def _model_current(self, coll: _Collection) -> bool:
        """The served model was fitted with the collection's present settings and featurizer."""
        model, rec = coll.model, coll.record
        if model is None or (rec.input_kind == "event" and self._event_model(coll) is None):
            return False
        s, p = rec.settings, model.params
        return (float(s.contamination or 0.01) == float(p.get("contamination", -1))
                and int(s.min_cluster_size or 1) == int(p.get("min_cluster_size", -1))
                and (s.anomaly_scorer or DEFAULT_SCORER) == p.get("anomaly_scorer")
                and (s.threshold_mode or "contamination") == p.get("threshold_mode")
                and s.anomaly_threshold == p.get("anomaly_threshold"))

    def state_key(self, name: str) -> tuple[int, int, int] | None:
        """A key that changes whenever the collection's counts may have (None = they may change any time).

        Lets scrapes reuse counts instead of scanning the store: ingests and deletes move the change
        counter and a run switches the served version; while a run or catch-up relabels points, or
        when the points belong to someone else (attached), there is no such key.
        """
        coll = self._get(name)
        rec = coll.record
        if rec.external_collection or self.runs.active(name) is not None:
            return None
        if self._catching_up(name):
            return None
        return rec.changes_total, rec.served_version, rec.featurizer_version

    def _catching_up(self, name: str) -> bool:
        """Whether the start-up catch-up of ``name`` is still relabelling."""
        return any(t.is_alive() and t.name == f"catch-up-{name}" for t in self._catchups)

    def point_count(self, name: str) -> int:
        """Points stored in a collection."""
        return int(self._get(name).store.count())

    def save_counters(self, name: str) -> None:
        """Persist the collection record (the scheduler's change counter) now."""
        coll = self._get(name)
        with coll.lock:
            if not coll.closed:
                coll.save()

    def _live_vectors(self, coll: _Collection, ctx: RunContext) -> LiveSet:
        """The vector log's live set, checked against the store (rebuilt or compacted if needed)."""
        with coll.lock:  # ingest appends and upserts under this lock: the pair is consistent
            live = coll.vlog.live()
            stored = coll.store.count()
        if len(live) != stored or coll.record.external_collection:  # an attached one changes behind our back
            logger.warning("vector log of %s has %d live points, the store %d: rebuilding it",
                           coll.record.name, len(live), stored)
            ctx.progress("rebuilding_vector_log", 0.0, persist=True)
            with coll.lock:  # no appends while the file is replaced
                coll.vlog.rebuild(coll.store, self.settings.page_size)
                live = coll.vlog.live()
        elif coll.vlog.records > 2 * len(live) + 10_000:
            with coll.lock:
                live = coll.vlog.live()  # again: appends may have come since the check
                coll.vlog.compact(live)
                live = LiveSet(np.arange(coll.vlog.records, dtype=np.int64), coll.vlog.records)  # all live now
        return live

    def _run(self, coll: _Collection, req: RunRequest, ctx: RunContext) -> None:
        rec = coll.record
        settings = rec.settings
        seed = int(req.seed if req.seed is not None else (settings.seed or 0))
        with coll.lock:
            version = rec.next_version
            rec.next_version += 1  # never reuse a version, even one whose run failed
            changes_snapshot = rec.changes_total  # the scheduler's change count this run covers
            rec.last_run_at = time.time()
            coll.save()
        ctx.info.model_version = version
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        ctx.progress("reading", 0.0, persist=True)
        live = self._live_vectors(coll, ctx)
        total = len(live)
        k_max = req.k_range[1] if req.k_range else int(req.k or 2)
        if total < k_max:
            raise FailedPrecondition(f"the collection has {total} points, fewer than k={k_max}")
        sample_size = min(total, req.sample_size or max(10_000, 256 * k_max))
        ctx.progress("sampling", 0.02)
        sample = coll.vlog.sample(live, sample_size, seed)
        n_init = req.n_init or default_n_init(len(sample), k_max)
        timings["read_sample_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        ctx.progress("fitting", 0.05, persist=True)
        prev = self._event_model(coll)  # None when it is in another feature space (a refit)
        if req.k_range:
            k, fit, table = choose_k(
                sample, req.k_range[0], req.k_range[1], metric=rec.metric, seed=seed,  # type: ignore[arg-type]
                n_init=n_init, on_step=lambda i, n: ctx.progress("fitting", 0.05 + 0.3 * i / n),
            )
            ctx.info.k_scores = [asdict(s) for s in table]
        else:
            k = int(req.k or 2)
            warm = prev.centroids if prev is not None and prev.k == k else None
            # A warm start needs few iterations, and each further one only drifts the boundaries.
            fit = fit_kmeans(sample, k, metric=rec.metric, seed=seed, n_init=n_init, init=warm,  # type: ignore[arg-type]
                             max_iter=WARM_MAX_ITER if warm is not None else 50)
        ctx.info.k = k
        centroids = fit.centroids
        refine_batches = min(MAX_REFINE_BATCHES, (total - 1) // max(len(sample), 1))
        if refine_batches > 0:  # the collection is larger than the sample: let the fit see more of it
            ctx.progress("refining", 0.3, persist=True)
            centroids = refine_minibatch(
                centroids, np.bincount(fit.labels, minlength=k),
                (coll.vlog.sample(live, len(sample), seed + 1 + b) for b in range(refine_batches)),
                metric=rec.metric,  # type: ignore[arg-type]
            )
        timings["fit_s"] = time.perf_counter() - t0
        ctx.progress("fitting", 0.35, persist=True)

        t0 = time.perf_counter()
        model = self._calibrate(coll, version, sample, centroids, seed=seed, n_init=n_init,
                                sample_size=len(sample), backend=fit.backend, inertia=fit.inertia)
        timings["calibrate_s"] = time.perf_counter() - t0  # incl. the ensemble scorer's own fits
        model.params["refine_batches"] = refine_batches
        model.params["trigger"] = ctx.info.trigger  # manual, or what the scheduler saw
        if rec.input_kind == "event":  # the feature space this model lives in
            model.params["featurizer_version"] = rec.featurizer_version
        model.metrics["timings"] = timings
        model.metrics["k_scores"] = ctx.info.k_scores
        coll.models.save(model)  # before any point carries this version
        self._publish(coll, model, live, ctx, start=0.35)
        with coll.lock:
            rec.changes_at_run = max(rec.changes_at_run, changes_snapshot)
            coll.save()

    def _publish(self, coll: _Collection, model: ClusterModel, live: LiveSet, ctx: RunContext, *, start: float) -> None:
        """Write ``model`` onto every point, switch the served version to it, catch up."""
        rec = coll.record
        t0 = time.perf_counter()
        try:
            stats = self._write_back(coll, model, coll.vlog.iter_pages(live, self.settings.page_size), ctx,
                                     len(live), phase="assigning", start=start, span=0.9 - start)
            model.metrics.setdefault("timings", {})["write_back_s"] = time.perf_counter() - t0
            model.metrics.update(stats)
            coll.models.save_metadata(model)
            ctx.progress("switching", 0.9, persist=True)  # the last point where a cancel is honoured
        except BaseException:
            self._revert(coll, model.version)
            raise
        with coll.lock:
            rec.served_version = model.version
            coll.model = model
            coll.save()
            self._recent_window(rec.name).reset(model.version)  # drift: a new version's window
        logger.info("collection %s now serves model v%d (k=%d)", rec.name, model.version, model.k)
        try:
            self._prune_models(coll, model)
        except OSError as exc:  # housekeeping: the run is committed, the next one tries again
            logger.warning("collection %s: could not delete old model versions: %s", rec.name, exc)
        # Switched: the run is committed; it finishes its catch-up whatever is asked now.
        ctx.progress("catching_up", 0.95, persist=True, cancellable=False)
        # Points written during the run may carry a label computed from a vector they no longer
        # have (replaced after the pass read it): relabel every id the log saw since the snapshot.
        self._relabel_ids(coll, coll.vlog.ids_since(live.end))
        self._catch_up(coll)

    def _prune_models(self, coll: _Collection, served: ClusterModel) -> None:
        """Delete model versions beyond ``keep_model_versions`` (never the served one or its predecessor)."""
        keep_n = self.settings.keep_model_versions
        versions = coll.models.versions()
        if not keep_n or len(versions) <= keep_n:
            return
        keep = set(versions[-keep_n:]) | {served.version, int(served.params.get("previous_version") or 0)}
        doomed = [v for v in versions if v not in keep]
        for v in doomed:
            coll.models.delete(v)
        if doomed:
            logger.info("collection %s: deleted model versions %s (keep_model_versions=%d)",
                        coll.record.name, _ranges(doomed), keep_n)

    def _calibrate(self, coll: _Collection, version: int, sample: np.ndarray, centroids: np.ndarray, *,
                   seed: int, n_init: int, sample_size: int, backend: str, inertia: float) -> ClusterModel:
        """Populated clusters, radii, stable ids and the anomaly threshold, from the fit sample."""
        rec = coll.record
        metric = rec.metric
        settings = rec.settings
        k = len(centroids)
        dist_all = np.maximum(pairwise_distance(sample, centroids, metric), 0.0)  # type: ignore[arg-type]
        sizes = np.bincount(nearest_rows(dist_all), minlength=k)
        populated = sizes >= int(settings.min_cluster_size or 1)
        if not populated.any():
            populated[:] = True
        rows = nearest_rows(dist_all, populated)
        dist = dist_all[np.arange(len(rows)), rows]
        sq = np.bincount(rows, weights=dist**2, minlength=k)
        counts = np.bincount(rows, minlength=k)
        radius = np.sqrt(sq / np.maximum(counts, 1))
        large = large_clusters(counts)
        prev = self._event_model(coll)  # None when it is in another feature space (a refit)
        ids, report, next_id = match_clusters(
            rows, k, prev.assign(sample).cluster_id if prev is not None else None,
            prev.cluster_ids if prev is not None else None, next_id=rec.next_cluster_id,
        )
        with coll.lock:
            rec.next_cluster_id = next_id
            coll.save()
        scorer = settings.anomaly_scorer or DEFAULT_SCORER
        mode = settings.threshold_mode or "contamination"
        contamination = float(settings.contamination or 0.01)
        components = fit_components(sample, metric=metric, seed=seed) if scorer == "ensemble" else []  # type: ignore[arg-type]
        if scorer == "ensemble" and not components:  # fewer than 4 sample points: nothing to fit apart
            scorer = "cblof"
        model = ClusterModel(
            version=version, metric=metric, centroids=centroids.astype(np.float32),  # type: ignore[arg-type]
            cluster_ids=ids, populated=populated, radius=radius, large=large, scorer=scorer,
            threshold_mode=mode, thresholds=np.full(k, np.inf), components=tuple(components),
            params={"k": k, "seed": seed, "n_init": n_init, "sample_size": sample_size, "backend": backend,
                    "contamination": contamination, "min_cluster_size": int(settings.min_cluster_size or 1),
                    "anomaly_scorer": scorer, "threshold_mode": mode, "anomaly_threshold": settings.anomaly_threshold,
                    "previous_version": prev.version if prev else 0},
            created_at=utcnow(),
        )
        scores = model.assign(sample).anomaly_score  # the same code path as ingest and write-back
        model.thresholds = calibrate_thresholds(mode, scores, rows, k, contamination=contamination,
                                                absolute=settings.anomaly_threshold)
        flags = decide(scores, rows, model.thresholds)
        model.metrics = {"inertia_sample": inertia, "sizes_sample": [int(s) for s in sizes],
                         **quality(sample, rows, metric=metric, seed=seed),  # type: ignore[arg-type]
                         "anomalies_sample": int(flags.sum()),
                         "anomaly": anomaly_summary(scorer, counts, large & populated, components),
                         "matching": asdict(report),
                         "drift_fit": fit_summary(rows, dist, flags, k)}
        return model

    def _write_back(self, coll: _Collection, model: ClusterModel, pages: Iterator[tuple[Sequence[PointId], np.ndarray]],
                    ctx: RunContext | None, total: int, *, phase: str, start: float, span: float,
                    while_served: bool = False) -> dict[str, Any]:
        """Label every point of ``pages`` with ``model``; returns full-pass statistics.

        With ``while_served`` (catch-ups), stop as soon as ``model`` is no longer the served one.

        Each page is read, labelled and written under the collection lock, so an ingest that
        replaces a point cannot interleave between reading its vector and writing its label.
        """
        k = model.k
        sq = np.zeros(k)
        counts = np.zeros(k, dtype=np.int64)
        anomalies = 0
        done = 0
        while True:
            with coll.lock:
                coll.check_open()
                if while_served and coll.model is not model:
                    break  # a run switched the served version meanwhile: its own catch-up takes over
                page = next(pages, None)
                if page is None:
                    break
                ids, x = page
                labels = model.assign(x)
                coll.store.set_fields(list(zip(ids, labels.payloads())))
            sq += np.bincount(labels.rows, weights=labels.cluster_distance**2, minlength=k)
            counts += np.bincount(labels.rows, minlength=k)
            anomalies += int(labels.is_anomaly.sum())
            done += len(ids)
            if ctx is not None:
                ctx.info.points_labelled = done
                ctx.progress(phase, start + span * done / max(total, 1))
        return {
            "points_labelled": done,
            "sizes_full": [int(c) for c in counts],
            "radius_full": [float(r) for r in np.sqrt(sq / np.maximum(counts, 1))],
            "anomalies_full": anomalies,
        }

    def _relabel_ids(self, coll: _Collection, ids: list[str]) -> None:
        """Relabel specific points with the served model, reading their current vectors."""
        model = coll.model
        if model is None or not ids:
            return

        def pages() -> Iterator[tuple[list[str], np.ndarray]]:
            for s in range(0, len(ids), self.settings.page_size):
                found = coll.store.retrieve(ids[s:s + self.settings.page_size], with_vectors=True)
                if found:
                    yield [p.id for p in found], np.stack([p.vector for p in found]).astype(np.float32)  # type: ignore[misc]

        self._write_back(coll, model, pages(), None, len(ids), phase="catching_up", start=0, span=0,
                         while_served=True)

    @staticmethod
    def _stale(coll: _Collection) -> PointFilter:
        """Points whose fields are not the served version's (labelled points, when none is served)."""
        if coll.model is None:
            return PointFilter(must_not=(FieldMissing("model_version"),))
        return PointFilter(must_not=(FieldEquals("model_version", coll.model.version),))

    def _catch_up(self, coll: _Collection) -> int:
        """Put every point on the served version: relabel stale points, or clear the fields if none is served."""
        model = coll.model
        stale = self._stale(coll)
        total = coll.store.count(stale)
        if not total:
            return 0
        if model is None:
            while True:  # a run that never got served left its fields: remove them
                with coll.lock:
                    coll.check_open()
                    if coll.model is not None:
                        return 0
                    points, _ = coll.store.scroll(limit=self.settings.page_size, flt=stale, with_payload=False)
                    if not points:
                        return total
                    coll.store.delete_fields([p.id for p in points], RESERVED_FIELDS)
        stats = self._write_back(coll, model, coll.store.iter_vectors(page_size=self.settings.page_size, flt=stale),
                                 None, total, phase="catching_up", start=0, span=0, while_served=True)
        logger.info("caught up %d points of %s to model v%d", stats["points_labelled"], coll.record.name,
                    model.version)
        return int(stats["points_labelled"])

    def _catch_up_safely(self, coll: _Collection) -> None:
        try:
            self._catch_up(coll)
        except Exception:
            logger.exception("catch-up of %s failed; it is retried at the next start", coll.record.name)

    def _revert(self, coll: _Collection, version: int) -> None:
        """Undo a failed run's partial write-back: points go back to the served version (or none)."""
        try:
            self._catch_up(coll)
        except Exception:
            logger.exception("reverting the partial write-back of v%d in %s failed; the next start retries",
                             version, coll.record.name)


def _ranges(values: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"v1-v3, v7"`` (a log line, not a list of thousands)."""
    spans: list[tuple[int, int]] = []
    for v in values:
        if spans and v == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], v)
        else:
            spans.append((v, v))
    return ", ".join(f"v{a}" if a == b else f"v{a}-v{b}" for a, b in spans)
