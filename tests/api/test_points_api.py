"""ListPoints, iter_points, search grouped by cluster and ``embcluster points`` over a real in-process
gRPC server: every client (protobuf, Pythonic, asyncio), the status codes, the command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Iterator

import grpc
import numpy as np
import pytest
from embcluster_client import AsyncClient, Client, EmbclusterClient, InvalidArgument, models, pb

from embcluster.cli import main
from embcluster.config import Settings
from embcluster.insight.summary import ClusterSummary, RunSummaries

from .conftest import Running

DIM = 4
CENTERS = np.array([[6, 0, 0, 0], [0, 6, 0, 0], [0, 0, 6, 0]], dtype=np.float32)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    """A server without a text model, with a clustered VECTOR collection ``shop`` (3 blobs, labelled)."""
    r = Running(Settings(data_dir=tmp_path / "data", port=0))
    c = r.client
    c.create_collection("shop", input_kind="vector", vector_dim=DIM, distance="euclid", contamination=0.05)
    c.ingest("shop", _items(90, "s"))
    c.cluster("shop", k=3, seed=0)
    model = r.service.registry.get("shop").model
    assert model is not None
    model.summaries = RunSummaries(input_kind="vector", clusters=[
        ClusterSummary(cluster_id=int(cid), size=30, share=1 / 3, radius=1.0, anomaly_count=0, kind="keywords",
                       label=f"label-{int(cid)}") for cid in model.cluster_ids])
    yield r
    r.stop()


def _items(n: int, prefix: str, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [{"id": f"{prefix}{i}", "vector": (CENTERS[i % 3] + rng.normal(scale=0.5, size=DIM)).tolist(),
             "metadata": {"i": i}} for i in range(n)]


def test_iter_points_yields_every_point_once_while_the_collection_grows(server: Running) -> None:
    c = server.client
    seen: list[str] = []
    token = ""
    page_no = 0
    while True:
        page = c.list_points("shop", page_size=8, page_token=token)
        assert isinstance(page, pb.ListPointsResponse) and len(page.points) <= 8
        seen.extend(p.external_id for p in page.points)
        token = page.next_page_token
        if not token:
            break
        page_no += 1
        if page_no <= 5:  # new points and replacements between pages
            c.ingest("shop", _items(4, f"n{page_no}-", seed=page_no) + _items(2, "s", seed=50 + page_no))
    assert len(seen) == len(set(seen)) == 90 + 5 * 4
    assert set(seen) == {p.external_id for p in c.iter_points("shop", page_size=7)}
    every = list(c.iter_points("shop"))
    assert all(p.HasField("assignment") and p.metadata["i"] >= 0 for p in every)
    by_cluster: dict[int, set[str]] = {}
    for p in every:
        by_cluster.setdefault(p.assignment.cluster_id, set()).add(p.external_id)
    for cid, ids in by_cluster.items():
        assert {p.external_id for p in c.iter_points("shop", cluster_id=cid, page_size=5)} == ids
    flagged = {p.external_id for p in every if p.assignment.is_anomaly}
    assert {p.external_id for p in c.iter_points("shop", anomalies=True)} == flagged
    assert {p.external_id for p in c.iter_points("shop", anomalies=False)} == {p.external_id for p in every} - flagged
    version = every[0].assignment.model_version
    assert len(list(c.iter_points("shop", model_version=version))) == len(every)
    assert list(c.iter_points("shop", model_version=version + 1)) == []


def test_bad_tokens_and_arguments_are_invalid_argument(server: Running) -> None:
    c = server.client
    token = c.list_points("shop", page_size=5).next_page_token
    for kwargs in ({"page_token": "garbage"}, {"page_token": token, "anomalies": True}, {"page_size": 1001}):
        with pytest.raises(InvalidArgument) as info:
            c.list_points("shop", **kwargs)  # type: ignore[arg-type]
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(InvalidArgument, match="'garbage'"):
        c.list_points("shop", page_token="garbage")
    with pytest.raises(grpc.RpcError) as err:
        c.list_points("shop", cluster_id=42)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    req = pb.SearchRequest(collection="shop", vector=pb.Vector(values=[6, 0, 0, 0]), limit=5,
                           group_by_cluster=pb.ClusterGrouping())
    stub = EmbclusterClient(server.server.address)
    try:
        with pytest.raises(InvalidArgument, match="limit 5 applies to plain search"):
            stub._stub.Search(req, timeout=30)  # what a grpcurl user sending both gets
    finally:
        stub.close()
    with pytest.raises(InvalidArgument, match=r"groups must be in \[1, 100\], got 500"):
        c.search_groups("shop", [6.0, 0, 0, 0], groups=500)


def test_search_groups_through_every_client(server: Running) -> None:
    c = server.client
    groups = c.search_groups("shop", [6.0, 0.2, 0, 0], groups=2, group_size=4)
    assert [len(g.hits) for g in groups] == [4, 4]
    first = groups[0]
    assert all(h.point.assignment.cluster_id == first.cluster_id for h in first.hits)
    assert first.label == f"label-{first.cluster_id}"
    assert {h.point.external_id for h in first.hits} <= {f"s{i}" for i in range(0, 90, 3)}  # the blob at x = 6
    assert groups[0].hits[0].score <= groups[1].hits[0].score  # euclid: best (nearest) group first
    plain = c.search("shop", [6.0, 0.2, 0, 0], limit=3)
    assert [h.point.point_id for h in plain] == [h.point.point_id for h in first.hits[:3]]
    with Client(server.server.address) as py:
        models_groups = py.search_groups("shop", [6.0, 0.2, 0, 0], groups=2, group_size=4)
        assert all(isinstance(g, models.SearchGroup) for g in models_groups)
        assert [(g.cluster_id, g.label, [h.point.point_id for h in g]) for g in models_groups] == \
            [(g.cluster_id, g.label, [h.point.point_id for h in g.hits]) for g in groups]
        page = py.list_points("shop", page_size=10)
        assert isinstance(page, models.PointPage) and len(page) == 10 and page.next_page_token
        assert sorted(p.external_id for p in py.iter_points("shop", page_size=9)) == sorted(f"s{i}" for i in range(90))

    async def run() -> tuple[list[str], list[int]]:
        async with AsyncClient(server.server.address) as ac:
            ids = [p.external_id async for p in ac.iter_points("shop", page_size=11)]
            found = await ac.search_groups("shop", [6.0, 0.2, 0, 0], groups=2, group_size=4)
            return ids, [g.cluster_id for g in found]

    ids, cids = asyncio.run(run())
    assert sorted(ids) == sorted(f"s{i}" for i in range(90))
    assert cids == [g.cluster_id for g in groups]


def test_points_command(server: Running, capsys: pytest.CaptureFixture[str]) -> None:
    addr = server.server.address
    c = server.client
    assert main(["points", "shop", "--target", addr]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "cluster", "distance", "score", "anomaly", "text"]
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(f"s{i}" for i in range(90))
    flagged = sorted(p.external_id for p in c.iter_points("shop", anomalies=True))
    assert flagged
    assert main(["points", "shop", "--anomalies", "--server", addr]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert sorted(r.split()[0] for r in rows) == flagged and all(r.split()[4] == "yes" for r in rows)
    cid = c.get_point("shop", id="s0").assignment.cluster_id
    assert main(["points", "shop", "--cluster", str(cid), "--json", "--target", addr]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(out) == 30 and all(p["assignment"]["cluster_id"] == cid for p in out)
    assert {p["external_id"] for p in out} == {p.external_id for p in c.iter_points("shop", cluster_id=cid)}
    assert main(["points", "shop", "--limit", "7", "--target", addr]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1 + 7 and "raise --limit" in captured.err
    assert main(["points", "nope", "--target", addr]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
