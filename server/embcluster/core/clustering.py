"""Clustering runs: start, fit, publish (write-back, switch, catch-up), rollback, prune; run queries.

The consistency rule a run follows is in docs/architecture.md ("A clustering run").
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager
from dataclasses import asdict
from typing import Any, Callable, Iterator

import numpy as np

from ..anomaly.feed import AnomalyFeed
from ..cluster.choose_k import choose_k
from ..cluster.fit import calibrate
from ..cluster.lifecycle import (
    ClusterEvent,
    VersionSizes,
    derive_events,
    events_from_json,
    novel_clusters,
    sizes_of,
)
from ..cluster.kmeans import default_n_init, fit_kmeans, refine_minibatch
from ..cluster.novelty import NOVELTY_MIN_POINTS, Growth, far_mask, grow
from ..config import Settings
from ..drift import RecentWindows
from ..errors import FailedPrecondition, NotFound, ResourceExhausted, shown
from ..models import ClusterModel, read_summaries
from ..runs import RunContext, RunManager
from ..insight.summary import RunSummaries
from ..schema import ClusterDetail, ModelInfo, RunInfo, RunRequest
from ..store.vectorlog import LiveSet
from ..validation import check_name, check_run_request
from .kinds import check_model_space, served_model
from .labelling import Labeller
from .records import OpenCollection
from .registry import CollectionRegistry
from .summaries import RunSample, summarize_run_safely, unsummarised_cluster

__all__ = ["ClusterRuns", "model_events", "WARM_MAX_ITER", "MAX_REFINE_BATCHES"]

logger = logging.getLogger(__name__)

WARM_MAX_ITER = 10  # Lloyd iterations from the previous model's centroids (same k)
MAX_REFINE_BATCHES = 3  # mini-batches of sample size each, drawn from the rest of the collection


class ClusterRuns:
    """Clustering runs and rollbacks of the registry's collections, and the models they leave.

    Args:
        settings: Page size, model versions kept.
        registry: The open collections.
        runs: The run queue (one run per collection at a time).
        labeller: Write-back, catch-up and revert.
        windows: Drift windows, reset when a new version is served.
    """

    def __init__(self, settings: Settings, registry: CollectionRegistry, runs: RunManager, labeller: Labeller,
                 windows: RecentWindows) -> None:
        self.settings = settings
        self.registry = registry
        self.runs = runs
        self.labeller = labeller
        self.windows = windows
        # Called with (collection, version, events) when a run's new version is served.
        self.on_published: list[Callable[[str, int, list[ClusterEvent]], None]] = [self._feed_events]
        self.event_feed: AnomalyFeed[tuple[int, list[ClusterEvent]]] = AnomalyFeed(capacity=1_000)

    def _feed_events(self, name: str, version: int, events: list[ClusterEvent]) -> None:
        self.event_feed.publish(name, [(version, events)])

    # ------------------------------------------------------------------ starting runs

    def start_clustering(self, name: str, request: RunRequest, *, trigger: str = "manual",
                         attempt: int = 0, trigger_detail: str = "") -> RunInfo:
        """Validate and queue a clustering run; returns it (state PENDING).

        Args:
            name: The collection.
            request: k or a k range (neither = the collection's default_k), seed, sample size.
            trigger: What started it (manual; the scheduler passes interval, changes, drift or restart).
            attempt: Re-run count of an interrupted run (the scheduler's restart re-runs).
            trigger_detail: What the trigger saw (the scheduler's figure and value), kept with the run.
        """
        coll = self.registry.get(check_name(name))
        req = check_run_request(request, point_count=coll.store.count(),
                                default_k=int(coll.record.settings.default_k or 8))
        return self.start_run(name, req, lambda ctx: self.run(coll, req, ctx), trigger=trigger, attempt=attempt,
                              trigger_detail=trigger_detail)

    def rollback(self, name: str, version: int, *, trigger: str = "manual", attempt: int = 0) -> RunInfo:
        """Serve an earlier model version again: a run that rewrites every point's fields to it.

        Only published versions (served at some point) can be rolled back to. The checks are
        made again when the run starts: a run it was queued behind may have changed what is served.
        """
        coll = self.registry.get(check_name(name))
        model = self._rollback_target(coll, version)

        def job(ctx: RunContext) -> None:
            target = self._rollback_target(coll, version)
            ctx.info.model_version, ctx.info.k = version, target.k
            ctx.progress("reading", 0.0, persist=True)
            self.publish(coll, target, self.labeller.live_vectors(coll, ctx), ctx, start=0.05)

        return self.start_run(name, RunRequest(k=model.k, rollback_to=version), job, trigger=trigger,
                              attempt=attempt)

    @staticmethod
    def _rollback_target(coll: OpenCollection, version: int) -> ClusterModel:
        """The published version ``version``, if a rollback to it can be served now."""
        name = coll.record.name
        published = coll.models.published(coll.record.served_version)
        if version not in published:
            raise NotFound(f"model version {version} not found in collection {shown(name)}; "
                           f"saved versions: {published}")
        if version == coll.record.served_version:
            raise FailedPrecondition(f"model version {version} is already served in {shown(name)}")
        model = coll.models.load(version)
        check_model_space(coll, model)
        return model

    def start_run(self, name: str, req: RunRequest, job: Callable[[RunContext], None], *,
                  trigger: str = "manual", attempt: int = 0, trigger_detail: str = "") -> RunInfo:
        """Start a run, or queue a manual one behind an automatic run (see :meth:`RunManager.start`).

        FAILED_PRECONDITION while another run is active that it cannot queue behind, or while an
        export holds runs off.
        """
        return self.runs.start(name, req, job, trigger=trigger, attempt=attempt, trigger_detail=trigger_detail)

    def hold_runs(self, name: str) -> AbstractContextManager[None]:
        """No run (clustering, rollback, refit) starts on ``name`` inside this block; refused while one is active."""
        return self.runs.hold(name)

    def watch_run(self, name: str, run_id: str, *, is_active: Callable[[], bool] = lambda: True) -> Iterator[RunInfo]:
        """A run's state now and after each change of state, phase or progress, until it ends."""
        self.registry.get(check_name(name))
        return self.runs.watch(name, run_id, is_active=is_active)

    def get_run(self, name: str, run_id: str) -> RunInfo:
        """A run's state and progress."""
        self.registry.get(check_name(name))
        return self.runs.get(name, run_id)

    def cancel_run(self, name: str, run_id: str) -> RunInfo:
        """Ask a run to stop; the previous model stays served."""
        self.registry.get(check_name(name))
        return self.runs.cancel(name, run_id)

    # ------------------------------------------------------------------ models

    def list_models(self, name: str) -> list[ModelInfo]:
        """Every published model version of a collection (served at some point), oldest first.

        A run's new version is published when the run switches to it; a failed or cancelled run's
        version is deleted, and one a run in progress is writing is not listed yet.
        """
        coll = self.registry.get(check_name(name))
        out = []
        for v in coll.models.published(coll.record.served_version):
            try:
                out.append(self._model_info(coll, coll.models.load_meta(v)))
            except FileNotFoundError:  # deleted by a run's pruning since the listing
                continue
        return out

    def get_model(self, name: str, version: int) -> ModelInfo:
        """One model version (0 = the served one), with its cluster summaries."""
        meta = self._published_meta(name, version)
        return self._model_info(self.registry.get(name), meta)

    def get_cluster(self, name: str, cluster_id: int, version: int = 0) -> ClusterDetail:
        """One cluster of a published model version (0 = the served one), as its run summarised it.

        A version without summaries (saved before they existed, or its run could not summarise)
        gives the cluster's own figures, ``summarized`` False. NOT_FOUND for an unknown version or id.
        """
        meta = self._published_meta(name, version)
        v = int(meta["version"])
        summaries = _summaries_of(meta)
        if summaries is not None:
            found = summaries.by_id().get(int(cluster_id))
            if found is not None:
                return ClusterDetail(model_version=v, summary=found, summarized=True)
        bare = unsummarised_cluster(meta, int(cluster_id))
        if bare is None:
            raise NotFound(f"cluster {cluster_id} not in model v{v} of collection {shown(name)}; its clusters: "
                           f"{[int(c) for c in meta['cluster_ids']]}")
        return ClusterDetail(model_version=v, summary=bare, summarized=False)

    def _published_meta(self, name: str, version: int) -> dict[str, Any]:
        """``model.json`` of a published version (0 = the served one); NOT_FOUND otherwise."""
        coll = self.registry.get(check_name(name))
        version = version or coll.record.served_version
        if version != coll.record.served_version and coll.models.pending(version):
            raise NotFound(f"model version {version} of collection {shown(name)} is not published: a run in "
                           "progress is writing it (it is listed once served)")
        try:
            return coll.models.load_meta(version)
        except FileNotFoundError:  # never saved, or deleted by a run's pruning
            raise NotFound(f"model version {version} not found in collection {shown(name)}"
                           + ("" if coll.record.served_version else " (no model yet)")) from None

    @staticmethod
    def _model_info(coll: OpenCollection, meta: dict[str, Any]) -> ModelInfo:
        return ModelInfo(version=int(meta["version"]), k=int(meta["k"]),
                         served=int(meta["version"]) == coll.record.served_version, created_at=meta["created_at"],
                         cluster_ids=[int(i) for i in meta["cluster_ids"]], params=meta["params"],
                         metrics=meta["metrics"], summaries=_summaries_of(meta),
                         events=events_from_json(meta.get("events")))

    # ------------------------------------------------------------------ the run

    def run(self, coll: OpenCollection, req: RunRequest, ctx: RunContext) -> None:
        """A clustering run's job: sample, fit, calibrate, save, publish.

        No vector index build runs meanwhile (one running is cancelled): it would take the CPU
        from the run, and its journal would hold the whole write-back. The write-back moves every
        point out of the Edge graph, so a rebuild is due when the run ends, and starts then.
        """
        with coll.store.pause_indexing():
            self._run(coll, req, ctx)

    def _run(self, coll: OpenCollection, req: RunRequest, ctx: RunContext) -> None:
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
        live = self.labeller.live_vectors(coll, ctx)
        total = len(live)
        k_max = req.k_range[1] if req.k_range else int(req.k or 2)
        if total < k_max:
            raise FailedPrecondition(f"the collection has {total} points, fewer than k={k_max}")
        sample_size = min(total, req.sample_size or max(10_000, 256 * k_max))
        ctx.progress("sampling", 0.02)
        sample_ids, sample = coll.vlog.sample_with_ids(live, sample_size, seed)
        n_init = req.n_init or default_n_init(len(sample), k_max)
        timings["read_sample_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        ctx.progress("fitting", 0.05, persist=True)
        prev = served_model(coll)  # None when it is in another feature space (a refit)
        growth: Growth | None = None
        if req.k_range:
            k, fit, table = choose_k(
                sample, req.k_range[0], req.k_range[1], metric=rec.metric, seed=seed,
                n_init=n_init, on_step=lambda i, n: ctx.progress("fitting", 0.05 + 0.3 * i / n),
            )
            ctx.info.k_scores = [asdict(s) for s in table]
        elif req.grow_to > int(req.k or 2) and prev is not None and prev.k == int(req.k or 2):
            growth = self._grow(coll, prev, sample, req.grow_to, seed)
            k, fit = len(growth.centroids), growth.fit
        else:
            k = int(req.k or 2)
            warm = prev.centroids if prev is not None and prev.k == k else None
            # A warm start needs few iterations, and each further one only drifts the boundaries.
            fit = fit_kmeans(sample, k, metric=rec.metric, seed=seed, n_init=n_init, init=warm,
                             max_iter=WARM_MAX_ITER if warm is not None else 50)
        ctx.info.k = k
        centroids = fit.centroids
        refine_batches = min(MAX_REFINE_BATCHES, (total - 1) // max(len(sample), 1))
        if refine_batches > 0:  # the collection is larger than the sample: let the fit see more of it
            ctx.progress("refining", 0.3, persist=True)
            centroids = refine_minibatch(
                centroids, np.bincount(fit.labels, minlength=k),
                (coll.vlog.sample(live, len(sample), seed + 1 + b) for b in range(refine_batches)),
                metric=rec.metric,
            )
        timings["fit_s"] = time.perf_counter() - t0
        ctx.progress("fitting", 0.35, persist=True)

        t0 = time.perf_counter()
        model, next_id = calibrate(sample, centroids, version=version, metric=rec.metric, settings=settings,
                                   prev=served_model(coll), next_cluster_id=rec.next_cluster_id, seed=seed,
                                   n_init=n_init, sample_size=len(sample), backend=fit.backend,
                                   inertia=fit.inertia,
                                   match_mask=~growth.far if growth is not None and growth.added else None)
        timings["calibrate_s"] = time.perf_counter() - t0  # incl. the ensemble scorer's own fits
        ctx.check()  # a cancel asked during the calibration stops here, before anything is saved
        with coll.lock:
            rec.next_cluster_id = next_id
            coll.save()
        model.params["refine_batches"] = refine_batches
        model.params["trigger"] = ctx.info.trigger  # manual, or what the scheduler saw
        model.params.update(self.registry.kinds.of(coll).model_params(rec))
        model.metrics["timings"] = timings
        model.metrics["k_scores"] = ctx.info.k_scores
        if growth is not None:
            model.metrics["novelty"] = growth.to_json()
        coll.models.save(model, pending=True)  # before any point carries this version; published at the switch
        replaced = coll.model  # the served version, in any feature space: what the events compare with
        previous = replaced.summaries if replaced is not None else None  # the served version's labels
        kind = self.registry.kinds.of(coll)

        def summarize(stats: dict[str, Any]) -> None:
            try:  # needs the write-back's sizes_full; never fatal, like the summaries
                model.events = model_events(model, replaced)
            except Exception:
                logger.exception("collection %s: cluster events of v%d not derived", rec.name, model.version)
            t1 = time.perf_counter()
            model.summaries = summarize_run_safely(coll, kind, model, RunSample(sample_ids, sample), stats,
                                                   previous=previous, seed=seed)
            model.metrics.setdefault("timings", {})["summarize_s"] = time.perf_counter() - t1

        self.publish(coll, model, live, ctx, start=0.35, summarize=summarize, announce=True)
        if model.summaries is not None:  # the run's report: which persisting clusters were renamed
            ctx.info.label_changes = model.summaries.to_json()["label_changes"]
        with coll.lock:
            rec.changes_at_run = max(rec.changes_at_run, changes_snapshot)
            coll.save()

    @staticmethod
    def _grow(coll: OpenCollection, prev: ClusterModel, sample: np.ndarray, grow_to: int, seed: int) -> Growth:
        """A drift run with room to grow: the served centroids plus one per new group of far sample points."""
        labels = prev.assign(sample)
        far = far_mask(labels.cluster_distance, labels.is_anomaly,
                       (prev.metrics.get("drift_fit") or {}).get("distance_quantiles") or [])
        growth = grow(sample, prev.centroids, far, metric=coll.record.metric,
                      min_size=max(int(coll.record.settings.min_cluster_size or 1), NOVELTY_MIN_POINTS),
                      max_new=grow_to - prev.k, seed=seed)
        logger.info("collection %s: %d far points of %d in the sample; %d new cluster(s) (k %d -> %d, k_max %d)",
                    coll.record.name, growth.far_points, len(sample), growth.added, prev.k, len(growth.centroids),
                    grow_to)
        return growth

    def publish(self, coll: OpenCollection, model: ClusterModel, live: LiveSet, ctx: RunContext, *,
                start: float, summarize: Callable[[dict[str, Any]], None] | None = None,
                announce: bool = False) -> None:
        """Write ``model`` onto every point, switch the served version to it, catch up.

        A failure or cancel before the switch reverts the partial write-back and, for a new
        version (saved pending by :meth:`run`), deletes it: no version that was never served is
        kept. A rollback's target is a published version and stays.

        Args:
            coll: The collection.
            model: The version to serve (saved already).
            live: The points to write it onto.
            ctx: The run.
            start: Progress at which the write-back starts.
            summarize: Called with the write-back's statistics before the version is saved again
                and served (a new version's cluster summaries; it must not raise).
            announce: Tell the ``on_published`` callbacks once served (a new version; a rollback
                serves a version whose events were announced when it was first served).
        """
        rec = coll.record
        t0 = time.perf_counter()
        try:
            stats = self.labeller.write_back(coll, model, coll.vlog.iter_pages(live, self.settings.page_size), ctx,
                                             len(live), phase="assigning", start=start, span=0.9 - start)
            model.metrics.setdefault("timings", {})["write_back_s"] = time.perf_counter() - t0
            model.metrics.update(stats)
            if summarize is not None:
                ctx.progress("summarizing", 0.9, persist=True)
                summarize(stats)
            coll.models.save_metadata(model)  # summaries stored before the version can be served
            ctx.progress("switching", 0.9, persist=True)  # the last point where a cancel is honoured
        except BaseException:
            self.labeller.revert(coll, model.version)
            self._discard(coll, model.version)
            raise
        with coll.lock:
            rec.served_version = model.version
            coll.model = model
            coll.save()
            self.windows.get(rec.name).reset(model.version)  # drift: a new version's window
            try:  # after the record: a crash in between is settled at the next start (ModelStore.settle)
                coll.models.publish(model.version)
            except OSError as exc:  # the run is committed; the next start removes the marker
                logger.warning("collection %s: model v%d not marked published: %s", rec.name, model.version, exc)
        logger.info("collection %s now serves model v%d (k=%d)", rec.name, model.version, model.k)
        if announce:
            self._announce(rec.name, model)
        try:
            self._prune_models(coll, model)
        except OSError as exc:  # housekeeping: the run is committed, the next one tries again
            logger.warning("collection %s: could not delete old model versions: %s", rec.name, exc)
        # Switched: the run is committed; it finishes its catch-up whatever is asked now.
        ctx.progress("catching_up", 0.95, persist=True, cancellable=False)
        # Points written during the run may carry a label computed from a vector they no longer
        # have (replaced after the pass read it): relabel every id the log saw since the snapshot.
        self.labeller.relabel_ids(coll, coll.vlog.ids_since(live.end))
        self.labeller.catch_up(coll)

    def _announce(self, name: str, model: ClusterModel) -> None:
        """Hand a newly served version's events to the ``on_published`` callbacks (metrics, watchers)."""
        for callback in self.on_published:
            try:
                callback(name, model.version, list(model.events or []))
            except Exception:  # a watcher or counter must not fail a committed run
                logger.exception("collection %s: cluster events of v%d not announced", name, model.version)

    def watch_events(self, name: str, since_version: int, *,
                     is_active: Callable[[], bool] = lambda: True) -> Iterator[ClusterEvent]:
        """The stored events of the published versions after ``since_version``, then those of each version served.

        Subscribes before reading the stored versions, so a version published meanwhile is
        neither lost nor sent twice. Ends when ``is_active`` turns false; NOT_FOUND once the
        collection is deleted; RESOURCE_EXHAUSTED for a watcher that fell behind the feed.

        Args:
            name: The collection.
            since_version: Replay the versions after this one (0: every stored version).
            is_active: False once the caller has gone (checked every 0.25 s).
        """
        coll = self.registry.get(check_name(name))
        sub = self.event_feed.subscribe(name)
        try:
            last = int(since_version)
            for v in coll.models.published(coll.record.served_version):
                if v <= last:
                    continue
                try:
                    meta = coll.models.load_meta(v)
                except FileNotFoundError:  # pruned since the listing
                    continue
                yield from events_from_json(meta.get("events"))
                last = v
            while is_active():
                item = sub.get(timeout=0.25)
                if item is not None:
                    version, events = item
                    if version > last:
                        last = version
                        yield from events
                elif sub.overflowed:
                    raise ResourceExhausted(f"watcher of {shown(name)} fell {self.event_feed.capacity} versions "
                                            f"behind; watch again with since_version={last}")
                elif sub.closed:
                    raise NotFound(f"collection {shown(name)} was deleted")
        finally:
            self.event_feed.unsubscribe(name, sub)

    @staticmethod
    def _discard(coll: OpenCollection, version: int) -> None:
        """Delete a run's unpublished version after a failure or cancel (a published one is kept)."""
        try:
            if coll.models.discard(version):
                logger.info("collection %s: deleted model v%d, which its run did not publish", coll.record.name,
                            version)
        except OSError as exc:  # still marked pending: never listed, and the next start deletes it
            logger.warning("collection %s: could not delete the unpublished model v%d: %s", coll.record.name,
                           version, exc)

    def _prune_models(self, coll: OpenCollection, served: ClusterModel) -> None:
        """Delete model versions beyond ``keep_model_versions`` (never the served one or its predecessor)."""
        keep_n = self.settings.keep_model_versions
        versions = coll.models.published(served.version)
        if not keep_n or len(versions) <= keep_n:
            return
        keep = set(versions[-keep_n:]) | {served.version, int(served.params.get("previous_version") or 0)}
        doomed = [v for v in versions if v not in keep]
        for v in doomed:
            coll.models.delete(v)
        if doomed:
            logger.info("collection %s: deleted model versions %s (keep_model_versions=%d)",
                        coll.record.name, _ranges(doomed), keep_n)


def model_events(model: ClusterModel, replaced: ClusterModel | None) -> list[ClusterEvent]:
    """``model``'s life-cycle events against the version it replaces (None: the first model).

    The matching in ``model.metrics`` is against ``replaced`` when both share a feature space; after
    an EVENT featurizer refit it matched nothing, so every new cluster is a BIRTH and every old one a DEATH.
    """
    def sizes(m: ClusterModel) -> VersionSizes:
        return sizes_of(m.version, [int(i) for i in m.cluster_ids], [bool(p) for p in m.populated], m.metrics)

    matching = model.metrics.get("matching") or {}
    novel: set[int] = set()
    if replaced is not None and replaced.metric == model.metric and replaced.centroids.shape[1] == model.centroids.shape[1]:
        novel = novel_clusters(matching, dict(zip((int(i) for i in model.cluster_ids), model.centroids)),
                               dict(zip((int(i) for i in replaced.cluster_ids), replaced.centroids)),
                               dict(zip((int(i) for i in replaced.cluster_ids), replaced.radius)), model.metric)
    return derive_events(matching, sizes(model), sizes(replaced) if replaced is not None else None, novel=novel)


def _summaries_of(meta: dict[str, Any]) -> RunSummaries | None:
    """A version's stored summaries from its ``model.json`` (None: none, or unreadable)."""
    return read_summaries(meta.get("summaries"), f"model v{meta.get('version')}")


def _ranges(values: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"v1-v3, v7"`` (a log line, not a list of thousands)."""
    spans: list[tuple[int, int]] = []
    for v in values:
        if spans and v == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], v)
        else:
            spans.append((v, v))
    return ", ".join(f"v{a}" if a == b else f"v{a}-v{b}" for a, b in spans)
