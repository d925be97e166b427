"""The default anomaly scorer on a feed where anomalies form their own mid-sized behaviour.

A payments feed: 95% of events spread over several normal behaviours of different sizes, 5% a
tight behaviour of their own far from the bulk (a fraud ring). Sent as EVENT items through the
service core (schema, featurizer, run, stored payload), the way a user sends rows. The scorer
this replaced called no cluster rare once the group held more than 1/5 of an average cluster's
share, and scored the ring by its distance to its own centroid: AUROC far below 0.5 at k = 16.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embcluster.anomaly import ENSEMBLE_KS, fit_components, large_clusters
from embcluster.anomaly.explain import field_contributions
from embcluster.config import Settings
from embcluster.embed.events import EventSchema, FieldSpec
from embcluster.models import ClusterModel, ModelStore
from embcluster.pipeline import EmbclusterService
from embcluster.schema import CollectionSettings, CollectionSpec, ItemInput, RunRequest, RunState

FIELDS = ("amount", "hour", "items", "distance_km", "age_days", "tip")


def _auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUROC (ties count half)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for v in np.unique(scores):
        tie = scores == v
        ranks[tie] = ranks[tie].mean()
    pos = labels.sum()
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * (len(labels) - pos)))


def ring_feed(n: int = 3000, share: float = 0.05, seed: int = 7) -> tuple[list[dict[str, float]], np.ndarray]:
    """Events of six normal behaviours (uneven sizes, spreads) plus a tight ring far from all of them."""
    rng = np.random.default_rng(seed)
    d = len(FIELDS)
    n_ring = int(n * share)
    sizes = rng.multinomial(n - n_ring, rng.dirichlet(np.full(6, 2.0)))
    centers = rng.normal(size=(6, d)) * 3.0
    parts = [centers[i] + rng.normal(size=(s, d)) * rng.uniform(0.6, 1.4) for i, s in enumerate(sizes)]
    ring = centers.mean(axis=0) + 9.0 + rng.normal(size=(n_ring, d)) * 0.3
    x = np.vstack(parts + [ring]) * 10.0 + 100.0
    y = np.r_[np.zeros(n - n_ring, dtype=bool), np.ones(n_ring, dtype=bool)]
    perm = rng.permutation(n)
    return [dict(zip(FIELDS, map(float, row))) for row in x[perm]], y[perm]


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    events, labels = ring_feed()
    svc = EmbclusterService(Settings(data_dir=tmp_path_factory.mktemp("ring") / "data", featurizer_min_points=10**9))
    svc.open()
    schema = EventSchema(fields=[FieldSpec(f, "numeric") for f in FIELDS])
    svc.create_collection(CollectionSpec(name="ring", input_kind="event", metric="euclid", event_schema=schema,
                                         settings=CollectionSettings(contamination=0.05)))
    for s in range(0, len(events), 500):
        svc.ingest("ring", [ItemInput(id=f"e{i}", event=events[i]) for i in range(s, min(len(events), s + 500))])
    svc.wait_idle()
    run = svc.fit_featurizer("ring")  # fitted on every stored event, as FitFeaturizer does
    svc.wait_idle()
    assert svc.get_run("ring", run.run_id).state == RunState.SUCCEEDED
    yield svc, events, labels
    svc.close()


def _run(svc: EmbclusterService, k: int) -> None:
    run = svc.start_clustering("ring", RunRequest(k=k, seed=0))
    svc.wait_idle()
    info = svc.get_run("ring", run.run_id)
    assert info.state == RunState.SUCCEEDED, info.error


@pytest.mark.parametrize("k", [4, 8, 16])
def test_default_scorer_ranks_a_tight_ring_above_normal_events(feed, k: int) -> None:  # type: ignore[no-untyped-def]
    svc, events, labels = feed
    _run(svc, k)
    stored = np.array([svc.get_point("ring", id=f"e{i}").assignment.anomaly_score for i in range(len(events))])
    assert _auroc(stored, labels) >= 0.95
    model = svc.get_model("ring", 0)
    assert model.params["anomaly_scorer"] == "ensemble" and model.k == k
    summary = model.metrics["anomaly"]
    assert summary["scorer"] == "ensemble" and not summary["degenerate"] and summary["small_clusters"] >= 1
    assert [c["k"] for c in summary["components"]] == list(ENSEMBLE_KS)
    # Online (classify = ingest's path) and batch (the run's write-back) agree exactly.
    online = np.array([a.anomaly_score for a in svc.classify("ring", [ItemInput(event=e) for e in events[:300]])])
    np.testing.assert_allclose(online, stored[:300], rtol=0, atol=1e-9)


def test_explain_names_the_fields_that_push_a_point_away(feed) -> None:  # type: ignore[no-untyped-def]
    svc, events, labels = feed
    _run(svc, 8)
    normal = next(i for i in range(len(events)) if not labels[i])
    odd = dict(events[normal])
    odd["tip"] += 400.0  # forty standard deviations of one field, the others as a normal event
    svc.ingest("ring", [ItemInput(id="odd-tip", event=odd)])
    ex = svc.explain("ring", id="odd-tip", neighbours=0)
    assert ex.field_contributions[0].field == "tip" and ex.field_contributions[0].share > 0.8
    assert abs(sum(c.share for c in ex.field_contributions) - 1.0) < 1e-9
    assert {c.field for c in ex.field_contributions} == set(FIELDS)
    assert ex.anomaly_model["scorer"] == "ensemble" and ex.is_anomaly


def test_alpha_beta_split_keeps_a_mid_sized_group_small() -> None:
    # A 5% ring beside three bulk clusters: the old rule (below 1/5 of the average share) called it large.
    sizes = np.array([300, 300, 300, 50])
    assert large_clusters(sizes).tolist() == [True, True, True, False]
    # At a large k the bulk is cut into pieces smaller than the ring, and no size rule can tell:
    # why the default scorer fits its own k = 2 ... 32 instead of trusting the grouping's k.
    assert large_clusters(np.r_[np.full(31, 30), 50])[-1]
    assert large_clusters(np.array([100, 90, 10, 1])).tolist() == [True, True, False, False]  # 90 / 10 >= beta
    assert large_clusters(np.array([0, 0])).tolist() == [True, True]


def test_components_are_seeded_and_survive_a_save(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 5)).astype(np.float32)
    a = fit_components(x, metric="euclid", seed=3)
    b = fit_components(x, metric="euclid", seed=3)
    assert [c.k for c in a] == [2, 4, 8, 16, 32]  # 500 points support every k with 10 per cluster
    for ca, cb in zip(a, b):
        np.testing.assert_array_equal(ca.centroids, cb.centroids)
    assert [c.k for c in fit_components(x[:50], metric="euclid", seed=0)] == [2, 4]
    model = ClusterModel(
        version=1, metric="euclid", centroids=x[:3].copy(), cluster_ids=np.arange(3), populated=np.ones(3, bool),
        radius=np.ones(3), large=np.ones(3, bool), scorer="ensemble", threshold_mode="contamination",
        thresholds=np.full(3, 1.0), components=tuple(a))
    store = ModelStore(tmp_path / "models")
    store.save(model)
    loaded = store.load(1)
    assert json.loads((tmp_path / "models" / "v1" / "model.json").read_text())["schema_version"] == 2
    assert [c.k for c in loaded.components] == [c.k for c in a]
    np.testing.assert_array_equal(loaded.assign(x).anomaly_score, model.assign(x).anomaly_score)


def test_field_contributions_split_the_squared_distance() -> None:
    x = np.array([1.0, 0.0, 3.0, 4.0])
    c = np.zeros(4)
    out = field_contributions(x, c, [("a", 1), ("b", 1), ("c", 2)], "euclid")
    assert [o.field for o in out] == ["c", "a", "b"]
    assert out[0].share == pytest.approx(25 / 26) and out[0].distance == pytest.approx(5.0)


def test_a_point_scores_the_same_alone_and_in_a_page() -> None:
    # Online scoring sees one point, a write-back a page of thousands: the flag must not depend on it.
    rng = np.random.default_rng(11)
    x = (rng.normal(size=(3000, 48)) * rng.uniform(0.1, 3.0, size=48)).astype(np.float32)
    comps = fit_components(x[:1000], metric="euclid", seed=0)
    model = ClusterModel(
        version=1, metric="euclid", centroids=x[:4].copy(), cluster_ids=np.arange(4), populated=np.ones(4, bool),
        radius=np.ones(4), large=np.ones(4, bool), scorer="ensemble", threshold_mode="contamination",
        thresholds=np.full(4, 1.0), components=tuple(comps))
    page = model.assign(x).anomaly_score
    alone = np.concatenate([model.assign(x[i:i + 1]).anomaly_score for i in range(0, 3000, 7)])
    np.testing.assert_array_equal(alone, page[::7])


def test_a_tiny_sample_falls_back_to_cblof_but_keeps_the_setting() -> None:
    from embcluster.cluster.fit import calibrate
    from embcluster.schema import CollectionSettings

    sample = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]], dtype=np.float32)
    model, _ = calibrate(sample, sample[[0, 2]], version=1, metric="euclid",
                         settings=CollectionSettings.defaults(), prev=None, next_cluster_id=1, seed=0, n_init=1,
                         sample_size=3, backend="numpy", inertia=0.0)
    assert model.scorer == "cblof" and not model.components  # 3 points: no ensemble fit is possible
    # params keep the requested scorer, so the scheduler's "model is current" check still matches the settings
    assert model.params["anomaly_scorer"] == "ensemble" and model.metrics["anomaly"]["scorer"] == "cblof"
