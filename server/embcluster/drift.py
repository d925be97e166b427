"""Cluster drift: how far a collection has moved from its served model.

Pure numpy functions plus a bounded per-collection window of recent online labels.

Formulas (documented in the README, "Scheduling and drift"):

* **PSI** (population stability index) of two share vectors ``p`` (reference) and ``q``
  (current) over the same bins: ``Σ (q_i − p_i) · ln(q_i / p_i)``, where each share is first
  clipped to at least ``PSI_EPSILON`` (1e-4) so an empty bin contributes a large but finite
  term. 0 = identical; < 0.1 is usually read as stable, 0.1–0.25 as a moderate shift, > 0.25
  as a major one.
* **KS**: the two-sample Kolmogorov–Smirnov statistic ``max_x |F_ref(x) − F_cur(x)|``. The
  reference side is kept as a quantile sketch (``SKETCH_QUANTILES`` evenly spaced quantiles of
  the fit sample's ``cluster_distance``) and its CDF is interpolated linearly between them
  (error ≤ 1 / (quantiles − 1)).
* **Centroid shift**: per cluster id present in both versions, the distance between its two
  centroids in the collection's metric (``1 − cos`` or L2).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .models import ClusterModel
from .store.base import Metric

__all__ = [
    "PSI_EPSILON",
    "SKETCH_QUANTILES",
    "psi",
    "psi_by_id",
    "ks_statistic",
    "ks_against_sketch",
    "quantile_sketch",
    "centroid_shift",
    "fit_summary",
    "RecentWindow",
    "RecentWindows",
    "RecentStats",
    "version_drift",
    "recent_drift",
]

PSI_EPSILON = 1e-4
SKETCH_QUANTILES = 101  # 0%, 1%, ..., 100%


def _shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts)


def psi(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray,
        eps: float = PSI_EPSILON) -> float:
    """Population stability index of two count (or share) vectors over the same bins.

    Args:
        reference: Counts or shares per bin of the reference population.
        current: Counts or shares per bin of the current population (same length).
        eps: Floor of each share, so empty bins give a finite term.

    Returns:
        ``Σ (q − p) · ln(q / p)`` over the normalised, clipped shares (>= 0).
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.shape != cur.shape or ref.ndim != 1:
        raise ValueError(f"psi needs two 1-d vectors of one length, got shapes {ref.shape} and {cur.shape}")
    p = np.maximum(_shares(ref), eps)
    q = np.maximum(_shares(cur), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def psi_by_id(reference: Mapping[int, float], current: Mapping[int, float], eps: float = PSI_EPSILON) -> float:
    """PSI over the union of two ``cluster id -> count`` maps (a missing id counts 0)."""
    ids = sorted(set(reference) | set(current))
    return psi([reference.get(i, 0.0) for i in ids], [current.get(i, 0.0) for i in ids], eps)


def ks_statistic(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Exact two-sample Kolmogorov–Smirnov statistic ``max |F_a − F_b|`` (0 when either is empty)."""
    x = np.sort(np.asarray(a, dtype=np.float64))
    y = np.sort(np.asarray(b, dtype=np.float64))
    if not len(x) or not len(y):
        return 0.0
    grid = np.concatenate([x, y])
    fa = np.searchsorted(x, grid, side="right") / len(x)
    fb = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.max(np.abs(fa - fb)))


def quantile_sketch(values: Sequence[float] | np.ndarray, n: int = SKETCH_QUANTILES) -> list[float]:
    """``n`` evenly spaced quantiles (0 .. 1) of ``values`` (empty input: empty list)."""
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return []
    return [float(q) for q in np.quantile(v, np.linspace(0.0, 1.0, n))]


def _sketch_cdf(sketch: np.ndarray, x: np.ndarray) -> np.ndarray:
    """CDF of the distribution a quantile sketch describes, linear between its quantiles."""
    levels = np.linspace(0.0, 1.0, len(sketch))
    # np.interp needs increasing xp; ties (a point mass) take the highest level at that value.
    out = np.interp(x, sketch, levels, left=0.0, right=1.0)
    hi = np.searchsorted(sketch, x, side="right")  # x at/above a run of equal quantiles
    return np.where(hi > 0, np.maximum(out, levels[np.maximum(hi - 1, 0)]), out)


def ks_against_sketch(sketch: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray) -> float:
    """KS statistic between a reference quantile sketch and a sample of current values."""
    s = np.asarray(sketch, dtype=np.float64)
    y = np.sort(np.asarray(values, dtype=np.float64))
    if len(s) < 2 or not len(y):
        return 0.0
    grid = np.concatenate([s, y])
    # Both CDFs are right-continuous: the supremum is at a grid point or just below one.
    grid = np.concatenate([grid, np.nextafter(grid, -np.inf)])
    f_ref = _sketch_cdf(s, grid)
    f_cur = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.max(np.abs(f_ref - f_cur)))


def centroid_shift(previous: np.ndarray, current: np.ndarray, metric: Metric) -> np.ndarray:
    """Row-wise distance between matched centroids (``1 − cos`` for cosine, L2 for euclid)."""
    a = np.asarray(previous, dtype=np.float64)
    b = np.asarray(current, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"centroid_shift needs matched rows, got shapes {a.shape} and {b.shape}")
    if metric == "cosine":
        na = np.linalg.norm(a, axis=1)
        nb = np.linalg.norm(b, axis=1)
        cos = (a * b).sum(axis=1) / np.maximum(na * nb, 1e-12)
        return np.maximum(1.0 - cos, 0.0)
    return np.linalg.norm(a - b, axis=1)


def fit_summary(rows: np.ndarray, distances: np.ndarray, is_anomaly: np.ndarray, k: int) -> dict[str, Any]:
    """What drift needs of a model's fit sample, as JSON (stored in the model's metrics).

    Args:
        rows: Assigned centroid row of each sample point (populated rows only).
        distances: Each sample point's ``cluster_distance``.
        is_anomaly: Each sample point's decision.
        k: Number of centroid rows.
    """
    return {
        "n": int(len(rows)),
        "sizes": [int(c) for c in np.bincount(rows, minlength=k)],
        "distance_quantiles": quantile_sketch(distances),
        "anomaly_rate": float(np.mean(is_anomaly)) if len(rows) else 0.0,
    }


@dataclass
class RecentStats:
    """A copy of a window's contents."""

    model_version: int
    rows: np.ndarray
    distances: np.ndarray
    is_anomaly: np.ndarray

    @property
    def count(self) -> int:
        """Points in the window."""
        return int(len(self.rows))


class RecentWindow:
    """The newest ``capacity`` points labelled online with one model version (a ring buffer).

    Adding points labelled by another version clears the window first, so it always describes
    the served model's recent ingests. Thread-safe.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._rows = np.zeros(capacity, dtype=np.int32)
        self._dist = np.zeros(capacity, dtype=np.float32)
        self._anom = np.zeros(capacity, dtype=bool)
        self._version = 0
        self._next = 0  # points written since the last reset

    @property
    def model_version(self) -> int:
        """The version whose labels the window holds (0 = none yet)."""
        return self._version

    def reset(self, model_version: int = 0) -> None:
        """Empty the window (a new version was served)."""
        with self._lock:
            self._version = model_version
            self._next = 0

    def add(self, model_version: int, rows: np.ndarray, distances: np.ndarray, is_anomaly: np.ndarray) -> None:
        """Record a batch of online labels of ``model_version``."""
        n = len(rows)
        if not n:
            return
        with self._lock:
            if model_version != self._version:
                self._version, self._next = model_version, 0
            if n >= self.capacity:  # only the newest fit
                rows, distances, is_anomaly = rows[-self.capacity:], distances[-self.capacity:], is_anomaly[-self.capacity:]
                start, n_put = (self._next + n - self.capacity) % self.capacity, self.capacity
            else:
                start, n_put = self._next % self.capacity, n
            idx = (start + np.arange(n_put)) % self.capacity
            self._rows[idx] = rows
            self._dist[idx] = distances
            self._anom[idx] = is_anomaly
            self._next += n

    def snapshot(self) -> RecentStats:
        """The window's contents (order not preserved)."""
        with self._lock:
            m = min(self._next, self.capacity)
            return RecentStats(self._version, self._rows[:m].copy(), self._dist[:m].astype(np.float64),
                               self._anom[:m].copy())


def _rows_of(cluster_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Centroid rows of the stable ids ``wanted`` (each must occur in ``cluster_ids``)."""
    order = np.argsort(cluster_ids)
    return order[np.searchsorted(cluster_ids, wanted, sorter=order)]


def version_drift(served: ClusterModel, previous: ClusterModel | None) -> dict[str, float | None]:
    """Drift between two model versions: PSI of full-pass cluster shares and centroid shift.

    Clusters are matched by their stable id. ``psi_versions`` needs both versions' full-pass
    sizes (``sizes_full`` in their metrics); the shift covers ids present in both versions.
    """
    out: dict[str, float | None] = {"psi_versions": None, "centroid_shift_mean": None, "centroid_shift_max": None}
    if previous is None:
        return out
    a, b = previous.metrics.get("sizes_full"), served.metrics.get("sizes_full")
    if a and b:
        out["psi_versions"] = psi_by_id(dict(zip(previous.cluster_ids.tolist(), a)),
                                        dict(zip(served.cluster_ids.tolist(), b)))
    common = np.intersect1d(previous.cluster_ids, served.cluster_ids)
    if len(common) and previous.centroids.shape[1] == served.centroids.shape[1]:
        shift = centroid_shift(previous.centroids[_rows_of(previous.cluster_ids, common)],
                               served.centroids[_rows_of(served.cluster_ids, common)], served.metric)
        out["centroid_shift_mean"], out["centroid_shift_max"] = float(shift.mean()), float(shift.max())
    return out


def recent_drift(served: ClusterModel, recent: RecentStats) -> dict[str, float | None]:
    """Drift between the served model's fit sample and the recent online labels.

    Needs the model's ``drift_fit`` metrics (written at calibration); fields that cannot be
    measured (an older model, an empty window) are None.
    """
    fit = served.metrics.get("drift_fit") or {}
    quantiles = np.asarray(fit.get("distance_quantiles") or [], dtype=np.float64)
    out: dict[str, float | None] = {
        "psi_shares": None,
        "distance_p50_fit": float(np.interp(0.5, np.linspace(0, 1, len(quantiles)), quantiles)) if len(quantiles) > 1 else None,
        "distance_p90_fit": float(np.interp(0.9, np.linspace(0, 1, len(quantiles)), quantiles)) if len(quantiles) > 1 else None,
        "distance_p50_recent": None,
        "distance_p90_recent": None,
        "distance_ks": None,
        "anomaly_rate_fit": float(fit["anomaly_rate"]) if "anomaly_rate" in fit else None,
        "anomaly_rate_recent": None,
    }
    if recent.model_version != served.version or not recent.count:
        return out
    if fit.get("sizes") and len(fit["sizes"]) == served.k:
        out["psi_shares"] = psi(fit["sizes"], np.bincount(recent.rows, minlength=served.k))
    out["distance_p50_recent"] = float(np.quantile(recent.distances, 0.5))
    out["distance_p90_recent"] = float(np.quantile(recent.distances, 0.9))
    if len(quantiles) > 1:
        out["distance_ks"] = ks_against_sketch(quantiles, recent.distances)
    out["anomaly_rate_recent"] = float(recent.is_anomaly.mean())
    return out


class RecentWindows:
    """One :class:`RecentWindow` per collection, made on first use.

    Args:
        capacity: Points each window keeps (``Settings.drift_window``).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._windows: dict[str, RecentWindow] = {}

    def get(self, name: str) -> RecentWindow:
        """The window of collection ``name``."""
        window = self._windows.get(name)
        if window is None:
            window = self._windows.setdefault(name, RecentWindow(self.capacity))
        return window

    def forget(self, name: str) -> None:
        """Drop a (deleted) collection's window."""
        self._windows.pop(name, None)
