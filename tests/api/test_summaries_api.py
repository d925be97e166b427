"""Cluster summaries end to end over gRPC: computed by every run, stored with its model version,
returned by ListClusters, GetModel and GetCluster, labels kept across runs and changes reported.

The expected keywords were written down before the first run (the same words as
tests/unit/test_insight_keywords.py, whose sets were written before its first run too).
"""

from __future__ import annotations

import json
import logging
from collections import Counter

import grpc
import numpy as np
import pytest
from embcluster_client import Client, NotFound, SummaryKind, make_event_schema, pb

from embcluster.core import summaries as core_summaries
from embcluster.data import load_wordnet
from embcluster.insight.keywords import Keyword
from embcluster.insight.labels import make_label

from .conftest import Running

# Category -> words typical of it; at least two must be among the top ten keywords of the cluster
# that holds most of the category's definitions.
EXPECTED = {
    "noun.animal": {"genus", "family", "bird", "birds", "fish", "mammal", "mammals", "species", "insect",
                    "insects", "animal", "animals", "tail", "wings"},
    "noun.food": {"food", "dish", "sauce", "cooked", "bread", "meat", "cheese", "fruit", "flavor", "baked",
                  "served", "cake", "sweet", "eaten"},
    "verb.motion": {"move", "moving", "motion", "walk", "go", "travel", "run", "fly", "movement"},
}


def _by_category() -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for row in load_wordnet():
        out.setdefault(row["category"], []).append(row)
    return out


def _ingest_rows(client, name: str, rows: list[dict[str, str]]) -> None:  # type: ignore[no-untyped-def]
    for s in range(0, len(rows), 100):
        client.ingest(name, [{"id": r["id"], "text": r["text"], "metadata": {"category": r["category"]}}
                             for r in rows[s:s + 100]])


def test_text_run_summaries_in_list_clusters_get_model_and_get_cluster(running: Running) -> None:
    c = running.client
    cats = _by_category()
    c.create_collection("wn", input_kind="text")
    _ingest_rows(c, "wn", [r for cat in EXPECTED for r in cats[cat][:80]])
    run = c.cluster("wn", k=3, seed=0)
    assert list(run.label_changes) == []  # a first run renames nothing

    listing = c.list_clusters("wn")
    assert len(listing.clusters) == 3 and sum(cl.size for cl in listing.clusters) == 240
    for cl in listing.clusters:
        s = cl.summary
        assert cl.HasField("summary") and s.cluster_id == cl.cluster_id and s.model_version == run.model_version
        assert s.kind == pb.SUMMARY_KIND_KEYWORDS
        assert s.size == cl.size and s.anomaly_count == cl.anomaly_count  # nothing ingested since the run
        assert s.radius == pytest.approx(cl.radius, rel=1e-5)
        assert len(s.keywords) == 10 and s.label and not s.label_changed and not s.HasField("previous_label")
        assert s.label.split(", ")[0] == s.keywords[0].term  # the label is made from the keywords
        assert [k.score for k in s.keywords] == sorted((k.score for k in s.keywords), reverse=True)
        assert 1 <= len(s.representatives) <= 5 and s.sample_size == cl.size  # the sample is the collection
        assert all(r.id.startswith("wn-") and r.text for r in s.representatives)  # callers' ids, source excerpts
        assert [r.distance for r in s.representatives] == sorted(r.distance for r in s.representatives)
        assert not s.fields
    assert sum(cl.summary.share for cl in listing.clusters) == pytest.approx(1.0, abs=1e-4)

    # Each category's cluster has keywords typical of it.
    where: dict[str, Counter[int]] = {cat: Counter() for cat in EXPECTED}
    for cl in listing.clusters:
        for p in c.iter_cluster_members("wn", cl.cluster_id):
            where[p.metadata["category"]][cl.cluster_id] += 1
    by_id = {cl.cluster_id: cl.summary for cl in listing.clusters}
    for cat, expected in EXPECTED.items():
        home = where[cat].most_common(1)[0][0]
        top = [k.term for k in by_id[home].keywords]
        assert len(set(top) & expected) >= 2, f"{cat}: cluster {home} keywords {top}, expected two of {sorted(expected)}"

    # GetModel: the same summaries, no label changes, the summary's time in the run's timings.
    model = c.get_model("wn")
    assert [s.cluster_id for s in model.summaries] == sorted(by_id)
    assert {s.cluster_id: s for s in model.summaries} == by_id
    assert list(model.label_changes) == [] and model.metrics["timings"]["summarize_s"] >= 0
    assert [m.summaries for m in c.list_models("wn")] == [[]]  # ListModels stays small

    # GetCluster: the same summary, of the served version or named; unknown id or version: NOT_FOUND.
    first = listing.clusters[0].cluster_id
    assert c.get_cluster("wn", first) == by_id[first]
    assert c.get_cluster("wn", first, model_version=run.model_version) == by_id[first]
    with pytest.raises(NotFound, match="cluster 999 not in model v1"):
        c.get_cluster("wn", 999)
    with pytest.raises(grpc.RpcError) as err:
        c.get_cluster("wn", first, model_version=7)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "model version 7 not found" in err.value.details()
    with pytest.raises(NotFound):
        c.get_cluster("nope", first)

    # The Pythonic client: models with enums by name.
    with Client(running.server.address) as typed:
        one = typed.get_cluster("wn", first)
        assert one.kind is SummaryKind.KEYWORDS and one.label == by_id[first].label and one.previous_label is None
        assert [k.term for k in one.keywords] == [k.term for k in by_id[first].keywords]
        assert typed.list_clusters("wn").clusters[0].summary == one
        assert typed.get_model("wn").summaries[0].kind is SummaryKind.KEYWORDS


