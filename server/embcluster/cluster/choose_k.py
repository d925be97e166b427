"""Choice of k from a range: the k with the best silhouette on a sample."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..store.base import Metric
from .kmeans import KMeansFit, fit_kmeans

__all__ = ["KScore", "choose_k"]

logger = logging.getLogger(__name__)

SILHOUETTE_SAMPLE = 3000


@dataclass
class KScore:
    """One candidate k and how well it separates the sample."""

    k: int
    silhouette: float
    inertia: float


def choose_k(
    x: np.ndarray, k_min: int, k_max: int, *, metric: Metric, seed: int, n_init: int,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[int, KMeansFit, list[KScore]]:
    """Fit every k in ``[k_min, k_max]`` and keep the highest (sampled) silhouette.

    Ties go to the smaller k. Returns the chosen k, its fit and the per-k table.
    """
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    sub = rng.choice(len(x), size=min(len(x), SILHOUETTE_SAMPLE), replace=False)
    best: tuple[float, int, KMeansFit] | None = None
    table: list[KScore] = []
    for i, k in enumerate(range(k_min, k_max + 1)):
        fit = fit_kmeans(x, k, metric=metric, seed=seed, n_init=n_init)
        labels = fit.labels[sub]
        sil = (
            float(silhouette_score(x[sub], labels, metric="cosine" if metric == "cosine" else "euclidean"))
            if len(np.unique(labels)) > 1 else -1.0
        )
        table.append(KScore(k=k, silhouette=sil, inertia=fit.inertia))
        if best is None or sil > best[0] + 1e-9:
            best = (sil, k, fit)
        if on_step:
            on_step(i + 1, k_max - k_min + 1)
    assert best is not None
    logger.info("chose k=%d (silhouette %.4f) from %d..%d", best[1], best[0], k_min, k_max)
    return best[1], best[2], table
