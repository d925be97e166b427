"""EVENT collections through the service core: real Lending Club rows end to end, the featurizer
life cycle (provisional fit, automatic fit, refit with re-featurizing and re-clustering), and
user profiles built from a stream with two planted behaviours. Qdrant Edge in tmp_path, no gRPC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embcluster.config import Settings
from embcluster.data import load_lending_club_events
from embcluster.data.synthetic_events import PROFILE_SCHEMA_FIELDS, planted_profile_stream
from embcluster.embed.events import EventSchema, FieldSpec
from embcluster.errors import FailedPrecondition, InvalidArgument
from embcluster.pipeline import EmbclusterService, point_id_for
from embcluster.schema import CollectionSettings, CollectionSpec, ItemInput, RunRequest, RunState
from embcluster.store.base import FieldEquals, PointFilter


@pytest.fixture
def svc(tmp_path: Path):  # type: ignore[no-untyped-def]
    service = EmbclusterService(Settings(data_dir=tmp_path / "data", featurizer_min_points=600))
    service.open()
    yield service
    service.close()


def _auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUROC (ties count half)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for v in np.unique(scores):  # average ranks of ties
        tie = scores == v
        ranks[tie] = ranks[tie].mean()
    pos = labels.sum()
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * (len(labels) - pos)))


def _ingest(svc: EmbclusterService, name: str, rows: list[dict], batch: int = 500) -> None:
    for s in range(0, len(rows), batch):
        svc.ingest(name, [ItemInput(id=r["id"], event=r["event"], metadata={"bad": r["bad"]})
                          for r in rows[s:s + batch]])


def _wait(svc: EmbclusterService, name: str, run_id: str) -> None:
    svc.wait_idle()
    run = svc.get_run(name, run_id)
    assert run.state == RunState.SUCCEEDED, run.error


def test_lending_club_flags_concentrate_on_bad_loans(svc: EmbclusterService) -> None:
    rows = load_lending_club_events()
    labels = np.array([r["bad"] for r in rows])
    schema, _ = svc.infer_schema([r["event"] for r in rows[:500]])
    svc.create_collection(CollectionSpec(name="loans", input_kind="event", metric="euclid", event_schema=schema,
                                         settings=CollectionSettings(contamination=0.05)))
    _ingest(svc, "loans", rows)  # the automatic fit fires at 600 points
    svc.wait_idle()
    info = svc.get_collection("loans")
    assert info.featurizer_version == 2 and not info.featurizer_provisional
    run = svc.start_clustering("loans", RunRequest(k=8))
    _wait(svc, "loans", run.run_id)
    views = [svc.get_point("loans", id=r["id"]) for r in rows]
    scores = np.array([v.assignment.anomaly_score for v in views])
    flagged = np.array([v.assignment.is_anomaly for v in views])
    # Bad loans are only mildly unusual (IsolationForest on the numbers scores 0.55 here, see
    # bench/bench_events.py); a broken featurizer would sit at 0.5 +- 0.03.
    assert _auroc(scores, labels) > 0.55
    assert labels[flagged].mean() > 1.4 * labels.mean()  # flags hold more bad loans than chance
    assert views[0].source["term"] == rows[0]["event"]["term"]  # the event comes back as stored
    # online = batch: classifying stored events reproduces their stored labels
    got = svc.classify("loans", [ItemInput(event=r["event"]) for r in rows[:50]])
    assert [a.cluster_id for a in got] == [v.assignment.cluster_id for v in views[:50]]
    assert np.allclose([a.anomaly_score for a in got], scores[:50], rtol=1e-4, atol=1e-5)
    hits = svc.search("loans", event=rows[7]["event"], limit=3)
    assert hits[0].point.external_id == rows[7]["id"]
    expl = svc.explain("loans", id=rows[int(np.argmax(scores))]["id"])
    assert expl.is_anomaly and expl.anomaly_score == pytest.approx(scores.max(), rel=1e-5)


def test_featurizer_life_cycle_refit_rewrites_vectors_and_reclusters(svc: EmbclusterService) -> None:
    rows = load_lending_club_events(limit=400)
    schema = EventSchema(fields=[FieldSpec("funded_amnt", "numeric", log=True), FieldSpec("term", "categorical"),
                                 FieldSpec("int_rate", "numeric"), FieldSpec("sub_grade", "categorical", buckets=8)])
    svc.create_collection(CollectionSpec(name="c", input_kind="event", metric="euclid", event_schema=schema))
    _ingest(svc, "c", rows[:100])
    coll = svc.registry.get("c")
    first = svc.get_collection("c")
    assert (first.featurizer_version, first.featurizer_provisional) == (1, True)
    p0 = svc.get_point("c", id=rows[0]["id"], with_vector=True).vector
    _ingest(svc, "c", rows[100:])  # 400 < 600: no automatic fit
    svc.wait_idle()
    assert svc.get_collection("c").featurizer_version == 1
    run = svc.start_clustering("c", RunRequest(k=4))
    _wait(svc, "c", run.run_id)
    assert svc.get_model("c", 0).params["featurizer_version"] == 1
    refit = svc.fit_featurizer("c")
    _wait(svc, "c", refit.run_id)
    info = svc.get_collection("c")
    assert (info.featurizer_version, info.featurizer_provisional) == (2, False)
    assert info.served_model_version == 2 and svc.get_model("c", 2).params["featurizer_version"] == 2
    # every stored vector is the new featurizer's (store and vector log agree), every label the new model's
    assert coll.store.count(PointFilter(must_not=(FieldEquals("featurizer_version", 2),))) == 0
    assert coll.store.count(PointFilter(must_not=(FieldEquals("model_version", 2),))) == 0
    sources = [{"event": svc.get_point("c", id=r["id"]).source} for r in rows[:20]]
    expected = coll.featurizer.transform(sources)
    stored = np.array([svc.get_point("c", id=r["id"], with_vector=True).vector for r in rows[:20]])
    assert np.allclose(stored, expected, atol=1e-6)
    assert not np.allclose(p0, stored[0])  # the provisional vector was replaced
    live = coll.vlog.live()
    ids, vecs = next(coll.vlog.iter_pages(live, 1000))
    by_id = dict(zip((str(i) for i in ids), vecs))
    assert np.allclose(by_id[point_id_for("c", rows[0]["id"])], stored[0])
    assert (tmp := coll.directory / "featurizers" / "f2.json").exists(), tmp
    # the old model (featurizer v1) cannot be served over v2 vectors
    with pytest.raises(FailedPrecondition, match="featurizer v1"):
        svc.rollback("c", 1)
    # a restart loads the fitted featurizer from JSON and transforms identically
    svc.close()
    again = EmbclusterService(svc.settings)
    again.open()
    try:
        assert np.allclose(again.kinds.event.featurizer(again.registry.get("c")).transform(sources), expected)
        assert again.classify("c", [ItemInput(event=rows[0]["event"])])[0].model_version == 2
    finally:
        again.close()


def test_event_collections_refuse_bad_specs_and_items(svc: EmbclusterService) -> None:
    schema = EventSchema(fields=[FieldSpec("amount", "numeric", required=True), FieldSpec("ts", "timestamp")])
    with pytest.raises(InvalidArgument, match="store_source=true"):
        svc.create_collection(CollectionSpec(name="e", input_kind="event", event_schema=schema, store_source=False))
    with pytest.raises(InvalidArgument, match="needs an event_schema"):
        svc.create_collection(CollectionSpec(name="e", input_kind="event"))
    svc.create_collection(CollectionSpec(name="e", input_kind="event", metric="euclid", event_schema=schema))
    with pytest.raises(FailedPrecondition, match="no featurizer yet"):
        svc.classify("e", [ItemInput(event={"amount": 1.0})])
    good = ItemInput(event={"amount": 1.0, "ts": "2026-01-01T00:00:00Z"})
    for bad, message in [
        (ItemInput(event={"amount": "1"}), "item 1 field 'amount': numeric field expects a number"),
        (ItemInput(event={"ts": 5.0}), "item 1 field 'amount': required field is missing"),
        (ItemInput(event={"amount": 1.0, "ts": "31/12/2026"}), "item 1 field 'ts': cannot parse timestamp"),
        (ItemInput(event={"amount": float("nan")}), "item 1 field 'amount': value nan is not finite"),
        (ItemInput(text="hello"), "item 1: this collection takes events, got text"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            svc.ingest("e", [good, bad])
    assert svc.get_collection("e").point_count == 0  # all or nothing
    with pytest.raises(FailedPrecondition, match="only EVENT collections"):
        svc.create_collection(CollectionSpec(name="v", input_kind="vector", vector_dim=2))
        svc.fit_featurizer("v")


def test_profiles_separate_planted_behaviours(svc: EmbclusterService) -> None:
    events, behaviour = planted_profile_stream(n_users=60, events_per_user=15, seed=3)
    fields = [FieldSpec(**f) for f in PROFILE_SCHEMA_FIELDS]
    schema = EventSchema(fields=fields, entity_key="user", window_days=30)
    svc.create_collection(CollectionSpec(name="users", input_kind="event", metric="euclid", event_schema=schema,
                                         settings=CollectionSettings(contamination=0.02)))
    for s in range(0, len(events), 100):  # arrives in time order, users interleaved
        results = svc.ingest("users", [ItemInput(id=f"ev{s + i}", event=e) for i, e in enumerate(events[s:s + 100])])
        assert results[0].external_id == events[s]["user"]  # each event reports its profile point
    assert svc.get_collection("users").point_count == 60  # one point per user
    refit = svc.fit_featurizer("users")
    _wait(svc, "users", refit.run_id)
    run = svc.start_clustering("users", RunRequest(k=2))
    _wait(svc, "users", run.run_id)
    users = sorted(behaviour)
    views = [svc.get_point("users", id=u) for u in users]
    assert views[0].source["profile"]["count"] == 15 and sum(views[0].source["profile"]["hours"]) == 15
    clusters = np.array([v.assignment.cluster_id for v in views])
    truth = np.array([behaviour[u] for u in users])
    purity = sum(np.bincount(truth[clusters == c]).max() for c in np.unique(clusters)) / len(users)
    assert purity == 1.0 and len(np.unique(clusters)) == 2
    # a night-time spender's profile moves towards the night cluster as such events arrive
    day_user = next(u for u in users if behaviour[u] == 0)
    night_cluster = clusters[truth == 1][0]
    late = [{"user": day_user, "amount": 900.0, "merchant": "crypto-exchange", "ts": f"2026-11-0{1 + d // 4}T02:{d:02d}:00Z"}
            for d in range(30)]
    assert svc.classify("users", [ItemInput(event=late[0])])[0].cluster_id != night_cluster
    svc.ingest("users", [ItemInput(id=f"late{d}", event=e) for d, e in enumerate(late)])
    assert svc.get_point("users", id=day_user).assignment.cluster_id == night_cluster


def test_a_refit_interrupted_by_a_crash_is_redone_as_a_refit(tmp_path: Path) -> None:
    from embcluster.fsio import write_json_atomic
    from embcluster.schema import RunInfo

    root = tmp_path / "data"
    settings = Settings(data_dir=root, featurizer_min_points=10_000, schedule_tick_s=3600.0)
    rows = load_lending_club_events()[:300]
    svc = EmbclusterService(settings)
    svc.open()
    schema, _ = svc.infer_schema([r["event"] for r in rows])
    svc.create_collection(CollectionSpec(name="loans", input_kind="event", metric="euclid", event_schema=schema))
    _ingest(svc, "loans", rows, batch=100)
    run = svc.start_clustering("loans", RunRequest(k=4))
    _wait(svc, "loans", run.run_id)
    assert svc.get_collection("loans").featurizer_version == 1  # provisional (first batch only)
    svc.close()
    dead = RunInfo(run_id="deadrefit", collection="loans", state=RunState.RUNNING,
                   request=RunRequest(refit_featurizer=True), phase="featurizing",
                   created_at="2099-01-01T00:00:00.000+00:00", trigger="manual")
    write_json_atomic(root / "collections" / "loans" / "runs" / "deadrefit.json", dead.to_json())
    svc = EmbclusterService(settings)
    svc.open()
    try:
        svc.wait_idle()
        started = svc.autorun.tick()
        assert len(started) == 1 and started[0].request.refit_featurizer and started[0].trigger == "restart"
        _wait(svc, "loans", started[0].run_id)
        info = svc.get_collection("loans")
        assert info.featurizer_version == 2 and not info.featurizer_provisional
        assert info.served_model_version == 2  # the refit re-clustered in the new feature space
        model = svc.get_model("loans", 0)
        assert model.params["featurizer_version"] == 2 and model.params["previous_version"] == 0
    finally:
        svc.close()


def test_a_refit_that_cannot_write_a_point_changes_nothing_and_the_server_restarts(tmp_path: Path) -> None:
    """Refit median = a stored amount: a zero vector under cosine. Refused before the switch."""
    settings = Settings(data_dir=tmp_path / "data", featurizer_min_points=10_000, schedule_tick_s=3600.0)
    svc = EmbclusterService(settings)
    svc.open()
    schema = EventSchema(fields=[FieldSpec("amount", "numeric", required=True)])
    svc.create_collection(CollectionSpec(name="c", input_kind="event", metric="cosine", event_schema=schema))
    svc.ingest("c", [ItemInput(id="a", event={"amount": 1.0}), ItemInput(id="b", event={"amount": 10.0})])
    svc.ingest("c", [ItemInput(id="m", event={"amount": 3.0})])  # the median of all three
    refit = svc.fit_featurizer("c")
    svc.wait_idle()
    run = svc.get_run("c", refit.run_id)
    assert run.state == RunState.FAILED and "stays on featurizer v1" in run.error
    assert svc.get_collection("c").featurizer_version == 1
    svc.close()
    svc = EmbclusterService(settings)
    svc.open()  # nothing stale: the start-up repair has nothing to do
    try:
        assert svc.get_collection("c").featurizer_version == 1 and svc.get_collection("c").point_count == 3
    finally:
        svc.close()


def test_an_automatic_fit_missed_while_runs_were_held_is_queued_by_the_scheduler(tmp_path: Path) -> None:
    rows = load_lending_club_events()[:300]
    svc = EmbclusterService(Settings(data_dir=tmp_path / "data", featurizer_min_points=200, schedule_tick_s=3600.0))
    svc.open()
    try:
        schema, _ = svc.infer_schema([r["event"] for r in rows])
        svc.create_collection(CollectionSpec(name="loans", input_kind="event", metric="euclid", event_schema=schema))
        _ingest(svc, "loans", rows[:150], batch=150)
        with svc.hold_runs("loans"):  # e.g. an export: no run may start, so the ingest cannot queue the fit
            _ingest(svc, "loans", rows[150:], batch=150)
        svc.wait_idle()
        assert svc.get_collection("loans").featurizer_provisional  # missed
        started = svc.autorun.tick()
        assert len(started) == 1 and started[0].request.refit_featurizer
        _wait(svc, "loans", started[0].run_id)
        info = svc.get_collection("loans")
        assert info.featurizer_version == 2 and not info.featurizer_provisional
        assert svc.autorun.tick() == []  # done: nothing more to fit
    finally:
        svc.close()


def test_ingest_goes_on_between_the_pages_of_a_refit_and_is_never_overwritten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The re-featurize pass locks one page at a time: an ingest waits for a page, not the pass."""
    import threading

    from embcluster.runs import RunContext

    svc = EmbclusterService(Settings(data_dir=tmp_path / "data", featurizer_min_points=10_000, page_size=16))
    svc.open()
    try:
        rows = load_lending_club_events(limit=300)
        schema = EventSchema(fields=[FieldSpec("funded_amnt", "numeric", log=True), FieldSpec("term", "categorical"),
                                     FieldSpec("int_rate", "numeric")])
        svc.create_collection(CollectionSpec(name="c", input_kind="event", metric="euclid", event_schema=schema))
        _ingest(svc, "c", rows[:250])
        _wait(svc, "c", svc.start_clustering("c", RunRequest(k=3)).run_id)

        paused, resumed = threading.Event(), threading.Event()
        ingested_while_paused: list[bool] = []
        real_progress = RunContext.progress

        def progress(self, phase, fraction, **kw):  # type: ignore[no-untyped-def]
            # After the pass's first page (outside the collection lock): hold the pass until the
            # test's ingest is through. A pass holding the lock throughout would time out here.
            if phase == "featurizing" and fraction > 0.05 and not paused.is_set():
                paused.set()
                ingested_while_paused.append(resumed.wait(timeout=20))
            real_progress(self, phase, fraction, **kw)

        monkeypatch.setattr(RunContext, "progress", progress)
        refit = svc.fit_featurizer("c")
        assert paused.wait(timeout=60)
        coll = svc.registry.get("c")
        moved = {p.id for p in coll.store.scroll(limit=1000, flt=PointFilter(must=(FieldEquals("featurizer_version", 2),)))[0]}
        assert 0 < len(moved) < 250  # mid-pass: some points re-featurized, most not yet
        hits = svc.search("c", event=rows[7]["event"], limit=50)
        assert hits and {h.point.point_id for h in hits} <= moved  # only points in the query's feature space
        with pytest.raises(FailedPrecondition, match="featurizer v2"):
            svc.explain("c", id=rows[7]["id"])  # stored vectors and the served model disagree
        assert not svc.schedule_state("c").model_current  # an interval schedule would re-cluster it
        resent = {**rows[5]["event"], "funded_amnt": 777.0}  # a stored point, re-sent with a new amount
        svc.ingest("c", [ItemInput(id=rows[5]["id"], event=resent), ItemInput(id=rows[260]["id"], event=rows[260]["event"])])
        resumed.set()
        _wait(svc, "c", refit.run_id)
        assert ingested_while_paused == [True]

        assert coll.store.count(PointFilter(must_not=(FieldEquals("featurizer_version", 2),))) == 0
        assert coll.store.count() == 251
        p = svc.get_point("c", id=rows[5]["id"], with_vector=True)
        assert p.source["funded_amnt"] == 777.0  # the pass did not write the old source back over it
        assert np.allclose(p.vector, coll.featurizer.transform([{"event": p.source}])[0], atol=1e-6)
        late = svc.get_point("c", id=rows[260]["id"])
        assert late.assignment is not None and late.assignment.model_version == 2  # the re-cluster's catch-up
        assert svc.schedule_state("c").model_current
    finally:
        svc.close()
