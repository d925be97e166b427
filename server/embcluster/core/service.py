"""The composition root: :class:`EmbclusterService`, a thin facade over the core's parts.

It builds the parts (registry, labeller, clustering runs, featurizer life cycle, points,
status, scheduler), opens the data directory and repairs interrupted work at start-up, and
forwards each public call to the part that owns it. See docs/architecture.md.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..anomaly.feed import AnomalyFeed, Subscription
from ..cluster.lifecycle import ClusterEvent
from ..config import Settings
from ..drift import RecentWindows
from ..embed.events import EventSchema
from ..embed.registry import EmbedderRegistry
from ..metrics import ServiceMetrics
from ..report import ReportData
from ..runs import RunManager
from ..scheduler import AutoRunner, ScheduleState
from ..schema import (
    Assignment,
    AttachSpec,
    ClusterDetail,
    ClusterInfo,
    ClusterListing,
    CollectionInfo,
    CollectionSettings,
    CollectionSpec,
    DriftReport,
    Explanation,
    ImageMetadataInput,
    ItemInput,
    ItemResult,
    ModelInfo,
    PointView,
    RunInfo,
    RunRequest,
    SearchGroup,
    SearchHit,
    VectorLike,
)
from ..store import make_store_factory
from ..store.base import StoreFactory
from .clustering import ClusterRuns
from .featurizers import FeaturizerLifecycle
from .labelling import Labeller, stale_filter
from .points import Points
from .registry import CollectionRegistry, Kinds
from .report import RenderedReport, ReportRevision, Reports
from .status import CollectionStatus

__all__ = ["EmbclusterService"]

logger = logging.getLogger(__name__)


class EmbclusterService:
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
        self.store_factory = store_factory or make_store_factory(settings)
        self.runs = RunManager(settings.run_workers)
        self.metrics = ServiceMetrics()  # its own registry: several services may share a process
        feed: AnomalyFeed[PointView] = AnomalyFeed()
        self.kinds = Kinds(settings, self.embedders, self.metrics)
        # a factory made here is closed by close()
        self.registry = CollectionRegistry(settings, self.store_factory, self.runs, self.kinds,
                                           owns_factory=store_factory is None)
        windows = RecentWindows(settings.drift_window)
        self.labeller = Labeller(settings)
        self.clustering = ClusterRuns(settings, self.registry, self.runs, self.labeller, windows)
        self.featurizers = FeaturizerLifecycle(settings, self.registry, self.kinds.event, self.clustering)
        self.points = Points(settings, self.registry, windows, self.metrics, feed, self.featurizers)
        self.status = CollectionStatus(self.registry, self.runs, self.labeller, windows)
        self.reports = Reports(settings, self.registry, self.points)
        self.registry.on_unregister.append(self.status.forget)
        self.registry.on_deleted += [windows.forget, self.metrics.forget_collection,
                                     lambda name: self.anomaly_feed.close(name), self.clustering.event_feed.close]
        self.clustering.on_published.append(
            lambda name, version, events: self.metrics.observe_cluster_events(name, (e.kind for e in events)))
        self.metrics.watch(self)
        self.runs.on_finished.append(self.metrics.observe_run)
        self.autorun = AutoRunner(self, settings)  # the scheduler

    @property
    def anomaly_feed(self) -> AnomalyFeed[PointView]:
        """Where points flagged at ingest are published (replaceable, e.g. by one with a smaller capacity)."""
        return self.points.feed

    @anomaly_feed.setter
    def anomaly_feed(self, feed: AnomalyFeed[PointView]) -> None:
        self.points.feed = feed

    # ------------------------------------------------------------------ life cycle

    def open(self, *, background: bool = True) -> None:
        """Open every collection under the data directory and repair interrupted work.

        Args:
            background: The server's start (default): interrupted runs are marked failed and
                re-run, interrupted write-backs and refits are repaired, the scheduler starts.
                ``False`` (offline tools such as ``embcluster export --data-dir``) opens the
                collections as they are and leaves all of that to the next server start.
        """
        for coll, interrupted in self.registry.open_all(mark_interrupted=background):
            if not background:
                continue
            if interrupted:  # re-run the newest one once the start-up catch-up is done
                self.autorun.add_restart(coll.record.name, interrupted[-1])
            self.featurizers.repair_on_open(coll)  # EVENT: finish a refit a crash interrupted
            if not interrupted:  # EVENT: a fit due before a crash or while a run was active
                self.featurizers.maybe_auto_refit(coll)
            if coll.store.count(stale_filter(coll)):  # a run died mid write-back: undo it
                self.labeller.start_catch_up(coll)
        if background:
            self.autorun.start()

    def close(self) -> None:
        """Stop the scheduler, runs and catch-ups, and close every store; each step is logged at INFO.

        What a later start redoes anyway is not finished here: a cancelled run's partial
        write-back and a catch-up in progress stay as they are (durable, and marked by their
        ``model_version``) for the catch-up every start performs.
        """
        started = time.perf_counter()
        self.autorun.stop()
        self.labeller.stop()  # before the runs: a cancelled run's revert is a catch-up, and ends at once
        self.runs.shutdown()
        self.labeller.join(timeout=30)
        took = time.perf_counter() - started
        logger.log(logging.INFO if took >= 0.1 else logging.DEBUG, "shutdown: scheduler, runs and catch-ups "
                   "stopped in %.1f s", took)
        self.kinds.batchers.close()  # texts still queued are embedded (their callers then write) or failed
        self.registry.close()

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait for start-up catch-ups and active runs (tests and tools)."""
        self.labeller.join(timeout=timeout)
        for name in self.registry.names():
            self.runs.wait(name, timeout=timeout)

    # ------------------------------------------------------------------ collections

    def create_collection(self, spec: CollectionSpec) -> CollectionInfo:
        """Create a collection; its embedder's name and fingerprint are recorded."""
        return self.status.info(self.registry.create(spec))

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
        return self.status.info(self.registry.attach(spec))

    def get_collection(self, name: str) -> CollectionInfo:
        """A collection with live counts."""
        return self.status.get_collection(name)

    def list_collections(self) -> list[CollectionInfo]:
        """Every collection, by name."""
        return self.status.list_collections()

    def update_collection(self, name: str, settings: CollectionSettings) -> CollectionInfo:
        """Change mutable settings; they apply from the next run."""
        return self.status.update_collection(name, settings)

    def delete_collection(self, name: str) -> bool:
        """Delete a collection, its points and models (an active run is cancelled first)."""
        return self.registry.delete(name)

    def collection_names(self) -> list[str]:
        """Names of the open collections."""
        return self.registry.names()

    def reserve_name(self, name: str) -> AbstractContextManager[None]:
        """Keep ``name`` from being created while an import builds it; ALREADY_EXISTS if taken."""
        return self.registry.reserve_name(name)

    # ------------------------------------------------------------------ points

    def ingest(self, name: str, items: Sequence[ItemInput]) -> list[ItemResult]:
        """Embed, label with the served model (if any) and upsert a batch, all or nothing.

        Returns per item its point id and, when a model is served, its five fields.
        """
        return self.points.ingest(name, items)

    def delete_points(self, name: str, *, ids: Sequence[str] = (), point_ids: Sequence[str] = ()) -> int:
        """Delete points by caller id and/or point id; returns how many existed."""
        return self.points.delete_points(name, ids=ids, point_ids=point_ids)

    def get_point(self, name: str, *, id: str = "", point_id: str = "", with_vector: bool = False) -> PointView:
        """One point with its payload (and vector, if asked)."""
        return self.points.get_point(name, id=id, point_id=point_id, with_vector=with_vector)

    def list_cluster_members(self, name: str, cluster_id: int, *, page_size: int = 100,
                             page_token: str = "") -> tuple[list[PointView], str]:
        """Points carrying ``cluster_id``, paged in point-id order."""
        return self.points.list_cluster_members(name, cluster_id, page_size=page_size, page_token=page_token)

    def list_anomalies(self, name: str, *, page_size: int = 100, page_token: str = "") -> tuple[list[PointView], str]:
        """Flagged points, paged in point-id order."""
        return self.points.list_anomalies(name, page_size=page_size, page_token=page_token)

    def list_points(self, name: str, *, cluster_id: int | None = None, anomaly: bool | None = None,
                    model_version: int | None = None, page_size: int = 100,
                    page_token: str = "") -> tuple[list[PointView], str]:
        """Every point (or those matching the filters), paged, each exactly once (:meth:`Points.list_points`)."""
        return self.points.list_points(name, cluster_id=cluster_id, anomaly=anomaly, model_version=model_version,
                                       page_size=page_size, page_token=page_token)

    def classify(self, name: str, items: Sequence[ItemInput]) -> list[Assignment]:
        """Label items with the served model without storing them."""
        return self.points.classify(name, items)

    def search(self, name: str, *, text: str | None = None, vector: VectorLike | None = None,
               limit: int = 10, cluster_id: int | None = None, image: ImageMetadataInput | None = None,
               event: dict[str, Any] | None = None, ef: int = 0, exact: bool = False) -> list[SearchHit]:
        """Nearest stored points to a text, vector, image metadata or event, optionally within one cluster
        (:meth:`Points.search`: ``ef`` or ``exact`` for this search)."""
        return self.points.search(name, text=text, vector=vector, limit=limit, cluster_id=cluster_id, image=image,
                                  event=event, ef=ef, exact=exact)

    def search_groups(self, name: str, *, text: str | None = None, vector: VectorLike | None = None,
                      image: ImageMetadataInput | None = None, event: dict[str, Any] | None = None,
                      groups: int = 0, group_size: int = 0, limit: int = 0,
                      cluster_id: int | None = None, ef: int = 0, exact: bool = False) -> list[SearchGroup]:
        """The best hits per cluster, best cluster first, with the clusters' labels (:meth:`Points.search_groups`)."""
        return self.points.search_groups(name, text=text, vector=vector, image=image, event=event, groups=groups,
                                         group_size=group_size, limit=limit, cluster_id=cluster_id, ef=ef, exact=exact)

    def subscribe_anomalies(self, name: str) -> Subscription[PointView]:
        """Watch the points flagged at ingest from now on (unsubscribe via ``anomaly_feed``)."""
        return self.points.subscribe_anomalies(name)

    def explain(self, name: str, *, id: str = "", point_id: str = "", neighbours: int = 5) -> Explanation:
        """Why a point is (or is not) flagged, under the served model."""
        return self.points.explain(name, id=id, point_id=point_id, neighbours=neighbours)

    def list_clusters(self, name: str) -> tuple[int, list[ClusterInfo]]:
        """Clusters of the served model with live sizes and anomaly counts."""
        return self.points.list_clusters(name)

    def cluster_listing(self, name: str) -> ClusterListing:
        """Clusters of the served model, sizes counted at one moment, and whether they are provisional."""
        return self.points.cluster_listing(name)

    def report(self, name: str, *, sample_size: int = 0, fit_message: bool = True) -> RenderedReport:
        """The cluster report of the served model as one self-contained HTML file (see :class:`Reports`).

        Args:
            name: The collection.
            sample_size: Most points drawn on the map (0 = 10,000; at most 50,000).
            fit_message: Refuse HTML over the gRPC message limit (False: the live view, over HTTP).
        """
        return self.reports.render(name, sample_size=sample_size, fit_message=fit_message)

    def report_revision(self, name: str) -> ReportRevision:
        """Which report ``name`` has now (its served version), without counting anything."""
        return self.reports.revision(name)

    def report_data(self, name: str, *, sample_size: int = 0) -> ReportData:
        """What :meth:`report` shows, before rendering."""
        return self.reports.data(name, sample_size=sample_size)

    # ------------------------------------------------------------------ runs and models

    def start_clustering(self, name: str, request: RunRequest, *, trigger: str = "manual",
                         attempt: int = 0, trigger_detail: str = "") -> RunInfo:
        """Validate and queue a clustering run; returns it (state PENDING). See :class:`ClusterRuns`."""
        return self.clustering.start_clustering(name, request, trigger=trigger, attempt=attempt,
                                                trigger_detail=trigger_detail)

    def rollback(self, name: str, version: int, *, trigger: str = "manual", attempt: int = 0) -> RunInfo:
        """Serve an earlier model version again: a run that rewrites every point's fields to it."""
        return self.clustering.rollback(name, version, trigger=trigger, attempt=attempt)

    def list_models(self, name: str) -> list[ModelInfo]:
        """Every saved model version of a collection, oldest first."""
        return self.clustering.list_models(name)

    def get_model(self, name: str, version: int) -> ModelInfo:
        """One model version (0 = the served one), with its cluster summaries."""
        return self.clustering.get_model(name, version)

    def get_cluster(self, name: str, cluster_id: int, version: int = 0) -> ClusterDetail:
        """One cluster of a model version (0 = the served one) as its run summarised it; NOT_FOUND if unknown."""
        return self.clustering.get_cluster(name, cluster_id, version)

    def watch_cluster_events(self, name: str, since_version: int = 0, *,
                             is_active: Callable[[], bool] = lambda: True) -> Iterator[ClusterEvent]:
        """Stored cluster events after ``since_version``, then each served version's (:meth:`ClusterRuns.watch_events`)."""
        return self.clustering.watch_events(name, since_version, is_active=is_active)

    def hold_runs(self, name: str) -> AbstractContextManager[None]:
        """No run (clustering, rollback, refit) starts on ``name`` inside this block; refused while one is active."""
        return self.clustering.hold_runs(name)

    def watch_run(self, name: str, run_id: str, *, is_active: Callable[[], bool] = lambda: True) -> Iterator[RunInfo]:
        """A run's state now and after each change of state, phase or progress, until it ends."""
        return self.clustering.watch_run(name, run_id, is_active=is_active)

    def get_run(self, name: str, run_id: str) -> RunInfo:
        """A run's state and progress."""
        return self.clustering.get_run(name, run_id)

    def cancel_run(self, name: str, run_id: str) -> RunInfo:
        """Ask a run to stop; the previous model stays served."""
        return self.clustering.cancel_run(name, run_id)

    # ------------------------------------------------------------------ EVENT featurizers

    def infer_schema(self, samples: Sequence[Mapping[str, Any]], *,
                     entity_key: str = "") -> tuple[EventSchema, list[str]]:
        """Propose an event schema from sample events (nothing is stored)."""
        return self.featurizers.infer_schema(samples, entity_key=entity_key)

    def fit_featurizer(self, name: str, *, trigger: str = "manual", attempt: int = 0) -> RunInfo:
        """Queue a featurizer refit of an EVENT collection (a run; see :mod:`.featurizers`)."""
        return self.featurizers.fit_featurizer(name, trigger=trigger, attempt=attempt)

    def maybe_fit_featurizer(self, name: str) -> RunInfo | None:
        """Queue the automatic featurizer fit if it is due (the scheduler asks each tick)."""
        return self.featurizers.maybe_fit_featurizer(name)

    # ------------------------------------------------------------------ drift and scheduling

    def drift(self, name: str, *, candidates: bool = False) -> DriftReport:
        """How far a collection has moved from its served model (see :meth:`CollectionStatus.drift`)."""
        return self.status.drift(name, candidates=candidates)

    def schedule_state(self, name: str) -> ScheduleState:
        """What the scheduler needs to decide whether ``name`` is due for a run."""
        return self.status.schedule_state(name)

    def state_key(self, name: str) -> tuple[int, int, int] | None:
        """A key that changes whenever the collection's counts may have (None = they may change any time)."""
        return self.status.state_key(name)

    def point_count(self, name: str) -> int:
        """Points stored in a collection."""
        return self.status.point_count(name)

    def save_counters(self, name: str) -> None:
        """Persist the collection record (the scheduler's change counter) now."""
        self.status.save_counters(name)
