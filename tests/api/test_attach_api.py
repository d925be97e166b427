"""AttachCollection over gRPC, on a server with ``store=qdrant`` in qdrant-client local mode (on disk)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Iterator

import grpc
import numpy as np
import pytest
from embcluster_client import AsyncEmbclusterClient, pb
from qdrant_client import models as qm

from embcluster.config import Settings

from .conftest import Running

DIM = 6


@pytest.fixture
def qrunning(tmp_path: Path, text_embedder) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data", port=0, store="qdrant", qdrant_path=str(tmp_path / "qdrant"))
    r = Running(settings, text_embedder)
    yield r
    r.stop()


def _foreign(r: Running, name: str, n: int = 60) -> dict:
    client = r.service.store_factory.client  # type: ignore[attr-defined]
    client.create_collection(name, vectors_config=qm.VectorParams(size=DIM, distance=qm.Distance.EUCLID))
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, DIM)) * 5
    x = centers[np.arange(n) % 3] + rng.normal(scale=0.2, size=(n, DIM))
    client.upsert(name, points=[qm.PointStruct(id=i, vector=x[i].tolist(),
                                               payload={"k": {"nested": [i, "ß"]}, "cluster_id": "mine"})
                                for i in range(n)], wait=True)
    recs, _ = client.scroll(name, limit=1000)
    return {r.id: json.dumps(r.payload, sort_keys=True) for r in recs}


def test_attach_over_grpc(qrunning: Running) -> None:
    before = _foreign(qrunning, "external")
    c = qrunning.client
    with pytest.raises(grpc.RpcError) as ei:
        c.attach_collection("ext", "external")
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "['cluster_id']" in ei.value.details() and "field_prefix" in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        c.attach_collection("ext", "missing", field_prefix="ec_")
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND and "'missing'" in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        c.attach_collection("ext", "external", field_prefix="e c")
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'e c'" in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        c.attach_collection("ext", "external", field_prefix="ec_", distance="cosine")
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    coll = c.attach_collection("ext", "external", field_prefix="ec_", distance="euclid")
    assert coll.attached.qdrant_collection == "external" and coll.attached.field_prefix == "ec_"
    assert coll.input_kind == pb.INPUT_KIND_VECTOR and coll.dim == DIM and coll.point_count == 60
    run = c.start_clustering("ext", k=3, seed=0)
    done = c.wait_for_run("ext", run.run_id, timeout=120)
    assert done.state == pb.RUN_STATE_SUCCEEDED, done.error
    clusters = c.list_clusters("ext")
    assert sum(cl.size for cl in clusters.clusters) == 60
    point = c.get_point("ext", point_id="5")
    assert point.point_id == "5" and point.HasField("assignment")
    with pytest.raises(grpc.RpcError) as ei:
        c.ingest("ext", [pb.Item(id="x", vector=pb.Vector(values=[0.0] * DIM))])
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    client = qrunning.service.store_factory.client  # type: ignore[attr-defined]
    recs, _ = client.scroll("external", limit=1000)
    for rec in recs:
        assert {f"ec_{f}" for f in ("cluster_id", "cluster_distance", "anomaly_score", "is_anomaly",
                                     "model_version")} <= set(rec.payload)
        rest = {k: v for k, v in rec.payload.items() if not k.startswith("ec_")}
        assert json.dumps(rest, sort_keys=True) == before[rec.id]
    assert c.delete_collection("ext")
    assert client.collection_exists("external")
    recs, _ = client.scroll("external", limit=1000)
    assert {r.id: json.dumps(r.payload, sort_keys=True) for r in recs} == before


def test_attach_async_client(qrunning: Running) -> None:
    _foreign(qrunning, "external2", n=10)

    async def main() -> pb.Collection:
        async with AsyncEmbclusterClient(qrunning.server.address, timeout=60) as ac:
            return await ac.attach_collection("ext2", "external2", field_prefix="x_")

    coll = asyncio.run(main())
    assert coll.attached.field_prefix == "x_" and coll.point_count == 10