def test_labels_survive_a_rerun_and_a_changed_cluster_is_reported(running: Running, monkeypatch) -> None:
    # Summaries read 100 of the 160 points, drawn with the run's seed: another seed reads other
    # points, so the keywords differ a little from run to run, as in a collection larger than the sample.
    monkeypatch.setattr(core_summaries, "MAX_SUMMARY_POINTS", 100)
    c = running.client
    cats = _by_category()
    c.create_collection("wn2", input_kind="text")
    plants = cats["noun.plant"][:80]
    _ingest_rows(c, "wn2", cats["verb.motion"][:80] + plants)
    c.cluster("wn2", k=2, seed=0)
    first = {s.cluster_id: s for s in c.get_model("wn2").summaries}

    # The same data again (another seed): every cluster keeps its id and its label, although a
    # label made afresh from this run's keywords would differ for at least one of them.
    again = c.cluster("wn2", k=2, seed=1)
    assert list(again.label_changes) == []
    second = {s.cluster_id: s for s in c.get_model("wn2").summaries}
    assert sorted(second) == sorted(first)
    for cid, s in second.items():
        assert (s.label, s.label_changed, s.previous_label) == (first[cid].label, False, first[cid].label)
    assert any(make_label([Keyword(k.term, k.score) for k in s.keywords]) != s.label for s in second.values())

    # The plant definitions replaced by very different texts (food): the plant cluster keeps its id
    # (the previous model put most food texts in it) but its keywords changed: a new label, reported.
    plant_cluster = Counter(c.get_point("wn2", id=r["id"]).assignment.cluster_id for r in plants).most_common(1)[0][0]
    c.delete_points("wn2", ids=[r["id"] for r in plants])
    _ingest_rows(c, "wn2", cats["noun.food"][:110])
    changed = c.cluster("wn2", k=2, seed=0)
    assert [(ch.cluster_id, ch.old_label) for ch in changed.label_changes] == [(plant_cluster, first[plant_cluster].label)]
    model = c.get_model("wn2")
    assert list(model.label_changes) == list(changed.label_changes)
    third = {s.cluster_id: s for s in model.summaries}
    renamed = third[plant_cluster]
    assert renamed.label_changed and renamed.previous_label == first[plant_cluster].label
    assert renamed.label == changed.label_changes[0].new_label != first[plant_cluster].label
    assert len({k.term for k in renamed.keywords} & EXPECTED["noun.food"]) >= 2
    (motion,) = [cid for cid in third if cid != plant_cluster]
    assert (third[motion].label, third[motion].label_changed) == (first[motion].label, False)
    # The previous version keeps the summaries its own run made.
    assert c.get_cluster("wn2", plant_cluster, model_version=2).label == first[plant_cluster].label


