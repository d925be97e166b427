"""Cluster summaries of a run (embcluster.insight.summary): kinds, figures, label stability, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embcluster.data import load_wordnet
from embcluster.insight.summary import (
    SUMMARY_SCHEMA_VERSION,
    ClusterSummary,
    ClusterTotals,
    RunSummaries,
    SummaryInput,
    summarize,
)

CATS = ["noun.animal", "noun.food", "verb.motion", "noun.body"]


def wordnet_sample(seed: int = 0, drop: float = 0.0) -> tuple[SummaryInput, list[str]]:
    """WordNet glosses of four categories as four clusters (true category = cluster id 10, 11, 12, 13)."""
    rows = [r for r in load_wordnet() if r["category"] in CATS]
    rng = np.random.default_rng(seed)
    rows = [r for r in rows if rng.random() >= drop]
    labels = np.asarray([10 + CATS.index(r["category"]) for r in rows])
    dist = rng.random(len(rows))
    flags = dist > 0.97
    return SummaryInput(ids=[r["id"] for r in rows], cluster_ids=labels, distances=dist, is_anomaly=flags,
                        texts=[r["text"] for r in rows]), [r["text"] for r in rows]


def test_text_collection_summaries_have_keywords_labels_figures_and_representatives():
    data, texts = wordnet_sample()
    out = summarize("text", data)
    assert [s.cluster_id for s in out.clusters] == [10, 11, 12, 13] and out.sample_points == len(texts)
    labels = np.asarray(data.cluster_ids)
    dist = np.asarray(data.distances)
    for s in out.clusters:
        members = labels == s.cluster_id
        assert s.kind == "keywords" and s.keywords and s.label and s.previous_label is None
        assert s.size == s.sample_size == members.sum()
        assert s.share == pytest.approx(members.mean())
        assert s.radius == pytest.approx(np.sqrt(np.mean(dist[members] ** 2)))
        assert s.anomaly_count == int(np.asarray(data.is_anomaly)[members].sum())
        assert [r.distance for r in s.representatives] == sorted(np.sort(dist[members])[:5].tolist())
        assert s.representatives[0].text and s.representatives[0].text in texts
    assert "genus" in [k.term for k in out.by_id()[10].keywords]
    assert out.label_changes == []


def test_full_pass_totals_replace_the_sample_figures():
    data, _ = wordnet_sample()
    totals = ClusterTotals(sizes={10: 1000, 11: 500, 12: 250, 13: 250, 14: 0}, radius={10: 0.5},
                           anomalies={10: 7})
    out = summarize("text", data, totals=totals).by_id()
    assert out[10].size == 1000 and out[10].share == 0.5 and out[10].radius == 0.5 and out[10].anomaly_count == 7
    assert out[11].anomaly_count == 0 and out[11].sample_size == 120
    assert out[14].size == 0 and out[14].keywords == [] and out[14].representatives == []  # unpopulated


def test_a_second_run_keeps_labels_of_clusters_whose_keywords_stay_and_reports_a_real_change():
    data, _ = wordnet_sample(seed=0, drop=0.2)
    first = summarize("text", data)
    again, _ = wordnet_sample(seed=1, drop=0.2)  # another sample of the same clusters
    second = summarize("text", again, previous=first)
    assert [s.label for s in second.clusters] == [s.label for s in first.clusters]
    assert second.label_changes == [] and not any(s.label_changed for s in second.clusters)
    # Cluster 11 now holds the body glosses, 13 the food glosses: both labels must change.
    labels = np.asarray(again.cluster_ids)
    swapped = np.where(labels == 11, 13, np.where(labels == 13, 11, labels))
    third = summarize("text", SummaryInput(ids=again.ids, cluster_ids=swapped, distances=again.distances,
                                           texts=again.texts), previous=second)
    changed = {c.cluster_id: (c.old, c.new) for c in third.label_changes}
    by_id = second.by_id()
    assert set(changed) == {11, 13}
    assert changed[11][0] == by_id[11].label and third.by_id()[11].previous_label == by_id[11].label
    assert third.by_id()[11].label_changed and not third.by_id()[10].label_changed


def test_event_collections_get_field_summaries_and_readable_representatives():
    rng = np.random.default_rng(0)
    sources = [{"event": {"amount": float(rng.lognormal(3 if g == 0 else 6, 0.3)),
                          "country": str(rng.choice(["DE", "FR"])), "note": "free text"}}
               for g in (0, 1) for _ in range(200)]
    labels = np.repeat([0, 1], 200)
    data = SummaryInput(ids=[f"tx-{i}" for i in range(400)], cluster_ids=labels, distances=rng.random(400),
                        sources=sources, event_fields={"amount": "numeric", "country": "categorical",
                                                       "note": "text"})
    out = summarize("event", data).by_id()
    assert out[1].kind == "fields" and out[1].label == "amount high" and out[0].label == "amount low"
    assert out[1].fields[0].field == "amount" and out[1].keywords[0].term == "amount high"
    assert out[1].representatives[0].text.startswith("amount=") and "note" not in out[1].representatives[0].text


def test_vector_collections_and_missing_sources_get_representatives_only():
    rng = np.random.default_rng(2)
    vecs = rng.normal(size=(60, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    labels = np.repeat([3, 4], 30)
    centroids = {c: vecs[labels == c].mean(axis=0) for c in (3, 4)}
    data = SummaryInput(ids=[str(i) for i in range(60)], cluster_ids=labels, vectors=vecs, centroids=centroids)
    out = summarize("vector", data)
    s = out.by_id()[3]
    assert s.kind == "representatives_only" and s.label == "" and s.keywords == [] and s.fields == []
    d = 1 - vecs[labels == 3] @ centroids[3]
    assert s.representatives[0].id == str(int(np.argmin(d)))
    assert s.representatives[0].distance == pytest.approx(float(d.min()), abs=1e-6)
    text_without_source = SummaryInput(ids=data.ids, cluster_ids=labels, distances=np.zeros(60), texts=[None] * 60)
    assert summarize("text", text_without_source).clusters[0].kind == "representatives_only"
    with pytest.raises(ValueError, match="distances"):
        summarize("vector", SummaryInput(ids=data.ids, cluster_ids=labels))
    with pytest.raises(ValueError, match="texts has 3 entries"):
        summarize("text", SummaryInput(ids=data.ids, cluster_ids=labels, distances=np.zeros(60), texts=["a"] * 3))


def test_json_round_trip_is_plain_json_with_a_schema_version():
    data, _ = wordnet_sample(drop=0.5)
    first = summarize("text", data)
    again, _ = wordnet_sample(seed=3, drop=0.5)
    labels = np.asarray(again.cluster_ids)
    out = summarize("text", SummaryInput(ids=again.ids, cluster_ids=np.where(labels == 12, 10, np.where(
        labels == 10, 12, labels)), distances=again.distances, texts=again.texts), previous=first)
    assert out.label_changes  # something to round-trip
    text = json.dumps(out.to_json())  # plain JSON: no numpy scalars, no objects
    back = RunSummaries.from_json(json.loads(text))
    assert back.to_json() == out.to_json()
    assert back.label_states() == RunSummaries.from_json(out.to_json()).label_states()
    one = out.clusters[0].to_json()
    assert one["schema_version"] == SUMMARY_SCHEMA_VERSION and ClusterSummary.from_json(one).to_json() == one
    events = summarize("event", SummaryInput(
        ids=["a", "b", "c", "d"] * 10, cluster_ids=np.repeat([0, 1], 20), distances=np.zeros(40),
        sources=[{"event": {"k": "x" if i < 20 else "y"}} for i in range(40)], event_fields={"k": "categorical"}))
    assert events.clusters[0].fields and RunSummaries.from_json(events.to_json()).to_json() == events.to_json()
    with pytest.raises(ValueError, match="schema_version 99"):
        RunSummaries.from_json({**out.to_json(), "schema_version": 99})
    with pytest.raises(ValueError, match="kind 'pickle'"):
        ClusterSummary.from_json({**one, "kind": "pickle"})
