"""k-means fit on a bounded sample: k-means++ seeding, ``n_init`` restarts, Lloyd iterations.

Backends: ``faiss`` (default when installed: its Lloyd iterations run near the matrix-product
floor), ``numpy`` (the fallback: blocked matrix products + a sparse update, honours ``tol``)
and ``sklearn`` (reference). All seed each restart with scikit-learn's seeded k-means++ and
keep the restart with the lowest inertia, so the same seed, data and thread count give the
same model.

Cosine collections use spherical k-means: unit-length inputs and centroids re-normalised
after every update, so "nearest centroid" means highest cosine similarity.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..store.base import Metric

__all__ = ["KMeansFit", "fit_kmeans", "available_backend", "refine_minibatch", "default_n_init"]

SMALL_FIT = 1_000_000  # sample points x k below which restarts are cheap


def default_n_init(sample_size: int, k: int) -> int:
    """Restarts when a run gives none: 10 for small fits (as scikit-learn), 3 for large ones.

    A small fit (``sample_size * k <= 1e6``, e.g. 5,000 texts into 45 clusters) costs well
    under a second per restart, so it takes scikit-learn's ``n_init=10`` and its quality; a
    large one keeps 3, where each restart costs seconds and the sample already averages noise.
    """
    return 10 if sample_size * k <= SMALL_FIT else 3

logger = logging.getLogger(__name__)


@dataclass
class KMeansFit:
    """Result of one fit on a sample."""

    centroids: np.ndarray  # (k, d) float32
    labels: np.ndarray  # (n,) int64, row index into centroids
    inertia: float  # sum of squared L2 distances of the sample to its centroids
    backend: str


BACKENDS = ("faiss", "numpy", "sklearn")


def available_backend() -> str:
    """``faiss`` when importable, else ``numpy``."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return "numpy"
    return "faiss"


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def fit_kmeans(
    x: np.ndarray, k: int, *, metric: Metric, seed: int, n_init: int = 3, max_iter: int = 50,
    tol: float = 1e-4, init: np.ndarray | None = None, backend: str | None = None,
) -> KMeansFit:
    """Fit k-means on ``x`` (already a bounded sample).

    Args:
        x: ``(n, d)`` float32 sample, ``n >= k``.
        k: Number of clusters.
        metric: ``cosine`` (spherical k-means) or ``euclid``.
        seed: Seed for initialisation; same seed + data + threads gives the same model.
        n_init: Restarts with k-means++ seeding; the lowest inertia is kept.
        max_iter: Lloyd iterations per restart.
        tol: Stop when the squared centroid shift falls below ``tol`` x the data's mean
            variance (scikit-learn's rule; numpy and sklearn backends; FAISS runs ``max_iter``).
        init: Optional ``(k, d)`` starting centroids (warm start from the previous model).
        backend: ``faiss``, ``numpy`` or ``sklearn``; None picks the fastest available.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if metric == "cosine":
        x = _normalize(x)
    backend = backend or available_backend()
    if backend == "faiss":
        centroids = _fit_faiss(x, k, metric=metric, seed=seed, n_init=n_init, max_iter=max_iter, init=init)
    elif backend == "numpy":
        centroids = _fit_numpy(x, k, metric=metric, seed=seed, n_init=n_init, max_iter=max_iter, tol=tol, init=init)
    elif backend == "sklearn":
        centroids = _fit_sklearn(x, k, metric=metric, seed=seed, n_init=n_init, max_iter=max_iter, tol=tol, init=init)
    else:
        raise ValueError(f"unknown k-means backend {backend!r}; known: {', '.join(BACKENDS)}")
    labels, d2 = _nearest(x, centroids, metric)
    inertia = float(d2.sum())
    return KMeansFit(centroids=centroids, labels=labels.astype(np.int64), inertia=inertia, backend=backend)


def _inertia(x: np.ndarray, centroids: np.ndarray, metric: Metric) -> float:
    """Sum of squared L2 distances to the nearest centroid."""
    return float(_nearest(x, centroids, metric)[1].sum())


def _fit_faiss(
    x: np.ndarray, k: int, *, metric: Metric, seed: int, n_init: int, max_iter: int, init: np.ndarray | None
) -> np.ndarray:
    import faiss

    # FAISS seeds with random points, which often merges nearby clusters; k-means++ seeding
    # (scikit-learn's, seeded) per restart, then FAISS's fast Lloyd iterations.
    best: tuple[float, np.ndarray] | None = None
    for restart, start in enumerate(_seeds(x, k, seed, n_init, init)):
        km = faiss.Kmeans(
            x.shape[1], k, niter=max_iter, nredo=1, seed=(int(seed) + restart) % (2**31),
            spherical=metric == "cosine", max_points_per_centroid=max(len(x) // k + 1, 256), verbose=False,
            # FAISS uses this only to print "please provide at least ..." straight to stderr (past
            # our logging, also under --log-format json); small collections are a normal case here.
            min_points_per_centroid=1,
        )
        km.train(x, init_centroids=start)
        centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
        inertia = _inertia(x, centroids, metric)
        if best is None or inertia < best[0]:
            best = (inertia, centroids)
    assert best is not None
    return best[1]


def _seeds(x: np.ndarray, k: int, seed: int, n_init: int, init: np.ndarray | None) -> list[np.ndarray]:
    """Starting centroids per restart: the warm start, or seeded k-means++."""
    if init is not None:
        return [np.ascontiguousarray(init, dtype=np.float32)]
    from sklearn.cluster import kmeans_plusplus

    # Seeding on a subsample: k-means++ costs O(n k d log k) and the Lloyd iterations that
    # follow use every point anyway; 40 points per centroid keep its spread-out property.
    # Restart seeds come from a SeedSequence, so runs with neighbouring seeds share no restart.
    restart_seeds = np.random.SeedSequence(seed).generate_state(max(1, n_init))
    rng = np.random.default_rng(seed)
    m = min(len(x), max(10_000, 40 * k))
    starts = []
    for restart_seed in restart_seeds:
        sub = x if m == len(x) else x[np.sort(rng.choice(len(x), size=m, replace=False))]
        centers, _ = kmeans_plusplus(sub, k, random_state=int(restart_seed))
        starts.append(np.ascontiguousarray(centers, dtype=np.float32))
    return starts


_BLOCK = 65_536


def _nearest(x: np.ndarray, centroids: np.ndarray, metric: Metric) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid per row and its squared L2 distance, in row blocks (bounded memory)."""
    c_sq = (centroids * centroids).sum(axis=1)
    labels = np.empty(len(x), dtype=np.int64)
    d2 = np.empty(len(x), dtype=np.float64)
    for s in range(0, len(x), _BLOCK):
        xb = x[s:s + _BLOCK]
        # argmin ||x - c||^2 = argmin (||c||^2 - 2 x.c): one matrix product per block.
        scores = c_sq[None, :] - 2.0 * (xb @ centroids.T)
        lab = scores.argmin(axis=1)
        labels[s:s + _BLOCK] = lab
        d2[s:s + _BLOCK] = np.maximum(scores[np.arange(len(xb)), lab] + (xb * xb).sum(axis=1), 0.0)
    return labels, d2


