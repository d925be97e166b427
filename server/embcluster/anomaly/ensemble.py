"""The default anomaly model: CBLOF scores of several k-means fits, normalised and averaged.

Why an ensemble, and why its own k: a cluster-based scorer needs the rare behaviour (a fraud
ring, a bot, a misconfigured device) to form a *small* cluster next to large ones. Whether it
does depends on k: at k = 4 a group holding 5% of the traffic is the smallest cluster, at k = 32
the bulk is split into 3% pieces and the same group is one of the largest, so it counts as
"normal" and its members, close to their own centroid, score low. No single k works for every
data set, and the k that groups a catalogue best is rarely the one that isolates its outliers.
So the anomaly model is fitted apart from the grouping, at every k of :data:`ENSEMBLE_KS` that
the sample supports, and each point's score is the mean over those fits of its robustly
normalised CBLOF score (distance to the nearest *large* centroid, see
:func:`~embcluster.anomaly.scoring.large_clusters`). Fits where the rare group is small
dominate for its members; fine fits keep local outliers visible. ``bench/bench_anomaly.py``
measures it on nine labelled outlier sets, each sent both as raw vectors and as events.

Everything here is pure: a function from a sample (and a seed) to components, and from
components and distances to scores. Online (ingest) and batch (run write-back) scoring call the
same :func:`ensemble_scores`, so they agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cluster.assign import pairwise_distance
from ..cluster.kmeans import fit_kmeans
from ..store.base import Metric
from .scoring import large_clusters

__all__ = ["ENSEMBLE_KS", "MIN_POINTS_PER_CLUSTER", "FIT_SAMPLE", "ScoreComponent", "ensemble_ks", "fit_components",
           "component_distances", "ensemble_scores"]

ENSEMBLE_KS = (2, 4, 8, 16, 32)
MIN_POINTS_PER_CLUSTER = 10  # a fit of k clusters needs about this many sample points per cluster
SCORE_DECIMALS = 6
# The fits' cost is bounded whatever the run's sample: at most this many of its points (seeded),
# one k-means++ start each (the ensemble itself averages over fits, restarts buy little).
FIT_SAMPLE = 10_000
FIT_N_INIT = 1


@dataclass(frozen=True)
class ScoreComponent:
    """One k-means fit of the anomaly model and how to normalise its CBLOF scores.

    Attributes:
        centroids: ``(k, d)`` float32 centroids of this fit.
        large: Which clusters are large (the bulk of the sample), per row.
        median: Median CBLOF score on the fit sample.
        scale: ``q90 - median`` of those scores (the normalised score is ``(s - median) / scale``).
        small_share: Share of the fit sample in small clusters.
    """

    centroids: np.ndarray
    large: np.ndarray
    median: float
    scale: float
    small_share: float

    @property
    def k(self) -> int:
        """Number of centroids."""
        return int(len(self.centroids))

    @property
    def small_clusters(self) -> int:
        """Number of small (rare) clusters."""
        return int((~self.large).sum())

    def raw(self, dist: np.ndarray) -> np.ndarray:
        """CBLOF score: distance to the nearest large centroid (``dist`` is ``(n, k)``)."""
        return dist[:, self.large].min(axis=1).astype(np.float64)

    def normalised(self, dist: np.ndarray) -> np.ndarray:
        """Robustly normalised score: 0 at the sample median, 1 at its 90th percentile."""
        return (self.raw(dist) - self.median) / self.scale


def ensemble_ks(sample_size: int) -> list[int]:
    """The ks of :data:`ENSEMBLE_KS` that a sample of this size supports (at least k = 2 when it has 4 points)."""
    ks = [k for k in ENSEMBLE_KS if k * MIN_POINTS_PER_CLUSTER <= sample_size]
    return ks or ([2] if sample_size >= 4 else [])


def fit_components(sample: np.ndarray, *, metric: Metric, seed: int) -> list[ScoreComponent]:
    """Fit the anomaly model's k-means at every supported k of :data:`ENSEMBLE_KS` (seeded, reproducible).

    On at most :data:`FIT_SAMPLE` points of ``sample`` (a seeded subsample), one start per k.
    """
    out: list[ScoreComponent] = []
    if len(sample) > FIT_SAMPLE:
        pick = np.random.default_rng(seed).choice(len(sample), size=FIT_SAMPLE, replace=False)
        sample = sample[np.sort(pick)]
    for k in ensemble_ks(len(sample)):
        fit = fit_kmeans(sample, k, metric=metric, seed=seed + k, n_init=FIT_N_INIT)
        centroids = np.asarray(fit.centroids, dtype=np.float32)
        dist = np.maximum(pairwise_distance(sample, centroids, metric), 0.0)
        sizes = np.bincount(dist.argmin(axis=1), minlength=k)
        large = large_clusters(sizes)
        raw = dist[:, large].min(axis=1).astype(np.float64)
        median = float(np.median(raw))
        scale = float(np.quantile(raw, 0.9)) - median
        if not scale > 1e-12:  # a sample with (nearly) no spread: fall back to the standard deviation
            scale = max(float(raw.std()), 1e-9)
        out.append(ScoreComponent(centroids=centroids, large=large, median=median, scale=scale,
                                  small_share=float(sizes[~large].sum() / max(sizes.sum(), 1))))
    return out


def component_distances(x: np.ndarray, stacked: np.ndarray, metric: Metric) -> np.ndarray:
    """``(n, sum of k)`` distances to every component's centroids, in one float64 matrix product.

    float64 on purpose: a float32 product rounds differently depending on how many rows it is
    given (BLAS blocking), so a point scored alone at ingest and in a page of a write-back could
    land on either side of the threshold. In float64 the difference is far below the rounding
    of the final score (:func:`ensemble_scores`).
    """
    return np.maximum(pairwise_distance(np.asarray(x, dtype=np.float64), stacked.astype(np.float64, copy=False),
                                        metric), 0.0)


def ensemble_scores(dist: np.ndarray, components: list[ScoreComponent] | tuple[ScoreComponent, ...]) -> np.ndarray:
    """Mean normalised CBLOF score over the components (``dist`` from :func:`component_distances`)."""
    total = np.zeros(len(dist))
    start = 0
    for c in components:
        total += c.normalised(dist[:, start:start + c.k])
        start += c.k
    # Rounded to 6 decimals (the score's unit is the sample's median-to-q90 spread): a value with
    # a short decimal form survives the store's JSON payload round trip bit for bit, so the score
    # returned at ingest, classify's and the stored one agree exactly; 17-digit floats can come
    # back one ulp off.
    return np.round(total / max(len(components), 1), SCORE_DECIMALS)
