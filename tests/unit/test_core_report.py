"""The core's report of a collection (``EmbclusterService.report``): what it reads from a real
service (Qdrant Edge in tmp_path, no gRPC) and hands to the renderer."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from embcluster.embed.events import EventSchema, FieldSpec
from embcluster.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from embcluster.insight.summary import SummaryInput, summarize
from embcluster.pipeline import EmbclusterService, point_id_for
from embcluster.schema import CollectionSettings, CollectionSpec, ItemInput, RunRequest, RunState

Make = Callable[..., EmbclusterService]


def _blobs(svc: EmbclusterService, name: str, n: int, *, seed: int = 0, contamination: float = 0.02) -> None:
    """``n`` 8-d points around 4 centres, with metadata (what hover shows of a VECTOR point)."""
    svc.create_collection(CollectionSpec(name=name, input_kind="vector", vector_dim=8, metric="euclid",
                                         settings=CollectionSettings(contamination=contamination)))
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(4, 8))
    for start in range(0, n, 500):
        idx = range(start, min(n, start + 500))
        svc.ingest(name, [ItemInput(id=f"p{i}", vector=(centres[i % 4] + rng.normal(size=8)).tolist(),
                                    metadata={"shelf": f"s{i % 4}"}) for i in idx])


def _cluster(svc: EmbclusterService, name: str, **request: object) -> None:
    run = svc.start_clustering(name, RunRequest(**request))  # type: ignore[arg-type]
    svc.wait_idle()
    assert svc.get_run(name, run.run_id).state == RunState.SUCCEEDED


def test_errors_before_a_report_can_be_made(make_service: Make, root: Path) -> None:
    svc = make_service(root)
    with pytest.raises(NotFound, match="'nope' not found"):
        svc.report("nope")
    _blobs(svc, "v", 40)
    with pytest.raises(FailedPrecondition, match="no cluster model yet"):
        svc.report("v")
    _cluster(svc, "v", k=2)
    for bad in (-1, 50_001):
        with pytest.raises(InvalidArgument, match=f"sample_size must be in \\[1, 50000\\].*got {bad}"):
            svc.report("v", sample_size=bad)


def test_the_sample_keeps_anomalies_and_is_the_same_for_a_seed(make_service: Make, root: Path) -> None:
    svc = make_service(root)
    _blobs(svc, "v", 3000, contamination=0.05)
    _cluster(svc, "v", k_range=(2, 6))
    data = svc.report_data("v", sample_size=400)
    flagged = svc.get_collection("v").anomaly_count
    assert len(data.points) == 400 and data.point_count == 3000
    # a uniform draw would show ~5% of 400; anomalies are drawn first, up to half the map
    assert sum(data.points.is_anomaly) == min(flagged, 200)
    assert len(set(data.points.ids)) == 400 and all(i.startswith("p") for i in data.points.ids)
    assert set(data.points.text) == {f'{{"shelf":"s{j}"}}' for j in range(4)}  # metadata: no source text
    assert data.k_selection is not None and (data.k_selection.k_min, data.k_selection.k_max) == (2, 6)
    again = svc.report_data("v", sample_size=400)
    assert again.points == data.points
    # the map's labels are the served model's, as GetPoint shows them
    for pid, cid in list(zip(data.points.ids, data.points.cluster_id))[:50]:
        assert svc.get_point("v", id=pid).assignment.cluster_id == cid
    sizes = {c.cluster_id: c.size for c in svc.list_clusters("v")[1]}
    assert {c.cluster_id: c.size for c in data.clusters} == sizes
    coll = svc.registry.get("v")
    assert coll.model is not None
    coll.model.summaries = None  # a version saved before runs computed summaries
    assert "Model version 1 has no cluster summaries" in " ".join(svc.report_data("v", sample_size=10).notes)


def test_history_summaries_and_the_rendered_file(make_service: Make, root: Path) -> None:
    svc = make_service(root)
    _blobs(svc, "v", 600)
    _cluster(svc, "v", k=4)
    _cluster(svc, "v", k=4, seed=3)
    coll = svc.registry.get("v")
    model = coll.model
    assert model is not None and model.version == 2
    # summaries as a run stores them with its version (computed here from the stored points)
    points, _ = coll.store.scroll(limit=1000, with_vectors=True)
    labels = model.assign(np.stack([p.vector for p in points]))
    model.summaries = summarize("vector", SummaryInput(
        ids=[p.payload["external_id"] for p in points], cluster_ids=labels.cluster_id,
        distances=labels.cluster_distance, is_anomaly=labels.is_anomaly))
    for s in model.summaries.clusters:
        s.label = f"shelf group {s.cluster_id}"
    coll.models.save_metadata(model)
    report = svc.report("v")
    assert (report.model_version, report.versions, report.summaries) == (2, 2, True)
    assert report.labelled_clusters == report.clusters == 4 and not report.k_curves
    assert report.points_drawn == 600 and report.point_count == 600
    page = report.html.decode()
    for s in model.summaries.clusters:
        assert f"shelf group {s.cluster_id}" in page
        assert s.representatives and s.representatives[0].id in page
    assert "has no cluster summaries" not in page
    assert "<script src" not in page and "<link" not in page  # self-contained
    small = make_service(root.parent / "small", max_message_bytes=1024 * 1024)
    _blobs(small, "v", 300)
    _cluster(small, "v", k=2)
    with pytest.raises(ResourceExhausted, match="over the .* bytes a response may carry.*sample_size"):
        small.report("v")  # BokehJS alone is 1.3 MB


def test_event_points_are_drawn_in_the_served_models_feature_space(make_service: Make, root: Path) -> None:
    svc = make_service(root, featurizer_min_points=10_000, schedule_tick_s=3600.0)
    schema = EventSchema(fields=[FieldSpec("amount", "numeric", required=True), FieldSpec("country", "categorical")])
    svc.create_collection(CollectionSpec(name="tx", input_kind="event", metric="euclid", event_schema=schema))
    rng = np.random.default_rng(0)
    svc.ingest("tx", [ItemInput(id=f"a{i}", event={"amount": float(rng.uniform(1, 2)), "country": "DE"})
                      for i in range(40)])  # the provisional featurizer (v1) is fitted on these
    _cluster(svc, "tx", k=2)
    svc.ingest("tx", [ItemInput(id=f"b{i}", event={"amount": float(rng.uniform(100, 300)), "country": "BR"})
                      for i in range(40)])
    refit = svc.fit_featurizer("tx")  # featurizer v2 on all points, every point re-featurized, re-clustered
    svc.wait_idle()
    assert svc.get_run("tx", refit.run_id).state == RunState.SUCCEEDED
    coll = svc.registry.get("tx")
    kind = svc.registry.kinds.of(coll)
    old = coll.models.load(1)
    assert coll.record.featurizer_version == 2 and old.params["featurizer_version"] == 1
    points = coll.store.retrieve([point_id_for("tx", f"{p}{i}") for p in "ab" for i in range(5)], with_vectors=True)
    stored = np.stack([p.vector for p in points])
    assert all(p.payload["featurizer_version"] == 2 for p in points)
    # in model v1's space: featurized again with featurizer v1, not the stored (v2) vectors
    in_v1 = kind.model_vectors(coll, old, points)
    expected = kind.featurizer_at(coll, 1).transform([p.payload["source"] for p in points])
    np.testing.assert_allclose(in_v1, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(in_v1, stored, atol=1e-3)
    np.testing.assert_array_equal(kind.model_vectors(coll, coll.model, points), stored)  # v2: as stored
    data = svc.report_data("tx")
    assert len(data.points) == 80 and any(t.startswith("amount=") and "country=BR" in t for t in data.points.text)
