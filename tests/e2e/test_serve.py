"""The service as a user runs it: `embcluster serve` in its own process, over a real port."""

from __future__ import annotations

import math

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from embcluster_client import EmbclusterClient, pb

from embcluster.data import load_wordnet

pytestmark = pytest.mark.slow

DOCS = load_wordnet(1200)


class Server:
    """`embcluster serve --port 0` on a data dir; the port is read from its start-up line.

    Returns once the server printed ``embcluster ready`` (health SERVING: the text model is loaded,
    or with ``--lazy-model`` at once).
    """

    def __init__(self, data_dir: Path, *args: str, **env_extra: str) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "EMBCLUSTER_LOG_LEVEL": "WARNING", **env_extra}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "embcluster.cli", "serve", "--port", "0", "--data-dir", str(data_dir), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        deadline = time.monotonic() + 120
        lines = []
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            match = re.search(r"serving on (\S+:\d+)", line)
            if match:
                self.address = match.group(1)
                self.client = EmbclusterClient(self.address, timeout=120)
            if line.startswith("embcluster ready") and hasattr(self, "client"):
                return
        self.proc.kill()
        raise AssertionError("server did not start:\n" + "".join(lines))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.client.close()
        self.proc.send_signal(sig)
        assert self.proc.wait(timeout=60) in (0, -signal.SIGKILL)


def _all_points(client: EmbclusterClient, name: str) -> dict[str, pb.Point]:
    points: dict[str, pb.Point] = {}
    for cluster in client.list_clusters(name).clusters:
        for p in client.iter_cluster_members(name, cluster.cluster_id, page_size=500):
            assert p.point_id not in points, "a point listed under two clusters"
            points[p.point_id] = p
    return points


def test_serve_ingest_cluster_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = Server(data)
    try:
        c = server.client
        assert c.health() == "SERVING"
        c.create_collection("wordnet", input_kind="text", contamination=0.02)
        results = c.ingest_many(
            "wordnet",
            [{"id": d["id"], "text": d["text"], "metadata": {"category": d["category"]}} for d in DOCS],
            batch_size=200,
        )
        assert len(results) == len(DOCS) == 1200
        run = c.cluster("wordnet", k=12, seed=7)
        assert run.state == pb.RUN_STATE_SUCCEEDED, run.error
        col = c.get_collection("wordnet")
        assert col.point_count == 1200 and col.served_model_version == run.model_version

        clusters = c.list_clusters("wordnet")
        assert sum(cl.size for cl in clusters.clusters) == col.point_count
        points = _all_points(c, "wordnet")
        assert len(points) == 1200
        for p in points.values():
            a = p.assignment
            assert p.HasField("assignment") and a.model_version == col.served_model_version
            assert a.cluster_distance >= 0 and math.isfinite(a.anomaly_score)  # ensemble: 0 = the fit's median
        flagged = [p for p in points.values() if p.assignment.is_anomaly]
        assert len(flagged) == col.anomaly_count > 0

        for cl in clusters.clusters[:4]:
            hits = c.search("wordnet", "a person who works with tools", limit=15, cluster_id=cl.cluster_id)
            assert hits and {h.point.assignment.cluster_id for h in hits} == {cl.cluster_id}

        before = {pid: (p.assignment, dict(p.metadata), p.text) for pid, p in points.items()}
    finally:
        server.stop()

    server = Server(data)  # a clean restart keeps everything
    try:
        c = server.client
        col2 = c.get_collection("wordnet")
        assert (col2.point_count, col2.served_model_version, col2.anomaly_count) == (
            1200, col.served_model_version, col.anomaly_count)
        after = _all_points(c, "wordnet")
        assert {pid: (p.assignment, dict(p.metadata), p.text) for pid, p in after.items()} == before
        labels = c.classify("wordnet", [DOCS[0]["text"]])
        assert labels[0].cluster_id == before[results[0].point_id][0].cluster_id

        # acknowledged writes survive SIGKILL (Qdrant Edge's WAL), online labels included
        extra = c.ingest("wordnet", [{"id": "extra-1", "text": "a small furry animal kept as a pet"}])
        assert extra[0].assignment.model_version == col.served_model_version
    finally:
        server.stop(signal.SIGKILL)

    server = Server(data)
    try:
        c = server.client
        assert c.get_collection("wordnet").point_count == 1201
        got = c.get_point("wordnet", id="extra-1")
        assert got.assignment == extra[0].assignment
        with pytest.raises(grpc.RpcError) as e:
            c.get_collection("missing")
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        server.stop()


