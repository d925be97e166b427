"""The Pythonic clients (``Client``, ``AsyncClient``) against an in-process server, and typed errors
through every client: sync and asyncio, unary calls and streams."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
from embcluster_client import (
    AlreadyExists,
    AsyncClient,
    AsyncEmbclusterClient,
    Client,
    Distance,
    EmbclusterClient,
    EventFieldType,
    FailedPrecondition,
    InputKind,
    InvalidArgument,
    NotFound,
    RunState,
    SummaryKind,
    models,
    pb,
    schedule,
)
from embcluster_client.errors import EmbclusterError, from_status

from embcluster.config import Settings

from .conftest import Running


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    """A server without a text model (vector and event collections only)."""
    r = Running(Settings(data_dir=tmp_path / "data", port=0))
    yield r
    r.stop()


def _items() -> list[dict[str, Any]]:
    a = [{"id": f"a{i}", "vector": [1.0, 0.01 * i, 0.0, 0.0],
          "metadata": {"price": i, "tags": ["x", None, True], "nested": {"ratio": 1.5}}} for i in range(20)]
    b = [{"id": f"b{i}", "vector": [0.0, 0.0, 1.0, 0.01 * i]} for i in range(20)]
    return a + b


def test_life_cycle_through_the_pythonic_client(server: Running) -> None:
    with Client(server.server.address, timeout=60) as c:
        assert isinstance(c.grpc, EmbclusterClient)
        coll = c.create_collection("shop", input_kind=InputKind.VECTOR, vector_dim=4, distance="euclid",
                                   contamination=0.1)
        assert isinstance(coll, models.Collection) and isinstance(coll.proto, pb.Collection)
        assert coll.input_kind is InputKind.VECTOR and coll.distance is Distance.EUCLID
        assert str(coll.input_kind) == "VECTOR" and "input_kind=InputKind.VECTOR" in repr(coll)
        assert coll.created_at is not None and coll.created_at.tzinfo is timezone.utc
        assert coll.settings.contamination == pytest.approx(0.1) and coll.event_schema is None

        results = c.ingest_many("shop", _items(), batch_size=16)
        assert [r.external_id for r in results][:2] == ["a0", "a1"] and len(results) == 40
        assert all(isinstance(r, models.ItemResult) and r.assignment is None for r in results)  # no model yet
        p = c.get_point("shop", id="a3", with_vector=True)
        assert p.metadata == {"price": 3, "tags": ["x", None, True], "nested": {"ratio": 1.5}}
        assert p.vector == pytest.approx([1.0, 0.03, 0.0, 0.0]) and p.assignment is None and p.source is None

        seen: list[models.ClusteringRun] = []
        run = c.cluster("shop", k=2, on_progress=seen.append)
        assert run.state is RunState.SUCCEEDED and run.k == 2 and isinstance(run.finished_at, datetime)
        assert seen and all(isinstance(s, models.ClusteringRun) for s in seen) and seen[-1] == run
        watched = list(c.watch_run("shop", run.run_id))
        assert watched[-1].state is RunState.SUCCEEDED and all(isinstance(w, models.ClusteringRun) for w in watched)

        clusters = c.list_clusters("shop")
        assert isinstance(clusters, models.ClusterList) and isinstance(clusters.proto, pb.ListClustersResponse)
        assert sorted(cl.size for cl in clusters) == [20, 20] and clusters.model_version == run.model_version
        p = c.get_point("shop", id="a3")
        assert isinstance(p.assignment, models.Assignment) and p.assignment.model_version == run.model_version
        mine = p.assignment.cluster_id
        members = list(c.iter_cluster_members("shop", mine, page_size=7))
        assert len(members) == 20 and {m.external_id[0] for m in members} == {"a"}
        page = c.list_cluster_members("shop", mine, page_size=5)
        assert isinstance(page, models.PointPage) and len(page) == 5 and page.next_page_token
        flagged = list(c.iter_anomalies("shop"))
        assert all(q.assignment is not None and q.assignment.is_anomaly for q in flagged)
        assert [q.point_id for q in c.list_anomalies("shop", page_size=1000)] == [q.point_id for q in flagged]

        assert [a.cluster_id for a in c.classify("shop", [[1.0, 0.0, 0.0, 0.0]])] == [mine]
        hits = c.search("shop", [0.0, 0.0, 1.0, 0.0], limit=3)
        assert len(hits) == 3 and all(isinstance(h, models.SearchHit) and h.point.external_id[0] == "b" for h in hits)
        explained = c.explain_point("shop", id="a3", neighbours=2)
        assert explained.point.external_id == "a3" and explained.cluster_id == mine
        assert len(explained.normal_neighbours) == 2 and explained.field_contributions == []

        (model,) = c.list_models("shop")
        full = c.get_model("shop")  # the same, with the cluster summaries ListModels leaves out
        assert model == dataclasses.replace(full, summaries=[]) and len(full.summaries) == 2
        assert model.served and model.version == run.model_version
        assert model.params["k"] == 2 and isinstance(model.metrics, dict)
        drift = c.get_drift("shop")
        assert drift.model_version == run.model_version and drift.psi_versions is None  # no earlier version

        acks = list(c.ingest_stream("shop", [[{"id": "c1", "vector": [1.0, 0.0, 0.0, 0.0]}],
                                             [{"id": "bad", "vector": [1.0, 2.0]}]]))
        assert acks[0].ok and acks[0].results[0].assignment is not None
        assert acks[0].results[0].assignment.cluster_id == mine  # labelled online
        assert not acks[1].ok and acks[1].error_code == "INVALID_ARGUMENT"
        assert isinstance(from_status(acks[1].error_code, acks[1].error_message), InvalidArgument)

        updated = c.update_collection("shop", schedule=schedule(after_changes=100))
        assert updated.settings.schedule is not None and updated.settings.schedule.after_changes == 100
        assert updated.settings.schedule.interval_s is None
        again = c.update_collection("shop", schedule=updated.settings.schedule)  # a model as the argument
        assert again.settings == updated.settings

        summary = c.export_collection("shop", "shop.tar")
        assert isinstance(summary, models.SnapshotSummary) and summary.points == 41 and summary.models == 1
        assert c.import_collection(summary.path, name="shop2").collection == "shop2"
        assert c.get_collection("shop2").point_count == 41

        second = c.cluster("shop", k=3)
        back = c.rollback_model("shop", run.model_version)
        assert c.wait_for_run("shop", back.run_id).state is RunState.SUCCEEDED
        assert c.get_collection("shop").served_model_version == run.model_version != second.model_version

        assert c.delete_points("shop", ids=["c1"]) == 1
        assert c.delete_collection("shop2") is True
        assert [x.name for x in c.list_collections()] == ["shop"]
        assert c.health() == "SERVING"


def test_an_inferred_schema_model_creates_an_event_collection(server: Running) -> None:
    samples = [{"amount": 10.0 + i, "country": ["DE", "FR", "US"][i % 3]} for i in range(30)]
    with Client(server.server.address) as c:
        inferred = c.infer_schema(samples)
        assert isinstance(inferred, models.InferredSchema) and inferred.notes
        types = {f.name: f.type for f in inferred.schema.fields}
        assert types == {"amount": EventFieldType.NUMERIC, "country": EventFieldType.CATEGORICAL}
        coll = c.create_collection("tx", input_kind="event", event_schema=inferred.schema)
        assert coll.input_kind is InputKind.EVENT and coll.event_schema is not None
        assert [(f.name, f.type) for f in coll.event_schema.fields] == [(f.name, f.type) for f in inferred.schema.fields]
        c.ingest("tx", [{"id": "t1", "event": samples[0]}])
        assert c.get_point("tx", id="t1").source == {"amount": 10, "country": "DE"}


def _expect_not_found(exc: BaseException, name: str) -> None:
    assert isinstance(exc, NotFound) and isinstance(exc, grpc.RpcError)
    assert exc.code() == grpc.StatusCode.NOT_FOUND == exc.status
    assert name in exc.message and exc.details() == exc.message
    assert type(exc).__module__ == "embcluster_client.errors"  # never grpc's own error types


def test_a_missing_collection_raises_not_found_through_both_blocking_clients(server: Running) -> None:
    with Client(server.server.address) as c:
        for call in (lambda: c.get_collection("nope"), lambda: list(c.watch_run("nope", "r1")),
                     lambda: list(c.iter_anomalies("nope")), lambda: next(c.watch_anomalies("nope")),
                     lambda: c.grpc.get_collection("nope"), lambda: list(c.grpc.watch_run("nope", "r1"))):
            with pytest.raises(grpc.RpcError) as info:  # what existing code catches still catches it
                call()
            _expect_not_found(info.value, "nope")


def test_other_codes_raise_their_classes(server: Running) -> None:
    with Client(server.server.address) as c:
        c.create_collection("v", input_kind="vector", vector_dim=4)
        with pytest.raises(AlreadyExists, match="ALREADY_EXISTS: .*'v'"):
            c.create_collection("v", input_kind="vector", vector_dim=4)
        with pytest.raises(InvalidArgument) as info:
            c.ingest("v", [[1.0, 2.0]])
        assert "dimension" in info.value.message or "4" in info.value.message
        c.ingest("v", [[1.0, 2.0, 3.0, 4.0]])
        with pytest.raises(FailedPrecondition):
            c.explain_point("v", point_id=c.ingest("v", [[1.0, 2.0, 3.0, 5.0]])[0].point_id)
        with pytest.raises(InvalidArgument):
            c.cluster("v", k=8)  # more clusters than points
        with pytest.raises(EmbclusterError):
            c.grpc.get_model("v", 42)


def test_the_asyncio_clients_return_models_and_raise_typed_errors(server: Running) -> None:
    async def main() -> None:
        async with AsyncClient(server.server.address, timeout=60) as c:
            assert isinstance(c.grpc, AsyncEmbclusterClient)
            coll = await c.create_collection("shop", input_kind="vector", vector_dim=4)
            assert coll.input_kind is InputKind.VECTOR
            await c.ingest("shop", _items())
            run = await c.cluster("shop", k=2)
            assert run.state is RunState.SUCCEEDED and run.state == "SUCCEEDED"
            watched = [r async for r in c.watch_run("shop", run.run_id)]
            assert watched[-1].state is RunState.SUCCEEDED
            assert len([p async for p in c.iter_cluster_members("shop", 0)]) == 20
            p = await c.get_point("shop", id="a1")
            assert p.metadata["nested"] == {"ratio": 1.5} and p.assignment is not None
            summary = await c.get_cluster("shop", p.assignment.cluster_id)  # VECTOR: representatives only
            assert summary.kind is SummaryKind.REPRESENTATIVES_ONLY and summary.representatives
            raw = await c.grpc.get_cluster("shop", p.assignment.cluster_id, model_version=run.model_version)
            assert raw == summary.proto
            with pytest.raises(NotFound):
                await c.get_cluster("shop", 999)
            acks = [a async for a in c.ingest_stream("shop", [[{"id": "c1", "vector": [1.0, 0.0, 0.0, 0.0]}]])]
            assert acks[0].ok and acks[0].results[0].external_id == "c1"
            for call in (c.get_collection("nope"), c.grpc.get_collection("nope")):
                with pytest.raises(grpc.RpcError) as info:
                    await call
                _expect_not_found(info.value, "nope")
            for stream in (c.watch_run("nope", "r1"), c.grpc.watch_run("nope", "r1"), c.iter_anomalies("nope"),
                           c.grpc.iter_anomalies("nope")):
                with pytest.raises(NotFound) as info:
                    [x async for x in stream]
                _expect_not_found(info.value, "nope")

    asyncio.run(main())
