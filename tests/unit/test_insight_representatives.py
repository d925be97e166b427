"""Representatives: members nearest the centroid, nearest first (embcluster.insight.representatives)."""

from __future__ import annotations

import numpy as np

from embcluster.insight.representatives import (
    centroid_distances,
    excerpt,
    nearest_indices,
    nearest_members,
    representatives_by_cluster,
)


def test_nearest_members_come_nearest_first_with_their_text():
    rng = np.random.default_rng(1)
    d = rng.random(50)
    ids = [f"p{i}" for i in range(50)]
    texts = [f"text of point {i}" for i in range(50)]
    reps = nearest_members(ids, d, texts, count=4)
    want = np.argsort(d)[:4]
    assert [r.id for r in reps] == [ids[i] for i in want]
    assert [r.distance for r in reps] == sorted(r.distance for r in reps)
    assert reps[0].text == texts[want[0]]
    assert len(nearest_members(ids[:2], d[:2], count=5)) == 2 and nearest_members([], [], count=3) == []


def test_distances_from_vectors_rank_members_by_the_metric():
    centroid = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    vecs = np.array([[0.0, 1.0, 0.0], [1.0, 0.1, 0.0], [1.0, 0.5, 0.0], [3.0, 0.0, 0.0]], dtype=np.float32)
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)  # cosine collections store unit vectors
    cos = centroid_distances(unit, centroid, "cosine")
    assert [r.id for r in nearest_members(list("abcd"), cos, count=4)] == ["d", "b", "c", "a"]
    l2 = centroid_distances(vecs, centroid, "euclid")
    assert [r.id for r in nearest_members(list("abcd"), l2, count=4)] == ["b", "c", "a", "d"]


def test_by_cluster_each_cluster_gets_its_own_nearest_members():
    labels = np.array([5, 7, 5, 7, 5, 7, 5])
    d = np.array([0.9, 0.3, 0.1, 0.2, 0.5, 0.8, 0.05])
    ids = [f"p{i}" for i in range(7)]
    reps = representatives_by_cluster(ids, labels, d, count=2)
    assert [r.id for r in reps[5]] == ["p6", "p2"] and [r.id for r in reps[7]] == ["p3", "p1"]
    idx = nearest_indices(labels, d, count=10)
    assert idx[5].tolist() == [6, 2, 4, 0] and idx[7].tolist() == [3, 1, 5]


def test_excerpt_is_one_line_and_cut_at_a_word():
    assert excerpt("  a\n short\ttext ") == "a short text"
    long = "word " * 100
    cut = excerpt(long, 40)
    assert len(cut) <= 40 and cut.endswith("…") and "  " not in cut and cut[:-1].endswith("word")
    assert excerpt(None) == ""
