"""Points: ingest (one path, one labelling tail), deletes, reads, classify, search and explain.

What differs between input kinds is asked of the collection's kind (:mod:`.kinds`); the
labelling tail (label with the served model, write, count, drift window, anomaly feed) is the
same for all of them.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from ..anomaly.explain import field_contributions
from ..anomaly.feed import AnomalyFeed, Subscription
from ..config import Settings
from ..drift import RecentWindows
from ..errors import FailedPrecondition, InvalidArgument, NotFound, shown
from ..metrics import ServiceMetrics
from ..models import ClusterModel
from ..schema import (
    Assignment,
    ClusterInfo,
    ClusterListing,
    Explanation,
    ImageMetadataInput,
    ItemInput,
    ItemResult,
    PointView,
    SearchHit,
    VectorLike,
)
from ..store.base import FieldEquals, PointFilter
from ..store.ids import parse_public_point_id, public_point_id
from ..validation import check_name, check_page_size
from .featurizers import FeaturizerLifecycle
from .kinds import NO_MODEL, Query, in_model_space, served_model, source_view
from .records import OpenCollection, point_id_for
from .registry import CollectionRegistry

__all__ = ["Points", "point_view"]

logger = logging.getLogger(__name__)


def point_view(point: Any, with_vector: bool = False) -> PointView:
    """A stored point as callers see it."""
    payload = point.payload
    return PointView(
        point_id=public_point_id(point.id), external_id=payload.get("external_id", ""), metadata=payload.get("meta", {}),
        text=(payload.get("source") or {}).get("text", ""), assignment=Assignment.from_payload(payload),
        vector=point.vector.tolist() if with_vector and point.vector is not None else None,
        image=ImageMetadataInput.from_json(payload["source"]["image"])
        if "image" in (payload.get("source") or {}) else None,
        source=source_view(payload.get("source")),
    )


def served_views(coll: OpenCollection, points: Sequence[Any], model: ClusterModel | None, *,
                 with_vector: bool = False) -> list[PointView]:
    """Views of ``points`` with each point's fields as of ``model`` (the served one, read once by the caller).

    The read rule (docs/architecture.md): a point whose stored fields are another version's (a
    write-back, revert or repair is on its way) is shown with the served model's fields computed
    from its vector and ``relabelling`` set, or with no fields when no served model applies to it.
    """
    views = [point_view(p, with_vector) for p in points]
    served = model.version if model is not None else None
    usable = model if model is not None and in_model_space(coll, model) else None
    stale = [i for i, v in enumerate(views)
             if (v.assignment.model_version if v.assignment is not None else None) != served
             and (v.assignment is not None or usable is not None)]
    if not stale:
        return views
    if usable is not None:
        vectors = {str(p.id): p.vector for p in points if p.vector is not None}
        missing = [points[i].id for i in stale if str(points[i].id) not in vectors]
        if missing:
            vectors.update({str(p.id): p.vector for p in coll.store.retrieve(missing, with_vectors=True)})
        rows = [i for i in stale if vectors.get(str(points[i].id)) is not None]
        if rows:
            x = np.stack([np.asarray(vectors[str(points[i].id)], dtype=np.float32) for i in rows])
            for i, five in zip(rows, usable.assign(x).payloads()):
                views[i].assignment = Assignment(**five)
                views[i].relabelling = True
    for i in stale:
        if not views[i].relabelling:  # no served model applies to it (or it vanished meanwhile)
            views[i].assignment = None
            views[i].relabelling = True
    return views


def _matches(view: PointView, cluster_id: int | None = None, anomaly: bool | None = None) -> bool:
    """A listing's filter, applied to the served fields of a point being relabelled."""
    if not view.relabelling:
        return True
    a = view.assignment
    if a is None:
        return False
    return (cluster_id is None or a.cluster_id == cluster_id) and (anomaly is None or a.is_anomaly == anomaly)


def _check_point_id(point_id: str) -> str:
    try:
        return parse_public_point_id(point_id)  # a UUID, or an attached collection's unsigned int
    except ValueError:
        raise InvalidArgument(f"point_id {shown(point_id)} is not a UUID (or, in an attached collection, "
                              "an unsigned int)") from None


def _check_writable(coll: OpenCollection) -> None:
    if coll.record.external_collection:
        raise FailedPrecondition(
            f"collection {shown(coll.record.name)} is attached to Qdrant collection "
            f"{shown(coll.record.external_collection)}: write its points with your own Qdrant client; "
            "new and changed points are labelled by the next run's catch-up")


