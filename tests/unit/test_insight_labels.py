"""Cluster labels from keywords and their stability across runs (embcluster.insight.labels)."""

from __future__ import annotations

import numpy as np

from embcluster.data import load_wordnet
from embcluster.insight.keywords import Keyword, cluster_keywords
from embcluster.insight.labels import (
    LabelState,
    keyword_similarity,
    make_label,
    stabilize_labels,
)


def kw(*terms: str) -> list[Keyword]:
    """Keywords with falling scores 1, 0.9, 0.8, ..."""
    return [Keyword(t, 1.0 - 0.1 * i) for i, t in enumerate(terms)]


def test_label_is_the_top_three_terms_and_bigrams_absorb_their_unigrams():
    assert make_label(kw("genus", "bird", "family", "tail")) == "genus, bird, family"
    assert make_label(kw("running", "trail", "running shoes", "mud")) == "running shoes, trail, mud"
    assert make_label(kw("running shoes", "running", "shoes", "trail")) == "running shoes, trail"
    assert make_label([]) == ""
    assert make_label(["amount high", "ts hour 0–5", "country=BR", "merchant=cafe"]) == \
        "amount high, ts hour 0–5, country=BR"


def test_label_stays_short():
    label = make_label(kw("electroencephalography", "magnetoencephalography", "neurophysiology"))
    assert len(label) <= 48 and label.startswith("electroencephalography")
    assert make_label(kw("x" * 80)) == "x" * 47 + "…"


def test_similarity_is_one_for_equal_lists_zero_for_disjoint_and_ignores_scale():
    a = kw("genus", "bird", "family")
    assert keyword_similarity(a, a) == 1.0
    assert keyword_similarity(a, kw("sauce", "milk")) == 0.0
    scaled = [Keyword(k.term, k.score * 7) for k in a]  # another k changes every idf: not a change
    assert abs(keyword_similarity(a, scaled) - 1.0) < 1e-12
    assert 0 < keyword_similarity(a, kw("genus", "fish", "tail")) < 1


def test_unchanged_keywords_keep_the_label_and_a_real_change_replaces_it_and_is_reported():
    prev = {1: LabelState("genus, bird, family", tuple(kw("genus", "bird", "family", "tail", "wings"))),
            2: LabelState("milk, sauce, wine", tuple(kw("milk", "sauce", "wine", "baked")))}
    # Cluster 1: reordered, one word swapped (similar); cluster 2: now about something else; 3 is new.
    now = {1: kw("bird", "genus", "family", "wings", "feathers"), 2: kw("bone", "nerve", "vein", "cells"),
           3: kw("travel", "walk", "ride")}
    decisions, changes = stabilize_labels(prev, now)
    assert decisions[1].label == "genus, bird, family" and not decisions[1].changed
    assert decisions[1].basis == prev[1].basis  # the anchor stays: drift cannot add up run by run
    assert decisions[2].label == "bone, nerve, vein" and decisions[2].changed
    assert decisions[2].previous_label == "milk, sauce, wine" and decisions[2].similarity == 0.0
    assert decisions[3].label == "travel, walk, ride" and decisions[3].previous_label is None
    assert [(c.cluster_id, c.old, c.new) for c in changes] == [(2, "milk, sauce, wine", "bone, nerve, vein")]


def test_gradual_drift_is_measured_against_the_label_basis_not_the_last_run():
    state = {1: LabelState("genus, bird, family", tuple(kw("genus", "bird", "family", "tail", "wings")))}
    steps = [kw("genus", "bird", "family", "tail", "beak"), kw("genus", "bird", "beak", "tail", "fish"),
             kw("bird", "fish", "beak", "fins", "water"), kw("fish", "fins", "water", "scales", "sea")]
    changed_at = None
    for i, step in enumerate(steps):
        decisions, changes = stabilize_labels(state, {1: step})
        state = {1: LabelState(decisions[1].label, decisions[1].basis)}
        if changes:
            changed_at = i
            break
    assert changed_at is not None and changed_at >= 1 and state[1].label == make_label(steps[changed_at])
    # Each step alone is similar to the one before it: compared run to run, the label would never change.
    assert all(keyword_similarity(a, b) >= 0.15 for a, b in zip(steps, steps[1:]))


def test_a_cluster_without_keywords_this_run_keeps_its_label():
    prev = {4: LabelState("burn, shine, rain", tuple(kw("burn", "shine", "rain")))}
    decisions, changes = stabilize_labels(prev, {4: []})
    assert decisions[4].label == "burn, shine, rain" and not changes


def test_on_wordnet_resampled_clusters_keep_their_labels_and_swapped_ones_do_not():
    rows = load_wordnet()
    cats = sorted({r["category"] for r in rows})
    labels = np.asarray([cats.index(r["category"]) % 9 for r in rows])  # 9 clusters of ~570 glosses
    texts = [r["text"] for r in rows]
    half = np.random.default_rng(0).random(len(rows)) < 0.5  # two runs on disjoint samples
    first = cluster_keywords([t for t, h in zip(texts, half) if h], labels[half])
    second = cluster_keywords([t for t, h in zip(texts, half) if not h], labels[~half])
    prev = {c: LabelState(make_label(k), tuple(k)) for c, k in first.items()}
    decisions, changes = stabilize_labels(prev, second)
    assert len(changes) <= 1, [(c.old, c.new, round(c.similarity, 3)) for c in changes]
    swapped = {c: second[(c + 1) % 9] for c in second}  # every id now holds another cluster's texts
    _, changes = stabilize_labels(prev, swapped)
    assert len(changes) == 9
