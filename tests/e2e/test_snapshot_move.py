"""Moving a collection from a running Edge server to a Qdrant (local-mode) server with snapshots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .test_serve import Server

pytestmark = pytest.mark.slow


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "embcluster.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_export_from_a_running_edge_server_then_import_offline_into_qdrant(tmp_path: Path) -> None:
    edge = Server(tmp_path / "edge", "--lazy-model", EMBCLUSTER_SNAPSHOT_DIRS=str(tmp_path))
    try:
        c = edge.client
        c.create_collection("tx", input_kind="vector", vector_dim=4, distance="euclid")
        rng = np.random.default_rng(0)
        x = np.repeat([[0, 0, 0, 0], [8, 0, 0, 0], [0, 8, 0, 0]], 100, axis=0) + rng.normal(size=(300, 4))
        c.ingest_many("tx", [{"id": f"t{i}", "vector": v, "metadata": {"i": i}} for i, v in enumerate(x)])
        c.cluster("tx", k=3, seed=0)
        before = list(c.list_clusters("tx").clusters)
        labels = c.classify("tx", [[8.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 30.0]])
        # Through the server: while it runs, it owns the Edge shards.
        proc = _cli("export", "tx", str(tmp_path / "tx.tar"), "--server", edge.address)
        assert proc.returncode == 0, proc.stderr
        outside = _cli("export", "tx", str(tmp_path.parent / f"{tmp_path.name}-outside.tar"), "--server", edge.address)
        assert outside.returncode == 1 and "PERMISSION_DENIED" in outside.stderr, outside.stderr
        assert not (tmp_path.parent / f"{tmp_path.name}-outside.tar").exists()
        busy = _cli("export", "tx", str(tmp_path / "no.tar"), "--data-dir", str(tmp_path / "edge"))
        assert busy.returncode == 1 and "another process" in busy.stderr and "Traceback" not in busy.stderr
    finally:
        edge.stop()
    qargs = ["--data-dir", str(tmp_path / "q"), "--store", "qdrant", "--qdrant-path", str(tmp_path / "q" / "qdrant")]
    proc = _cli("import", str(tmp_path / "tx.tar"), *qargs)
    assert proc.returncode == 0, proc.stderr
    assert "'tx' -> 'tx': 300 points, 1 model versions (serving v1)" in proc.stdout
    q = Server(tmp_path / "q", "--lazy-model", "--store", "qdrant", EMBCLUSTER_QDRANT_PATH=str(tmp_path / "q" / "qdrant"))
    try:
        assert list(q.client.list_clusters("tx").clusters) == before
        assert q.client.classify("tx", [[8.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 30.0]]) == labels
        assert q.client.get_point("tx", id="t5").metadata["i"] == 5
    finally:
        q.stop()
