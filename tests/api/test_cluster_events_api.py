"""Cluster life-cycle events over the API: GetModel/ListModels, WatchClusterEvents, the metrics."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Iterator

import grpc
import numpy as np
import pytest
from embcluster_client import Client, ClusterEventKind, pb

from embcluster.config import Settings

from .conftest import Running

CENTERS = np.array([[10, 0, 0, 0], [0, 10, 0, 0], [0, 0, 10, 0], [0, 0, 0, 10]], dtype=float)


@pytest.fixture
def server(settings: Settings) -> Iterator[Running]:
    r = Running(settings)  # VECTOR only: no text model loaded
    yield r
    r.stop()


def _group(c, group: int, n: int = 200, seed: int = 0) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed + group)
    x = CENTERS[group] + rng.normal(scale=0.5, size=(n, 4))
    c.ingest_many("g", [{"id": f"g{group}-{i}", "vector": v} for i, v in enumerate(x)], batch_size=200)


def _three_groups_clustered(c) -> None:  # type: ignore[no-untyped-def]
    c.create_collection("g", input_kind="vector", vector_dim=4, distance="euclid")
    for group in range(3):
        _group(c, group)
    c.cluster("g", k=3, seed=0)


def _kinds(events) -> Counter[int]:  # type: ignore[no-untyped-def]
    return Counter(e.kind for e in events)


def _wait_watchers(server: Running, n: int) -> None:
    deadline = time.monotonic() + 10
    while server.service.clustering.event_feed.watchers("g") != n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.service.clustering.event_feed.watchers("g") == n


def test_get_model_reports_the_birth_of_an_added_group(server: Running) -> None:
    c = server.client
    _three_groups_clustered(c)
    first = c.get_model("g")
    assert _kinds(first.events) == {pb.CLUSTER_EVENT_KIND_BIRTH: 3}
    assert sorted(e.cluster_id for e in first.events) == sorted(first.cluster_ids)
    assert all(e.previous_version == 0 and e.model_version == 1 and e.full_pass for e in first.events)
    assert sum(e.size_after for e in first.events) == 600

    _group(c, 3)  # a fourth group: a quarter of the points
    c.cluster("g", k=4, seed=0)
    second = c.get_model("g")
    births = [e for e in second.events if e.kind == pb.CLUSTER_EVENT_KIND_BIRTH]
    assert len(births) == 1
    born = births[0]
    assert born.cluster_id not in first.cluster_ids and born.cluster_id in second.cluster_ids
    assert (born.size_before, born.size_after) == (0, 200)
    assert born.share_after == pytest.approx(0.25)
    # The three old clusters persist; each went from a third to a quarter of the points: SHRINK.
    assert _kinds(second.events) == {pb.CLUSTER_EVENT_KIND_BIRTH: 1, pb.CLUSTER_EVENT_KIND_SHRINK: 3}
    assert {e.cluster_id for e in second.events if e.kind == pb.CLUSTER_EVENT_KIND_SHRINK} == set(first.cluster_ids)
    assert all(e.model_version == 2 and e.previous_version == 1 for e in second.events)
    listed = c.list_models("g")
    assert [len(m.events) for m in listed] == [3, 4]

    model = Client(server.server.address).get_model("g")  # the Pythonic client
    assert Counter(e.kind for e in model.events) == {ClusterEventKind.BIRTH: 1, ClusterEventKind.SHRINK: 3}
    assert next(e for e in model.events if e.kind is ClusterEventKind.BIRTH).cluster_id == born.cluster_id

    # More points drawn from the same four groups (each group's share unchanged): nothing to report.
    for group in range(4):
        rng = np.random.default_rng(100 + group)
        x = CENTERS[group] + rng.normal(scale=0.5, size=(100, 4))
        c.ingest("g", [{"id": f"more{group}-{i}", "vector": v} for i, v in enumerate(x)])
    c.cluster("g", k=4, seed=1)
    third = c.get_model("g")
    assert third.version == 3 and sorted(third.cluster_ids) == sorted(second.cluster_ids)
    assert list(third.events) == []

    text = server.service.metrics.render().decode()
    assert 'embcluster_cluster_events_total{collection="g",kind="BIRTH"} 4.0' in text
    assert 'embcluster_cluster_events_total{collection="g",kind="SHRINK"} 3.0' in text
    c.delete_collection("g")
    assert 'collection="g"' not in server.service.metrics.render().decode()  # forgotten with the collection


def test_watch_receives_the_events_of_a_run_published_while_watching(server: Running) -> None:
    c = server.client
    _three_groups_clustered(c)
    call = c.watch_cluster_events("g", since_version=1)  # only what comes after the served v1
    seen: list[pb.ClusterEvent] = []
    errors: list[grpc.StatusCode] = []

    def consume() -> None:
        try:
            for event in call:
                seen.append(event)
        except grpc.RpcError as exc:
            errors.append(exc.code())

    reader = threading.Thread(target=consume)
    reader.start()
    _wait_watchers(server, 1)
    # A rollback publishes no new version: it sends nothing (the next run's events come first).
    _group(c, 3)
    c.cluster("g", k=4, seed=0)  # v2
    c.wait_for_run("g", c.rollback_model("g", 1).run_id)
    c.cluster("g", k=4, seed=0)  # v3, against the served v1
    deadline = time.monotonic() + 10
    while len(seen) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    call.cancel()
    reader.join(timeout=10)
    assert errors == [grpc.StatusCode.CANCELLED]
    assert [e.model_version for e in seen] == [2] * 4 + [3] * 4
    assert _kinds(seen[:4]) == {pb.CLUSTER_EVENT_KIND_BIRTH: 1, pb.CLUSTER_EVENT_KIND_SHRINK: 3}
    assert {e.previous_version for e in seen[4:]} == {1}
    _wait_watchers(server, 0)  # the cancelled watcher is gone


def test_replay_since_version_then_end_on_delete(server: Running) -> None:
    c = server.client
    _three_groups_clustered(c)
    _group(c, 3)
    c.cluster("g", k=4, seed=0)
    call = c.watch_cluster_events("g")  # since 0: every stored version
    replay = [next(call) for _ in range(7)]
    assert [e.model_version for e in replay] == [1, 1, 1, 2, 2, 2, 2]
    assert _kinds(replay[:3]) == {pb.CLUSTER_EVENT_KIND_BIRTH: 3}
    call.cancel()
    call = c.watch_cluster_events("g", since_version=1)
    assert [next(call).model_version for _ in range(4)] == [2, 2, 2, 2]
    _wait_watchers(server, 1)
    c.delete_collection("g")
    with pytest.raises(grpc.RpcError) as e:
        next(call)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "deleted" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        next(iter(c.watch_cluster_events("missing")))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_async_clients_watch_cluster_events(server: Running) -> None:
    import asyncio

    from embcluster_client import AsyncClient, AsyncEmbclusterClient

    _three_groups_clustered(server.client)

    async def main() -> tuple[list[int], list[ClusterEventKind]]:
        async with AsyncEmbclusterClient(server.server.address) as raw, AsyncClient(server.server.address) as nice:
            call = raw.watch_cluster_events("g")
            versions = []
            async for event in call:
                versions.append(event.model_version)
                if len(versions) == 3:
                    call.cancel()
                    break
            stream = nice.watch_cluster_events("g")
            kinds = []
            async for model in stream:
                kinds.append(model.kind)
                if len(kinds) == 3:
                    stream.cancel()
                    break
            return versions, kinds

    versions, kinds = asyncio.run(main())
    assert versions == [1, 1, 1] and kinds == [ClusterEventKind.BIRTH] * 3


def test_cli_events_and_cluster_print_the_events(server: Running, capsys) -> None:  # type: ignore[no-untyped-def]
    from embcluster.cli import main

    c = server.client
    addr = server.server.address
    c.create_collection("g", input_kind="vector", vector_dim=4, distance="euclid")
    for group in range(3):
        _group(c, group)
    assert main(["cluster", "g", "-k", "3", "--target", addr]) == 0
    out = capsys.readouterr().out
    assert "cluster events of v1" in out
    assert len([line for line in out.splitlines() if line.startswith("v1  BIRTH ")]) == 3
    _group(c, 3)
    assert main(["cluster", "g", "-k", "4", "--target", addr]) == 0
    capsys.readouterr()
    born = next(e for e in c.get_model("g", 2).events if e.kind == pb.CLUSTER_EVENT_KIND_BIRTH)

    assert main(["events", "g", "--target", addr]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["v1", "BIRTH"]] * 3 + [["v2", "BIRTH"]] + [["v2", "SHRINK"]] * 3
    assert lines[3].startswith(f"v2  BIRTH   cluster {born.cluster_id} (filed under [")
    assert lines[3].endswith(": 0 -> 200 points, 0.0% -> 25.0%")
    assert main(["events", "g", "--since", "2", "--target", addr]) == 0
    assert capsys.readouterr().out.strip() == "no cluster events in 'g' after v2"
    assert main(["events", "nope", "--target", addr]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err


def test_cli_events_follow_prints_a_new_version_until_the_collection_goes(server: Running, capsys) -> None:  # type: ignore[no-untyped-def]
    from embcluster.cli import main

    c = server.client
    _three_groups_clustered(c)
    result: list[int] = []
    follower = threading.Thread(target=lambda: result.append(
        main(["events", "g", "--since", "1", "--follow", "--target", server.server.address])))
    follower.start()
    _wait_watchers(server, 1)
    _group(c, 3)
    c.cluster("g", k=4, seed=0)
    deadline = time.monotonic() + 10
    lines: list[str] = []
    while len(lines) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
        lines += capsys.readouterr().out.splitlines()
    c.delete_collection("g")  # ends the stream: NOT_FOUND, exit status 1
    follower.join(timeout=10)
    assert sorted(line.split()[1] for line in lines) == ["BIRTH", "SHRINK", "SHRINK", "SHRINK"]
    assert all(line.startswith("v2  ") for line in lines)
    assert result == [1] and "was deleted" in capsys.readouterr().err


@pytest.mark.parametrize("distance", ["euclid", "cosine"])
def test_two_new_groups_are_two_births_and_the_old_ids_persist(server: Running, distance: str) -> None:
    # The case: three groups fitted at k = 3, then two groups it never saw arrive; k = 5.
    c = server.client
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(5, 16)) * 4

    def group(g: int) -> list[dict[str, object]]:
        return [{"id": f"g{g}-{i}", "vector": v} for i, v in enumerate(centers[g] + rng.normal(size=(400, 16)))]

    c.create_collection("two", input_kind="vector", vector_dim=16, distance=distance)
    for g in range(3):
        c.ingest("two", group(g))
    c.cluster("two", k=3, seed=0)
    old = set(c.get_model("two").cluster_ids)
    for g in (3, 4):
        c.ingest("two", group(g))
    c.cluster("two", k=5, seed=0)
    model = c.get_model("two")
    births = [e for e in model.events if e.kind == pb.CLUSTER_EVENT_KIND_BIRTH]
    assert len(births) == 2 and old < set(model.cluster_ids)
    assert {e.cluster_id for e in births} == set(model.cluster_ids) - old
    assert all(e.size_after == 400 and set(e.related_ids) <= old for e in births)
    assert _kinds(model.events) == {pb.CLUSTER_EVENT_KIND_BIRTH: 2, pb.CLUSTER_EVENT_KIND_SHRINK: 3}
