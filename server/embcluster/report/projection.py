"""A seeded 2-D projection of a sample of points, with the centroids in the same plane.

PCA, fitted on the sample: deterministic for a seed, about a second for 10,000 points of 384
dimensions on one core, and nothing beyond numpy and scikit-learn. UMAP was measured and left
out (docs/architecture.md, "The report"): umap-learn brings numba and llvmlite (~210 MB), its
first call spends about a minute compiling, and even warm it took ~23 s for 10,000 points on
the 2-core CI machine, against under a second for PCA.

Cosine collections are compared by angle, so their rows (and the centroids) are scaled to unit
length before the fit, as the clustering sees them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..store.base import Metric

__all__ = ["Projection", "project", "sample_rows"]


@dataclass(frozen=True)
class Projection:
    """Points and centroids in the same 2-D plane.

    Attributes:
        points: ``(n, 2)`` coordinates of the projected points, in input order.
        centroids: ``(k, 2)`` coordinates of the centroids, in input order.
        method: ``"pca"``.
        explained: Share of the fitted rows' variance each of the two axes carries.
    """

    points: np.ndarray
    centroids: np.ndarray
    method: str
    explained: tuple[float, float]


def sample_rows(n: int, limit: int, seed: int, *, keep: np.ndarray | None = None) -> np.ndarray:
    """Row indices of a seeded sample of at most ``limit`` of ``n`` rows, ascending.

    Args:
        n: Rows to choose from.
        limit: Most rows to return (all ``n`` when ``n <= limit``).
        seed: Seed of the draw: the same arguments give the same rows.
        keep: Optional boolean mask of rows drawn first (anomalies, so a map of a large
            collection still shows them): all of them, or a seeded half of ``limit`` when
            there are more; the rest of the sample is drawn uniformly from the rows not drawn.

    Returns:
        Sorted ``int64`` row indices.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    chosen = np.zeros(0, dtype=np.int64)
    rest = np.arange(n, dtype=np.int64)
    if keep is not None:
        mask = np.asarray(keep, dtype=bool)
        if mask.shape != (n,):
            raise ValueError(f"keep has shape {mask.shape}, expected ({n},)")
        flagged = np.flatnonzero(mask)
        if len(flagged) > limit // 2:
            flagged = rng.choice(flagged, size=limit // 2, replace=False)
        chosen = flagged.astype(np.int64)
        rest = np.setdiff1d(rest, chosen, assume_unique=True)
    more = rng.choice(rest, size=limit - len(chosen), replace=False)
    return np.sort(np.concatenate([chosen, more]))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def project(x: np.ndarray, centroids: np.ndarray, *, metric: Metric = "euclid", seed: int = 0,
            fit_rows: np.ndarray | None = None) -> Projection:
    """Project ``x`` and ``centroids`` onto the sample's first two principal axes.

    Args:
        x: ``(n, d)`` vectors of the sampled points.
        centroids: ``(k, d)`` centroids of the model the points are labelled with.
        metric: The collection's metric; ``"cosine"`` rows are scaled to unit length first.
        seed: Seed of the randomized SVD: the same inputs and seed give the same coordinates.
        fit_rows: Optional boolean mask of the rows the axes are fitted on (the points that are
            not anomalies: a few far outliers would otherwise take an axis for themselves and
            squeeze the clusters together); every row is projected. Ignored when it selects
            fewer than two rows.

    Returns:
        The :class:`Projection`. Axes carry float32 coordinates; each axis's sign is fixed by
        the SVD's convention (largest loading positive), so a re-run does not mirror the map.
    """
    pts = np.asarray(x, dtype=np.float64)
    cen = np.asarray(centroids, dtype=np.float64)
    if pts.ndim != 2 or cen.ndim != 2 or (len(cen) and cen.shape[1] != pts.shape[1]):
        raise ValueError(f"points {pts.shape} and centroids {cen.shape} must be 2-D with the same width")
    if metric == "cosine":
        pts, cen = _unit_rows(pts), _unit_rows(cen)
    n, d = pts.shape
    components = min(2, n, d)
    if components < 1 or n < 2:  # nothing to fit: everything at the origin
        return Projection(points=np.zeros((n, 2), np.float32), centroids=np.zeros((len(cen), 2), np.float32),
                          method="pca", explained=(0.0, 0.0))
    # Randomized SVD: fast on (10k, 384) and fixed by random_state; full SVD when it is tiny.
    # Imported here: scikit-learn (and scipy with it) takes about a second to import, and the server imports
    # this module at start-up, which must answer within a couple of seconds (tests/api/test_startup.py).
    from sklearn.decomposition import PCA

    pca = PCA(n_components=components, svd_solver="randomized" if min(n, d) > 10 else "full", random_state=seed)
    mask = None if fit_rows is None else np.asarray(fit_rows, dtype=bool)
    if mask is not None and mask.shape != (n,):
        raise ValueError(f"fit_rows has shape {mask.shape}, expected ({n},)")
    pca.fit(pts[mask] if mask is not None and mask.sum() >= max(components, 2) else pts)
    out_pts = pca.transform(pts)
    out_cen = pca.transform(cen) if len(cen) else np.zeros((0, components))
    ratio = [float(r) for r in np.nan_to_num(pca.explained_variance_ratio_)]
    if components == 1:  # one-dimensional data: a line along x
        out_pts = np.hstack([out_pts, np.zeros((n, 1))])
        out_cen = np.hstack([out_cen, np.zeros((len(out_cen), 1))])
        ratio.append(0.0)
    return Projection(points=out_pts.astype(np.float32), centroids=out_cen.astype(np.float32), method="pca",
                      explained=(ratio[0], ratio[1]))
