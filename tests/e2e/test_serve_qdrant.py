"""`embcluster serve --store qdrant`: fails fast and clearly when the server is unreachable."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens there


def test_unreachable_qdrant_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    port = _closed_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EMBCLUSTER_QDRANT_GRPC_PORT": str(port),
           "EMBCLUSTER_QDRANT_TIMEOUT_S": "5"}
    proc = subprocess.run(
        [sys.executable, "-m", "embcluster.cli", "serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
         "--lazy-model", "--store", "qdrant", "--qdrant-url", url],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("embcluster: cannot reach the Qdrant server at " + url), err


def test_qdrant_store_without_url_or_path_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("EMBCLUSTER_QDRANT_URL", None)
    env.pop("EMBCLUSTER_QDRANT_PATH", None)
    proc = subprocess.run(
        [sys.executable, "-m", "embcluster.cli", "serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
         "--lazy-model", "--store", "qdrant"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "qdrant_url" in proc.stderr and "qdrant_path" in proc.stderr


def test_serve_over_qdrant_local_mode_attaches_and_clusters(tmp_path: Path) -> None:
    """A real `serve --store qdrant` process (qdrant-client local mode on disk): attach a foreign
    collection, cluster it over gRPC, stop; its other payload keys are unchanged on disk."""
    import json

    import numpy as np
    from qdrant_client import QdrantClient
    from qdrant_client import models as qm

    from .test_serve import Server

    qpath = tmp_path / "qdrant"
    rng = np.random.default_rng(0)
    # not unit vectors: reloaded from disk, local mode returns cosine vectors as given (the store normalises)
    x = np.repeat(rng.normal(size=(3, 5)) * 5, 20, axis=0) + rng.normal(scale=0.1, size=(60, 5))
    q = QdrantClient(path=str(qpath))
    q.create_collection("mine", vectors_config=qm.VectorParams(size=5, distance=qm.Distance.COSINE))
    q.upsert("mine", points=[qm.PointStruct(id=i, vector=x[i].tolist(), payload={"n": i, "tags": ["é", {"a": i}]})
                             for i in range(60)], wait=True)
    before = {r.id: json.dumps(r.payload, sort_keys=True) for r in q.scroll("mine", limit=100)[0]}
    q.close()  # the server process takes the directory's lock

    srv = Server(tmp_path / "data", "--lazy-model", "--store", "qdrant", EMBCLUSTER_QDRANT_PATH=str(qpath))
    try:
        coll = srv.client.attach_collection("m", "mine")
        assert coll.attached.qdrant_collection == "mine" and coll.point_count == 60
        run = srv.client.start_clustering("m", k=3, seed=0)
        done = srv.client.wait_for_run("m", run.run_id, timeout=120)
        assert done.error == "", done.error
        assert sorted(c.size for c in srv.client.list_clusters("m").clusters) == [20, 20, 20]
        assert srv.client.get_point("m", point_id="7").metadata["n"] == 7
    finally:
        srv.stop()
    q = QdrantClient(path=str(qpath))
    try:
        for r in q.scroll("mine", limit=100)[0]:
            assert {"cluster_id", "cluster_distance", "anomaly_score", "is_anomaly", "model_version"} <= set(r.payload)
            rest = {k: v for k, v in r.payload.items() if k not in ("cluster_id", "cluster_distance", "anomaly_score",
                                                                   "is_anomaly", "model_version")}
            assert json.dumps(rest, sort_keys=True) == before[r.id]
    finally:
        q.close()