class Points:
    """The point operations of the registry's collections.

    Args:
        settings: Page and batch limits.
        registry: The open collections (and their kinds).
        windows: Recent online labels per collection (drift).
        metrics: Ingest counters.
        feed: Where points flagged at ingest are published.
        featurizers: Queues an EVENT collection's automatic featurizer fit after an ingest.
    """

    def __init__(self, settings: Settings, registry: CollectionRegistry, windows: RecentWindows,
                 metrics: ServiceMetrics, feed: AnomalyFeed[PointView], featurizers: FeaturizerLifecycle) -> None:
        self.settings = settings
        self.registry = registry
        self.windows = windows
        self.metrics = metrics
        self.feed = feed
        self.featurizers = featurizers

    # ------------------------------------------------------------------ writes

    def ingest(self, name: str, items: Sequence[ItemInput]) -> list[ItemResult]:
        """Embed, label with the served model (if any) and upsert a batch, all or nothing.

        Returns per item its point id and, when a model is served, its five fields.
        """
        coll = self.registry.get(check_name(name))
        _check_writable(coll)
        kind = self.registry.kinds.of(coll)
        build = kind.prepare(coll, items)  # validated and embedded outside the lock
        with coll.lock:
            coll.check_open()
            batch = build()
            model = served_model(coll)
            assigned = model.assign(batch.vectors) if model is not None else None
            fields = assigned.payloads() if assigned is not None else None
            if fields is not None:
                for payload, five in zip(batch.payloads, fields):
                    payload.update(five)
            coll.write_points(batch.ids, batch.vectors, batch.payloads)
            coll.record.changes_total += len(batch.ids)
            if assigned is not None:  # drift: what the served model saw of the newest ingests
                self.windows.get(name).add(assigned.model_version, assigned.rows, assigned.cluster_distance,
                                           assigned.is_anomaly)
        self.metrics.observe_ingest(name, len(items))
        labels = [Assignment(**five) for five in fields] if fields is not None else [None] * len(batch.ids)
        if assigned is not None and assigned.is_anomaly.any():
            self.feed.publish(name, (batch.view(g, labels[g]) for g in np.flatnonzero(assigned.is_anomaly).tolist()))
        self.featurizers.maybe_auto_refit(coll)
        return [ItemResult(point_id=batch.ids[g], external_id=batch.external[g], assignment=labels[g])
                for g in batch.owner]

    def delete_points(self, name: str, *, ids: Sequence[str] = (), point_ids: Sequence[str] = ()) -> int:
        """Delete points by caller id and/or point id; returns how many existed."""
        coll = self.registry.get(check_name(name))
        _check_writable(coll)
        targets = [point_id_for(name, i) for i in ids] + [_check_point_id(p) for p in point_ids]
        if not targets:
            raise InvalidArgument("give at least one id or point_id to delete")
        with coll.lock:
            coll.check_open()
            existing = [p.id for p in coll.store.retrieve(targets)]
            if existing:
                mark = coll.vlog.records
                coll.vlog.append(existing, None)
                try:
                    coll.store.delete(existing)
                except BaseException:
                    coll.undo_log(mark, existing)
                    raise
                coll.vlog.mark_consistent()
                coll.record.changes_total += len(existing)
        return len(existing)

    # ------------------------------------------------------------------ reads

    def get_point(self, name: str, *, id: str = "", point_id: str = "", with_vector: bool = False) -> PointView:
        """One point with its payload (and vector, if asked)."""
        coll = self.registry.get(check_name(name))
        if bool(id) == bool(point_id):
            raise InvalidArgument("give exactly one of id or point_id")
        pid = point_id_for(name, id) if id else _check_point_id(point_id)
        model = coll.model
        found = coll.store.retrieve([pid], with_vectors=with_vector)
        if not found:
            raise NotFound(f"point {shown(id or point_id)} not found in collection {shown(name)}")
        return served_views(coll, found, model, with_vector=with_vector)[0]

    @staticmethod
    def _page(coll: OpenCollection, flt: PointFilter, page_size: int, token: str, *, cluster_id: int | None = None,
              anomaly: bool | None = None) -> tuple[list[PointView], str]:
        offset = _check_point_id(token) if token else None
        model = coll.model
        points, nxt = coll.store.scroll(limit=check_page_size(page_size), offset=offset, flt=flt)
        views = served_views(coll, points, model)
        return [v for v in views if _matches(v, cluster_id, anomaly)], nxt or ""

    def list_cluster_members(self, name: str, cluster_id: int, *, page_size: int = 100,
                             page_token: str = "") -> tuple[list[PointView], str]:
        """Points carrying ``cluster_id``, paged in point-id order."""
        coll = self.registry.get(check_name(name))
        if coll.model is None:
            raise FailedPrecondition(NO_MODEL.format(shown(name)))
        if coll.model.row_of(cluster_id) is None:
            raise NotFound(f"cluster {cluster_id} not in model v{coll.model.version} of {shown(name)}")
        return self._page(coll, PointFilter(must=(FieldEquals("cluster_id", cluster_id),)), page_size, page_token,
                          cluster_id=cluster_id)

    def list_anomalies(self, name: str, *, page_size: int = 100, page_token: str = "") -> tuple[list[PointView], str]:
        """Flagged points, paged in point-id order."""
        coll = self.registry.get(check_name(name))
        return self._page(coll, PointFilter(must=(FieldEquals("is_anomaly", True),)), page_size, page_token,
                          anomaly=True)

    def subscribe_anomalies(self, name: str) -> Subscription[PointView]:
        """Watch the points flagged at ingest from now on (unsubscribe via ``anomaly_feed``)."""
        self.registry.get(check_name(name))
        return self.feed.subscribe(name)

    # ------------------------------------------------------------------ reads with the model

    def classify(self, name: str, items: Sequence[ItemInput]) -> list[Assignment]:
        """Label items with the served model without storing them."""
        coll = self.registry.get(check_name(name))
        kind = self.registry.kinds.of(coll)
        with kind.query_scope(coll):
            vectors, model = kind.classify_vectors(coll, items)
            assigned = model.assign(vectors)
        return [Assignment(**five) for five in assigned.payloads()]

    def search(self, name: str, *, text: str | None = None, vector: VectorLike | None = None,
               limit: int = 10, cluster_id: int | None = None, image: ImageMetadataInput | None = None,
               event: dict[str, Any] | None = None) -> list[SearchHit]:
        """Nearest stored points to a text, vector, image metadata or event, optionally within one cluster."""
        coll = self.registry.get(check_name(name))
        kind = self.registry.kinds.of(coll)
        query = Query(text=text, vector=vector, image=image, event=event)
        parsed = kind.check_search(coll, query)
        if limit == 0:
            limit = 10
        if not (1 <= limit <= 1000):
            raise InvalidArgument(f"limit must be in [1, 1000], got {limit}")
        in_cluster = (FieldEquals("cluster_id", int(cluster_id)),) if cluster_id is not None else ()
        with kind.query_scope(coll):
            model = coll.model
            query_vector = kind.search_vector(coll, query, parsed)
            conditions = (*kind.search_space(coll), *in_cluster)
            found = coll.store.search(query_vector, limit=limit,
                                      flt=PointFilter(must=conditions) if conditions else None)
        views = served_views(coll, [p for p, _ in found], model)
        return [SearchHit(point=v, score=sc) for v, (_, sc) in zip(views, found) if _matches(v, cluster_id)]

    def explain(self, name: str, *, id: str = "", point_id: str = "", neighbours: int = 5) -> Explanation:
        """Why a point is (or is not) flagged, under the served model."""
        coll = self.registry.get(check_name(name))
        model = coll.model
        if model is None:
            raise FailedPrecondition(NO_MODEL.format(shown(name)))
        self.registry.kinds.of(coll).check_explainable(coll)
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
        layout = self.registry.kinds.of(coll).field_layout(coll)
        contributions = field_contributions(vec[0], model.centroids[ref], layout, model.metric) if layout else []
        return Explanation(
            point=point, model_version=model.version, scorer=model.scorer,
            cluster_id=int(model.cluster_ids[row]), distance=float(dist_all[0, row]),
            cluster_radius=float(model.radius[row]),
            distance_in_radii=float(dist_all[0, row] / max(model.radius[row], 1e-9)),
            reference_cluster_id=int(model.cluster_ids[ref]), reference_distance=float(dist_all[0, ref]),
            reference_radius=float(model.radius[ref]), anomaly_score=float(labels.anomaly_score[0]),
            threshold=float(model.thresholds[row]), is_anomaly=bool(labels.is_anomaly[0]),
            normal_neighbours=[SearchHit(point=v, score=sc)
                               for v, (p, sc) in zip(served_views(coll, [p for p, _ in normal], model), normal)
                               if public_point_id(p.id) != point.point_id and _matches(v, anomaly=False)][:neighbours],
            anomaly_model=model.anomaly_summary(), field_contributions=contributions,
        )

    def list_clusters(self, name: str) -> tuple[int, list[ClusterInfo]]:
        """Clusters of the served model with live sizes and anomaly counts."""
        listing = self.cluster_listing(name)
        return listing.version, listing.clusters

    def cluster_listing(self, name: str) -> ClusterListing:
        """Clusters of the served model, sizes counted over the points carrying its fields.

        Counted under the collection lock (no ingest or write-back page in between), so the sizes
        add up to the point count unless points are being relabelled: then ``provisional``.
        """
        coll = self.registry.get(check_name(name))
        with coll.lock:
            coll.check_open()
            model = coll.model
            if model is None:
                raise FailedPrecondition(NO_MODEL.format(shown(name)))
            served = FieldEquals("model_version", model.version)
            sizes = coll.store.value_counts("cluster_id", PointFilter(must=(served,)))
            anomalies = coll.store.value_counts("cluster_id", PointFilter(
                must=(served, FieldEquals("is_anomaly", True))))
            total = coll.store.count()
        full_radius = model.metrics.get("radius_full") or [float(r) for r in model.radius]
        summaries = model.summaries.by_id() if model.summaries is not None else {}
        clusters = [
            ClusterInfo(cluster_id=int(cid), size=sizes.get(int(cid), 0), radius=float(full_radius[r]),
                        anomaly_count=anomalies.get(int(cid), 0), populated=bool(model.populated[r]),
                        summary=summaries.get(int(cid)))
            for r, cid in enumerate(model.cluster_ids)
        ]
        return ClusterListing(version=model.version, clusters=clusters,
                              provisional=sum(c.size for c in clusters) != total, point_count=total)
