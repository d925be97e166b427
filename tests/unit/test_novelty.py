"""Novelty (issue 16): drift triggers on distance KS and anomaly rates, runs that add clusters, candidate clusters.

The synthetic scene: three well-separated groups fitted at k = 3, then two new groups arrive
(or the same number of points from the old groups). The service tests use the real scheduler
thread with a short tick and wait on ``AutoRunner.wait_ticks``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embcluster.cluster.fit import calibrate
from embcluster.cluster.kmeans import fit_kmeans
from embcluster.cluster.novelty import far_mask, find_groups, grow
from embcluster.errors import InvalidArgument
from embcluster.pipeline import EmbclusterService
from embcluster.schema import (
    CollectionSettings,
    CollectionSpec,
    DriftReport,
    ItemInput,
    RunRequest,
    RunState,
    Schedule,
)
from embcluster.scheduler import novelty_figure, scheduled_k

DIM = 16
NAME = "novel"
CENTERS = np.random.default_rng(11).normal(size=(5, DIM))
CENTERS *= 12.0 / np.linalg.norm(CENTERS, axis=1, keepdims=True)  # five groups, each far from the others
OLD, NEW = [0, 1, 2], [3, 4]
SCHEDULE = Schedule(drift_ks=0.3, anomaly_ratio=5.0, k=3, k_max=6)


def points(groups: list[int], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points drawn evenly from ``groups`` (unit spread), and their group of each."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(groups)[np.arange(n) % len(groups)]
    return (CENTERS[labels] + rng.normal(size=(n, DIM))).astype(np.float32), labels


def stored(svc: EmbclusterService) -> dict[str, tuple[str, int]]:
    """point id -> (item id, cluster id) of every point."""
    out: dict[str, tuple[str, int]] = {}
    token = ""
    while True:
        page, token = svc.list_points(NAME, page_size=1000, page_token=token)
        out.update({p.point_id: (p.external_id, p.assignment.cluster_id if p.assignment else -1) for p in page})
        if not token:
            return out


def ingest(svc: EmbclusterService, x: np.ndarray, prefix: str, batch: int = 500) -> None:
    for s in range(0, len(x), batch):
        svc.ingest(NAME, [ItemInput(id=f"{prefix}-{s + i}", vector=v.tolist()) for i, v in enumerate(x[s:s + batch])])


# ---------------------------------------------------------------------------------------------- pure


def fitted() -> tuple[np.ndarray, object]:
    x, _ = points(OLD, 1500, 0)
    fit = fit_kmeans(x, 3, metric="euclid", seed=0)
    model, _ = calibrate(x, fit.centroids, version=1, metric="euclid", settings=CollectionSettings.defaults(),
                         prev=None, next_cluster_id=1, seed=0, n_init=3, sample_size=len(x), backend=fit.backend,
                         inertia=fit.inertia)
    return x, model


@pytest.mark.parametrize("k_max", [4, 5, 8])
def test_grow_adds_one_cluster_per_new_group_and_never_splits_old_ones(k_max: int) -> None:
    old_x, model = fitted()
    quantiles = model.metrics["drift_fit"]["distance_quantiles"]
    for groups, expected in ((NEW, min(2, k_max - 3)), (OLD, 0)):
        new_x, _ = points(groups, 1000, 1)
        sample = np.concatenate([old_x, new_x])
        labels = model.assign(sample)
        far = far_mask(labels.cluster_distance, labels.is_anomaly, quantiles)
        growth = grow(sample, model.centroids, far, metric="euclid", min_size=10, max_new=k_max - 3, seed=0)
        assert growth.added == expected, (groups, growth.to_json())
        assert len(growth.centroids) == 3 + expected
        again = grow(sample, model.centroids, far, metric="euclid", min_size=10, max_new=k_max - 3, seed=0)
        np.testing.assert_array_equal(again.centroids, growth.centroids)  # seeded: reproducible
    # Each new centroid sits on one new group.
    new_x, _ = points(NEW, 1000, 1)
    sample = np.concatenate([old_x, new_x])
    labels = model.assign(sample)
    growth = grow(sample, model.centroids, far_mask(labels.cluster_distance, labels.is_anomaly, quantiles),
                  metric="euclid", min_size=10, max_new=3, seed=0)
    nearest_center = np.linalg.norm(growth.centroids[3:, None, :] - CENTERS[None, :, :], axis=2).argmin(axis=1)
    assert sorted(nearest_center.tolist()) == NEW


def test_find_groups_ignores_scattered_far_points() -> None:
    _, model = fitted()
    rng = np.random.default_rng(3)
    scattered = (rng.normal(size=(300, DIM)) * 12.0).astype(np.float32)  # noise all over the space
    groups, _ = find_groups(scattered, model.centroids, metric="euclid", min_size=10, max_groups=8, seed=0)
    assert groups == []
    new_x, labels = points(NEW, 300, 2)
    groups, votes = find_groups(new_x, model.centroids, metric="euclid", min_size=10, max_groups=8, seed=0)
    assert sorted(g.size for g in groups) == [150, 150]
    assert all(len(set(labels[g.members].tolist())) == 1 for g in groups)  # each group is one generating group
    assert [v["k"] for v in votes if v["chosen"]] == [2]  # the vote's table over 2 .. 8 groups


def report(n: int, ks: float | None, rate: float | None, fit_rate: float = 0.01) -> DriftReport:
    return DriftReport(collection=NAME, model_version=1, previous_version=0, recent_points=n, psi_shares=0.0,
                       psi_versions=None, centroid_shift_mean=None, centroid_shift_max=None,
                       distance_p50_fit=None, distance_p90_fit=None, distance_p50_recent=None,
                       distance_p90_recent=None, distance_ks=ks, anomaly_rate_fit=fit_rate,
                       anomaly_rate_recent=rate)


def test_novelty_figures_fire_above_their_limit_and_the_noise_floor() -> None:
    ks = Schedule(drift_ks=0.1)
    assert novelty_figure(ks, report(1329, 0.78, None), 200) == (
        "distance KS 0.780 > 0.1 over 1329 recent points (noise floor 0.055)")
    assert novelty_figure(ks, report(199, 0.78, None), 200) is None  # fewer than drift_min_points
    assert novelty_figure(ks, report(100, 0.15, None), 50) is None  # 0.15 < 1.63 / sqrt(100) + 0.01
    assert novelty_figure(ks, report(10_000, 0.09, None), 50) is None  # under the limit
    ratio = Schedule(anomaly_ratio=3.0)
    assert novelty_figure(ratio, report(1329, None, 0.47, 0.008), 200).startswith(
        "anomaly rate 47.00% > 3 x the fit's 0.80%")
    assert novelty_figure(ratio, report(100_000, None, 0.004, 0.001), 200) is None  # 0.1% -> 0.4%: under the floor
    # 1% -> 2.5% over 300 points: above 2 x and the 1-point floor, but 3 standard errors are 1.7 points
    assert novelty_figure(Schedule(anomaly_ratio=2.0), report(300, None, 0.025, 0.01), 200) is None
    assert novelty_figure(Schedule(anomaly_ratio=2.0), report(3000, None, 0.025, 0.01), 200) is not None
    share = Schedule(anomaly_rate=0.1)
    assert novelty_figure(share, report(1000, None, 0.12, 0.01), 200).startswith("anomaly rate 12.00% > 10.00%")
    assert novelty_figure(share, report(1000, None, 0.08, 0.01), 200) is None
    assert novelty_figure(Schedule(drift_psi=0.2), report(1000, 0.9, 0.9), 200) is None  # not asked for


def test_scheduled_runs_keep_the_clusters_a_drift_run_added() -> None:
    assert scheduled_k(Schedule(k=3, k_max=6), 8, 5) == 5
    assert scheduled_k(Schedule(k=3, k_max=6), 8, 9) == 6
    assert scheduled_k(Schedule(k=3), 8, 5) == 3  # no k_max: k is fixed
    assert scheduled_k(Schedule(k_max=12), 8, 0) == 8


@pytest.mark.parametrize("schedule, message", [
    (Schedule(drift_ks=0.0), "drift_ks must be in (0, 1), got 0.0"),
    (Schedule(drift_ks=1.5), "got 1.5"),
    (Schedule(anomaly_ratio=1.0), "anomaly_ratio must be in (1, 1000]"),
    (Schedule(anomaly_ratio=float("nan")), "got nan"),
    (Schedule(anomaly_rate=0.0), "anomaly_rate must be in (0, 1)"),
    (Schedule(anomaly_rate=2.0), "got 2.0"),
    (Schedule(drift_ks=0.3, k=5, k_max=5), "k_max must be in (5, 10000]"),
    (Schedule(drift_ks=0.3, k_max=1), "got 1"),
    (Schedule(drift_ks=0.3, k_max=20_000), "got 20000"),
])
def test_invalid_novelty_schedules_are_invalid_arguments(tmp_path: Path, make_service, schedule: Schedule,
                                                         message: str) -> None:
    svc = make_service(tmp_path)
    with pytest.raises(InvalidArgument) as e:
        svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM,
                                             settings=CollectionSettings(schedule=schedule)))
    assert message in e.value.message


def test_k_max_is_checked_against_default_k_when_the_schedule_has_no_k(tmp_path: Path, make_service) -> None:
    svc = make_service(tmp_path)
    with pytest.raises(InvalidArgument) as e:  # runs start at default_k = 8: k_max 5 could never grow anything
        svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM,
                                             settings=CollectionSettings(schedule=Schedule(drift_ks=0.3, k_max=5))))
    assert "default_k=8" in e.value.message and "k_max=5" in e.value.message
    svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM,
                                         settings=CollectionSettings(default_k=3, schedule=Schedule(drift_ks=0.3,
                                                                                                    k_max=5))))
    with pytest.raises(InvalidArgument, match="default_k=6"):  # an update that lifts default_k past k_max
        svc.update_collection(NAME, CollectionSettings(default_k=6))
    assert svc.get_collection(NAME).settings.default_k == 3  # refused as a whole


# ---------------------------------------------------------------------------------------------- service


@pytest.fixture
def served(tmp_path: Path, make_service) -> EmbclusterService:
    """Three groups fitted at k = 3 (no schedule yet; the scheduler ticks every 50 ms)."""
    svc = make_service(tmp_path, schedule_tick_s=0.05, drift_min_points=200)
    svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM, metric="euclid",
                                         settings=CollectionSettings(default_k=3)))
    ingest(svc, points(OLD, 1800, 0)[0], "old")
    run = svc.start_clustering(NAME, RunRequest(k=3, seed=0))
    svc.runs.wait(NAME, timeout=120)
    assert svc.get_run(NAME, run.run_id).state is RunState.SUCCEEDED
    return svc


def test_two_new_groups_fire_the_novelty_trigger_and_the_run_adds_two_clusters(served: EmbclusterService) -> None:
    svc = served
    old_ids = sorted(svc.get_model(NAME, 0).cluster_ids)
    svc.update_collection(NAME, CollectionSettings(schedule=SCHEDULE))
    ingest(svc, points(NEW, 1000, 1)[0], "new")
    for _ in range(100):  # a few ticks; the run itself takes longer on a busy machine
        if svc.get_collection(NAME).served_model_version == 2:
            break
        assert svc.autorun.wait_ticks(5)
    svc.runs.wait(NAME, timeout=120)
    run = svc.runs.last(NAME)
    assert run is not None and run.state is RunState.SUCCEEDED and run.trigger == "drift"
    assert run.trigger_detail.startswith("distance KS") and "recent points" in run.trigger_detail
    model = svc.get_model(NAME, 0)
    assert model.version == 2 and model.k == 5 and len(model.cluster_ids) == 5
    matching = model.metrics["matching"]
    assert matching["persisted"] == old_ids
    assert len(matching["appeared"]) == 2 and not matching["vanished"]
    assert model.metrics["novelty"]["added"] == 2
    # The life-cycle events of the run: two BIRTHs (the new ids), nothing else about the old ids.
    births = sorted(e.cluster_id for e in model.events if e.kind == "BIRTH")
    assert births == sorted(matching["appeared"])
    assert not [e for e in model.events if e.cluster_id in old_ids and e.kind in ("DEATH", "SPLIT", "MERGE")]
    # The new points are labelled with the new ids, one id per generating group.
    labels = dict(stored(svc).values())
    _, groups = points(NEW, 1000, 1)
    for g in NEW:
        ids = {labels[f"new-{i}"] for i in np.flatnonzero(groups == g)}
        assert len(ids) == 1 and ids.pop() in matching["appeared"]


def test_points_from_the_old_groups_fire_nothing(served: EmbclusterService) -> None:
    svc = served
    svc.update_collection(NAME, CollectionSettings(schedule=SCHEDULE))
    ingest(svc, points(OLD, 1000, 1)[0], "more")
    assert svc.autorun.wait_ticks(20)
    assert svc.get_collection(NAME).served_model_version == 1
    drift = svc.drift(NAME, candidates=True)
    assert drift.recent_points == 1000 and drift.distance_ks < 0.1 and drift.candidates == []


def test_candidates_report_the_new_groups_before_any_run(served: EmbclusterService) -> None:
    svc = served
    new_x, groups = points(NEW, 600, 2)
    ingest(svc, new_x, "new")
    assert svc.drift(NAME).candidates == []  # only on request (GetDrift asks)
    drift = svc.drift(NAME, candidates=True)
    assert svc.get_collection(NAME).served_model_version == 1  # no schedule: nothing ran
    assert sorted(c.size for c in drift.candidates) == [300, 300]
    items = stored(svc)
    for c in drift.candidates:
        assert 1 <= len(c.nearest_ids) <= 5 and c.mean_distance > 0 and 0 < c.separation <= 0.8
        members = {groups[int(items[i][0].split("-")[1])] for i in c.nearest_ids}
        assert len(members) == 1  # the nearest members come from one generating group
    assert svc.drift(NAME, candidates=True).candidates == drift.candidates  # cached until points change
