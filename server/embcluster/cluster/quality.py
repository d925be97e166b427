"""Internal quality criteria of a clustering, computed on the fit sample."""

from __future__ import annotations

import numpy as np

from ..store.base import Metric

__all__ = ["SILHOUETTE_SAMPLE", "quality"]

SILHOUETTE_SAMPLE = 3000
BOUNDED_SAMPLE = 10_000


def quality(x: np.ndarray, labels: np.ndarray, *, metric: Metric, seed: int) -> dict[str, float]:
    """Silhouette (seeded subsample of at most 3,000 points), Davies–Bouldin and Calinski–Harabasz
    (at most 10,000 points: they work in float64, and a run's memory should not grow with them).

    A single cluster gives silhouette -1, Davies–Bouldin inf and Calinski–Harabasz 0.
    """
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(len(x), size=min(len(x), BOUNDED_SAMPLE), replace=False))
    x, labels = x[sub], labels[sub]
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if len(np.unique(labels)) < 2:
        return {"silhouette": -1.0, "davies_bouldin": float("inf"), "calinski_harabasz": 0.0}
    sil_rows = rng.choice(len(x), size=min(len(x), SILHOUETTE_SAMPLE), replace=False)
    sil = (float(silhouette_score(x[sil_rows], labels[sil_rows], metric="cosine" if metric == "cosine" else "euclidean"))
           if len(np.unique(labels[sil_rows])) > 1 else -1.0)
    return {
        "silhouette": sil,
        "davies_bouldin": float(davies_bouldin_score(x, labels)),
        "calinski_harabasz": float(calinski_harabasz_score(x, labels)),
    }