def test_event_summary_names_the_field_that_separates_two_groups(running: Running) -> None:
    c = running.client
    schema = make_event_schema([{"name": "amount", "type": "numeric", "log": True},
                                {"name": "items", "type": "numeric"},
                                {"name": "country", "type": "categorical", "buckets": 8}])
    c.create_collection("tx", input_kind="event", distance="euclid", event_schema=schema)
    items = []
    for i in range(200):  # two groups that differ in amount only; items and country cycle alike in both
        big = i % 2 == 1
        items.append({"id": f"tx{i}", "event": {"amount": (4000.0 if big else 20.0) * (1 + (i % 17) / 20),
                                                "items": 2 + (i // 2) % 3,
                                                "country": "BR" if (i // 2) % 10 else "DE"},
                      "metadata": {"big": big}})
    c.ingest("tx", items)
    c.wait_for_run("tx", c.fit_featurizer("tx").run_id)
    c.cluster("tx", k=2, seed=0)
    summaries = c.get_model("tx").summaries
    assert len(summaries) == 2
    for s in summaries:
        assert s.kind == pb.SUMMARY_KIND_FIELDS and s.size == 100
        assert s.fields[0].field == "amount" and s.fields[0].kind == "numeric"
        assert {f.field for f in s.fields} == {"amount"}  # nothing else sets the groups apart
        assert s.label.startswith("amount ") and s.keywords[0].term == s.fields[0].text
        assert s.fields[0].HasField("median") and not s.fields[0].HasField("category")
        assert all(r.id.startswith("tx") and "amount=" in r.text for r in s.representatives)
    high = next(s for s in summaries if s.fields[0].median > s.fields[0].overall_median)
    low = next(s for s in summaries if s is not high)
    assert high.fields[0].text == "amount high" and low.fields[0].text == "amount low"
    assert all(p.metadata["big"] for p in c.iter_cluster_members("tx", high.cluster_id))


def test_vector_collection_gets_representatives_only(running: Running) -> None:
    c = running.client
    c.create_collection("vec", input_kind="vector", vector_dim=4, distance="euclid")
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0, 0, 0], [0, 5.0, 0, 0]])
    c.ingest("vec", [{"id": f"v{i}", "vector": (centres[i % 2] + rng.normal(size=4) * 0.3).tolist()}
                     for i in range(120)])
    c.cluster("vec", k=2, seed=0)
    for cl in c.list_clusters("vec").clusters:
        s = cl.summary
        assert s.kind == pb.SUMMARY_KIND_REPRESENTATIVES_ONLY
        assert s.label == "" and not s.keywords and not s.fields and s.size == cl.size == 60
        assert len(s.representatives) == 5 and all(r.id.startswith("v") and r.text == "" for r in s.representatives)
        members = {p.external_id: p.assignment.cluster_distance for p in c.iter_cluster_members("vec", cl.cluster_id)}
        nearest = sorted(members, key=lambda i: (members[i], i))[:5]
        assert [r.id for r in s.representatives] == nearest  # the sample is the whole collection


def test_a_failing_summariser_does_not_fail_the_run(running: Running, monkeypatch, caplog) -> None:
    c = running.client
    c.create_collection("vf", input_kind="vector", vector_dim=2)
    c.ingest("vf", [{"id": f"p{i}", "vector": [1.0, i / 50] if i % 2 else [i / 50, 1.0]} for i in range(40)])

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("summariser exploded")

    monkeypatch.setattr(core_summaries, "summarize", broken)
    with caplog.at_level(logging.ERROR, logger="embcluster.core.summaries"):
        run = c.cluster("vf", k=2, seed=0)
    assert run.state == pb.RUN_STATE_SUCCEEDED and run.points_labelled == 40
    assert "model v1 is stored without cluster summaries" in caplog.text and "summariser exploded" in caplog.text
    model = c.get_model("vf")
    assert list(model.summaries) == [] and "summarize_s" in model.metrics["timings"]
    listing = c.list_clusters("vf")
    assert sum(cl.size for cl in listing.clusters) == 40 and not any(cl.HasField("summary") for cl in listing.clusters)
    bare = c.get_cluster("vf", listing.clusters[0].cluster_id)
    assert bare.kind == pb.SUMMARY_KIND_UNSPECIFIED and bare.size == listing.clusters[0].size and not bare.representatives
    monkeypatch.undo()  # summaries again from the next run on
    assert c.cluster("vf", k=2, seed=0).state == pb.RUN_STATE_SUCCEEDED
    assert all(cl.HasField("summary") for cl in c.list_clusters("vf").clusters)


def test_versions_saved_without_summaries_still_load_and_list(settings, text_embedder) -> None:  # type: ignore[no-untyped-def]
    first = Running(settings, text_embedder)
    try:
        c = first.client
        c.create_collection("old", input_kind="text")
        _ingest_rows(c, "old", load_wordnet(60))
        c.cluster("old", k=3, seed=0)
        sizes = {cl.cluster_id: cl.size for cl in c.list_clusters("old").clusters}
    finally:
        first.stop()
    path = settings.data_dir / "collections" / "old" / "models" / "v1" / "model.json"
    meta = json.loads(path.read_text())
    assert meta["summaries"]["clusters"]  # what a version made before summaries lacks:
    del meta["summaries"]
    del meta["metrics"]["anomaly_counts_full"]
    path.write_text(json.dumps(meta))

    again = Running(settings, text_embedder)
    try:
        c = again.client
        listing = c.list_clusters("old")
        assert {cl.cluster_id: cl.size for cl in listing.clusters} == sizes
        assert not any(cl.HasField("summary") for cl in listing.clusters)
        model = c.get_model("old")
        assert model.version == 1 and list(model.summaries) == [] and list(model.label_changes) == []
        assert [m.version for m in c.list_models("old")] == [1]
        cid = listing.clusters[0].cluster_id
        bare = c.get_cluster("old", cid)
        assert (bare.kind, bare.size, bare.label) == (pb.SUMMARY_KIND_UNSPECIFIED, sizes[cid], "")
        # The next run summarises; with no previous labels nothing counts as changed.
        run = c.cluster("old", k=3, seed=0)
        assert list(run.label_changes) == []
        assert all(s.label and not s.label_changed and not s.HasField("previous_label")
                   for s in c.get_model("old").summaries)
        assert c.get_cluster("old", cid, model_version=1).kind == pb.SUMMARY_KIND_UNSPECIFIED
    finally:
        again.stop()
