"""Mini-batch refinement moves a small-sample fit towards the full data's centroids."""

from __future__ import annotations

import numpy as np

from embcluster.cluster.kmeans import fit_kmeans, refine_minibatch


def test_refinement_reduces_centroid_error_on_the_full_data() -> None:
    rng = np.random.default_rng(0)
    true = rng.normal(size=(5, 16)).astype(np.float32) * 3
    labels = rng.integers(0, 5, 20_000)
    x = (true[labels] + rng.normal(size=(20_000, 16))).astype(np.float32)
    sample = x[:100]  # a tiny sample: noisy centroids
    fit = fit_kmeans(sample, 5, metric="euclid", seed=0, n_init=3)

    def error(c: np.ndarray) -> float:  # distance of each true centre to its nearest centroid
        return float(np.sqrt(((true[:, None, :] - c[None]) ** 2).sum(-1)).min(1).mean())

    refined = refine_minibatch(fit.centroids, np.bincount(fit.labels, minlength=5),
                               (x[i:i + 2000] for i in range(100, 20_000, 2000)), metric="euclid")
    assert refined.shape == fit.centroids.shape
    assert error(refined) < 0.5 * error(fit.centroids)


def test_refinement_keeps_spherical_centroids_unit_length() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 8)).astype(np.float32)
    fit = fit_kmeans(x[:300], 4, metric="cosine", seed=0)
    refined = refine_minibatch(fit.centroids, np.bincount(fit.labels, minlength=4), [x[300:1300], x[1300:]],
                               metric="cosine")
    np.testing.assert_allclose(np.linalg.norm(refined, axis=1), 1.0, rtol=1e-5)
