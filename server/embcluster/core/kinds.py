"""Input kinds as strategies: what differs between TEXT, IMAGE_METADATA, VECTOR and EVENT collections.

Each kind knows its embedder (and checks the recorded fingerprint against this server's model),
turns a batch of items into points (vectors, source payload), and turns queries into vectors.
Ingest, classify and search (:mod:`embcluster.core.points`) have one path each and ask the
collection's kind for these steps; no other module of the core branches on ``input_kind``
(validation.py and the API conversions still check each kind's own fields at the boundary).

The EVENT kind (:mod:`embcluster.core.event_kind`) also owns loading and installing the
collection's featurizer; its life cycle (automatic fit, refit, repair at start-up) is
:mod:`embcluster.core.featurizers`.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..config import Settings
from ..embed.base import Embedder, TextEmbedder
from ..embed.batching import EmbedBatchers
from ..embed.image import ImageMetadataEmbedder, render_image_metadata
from ..embed.long_text import Embedded, LongText
from ..embed.registry import EmbedderRegistry
from ..embed.text import WindowedTextEmbedder
from ..embed.vector import VectorEmbedder
from ..errors import FailedPrecondition, InvalidArgument, shown
from ..metrics import ServiceMetrics
from ..models import ClusterModel
from ..schema import (
    Assignment,
    CollectionSpec,
    ImageMetadataInput,
    ImageMetadataSpec,
    InputKind,
    ItemInput,
    PointView,
    VectorLike,
)
from ..store.base import Condition, StoredPoint
from ..validation_items import check_items, check_query
from .records import CollectionRecord, OpenCollection, point_id_for
from .reuse import EMBEDDED_FIELD, content_hashes, embedded_payload, stored_embeddings

__all__ = [
    "Batch",
    "KindSetup",
    "Query",
    "SummarySources",
    "Kind",
    "TextKind",
    "ImageMetadataKind",
    "VectorKind",
    "source_view",
    "served_model",
    "in_model_space",
    "check_model_space",
    "NO_MODEL",
]

NO_MODEL = "collection {} has no cluster model yet: start a clustering run"


def source_view(source: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What a point shows of its EVENT source: the event's fields, or a profile's aggregates."""
    if not source:
        return None
    if "event" in source:
        return dict(source["event"])
    if "profile" in source:
        return {"entity": source.get("entity", ""), "profile": source["profile"]}
    return None


def served_model(coll: OpenCollection) -> ClusterModel | None:
    """The served model if it lives in the stored vectors' feature space (EVENT: the current featurizer).

    For every other kind this is the served model itself (its params name no featurizer).
    """
    model = coll.model
    return model if model is not None and in_model_space(coll, model) else None


def in_model_space(coll: OpenCollection, model: ClusterModel) -> bool:
    """Whether ``model`` lives in the stored vectors' feature space (EVENT: fitted on the current featurizer)."""
    return int(model.params.get("featurizer_version", coll.record.featurizer_version)) == coll.record.featurizer_version


def check_model_space(coll: OpenCollection, model: ClusterModel) -> None:
    """Refuse to serve a model fitted on another featurizer version than the stored vectors'."""
    fv = model.params.get("featurizer_version")
    if fv is not None and int(fv) != coll.record.featurizer_version:
        raise FailedPrecondition(
            f"model v{model.version} was fitted on featurizer v{fv}; the points are featurized with "
            f"v{coll.record.featurizer_version}: start a clustering run instead")


@dataclass
class KindSetup:
    """What a new collection of a kind records: its embedder and the kind's own record fields."""

    embedder: Embedder
    image_spec: dict[str, Any] | None = None
    event_schema: dict[str, Any] | None = None


@dataclass
class Batch:
    """The points an ingest batch writes, and how to show them (anomaly feed) and report them."""

    ids: list[str]
    external: list[str]
    vectors: np.ndarray
    payloads: list[dict[str, Any]]
    view: Callable[[int, Assignment | None], PointView]  # point g as the anomaly feed shows it
    owner: Sequence[int]  # each item's point
    truncated: Sequence[bool] = ()  # per point: its text was longer than what was embedded (empty: none)
    reused: Sequence[bool] = ()  # per point: its stored vector was reused, not embedded again (empty: none)


@dataclass
class Query:
    """A search query: exactly one of its parts is of the collection's kind."""

    text: str | None = None
    vector: VectorLike | None = None
    image: ImageMetadataInput | None = None
    event: dict[str, Any] | None = None


