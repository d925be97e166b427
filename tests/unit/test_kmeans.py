"""Unit tests of k-means fitting, assignment, choice of k and stable-id matching (embcluster.cluster)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from embcluster.cluster import KScore, assign_nearest, choose_k, fit_kmeans, match_clusters
from embcluster.cluster.assign import pairwise_distance


def blobs(n_per: int, centers: np.ndarray, scale: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k, d = centers.shape
    x = np.concatenate([c + rng.normal(scale=scale, size=(n_per, d)) for c in centers]).astype(np.float32)
    y = np.repeat(np.arange(k), n_per)
    perm = rng.permutation(len(x))
    return x[perm], y[perm]


def euclid_blobs(k: int = 4, d: int = 6, n_per: int = 100, seed: int = 0):
    centers = np.random.default_rng(100 + seed).normal(size=(k, d)) * 10.0
    return blobs(n_per, centers, 0.5, seed)


def cosine_blobs(k: int = 4, d: int = 8, n_per: int = 100, seed: int = 0):
    """Blobs around orthogonal directions at varying lengths (norm must not matter under cosine)."""
    centers = np.eye(d)[:k] * 5.0
    x, y = blobs(n_per, centers, 0.4, seed)
    lengths = np.random.default_rng(seed).uniform(0.2, 20.0, size=(len(x), 1)).astype(np.float32)
    return x * lengths, y


BACKENDS = ["faiss", "numpy", "sklearn"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", ["euclid", "cosine"])
def test_fit_recovers_blobs(backend, metric) -> None:
    x, y = euclid_blobs() if metric == "euclid" else cosine_blobs()
    fit = fit_kmeans(x, 4, metric=metric, seed=1, n_init=3, backend=backend)
    assert fit.backend == backend
    assert fit.centroids.shape == (4, x.shape[1]) and fit.centroids.dtype == np.float32
    assert fit.labels.shape == (len(x),)
    assert adjusted_rand_score(y, fit.labels) > 0.95
    assert fit.inertia > 0
    if metric == "cosine":
        np.testing.assert_allclose(np.linalg.norm(fit.centroids, axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_labels_are_nearest_centroid(backend) -> None:
    x, _ = euclid_blobs(seed=3)
    fit = fit_kmeans(x, 4, metric="euclid", seed=0, backend=backend)
    d = ((x[:, None, :] - fit.centroids[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(fit.labels, d.argmin(1))
    assert fit.inertia == pytest.approx(float(d.min(1).sum()), rel=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", ["euclid", "cosine"])
def test_same_seed_same_centroids(backend, metric) -> None:
    x, _ = euclid_blobs(k=5, seed=2)
    a = fit_kmeans(x, 5, metric=metric, seed=42, n_init=2, backend=backend)
    b = fit_kmeans(x, 5, metric=metric, seed=42, n_init=2, backend=backend)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.labels, b.labels)


@pytest.mark.parametrize("backend", BACKENDS)
def test_warm_start_from_init(backend) -> None:
    x, y = euclid_blobs(seed=4)
    first = fit_kmeans(x, 4, metric="euclid", seed=0, backend=backend)
    warm = fit_kmeans(x, 4, metric="euclid", seed=99, init=first.centroids, backend=backend)
    # started at the optimum: the same clusters in the same row order
    np.testing.assert_allclose(warm.centroids, first.centroids, atol=1e-3)
    assert adjusted_rand_score(y, warm.labels) > 0.95


# --------------------------------------------------------------------------- assign_nearest


def test_assign_nearest_euclid_matches_bruteforce() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 7)).astype(np.float32)
    c = rng.normal(size=(6, 7)).astype(np.float32)
    rows, dist = assign_nearest(x, c, "euclid")
    brute = np.sqrt(((x[:, None, :].astype(np.float64) - c[None].astype(np.float64)) ** 2).sum(-1))
    np.testing.assert_array_equal(rows, brute.argmin(1))
    np.testing.assert_allclose(dist, brute.min(1), rtol=1e-4, atol=1e-4)
    assert dist.dtype == np.float64 and (dist >= 0).all()


def test_assign_nearest_cosine_matches_bruteforce() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(200, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    c = rng.normal(size=(4, 5))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    rows, dist = assign_nearest(x.astype(np.float32), c.astype(np.float32), "cosine")
    brute = 1.0 - x @ c.T
    np.testing.assert_array_equal(rows, brute.argmin(1))
    np.testing.assert_allclose(dist, np.maximum(brute.min(1), 0), atol=1e-5)


def test_assign_nearest_respects_allowed_mask() -> None:
    rng = np.random.default_rng(7)
    c = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=np.float32)
    x = (c[rng.integers(0, 4, size=300)] + rng.normal(scale=0.3, size=(300, 2))).astype(np.float32)
    allowed = np.array([True, False, True, False])
    rows, dist = assign_nearest(x, c, "euclid", allowed)
    assert set(np.unique(rows)) <= {0, 2}
    brute = np.sqrt(((x[:, None, :] - c[None, [0, 2]]) ** 2).sum(-1))
    np.testing.assert_array_equal(rows, np.array([0, 2])[brute.argmin(1)])
    np.testing.assert_allclose(dist, brute.min(1), rtol=1e-4, atol=1e-4)
    # an all-true mask changes nothing
    r_all, d_all = assign_nearest(x, c, "euclid", np.ones(4, dtype=bool))
    r_none, d_none = assign_nearest(x, c, "euclid")
    np.testing.assert_array_equal(r_all, r_none)
    np.testing.assert_array_equal(d_all, d_none)


def test_pairwise_distance_shapes() -> None:
    x = np.zeros((3, 2), dtype=np.float32)
    c = np.array([[3, 4], [0, 0]], dtype=np.float32)
    np.testing.assert_allclose(pairwise_distance(x, c, "euclid"), [[5, 0]] * 3, atol=1e-6)


# --------------------------------------------------------------------------- choose_k


def test_choose_k_finds_five_blobs() -> None:
    x, y = euclid_blobs(k=5, d=4, n_per=60, seed=8)
    steps: list[tuple[int, int]] = []
    k, fit, table = choose_k(x, 2, 8, metric="euclid", seed=0, n_init=2, on_step=lambda i, n: steps.append((i, n)))
    assert k == 5
    assert [s.k for s in table] == list(range(2, 9))
    assert all(isinstance(s, KScore) for s in table)
    assert [s.k for s in table if s.chosen] == [5]
    assert max(table, key=lambda s: s.silhouette).k == 5
    assert fit.centroids.shape == (5, 4)
    assert adjusted_rand_score(y, fit.labels) > 0.95
    assert steps == [(i, 7) for i in range(1, 8)]
    # inertia falls as k grows on such data
    assert table[0].inertia > table[3].inertia


def test_choose_k_cosine() -> None:
    x, _ = cosine_blobs(k=3, d=6, n_per=60, seed=9)
    k, fit, table = choose_k(x, 2, 5, metric="cosine", seed=0, n_init=2)
    assert k == 3 and len(table) == 4


# --------------------------------------------------------------------------- match_clusters
# Ids are matched by shared members: both models label the same fit sample.


def test_first_model_gets_fresh_ids() -> None:
    rows = np.array([0, 1, 2, 2, 1, 0])
    ids, report, nxt = match_clusters(rows, 3, None, None, next_id=7)
    assert ids.tolist() == [7, 8, 9] and nxt == 10
    assert report.appeared == [7, 8, 9] and report.persisted == [] and report.vanished == []


def test_permuted_clusters_keep_their_ids() -> None:
    rng = np.random.default_rng(10)
    old_ids = np.array([3, 7, 8, 11, 12])
    old_of_sample = old_ids[rng.integers(0, 5, size=500)]
    perm = {3: 4, 7: 2, 8: 0, 11: 3, 12: 1}  # the new fit numbers the same clusters differently
    new_rows = np.array([perm[int(o)] for o in old_of_sample])
    # a few points changed cluster at the borders
    flip = rng.choice(500, size=10, replace=False)
    new_rows[flip] = (new_rows[flip] + 1) % 5
    ids, report, nxt = match_clusters(new_rows, 5, old_of_sample, old_ids, next_id=13)
    assert {int(ids[r]): o for o, r in perm.items()} == {o: o for o in perm}  # row r inherited old id o
    assert nxt == 13
    assert report.persisted == sorted(old_ids.tolist())
    assert report.appeared == [] and report.vanished == []
    assert report.split == {} and report.merged == {}


def test_new_cluster_gets_fresh_id_and_merged_one_vanishes() -> None:
    # old: A (id 0) = 100 points + 20 far-away points the old model also put in A; B (id 1); C (id 2)
    old_of_sample = np.array([0] * 100 + [1] * 100 + [2] * 100 + [0] * 20)
    # new: row 0 = A, row 1 = B and C merged, row 2 = the 20 far-away points
    new_rows = np.array([0] * 100 + [1] * 200 + [2] * 20)
    ids, report, nxt = match_clusters(new_rows, 3, old_of_sample, np.array([0, 1, 2]), next_id=5)
    assert ids[0] == 0
    assert ids[1] in (1, 2)
    gone = 3 - int(ids[1])
    assert ids[2] == 5 and nxt == 6
    assert report.appeared == [5]
    assert report.vanished == [gone]
    assert report.persisted == sorted([0, int(ids[1])])
    assert report.merged == {int(ids[1]): [1, 2]}


def test_split_cluster_keeps_its_id_on_one_half() -> None:
    old_of_sample = np.array([5] * 200 + [6] * 100)
    new_rows = np.array([0] * 110 + [1] * 90 + [2] * 100)
    ids, report, nxt = match_clusters(new_rows, 3, old_of_sample, np.array([5, 6]), next_id=10)
    assert ids.tolist() == [5, 10, 6] and nxt == 11
    assert report.split == {5: [5, 10]}
    assert report.appeared == [10] and report.vanished == []


def test_majority_overlap_is_a_match() -> None:
    # new row 0 takes 40 of old id 4's 100 points and all 60 of id 9; row 1 the other 60 of id 4
    old_of_sample = np.array([4] * 100 + [9] * 60)
    new_rows = np.array([0] * 40 + [1] * 60 + [0] * 60)
    ids, report, nxt = match_clusters(new_rows, 2, old_of_sample, np.array([4, 9]), next_id=20)
    assert ids.tolist() == [9, 4] and nxt == 20
    assert report.split == {4: [4, 9]}


def test_even_mix_is_no_match() -> None:
    # each new cluster is half of old 4 and half of old 9: no pair shares a majority
    old_of_sample = np.array([4] * 100 + [9] * 100)
    new_rows = np.array([0] * 50 + [1] * 50 + [0] * 50 + [1] * 50)
    ids, report, nxt = match_clusters(new_rows, 2, old_of_sample, np.array([4, 9]), next_id=20)
    assert ids.tolist() == [20, 21] and nxt == 22
    assert report.persisted == [] and report.vanished == [4, 9] and report.appeared == [20, 21]
    assert report.merged == {20: [4, 9], 21: [4, 9]}
    assert report.split == {4: [20, 21], 9: [20, 21]}


def test_ids_never_reused_across_generations() -> None:
    rng = np.random.default_rng(11)
    seen: set[int] = set()
    n = 300
    rows = rng.integers(0, 3, size=n)
    ids, _, nxt = match_clusters(rows, 3, None, None, next_id=0)
    seen.update(ids.tolist())
    for _ in range(4):
        old_of_sample = ids[rows]
        rows = rng.integers(0, 3, size=n)  # unrelated to the old clusters: nothing persists
        new_ids, report, nxt2 = match_clusters(rows, 3, old_of_sample, ids, next_id=nxt)
        fresh = [i for i in new_ids.tolist() if i not in ids.tolist()]
        assert all(i >= nxt for i in fresh)
        assert not (set(fresh) & seen)
        assert nxt2 == nxt + len(fresh)
        seen.update(new_ids.tolist())
        ids, nxt = new_ids, nxt2


def test_small_fits_print_nothing_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    """FAISS's own 'please provide at least N training points' would bypass logging (and JSON logs)."""
    x = np.random.default_rng(0).normal(size=(96, 8)).astype(np.float32)
    fit_kmeans(x, 3, metric="euclid", seed=0)
    assert "please provide" not in capfd.readouterr().err
