"""Anomalies over the API: online flags, the streaming feed, the watch stream, explanations."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest
from embcluster_client import AsyncEmbclusterClient, pb


def _clustered(c, name: str = "feed") -> np.ndarray:  # type: ignore[no-untyped-def]
    c.create_collection(name, input_kind="vector", vector_dim=4, distance="euclid", contamination=0.02)
    rng = np.random.default_rng(2)
    centers = np.array([[0, 0, 0, 0], [10, 0, 0, 0], [0, 10, 0, 0]], dtype=float)
    x = centers[rng.integers(0, 3, 600)] + rng.normal(size=(600, 4))
    c.ingest_many(name, [{"id": f"p{i}", "vector": v} for i, v in enumerate(x)], batch_size=200)
    c.cluster(name, k=3, seed=0)
    return centers


def test_ingest_stream_acknowledges_each_message_all_or_nothing(running) -> None:
    c = running.client
    _clustered(c)
    before = c.get_collection("feed").point_count
    batches = [
        [{"id": "s0", "vector": [0.1, 0, 0, 0]}, {"id": "s1", "vector": [50.0, 50, 50, 50]}],
        [{"id": "s2", "vector": [0.0, 0, 0, 0]}, {"id": "bad", "vector": [1.0, 2.0]}],  # rejected whole
        [{"id": "s3", "vector": [10.0, 0.2, 0, 0]}],
    ]
    acks = list(c.ingest_stream("feed", batches))
    assert [a.sequence for a in acks] == [0, 1, 2]
    assert acks[0].error_code == "" and [r.external_id for r in acks[0].results] == ["s0", "s1"]
    assert not acks[0].results[0].assignment.is_anomaly and acks[0].results[1].assignment.is_anomaly
    assert acks[1].error_code == "INVALID_ARGUMENT" and "item 1" in acks[1].error_message
    assert not acks[1].results
    assert acks[2].error_code == "" and acks[2].results[0].assignment.model_version == 1
    assert c.get_collection("feed").point_count == before + 3
    with pytest.raises(grpc.RpcError) as e:
        c.get_point("feed", id="s2")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_watch_streams_new_anomalies_until_cancelled(running) -> None:
    c = running.client
    _clustered(c)
    call = c.watch_anomalies("feed")
    seen: list[pb.Point] = []

    def consume() -> None:
        try:
            for point in call:
                seen.append(point)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.CANCELLED

    reader = threading.Thread(target=consume)
    reader.start()
    deadline = time.monotonic() + 10
    while running.service.anomaly_feed.watchers("feed") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    c.ingest("feed", [{"id": "normal", "vector": [0.2, 0.1, 0, 0]},
                      {"id": "odd", "vector": [40.0, -40, 40, 0], "metadata": {"why": "far"}}])
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    call.cancel()
    reader.join(timeout=10)
    assert [p.external_id for p in seen] == ["odd"]
    assert seen[0].assignment.is_anomaly and seen[0].metadata["why"] == "far"
    deadline = time.monotonic() + 10
    while running.service.anomaly_feed.watchers("feed") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert running.service.anomaly_feed.watchers("feed") == 0  # the cancelled watcher is gone
    with pytest.raises(grpc.RpcError) as e:
        next(iter(c.watch_anomalies("missing")))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_explain_point_gives_distances_radii_and_normal_neighbours(running) -> None:
    c = running.client
    centers = _clustered(c)
    c.ingest("feed", [{"id": "odd", "vector": [25.0, 0, 0, 0]}])
    ex = c.explain_point("feed", id="odd", neighbours=3)
    assert ex.is_anomaly and ex.anomaly_score > ex.threshold and ex.scorer == "ensemble"
    assert ex.anomaly_model.scorer == "ensemble" and len(ex.anomaly_model.fits) >= 1 and not ex.field_contributions
    assert ex.distance == pytest.approx(15.0, abs=1.0)  # nearest centre (10, 0, 0, 0)
    assert ex.distance_in_radii == pytest.approx(ex.distance / ex.cluster_radius)
    assert ex.cluster_id == ex.point.assignment.cluster_id
    assert len(ex.normal_neighbours) == 3
    assert all(not h.point.assignment.is_anomaly and h.point.external_id != "odd" for h in ex.normal_neighbours)
    near = np.array(list(c.get_point("feed", id=ex.normal_neighbours[0].point.external_id, with_vector=True).vector.values))
    assert np.linalg.norm(near - centers[1]) < 5
    calm = c.explain_point("feed", id="p0")
    assert not calm.is_anomaly or calm.anomaly_score > calm.threshold
    with pytest.raises(grpc.RpcError) as e:
        c.explain_point("feed", id="nope")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    c.create_collection("fresh", input_kind="vector", vector_dim=4)
    c.ingest("fresh", [[1.0, 2, 3, 4]])
    with pytest.raises(grpc.RpcError) as e:
        c.explain_point("fresh", id="x")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_async_client_streams(running) -> None:
    import asyncio

    _clustered(running.client)

    async def main() -> list[str]:
        async with AsyncEmbclusterClient(running.server.address) as ac:
            acks = [a async for a in ac.ingest_stream("feed", [[{"id": "a1", "vector": [0.0, 10, 0, 0]}]])]
            ex = await ac.explain_point("feed", id="a1")
            assert not ex.is_anomaly
            return [r.external_id for a in acks for r in a.results]

    assert asyncio.run(main()) == ["a1"]


def test_watch_ends_with_resource_exhausted_when_behind_and_not_found_when_deleted(running) -> None:
    from embcluster.anomaly.feed import AnomalyFeed

    c = running.client
    _clustered(c)
    running.service.anomaly_feed = AnomalyFeed(capacity=1)
    call = c.watch_anomalies("feed")
    deadline = time.monotonic() + 10
    while running.service.anomaly_feed.watchers("feed") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    c.ingest("feed", [{"vector": [40.0 + i, -40, 40, 0]} for i in range(50)])  # 50 anomalies at once
    with pytest.raises(grpc.RpcError) as e:
        for _ in call:
            pass
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "ListAnomalies" in e.value.details()

    call = c.watch_anomalies("feed")
    while running.service.anomaly_feed.watchers("feed") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    c.delete_collection("feed")
    with pytest.raises(grpc.RpcError) as e:
        for _ in call:
            pass
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
