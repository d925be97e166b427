"""EVENT collections in the service: ingest, classify and search of typed events, user profiles,
InferSchema, and the featurizer life cycle.

Life cycle (see also :mod:`embcluster.embed.featurizer`):

* **Before the first fit.** The first ingest batch fits a *provisional* featurizer (version 1)
  on its own events, so points get vectors from the first call on.
* **Automatic fit.** When the collection first holds ``Settings.featurizer_min_points`` points
  while its featurizer is provisional, a refit job is queued (same path as ``FitFeaturizer``).
* **Refit** (a run on the :class:`~embcluster.scheduler.RunManager`, serialised with clustering
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

import hashlib
import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from .embed.events import EventFeaturizer, EventSchema, check_schema, infer_schema, parse_events
from .embed.featurizer import FeaturizerStore
from .embed.profiles import merge_profile
from .errors import FailedPrecondition, InvalidArgument
from .schema import Assignment, CollectionSpec, ItemInput, ItemResult, PointView, RunInfo, RunRequest, SearchHit
from .store.base import FieldEquals, PointFilter
from .validation import check_items, check_name

if TYPE_CHECKING:
    from .anomaly.feed import AnomalyFeed
    from .config import Settings
    from .embed.registry import EmbedderRegistry
    from .models import ClusterModel
    from .pipeline import _Collection
    from .runs import RunContext, RunManager

__all__ = ["EventOps", "source_view", "MAX_INFER_SAMPLES_FACTOR"]

logger = logging.getLogger(__name__)

# Points re-featurized per lock hold in a refit: an ingest waits for one such page at most
# (~30 ms on 2 cores without text fields; larger pages made the pass no faster,
# bench/bench_refit_ingest.py). With text fields every page runs the text model, ~3 ms a text.
REFEATURIZE_PAGE = 256
REFEATURIZE_TEXT_PAGE = 32

MAX_INFER_SAMPLES_FACTOR = 10  # InferSchema takes up to 10 x max_batch_items samples


def source_view(source: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What a point shows of its EVENT source: the event's fields, or a profile's aggregates."""
    if not source:
        return None
    if "event" in source:
        return dict(source["event"])
    if "profile" in source:
        return {"entity": source.get("entity", ""), "profile": source["profile"]}
    return None


