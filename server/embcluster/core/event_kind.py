"""The EVENT input kind: typed events (or per-entity profiles) featurized by the collection's featurizer.

Loading and installing the featurizer live here; when it is fitted and refitted is
:mod:`embcluster.core.featurizers`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from contextlib import AbstractContextManager
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..embed.base import Embedder
from ..embed.events import EventFeaturizer, EventSchema, check_schema, parse_events
from ..embed.featurizer import FeaturizerStore
from ..embed.profiles import merge_profile
from ..embed.tiers import DEFAULT_TIER
from ..insight.event_summary import event_text, fields_of
from ..embed.vector import VectorEmbedder
from ..errors import FailedPrecondition, InvalidArgument, shown
from ..insight.event_summary import fields_of
from ..models import ClusterModel
from ..schema import Assignment, CollectionSpec, InputKind, ItemInput, PointView
from ..store.base import Condition, FieldEquals, StoredPoint
from ..validation_items import check_items
from .kinds import Batch, Kind, KindSetup, Query, SummarySources, served_model, source_view
from .records import CollectionRecord, OpenCollection, point_id_for

__all__ = ["EventKind"]


class EventKind(Kind):
    """EVENT: typed events (or per-entity profiles) featurized by the collection's fitted featurizer."""

    kind: InputKind = "event"
    has_featurizer = True

    # ------------------------------------------------------------------ creation and the featurizer

    def setup(self, spec: CollectionSpec) -> KindSetup:
        """The unfitted featurizer's width, the embedder name and fingerprint of a new EVENT collection."""
        assert spec.event_schema is not None  # check_spec
        schema = check_schema(spec.event_schema)
        if schema.has_text:
            emb = self.embedders.text(spec.embedding_model, spec.embedding_tier)
            featurizer = EventFeaturizer(schema, text_embed=self.batchers.wrap(emb).embed, text_dim=emb.dim)
            name, fingerprint = emb.name, emb.fingerprint
        else:
            if spec.embedding_model or spec.embedding_tier != DEFAULT_TIER:
                raise InvalidArgument(f"an EVENT schema without text fields takes no embedding_model or "
                                      f"embedding_tier, got {shown(spec.embedding_model)}, {shown(spec.embedding_tier)}")
            digest = hashlib.sha256(json.dumps(schema.to_json(), sort_keys=True).encode()).hexdigest()
            featurizer, name, fingerprint = EventFeaturizer(schema), "event", f"event:sha256:{digest}"
        vec = VectorEmbedder(featurizer.dim)  # the width only: event vectors come from the featurizer
        vec.name, vec.fingerprint = name, fingerprint
        return KindSetup(embedder=vec, event_schema=featurizer.schema.to_json())

    def embedder_for(self, record: CollectionRecord) -> Embedder:
        return VectorEmbedder(record.dim)

    def featurizer(self, coll: OpenCollection) -> EventFeaturizer:
        """The collection's current featurizer (loaded once; unfitted before the first ingest)."""
        if coll.featurizer is None:
            coll.featurizer = self.featurizer_at(coll, coll.record.featurizer_version)
        feat: EventFeaturizer = coll.featurizer
        return feat

    def featurizer_at(self, coll: OpenCollection, version: int) -> EventFeaturizer:
        """The collection's saved featurizer ``version`` (0: the unfitted one of its schema)."""
        rec = coll.record
        schema = EventSchema.from_json(rec.event_schema or {})
        text_embed, text_dim = None, 0
        if schema.has_text:
            emb = self.embedders.text(rec.embedder, rec.embedding_tier)
            if emb.fingerprint != rec.embedder_fingerprint:
                raise FailedPrecondition(
                    f"collection {shown(rec.name)} was created with text model {shown(rec.embedder)} "
                    f"({rec.embedder_fingerprint[:19]}…); the server now has {emb.fingerprint[:19]}…. "
                    "Restore that model or re-create the collection")
            text_embed, text_dim = self.batchers.wrap(emb).embed, emb.dim
        if version:
            data = FeaturizerStore(coll.directory / "featurizers").load_json(version)
            return EventFeaturizer.from_json(data, text_embed=text_embed)
        return EventFeaturizer(schema, text_embed=text_embed, text_dim=text_dim)

    @staticmethod
    def install(coll: OpenCollection, feat: EventFeaturizer) -> None:
        """Save a fitted featurizer and make it the collection's (call under the collection lock)."""
        FeaturizerStore(coll.directory / "featurizers").save(feat)
        coll.record.featurizer_version = feat.version
        coll.record.featurizer_provisional = feat.provisional
        coll.featurizer = feat
        coll.save()

    @staticmethod
    def featurize(coll: OpenCollection, feat: EventFeaturizer, sources: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Vectors of point sources under ``feat`` (normalised under cosine; zero vectors refused)."""
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

    def _points(self, coll: OpenCollection, items: Sequence[ItemInput],
                parsed: list[dict[str, Any]], stored: Mapping[str, Any] | None = None,
                ) -> tuple[list[str], list[str], list[dict[str, Any]], list[dict[str, Any]], list[int]]:
        """Point ids, external ids, sources, metadata of the points a batch writes, and each item's point.

        One point per event, or for a profile collection one per entity (its stored profile
        merged with the batch's events; call under the collection lock). ``stored``: the
        entities' payloads by point id, when the caller has already retrieved them.
        """
        name = coll.record.name
        schema = self.featurizer(coll).schema
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

    # ------------------------------------------------------------------ ingest, classify, search

    def prepare(self, coll: OpenCollection, items: Sequence[ItemInput]) -> Callable[[], Batch]:
        """Parse the events; the returned step (under the lock) fits the provisional featurizer if none yet."""
        rec = coll.record
        check_items(items, kind="event", dim=rec.dim, settings=self.settings)
        schema = self.featurizer(coll).schema
        parsed = parse_events(schema, [it.event for it in items], max_text_chars=self.settings.max_text_chars)

        def build() -> Batch:
            ids, external, sources, metas, owner = self._points(coll, items, parsed)
            feat = self.featurizer(coll)
            first = not feat.version
            if first:  # before the first fit: a provisional featurizer fitted on this batch
                feat = feat.fit(sources, version=1, provisional=True)
            vectors = self.featurize(coll, feat, sources)
            if first:
                self.install(coll, feat)
            payloads = [{"external_id": ext, "meta": meta, "source": src, "featurizer_version": feat.version}
                        for ext, meta, src in zip(external, metas, sources)]

            def view(g: int, label: Assignment | None) -> PointView:
                return PointView(point_id=ids[g], external_id=external[g], metadata=metas[g], text="",
                                 assignment=label, source=source_view(sources[g]))

            return Batch(ids=ids, external=external, vectors=vectors, payloads=payloads, view=view, owner=owner)

        return build

    def query_scope(self, coll: OpenCollection) -> AbstractContextManager[Any]:
        # One hold: a refit between featurizing and assigning (or searching) would mix feature spaces.
        return coll.lock

    def query_vectors(self, coll: OpenCollection, items: Sequence[ItemInput]) -> np.ndarray:
        """Vectors of events that are not stored (profiles: the entity's profile with them added)."""
        rec = coll.record
        check_items(items, kind="event", dim=rec.dim, settings=self.settings, with_ids=False)
        schema = self.featurizer(coll).schema
        parsed = parse_events(schema, [it.event for it in items], max_text_chars=self.settings.max_text_chars)
        with coll.lock:
            feat = self.featurizer(coll)
            if not feat.version:
                raise FailedPrecondition(f"collection {shown(rec.name)} has no featurizer yet: ingest events first")
            if not schema.entity_key:
                return self.featurize(coll, feat, [{"event": ev} for ev in parsed])
            entity_ids = list(dict.fromkeys(point_id_for(rec.name, ev[schema.entity_key]) for ev in parsed))
            stored = {p.id: p.payload for p in coll.store.retrieve(entity_ids)}  # one read for the batch
            # each event on its own: what its entity would become; featurized (and text-embedded) as one batch
            sources = [self._points(coll, [item], [ev], stored)[2][0] for item, ev in zip(items, parsed)]
            return self.featurize(coll, feat, sources)

    def classify_vectors(self, coll: OpenCollection, items: Sequence[ItemInput]) -> tuple[np.ndarray, ClusterModel]:
        vectors = self.query_vectors(coll, items)
        model = served_model(coll)
        if model is None:
            raise FailedPrecondition(
                f"collection {shown(coll.record.name)} has no cluster model on featurizer "
                f"v{coll.record.featurizer_version} yet: start a clustering run")
        return vectors, model

    def check_search(self, coll: OpenCollection, query: Query) -> Any:
        if query.text is not None or query.vector is not None or query.image is not None:
            raise InvalidArgument(f"collection {shown(coll.record.name)} is EVENT: search it with an event")
        if query.event is None:
            raise InvalidArgument("give an event to search an EVENT collection")
        return None

    def search_vector(self, coll: OpenCollection, query: Query, parsed: Any) -> np.ndarray:
        return self.query_vectors(coll, [ItemInput(event=query.event)])[0]

    def search_space(self, coll: OpenCollection) -> tuple[Condition, ...]:
        # Only points in the query's feature space: during a refit's re-featurize pass the rest
        # are still on the previous version (a no-op filter otherwise).
        return (FieldEquals("featurizer_version", coll.record.featurizer_version),)

    def check_explainable(self, coll: OpenCollection) -> None:
        if served_model(coll) is None:
            # A refit switched the featurizer: stored vectors and the served model are in different
            # feature spaces until its re-cluster is served (Classify is refused the same way).
            raise FailedPrecondition(
                f"collection {shown(coll.record.name)} has no cluster model on featurizer v{coll.record.featurizer_version} "
                "yet (a featurizer refit is under way or its clustering run has not finished)")

    def model_params(self, record: CollectionRecord) -> dict[str, Any]:
        return {"featurizer_version": record.featurizer_version}  # the feature space this model lives in

    def field_layout(self, coll: OpenCollection) -> list[tuple[str, int]]:
        feat = self.featurizer(coll)
        return feat.field_layout() if feat.kind == "event" else []  # a profile's blocks are aggregates

    def shown_text(self, coll: OpenCollection, payload: Mapping[str, Any]) -> str:
        # "amount=12.5, country=BR, ...": the event's fields, or a profile's entity and means
        return event_text(payload.get("source"), fields_of(self.featurizer(coll).schema))

    def model_vectors(self, coll: OpenCollection, model: ClusterModel, points: Sequence[StoredPoint]) -> np.ndarray:
        """Stored vectors where the point is on the model's featurizer version; the others (a refit
        switched the featurizer, and its re-cluster is not served yet) featurized from their source
        with that version, so the report's labels are the model's own."""
        vectors = super().model_vectors(coll, model, points)
        version = int(model.params.get("featurizer_version", coll.record.featurizer_version))
        other = [i for i, p in enumerate(points) if int(p.payload.get("featurizer_version", 0)) != version]
        vectors[[i for i in other if not points[i].payload.get("source")]] = np.nan  # nothing to featurize
        other = [i for i in other if points[i].payload.get("source")]
        if not other:
            return vectors
        feat = self.featurizer(coll) if version == coll.record.featurizer_version else self.featurizer_at(coll, version)
        x = np.asarray(feat.transform([points[i].payload["source"] for i in other]), dtype=np.float64)
        if coll.record.metric == "cosine":
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            x = np.where(norms > 0, x / np.where(norms > 0, norms, 1.0), np.nan)  # no direction: dropped
        vectors[other] = x.astype(np.float32)
        return vectors

    def summary_sources(self, coll: OpenCollection, payloads: Sequence[Mapping[str, Any]]) -> SummarySources:
        """The stored events (or profiles) and the featurizer's fields, for field findings."""
        return SummarySources(sources=[p.get("source") for p in payloads],
                              event_fields=fields_of(self.featurizer(coll).schema))
