"""What the service reports about its collections: info, drift, and the scheduler's inputs."""

from __future__ import annotations

import threading

from ..anomaly.scoring import DEFAULT_SCORER
from ..drift import RecentWindows, recent_drift, version_drift
from ..embed.events import EventSchema
from ..errors import InvalidArgument, shown
from ..runs import RunManager
from ..scheduler import ScheduleState
from ..models import ClusterModel
from ..schema import AttachedSource, CollectionInfo, CollectionSettings, DriftCandidate, DriftReport
from ..store.base import FieldEquals, PointFilter
from ..validation import check_effective_settings, check_name, check_settings
from .candidates import drift_candidates
from .kinds import served_model
from .labelling import Labeller
from .records import OpenCollection
from .registry import CollectionRegistry

__all__ = ["CollectionStatus"]


class CollectionStatus:
    """Collection info and settings, drift reports, and the scheduling state of each collection.

    Args:
        registry: The open collections.
        runs: The run queue (whether a run is active).
        labeller: Whether a start-up catch-up is still running.
        windows: The recent online labels per collection (drift).
    """

    def __init__(self, registry: CollectionRegistry, runs: RunManager, labeller: Labeller,
                 windows: RecentWindows) -> None:
        self.registry = registry
        self.runs = runs
        self.labeller = labeller
        self.windows = windows
        self._lock = threading.Lock()
        self._version_drift: dict[tuple[str, int], dict[str, float | None]] = {}  # (name, served) -> numbers
        # name -> ((name, served version, change count), its candidates)
        self._candidate_cache: dict[str, tuple[tuple[str, int, int], list[DriftCandidate]]] = {}

    def forget(self, name: str) -> None:
        """Drop what is cached about a deleted collection."""
        self.windows.forget(name)
        with self._lock:
            self._version_drift = {k: v for k, v in self._version_drift.items() if k[0] != name}
            self._candidate_cache.pop(name, None)

    # ------------------------------------------------------------------ collections

    def info(self, coll: OpenCollection) -> CollectionInfo:
        """A collection with live counts."""
        rec = coll.record
        model = coll.model
        active = self.runs.active(rec.name)
        if active is not None and active.state.finished:  # ended; its record is being saved: runs.last has it
            active = None
        return CollectionInfo(
            name=rec.name, input_kind=rec.input_kind,
            metric=rec.metric, dim=rec.dim,
            embedder=rec.embedder, embedder_fingerprint=rec.embedder_fingerprint,
            store_source=rec.store_source, settings=rec.settings, point_count=coll.store.count(),
            served_model_version=rec.served_version,
            cluster_count=int(model.populated.sum()) if model else 0,
            anomaly_count=coll.store.count(PointFilter(must=(FieldEquals("is_anomaly", True),))) if model else 0,
            created_at=rec.created_at,
            image_spec=rec.image if self.registry.kinds.of(coll).has_image_spec else None,
            event_schema=EventSchema.from_json(rec.event_schema) if rec.event_schema else None,
            featurizer_version=rec.featurizer_version, featurizer_provisional=rec.featurizer_provisional,
            attached=AttachedSource(rec.external_collection, rec.vector_name, rec.field_prefix)
            if rec.external_collection else None,
            active_run=active, last_run=self.runs.last(rec.name), embedding_tier=rec.embedding_tier,
            vector_index=None if rec.external_collection else rec.index, index_state=coll.store.index_state(),
        )

    def get_collection(self, name: str) -> CollectionInfo:
        """A collection with live counts."""
        return self.info(self.registry.get(check_name(name)))

    def list_collections(self) -> list[CollectionInfo]:
        """Every collection, by name."""
        return [self.info(c) for c in self.registry.all()]

    def update_collection(self, name: str, settings: CollectionSettings) -> CollectionInfo:
        """Change mutable settings; they apply from the next run.

        ``long_text`` cannot change: the stored vectors were embedded under it, and a collection
        whose items were embedded two ways would cluster by how they were embedded (the same rule
        as the recorded embedding model). Sending the current value is accepted.
        """
        coll = self.registry.get(check_name(name))
        check_settings(settings)
        current = coll.record.settings.long_text_mode
        if settings.long_text is not None and settings.long_text != current:
            raise InvalidArgument(f"long_text of collection {shown(name)} is {shown(current)}, fixed when it was "
                                  f"created (its vectors were embedded that way); got {shown(settings.long_text)}. "
                                  "Create a new collection with the other mode and ingest into it")
        with coll.lock:
            coll.record.settings = check_effective_settings(coll.record.settings.merged(settings))
            coll.save()
        return self.info(coll)

    # ------------------------------------------------------------------ drift

    def drift(self, name: str, *, candidates: bool = False) -> DriftReport:
        """How far a collection has moved from its served model (see :mod:`embcluster.drift`).

        Compares the served version with the one it replaced (cluster-share PSI of their full
        passes, centroid shift of matched clusters) and the served version's fit sample with
        the points labelled online since it was served (share PSI, distance quantiles and KS,
        anomaly rate). Numbers that cannot be measured yet are None.

        Args:
            name: The collection.
            candidates: Also look for groups forming among the recent anomalies
                (:mod:`embcluster.core.candidates`: reads up to 2,000 stored points; cached until
                the collection changes). The scheduler leaves it off.
        """
        coll = self.registry.get(check_name(name))
        model = coll.model
        window = self.windows.get(name).snapshot()
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
        found = self._candidates(coll, model) if candidates else []
        return DriftReport(
            collection=name, model_version=model.version, previous_version=previous,
            recent_points=window.count if window.model_version == model.version else 0,
            psi_shares=recent["psi_shares"], psi_versions=versions["psi_versions"],
            centroid_shift_mean=versions["centroid_shift_mean"], centroid_shift_max=versions["centroid_shift_max"],
            distance_p50_fit=recent["distance_p50_fit"], distance_p90_fit=recent["distance_p90_fit"],
            distance_p50_recent=recent["distance_p50_recent"], distance_p90_recent=recent["distance_p90_recent"],
            distance_ks=recent["distance_ks"], anomaly_rate_fit=recent["anomaly_rate_fit"],
            anomaly_rate_recent=recent["anomaly_rate_recent"], candidates=found,
        )

    def _candidates(self, coll: OpenCollection, model: ClusterModel) -> list[DriftCandidate]:
        """The served model's candidate clusters, recomputed only when points changed or another version is served."""
        if served_model(coll) is not model:  # another feature space (an EVENT featurizer refit pending)
            return []
        key = (coll.record.name, model.version, coll.record.changes_total)
        with self._lock:
            cached = self._candidate_cache.get(coll.record.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        found = drift_candidates(coll, self.registry.kinds.of(coll), model)
        with self._lock:
            self._candidate_cache[coll.record.name] = (key, found)
        return found

    # ------------------------------------------------------------------ scheduling

    def schedule_state(self, name: str) -> ScheduleState:
        """What the scheduler needs to decide whether ``name`` is due for a run."""
        coll = self.registry.get(name)
        rec = coll.record
        return ScheduleState(
            schedule=rec.settings.schedule, default_k=int(rec.settings.default_k or 8),
            changes_since_run=rec.changes_total - rec.changes_at_run, changes_total=rec.changes_total,
            last_run_at=rec.last_run_at, served_version=rec.served_version,
            catching_up=self.labeller.catching_up(name), served_k=coll.model.k if coll.model is not None else 0,
            attached=bool(rec.external_collection), model_current=self._model_current(coll),
        )

    @staticmethod
    def _model_current(coll: OpenCollection) -> bool:
        """The served model was fitted with the collection's present settings and featurizer."""
        model, rec = served_model(coll), coll.record
        if model is None:
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
        coll = self.registry.get(name)
        rec = coll.record
        if rec.external_collection or self.runs.active(name) is not None:
            return None
        if self.labeller.catching_up(name):
            return None
        return rec.changes_total, rec.served_version, rec.featurizer_version

    def point_count(self, name: str) -> int:
        """Points stored in a collection."""
        return int(self.registry.get(name).store.count())

    def save_counters(self, name: str) -> None:
        """Persist the collection record (the scheduler's change counter) now."""
        coll = self.registry.get(name)
        with coll.lock:
            if not coll.closed:
                coll.save()