def _fit_numpy(
    x: np.ndarray, k: int, *, metric: Metric, seed: int, n_init: int, max_iter: int, tol: float,
    init: np.ndarray | None,
) -> np.ndarray:
    from scipy import sparse

    n = len(x)
    tol_abs = tol * float(np.mean(np.var(x, axis=0)))
    best: tuple[float, np.ndarray] | None = None
    for centroids in _seeds(x, k, seed, n_init, init):
        for _ in range(max_iter):
            labels, d2 = _nearest(x, centroids, metric)
            member = sparse.csr_matrix((np.ones(n, dtype=np.float32), (labels, np.arange(n))), shape=(k, n))
            sums = np.asarray(member @ x, dtype=np.float32)
            counts = np.bincount(labels, minlength=k)
            new = centroids.copy()
            filled = counts > 0
            new[filled] = sums[filled] / counts[filled, None]
            empty = np.flatnonzero(~filled)
            if len(empty):  # re-seed empty clusters with the points farthest from their centroid
                new[empty] = x[np.argsort(-d2, kind="stable")[: len(empty)]]
            if metric == "cosine":
                new = _normalize(new)
            shift = float(((new - centroids) ** 2).sum())
            centroids = new
            if shift <= tol_abs:
                break
        inertia = _inertia(x, centroids, metric)
        if best is None or inertia < best[0]:
            best = (inertia, centroids)
    assert best is not None
    return best[1]


def _fit_sklearn(
    x: np.ndarray, k: int, *, metric: Metric, seed: int, n_init: int, max_iter: int, tol: float,
    init: np.ndarray | None,
) -> np.ndarray:
    from sklearn.cluster import KMeans

    km = KMeans(
        n_clusters=k, init=init if init is not None else "k-means++", n_init=1 if init is not None else n_init,
        max_iter=max_iter, tol=tol, random_state=seed % (2**32),
    )
    km.fit(x)
    centroids = km.cluster_centers_.astype(np.float32)
    return _normalize(centroids) if metric == "cosine" else centroids


def refine_minibatch(
    centroids: np.ndarray, counts: np.ndarray, batches: Iterable[np.ndarray], *, metric: Metric
) -> np.ndarray:
    """Mini-batch k-means updates (Sculley 2010) of a sample fit with further batches of the data.

    Each centroid moves towards its batch members' mean with a learning rate of
    ``members in batch / members seen so far`` (``counts`` starts at the fit sample's sizes),
    so the fit sees more of the collection than the sample at the cost of one assignment
    per batch.
    """
    from scipy import sparse

    c = np.array(centroids, dtype=np.float32)
    seen = np.asarray(counts, dtype=np.float64).copy()
    k = len(c)
    for xb in batches:
        xb = np.ascontiguousarray(xb, dtype=np.float32)
        if metric == "cosine":
            xb = _normalize(xb)
        labels, _ = _nearest(xb, c, metric)
        member = sparse.csr_matrix((np.ones(len(xb), dtype=np.float32), (labels, np.arange(len(xb)))), shape=(k, len(xb)))
        sums = np.asarray(member @ xb, dtype=np.float64)
        n_b = np.bincount(labels, minlength=k).astype(np.float64)
        hit = n_b > 0
        seen[hit] += n_b[hit]
        lr = n_b[hit] / seen[hit]
        c[hit] = ((1.0 - lr)[:, None] * c[hit] + lr[:, None] * (sums[hit] / n_b[hit, None])).astype(np.float32)
        if metric == "cosine":
            c = _normalize(c)
    return c