@dataclass(frozen=True)
class SummarySources:
    """What a run's cluster summaries read from the sampled points' stored payloads (one entry per point).

    Attributes:
        texts: TEXT / IMAGE_METADATA: each point's source text (None without one): keywords.
        sources: EVENT: each point's ``payload["source"]`` (an event or a profile): field findings.
        event_fields: EVENT: field name -> schema type of the collection's featurizer.
    """

    texts: list[str | None] | None = None
    sources: list[Mapping[str, Any] | None] | None = None
    event_fields: dict[str, str] | None = None


class Kind:
    """One input kind (subclasses below). Shared by every collection of that kind.

    Args:
        settings: Service settings (batch limits, text limits).
        embedders: The text model registry.
        metrics: Where embedding time is observed.
        batchers: The service's embedding queues (text models are used through them).
    """

    kind: InputKind
    has_featurizer = False  # EVENT: vectors come from a fitted featurizer (FitFeaturizer applies)
    has_image_spec = False  # IMAGE_METADATA: the collection reports its image spec

    def __init__(self, settings: Settings, embedders: EmbedderRegistry, metrics: ServiceMetrics,
                 batchers: EmbedBatchers) -> None:
        self.settings = settings
        self.embedders = embedders
        self.metrics = metrics
        self.batchers = batchers

    # ------------------------------------------------------------------ creation and embedders

    def setup(self, spec: CollectionSpec) -> KindSetup:
        """The embedder of a new collection (its name and fingerprint are recorded) and record fields."""
        raise NotImplementedError

    def embedder_for(self, record: CollectionRecord) -> Embedder:
        """This server's embedder for ``record``, checked against the recorded fingerprint and width."""
        raise NotImplementedError

    def embedder(self, coll: OpenCollection) -> Embedder:
        """The collection's embedder (built and checked once)."""
        if coll.embedder is None:
            coll.embedder = self.embedder_for(coll.record)
        return coll.embedder

    def check_embedder(self, record: CollectionRecord) -> None:
        """Before importing a collection: this server has its text model (no-op for other kinds)."""

    # ------------------------------------------------------------------ ingest, classify, search

    def prepare(self, coll: OpenCollection, items: Sequence[ItemInput]) -> Callable[[], Batch]:
        """Validate (and embed) ``items``; the returned step builds the batch under ``coll.lock``."""
        raise NotImplementedError

    def query_scope(self, coll: OpenCollection) -> AbstractContextManager[Any]:
        """Held while a query is turned into a vector and used (EVENT: the collection lock)."""
        return nullcontext()

    def classify_vectors(self, coll: OpenCollection, items: Sequence[ItemInput]) -> tuple[np.ndarray, ClusterModel]:
        """Vectors of items that are not stored, and the model that labels them."""
        raise NotImplementedError

    def check_search(self, coll: OpenCollection, query: Query) -> Any:
        """Validate a search query (InvalidArgument if it is not of this kind); returns what it parsed."""
        raise NotImplementedError

    def search_vector(self, coll: OpenCollection, query: Query, parsed: Any) -> np.ndarray:
        """The vector a checked query searches with (call inside :meth:`query_scope`)."""
        raise NotImplementedError

    def search_space(self, coll: OpenCollection) -> tuple[Condition, ...]:
        """Conditions that keep a search to the query's feature space (none but for EVENT)."""
        return ()

    def check_explainable(self, coll: OpenCollection) -> None:
        """FAILED_PRECONDITION when the served model cannot label the stored vectors."""

    def model_params(self, record: CollectionRecord) -> dict[str, Any]:
        """Params a new model records about the feature space it was fitted in."""
        return {}

    def field_layout(self, coll: OpenCollection) -> list[tuple[str, int]]:
        """``(field, width)`` blocks of a stored vector, for ExplainPoint's per-field split (none but EVENT)."""
        return []

    # ------------------------------------------------------------------ the report's point sample

    def shown_text(self, coll: OpenCollection, payload: Mapping[str, Any]) -> str:
        """What the report shows of a stored point: its source text (TEXT, IMAGE_METADATA: the
        rendering), else its metadata as compact JSON, else ""."""
        text = (payload.get("source") or {}).get("text")
        if text:
            return str(text)
        meta = payload.get("meta")
        return json.dumps(meta, ensure_ascii=False, separators=(",", ":"), default=str) if meta else ""

    def model_vectors(self, coll: OpenCollection, model: ClusterModel, points: Sequence[StoredPoint]) -> np.ndarray:
        """The points' vectors in ``model``'s feature space, ``(n, dim)`` float32; a row that has none
        is NaN (the caller drops it). Every kind but EVENT stores them in that space."""
        if not points:
            return np.zeros((0, coll.record.dim), dtype=np.float32)
        return np.stack([np.asarray(p.vector, dtype=np.float32) if p.vector is not None
                         else np.full(coll.record.dim, np.nan, dtype=np.float32) for p in points])

    def summary_sources(self, coll: OpenCollection, payloads: Sequence[Mapping[str, Any]]) -> SummarySources:
        """What the cluster summaries read of these stored payloads (nothing: representatives only)."""
        return SummarySources()


