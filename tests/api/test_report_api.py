"""``GetReport`` through the in-process gRPC server: the HTML holds the collection's clusters and
labels and nothing outside itself; its errors; both Python clients (sync and asyncio) and the
``embcluster report`` command."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Iterator

import grpc
import numpy as np
import pytest
from embcluster_client import AsyncClient, Client, FailedPrecondition, InvalidArgument, NotFound, models

from embcluster.cli import main
from embcluster.config import Settings
from embcluster.data import load_wordnet
from embcluster.insight.summary import SummaryInput, summarize

from .conftest import Running


@pytest.fixture
def server(tmp_path: Path, text_embedder) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    """A server with the text model and the default message limit."""
    r = Running(Settings(data_dir=tmp_path / "data", port=0), text_embedder)
    yield r
    r.stop()


def _wordnet(server: Running, name: str = "words", n: int = 150) -> list[dict]:
    rows = load_wordnet(n)
    with Client(server.server.address, timeout=120) as c:
        c.create_collection(name, input_kind="text", contamination=0.05)
        c.ingest(name, [{"id": r["id"], "text": r["text"], "metadata": {"category": r["category"]}} for r in rows])
    return rows


def _summaries_like_a_run(server: Running, name: str) -> dict[int, str]:
    """Cluster summaries (keywords, labels) computed from the stored texts, kept with the served
    version as a run keeps them; returns each cluster's label."""
    coll = server.service.registry.get(name)
    model = coll.model
    assert model is not None
    points, _ = coll.store.scroll(limit=1000, with_vectors=True)
    labels = model.assign(np.stack([p.vector for p in points]))
    model.summaries = summarize("text", SummaryInput(
        ids=[p.payload["external_id"] for p in points], cluster_ids=labels.cluster_id,
        distances=labels.cluster_distance, is_anomaly=labels.is_anomaly,
        texts=[p.payload["source"]["text"] for p in points]))
    coll.models.save_metadata(model)
    return {s.cluster_id: s.label for s in model.summaries.clusters}


def test_the_report_holds_the_clusters_and_labels_and_nothing_outside(server: Running) -> None:
    _wordnet(server)
    with Client(server.server.address, timeout=120) as c:
        with pytest.raises(FailedPrecondition, match="'words' has no cluster model yet"):
            c.get_report("words")
        c.cluster("words", k_range=(3, 6))
        labels = _summaries_like_a_run(server, "words")
        report = c.get_report("words")
        listing = c.list_clusters("words")
    assert isinstance(report, models.CollectionReport)
    assert (report.collection, report.model_version, report.point_count) == ("words", 1, 150)
    assert report.points_drawn == 150 and report.clusters == len(listing.clusters) and report.k_curves
    assert report.summaries and report.labelled_clusters == sum(1 for label in labels.values() if label) > 0
    assert report.versions == 1 and report.generated_at is not None and report.seconds > 0
    page = report.html.decode("utf-8")
    rows = re.findall(r'<tr data-cluster-id="(\d+)">', page)
    assert sorted(map(int, rows)) == sorted(cl.cluster_id for cl in listing.clusters)
    for cl in listing.clusters:
        assert re.search(rf'<tr data-cluster-id="{cl.cluster_id}">.*?<td class="num">{cl.size}</td>', page)
    for label in labels.values():
        assert label in page
    # self-contained: nothing loaded from elsewhere (BokehJS is inline)
    assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=", page)
    assert "/* BEGIN bokeh.min.js */" in page and page.count("data-root-id") >= 4


def test_errors(server: Running, tmp_path: Path) -> None:
    with Client(server.server.address, timeout=60) as c:
        with pytest.raises(NotFound, match="'nope' not found"):
            c.get_report("nope")
        c.create_collection("v", input_kind="vector", vector_dim=2)
        c.ingest("v", [{"id": f"p{i}", "vector": [float(i % 2), 1.0]} for i in range(20)])
        with pytest.raises(FailedPrecondition):
            c.write_report("v", tmp_path / "v.html")
        assert not (tmp_path / "v.html").exists()
        c.cluster("v", k=2)
        with pytest.raises(InvalidArgument, match=r"sample_size must be in \[1, 50000\].*got 50001"):
            c.get_report("v", sample_size=50_001)
        assert c.get_report("v", sample_size=5).points_drawn == 5


def test_a_report_over_the_message_limit_is_resource_exhausted(running: Running) -> None:
    c = running.client  # this server's limit is 1 MiB; BokehJS alone is 1.3 MB
    c.create_collection("v", input_kind="vector", vector_dim=2)
    c.ingest("v", [{"id": f"p{i}", "vector": [float(i % 2), 1.0]} for i in range(20)])
    c.cluster("v", k=2)
    with pytest.raises(grpc.RpcError) as info:
        c.get_report("v")
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "ask for fewer points" in info.value.details()


def test_write_report_through_every_client(server: Running, tmp_path: Path) -> None:
    address = server.server.address
    with Client(address, timeout=60) as c:
        c.create_collection("v", input_kind="vector", vector_dim=2)
        c.ingest("v", [{"id": f"p{i}", "vector": [float(i % 2), 1.0 + i / 100]} for i in range(40)])
        c.cluster("v", k=2)
        written = c.write_report("v", tmp_path / "pythonic.html", sample_size=30)
        assert isinstance(written, models.CollectionReport) and written.points_drawn == 30
        assert (tmp_path / "pythonic.html").read_bytes() == written.html
        raw = c.grpc.write_report("v", str(tmp_path / "raw.html"))
        assert raw.points_drawn == 40 and (tmp_path / "raw.html").read_bytes() == raw.html

    async def go() -> models.CollectionReport:
        async with AsyncClient(address, timeout=60) as ac:
            report = await ac.write_report("v", tmp_path / "async.html")
            await ac.grpc.write_report("v", tmp_path / "async-raw.html")
            return report

    report = asyncio.run(go())
    assert report.model_version == 1 and (tmp_path / "async.html").read_bytes() == report.html
    assert (tmp_path / "async-raw.html").stat().st_size == len(report.html)


def test_the_report_command_writes_the_file_and_says_what_it_holds(server: Running, tmp_path: Path, capsys,
                                                                     monkeypatch) -> None:
    _wordnet(server, "docs", 60)
    address = server.server.address
    assert main(["report", "docs", "-o", str(tmp_path / "r.html"), "--target", address]) == 1
    assert "FAILED_PRECONDITION: collection 'docs' has no cluster model yet" in capsys.readouterr().err
    with Client(address, timeout=120) as c:
        c.cluster("docs", k=3)
    assert main(["report", "docs", "-o", str(tmp_path / "r.html"), "--sample", "40", "--target", address]) == 0
    out = capsys.readouterr().out
    size = (tmp_path / "r.html").stat().st_size
    assert size > 1_000_000 and f"wrote {tmp_path / 'r.html'} ({size / 1e6:.1f} MB)" in out
    assert "collection docs, model v1" in out and "map: 40 of 60 points" in out
    assert re.search(r"clusters: 3 \((\d of them labelled|no summaries in this version)\)", out)
    assert "k curves: no (fixed k)" in out and "history: 1 model version\n" in out
    monkeypatch.chdir(tmp_path)
    assert main(["report", "docs", "--target", address]) == 0  # default file name
    assert (tmp_path / "docs-report.html").stat().st_size > 1_000_000
    assert main(["report", "nope", "--target", address]) == 1
    assert "NOT_FOUND: collection 'nope' not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "docs", "--sample", "0", "--target", address])