class EventOps:
    """EVENT-collection methods of :class:`~embcluster.pipeline.EmbclusterService` (a mixin)."""

    if TYPE_CHECKING:  # provided by EmbclusterService
        settings: Settings
        embedders: EmbedderRegistry
        runs: RunManager
        anomaly_feed: AnomalyFeed[PointView]
        metrics: Any
        _get: Callable[[str], "_Collection"]
        _view: Callable[..., PointView]
        _recent_window: Callable[[str], Any]
        _run: Callable[["_Collection", RunRequest, "RunContext"], None]
        _start_run: Callable[..., RunInfo]
        _write_points: Callable[..., None]

    # ------------------------------------------------------------------ creation

    def _event_setup(self, spec: CollectionSpec) -> tuple[EventFeaturizer, str, str]:
        """The unfitted featurizer of a new EVENT collection, its embedder name and fingerprint."""
        assert spec.event_schema is not None  # check_spec
        schema = check_schema(spec.event_schema)
        if schema.has_text:
            emb = self.embedders.text(spec.embedding_model)
            return EventFeaturizer(schema, text_embed=emb.embed, text_dim=emb.dim), emb.name, emb.fingerprint
        if spec.embedding_model:
            raise InvalidArgument(f"an EVENT schema without text fields takes no embedding_model, "
                                  f"got {spec.embedding_model!r}")
        digest = hashlib.sha256(json.dumps(schema.to_json(), sort_keys=True).encode()).hexdigest()
        return EventFeaturizer(schema), "event", f"event:sha256:{digest}"

    def _event_featurizer(self, coll: "_Collection") -> EventFeaturizer:
        """The collection's current featurizer (loaded once; unfitted before the first ingest)."""
        if coll.featurizer is None:
            rec = coll.record
            schema = EventSchema.from_json(rec.event_schema or {})
            text_embed, text_dim = None, 0
            if schema.has_text:
                emb = self.embedders.text(rec.embedder)
                if emb.fingerprint != rec.embedder_fingerprint:
                    raise FailedPrecondition(
                        f"collection {rec.name!r} was created with text model {rec.embedder!r} "
                        f"({rec.embedder_fingerprint[:19]}…); the server now has {emb.fingerprint[:19]}…. "
                        "Restore that model or re-create the collection")
                text_embed, text_dim = emb.embed, emb.dim
            if rec.featurizer_version:
                data = FeaturizerStore(coll.directory / "featurizers").load_json(rec.featurizer_version)
                coll.featurizer = EventFeaturizer.from_json(data, text_embed=text_embed)
            else:
                coll.featurizer = EventFeaturizer(schema, text_embed=text_embed, text_dim=text_dim)
        feat: EventFeaturizer = coll.featurizer
        return feat

    def _install_featurizer(self, coll: "_Collection", feat: EventFeaturizer) -> None:
        """Save a fitted featurizer and make it the collection's (call under the collection lock)."""
        FeaturizerStore(coll.directory / "featurizers").save(feat)
        coll.record.featurizer_version = feat.version
        coll.record.featurizer_provisional = feat.provisional
        coll.featurizer = feat
        coll.save()

    # ------------------------------------------------------------------ featurizing

    def _featurize(self, coll: "_Collection", feat: EventFeaturizer,
                   sources: Sequence[Mapping[str, Any]]) -> np.ndarray:
        vectors = feat.transform(sources)
        if not np.isfinite(vectors).all():
            bad = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
            raise InvalidArgument(f"item {bad}: the features have non-finite values")
        if coll.record.metric == "cosine":
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            if (norms == 0).any():
                bad = int(np.flatnonzero(norms[:, 0] == 0)[0])
                raise InvalidArgument(f"point {bad}: every feature is zero, which has no direction under cosine "
                                      "distance (give more fields, or create the collection with euclid distance)")
            vectors = vectors / norms
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _event_points(self, coll: "_Collection", items: Sequence[ItemInput],
                      parsed: list[dict[str, Any]], stored: Mapping[str, Any] | None = None,
                      ) -> tuple[list[str], list[str], list[dict[str, Any]], list[dict[str, Any]], list[int]]:
        """Point ids, external ids, sources, metadata of the points a batch writes, and each item's point.

        One point per event, or for a profile collection one per entity (its stored profile
        merged with the batch's events; call under the collection lock). ``stored``: the
        entities' payloads by point id, when the caller has already retrieved them.
        """
        from .pipeline import point_id_for

        name = coll.record.name
        schema = self._event_featurizer(coll).schema
        if not schema.entity_key:
            ids = [point_id_for(name, it.id) if it.id else str(uuid.uuid4()) for it in items]
            return (ids, [it.id for it in items], [{"event": ev} for ev in parsed],
                    [it.metadata or {} for it in items], list(range(len(items))))
        keys: list[str] = []
        groups: dict[str, list[int]] = {}
        for i, ev in enumerate(parsed):
            key = ev[schema.entity_key]
            if key not in groups:
                groups[key] = []
                keys.append(key)
            groups[key].append(i)
        ids = [point_id_for(name, key) for key in keys]
        if stored is None:
            stored = {p.id: p.payload for p in coll.store.retrieve(ids)}
        sources, metas, owner = [], [], [0] * len(items)
        for g, (key, pid) in enumerate(zip(keys, ids)):
            old = stored.get(pid, {})
            events = []
            meta = dict(old.get("meta") or {})
            for i in groups[key]:
                owner[i] = g
                events.append({**parsed[i], "_id": items[i].id} if items[i].id else parsed[i])
                meta.update(items[i].metadata or {})
            sources.append(merge_profile(schema, old.get("source"), key, events))
            metas.append(meta)
        return ids, keys, sources, metas, owner

    def _event_model(self, coll: "_Collection") -> "ClusterModel | None":
        """The served model if it was fitted on the collection's current featurizer version."""
        model = coll.model
        if model is None:
            return None
        if int(model.params.get("featurizer_version", coll.record.featurizer_version)) != coll.record.featurizer_version:
            return None
        return model

    def _check_model_featurizer(self, coll: "_Collection", model: "ClusterModel") -> None:
        """Refuse to serve a model fitted on another featurizer version than the stored vectors'."""
        fv = model.params.get("featurizer_version")
        if coll.record.input_kind == "event" and fv is not None and int(fv) != coll.record.featurizer_version:
            raise FailedPrecondition(
                f"model v{model.version} was fitted on featurizer v{fv}; the points are featurized with "
                f"v{coll.record.featurizer_version}: start a clustering run instead")

    # ------------------------------------------------------------------ ingest / classify / search

    def _ingest_events(self, coll: "_Collection", items: Sequence[ItemInput]) -> list[ItemResult]:
        """EVENT ingest: parse, (fit the provisional featurizer), featurize, label, write; all or nothing."""
        rec = coll.record
        name = rec.name
        check_items(items, kind="event", dim=rec.dim, settings=self.settings)
        schema = self._event_featurizer(coll).schema
        parsed = parse_events(schema, [it.event for it in items], max_text_chars=self.settings.max_text_chars)
        with coll.lock:
            coll.check_open()
            ids, external, sources, metas, owner = self._event_points(coll, items, parsed)
            feat = self._event_featurizer(coll)
            first = not feat.version
            if first:  # before the first fit: a provisional featurizer fitted on this batch
                feat = feat.fit(sources, version=1, provisional=True)
            vectors = self._featurize(coll, feat, sources)
            if first:
                self._install_featurizer(coll, feat)
            payloads = [{"external_id": ext, "meta": meta, "source": src, "featurizer_version": feat.version}
                        for ext, meta, src in zip(external, metas, sources)]
            model = self._event_model(coll)
            assigned = model.assign(vectors) if model is not None else None
            fields = assigned.payloads() if assigned is not None else None
            if fields is not None:
                for payload, five in zip(payloads, fields):
                    payload.update(five)
            self._write_points(coll, ids, vectors, payloads)
            rec.changes_total += len(ids)
            if assigned is not None:
                self._recent_window(name).add(assigned.model_version, assigned.rows, assigned.cluster_distance,
                                              assigned.is_anomaly)
        self.metrics.observe_ingest(name, len(items))
        labels = [Assignment(**five) for five in fields] if fields is not None else [None] * len(ids)
        if assigned is not None and assigned.is_anomaly.any():
            self.anomaly_feed.publish(name, (
                PointView(point_id=ids[g], external_id=external[g], metadata=metas[g], text="",
                          assignment=labels[g], source=source_view(sources[g]))
                for g in np.flatnonzero(assigned.is_anomaly).tolist()
            ))
        self._maybe_auto_refit(coll)
        return [ItemResult(point_id=ids[g], external_id=external[g], assignment=labels[g]) for g in owner]

    def _event_query_vectors(self, coll: "_Collection", items: Sequence[ItemInput]) -> np.ndarray:
        """Vectors of events that are not stored (profiles: the entity's profile with them added)."""
        rec = coll.record
        check_items(items, kind="event", dim=rec.dim, settings=self.settings, with_ids=False)
        schema = self._event_featurizer(coll).schema
        parsed = parse_events(schema, [it.event for it in items], max_text_chars=self.settings.max_text_chars)
        with coll.lock:
            feat = self._event_featurizer(coll)
            if not feat.version:
                raise FailedPrecondition(f"collection {rec.name!r} has no featurizer yet: ingest events first")
            if not schema.entity_key:
                return self._featurize(coll, feat, [{"event": ev} for ev in parsed])
            from .pipeline import point_id_for

            entity_ids = list(dict.fromkeys(point_id_for(rec.name, ev[schema.entity_key]) for ev in parsed))
            stored = {p.id: p.payload for p in coll.store.retrieve(entity_ids)}  # one read for the batch
            # each event on its own: what its entity would become; featurized (and text-embedded) as one batch
            sources = [self._event_points(coll, [item], [ev], stored)[2][0] for item, ev in zip(items, parsed)]
            return self._featurize(coll, feat, sources)

    def _classify_events(self, coll: "_Collection", items: Sequence[ItemInput]) -> list[Assignment]:
        with coll.lock:  # one hold: a refit between featurizing and assigning would mix feature spaces
            vectors = self._event_query_vectors(coll, items)
            model = self._event_model(coll)
            if model is None:
                raise FailedPrecondition(
                    f"collection {coll.record.name!r} has no cluster model on featurizer "
                    f"v{coll.record.featurizer_version} yet: start a clustering run")
            assigned = model.assign(vectors)
        return [Assignment(**five) for five in assigned.payloads()]

    def _search_event(self, coll: "_Collection", event: dict[str, Any], limit: int,
                      cluster_id: int | None) -> list[SearchHit]:
        if not (1 <= limit <= 1000):
            raise InvalidArgument(f"limit must be in [1, 1000], got {limit}")
        in_cluster = (FieldEquals("cluster_id", int(cluster_id)),) if cluster_id is not None else ()
        with coll.lock:  # one hold: a refit between featurizing and searching would compare feature spaces
            query = self._event_query_vectors(coll, [ItemInput(event=event)])[0]
            # Only points in the query's feature space: during a refit's re-featurize pass the rest
            # are still on the previous version (a no-op filter otherwise).
            same_space = FieldEquals("featurizer_version", coll.record.featurizer_version)
            found = coll.store.search(query, limit=limit, flt=PointFilter(must=(same_space, *in_cluster)))
        return [SearchHit(point=self._view(p), score=s) for p, s in found]

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
        coll = self._get(check_name(name))
        if coll.record.input_kind != "event":
            raise FailedPrecondition(f"collection {name!r} is {coll.record.input_kind.upper()}: only EVENT "
                                     "collections have a featurizer")
        if not coll.store.count():
            raise FailedPrecondition(f"collection {name!r} is empty: ingest events before fitting the featurizer")
        return self._start_run(name, RunRequest(refit_featurizer=True), lambda ctx: self._refit_job(coll, ctx, auto=False),
                               trigger=trigger, attempt=attempt)

    def maybe_fit_featurizer(self, name: str) -> RunInfo | None:
        """Queue the automatic featurizer fit if it is due (the scheduler asks each tick)."""
        return self._maybe_auto_refit(self._get(name))

    def _maybe_auto_refit(self, coll: "_Collection") -> RunInfo | None:
        """Queue the automatic fit once the collection has enough points (provisional featurizer only).

        Called after each EVENT ingest, at start-up and by the scheduler, so a threshold crossed
        while another run was active (or before a crash) is not forgotten. A failed automatic fit
        is tried again only once the collection has grown by half.
        """
        rec = coll.record
        if not rec.featurizer_provisional or self.runs.active(rec.name) is not None:
            return None
        count = coll.store.count()
        if count < max(self.settings.featurizer_min_points, coll.auto_fit_after):
            return None

        def job(ctx: "RunContext") -> None:
            try:
                self._refit_job(coll, ctx, auto=True)
            except BaseException:
                coll.auto_fit_after = count + count // 2 + 1
                raise

        try:
            # trigger "changes": the point count reached the threshold
            run = self._start_run(rec.name, RunRequest(refit_featurizer=True), job, trigger="changes")
        except FailedPrecondition:  # a run started meanwhile: the next ingest or tick tries again
            return None
        logger.info("collection %s has %d points (>= %d): fitting its featurizer", rec.name, count,
                    self.settings.featurizer_min_points)
        return run

    def _refit_job(self, coll: "_Collection", ctx: "RunContext", *, auto: bool) -> None:
        rec = coll.record
        with coll.lock:  # writes wait: no point is featurized or labelled across the switch
            coll.check_open()
            old = self._event_featurizer(coll)
            if auto and not old.provisional:
                ctx.progress("done", 1.0, persist=True)
                return
            ctx.progress("fitting_featurizer", 0.0, persist=True)
            records = [p.payload["source"] for p in self._scroll_all(coll, with_vectors=False)]
            if not records:
                raise FailedPrecondition(f"collection {rec.name!r} is empty")
            new = old.fit(records, version=rec.featurizer_version + 1, provisional=False)
            self._check_refit_writable(coll, new, records)  # before the switch: a refused refit changes nothing
            ctx.progress("featurizing", 0.05, persist=True)  # the last point where a cancel is honoured
            self._install_featurizer(coll, new)  # from here on, points of another version are stale
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
            self._run(coll, RunRequest(k=prev.k, seed=int(prev.params.get("seed", 0))), ctx)
        else:
            ctx.progress("done", 1.0, persist=True, cancellable=False)

    def _check_refit_writable(self, coll: "_Collection", feat: EventFeaturizer,
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
                    f"featurizer v{feat.version} fitted on {len(records)} points of {coll.record.name!r} would give "
                    f"a stored point {why} (source {dict(records[i])!r:.300}); the collection stays on featurizer "
                    f"v{coll.record.featurizer_version} (give more fields, or use euclid distance)")

    def _scroll_all(self, coll: "_Collection", *, with_vectors: bool,
                    flt: PointFilter | None = None) -> Iterator[Any]:
        offset: str | None = None
        while True:
            points, offset = coll.store.scroll(limit=self.settings.page_size, offset=offset, flt=flt,
                                               with_vectors=with_vectors)
            yield from points
            if not offset:
                return

    def _refeaturize(self, coll: "_Collection", feat: EventFeaturizer,
                     ctx: "RunContext | None", *, total: int) -> int:
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
                vectors = self._featurize(coll, feat, [p.payload["source"] for p in points])
                payloads = [{**p.payload, "featurizer_version": feat.version} for p in points]
                self._write_points(coll, ids, vectors, payloads)
            time.sleep(0)  # let a waiting writer take the lock first: CPython's locks are not fair
            done += len(ids)
            if ctx is not None:
                ctx.info.points_labelled = done
                ctx.progress("featurizing", 0.05 + 0.3 * min(done / max(total, 1), 1.0), cancellable=False)
            if not offset:
                return done

    def _event_open(self, coll: "_Collection") -> None:
        """At start-up: re-featurize the points an interrupted refit left on an older version."""
        rec = coll.record
        if rec.input_kind != "event" or not rec.featurizer_version:
            return
        stale = coll.store.count(PointFilter(must_not=(FieldEquals("featurizer_version", rec.featurizer_version),)))
        if stale:
            logger.warning("collection %s: %d points are not on featurizer v%d (an interrupted refit): "
                           "re-featurizing them", rec.name, stale, rec.featurizer_version)
            try:
                self._refeaturize(coll, self._event_featurizer(coll), None, total=stale)
            except InvalidArgument as exc:  # deterministic: retrying cannot help, and must not stop the server
                logger.error("collection %s: cannot re-featurize its points on featurizer v%d: %s; they stay "
                             "on their old version until a refit succeeds", rec.name, rec.featurizer_version, exc)
