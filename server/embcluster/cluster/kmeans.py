"""k-means fit: FAISS when installed (fast, spherical mode for cosine), scikit-learn otherwise.

Cosine collections use spherical k-means: unit-length inputs and centroids re-normalised
after every update, so "nearest centroid" means highest cosine similarity.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..store.base import Metric

__all__ = ["KMeansFit", "fit_kmeans", "available_backend"]

logger = logging.getLogger(__name__)


@dataclass
class KMeansFit:
    """Result of one fit on a sample."""

    centroids: np.ndarray  # (k, d) float32
    labels: np.ndarray  # (n,) int64, row index into centroids
    inertia: float  # sum of squared L2 distances of the sample to its centroids
    backend: str


def available_backend() -> str:
    """``faiss`` when importable, else ``sklearn``."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return "sklearn"
    return "faiss"


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def fit_kmeans(
    x: np.ndarray, k: int, *, metric: Metric, seed: int, n_init: int = 3, max_iter: int = 50,
    init: np.ndarray | None = None, backend: str | None = None,
) -> KMeansFit:
    """Fit k-means on ``x`` (already a bounded sample).

    Args:
        x: ``(n, d)`` float32 sample, ``n >= k``.
        k: Number of clusters.
        metric: ``cosine`` (spherical k-means) or ``euclid``.
        seed: Seed for initialisation; same seed + data + threads gives the same model.
        n_init: Restarts with k-means++ seeding; the lowest inertia is kept.
        max_iter: Lloyd iterations per restart.
        init: Optional ``(k, d)`` starting centroids (warm start from the previous model).
        backend: ``faiss`` or ``sklearn``; None picks the fastest available.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if metric == "cosine":
        x = _normalize(x)
    backend = backend or available_backend()
    if backend == "faiss":
        centroids = _fit_faiss(x, k, metric=metric, seed=seed, n_init=n_init, max_iter=max_iter, init=init)
    else:
        centroids = _fit_sklearn(x, k, metric=metric, seed=seed, n_init=n_init, max_iter=max_iter, init=init)
    from .assign import assign_nearest

    labels, _ = assign_nearest(x, centroids, metric)
    inertia = _inertia(x, centroids, metric)
    return KMeansFit(centroids=centroids, labels=labels.astype(np.int64), inertia=inertia, backend=backend)


def _inertia(x: np.ndarray, centroids: np.ndarray, metric: Metric) -> float:
    from .assign import assign_nearest

    labels, _ = assign_nearest(x, centroids, metric)
    diff = x - centroids[labels]
    return float(np.einsum("ij,ij->", diff, diff))


def _fit_faiss(
    x: np.ndarray, k: int, *, metric: Metric, seed: int, n_init: int, max_iter: int, init: np.ndarray | None
) -> np.ndarray:
    import faiss
    from sklearn.cluster import kmeans_plusplus

    # FAISS seeds with random points, which often merges nearby clusters; k-means++ seeding
    # (scikit-learn's, seeded) per restart, then FAISS's fast Lloyd iterations.
    best: tuple[float, np.ndarray] | None = None
    for restart in range(1 if init is not None else n_init):
        if init is not None:
            start = np.ascontiguousarray(init, dtype=np.float32)
        else:
            start, _ = kmeans_plusplus(x, k, random_state=(seed + restart) % (2**32))
            start = np.ascontiguousarray(start, dtype=np.float32)
        km = faiss.Kmeans(
            x.shape[1], k, niter=max_iter, nredo=1, seed=int(seed + restart) % (2**31),
            spherical=metric == "cosine", max_points_per_centroid=max(len(x) // k + 1, 256), verbose=False,
        )
        km.train(x, init_centroids=start)
        centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
        inertia = _inertia(x, centroids, metric)
        if best is None or inertia < best[0]:
            best = (inertia, centroids)
    assert best is not None
    return best[1]


def _fit_sklearn(
    x: np.ndarray, k: int, *, metric: Metric, seed: int, n_init: int, max_iter: int, init: np.ndarray | None
) -> np.ndarray:
    from sklearn.cluster import KMeans

    km = KMeans(
        n_clusters=k, init=init if init is not None else "k-means++", n_init=1 if init is not None else n_init,
        max_iter=max_iter, random_state=seed % (2**32),
    )
    km.fit(x)
    centroids = km.cluster_centers_.astype(np.float32)
    return _normalize(centroids) if metric == "cosine" else centroids