class _EmbeddedKind(Kind):
    """Kinds whose vectors come from an embedder applied to each item (TEXT, IMAGE_METADATA, VECTOR)."""

    embeds_text = False  # TEXT, IMAGE_METADATA: long texts are counted, unchanged items' vectors reused

    def _raw_vectors(self, emb: Embedder, items: Sequence[ItemInput], parsed: np.ndarray | None,
                     long_text: LongText) -> Embedded:
        raise NotImplementedError

    def _texts(self, items: Sequence[ItemInput], record: CollectionRecord) -> list[str | None]:
        return [it.text for it in items]

    def _content(self, item: ItemInput) -> Any:
        """What the item's vector depends on besides the collection (hashed: :mod:`.reuse`)."""
        return item.text

    def _embed_or_reuse(self, coll: OpenCollection, items: Sequence[ItemInput], parsed: np.ndarray | None,
                        ids: Sequence[str]) -> tuple[Embedded, list[str | None], np.ndarray]:
        """Vectors of validated items: an unchanged item's stored one, the others embedded (:mod:`.reuse`).

        Returns the vectors, each item's content hash (None: not kept, the item has no id) and
        which items reused their stored vector.
        """
        n = len(items)
        reused = np.zeros(n, dtype=bool)
        if not self.embeds_text or parsed is not None:
            return self.embed(coll, items, parsed), [None] * n, reused
        self.embedder(coll)  # refuses a collection whose model this server no longer has, even if nothing is embedded
        hashes = content_hashes(coll.record, [self._content(it) if it.id else None for it in items],
                                self.settings.long_text_max_windows)
        stored = stored_embeddings(coll, ids, hashes)
        self.metrics.observe_reused(coll.name, len(stored.rows))  # 0 too: the series exists from the first ingest
        if not stored.rows:
            return self.embed(coll, items, parsed), hashes, reused
        reused[stored.rows] = True
        fresh = np.flatnonzero(~reused).tolist()
        vectors = np.empty((n, coll.record.dim), dtype=np.float32)
        truncated = np.zeros(n, dtype=bool)
        vectors[stored.rows], truncated[stored.rows] = stored.vectors, stored.truncated
        if fresh:
            new = self.embed(coll, [items[i] for i in fresh], None)
            vectors[fresh], truncated[fresh] = new.vectors, new.truncated
        self.metrics.observe_truncated(coll.name, int(stored.truncated.sum()))
        return Embedded(vectors, truncated), hashes, reused

    def long_text(self, record: CollectionRecord) -> LongText:
        """How the collection embeds texts longer than its model's window."""
        return LongText(mode=record.settings.long_text_mode,  # type: ignore[arg-type]  # validated at creation
                        max_windows=self.settings.long_text_max_windows)

    def embed(self, coll: OpenCollection, items: Sequence[ItemInput], parsed: np.ndarray | None) -> Embedded:
        """Vectors of validated items (``parsed``: the matrix validation built for VECTOR input).

        Ingest, Classify and Search all embed here, so a long text is embedded the same way
        whichever call sends it, and every truncated text is counted.
        """
        emb = self.embedder(coll)
        started = time.perf_counter()
        embedded = self._raw_vectors(emb, items, parsed, self.long_text(coll.record))
        vectors = embedded.vectors
        self.metrics.observe_embed(emb.name, time.perf_counter() - started)
        if self.embeds_text:
            self.metrics.observe_truncated(coll.name, int(embedded.truncated.sum()))
        if not np.isfinite(vectors).all():
            bad = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
            raise InvalidArgument(f"item {bad}: the embedding has non-finite values")
        if coll.record.metric == "cosine":
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return Embedded(vectors.astype(np.float32, copy=False), embedded.truncated)

    def prepare(self, coll: OpenCollection, items: Sequence[ItemInput]) -> Callable[[], Batch]:
        rec = coll.record
        name = rec.name
        image_spec = rec.image  # parsed once per call, not once per item
        parsed = check_items(items, kind=rec.input_kind, dim=rec.dim, settings=self.settings,
                             cosine=rec.metric == "cosine", image_spec=image_spec)
        ids = [point_id_for(name, it.id) if it.id else str(uuid.uuid4()) for it in items]
        embedded, hashes, reused = self._embed_or_reuse(coll, items, parsed, ids)
        vectors = embedded.vectors
        # What a point shows as its text: the text itself, or the rendering of its image metadata.
        texts = self._texts(items, rec)
        payloads: list[dict[str, Any]] = []
        for it, text, digest, cut in zip(items, texts, hashes, embedded.truncated.tolist()):
            payload: dict[str, Any] = {"external_id": it.id, "meta": it.metadata or {}}
            if rec.store_source and text is not None:
                payload["source"] = {"text": text}
                if it.image is not None:
                    payload["source"]["image"] = it.image.to_json()
            if digest is not None:
                payload[EMBEDDED_FIELD] = embedded_payload(digest, cut)
            payloads.append(payload)

        def view(i: int, label: Assignment | None) -> PointView:
            return PointView(point_id=ids[i], external_id=items[i].id, metadata=items[i].metadata or {},
                             text=texts[i] or "", assignment=label, image=items[i].image)

        batch = Batch(ids=ids, external=[it.id for it in items], vectors=vectors, payloads=payloads, view=view,
                      owner=range(len(items)), truncated=embedded.truncated.tolist(), reused=reused.tolist())
        return lambda: batch

    def classify_vectors(self, coll: OpenCollection, items: Sequence[ItemInput]) -> tuple[np.ndarray, ClusterModel]:
        rec = coll.record
        parsed = check_items(items, kind=rec.input_kind, dim=rec.dim, settings=self.settings,
                             cosine=rec.metric == "cosine", with_ids=False, image_spec=rec.image)
        model = coll.model
        if model is None:
            raise FailedPrecondition(NO_MODEL.format(shown(rec.name)))
        return self.embed(coll, items, parsed).vectors, model

    def check_search(self, coll: OpenCollection, query: Query) -> Any:
        rec = coll.record
        if query.event is not None:
            raise InvalidArgument(f"collection {shown(rec.name)} is {rec.input_kind.upper()}: search it with "
                                  "its own kind of query")
        return check_query(query.text, query.vector, kind=rec.input_kind, dim=rec.dim, settings=self.settings,  # type: ignore[arg-type]
                           cosine=rec.metric == "cosine", image=query.image, image_spec=rec.image)

    def search_vector(self, coll: OpenCollection, query: Query, parsed: Any) -> np.ndarray:
        item = ItemInput(text=query.text, vector=query.vector, image=query.image)
        return self.embed(coll, [item], parsed).vectors[0]


