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
from ..schema import (
    Assignment,
    ClusterInfo,
    ClusterListing,
    Explanation,
    ImageMetadataInput,
    ItemInput,
    ItemResult,
    PointView,
    SearchGroup,
    SearchHit,
    VectorLike,
)
from ..store.base import FieldEquals, PointFilter
from ..store.ids import parse_public_point_id, public_point_id
from ..validation import check_name
from ..validation_reads import check_group_search, check_page_size, check_search_limit, check_search_mode
from .featurizers import FeaturizerLifecycle
from .kinds import NO_MODEL, Kind, Query, served_model
from .listing import ListFilter, decode_token, encode_token, read_page
from .records import OpenCollection, point_id_for
from .registry import CollectionRegistry
from .views import point_view, served_matches, served_views

__all__ = ["Points", "point_view"]

logger = logging.getLogger(__name__)


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

        Returns per item its point id, whether its text was longer than what was embedded and,
        when a model is served, its five fields.
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
            coll.sequence(batch.ids, batch.payloads, fresh=[not external for external in batch.external])
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
        truncated = batch.truncated or [False] * len(batch.ids)
        reused = batch.reused or [False] * len(batch.ids)
        return [ItemResult(point_id=batch.ids[g], external_id=batch.external[g], assignment=labels[g],
                           truncated=bool(truncated[g]), embedding_reused=bool(reused[g])) for g in batch.owner]

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
        return [v for v in views if served_matches(v, cluster_id, anomaly)], nxt or ""

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

    def list_points(self, name: str, *, cluster_id: int | None = None, anomaly: bool | None = None,
                    model_version: int | None = None, page_size: int = 100,
                    page_token: str = "") -> tuple[list[PointView], str]:
        """Every point (or those matching the filters), paged; each exactly once, also while points are ingested.

        Args:
            name: The collection.
            cluster_id: Only points the served model puts in this cluster.
            anomaly: Only flagged (True) or only unflagged (False) points.
            model_version: Only points whose stored fields are this version's (shown, as every
                read, with the served version's fields: ``relabelling`` when that is another).
            page_size: Points per page (0: 100; at most 1000).
            page_token: The previous page's ``next_page_token`` ("" for the first page).

        Returns:
            The page's points (each with the served model's fields) and the next page's token ("" on the last).
        """
        coll = self.registry.get(check_name(name))
        size = check_page_size(page_size)
        model = coll.model
        if cluster_id is not None:
            if model is None:
                raise FailedPrecondition(NO_MODEL.format(shown(name)))
            if model.row_of(cluster_id) is None:
                raise NotFound(f"cluster {cluster_id} not in model v{model.version} of {shown(name)}")
        if model_version is not None and model_version < 1:
            raise InvalidArgument(f"model_version must be at least 1, got {model_version}")
        flt = ListFilter(cluster_id=cluster_id, anomaly=anomaly, model_version=model_version)
        points, cursor = read_page(coll, flt, size, decode_token(page_token, name, flt))
        views = served_views(coll, points, model)
        return [v for v in views if served_matches(v, cluster_id, anomaly)], encode_token(name, flt, cursor)

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
               event: dict[str, Any] | None = None, ef: int = 0, exact: bool = False) -> list[SearchHit]:
        """Nearest stored points to a text, vector, image metadata or event, optionally within one cluster.

        ``ef`` (0: the collection's ``vector_index.ef``) sets this search's candidate list in the
        index; ``exact`` scans every point instead, so comparing the two measures the index's recall.
        """
        coll, kind, query, parsed = self._search_query(name, Query(text=text, vector=vector, image=image, event=event))
        limit = check_search_limit(limit)
        check_search_mode(ef, exact)
        in_cluster = (FieldEquals("cluster_id", int(cluster_id)),) if cluster_id is not None else ()
        with kind.query_scope(coll):
            model = coll.model
            query_vector = kind.search_vector(coll, query, parsed)
            conditions = (*kind.search_space(coll), *in_cluster)
            found = coll.store.search(query_vector, limit=limit,
                                      flt=PointFilter(must=conditions) if conditions else None, ef=ef, exact=exact)
        views = served_views(coll, [p for p, _ in found], model)
        return [SearchHit(point=v, score=sc) for v, (_, sc) in zip(views, found) if served_matches(v, cluster_id)]

    def _search_query(self, name: str, query: Query) -> tuple[OpenCollection, Kind, Query, Any]:
        coll = self.registry.get(check_name(name))
        kind = self.registry.kinds.of(coll)
        return coll, kind, query, kind.check_search(coll, query)

    def search_groups(self, name: str, *, text: str | None = None, vector: VectorLike | None = None,
                      image: ImageMetadataInput | None = None, event: dict[str, Any] | None = None,
                      groups: int = 0, group_size: int = 0, limit: int = 0,
                      cluster_id: int | None = None, ef: int = 0, exact: bool = False) -> list[SearchGroup]:
        """The best hits per cluster of the served model: the best ``groups`` clusters, ``group_size`` hits each.

        Groups come best first (the cluster with the best hit first), each with its label from the
        served version's cluster summaries ("" without them). Grouped by the stored ``cluster_id``
        (the store's group-by query where it has one), then shown under the read rule: a hit whose
        served cluster is not its group's (a write-back is moving it) is left out.

        Args:
            name: The collection.
            text, vector, image, event: The query, as for :meth:`search`.
            groups: Most clusters (0: 5; at most 100).
            group_size: Most hits per cluster (0: 3; at most 100; ``groups x group_size`` at most 1000).
            limit: Must be 0 (``limit`` is plain search's).
            cluster_id: Must be None (a search within one cluster is plain search's).
            ef, exact: Must be unset (plain search's).
        """
        coll, kind, query, parsed = self._search_query(name, Query(text=text, vector=vector, image=image, event=event))
        groups, group_size = check_group_search(groups, group_size, limit=limit, cluster_id=cluster_id, ef=ef,
                                                exact=exact)
        with kind.query_scope(coll):
            model = coll.model
            if model is None:
                raise FailedPrecondition(NO_MODEL.format(shown(name)))
            query_vector = kind.search_vector(coll, query, parsed)
            conditions = kind.search_space(coll)
            found = coll.store.search_groups(query_vector, key="cluster_id", groups=groups, group_size=group_size,
                                             flt=PointFilter(must=conditions) if conditions else None)
        labels = {cid: s.label for cid, s in model.summaries.by_id().items()} if model.summaries is not None else {}
        out = []
        for cid, hits in found:
            views = served_views(coll, [p for p, _ in hits], model)
            kept = [SearchHit(point=v, score=sc) for v, (_, sc) in zip(views, hits)
                    if v.assignment is not None and v.assignment.cluster_id == int(cid)]
            if kept:
                out.append(SearchGroup(cluster_id=int(cid), label=labels.get(int(cid), ""), hits=kept))
        return out

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
                               if public_point_id(p.id) != point.point_id and served_matches(v, anomaly=False)][:neighbours],
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
