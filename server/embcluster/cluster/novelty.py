"""New groups among the points a served model finds far away: candidate clusters, and a run that adds them.

Pure: no store, no collection. Used twice, with one rule:

* :func:`find_groups` on the recent anomalies read from the store (``GetDrift``'s candidates: a
  new group forming, reported before any run), and
* :func:`grow` in a drift-triggered run whose schedule gives ``k_max``: the fit sample's far
  points are grouped the same way, each supported group seeds one new centroid next to the
  served ones, and k-means is warm-started from old + new centroids on the whole sample (the
  matching then keeps the old ids; the new clusters get new ids).

**Far points**: the served model flags them anomalous, or their distance to the nearest centroid
is above the fit sample's ``FAR_QUANTILE`` distance quantile.

**Grouping rule**: k-means of the far points (seeded); how many groups, j, is decided by the
existing vote (:func:`~.choose_k.choose_k`, over 2 .. ``max_groups``), then checked: every group of
``min_size`` or more members must be *distinct* from the others (its members' mean distance to
their own centroid at most ``SEPARATION`` times their mean distance to any other group's
centroid); if the vote's split is not, j - 1, j - 2, ... are tried, down to one group. Of the
groups, the *supported* ones are reported: at least ``min_size`` members, and separate from the
served model in the same sense (mean distance to their own centroid at most ``SEPARATION`` times
their mean distance to the nearest served centroid). The tail of an existing cluster (a shell of
points around its centroid, in all directions) has a ratio near 1 and is never a new group, so
``k_max`` alone never splits an old group (tests/unit/test_novelty.py; bench/bench_novelty.py's
control). Measured (bench_novelty.py): new synthetic groups 0.16, new WordNet categories (MiniLM,
cosine) 0.6-0.73, tails of fitted clusters >= 0.9.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..store.base import Metric
from .assign import nearest_rows, pairwise_distance
from .choose_k import choose_k
from .kmeans import KMeansFit, fit_kmeans

__all__ = ["FAR_QUANTILE", "SEPARATION", "NOVELTY_MIN_POINTS", "NEAREST_MEMBERS", "MAX_GROUPS", "NewGroup", "Growth",
           "far_mask", "find_groups", "grow"]

FAR_QUANTILE = 0.99  # a distance above the fit sample's p99 is "far", flagged or not
# Own spread / distance to the served model (or to another group) of a supported group (module doc).
SEPARATION = 0.8
NOVELTY_MIN_POINTS = 10  # fewest far points of a new group (or the collection's min_cluster_size, if larger)
NEAREST_MEMBERS = 5  # member indices reported per group (closest to its centroid first)
MAX_GROUPS = 16  # most groups looked for at once (a run adds at most this many clusters)
GROW_MAX_ITER = 20  # Lloyd iterations from old + new centroids


@dataclass
class NewGroup:
    """One supported group of far points."""

    centroid: np.ndarray
    members: np.ndarray  # indices into the points given
    nearest: list[int]  # up to NEAREST_MEMBERS member indices, closest to the centroid first
    mean_distance: float  # mean distance of its members to the nearest served centroid
    separation: float  # mean distance to its own centroid / mean_distance

    @property
    def size(self) -> int:
        """Members."""
        return int(len(self.members))


@dataclass
class Growth:
    """What :func:`grow` did (stored as the new model's ``metrics['novelty']``)."""

    centroids: np.ndarray
    fit: KMeansFit
    far: np.ndarray  # which sample points were far from the served model
    far_points: int
    groups: list[NewGroup] = field(default_factory=list)
    added: int = 0
    splits: list[dict[str, float]] = field(default_factory=list)  # the vote over the far points' groups

    def to_json(self) -> dict[str, object]:
        """The record kept with the model."""
        return {"far_points": self.far_points, "added": self.added, "far_quantile": FAR_QUANTILE,
                "separation_max": SEPARATION, "splits": self.splits,
                "groups": [{"size": g.size, "mean_distance": g.mean_distance, "separation": g.separation}
                           for g in self.groups]}


def far_mask(distances: np.ndarray, is_anomaly: np.ndarray, fit_quantiles: list[float] | np.ndarray) -> np.ndarray:
    """Which points are far: flagged, or beyond the fit sample's ``FAR_QUANTILE`` distance."""
    q = np.asarray(fit_quantiles, dtype=np.float64)
    far = np.asarray(is_anomaly, dtype=bool).copy()
    if len(q) > 1:
        limit = float(np.interp(FAR_QUANTILE, np.linspace(0.0, 1.0, len(q)), q))
        far |= np.asarray(distances) > limit
    return far


def _group(points: np.ndarray, members: np.ndarray, centroid: np.ndarray, served: np.ndarray,
           metric: Metric) -> NewGroup:
    own = pairwise_distance(points[members], centroid[None, :], metric)[:, 0]
    to_served = pairwise_distance(points[members], served, metric).min(axis=1)
    mean_served = float(to_served.mean()) if len(members) else 0.0
    order = np.argsort(own, kind="stable")[:NEAREST_MEMBERS]
    return NewGroup(centroid=centroid, members=members, nearest=[int(members[i]) for i in order],
                    mean_distance=mean_served,
                    separation=float(own.mean()) / mean_served if mean_served > 0 else float("inf"))


def _supported(g: NewGroup, min_size: int) -> bool:
    return g.size >= min_size and g.separation <= SEPARATION


def _distinct(x: np.ndarray, labels: np.ndarray, centroids: np.ndarray, min_size: int, metric: Metric) -> bool:
    """Every group of ``min_size`` or more is at most SEPARATION as far from its own centroid as from any other's."""
    dist = pairwise_distance(x, centroids, metric)
    big = [j for j in range(len(centroids)) if int((labels == j).sum()) >= min_size]
    for a in big:
        rows = dist[labels == a]
        own = float(rows[:, a].mean())
        for b in big:
            if b != a and own > SEPARATION * float(rows[:, b].mean()):
                return False
    return True


def find_groups(points: np.ndarray, served: np.ndarray, *, metric: Metric, min_size: int, max_groups: int,
                seed: int) -> tuple[list[NewGroup], list[dict[str, float]]]:
    """Supported groups among far points (the module's rule), largest first.

    Args:
        points: The far points, ``(n, d)``.
        served: The served model's centroids (populated rows).
        metric: The collection's distance.
        min_size: Fewest members of a group.
        max_groups: Most groups to look for (at most ``MAX_GROUPS``).
        seed: k-means seed (same inputs, same groups).

    Returns:
        The groups and the vote's table (empty when at most two groups were possible).
    """
    x = np.asarray(points, dtype=np.float32)
    min_size = max(int(min_size), 2)
    hi = min(max_groups, MAX_GROUPS, len(x) // min_size)
    if hi < 1:
        return [], []
    best = fit_kmeans(x, 1, metric=metric, seed=seed, n_init=1)
    table: list[dict[str, float]] = []
    if hi >= 2:
        if hi == 2:
            voted, fit = 2, fit_kmeans(x, 2, metric=metric, seed=seed, n_init=3)
        else:
            voted, fit, scores = choose_k(x, 2, hi, metric=metric, seed=seed, n_init=3)
            table = [{k: float(v) for k, v in asdict(sc).items()} for sc in scores]
        for j in range(voted, 1, -1):  # the vote's split, or fewer groups, if its groups are not distinct
            if j != voted:
                fit = fit_kmeans(x, j, metric=metric, seed=seed, n_init=3)
            if _distinct(x, fit.labels, fit.centroids, min_size, metric):
                best = fit
                break
    groups = [_group(x, np.flatnonzero(best.labels == j), best.centroids[j], served, metric)
              for j in range(len(best.centroids))]
    kept = sorted((g for g in groups if _supported(g, min_size)), key=lambda g: -g.size)
    return kept, table


def grow(sample: np.ndarray, served: np.ndarray, far: np.ndarray, *, metric: Metric, min_size: int,
         max_new: int, seed: int) -> Growth:
    """Add a centroid per supported group of the sample's far points, then refit from old + new.

    Args:
        sample: The run's fit sample.
        served: The served model's centroids (its k rows, in row order).
        far: Which sample points are far (:func:`far_mask` under the served model).
        metric: The collection's distance.
        min_size: Fewest sample points of a new cluster.
        max_new: Most clusters to add (``k_max - k``).
        seed: k-means seed.

    Returns:
        The fitted centroids (served rows first, then the new ones) and what was found.
    """
    idx = np.flatnonzero(far)
    groups, table = find_groups(sample[idx], served, metric=metric, min_size=min_size, max_groups=max_new,
                                seed=seed) if max_new > 0 else ([], [])
    groups = groups[:max_new]
    init = np.concatenate([served] + [g.centroid[None, :] for g in groups]).astype(np.float32)
    fit = fit_kmeans(sample, len(init), metric=metric, seed=seed, n_init=1, init=init, max_iter=GROW_MAX_ITER)
    if groups:  # a new centroid the refit left (nearly) empty is not a cluster: drop it and refit
        sizes = np.bincount(nearest_rows(pairwise_distance(sample, fit.centroids, metric)), minlength=len(init))
        keep = [j for j, g in enumerate(groups) if sizes[len(served) + j] >= min_size]
        if len(keep) < len(groups):
            groups = [groups[j] for j in keep]
            init = np.concatenate([served] + [g.centroid[None, :] for g in groups]).astype(np.float32)
            fit = fit_kmeans(sample, len(init), metric=metric, seed=seed, n_init=1, init=init,
                             max_iter=GROW_MAX_ITER)
    for g in groups:  # indices into the sample, not into the far points
        g.members, g.nearest = idx[g.members], [int(idx[i]) for i in g.nearest]
    return Growth(centroids=fit.centroids, fit=fit, far=np.asarray(far, dtype=bool), far_points=int(len(idx)), groups=groups, added=len(groups),
                  splits=table)
