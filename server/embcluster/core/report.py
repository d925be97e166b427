"""The cluster report of a collection: what ``GetReport``, ``embcluster report`` and the live view serve.

Reads what :func:`embcluster.report.build_report` needs from one collection and renders it
(:func:`embcluster.report.render_html`):

* the served model and its cluster listing (sizes counted at one moment by
  :meth:`Points.cluster_listing`), read again if a run switched versions in between;
* a seeded sample of up to ``sample_size`` points: record numbers drawn uniformly from the vector
  log's live set (their vectors read from the log, their payloads from the store: a point deleted
  since the log was read is not drawn), plus up to half as many of the served version's anomalies
  (so a large collection still shows them on the map; ``build_report`` keeps them first);
* their vectors in the model's feature space (:meth:`Kind.model_vectors`: EVENT points a
  featurizer refit moved on are featurized with the model's own featurizer version) and what hover
  shows of each (:meth:`Kind.shown_text`);
* the newest :data:`HISTORY_VERSIONS` published versions and the version's cluster summaries
  (``ClusterModel.summaries``; a version fitted before runs computed them has none, and the
  report says so).

Everything is read without the collection lock but the listing's: ingest goes on meanwhile. The
sampled points are labelled by ``build_report`` with the reported model itself, so the map never
mixes versions even while a write-back runs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import Settings
from ..errors import FailedPrecondition, ResourceExhausted, shown
from ..models import ClusterModel
from ..report import PointSample, ReportData, build_report, render_html
from ..schema import ClusterListing
from ..store.base import FieldEquals, PointFilter, StoredPoint
from ..store.ids import public_point_id
from ..validation import check_name
from ..validation_reads import check_report_sample
from .points import Points
from .records import OpenCollection
from .registry import CollectionRegistry

__all__ = ["HISTORY_VERSIONS", "MESSAGE_MARGIN_BYTES", "RenderedReport", "ReportRevision", "Reports", "summaries_by_id"]

logger = logging.getLogger(__name__)

HISTORY_VERSIONS = 100  # versions in the history (KEEP_MODEL_VERSIONS keeps 100 by default)
MESSAGE_MARGIN_BYTES = 64 * 1024  # the response's other fields, under MAX_MESSAGE_BYTES with the HTML
_READ_CHUNK = 4096  # ids per store read


@dataclass(frozen=True)
class RenderedReport:
    """A collection's report as one self-contained HTML document, and what it holds.

    Attributes:
        collection: The collection.
        model_version: The model version it shows (the served one when it was made).
        html: The UTF-8 HTML document (no network needed to open it).
        points_drawn: Points on the map.
        point_count: Points in the collection.
        anomalies_drawn: Of the points on the map, those the model flags.
        clusters: Clusters of the version.
        labelled_clusters: Clusters with a label from the version's summaries.
        versions: Model versions in the history.
        k_curves: Whether the per-k selection curves are shown (a run chose k from a range).
        summaries: Whether the version carries cluster summaries.
        generated_at: When it was made (ISO 8601, UTC).
        seconds: Time taken to read, build and render it.
    """

    collection: str
    model_version: int
    html: bytes
    points_drawn: int
    point_count: int
    anomalies_drawn: int
    clusters: int
    labelled_clusters: int
    versions: int
    k_curves: bool
    summaries: bool
    generated_at: str
    seconds: float


@dataclass(frozen=True)
class ReportRevision:
    """Which report a collection has now: a new served version (or a re-created collection) makes another.

    Attributes:
        collection: The collection.
        created_at: When the collection was created (a deleted and re-created one differs).
        model_version: The served model version (0: none yet).
    """

    collection: str
    created_at: str
    model_version: int

    @property
    def tag(self) -> str:
        """The revision as one string (what the live view's pages compare)."""
        return f"{self.created_at}/v{self.model_version}"


def summaries_by_id(model: ClusterModel) -> dict[int, dict[str, Any]] | None:
    """The version's cluster summaries as ``build_report`` takes them (None when it has none)."""
    if model.summaries is None:
        return None
    return {int(s.cluster_id): {
        "label": s.label, "keywords": [k.term for k in s.keywords], "label_changed": s.label_changed,
        "representatives": [{"id": r.id, "text": r.text, "distance": r.distance} for r in s.representatives],
    } for s in model.summaries.clusters}


class Reports:
    """Builds and renders the reports of the registry's collections.

    Args:
        settings: The message limit a rendered report must fit.
        registry: The open collections (and their kinds).
        points: Counts the served version's clusters (``cluster_listing``).
    """

    def __init__(self, settings: Settings, registry: CollectionRegistry, points: Points) -> None:
        self.settings = settings
        self.registry = registry
        self.points = points

    def revision(self, name: str) -> ReportRevision:
        """What a report of ``name`` would show now, cheaply (no counting): to tell whether a report
        made before is still current.

        Raises:
            NotFound: no such collection.
        """
        rec = self.registry.get(check_name(name)).record
        return ReportRevision(collection=rec.name, created_at=rec.created_at, model_version=rec.served_version)

    def data(self, name: str, *, sample_size: int = 0) -> ReportData:
        """What the report of ``name``'s served model shows.

        Args:
            name: The collection.
            sample_size: Most points drawn on the map (0 = 10,000; at most 50,000).

        Raises:
            NotFound: no such collection.
            InvalidArgument: ``sample_size`` out of range.
            FailedPrecondition: no model is served yet.
        """
        return self._build(name, sample_size)[0]

    def _build(self, name: str, sample_size: int) -> tuple[ReportData, ClusterModel]:
        coll = self.registry.get(check_name(name))
        limit = check_report_sample(sample_size)
        model, listing = self._served(coll)
        seed = int(coll.record.settings.seed or 0)
        points = self._sample(coll, model, limit, seed)
        kind = self.registry.kinds.of(coll)
        vectors = kind.model_vectors(coll, model, points)
        placed = np.isfinite(vectors).all(axis=1) if len(points) else np.zeros(0, dtype=bool)
        kept = [p for p, ok in zip(points, placed) if ok]
        sample = PointSample(ids=[str(p.payload.get("external_id") or public_point_id(p.id)) for p in kept],
                             vectors=vectors[placed], texts=[kind.shown_text(coll, p.payload) for p in kept])
        history, saved = self._history(coll, model)
        notes = self._notes(model, listing, saved=saved, shown=len(history), unplaced=len(points) - len(kept))
        data = build_report(collection=coll.record.name, kind=coll.record.input_kind, model=model,
                            clusters=listing.clusters, point_count=listing.point_count, sample=sample,
                            history=history, summaries=summaries_by_id(model), notes=notes, limit=limit, seed=seed)
        return data, model

    def render(self, name: str, *, sample_size: int = 0, fit_message: bool = True) -> RenderedReport:
        """The report of ``name`` as HTML (see :meth:`data`).

        Args:
            name: The collection.
            sample_size: Most points drawn on the map (0 = the default).
            fit_message: Check the HTML against the gRPC message limit (``GetReport``); the live view
                serves it over HTTP, where that limit does not apply.

        Raises:
            ResourceExhausted: ``fit_message`` and the HTML would not fit in one response (``max_message_bytes``).
        """
        started = time.perf_counter()
        data, model = self._build(name, sample_size)
        html = render_html(data).encode("utf-8")
        limit = self.settings.max_message_bytes - MESSAGE_MARGIN_BYTES
        if fit_message and len(html) > limit:
            raise ResourceExhausted(
                f"the report of collection {shown(name)} is {len(html):,} bytes with {len(data.points):,} points "
                f"drawn, over the {limit:,} bytes a response may carry (MAX_MESSAGE_BYTES): ask for fewer points "
                "(sample_size)")
        seconds = time.perf_counter() - started
        logger.info("report of %s (model v%d, %d points drawn): %d bytes in %.2f s", data.collection,
                    data.model_version, len(data.points), len(html), seconds)
        return RenderedReport(
            collection=data.collection, model_version=data.model_version, html=html, points_drawn=len(data.points),
            point_count=data.point_count, anomalies_drawn=sum(data.points.is_anomaly), clusters=len(data.clusters),
            labelled_clusters=sum(1 for c in data.clusters if c.label), versions=len(data.history),
            k_curves=data.k_selection is not None, summaries=model.summaries is not None,
            generated_at=data.generated_at, seconds=seconds)

    # ------------------------------------------------------------------ reading

    def _served(self, coll: OpenCollection) -> tuple[ClusterModel, ClusterListing]:
        """The served model and its listing, of the same version (a run may switch in between)."""
        for _ in range(3):
            listing = self.points.cluster_listing(coll.record.name)
            model = coll.model
            if model is not None and model.version == listing.version:
                return model, listing
        raise FailedPrecondition(f"collection {shown(coll.record.name)} switched model versions while its report "
                                 "was read three times: try again")

    @staticmethod
    def _sample(coll: OpenCollection, model: ClusterModel, limit: int, seed: int) -> list[StoredPoint]:
        """Up to ``limit`` live points drawn uniformly, plus up to ``limit // 2`` of the version's
        anomalies, with vectors and payloads, in point-id order (so a seed gives the same map).

        The drawn points' vectors come from the vector log (a store read of vectors costs ~4x
        more, in Python lists), their payloads from the store: a point deleted since the log was
        read is not drawn.
        """
        live = coll.vlog.live()  # reads may run beside appends: records are only ever added
        rng = np.random.default_rng(seed)
        rows = live.rows[np.sort(rng.choice(len(live.rows), size=min(limit, len(live.rows)), replace=False))]
        vectors = {str(i): v for ids, page in coll.vlog.iter_pages(live, _READ_CHUNK, rows=rows) for i, v in zip(ids, page)}
        drawn = list(vectors)
        found: dict[str, StoredPoint] = {}
        for start in range(0, len(drawn), _READ_CHUNK):
            for p in coll.store.retrieve(drawn[start:start + _READ_CHUNK]):
                found[str(p.id)] = StoredPoint(id=p.id, payload=p.payload, vector=vectors.get(str(p.id)))
        if limit >= 2:
            flagged, _ = coll.store.scroll(limit=limit // 2, with_vectors=True, flt=PointFilter(must=(
                FieldEquals("is_anomaly", True), FieldEquals("model_version", model.version))))
            found.update((str(p.id), p) for p in flagged)
        return [found[k] for k in sorted(found)]

    def _history(self, coll: OpenCollection, model: ClusterModel) -> tuple[list[ClusterModel], int]:
        """The newest published versions (the served one included) and how many are saved."""
        versions = coll.models.published(coll.record.served_version)
        out = []
        for v in versions[-HISTORY_VERSIONS:]:
            if v == model.version:
                out.append(model)
                continue
            try:
                out.append(coll.models.load(v))
            except (FileNotFoundError, ValueError) as exc:  # pruned meanwhile, or a schema this server cannot read
                logger.debug("report of %s: model v%d left out of the history (%s)", coll.record.name, v, exc)
        return out, len(versions)

    @staticmethod
    def _notes(model: ClusterModel, listing: ClusterListing, *, saved: int, shown: int, unplaced: int) -> list[str]:
        notes = []
        if listing.provisional:
            notes.append("Points are being relabelled (a run's write-back or catch-up is under way): the cluster "
                         "sizes are provisional.")
        if model.summaries is None:
            notes.append(f"Model version {model.version} has no cluster summaries (fitted before runs computed "
                         "them): each cluster shows the sampled members nearest its centre.")
        if saved > shown:
            notes.append(f"History: the newest {shown} of {saved} saved model versions.")
        if unplaced:
            notes.append(f"{unplaced} sampled points have no vector in model version {model.version}'s feature "
                         "space and are not drawn.")
        return notes
