"""Novelty over gRPC (issue 16): the new schedule fields, a drift run that adds clusters with its
trigger_detail, GetDrift's candidate clusters (VECTOR and TEXT), the Pythonic client's models and
`embcluster drift NAME`."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import grpc
import numpy as np
import pytest
from embcluster_client import Client, schedule

from embcluster.cli import main
from embcluster.config import Settings
from embcluster.data import load_wordnet

from .conftest import Running

DIM = 12
CENTERS = np.random.default_rng(5).normal(size=(5, DIM))
CENTERS *= 10.0 / np.linalg.norm(CENTERS, axis=1, keepdims=True)


def _items(groups: list[int], n: int, seed: int, prefix: str) -> list[dict]:
    rng = np.random.default_rng(seed)
    labels = np.asarray(groups)[np.arange(n) % len(groups)]
    x = CENTERS[labels] + rng.normal(size=(n, DIM))
    return [{"id": f"{prefix}-{i}", "vector": v} for i, v in enumerate(x)]


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Running]:
    s = Running(Settings(data_dir=tmp_path / "data", port=0, schedule_tick_s=0.05, drift_min_points=200))
    yield s
    s.stop()


def test_novelty_schedule_round_trip_and_invalid_values(srv: Running) -> None:
    c = srv.client
    col = c.create_collection("n", input_kind="vector", vector_dim=DIM,
                              schedule=schedule(drift_ks=0.3, anomaly_ratio=5, anomaly_rate=0.2, k=3, k_max=6))
    got = col.settings.schedule
    assert (got.drift_ks, got.anomaly_ratio, got.anomaly_rate, got.k, got.k_max) == (0.3, 5.0, 0.2, 3, 6)
    model = Client(srv.server.address).get_collection("n").settings.schedule
    assert (model.drift_ks, model.anomaly_ratio, model.anomaly_rate, model.k_max) == (0.3, 5.0, 0.2, 6)
    for bad, message in ((schedule(drift_ks=1.2), "drift_ks must be in (0, 1), got 1.2"),
                         (schedule(anomaly_ratio=0.5), "anomaly_ratio must be in (1, 1000]"),
                         (schedule(anomaly_rate=1.5), "anomaly_rate must be in (0, 1)"),
                         (schedule(drift_ks=0.3, k=4, k_max=3), "k_max must be in (4, 10000], got 3")):
        with pytest.raises(grpc.RpcError) as e:
            c.update_collection("n", schedule=bad)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in e.value.details()


def test_cli_create_takes_the_novelty_schedule(srv: Running, capsys) -> None:
    addr = srv.server.address
    assert main(["create", "c", "--kind", "vector", "--dim", "4", "--drift-ks", "0.3", "--anomaly-ratio", "5",
                 "--anomaly-rate", "0.2", "--schedule-k", "3", "--k-max", "6", "--target", addr]) == 0
    got = srv.client.get_collection("c").settings.schedule
    assert (got.drift_ks, got.anomaly_ratio, got.anomaly_rate, got.k, got.k_max) == (0.3, 5.0, 0.2, 3, 6)
    capsys.readouterr()
    assert main(["info", "c", "--target", addr]) == 0
    assert ("schedule: when distance KS > 0.3; when the anomaly rate > 5 x the fit's; when the anomaly rate > "
            "20.00% (k=3 up to 6)") in capsys.readouterr().out
    assert main(["create", "d", "--kind", "vector", "--dim", "4", "--k-max", "6", "--target", addr]) != 0
    assert "--k-max need a trigger" in capsys.readouterr().err


def test_new_groups_show_as_candidates_then_a_drift_run_adds_them(srv: Running, capsys) -> None:
    c = srv.client
    addr = srv.server.address
    c.create_collection("n", input_kind="vector", vector_dim=DIM, distance="euclid")
    c.ingest("n", _items([0, 1, 2], 900, 0, "old"))
    c.cluster("n", k=3, seed=0)
    c.ingest("n", _items([3, 4], 600, 1, "new"))

    drift = Client(addr).get_drift("n")  # the Pythonic models
    assert drift.distance_ks is not None and drift.distance_ks > 0.3
    assert sorted(g.size for g in drift.candidates) == [300, 300]
    assert all(g.nearest_ids and g.separation <= 0.8 and g.keywords == [] for g in drift.candidates)
    assert main(["drift", "n", "--target", addr]) == 0
    out = capsys.readouterr().out
    assert out.count("a new group of 300 points is forming") == 2 and "distance KS" in out

    c.update_collection("n", schedule=schedule(drift_ks=0.3, k=3, k_max=5))
    for _ in range(200):
        if c.get_collection("n").served_model_version == 2:
            break
        assert srv.service.autorun.wait_ticks(5)
    srv.service.runs.wait("n", timeout=120)
    run = Client(addr).get_collection("n").last_run
    assert run is not None and run.trigger == "drift" and run.trigger_detail.startswith("distance KS")
    assert run.k == 5 and c.get_model("n").k == 5
    assert main(["info", "n", "--target", addr]) == 0
    out = capsys.readouterr().out
    assert "when distance KS > 0.3 (k=3 up to 5)" in out and "(drift: distance KS" in out


def test_text_candidates_have_keywords(running: Running) -> None:
    c = running.client
    by_cat: dict[str, list[dict[str, str]]] = {}
    for r in load_wordnet():
        by_cat.setdefault(r["category"], []).append(r)
    c.create_collection("docs", input_kind="text")
    for cat in ("verb.motion", "noun.plant", "noun.food"):
        c.ingest("docs", [{"id": r["id"], "text": r["text"]} for r in by_cat[cat]])
    c.cluster("docs", k=3, seed=0)
    new = [r for cat in ("noun.animal", "verb.communication") for r in by_cat[cat]]
    c.ingest("docs", [{"id": r["id"], "text": r["text"]} for r in new])
    drift = Client(running.server.address).get_drift("docs")
    assert drift.anomaly_rate_recent is not None and drift.anomaly_rate_recent > 0.2 > drift.anomaly_rate_fit
    assert drift.candidates, "the new categories' far glosses form at least one group"
    new_ids = {r["id"] for r in new}
    for g in drift.candidates:
        assert g.size >= 10 and 1 <= len(g.keywords) <= 5
        assert {c.get_point("docs", point_id=i).external_id for i in g.nearest_ids} <= new_ids
