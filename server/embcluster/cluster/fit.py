"""From a fit sample to a cluster model: populated clusters, radii, stable ids and anomaly thresholds.

Pure: no store, no collection, no persistence. The clustering run (:mod:`embcluster.core.clustering`)
fits the centroids with :mod:`.kmeans`, calls :func:`calibrate` and saves the model it returns.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from ..anomaly.ensemble import fit_components
from ..anomaly.report import anomaly_summary
from ..anomaly.scoring import DEFAULT_SCORER, large_clusters
from ..anomaly.threshold import calibrate_thresholds, decide
from ..drift import fit_summary
from ..models import ClusterModel
from ..runs import utcnow
from ..schema import CollectionSettings
from ..store.base import Metric
from .assign import nearest_rows, pairwise_distance
from .matching import match_clusters
from .quality import quality

__all__ = ["calibrate"]


def calibrate(sample: np.ndarray, centroids: np.ndarray, *, version: int, metric: Metric,
              settings: CollectionSettings, prev: ClusterModel | None, next_cluster_id: int, seed: int,
              n_init: int, sample_size: int, backend: str, inertia: float,
              match_mask: np.ndarray | None = None) -> tuple[ClusterModel, int]:
    """Populated clusters, radii, stable ids, the anomaly model and its threshold, from the fit sample.

    Args:
        sample: The fit sample, ``(n, dim)``.
        centroids: The fitted centroids, ``(k, dim)``.
        version: The new model's version.
        metric: The collection's distance.
        settings: The collection's settings (minimum cluster size, scorer, threshold mode).
        prev: The model it replaces, in the same feature space (None: no id matching).
        next_cluster_id: The collection's next unused cluster id.
        seed, n_init, sample_size, backend, inertia: The fit's parameters, recorded in the model.
        match_mask: The sample points the id matching counts (None: all). A run that added
            clusters for far points counts only the points ``prev`` explains, so a new cluster
            cannot take the id of the old cluster its points were filed under.

    Returns:
        The model and the collection's next unused cluster id after it.
    """
    k = len(centroids)
    dist_all = np.maximum(pairwise_distance(sample, centroids, metric), 0.0)
    sizes = np.bincount(nearest_rows(dist_all), minlength=k)
    populated = sizes >= int(settings.min_cluster_size or 1)
    if not populated.any():
        populated[:] = True
    rows = nearest_rows(dist_all, populated)
    dist = dist_all[np.arange(len(rows)), rows]
    sq = np.bincount(rows, weights=dist**2, minlength=k)
    counts = np.bincount(rows, minlength=k)
    radius = np.sqrt(sq / np.maximum(counts, 1))
    large = large_clusters(counts)
    counted = slice(None) if match_mask is None or not np.any(match_mask) else np.asarray(match_mask, dtype=bool)
    ids, report, next_id = match_clusters(
        rows[counted], k, prev.assign(sample[counted]).cluster_id if prev is not None else None,
        prev.cluster_ids if prev is not None else None, next_id=next_cluster_id,
    )
    requested = scorer = settings.anomaly_scorer or DEFAULT_SCORER
    mode = settings.threshold_mode or "contamination"
    contamination = float(settings.contamination or 0.01)
    components = fit_components(sample, metric=metric, seed=seed) if scorer == "ensemble" else []
    if scorer == "ensemble" and not components:  # fewer than 4 sample points: nothing to fit apart
        scorer = "cblof"  # what scores (model.scorer, metrics.anomaly); params keep the setting, so the
        # scheduler's "model is current" check still matches it
    model = ClusterModel(
        version=version, metric=metric, centroids=centroids.astype(np.float32),
        cluster_ids=ids, populated=populated, radius=radius, large=large, scorer=scorer,
        threshold_mode=mode, thresholds=np.full(k, np.inf), components=tuple(components),
        params={"k": k, "seed": seed, "n_init": n_init, "sample_size": sample_size, "backend": backend,
                "contamination": contamination, "min_cluster_size": int(settings.min_cluster_size or 1),
                "anomaly_scorer": requested, "threshold_mode": mode, "anomaly_threshold": settings.anomaly_threshold,
                "previous_version": prev.version if prev else 0},
        created_at=utcnow(),
    )
    scores = model.assign(sample).anomaly_score  # the same code path as ingest and write-back
    model.thresholds = calibrate_thresholds(mode, scores, rows, k, contamination=contamination,
                                            absolute=settings.anomaly_threshold)
    flags = decide(scores, rows, model.thresholds)
    model.metrics = {"inertia_sample": inertia, "sizes_sample": [int(s) for s in sizes],
                     **quality(sample, rows, metric=metric, seed=seed),
                     "anomalies_sample": int(flags.sum()),
                     "anomaly": anomaly_summary(scorer, counts, large & populated, components),
                     "matching": asdict(report),
                     "drift_fit": fit_summary(rows, dist, flags, k)}
    return model, next_id
