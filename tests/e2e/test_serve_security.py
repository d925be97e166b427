"""`embcluster serve` with a key file, as a user runs it: the gRPC port and the metrics endpoint
both want a key, and the key never shows in its output."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from embcluster_client import EmbclusterClient

pytestmark = pytest.mark.slow


def test_serve_with_keys_guards_grpc_and_metrics(tmp_path: Path) -> None:
    made = subprocess.run([sys.executable, "-m", "embcluster.cli", "keys", "create", "--name", "ops",
                           "--scopes", "admin"], capture_output=True, text=True, check=True, timeout=60)
    key = re.search(r"^key: (\S+)$", made.stdout, re.M).group(1)  # type: ignore[union-attr]
    line = [x for x in made.stdout.splitlines() if x.startswith("{")][0]
    assert key not in line
    (tmp_path / "keys.jsonl").write_text(line + "\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EMBCLUSTER_LOG_LEVEL": "INFO"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "embcluster.cli", "serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
         "--lazy-model", "--metrics-port", "0", "--api-keys-file", str(tmp_path / "keys.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    lines: list[str] = []
    address = metrics = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and address is None:
        out = proc.stdout.readline()
        if not out:
            break
        lines.append(out)
        if m := re.search(r"metrics on (\S+)", out):
            metrics = m.group(1)
        if m := re.search(r"serving on (\S+:\d+)", out):
            address = m.group(1)
    try:
        assert address and metrics, "".join(lines)
        with EmbclusterClient(address, timeout=30) as anonymous:
            assert anonymous.health() == "SERVING"
            with pytest.raises(grpc.RpcError) as info:
                anonymous.list_collections()
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with EmbclusterClient(address, timeout=30, api_key=key) as ops:
            ops.create_collection("v", input_kind="vector", vector_dim=2)
        with pytest.raises(urllib.error.HTTPError) as http:
            urllib.request.urlopen(metrics, timeout=10)
        assert http.value.code == 401
        ok = urllib.request.Request(metrics, headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(ok, timeout=10) as response:
            assert 'embcluster_collection_points{collection="v"}' in response.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    output = "".join(lines) + rest
    assert key not in output and "1 API keys" in output
