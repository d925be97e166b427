"""Cluster summaries inside a run (embcluster.core.summaries): stored before the version is served,
from the run's own sample, with the write-back's full-pass figures; rollbacks serve the target's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from embcluster.core import summaries as core_summaries
from embcluster.core.summaries import RunSample, summarize_run
from embcluster.pipeline import EmbclusterService
from embcluster.schema import CollectionSpec, ItemInput, RunInfo, RunRequest, RunState

NAME = "s"
DIM = 4


def _collection(make_service: Callable[..., EmbclusterService], root: Path, n: int = 300) -> EmbclusterService:
    svc = make_service(root)
    svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM, metric="euclid"))
    rng = np.random.default_rng(0)
    centres = np.eye(DIM)[:3] * 8
    x = centres[np.arange(n) % 3] + rng.normal(size=(n, DIM))
    svc.ingest(NAME, [ItemInput(id=f"p{i}", vector=v) for i, v in enumerate(x)])
    return svc


def _run(svc: EmbclusterService, **request: Any) -> RunInfo:
    run = svc.start_clustering(NAME, RunRequest(**{"k": 3, "seed": 0, **request}))
    svc.runs.wait(NAME, timeout=120)
    done = svc.get_run(NAME, run.run_id)
    assert done.state is RunState.SUCCEEDED, done.error
    return done


def test_summaries_are_on_disk_before_the_version_is_served(make_service, root, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    svc = _collection(make_service, root)
    coll = svc.registry.get(NAME)
    seen: list[tuple[int, bool, int]] = []
    publish = coll.models.publish

    def spy(version: int) -> None:  # the moment the run marks its version published (after the switch)
        meta = json.loads((coll.models.directory / f"v{version}" / "model.json").read_text())
        seen.append((version, bool(meta.get("summaries", {}).get("clusters")), coll.record.served_version))
        publish(version)

    switched: list[bool] = []
    save = coll.save

    def spy_save() -> None:  # every record save; the one that switches the served version is the one that counts
        if coll.record.served_version == 1 and not switched:
            meta = json.loads((coll.models.directory / "v1" / "model.json").read_text())
            switched.append(bool(meta.get("summaries", {}).get("clusters")))
        save()

    monkeypatch.setattr(coll.models, "publish", spy)
    monkeypatch.setattr(coll, "save", spy_save)
    _run(svc)
    assert seen == [(1, True, 1)] and switched == [True]
    stored = svc.get_model(NAME, 1)
    assert stored.summaries is not None and len(stored.summaries.clusters) == 3
    assert "summarize_s" in stored.metrics["timings"]


def test_full_pass_figures_and_the_served_copy_match_the_stored_one(make_service, root) -> None:  # type: ignore[no-untyped-def]
    svc = _collection(make_service, root)
    _run(svc)
    coll = svc.registry.get(NAME)
    model = coll.model
    assert model is not None and model.summaries is not None
    metrics = model.metrics
    for r, cid in enumerate(model.cluster_ids.tolist()):
        s = model.summaries.by_id()[cid]
        assert s.size == metrics["sizes_full"][r] and s.anomaly_count == metrics["anomaly_counts_full"][r]
        assert s.radius == pytest.approx(metrics["radius_full"][r], rel=1e-5)
        assert s.kind == "representatives_only" and s.label == "" and len(s.representatives) == 5
    assert sum(metrics["anomaly_counts_full"]) == metrics["anomalies_full"] > 0
    assert svc.get_model(NAME, 0).summaries == model.summaries  # served copy == what model.json holds


def test_the_summary_reads_at_most_max_points_and_skips_deleted_points(make_service, root) -> None:  # type: ignore[no-untyped-def]
    svc = _collection(make_service, root)
    _run(svc)
    coll = svc.registry.get(NAME)
    model = coll.model
    assert model is not None
    ids, vectors = coll.vlog.sample_with_ids(coll.vlog.live(), 300, seed=0)
    gone = [f"p{i}" for i in range(0, 300, 3)]  # a third of the points deleted after the sample was read
    svc.delete_points(NAME, ids=gone)
    kind = svc.registry.kinds.of(coll)
    out = summarize_run(coll, kind, model, RunSample(ids, vectors), model.metrics, previous=None, max_points=120)
    assert 60 <= out.sample_points <= 100  # 120 drawn, about a third of them deleted
    shown = {r.id for s in out.clusters for r in s.representatives}
    assert shown and not shown & set(gone)
    everything = summarize_run(coll, kind, model, RunSample(ids, vectors), model.metrics, previous=None)
    assert everything.sample_points == 200


def test_rollback_serves_the_target_versions_own_summaries(make_service, root, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    svc = _collection(make_service, root)
    _run(svc)
    v1 = svc.get_model(NAME, 1).summaries
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("summaries off")

    monkeypatch.setattr(core_summaries, "summarize", broken)
    _run(svc, seed=5)
    assert svc.get_model(NAME, 2).summaries is None  # its run could not summarise: stored without
    calls: list[int] = []
    monkeypatch.setattr(core_summaries, "summarize", lambda *a, **k: calls.append(1))
    run = svc.rollback(NAME, 1)
    svc.runs.wait(NAME, timeout=120)
    assert svc.get_run(NAME, run.run_id).state is RunState.SUCCEEDED
    assert calls == []  # a rollback summarises nothing: the version keeps what its own run made
    listing = svc.cluster_listing(NAME)
    assert listing.version == 1 and {c.cluster_id: c.summary for c in listing.clusters} == v1.by_id()


def test_run_records_keep_their_label_changes() -> None:
    change = {"cluster_id": 4, "old": "genus, bird", "new": "dish, sauce", "similarity": 0.02}
    info = RunInfo(run_id="r1", collection=NAME, state=RunState.SUCCEEDED, request=RunRequest(k=3),
                   label_changes=[change])
    assert RunInfo.from_json(json.loads(json.dumps(info.to_json()))).label_changes == [change]
    old = info.to_json()
    del old["label_changes"]  # a record written before label changes existed
    assert RunInfo.from_json(old).label_changes == []