class TextKind(_EmbeddedKind):
    """TEXT: texts embedded with a sentence-transformers model."""

    kind: InputKind = "text"
    embeds_text = True

    def setup(self, spec: CollectionSpec) -> KindSetup:
        return KindSetup(embedder=self.batchers.wrap(self._check_dim(spec, self._tier_embedder(spec))))

    def _tier_embedder(self, spec: CollectionSpec) -> WindowedTextEmbedder:
        """The new collection's text model on its tier, checked against what the spec asks of it."""
        text = self.embedders.text(spec.embedding_model, spec.embedding_tier)
        if spec.settings.long_text == "pool" and not text.can_pool:
            raise InvalidArgument(f"long_text 'pool' needs a model with a fast tokenizer; {shown(text.name)} has "
                                  "none (leave long_text unset: texts are truncated to its window)")
        return text

    @staticmethod
    def _check_dim(spec: CollectionSpec, emb: Embedder) -> Embedder:
        """``emb`` if it makes vectors of the dimension the spec asks for (0: any)."""
        if spec.vector_dim and spec.vector_dim != emb.dim:
            raise InvalidArgument(f"vector_dim {spec.vector_dim} differs from the dimension of model "
                                  f"{shown(emb.name)} on tier {shown(spec.embedding_tier)}: {emb.dim}")
        return emb

    def _model_embedder(self, record: CollectionRecord) -> Embedder:
        return self.batchers.wrap(self._recorded_text(record))

    def _recorded_text(self, record: CollectionRecord) -> WindowedTextEmbedder:
        """The recorded model on the recorded tier; a tier this server cannot run is FAILED_PRECONDITION."""
        try:
            return self.embedders.text(record.embedder, record.embedding_tier)
        except InvalidArgument as exc:
            raise FailedPrecondition(f"collection {shown(record.name)} embeds with model {shown(record.embedder)} "
                                     f"on tier {shown(record.embedding_tier)}, which this server cannot run: "
                                     f"{exc.message}") from None

    def embedder_for(self, record: CollectionRecord) -> Embedder:
        emb = self._model_embedder(record)
        if emb.fingerprint != record.embedder_fingerprint or emb.dim != record.dim:
            raise FailedPrecondition(
                f"collection {shown(record.name)} was created with model {shown(record.embedder)} "
                f"({record.embedder_fingerprint[:19]}…, {record.dim}-d); the server now has "
                f"{emb.fingerprint[:19]}…, {emb.dim}-d. Restore that model or re-create the collection"
            )
        return emb

    def check_embedder(self, record: CollectionRecord) -> None:
        try:
            self.embedders.text(record.embedder, record.embedding_tier)
        except InvalidArgument as exc:  # the registry does not know the model, or cannot run the tier
            raise FailedPrecondition(f"the snapshot's collection {shown(record.name)} was embedded with model "
                                     f"{shown(record.embedder)} (tier {shown(record.embedding_tier)}), which this "
                                     f"server does not have: {exc.message}") from None
        self.embedder_for(record)

    def _raw_vectors(self, emb: Embedder, items: Sequence[ItemInput], parsed: np.ndarray | None,
                     long_text: LongText) -> Embedded:
        text: TextEmbedder = emb  # type: ignore[assignment]
        return text.embed_long([it.text for it in items], long_text)  # type: ignore[misc]

    def summary_sources(self, coll: OpenCollection, payloads: Sequence[Mapping[str, Any]]) -> SummarySources:
        """The stored source texts (IMAGE_METADATA: their rendering), for keywords."""
        return SummarySources(texts=[(p.get("source") or {}).get("text") for p in payloads])


