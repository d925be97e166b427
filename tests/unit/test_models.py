"""Unit tests of versioned cluster models (embcluster.models) and anomaly scoring/thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embcluster.anomaly import QuantileThreshold, score
from embcluster.models import SCHEMA_VERSION, ClusterModel, ModelStore


def make_model(version: int = 3, metric: str = "euclid") -> ClusterModel:
    centroids = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [5, 5, 5]], dtype=np.float32)
    return ClusterModel(
        version=version, metric=metric, centroids=centroids,  # type: ignore[arg-type]
        cluster_ids=np.array([4, 0, 9, 2], dtype=np.int64),
        populated=np.array([True, True, True, False]),
        radius=np.array([0.5, 1.0, 2.0, 0.0]),
        large=np.array([True, True, True, False]), scorer="distance", threshold_mode="contamination",
        thresholds=np.full(4, 1.5),
        params={"k": 4, "seed": 7, "contamination": 0.01},
        metrics={"inertia_sample": 12.5, "sizes_sample": [10, 20, 30, 1]},
        created_at="2024-01-01T00:00:00.000+00:00",
    )


def assert_models_equal(a: ClusterModel, b: ClusterModel) -> None:
    assert a.version == b.version and a.metric == b.metric and a.scorer == b.scorer
    np.testing.assert_array_equal(a.thresholds, b.thresholds)
    np.testing.assert_array_equal(a.large, b.large)
    assert a.threshold_mode == b.threshold_mode and a.created_at == b.created_at
    assert a.params == b.params and a.metrics == b.metrics
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert b.centroids.dtype == np.float32
    np.testing.assert_array_equal(a.cluster_ids, b.cluster_ids)
    assert b.cluster_ids.dtype == np.int64
    np.testing.assert_array_equal(a.populated, b.populated)
    assert b.populated.dtype == bool
    np.testing.assert_array_equal(a.radius, b.radius)


def test_save_load_round_trip(tmp_path: Path) -> None:
    ms = ModelStore(tmp_path / "models")
    model = make_model()
    path = ms.save(model)
    assert path == tmp_path / "models" / "v3"
    loaded = ms.load(3)
    assert_models_equal(model, loaded)
    assert loaded.k == 4


def test_saved_files_are_npy_and_json_only(tmp_path: Path) -> None:
    ms = ModelStore(tmp_path / "models")
    ms.save(make_model(version=1))
    ms.save(make_model(version=2))
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["v1", "v2"]  # no temp dirs left
    assert sorted(p.name for p in (tmp_path / "models" / "v2").iterdir()) == ["centroids.npy", "model.json"]
    meta = json.loads((tmp_path / "models" / "v2" / "model.json").read_text())
    assert meta["schema_version"] == 1  # no ensemble components: readable by servers before them
    assert (meta["k"], meta["dim"]) == (4, 3)
    arr = np.load(tmp_path / "models" / "v2" / "centroids.npy", allow_pickle=False)
    assert arr.dtype == np.float32 and arr.shape == (4, 3)
    np.testing.assert_array_equal(arr, make_model().centroids)


def test_versions_listing(tmp_path: Path) -> None:
    ms = ModelStore(tmp_path / "models")
    assert ms.versions() == []
    for v in (10, 2, 1):
        ms.save(make_model(version=v))
    (tmp_path / "models" / ".v11.tmp").mkdir()  # a crashed save is not a version
    assert ms.versions() == [1, 2, 10]


def test_resave_replaces(tmp_path: Path) -> None:
    ms = ModelStore(tmp_path / "models")
    m = make_model()
    ms.save(m)
    m.metrics["points_labelled"] = 123
    ms.save(m)
    assert ms.load(3).metrics["points_labelled"] == 123


def test_load_refuses_other_schema_version(tmp_path: Path) -> None:
    ms = ModelStore(tmp_path / "models")
    path = ms.save(make_model())
    meta = json.loads((path / "model.json").read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="schema_version"):
        ms.load(3)
    del meta["schema_version"]
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="schema_version"):
        ms.load(3)


def test_load_refuses_centroid_shape_mismatch(tmp_path: Path) -> None:
    ms = ModelStore(tmp_path / "models")
    path = ms.save(make_model())
    np.save(path / "centroids.npy", np.zeros((3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        ms.load(3)


def test_load_refuses_pickled_centroids(tmp_path: Path) -> None:
    ms = ModelStore(tmp_path / "models")
    path = ms.save(make_model())
    np.save(path / "centroids.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        ms.load(3)


# --------------------------------------------------------------------------- assign


def test_assign_never_uses_unpopulated_clusters() -> None:
    model = make_model()
    rng = np.random.default_rng(0)
    # points right on the unpopulated centroid [5,5,5] and around every centroid
    x = np.concatenate([
        model.centroids[3] + rng.normal(scale=0.1, size=(50, 3)),
        model.centroids[:3].repeat(20, axis=0) + rng.normal(scale=0.1, size=(60, 3)),
    ]).astype(np.float32)
    a = model.assign(x)
    assert 2 not in set(a.cluster_id.tolist())  # id of the unpopulated row
    assert set(a.cluster_id.tolist()) <= {4, 0, 9}
    # nearest populated centroid, by brute force
    pop = model.centroids[:3].astype(np.float64)
    d = np.sqrt(((x[:, None, :] - pop[None]) ** 2).sum(-1))
    np.testing.assert_array_equal(a.cluster_id, model.cluster_ids[:3][d.argmin(1)])
    np.testing.assert_allclose(a.cluster_distance, d.min(1), rtol=1e-4, atol=1e-4)
    assert a.model_version == 3


def test_is_anomaly_is_score_above_threshold() -> None:
    model = make_model()
    rng = np.random.default_rng(1)
    x = (rng.normal(scale=1.2, size=(400, 3))).astype(np.float32)
    a = model.assign(x)
    np.testing.assert_array_equal(a.is_anomaly, a.anomaly_score > 1.5)
    assert a.is_anomaly.any() and not a.is_anomaly.all()
    np.testing.assert_array_equal(a.anomaly_score, a.cluster_distance)  # "distance" scorer


def test_payload_has_the_five_fields_with_plain_types() -> None:
    a = make_model().assign(np.array([[0.2, 0, 0], [30, 30, 30]], dtype=np.float32))
    p0, p1 = a.payload(0), a.payload(1)
    assert set(p0) == {"cluster_id", "cluster_distance", "anomaly_score", "is_anomaly", "model_version"}
    assert type(p0["cluster_id"]) is int and type(p0["is_anomaly"]) is bool
    assert type(p0["cluster_distance"]) is float and type(p0["model_version"]) is int
    assert p0["cluster_id"] == 4 and p0["is_anomaly"] is False
    assert p1["is_anomaly"] is True
    json.dumps([p0, p1])


def test_normalized_scorer_divides_by_radius() -> None:
    model = make_model()
    model.scorer = "normalized"
    x = np.array([[1.0, 0, 0], [10, 2, 0]], dtype=np.float32)
    a = model.assign(x)
    np.testing.assert_allclose(a.anomaly_score, [1.0 / 0.5, 2.0 / 1.0], rtol=1e-5)


def test_unknown_scorer() -> None:
    with pytest.raises(ValueError, match="unknown anomaly scorer"):
        score("nope", np.zeros((2, 1)), np.zeros(2, dtype=int), np.ones(1), np.ones(1, dtype=bool))


def test_row_of() -> None:
    m = make_model()
    assert m.row_of(9) == 2 and m.row_of(4) == 0 and m.row_of(5) is None


def test_cosine_model_distance() -> None:
    c = np.eye(3, dtype=np.float32)
    m = ClusterModel(version=1, metric="cosine", centroids=c, cluster_ids=np.array([0, 1, 2]),
                     populated=np.ones(3, dtype=bool), radius=np.ones(3), large=np.ones(3, dtype=bool),
                     scorer="distance", threshold_mode="contamination", thresholds=np.full(3, 0.5))
    x = np.array([[1, 0, 0], [0, 0.6, 0.8]], dtype=np.float32)
    a = m.assign(x)
    assert a.cluster_id.tolist() == [0, 2]
    np.testing.assert_allclose(a.cluster_distance, [0.0, 0.2], atol=1e-6)


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize("contamination", [0.01, 0.05, 0.2])
def test_quantile_threshold_flags_contamination_share(contamination) -> None:
    scores = np.random.default_rng(2).exponential(size=5000)
    qt = QuantileThreshold(contamination)
    t = qt.calibrate(scores)
    share = qt.decide(scores, t).mean()
    assert share == pytest.approx(contamination, abs=0.5 / 100 + 1 / 5000)
    assert share <= contamination  # strictly above the "higher" quantile
    fresh = np.random.default_rng(3).exponential(size=20000)
    assert qt.decide(fresh, t).mean() == pytest.approx(contamination, rel=0.25)


def test_quantile_threshold_edge_cases() -> None:
    assert QuantileThreshold(0.1).calibrate(np.array([])) == float("inf")
    same = np.ones(100)
    t = QuantileThreshold(0.1).calibrate(same)
    assert not QuantileThreshold.decide(same, t).any()  # ties are not anomalies


def test_cblof_scores_small_clusters_against_the_large_ones() -> None:
    """A tight rare cluster is close to its own centroid but far from the bulk: cblof flags it."""
    model = make_model()
    model.populated[:] = True
    model.large = np.array([True, True, False, False])  # clusters 9 and 2 are rare
    model.scorer = "cblof"
    x = np.array([[0.25, 0, 0], [0, 10.1, 0]], dtype=np.float32)  # bulk member; member of rare cluster 9
    a = model.assign(x)
    assert a.cluster_id.tolist() == [4, 9]  # the label is still the nearest populated cluster
    np.testing.assert_allclose(a.anomaly_score[0], 0.25, rtol=1e-5)  # its own (large) centroid
    np.testing.assert_allclose(a.anomaly_score[1], 10.1, rtol=1e-4)  # vs the nearest large centroid (row 0)
    model.scorer = "distance"
    assert model.assign(x).anomaly_score[1] < 0.2  # plain distance calls it normal


def test_large_clusters_are_the_non_rare_ones() -> None:
    from embcluster.anomaly import large_clusters

    # average size 25: rare below 0.2 x 25 = 5
    assert large_clusters(np.array([50, 30, 16, 4])).tolist() == [True, True, True, False]
    assert large_clusters(np.array([500, 450, 40, 10])).tolist() == [True, True, False, False]  # < 50
    assert large_clusters(np.array([0, 0])).tolist() == [True, True]


def test_threshold_modes() -> None:
    from embcluster.anomaly import calibrate_thresholds, decide

    rng = np.random.default_rng(0)
    rows = np.repeat([0, 1], 500)
    scores = np.concatenate([rng.random(500), 10 + rng.random(500)])  # cluster 1 scores 10x higher
    glob = calibrate_thresholds("contamination", scores, rows, 2, contamination=0.1, absolute=None)
    assert glob[0] == glob[1] and decide(scores, rows, glob)[:500].sum() == 0
    per = calibrate_thresholds("cluster_quantile", scores, rows, 2, contamination=0.1, absolute=None)
    flags = decide(scores, rows, per)
    assert 40 <= flags[:500].sum() <= 55 and 40 <= flags[500:].sum() <= 55
    fixed = calibrate_thresholds("absolute", scores, rows, 2, contamination=0.1, absolute=10.5)
    assert fixed.tolist() == [10.5, 10.5]
    with pytest.raises(ValueError):
        calibrate_thresholds("absolute", scores, rows, 2, contamination=0.1, absolute=None)
