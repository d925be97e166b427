"""Metrics over HTTP, request ids in metadata and logs, and WatchClusteringRun, on a real server."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from embcluster_client import AsyncEmbclusterClient, pb
from prometheus_client.parser import text_string_to_metric_families

from embcluster.api.v1 import embcluster_pb2_grpc as pb_grpc
from embcluster.logs import JsonFormatter, RequestIdFilter, configure_logging, request_id_var
from embcluster.metrics import DRIFT_FIELDS, SERIES, MetricsEndpoint

ROOT = Path(__file__).resolve().parents[2]
SVC = "embcluster.v1.Embcluster/"


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 8)) * 5
    return (centres[rng.integers(0, 3, n)] + rng.normal(size=(n, 8))).astype(np.float32)


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _names(samples: dict) -> set[str]:
    return {name for name, _ in samples}


def test_metrics_endpoint_counts_match_the_calls_made(running) -> None:
    c = running.client
    endpoint = MetricsEndpoint(running.service.metrics, "127.0.0.1", 0)
    try:
        assert endpoint.port > 0
        c.create_collection("m", input_kind="vector", vector_dim=8, distance="euclid", contamination=0.05)
        vecs = _vectors(150)
        for i in range(3):
            c.ingest("m", [{"id": f"p{j}", "vector": vecs[j]} for j in range(i * 50, (i + 1) * 50)])
        c.get_collection("m")
        c.get_collection("m")
        with pytest.raises(grpc.RpcError):
            c.get_collection("missing")
        run = c.start_clustering("m", k=3, seed=0)
        states = list(c.watch_run("m", run.run_id, timeout=120))
        assert states[-1].state == pb.RUN_STATE_SUCCEEDED
        more = _vectors(30, seed=5)  # labelled online by the served model (what drift compares)
        c.ingest("m", [{"id": f"q{j}", "vector": v} for j, v in enumerate(more)])
        c.create_collection("t")  # one text longer than the model's window (256 tokens) is counted
        c.ingest("t", ["a short text", "many words " * 200])

        s = _scrape(endpoint.url)
        assert _value(s, "embcluster_rpc_requests_total", method=SVC + "Ingest", code="OK") == 5
        assert _value(s, "embcluster_rpc_requests_total", method=SVC + "GetCollection", code="OK") == 2
        assert _value(s, "embcluster_rpc_requests_total", method=SVC + "GetCollection", code="NOT_FOUND") == 1
        assert _value(s, "embcluster_rpc_requests_total", method=SVC + "WatchClusteringRun", code="OK") == 1
        assert _value(s, "embcluster_rpc_duration_seconds_count", method=SVC + "Ingest") == 5
        assert _value(s, "embcluster_rpc_duration_seconds_sum", method=SVC + "Ingest") > 0
        # The stream's latency lasts until its end: at least as long as the run it watched.
        assert _value(s, "embcluster_rpc_duration_seconds_count", method=SVC + "WatchClusteringRun") == 1
        assert _value(s, "embcluster_points_ingested_total", collection="m") == 180
        assert _value(s, "embcluster_embed_batch_duration_seconds_count", embedder="vector") == 4
        assert _value(s, "embcluster_texts_truncated_total", collection="t") == 1
        assert ("embcluster_texts_truncated_total", (("collection", "m"),)) not in s  # raw vectors: no series
        assert _value(s, "embcluster_runs_total", state="succeeded") == 1
        assert _value(s, "embcluster_run_duration_seconds_count", state="succeeded") == 1
        assert _value(s, "embcluster_collection_points", collection="m") == 180
        assert _value(s, "embcluster_collection_model_version", collection="m") == 1
        assert _value(s, "embcluster_collection_clusters", collection="m") == 3
        per_cluster = [v for (name, labels), v in s.items() if name == "embcluster_cluster_points"]
        assert len(per_cluster) == 3 and sum(per_cluster) == 180
        anomalies = c.get_collection("m").anomaly_count
        assert anomalies > 0
        assert _value(s, "embcluster_collection_anomalies", collection="m") == anomalies
        assert _value(s, "embcluster_collection_anomaly_rate", collection="m") == pytest.approx(anomalies / 180)
        # Drift gauges: each value the service could measure, as it reports it.
        drift = getattr(running.service, "drift", None)
        if drift is not None:
            report = drift("m")
            measured = {f: getattr(report, f) for f in DRIFT_FIELDS if getattr(report, f) is not None}
            assert measured  # 30 points arrived after the model
            for f, v in measured.items():
                assert _value(s, f"embcluster_drift_{f}", collection="m") == pytest.approx(v), f
            assert not {f"embcluster_drift_{f}" for f in DRIFT_FIELDS if f not in measured} & _names(s)
        # Every documented series is exposed.
        for name, (kind, _) in SERIES.items():
            if name.startswith("embcluster_drift_"):
                continue
            assert name in _names(s) or f"{name}_count" in _names(s), f"{name} ({kind}) not scraped"
        # ... and documented in the README's Metrics section.
        readme = (ROOT / "README.md").read_text()
        section = readme[readme.index("## Metrics"):]
        for name in SERIES:
            if not name.startswith("embcluster_drift_"):
                assert f"`{name}`" in section, f"{name} not documented in README"
        assert "`embcluster_drift_<field>`" in section
    finally:
        endpoint.close()


def test_two_services_keep_separate_registries(running, settings, text_embedder, tmp_path) -> None:
    from tests.api.conftest import Running

    other = Running(settings.model_copy(update={"data_dir": tmp_path / "other"}), text_embedder)
    try:
        other.client.list_collections()
        mine = running.service.metrics.render().decode()
        theirs = other.service.metrics.render().decode()
        assert 'method="embcluster.v1.Embcluster/ListCollections"' in theirs
        assert 'method="embcluster.v1.Embcluster/ListCollections"' not in mine
    finally:
        other.stop()


def test_request_id_is_echoed_and_logged(running) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    channel = grpc.insecure_channel(running.server.address)
    stub = pb_grpc.EmbclusterStub(channel)
    try:
        req = pb.CreateCollectionRequest(name="rid", input_kind=pb.INPUT_KIND_VECTOR, vector_dim=4)
        _, call = stub.CreateCollection.with_call(req, metadata=(("x-request-id", "req-42"),))
        assert ("x-request-id", "req-42") in tuple(call.trailing_metadata())
        created = [r for r in records if "created collection rid" in r.getMessage()]
        assert created and created[0].request_id == "req-42"
        # None given: one is made up and echoed.
        _, call = stub.GetCollection.with_call(pb.GetCollectionRequest(name="rid"))
        made = dict(call.trailing_metadata())["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        # Errors carry it too; an unusable id (spaces) is replaced, never echoed.
        with pytest.raises(grpc.RpcError) as e:
            stub.GetCollection(pb.GetCollectionRequest(name="nope"), metadata=(("x-request-id", "bad id <script>"),))
        echoed = dict(e.value.trailing_metadata())["x-request-id"]
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and re.fullmatch(r"[0-9a-f]{32}", echoed)
        # Streams too (the watch ends with the run), and a run's own log lines carry the id of
        # the call that started it.
        vecs = [[1, 0, 0, 0], [0.9, 0.1, 0, 0], [1, 0.1, 0, 0], [0, 1, 0, 0], [0.1, 1, 0, 0], [0, 0.9, 0.1, 0]]
        stub.Ingest(pb.IngestRequest(collection="rid", items=[pb.Item(vector=pb.Vector(values=v)) for v in vecs]))
        run = stub.StartClustering(pb.StartClusteringRequest(collection="rid", k=2),
                                   metadata=(("x-request-id", "start-7"),))
        watch = stub.WatchClusteringRun(pb.GetClusteringRunRequest(collection="rid", run_id=run.run_id),
                                        metadata=(("x-request-id", "watch-1"),))
        assert list(watch)[-1].state == pb.RUN_STATE_SUCCEEDED
        assert ("x-request-id", "watch-1") in tuple(watch.trailing_metadata())
        serves = [r for r in records if "now serves model v1" in r.getMessage()]
        assert serves and serves[0].request_id == "start-7"
    finally:
        channel.close()
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert request_id_var.get() == ""  # nothing leaks into the test's own context


def test_json_log_lines_carry_the_request_id() -> None:
    buf = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("INFO", "json", stream=buf)
        token = request_id_var.set("abc-1")
        logging.getLogger("embcluster.test").info("hello %s", "world")
        request_id_var.reset(token)
        logging.getLogger("embcluster.test").warning("outside")
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    first, second = (json.loads(line) for line in buf.getvalue().splitlines())
    assert set(first) == {"ts", "level", "logger", "msg", "request_id"}
    assert first["msg"] == "hello world" and first["request_id"] == "abc-1" and first["level"] == "INFO"
    assert first["logger"] == "embcluster.test" and first["ts"].endswith("+00:00")
    assert second["request_id"] is None and second["level"] == "WARNING"
    assert JsonFormatter().format(logging.makeLogRecord({"msg": "x"})).startswith("{")


def test_watch_run_streams_progress_until_the_end(running) -> None:
    c = running.client
    c.create_collection("w", input_kind="vector", vector_dim=8, distance="euclid")
    vecs = _vectors(3000, seed=1)
    c.ingest_many("w", [{"id": f"p{j}", "vector": v} for j, v in enumerate(vecs)], batch_size=300)
    run = c.start_clustering("w", k=3, seed=0)
    seen = list(c.watch_run("w", run.run_id, timeout=120))
    assert len(seen) >= 3 and all(r.run_id == run.run_id for r in seen)
    assert seen[-1].state == pb.RUN_STATE_SUCCEEDED and seen[-1].progress == 1.0
    assert all(r.state not in (pb.RUN_STATE_SUCCEEDED, pb.RUN_STATE_FAILED) for r in seen[:-1])
    progress = [r.progress for r in seen]
    assert progress == sorted(progress)
    assert len({(r.state, r.phase, round(r.progress, 3)) for r in seen}) == len(seen)  # changes only
    # A finished run: one message, its final state.
    again = list(c.watch_run("w", run.run_id, timeout=30))
    assert len(again) == 1 and again[0].state == pb.RUN_STATE_SUCCEEDED
    with pytest.raises(grpc.RpcError) as e:
        list(c.watch_run("w", "0123456789abcdef", timeout=30))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "0123456789abcdef" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        list(c.watch_run("nope", run.run_id, timeout=30))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND

    async def watch_async() -> list[pb.ClusteringRun]:
        async with AsyncEmbclusterClient(running.server.address) as ac:
            started = await ac.start_clustering("w", k=4, seed=1)
            return [r async for r in ac.watch_run("w", started.run_id, timeout=120)]

    seen_async = asyncio.run(watch_async())
    assert seen_async[-1].state == pb.RUN_STATE_SUCCEEDED and seen_async[-1].k == 4


def test_a_forgotten_collection_leaves_no_series() -> None:
    from embcluster.metrics import ServiceMetrics

    metrics = ServiceMetrics()
    metrics.observe_ingest("gone", 3)
    metrics.observe_truncated("gone", 1)
    metrics.observe_ingest("kept", 2)
    metrics.forget_collection("gone")
    metrics.forget_collection("never-seen")  # nothing to drop: no error
    text = metrics.render().decode()
    assert 'embcluster_points_ingested_total{collection="kept"} 2.0' in text and 'collection="gone"' not in text


def test_scrapes_reuse_counts_until_the_collection_changes(running, monkeypatch) -> None:
    c = running.client
    svc = running.service
    c.create_collection("cache", input_kind="vector", vector_dim=8, distance="euclid")
    vecs = _vectors(60, seed=3)
    c.ingest("cache", [{"id": f"p{j}", "vector": vecs[j]} for j in range(40)])
    reads = []
    real = svc.get_collection
    monkeypatch.setattr(svc, "get_collection", lambda name: reads.append(name) or real(name))
    render = svc.metrics.render
    first = render().decode()
    assert 'embcluster_collection_points{collection="cache"} 40.0' in first
    assert render().decode().count('collection="cache"') and reads.count("cache") == 1  # nothing moved: cached
    c.ingest("cache", [{"id": f"p{j}", "vector": vecs[j]} for j in range(40, 60)])
    assert 'embcluster_collection_points{collection="cache"} 60.0' in render().decode()
    assert reads.count("cache") == 2
    c.delete_points("cache", ids=["p0"])
    assert 'embcluster_collection_points{collection="cache"} 59.0' in render().decode()
