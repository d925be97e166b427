"""The EVENT featurizer life cycle: the automatic fit, refits, and repair at start-up; InferSchema.

Life cycle (see also :mod:`embcluster.embed.featurizer`):

* **Before the first fit.** The first ingest batch fits a *provisional* featurizer (version 1)
  on its own events, so points get vectors from the first call on (:mod:`.event_kind`).
* **Automatic fit.** When the collection first holds ``Settings.featurizer_min_points`` points
  while its featurizer is provisional, a refit job is queued (same path as ``FitFeaturizer``).
* **Refit** (a run on the :class:`~embcluster.runs.RunManager`, serialised with clustering
  runs): fits version F+1 from every point's ``source``, saves it (JSON) and switches the
  collection record to it, then re-featurizes every point in pages, each page's vector log and
  store written together under the collection lock, as ingest does (writes wait for the fit and
  then for one page, not for the whole pass); each point's payload says its
  ``featurizer_version``, and Search during the pass sees only points already on the new one.
  If a model was served, the same job then re-clusters with its k: a new model version in the
  new feature space.
* **Models and featurizers.** Each model records ``params.featurizer_version``. A model fitted on
  another featurizer version is never applied: until the re-cluster is served, ingest stores
  unlabelled points and Classify is FAILED_PRECONDITION; a rollback to such a version is refused.
* **Crash mid-refit.** The record names the new version before any vector is rewritten; points
  whose ``featurizer_version`` differs from the record's are re-featurized when the collection is
  opened (and when a refit fails half-way, by the next start), so stored vectors are never
  silently stale.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..config import Settings
from ..embed.events import EventFeaturizer, EventSchema, check_schema, infer_schema
from ..errors import FailedPrecondition, InvalidArgument, shown
from ..runs import RunContext
from ..schema import RunInfo, RunRequest
from ..store.base import FieldEquals, PointFilter
from ..validation import check_name
from .clustering import ClusterRuns
from .event_kind import EventKind
from .records import OpenCollection
from .registry import CollectionRegistry

__all__ = ["FeaturizerLifecycle", "REFEATURIZE_PAGE", "REFEATURIZE_TEXT_PAGE", "MAX_INFER_SAMPLES_FACTOR"]

logger = logging.getLogger(__name__)

# Points re-featurized per lock hold in a refit: an ingest waits for one such page at most
# (~30 ms on 2 cores without text fields; larger pages made the pass no faster,
# bench/bench_refit_ingest.py). With text fields every page runs the text model, ~3 ms a text.
REFEATURIZE_PAGE = 256
REFEATURIZE_TEXT_PAGE = 32

MAX_INFER_SAMPLES_FACTOR = 10  # InferSchema takes up to 10 x max_batch_items samples


class FeaturizerLifecycle:
    """When EVENT collections' featurizers are fitted, refitted and repaired.

    Args:
        settings: Automatic-fit threshold, page size, batch limits.
        registry: The open collections.
        event_kind: Loads, installs and applies featurizers.
        clustering: Queues the refit runs and re-clusters after a refit.
    """

    def __init__(self, settings: Settings, registry: CollectionRegistry, event_kind: EventKind,
                 clustering: ClusterRuns) -> None:
        self.settings = settings
        self.registry = registry
        self.event_kind = event_kind
        self.clustering = clustering

    # ------------------------------------------------------------------ InferSchema

    def infer_schema(self, samples: Sequence[Mapping[str, Any]], *,
                     entity_key: str = "") -> tuple[EventSchema, list[str]]:
        """Propose an event schema from sample events (nothing is stored).

        Returns:
            The proposed schema and one note per field: the type chosen and why.
        """
        limit = MAX_INFER_SAMPLES_FACTOR * self.settings.max_batch_items
        if len(samples) > limit:
            raise InvalidArgument(f"{len(samples)} samples; the limit is {limit}")
        schema, notes = infer_schema(samples, entity_key=entity_key)
        if not schema.fields:
            raise InvalidArgument("no usable field in the samples: " + "; ".join(notes))
        return check_schema(schema), notes

    # ------------------------------------------------------------------ refit

    def fit_featurizer(self, name: str, *, trigger: str = "manual", attempt: int = 0) -> RunInfo:
        """Queue a featurizer refit of an EVENT collection (a run; see the module docstring)."""
        coll = self.registry.get(check_name(name))
        if not self.registry.kinds.of(coll).has_featurizer:
            raise FailedPrecondition(f"collection {shown(name)} is {coll.record.input_kind.upper()}: only EVENT "
                                     "collections have a featurizer")
        if not coll.store.count():
            raise FailedPrecondition(f"collection {shown(name)} is empty: ingest events before fitting the featurizer")
        return self.clustering.start_run(name, RunRequest(refit_featurizer=True),
                                         lambda ctx: self._refit_job(coll, ctx, auto=False),
                                         trigger=trigger, attempt=attempt)

    def maybe_fit_featurizer(self, name: str) -> RunInfo | None:
        """Queue the automatic featurizer fit if it is due (the scheduler asks each tick)."""
        return self.maybe_auto_refit(self.registry.get(name))

    def maybe_auto_refit(self, coll: OpenCollection) -> RunInfo | None:
        """Queue the automatic fit once the collection has enough points (provisional featurizer only).

        Called after each ingest, at start-up and by the scheduler, so a threshold crossed
        while another run was active (or before a crash) is not forgotten. A failed automatic fit
        is tried again only once the collection has grown by half. Collections of other kinds
        never have a provisional featurizer: nothing to do.
        """
        rec = coll.record
        if not rec.featurizer_provisional or self.clustering.runs.active(rec.name) is not None:
            return None
        count = coll.store.count()
        if count < max(self.settings.featurizer_min_points, coll.auto_fit_after):
            return None

        def job(ctx: RunContext) -> None:
            try:
                self._refit_job(coll, ctx, auto=True)
            except BaseException:
                coll.auto_fit_after = count + count // 2 + 1
                raise

        try:
            # trigger "changes": the point count reached the threshold
            run = self.clustering.start_run(rec.name, RunRequest(refit_featurizer=True), job, trigger="changes")
        except FailedPrecondition:  # a run started meanwhile: the next ingest or tick tries again
            return None
        logger.info("collection %s has %d points (>= %d): fitting its featurizer", rec.name, count,
                    self.settings.featurizer_min_points)
        return run

    def _refit_job(self, coll: OpenCollection, ctx: RunContext, *, auto: bool) -> None:
        rec = coll.record
        with coll.lock:  # writes wait: no point is featurized or labelled across the switch
            coll.check_open()
            old = self.event_kind.featurizer(coll)
            if auto and not old.provisional:
                ctx.progress("done", 1.0, persist=True)
                return
            ctx.progress("fitting_featurizer", 0.0, persist=True)
            records = [p.payload["source"] for p in self._scroll_all(coll, with_vectors=False)]
            if not records:
                raise FailedPrecondition(f"collection {shown(rec.name)} is empty")
            new = old.fit(records, version=rec.featurizer_version + 1, provisional=False)
            self._check_refit_writable(coll, new, records)  # before the switch: a refused refit changes nothing
            ctx.progress("featurizing", 0.05, persist=True)  # the last point where a cancel is honoured
            self.event_kind.install(coll, new)  # from here on, points of another version are stale
            prev = coll.model
        # Writes go on from here, between the pages of the re-featurize pass (each page is read and
        # written under the lock, so a point re-sent meanwhile is never overwritten from its old
        # source): new points are featurized with the new version, and until the re-cluster below
        # publishes they are stored unlabelled (the served model is in the old feature space); its
        # catch-up labels them.
        done = self._refeaturize(coll, new, ctx, total=len(records))
        logger.info("collection %s: featurizer v%d fitted on %d points, %d points re-featurized",
                    rec.name, new.version, len(records), done)
        if prev is not None:
            self.clustering.run(coll, RunRequest(k=prev.k, seed=int(prev.params.get("seed", 0))), ctx)
        else:
            ctx.progress("done", 1.0, persist=True, cancellable=False)

    def _check_refit_writable(self, coll: OpenCollection, feat: EventFeaturizer,
                              records: Sequence[Mapping[str, Any]]) -> None:
        """Refuse a fitted featurizer that cannot write some stored point (non-finite, or zero under cosine).

        Runs before the record switches, so a refused refit leaves every vector on the old
        version. Text blocks are probed with unit vectors instead of the model: a text embedding
        is unit length, so only whether a point has text matters to these checks.
        """
        dim = feat.text_dim

        def unit(texts: Sequence[str]) -> np.ndarray:
            out = np.zeros((len(texts), dim))
            out[:, 0] = 1.0
            return out

        probe = EventFeaturizer(feat.schema, text_embed=unit if dim else None, text_dim=dim, state=feat.state,
                                version=feat.version, provisional=feat.provisional)
        cosine = coll.record.metric == "cosine"
        page = self.settings.page_size
        for start in range(0, len(records), page):
            vectors = probe.transform(records[start:start + page])
            bad = ~np.isfinite(vectors).all(axis=1)
            if cosine:
                bad |= ~(np.linalg.norm(vectors.astype(np.float64), axis=1) > 0)
            if bad.any():
                i = start + int(np.flatnonzero(bad)[0])
                why = "non-finite features" if not np.isfinite(vectors[i - start]).all() else (
                    "every feature zero, which has no direction under cosine distance")
                raise FailedPrecondition(
                    f"featurizer v{feat.version} fitted on {len(records)} points of {shown(coll.record.name)} would give "
                    f"a stored point {why} (source {dict(records[i])!r:.300}); the collection stays on featurizer "
                    f"v{coll.record.featurizer_version} (give more fields, or use euclid distance)")

    def _scroll_all(self, coll: OpenCollection, *, with_vectors: bool,
                    flt: PointFilter | None = None) -> Iterator[Any]:
        offset: str | None = None
        while True:
            points, offset = coll.store.scroll(limit=self.settings.page_size, offset=offset, flt=flt,
                                               with_vectors=with_vectors)
            yield from points
            if not offset:
                return

    def _refeaturize(self, coll: OpenCollection, feat: EventFeaturizer,
                     ctx: RunContext | None, *, total: int) -> int:
        """Rewrite every point not on ``feat``'s version from its source (store + vector log), page by page.

        Each page is read and written under the collection lock, released between pages so that
        ingest is delayed by one page at most, not by the whole pass.
        """
        stale = PointFilter(must_not=(FieldEquals("featurizer_version", feat.version),))
        done = 0
        # One pass in id order, from a cursor: a "must_not" filter is a scan, so restarting from the
        # first id for every page would cost O(n) per page. Points written behind the cursor during
        # the pass are on the new version already (ingest featurizes with the installed one).
        offset: str | None = None
        page = min(self.settings.page_size, REFEATURIZE_TEXT_PAGE if feat.text_dim else REFEATURIZE_PAGE)
        while True:
            with coll.lock:
                coll.check_open()
                points, offset = coll.store.scroll(limit=page, offset=offset, flt=stale)
                if not points:
                    return done
                ids = [p.id for p in points]
                vectors = self.event_kind.featurize(coll, feat, [p.payload["source"] for p in points])
                payloads = [{**p.payload, "featurizer_version": feat.version} for p in points]
                coll.write_points(ids, vectors, payloads)
            time.sleep(0)  # let a waiting writer take the lock first: CPython's locks are not fair
            done += len(ids)
            if ctx is not None:
                ctx.info.points_labelled = done
                ctx.progress("featurizing", 0.05 + 0.3 * min(done / max(total, 1), 1.0), cancellable=False)
            if not offset:
                return done

    def repair_on_open(self, coll: OpenCollection) -> None:
        """At start-up: re-featurize the points an interrupted refit left on an older version."""
        rec = coll.record
        if not rec.featurizer_version:  # not an EVENT collection, or nothing fitted yet
            return
        stale = coll.store.count(PointFilter(must_not=(FieldEquals("featurizer_version", rec.featurizer_version),)))
        if stale:
            logger.warning("collection %s: %d points are not on featurizer v%d (an interrupted refit): "
                           "re-featurizing them", rec.name, stale, rec.featurizer_version)
            try:
                self._refeaturize(coll, self.event_kind.featurizer(coll), None, total=stale)
            except InvalidArgument as exc:  # deterministic: retrying cannot help, and must not stop the server
                logger.error("collection %s: cannot re-featurize its points on featurizer v%d: %s; they stay "
                             "on their old version until a refit succeeds", rec.name, rec.featurizer_version, exc)
