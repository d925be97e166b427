"""``embcluster export`` / ``import`` offline: Qdrant Edge -> qdrant-client local mode on disk, and back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embcluster.cli import main
from embcluster.config import Settings
from embcluster.pipeline import EmbclusterService
from embcluster.schema import CollectionSpec, ItemInput, RunRequest


def test_offline_move_from_edge_to_qdrant_local_mode_and_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edge_dir, q_dir = tmp_path / "edge", tmp_path / "q"
    svc = EmbclusterService(Settings(data_dir=edge_dir))
    svc.open()
    svc.create_collection(CollectionSpec(name="ev", input_kind="vector", vector_dim=4, metric="euclid"))
    x = np.random.default_rng(0).normal(size=(120, 4)) + np.repeat([[0, 0, 0, 0], [9, 9, 0, 0]], 60, axis=0)
    svc.ingest("ev", [ItemInput(id=f"t{i}", vector=v.tolist(), metadata={"i": i}) for i, v in enumerate(x)])
    svc.start_clustering("ev", RunRequest(k=2, seed=0))
    svc.wait_idle()
    expected = svc.classify("ev", [ItemInput(vector=[9.0, 9.0, 0.0, 0.0])])
    svc.close()

    snap = tmp_path / "ev.tar"
    assert main(["export", "ev", str(snap), "--data-dir", str(edge_dir)]) == 0
    assert "120 points, 1 model versions (serving v1)" in capsys.readouterr().out
    qargs = ["--data-dir", str(q_dir), "--store", "qdrant", "--qdrant-path", str(q_dir / "qdrant")]
    assert main(["import", str(snap), "--as", "moved", *qargs]) == 0
    assert main(["import", str(snap), "--as", "moved", *qargs]) == 1  # exists
    assert "ALREADY_EXISTS" in capsys.readouterr().err
    assert main(["import", str(snap), "--as", "x", "--store", "qdrant"]) == 2  # backend flags need --data-dir

    q = EmbclusterService(Settings(data_dir=q_dir, store="qdrant", qdrant_path=str(q_dir / "qdrant")))
    q.open()
    try:
        info = q.get_collection("moved")
        assert (info.point_count, info.served_model_version) == (120, 1)
        assert q.classify("moved", [ItemInput(vector=[9.0, 9.0, 0.0, 0.0])]) == expected
        assert q.get_point("moved", id="t7").metadata == {"i": 7}
    finally:
        q.close()
    assert main(["export", "moved", str(tmp_path / "back.tar"), *qargs]) == 0
    assert main(["import", str(tmp_path / "back.tar"), "--data-dir", str(edge_dir)]) == 0  # as "moved", into Edge
    assert "'moved' -> 'moved': 120 points" in capsys.readouterr().out
