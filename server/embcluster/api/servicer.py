"""The servicer: unpack the request, call the core, pack the reply. Nothing else."""

from __future__ import annotations

from typing import Iterator

import grpc

from ..errors import EmbclusterError, NotFound, ResourceExhausted, shown
from ..pipeline import EmbclusterService
from ..snapshot import export_collection, import_collection
from .errors import STATUS_BY_CODE
from . import convert as cv
from .v1 import embcluster_pb2 as pb
from .v1 import embcluster_pb2_grpc as pb_grpc

__all__ = ["EmbclusterServicer"]


class EmbclusterServicer(pb_grpc.EmbclusterServicer):
    """gRPC face of :class:`~embcluster.pipeline.EmbclusterService`."""

    def __init__(self, service: EmbclusterService) -> None:
        self.svc = service

    def CreateCollection(self, request: pb.CreateCollectionRequest, context: grpc.ServicerContext) -> pb.Collection:
        return cv.collection_to_pb(self.svc.create_collection(cv.spec_from_pb(request)))

    def AttachCollection(self, request: pb.AttachCollectionRequest, context: grpc.ServicerContext) -> pb.Collection:
        return cv.collection_to_pb(self.svc.attach_collection(cv.attach_spec_from_pb(request)))

    def GetCollection(self, request: pb.GetCollectionRequest, context: grpc.ServicerContext) -> pb.Collection:
        return cv.collection_to_pb(self.svc.get_collection(request.name))

    def ListCollections(self, request: pb.ListCollectionsRequest, context: grpc.ServicerContext) -> pb.ListCollectionsResponse:
        return pb.ListCollectionsResponse(collections=[cv.collection_to_pb(c) for c in self.svc.list_collections()])

    def UpdateCollection(self, request: pb.UpdateCollectionRequest, context: grpc.ServicerContext) -> pb.Collection:
        return cv.collection_to_pb(self.svc.update_collection(request.name, cv.settings_from_pb(request.settings)))

    def DeleteCollection(self, request: pb.DeleteCollectionRequest, context: grpc.ServicerContext) -> pb.DeleteCollectionResponse:
        return pb.DeleteCollectionResponse(deleted=self.svc.delete_collection(request.name))

    def Ingest(self, request: pb.IngestRequest, context: grpc.ServicerContext) -> pb.IngestResponse:
        results = self.svc.ingest(request.collection, cv.items_from_pb(request.items))
        return cv.ingest_response_to_pb(results)

    def IngestStream(self, request_iterator: Iterator[pb.IngestRequest], context: grpc.ServicerContext) -> Iterator[pb.IngestStreamResponse]:
        for seq, request in enumerate(request_iterator):
            try:
                results = self.svc.ingest(request.collection, cv.items_from_pb(request.items))
            except EmbclusterError as exc:  # this message is rejected; the stream goes on
                yield pb.IngestStreamResponse(sequence=seq, error_code=STATUS_BY_CODE[exc.code].name,
                                              error_message=exc.message)
                continue
            yield pb.IngestStreamResponse(sequence=seq, results=[cv.item_result_to_pb(r) for r in results])

    def WatchAnomalies(self, request: pb.WatchAnomaliesRequest, context: grpc.ServicerContext) -> Iterator[pb.Point]:
        sub = self.svc.subscribe_anomalies(request.collection)
        try:
            while context.is_active():
                point = sub.get(timeout=0.25)
                if point is not None:
                    yield cv.point_to_pb(point)
                elif sub.overflowed:
                    raise ResourceExhausted(
                        f"watcher fell more than {self.svc.anomaly_feed.capacity} anomalies behind; "
                        "catch up with ListAnomalies and watch again")
                elif sub.closed:
                    raise NotFound(f"collection {shown(request.collection)} was deleted")
        finally:
            self.svc.anomaly_feed.unsubscribe(request.collection, sub)

    def ExplainPoint(self, request: pb.ExplainPointRequest, context: grpc.ServicerContext) -> pb.Explanation:
        return cv.explanation_to_pb(
            self.svc.explain(request.collection, id=request.id, point_id=request.point_id,
                             neighbours=request.neighbours if request.neighbours else 5)
        )

    def DeletePoints(self, request: pb.DeletePointsRequest, context: grpc.ServicerContext) -> pb.DeletePointsResponse:
        return pb.DeletePointsResponse(
            deleted=self.svc.delete_points(request.collection, ids=list(request.ids), point_ids=list(request.point_ids))
        )

    def GetPoint(self, request: pb.GetPointRequest, context: grpc.ServicerContext) -> pb.Point:
        return cv.point_to_pb(
            self.svc.get_point(request.collection, id=request.id, point_id=request.point_id,
                               with_vector=request.with_vector)
        )

    def ListClusterMembers(self, request: pb.ListClusterMembersRequest, context: grpc.ServicerContext) -> pb.ListPointsResponse:
        points, token = self.svc.list_cluster_members(
            request.collection, request.cluster_id, page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListPointsResponse(points=[cv.point_to_pb(p) for p in points], next_page_token=token)

    def ListAnomalies(self, request: pb.ListAnomaliesRequest, context: grpc.ServicerContext) -> pb.ListPointsResponse:
        points, token = self.svc.list_anomalies(request.collection, page_size=request.page_size,
                                                page_token=request.page_token)
        return pb.ListPointsResponse(points=[cv.point_to_pb(p) for p in points], next_page_token=token)

    def ListPoints(self, request: pb.ListPointsRequest, context: grpc.ServicerContext) -> pb.ListPointsResponse:
        points, token = self.svc.list_points(
            request.collection, page_size=request.page_size, page_token=request.page_token,
            cluster_id=request.cluster_id if request.HasField("cluster_id") else None,
            anomaly=request.is_anomaly if request.HasField("is_anomaly") else None,
            model_version=request.model_version if request.HasField("model_version") else None,
        )
        return pb.ListPointsResponse(points=[cv.point_to_pb(p) for p in points], next_page_token=token)

    def StartClustering(self, request: pb.StartClusteringRequest, context: grpc.ServicerContext) -> pb.ClusteringRun:
        return cv.run_to_pb(self.svc.start_clustering(request.collection, cv.run_request_from_pb(request)))

    def GetClusteringRun(self, request: pb.GetClusteringRunRequest, context: grpc.ServicerContext) -> pb.ClusteringRun:
        return cv.run_to_pb(self.svc.get_run(request.collection, request.run_id))

    def CancelClusteringRun(self, request: pb.GetClusteringRunRequest, context: grpc.ServicerContext) -> pb.ClusteringRun:
        return cv.run_to_pb(self.svc.cancel_run(request.collection, request.run_id))

    def WatchClusteringRun(self, request: pb.GetClusteringRunRequest, context: grpc.ServicerContext) -> Iterator[pb.ClusteringRun]:
        for info in self.svc.watch_run(request.collection, request.run_id, is_active=context.is_active):
            yield cv.run_to_pb(info)

    def ListClusters(self, request: pb.ListClustersRequest, context: grpc.ServicerContext) -> pb.ListClustersResponse:
        listing = self.svc.cluster_listing(request.collection)
        return pb.ListClustersResponse(model_version=listing.version,
                                       clusters=[cv.cluster_to_pb(c, listing.version) for c in listing.clusters],
                                       provisional=listing.provisional, point_count=listing.point_count)

    def GetCluster(self, request: pb.GetClusterRequest, context: grpc.ServicerContext) -> pb.ClusterSummary:
        return cv.cluster_detail_to_pb(self.svc.get_cluster(request.collection, request.cluster_id,
                                                            request.model_version))

    def GetDrift(self, request: pb.GetDriftRequest, context: grpc.ServicerContext) -> pb.Drift:
        return cv.drift_to_pb(self.svc.drift(request.collection, candidates=True))

    def ListModels(self, request: pb.ListModelsRequest, context: grpc.ServicerContext) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=[cv.model_to_pb(m, with_summaries=False)
                                             for m in self.svc.list_models(request.collection)])

    def GetModel(self, request: pb.GetModelRequest, context: grpc.ServicerContext) -> pb.Model:
        return cv.model_to_pb(self.svc.get_model(request.collection, request.version))

    def WatchClusterEvents(self, request: pb.WatchClusterEventsRequest,
                           context: grpc.ServicerContext) -> Iterator[pb.ClusterEvent]:
        for event in self.svc.watch_cluster_events(request.collection, request.since_version,
                                                   is_active=context.is_active):
            yield cv.cluster_event_to_pb(event)

    def RollbackModel(self, request: pb.RollbackModelRequest, context: grpc.ServicerContext) -> pb.ClusteringRun:
        return cv.run_to_pb(self.svc.rollback(request.collection, request.version))

    def Classify(self, request: pb.ClassifyRequest, context: grpc.ServicerContext) -> pb.ClassifyResponse:
        assignments = self.svc.classify(request.collection, cv.items_from_pb(request.items))
        return pb.ClassifyResponse(assignments=[cv.assignment_to_pb(a) for a in assignments])

    def Search(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> pb.SearchResponse:
        which = request.WhichOneof("query")
        text = request.text if which == "text" else None
        vector = cv.vector_from_pb(request.vector, "query") if which == "vector" else None
        image = cv.image_from_pb(request.image) if which == "image" else None
        event = cv.event_from_pb(request.event) if which == "event" else None
        cluster_id = request.cluster_id if request.HasField("cluster_id") else None
        if request.HasField("group_by_cluster"):
            grouping = request.group_by_cluster
            groups = self.svc.search_groups(request.collection, text=text, vector=vector, image=image, event=event,
                                            groups=grouping.groups, group_size=grouping.group_size,
                                            limit=request.limit, cluster_id=cluster_id, ef=request.ef,
                                            exact=request.exact)
            return pb.SearchResponse(groups=[cv.group_to_pb(g) for g in groups])
        hits = self.svc.search(request.collection, text=text, vector=vector, image=image, event=event,
                               limit=request.limit, cluster_id=cluster_id, ef=request.ef, exact=request.exact)
        return pb.SearchResponse(hits=[cv.hit_to_pb(h) for h in hits])

    def InferSchema(self, request: pb.InferSchemaRequest, context: grpc.ServicerContext) -> pb.InferSchemaResponse:
        schema, notes = self.svc.infer_schema([cv.event_from_pb(e) for e in request.samples],
                                              entity_key=request.entity_key)
        return cv.infer_response_to_pb(schema, notes)

    def FitFeaturizer(self, request: pb.FitFeaturizerRequest, context: grpc.ServicerContext) -> pb.ClusteringRun:
        return cv.run_to_pb(self.svc.fit_featurizer(request.collection))

    def ExportCollection(self, request: pb.ExportCollectionRequest, context: grpc.ServicerContext) -> pb.SnapshotSummary:
        # Confined: a caller names files on the server's machine, so only in the snapshot directories.
        return cv.snapshot_to_pb(export_collection(self.svc, request.collection, request.path,
                                                   overwrite=request.overwrite, confined=True))

    def ImportCollection(self, request: pb.ImportCollectionRequest, context: grpc.ServicerContext) -> pb.SnapshotSummary:
        return cv.snapshot_to_pb(import_collection(self.svc, request.path, name=request.name, confined=True))

    def GetReport(self, request: pb.GetReportRequest, context: grpc.ServicerContext) -> pb.CollectionReport:
        return cv.report_to_pb(self.svc.report(request.collection, sample_size=request.sample_size))
