"""Choice of k from a range, by a documented vote of four criteria on the fit sample.

For every candidate k the sample is clustered and scored with

* the silhouette (higher is better; on a seeded subsample of at most 3,000 points),
* Davies–Bouldin (lower is better),
* Calinski–Harabasz (higher is better),
* the knee of the inertia curve (Kneedle: the k farthest below the chord joining the ends).

**Rule**: each of silhouette, Davies–Bouldin and Calinski–Harabasz ranks the candidates
(1 = best); the knee gives rank 1 to its k and rank 2 to every other; the chosen k has the
lowest mean rank; ties go to the higher silhouette, then to the smaller k. The whole table is
returned with the run so users see why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..store.base import Metric
from .kmeans import KMeansFit, fit_kmeans
from .quality import quality

__all__ = ["KScore", "choose_k", "knee_index"]

logger = logging.getLogger(__name__)


@dataclass
class KScore:
    """One candidate k, its criteria and its mean rank under the rule."""

    k: int
    silhouette: float
    inertia: float
    davies_bouldin: float = 0.0
    calinski_harabasz: float = 0.0
    knee: bool = False
    mean_rank: float = 0.0
    chosen: bool = False


def knee_index(ks: np.ndarray, inertia: np.ndarray) -> int:
    """Index of the knee of a decreasing inertia curve (Kneedle on the normalised curve)."""
    if len(ks) < 3 or inertia.max() == inertia.min():
        return 0
    x = (ks - ks.min()) / (ks.max() - ks.min())
    y = (inertia - inertia.min()) / (inertia.max() - inertia.min())
    return int(np.argmax(1.0 - x - y))


def _ranks(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    order = np.argsort(-values if higher_is_better else values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks


def choose_k(
    x: np.ndarray, k_min: int, k_max: int, *, metric: Metric, seed: int, n_init: int,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[int, KMeansFit, list[KScore]]:
    """Fit every k in ``[k_min, k_max]`` and pick one by the module's rule.

    Returns the chosen k, its fit and the per-k table.
    """
    fits: list[KMeansFit] = []
    table: list[KScore] = []
    candidates = list(range(k_min, k_max + 1))
    for i, k in enumerate(candidates):
        fit = fit_kmeans(x, k, metric=metric, seed=seed, n_init=n_init)
        q = quality(x, fit.labels, metric=metric, seed=seed)
        fits.append(fit)
        table.append(KScore(k=k, inertia=fit.inertia, silhouette=q["silhouette"],
                            davies_bouldin=q["davies_bouldin"], calinski_harabasz=q["calinski_harabasz"]))
        if on_step:
            on_step(i + 1, len(candidates))
    sil = np.array([t.silhouette for t in table])
    knee = knee_index(np.array(candidates, dtype=float), np.array([t.inertia for t in table]))
    knee_rank = np.full(len(table), 2.0)
    knee_rank[knee] = 1.0
    mean_rank = (_ranks(sil, True) + _ranks(np.array([t.davies_bouldin for t in table]), False)
                 + _ranks(np.array([t.calinski_harabasz for t in table]), True) + knee_rank) / 4.0
    best = min(range(len(table)), key=lambda i: (mean_rank[i], -sil[i], candidates[i]))
    for i, t in enumerate(table):
        t.knee, t.mean_rank, t.chosen = i == knee, float(mean_rank[i]), i == best
    logger.info("chose k=%d (mean rank %.2f, silhouette %.4f) from %d..%d", candidates[best], mean_rank[best],
                sil[best], k_min, k_max)
    return candidates[best], fits[best], table
