"""`embcluster serve` with its metrics endpoint and JSON logs, in its own process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from embcluster_client import EmbclusterClient
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow


def test_serve_exposes_metrics_and_json_logs_with_request_ids(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EMBCLUSTER_LOG_LEVEL": "INFO"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "embcluster.cli", "serve", "--port", "0", "--metrics-port", "0", "--log-format",
         "json", "--lazy-model", "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        metrics_url = address = None
        deadline = time.monotonic() + 120
        while address is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "server exited before serving"
            if m := re.search(r"metrics on (http://\S+)", line):
                metrics_url = m.group(1)
            if m := re.search(r"serving on (\S+:\d+)", line):
                address = m.group(1)
        assert metrics_url and metrics_url.startswith("http://127.0.0.1:") and not metrics_url.endswith(":9464/metrics")
        with EmbclusterClient(address, timeout=60) as c:
            c.create_collection("v", input_kind="vector", vector_dim=3)
            for i in range(4):
                c.ingest("v", [{"id": f"{i}-{j}", "vector": [i, j, 1.0]} for j in range(25)])
            with pytest.raises(grpc.RpcError):
                c.get_collection("nope")
            with urllib.request.urlopen(metrics_url, timeout=10) as resp:
                before = resp.read().decode()
            assert 'embcluster_points_ingested_total{collection="v"} 100.0' in before
            channel = grpc.insecure_channel(address)
            from embcluster.api.v1 import embcluster_pb2 as pb
            from embcluster.api.v1 import embcluster_pb2_grpc as pb_grpc

            pb_grpc.EmbclusterStub(channel).DeleteCollection(pb.DeleteCollectionRequest(name="v"),
                                                             metadata=(("x-request-id", "e2e-delete-1"),))
            channel.close()
        with urllib.request.urlopen(metrics_url, timeout=10) as resp:
            text = resp.read().decode()
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(text) for s in f.samples}
        method = "embcluster.v1.Embcluster/"
        assert samples[("embcluster_rpc_requests_total", (("code", "OK"), ("method", method + "Ingest")))] == 4
        assert samples[("embcluster_rpc_requests_total", (("code", "NOT_FOUND"), ("method", method + "GetCollection")))] == 1
        # a deleted collection's series are gone (a new one of the same name starts from zero)
        assert ("embcluster_points_ingested_total", (("collection", "v"),)) not in samples
        assert not [name for name, _ in samples if name.endswith("_created")]  # `serve` turns them off
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert records and all({"ts", "level", "logger", "msg", "request_id"} <= set(r) for r in records)
    deleted = [r for r in records if r["msg"] == "deleted collection v"]
    assert deleted and deleted[0]["request_id"] == "e2e-delete-1" and deleted[0]["logger"] == "embcluster.core.registry"
    created = [r for r in records if r["msg"].startswith("created collection v")]
    assert created and re.fullmatch(r"[0-9a-f]{32}", created[0]["request_id"])
