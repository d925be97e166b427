"""Drift statistics on hand-computable inputs (embcluster.drift), no service."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embcluster.drift import (
    PSI_EPSILON,
    RecentWindow,
    centroid_shift,
    fit_summary,
    ks_against_sketch,
    ks_statistic,
    psi,
    psi_by_id,
    quantile_sketch,
    recent_drift,
    version_drift,
)
from embcluster.models import ClusterModel


def test_psi_by_hand() -> None:
    assert psi([10, 10], [5, 5]) == 0.0  # same shares, any totals
    # p = (0.5, 0.5), q = (0.9, 0.1): 0.4 ln 1.8 + (-0.4) ln 0.2
    assert psi([50, 50], [90, 10]) == pytest.approx(0.4 * math.log(1.8) - 0.4 * math.log(0.2))
    # symmetric in p and q
    assert psi([90, 10], [50, 50]) == pytest.approx(psi([50, 50], [90, 10]))
    # an empty bin is clipped to epsilon: finite, and large
    empty = psi([1, 0], [0, 1])
    expected = 2 * (1 - PSI_EPSILON) * math.log(1 / PSI_EPSILON)
    assert empty == pytest.approx(expected) and math.isfinite(empty)
    with pytest.raises(ValueError, match="one length"):
        psi([1, 2], [1, 2, 3])


def test_psi_by_id_matches_clusters_by_id() -> None:
    # id 7 vanished and id 9 appeared: compared over the union {3, 7, 9}
    got = psi_by_id({3: 50, 7: 50}, {3: 50, 9: 50})
    assert got == pytest.approx(psi([50, 50, 0], [50, 0, 50]))
    assert psi_by_id({1: 2, 2: 3}, {2: 30, 1: 20}) == pytest.approx(0.0)


def test_ks_statistic_by_hand() -> None:
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_statistic([1, 2], [3, 4]) == 1.0
    # F_a jumps at 1,2,3,4 by 1/4; F_b at 3,4,5,6: at x=2, F_a = 0.5, F_b = 0 ; at 4: 1 vs 0.5
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5
    assert ks_statistic([], [1.0]) == 0.0


def test_ks_against_a_quantile_sketch_approximates_the_exact_statistic() -> None:
    rng = np.random.default_rng(0)
    fit = rng.normal(size=20_000)
    same = rng.normal(size=5_000)
    shifted = rng.normal(loc=1.0, size=5_000)
    sketch = quantile_sketch(fit)
    assert len(sketch) == 101 and sketch == sorted(sketch)
    for cur in (same, shifted):
        assert ks_against_sketch(sketch, cur) == pytest.approx(ks_statistic(fit, cur), abs=0.02)
    assert ks_against_sketch(sketch, same) < 0.05 < 0.3 < ks_against_sketch(sketch, shifted)
    # entirely above the fit range: every fit quantile is below every recent value
    assert ks_against_sketch(sketch, fit.max() + 1 + rng.random(100)) == pytest.approx(1.0)


def test_ks_against_a_sketch_of_a_point_mass() -> None:
    sketch = quantile_sketch(np.zeros(50))
    assert ks_against_sketch(sketch, np.zeros(10)) == pytest.approx(0.0)
    assert ks_against_sketch(sketch, np.ones(10)) == pytest.approx(1.0)


def test_centroid_shift_in_each_metric() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[0.0, 1.0], [0.0, 5.0]])
    assert centroid_shift(a, b, "cosine") == pytest.approx([1.0, 0.0])  # orthogonal; same direction
    assert centroid_shift(a, b, "euclid") == pytest.approx([math.sqrt(2), 3.0])
    with pytest.raises(ValueError):
        centroid_shift(a, b[:1], "euclid")


def test_recent_window_keeps_the_newest_and_resets_on_a_new_version() -> None:
    w = RecentWindow(5)
    w.add(1, np.array([0, 1, 2]), np.array([0.1, 0.2, 0.3]), np.array([False, False, True]))
    w.add(1, np.array([3, 4, 5, 6]), np.full(4, 0.5), np.zeros(4, dtype=bool))
    snap = w.snapshot()
    assert snap.count == 5 and sorted(snap.rows.tolist()) == [2, 3, 4, 5, 6]
    w.add(1, np.arange(100, 112), np.zeros(12), np.zeros(12, dtype=bool))  # a batch larger than the window
    assert sorted(w.snapshot().rows.tolist()) == list(range(107, 112))
    w.add(2, np.array([9]), np.array([1.0]), np.array([True]))  # labels of another version: start over
    snap = w.snapshot()
    assert (snap.model_version, snap.count, snap.rows.tolist()) == (2, 1, [9])
    w.reset(3)
    assert w.snapshot().count == 0 and w.model_version == 3


def _model(version: int, centroids: np.ndarray, ids: list[int], metrics: dict) -> ClusterModel:
    k = len(centroids)
    return ClusterModel(version=version, metric="euclid", centroids=centroids.astype(np.float32),
                        cluster_ids=np.asarray(ids), populated=np.ones(k, bool), radius=np.ones(k),
                        large=np.ones(k, bool), scorer="distance", threshold_mode="contamination",
                        thresholds=np.full(k, 2.0), params={"previous_version": version - 1}, metrics=metrics)


def test_version_and_recent_drift_of_models() -> None:
    prev = _model(1, np.array([[0.0, 0.0], [10.0, 0.0]]), [0, 1], {"sizes_full": [50, 50]})
    rows = np.array([0] * 60 + [1] * 40)
    dist = np.linspace(0.0, 1.0, 100)
    cur = _model(2, np.array([[10.0, 3.0], [0.0, 4.0]]), [1, 0], {
        "sizes_full": [20, 80],  # id 1: 20, id 0: 80
        "drift_fit": fit_summary(rows, dist, dist > 0.9, 2),
    })
    v = version_drift(cur, prev)
    assert v["psi_versions"] == pytest.approx(psi([50, 50], [80, 20]))
    assert (v["centroid_shift_mean"], v["centroid_shift_max"]) == (pytest.approx(3.5), pytest.approx(4.0))
    assert version_drift(cur, None) == {"psi_versions": None, "centroid_shift_mean": None, "centroid_shift_max": None}

    w = RecentWindow(1000)
    empty = recent_drift(cur, w.snapshot())
    assert empty["psi_shares"] is None and empty["distance_p50_fit"] == pytest.approx(0.5)
    assert empty["anomaly_rate_fit"] == pytest.approx(0.1)  # 10 of 100 above 0.9
    w.add(2, np.array([1] * 100), np.full(100, 2.0), np.ones(100, dtype=bool))  # all in row 1, all far
    r = recent_drift(cur, w.snapshot())
    assert r["psi_shares"] == pytest.approx(psi([60, 40], [0, 100]))
    assert r["distance_ks"] == pytest.approx(1.0) and r["distance_p90_recent"] == pytest.approx(2.0)
    assert r["anomaly_rate_recent"] == 1.0
    w.add(3, np.array([0]), np.array([0.0]), np.array([False]))  # another version's labels: not counted
    assert recent_drift(cur, w.snapshot())["psi_shares"] is None