def test_second_server_on_same_data_dir_fails_clearly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = Server(data)
    try:
        first.client.create_collection("v", input_kind="vector", vector_dim=3)
        proc = subprocess.run(
            [sys.executable, "-m", "embcluster.cli", "serve", "--port", "0", "--data-dir", str(data), "--lazy-model"],
            capture_output=True, text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        assert proc.returncode == 1
        assert f"is in use by another process (pid {first.proc.pid}: another embcluster serve" in proc.stderr
        assert "Traceback" not in proc.stderr
    finally:
        first.stop()


KILL_N = 30_000  # points of the collection kill_mid_write_back builds


def kill_mid_write_back(data: Path, env: dict[str, str]) -> tuple[pb.ClusteringRun, pb.ClusteringRun]:
    """Cluster KILL_N vectors (k=6), start a second run (k=5, seed 1) and SIGKILL the server mid write-back.

    Returns the first (served) run and the killed one.
    """
    server = Server(data, "--lazy-model", **env)
    try:
        c = server.client
        c.create_collection("v", input_kind="vector", vector_dim=16)
        rng = np.random.default_rng(0)
        centers = rng.normal(size=(6, 16)) * 5
        x = centers[rng.integers(0, 6, KILL_N)] + rng.normal(size=(KILL_N, 16))
        c.ingest_many("v", [{"id": f"p{i}", "vector": v} for i, v in enumerate(x)], batch_size=1000)
        first = c.cluster("v", k=6, seed=0)
        run = c.start_clustering("v", k=5, seed=1)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = c.get_clustering_run("v", run.run_id)
            if state.phase == "assigning" and state.points_labelled > 0:
                break
            assert state.state in (pb.RUN_STATE_PENDING, pb.RUN_STATE_RUNNING), state
            time.sleep(0.01)
        assert state.state == pb.RUN_STATE_RUNNING and 0 < state.points_labelled < KILL_N
        return first, run
    finally:
        server.stop(signal.SIGKILL)


def test_sigkill_during_write_back_keeps_the_served_model(tmp_path: Path) -> None:
    """A run killed midway: the previous version stays served and every point returns to it."""
    data = tmp_path / "data"
    small_pages = {"EMBCLUSTER_PAGE_SIZE": "16",  # many small write-back pages: a wide window to kill in
                   "EMBCLUSTER_RESTART_ATTEMPTS": "0"}  # re-run by hand here (tests/e2e/test_schedule.py: by itself)
    first, run = kill_mid_write_back(data, small_pages)
    n = KILL_N
    server = Server(data, "--lazy-model", **small_pages)
    try:
        c = server.client
        col = c.get_collection("v")
        assert col.served_model_version == first.model_version and col.point_count == n
        killed = c.get_clustering_run("v", run.run_id)
        assert killed.state == pb.RUN_STATE_FAILED and "interrupted" in killed.error
        deadline = time.monotonic() + 120
        while True:  # the start-up catch-up puts the partially relabelled points back on v1
            listing = c.list_clusters("v")
            versions = {p.assignment.model_version for cl in listing.clusters
                        for p in c.iter_cluster_members("v", cl.cluster_id, page_size=1000)}
            assert versions == {first.model_version}  # readers never see the repair's mix
            if not listing.provisional or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert not listing.provisional and sum(cl.size for cl in listing.clusters) == listing.point_count == n
        again = c.cluster("v", k=5, seed=1)
        assert killed.model_version == first.model_version + 1
        assert again.state == pb.RUN_STATE_SUCCEEDED and again.model_version == killed.model_version + 1
    finally:
        server.stop()


def test_demo_prints_clusters_and_anomalies(tmp_path: Path) -> None:
    """`embcluster demo` as a new user runs it: its own embedded server, real WordNet text; piped, it
    prints plain progress lines to stderr, and it leaves no data directory behind."""
    proc = subprocess.run(
        [sys.executable, "-m", "embcluster.cli", "demo", "-n", "300", "-k", "4"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "\r" not in out and "\r" not in proc.stderr
    assert "ingest demo-wordnet: 300/300 items 100.0%" in proc.stderr and "ingest demo-wordnet:" not in out
    assert list(tmp_path.glob("embcluster-demo-*")) == []
    assert "ingested 300 WordNet definitions" in out
    assert "model v1: k=4, 300 points labelled" in out
    table = out[out.index("cluster  size"):out.index("top anomalies")]
    sizes = [int(line.split()[1]) for line in table.splitlines()[1:] if line[:7].strip().isdigit()]
    assert len(sizes) == 4 and sum(sizes) == 300
    assert "top anomalies (of " in out and "score " in out


def test_sigterm_completes_with_open_streams_and_an_unparseable_stream(tmp_path: Path) -> None:
    """Was stuck in GrpcServer.stop after an IngestStream whose first message could not be parsed."""
    server = Server(tmp_path / "data", "--lazy-model", EMBCLUSTER_SHUTDOWN_GRACE_S="1")
    channel = grpc.insecure_channel(server.address)
    gate = threading.Event()

    def messages():  # type: ignore[no-untyped-def]
        yield b"\xff\xff\xff\xff"
        gate.wait(60)  # the client keeps its side open

    call = channel.stream_stream("/embcluster.v1.Embcluster/IngestStream", request_serializer=None,
                                 response_deserializer=None)(messages())
    with pytest.raises(grpc.RpcError) as err:
        next(call)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    server.client.create_collection("v", input_kind="vector", vector_dim=2)
    watcher = server.client.watch_anomalies("v")  # a stream that never ends by itself
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    assert time.monotonic() - started < 20
    gate.set()
    watcher.cancel()
    channel.close()
    server.client.close()
