"""Synthetic reports for the report tests: real model versions fitted by the service's own code.

A few Gaussian blobs (plus scattered outliers) in a small space; version 1 chooses k from a
range (``choose_k``), version 2 refits on data where one blob has grown, and each version is
calibrated (``cluster.fit.calibrate``: stable ids, anomaly thresholds, matching) and given the
full-pass statistics a write-back records. Nothing here is hard-coded into the report: it is
built by ``build_report`` from these models exactly as the service will.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from embcluster.cluster.choose_k import choose_k
from embcluster.cluster.fit import calibrate
from embcluster.cluster.kmeans import fit_kmeans
from embcluster.core.clustering import model_events
from embcluster.models import ClusterModel
from embcluster.report import PointSample, ReportData, build_report
from embcluster.schema import ClusterInfo, CollectionSettings

HOSTILE = "</script><script>document.body.setAttribute('data-pwned','1')</script><img src=x onerror=document.body.setAttribute('data-pwned','2')>"
WORDS = ["trail", "running", "shoes", "sandals", "leather", "boots", "socks", "waterproof"]


def blobs(n: int, *, dim: int = 16, centers: int = 4, seed: int = 0, grow: int | None = None) -> np.ndarray:
    """``n`` points around ``centers`` well-separated centres (``grow``: that blob gets half the
    points), plus 1% scattered far from all of them."""
    rng = np.random.default_rng(seed)
    c = np.random.default_rng(123).normal(scale=6.0, size=(centers, dim))
    p = np.full(centers, 1.0 / centers)
    if grow is not None:
        p = np.full(centers, 0.5 / (centers - 1))
        p[grow] = 0.5
    which = rng.choice(centers, size=n, p=p)
    x = c[which] + rng.normal(size=(n, dim))
    outliers = rng.choice(n, size=max(n // 100, 1), replace=False)
    x[outliers] = rng.normal(scale=25.0, size=(len(outliers), dim))
    return x.astype(np.float32)


def _with_write_back_stats(model: ClusterModel, x: np.ndarray) -> ClusterModel:
    """The statistics ``Labeller.write_back`` adds after labelling every point."""
    labels = model.assign(x)
    counts = np.bincount(labels.rows, minlength=model.k)
    sq = np.bincount(labels.rows, weights=labels.cluster_distance ** 2, minlength=model.k)
    model.metrics.update({"points_labelled": len(x), "sizes_full": [int(c) for c in counts],
                          "radius_full": [float(r) for r in np.sqrt(sq / np.maximum(counts, 1))],
                          "anomalies_full": int(labels.is_anomaly.sum())})
    return model


def fitted_versions(x1: np.ndarray, x2: np.ndarray, *, k_range: tuple[int, int] = (2, 6)) -> list[ClusterModel]:
    """Version 1 (k chosen from ``k_range`` on ``x1``) and version 2 (the same k refitted on ``x2``)."""
    settings = CollectionSettings.defaults()
    k, fit, table = choose_k(x1, k_range[0], k_range[1], metric="euclid", seed=0, n_init=2)
    v1, next_id = calibrate(x1, fit.centroids, version=1, metric="euclid", settings=settings, prev=None,
                            next_cluster_id=0, seed=0, n_init=2, sample_size=len(x1), backend=fit.backend,
                            inertia=fit.inertia)
    v1.metrics["k_scores"] = [asdict(s) for s in table]
    v1.params["trigger"] = "manual"
    fit2 = fit_kmeans(x2, k, metric="euclid", seed=1, n_init=2, init=v1.centroids)
    v2, _ = calibrate(x2, fit2.centroids, version=2, metric="euclid", settings=settings, prev=v1,
                      next_cluster_id=next_id, seed=1, n_init=2, sample_size=len(x2), backend=fit2.backend,
                      inertia=fit2.inertia)
    v2.metrics["k_scores"] = []
    v2.params["trigger"] = "drift"
    v1, v2 = _with_write_back_stats(v1, x1), _with_write_back_stats(v2, x2)
    v1.events, v2.events = model_events(v1, None), model_events(v2, v1)  # as a run derives them
    return [v1, v2]


def listing(model: ClusterModel, x: np.ndarray) -> list[ClusterInfo]:
    """What ``cluster_listing`` counts for ``model`` over the points ``x``."""
    labels = model.assign(x)
    return [ClusterInfo(cluster_id=int(cid), size=int((labels.rows == r).sum()),
                        radius=float(model.metrics["radius_full"][r]),
                        anomaly_count=int(((labels.rows == r) & labels.is_anomaly).sum()),
                        populated=bool(model.populated[r]))
            for r, cid in enumerate(model.cluster_ids)]


def synthetic_report(n: int = 2000, *, hostile: bool = False, limit: int = 10_000, fit_points: int = 2000,
                     text_chars: int = 0) -> ReportData:
    """A report of version 2 with history, k curves, labels and anomalies; ``n`` points on offer
    for the map (the versions are fitted on ``fit_points``; the same points when ``n`` equals it).

    ``hostile``: every text, label, keyword, the notes and the first id carry :data:`HOSTILE`
    markup. ``text_chars``: pad every text to this length (the longest a map text can be).
    """
    x1, x2 = blobs(fit_points, seed=0), blobs(fit_points, seed=1, grow=0)
    models = fitted_versions(x1, x2)
    served = models[-1]
    shown = x2 if n == fit_points else blobs(n, seed=2, grow=0)
    evil = HOSTILE if hostile else ""
    ids = [f"pt-{i}" for i in range(n)]
    if hostile:
        ids[0] = HOSTILE
    texts = [f"point {i} about {WORDS[i % len(WORDS)]} {evil}".ljust(text_chars, "x") for i in range(n)]
    summaries = {int(cid): {"label": f"{WORDS[j % len(WORDS)]} {WORDS[(j + 3) % len(WORDS)]}{evil}",
                            "keywords": [WORDS[j % len(WORDS)], WORDS[(j + 1) % len(WORDS)], evil or "gear"],
                            "label_changed": j == 0}
                 for j, cid in enumerate(served.cluster_ids)}
    return build_report(collection="shop-catalogue", kind="text", model=served, clusters=listing(served, shown),
                        point_count=n, sample=PointSample(ids=ids, vectors=shown, texts=texts), history=models,
                        summaries=summaries, notes=[f"synthetic test data{evil}"], limit=limit, seed=0,
                        generated_at="2026-01-02T03:04:05+00:00")