class ImageMetadataKind(TextKind):
    """IMAGE_METADATA: image metadata rendered as text, embedded with a text model."""

    kind: InputKind = "image_metadata"
    has_image_spec = True

    def setup(self, spec: CollectionSpec) -> KindSetup:
        image_spec = spec.image_spec or ImageMetadataSpec()
        emb = self._check_dim(spec, ImageMetadataEmbedder(self.batchers.wrap(self._tier_embedder(spec)), image_spec))
        return KindSetup(embedder=emb, image_spec=image_spec.to_json())

    def _model_embedder(self, record: CollectionRecord) -> Embedder:
        return ImageMetadataEmbedder(self.batchers.wrap(self._recorded_text(record)), record.image)

    def _texts(self, items: Sequence[ItemInput], record: CollectionRecord) -> list[str | None]:
        image_spec = record.image
        return [render_image_metadata(it.image, image_spec) for it in items]  # type: ignore[arg-type]

    def _content(self, item: ItemInput) -> Any:
        return item.image.to_json() if item.image is not None else None

    def _raw_vectors(self, emb: Embedder, items: Sequence[ItemInput], parsed: np.ndarray | None,
                     long_text: LongText) -> Embedded:
        image_emb: ImageMetadataEmbedder = emb  # type: ignore[assignment]
        if all(it.image is not None for it in items):
            return image_emb.embed_long([it.image for it in items], long_text)  # type: ignore[misc]
        # a text query (validation lets no other mix through)
        return image_emb.embed_queries([it.text or "" for it in items], long_text)


class VectorKind(_EmbeddedKind):
    """VECTOR: the caller's own vectors."""

    kind: InputKind = "vector"

    def setup(self, spec: CollectionSpec) -> KindSetup:
        return KindSetup(embedder=VectorEmbedder(spec.vector_dim))

    def embedder_for(self, record: CollectionRecord) -> Embedder:
        return VectorEmbedder(record.dim)

    def _raw_vectors(self, emb: Embedder, items: Sequence[ItemInput], parsed: np.ndarray | None,
                     long_text: LongText) -> Embedded:
        return Embedded.whole(emb.embed(parsed))  # type: ignore[arg-type]
