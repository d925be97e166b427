"""Assemble a :class:`ReportData` from a model version, its history and a sample of points.

Pure functions over plain inputs (a :class:`ClusterModel`, cluster counts, arrays): the caller
reads them from a collection and this module decides nothing about storage. The sampled
points are labelled here with the reported model itself (``ClusterModel.assign``, the path
ingest and readers use), so the map never mixes the fields of two versions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import numpy as np

from ..drift import version_drift
from ..models import ClusterModel
from ..schema import ClusterInfo
from .data import ClusterSummary, KSelection, MapPoints, ReportData, Representative, VersionEntry, k_score_row
from .projection import project, sample_rows

__all__ = ["DEFAULT_MAP_POINTS", "PointSample", "build_report", "k_selection", "short_text", "version_history"]

DEFAULT_MAP_POINTS = 10_000  # points drawn on the map: ~2.5 MB of HTML (bench/bench_report.py)
SHORT_TEXT_CHARS = 120  # hover text per map point: 10k of them at most ~1.2 MB of the file
REPRESENTATIVES = 3


def short_text(text: str | None, limit: int = SHORT_TEXT_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters (with an ellipsis when cut)."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)] + "…"


@dataclass
class PointSample:
    """Points read from a collection for the map: vectors plus what hover shows.

    Attributes:
        ids: The caller's ids (``external_id``), one per row of ``vectors``.
        vectors: ``(n, d)`` stored vectors (the model's feature space).
        texts: Source text per point ("" or None when there is none).
    """

    ids: Sequence[str]
    vectors: np.ndarray
    texts: Sequence[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.vectors) or (self.texts and len(self.texts) != len(self.ids)):
            raise ValueError(f"{len(self.ids)} ids, {len(self.vectors)} vectors and {len(self.texts)} texts")


def k_selection(models: Sequence[ClusterModel]) -> KSelection | None:
    """The per-k scores of the newest version in ``models`` whose run chose k from a range."""
    for model in sorted(models, key=lambda m: m.version, reverse=True):
        raw = model.metrics.get("k_scores") or []
        if raw:
            rows = sorted((k_score_row(s) for s in raw), key=lambda r: r.k)
            chosen = next((r.k for r in rows if r.chosen), model.k)
            return KSelection(version=model.version, k_min=rows[0].k, k_max=rows[-1].k, chosen_k=chosen, scores=rows)
    return None


def _matching_counts(raw: Mapping[str, Any] | None) -> dict[str, int]:
    return {key: len(value) for key, value in (raw or {}).items() if isinstance(value, (list, dict))}


def _event_ids(model: ClusterModel) -> dict[str, list[int]]:
    """A version's life-cycle events as kind -> cluster ids, in the order the run listed them."""
    out: dict[str, list[int]] = {}
    for e in model.events or []:
        out.setdefault(e.kind, []).append(e.cluster_id)
    return out


def version_history(models: Sequence[ClusterModel], served_version: int) -> list[VersionEntry]:
    """One :class:`VersionEntry` per model, oldest first, with its drift from the version before.

    The version before is the one it was fitted after (``params["previous_version"]``) when it
    is among ``models``, else the preceding one in the list.
    """
    ordered = sorted(models, key=lambda m: m.version)
    by_version = {m.version: m for m in ordered}
    out = []
    for i, model in enumerate(ordered):
        prev = by_version.get(int(model.params.get("previous_version") or 0)) or (ordered[i - 1] if i else None)
        drift = version_drift(model, prev)
        metrics = model.metrics
        sil = metrics.get("silhouette")
        out.append(VersionEntry(
            version=model.version, created_at=model.created_at, k=model.k, served=model.version == served_version,
            trigger=str(model.params.get("trigger") or ""), cluster_ids=[int(c) for c in model.cluster_ids],
            sizes=[int(s) for s in metrics.get("sizes_full") or []],
            points=metrics.get("points_labelled"), anomalies=metrics.get("anomalies_full"),
            silhouette=None if sil is None else float(sil),
            psi_versions=drift["psi_versions"], centroid_shift_mean=drift["centroid_shift_mean"],
            centroid_shift_max=drift["centroid_shift_max"], matching=_matching_counts(metrics.get("matching")),
            events=_event_ids(model),
        ))
    return out


def _representatives(rows: np.ndarray, distances: np.ndarray, sample: PointSample, picked: np.ndarray,
                     row: int) -> list[Representative]:
    """The sampled members of centroid row ``row`` nearest to it (when no summary gave any)."""
    members = np.flatnonzero(rows == row)
    best = members[np.argsort(distances[members], kind="stable")[:REPRESENTATIVES]]
    return [Representative(id=str(sample.ids[picked[i]]), text=short_text(sample.texts[picked[i]] if sample.texts else ""),
                           distance=float(distances[i])) for i in best]


def _centre(points: np.ndarray, centroids: np.ndarray, rows: np.ndarray, flagged: np.ndarray,
            row: int | None) -> dict[str, float | None]:
    """Where a cluster's label sits: the mean of its drawn non-anomalous members (PCA is linear, so
    that is the projection of their mean), else the projected centroid. A cosine centroid is a
    unit vector, longer than the mean of its unit-length members, so it would sit off the cloud."""
    if row is None:
        return {"x": None, "y": None}
    members = (rows == row) & ~flagged
    if not members.any():
        members = rows == row
    at = points[members].mean(axis=0) if members.any() else centroids[row]
    return {"x": float(at[0]), "y": float(at[1])}


def build_report(*, collection: str, kind: str, model: ClusterModel, clusters: Sequence[ClusterInfo],
                 point_count: int, sample: PointSample, history: Sequence[ClusterModel] = (),
                 summaries: Mapping[int, Mapping[str, Any]] | None = None, notes: Sequence[str] = (),
                 limit: int = DEFAULT_MAP_POINTS, seed: int = 0, generated_at: str | None = None) -> ReportData:
    """The report of ``model`` (the served version) of a collection.

    Args:
        collection: Collection name.
        kind: Input kind, as the API names it (``text``, ``event``, ...).
        model: The reported model version.
        clusters: Its clusters with live sizes and anomaly counts (``cluster_listing``).
        point_count: Points in the collection.
        sample: Points to draw from; more than ``limit`` are sampled down (seeded, anomalies
            kept first, up to half the map).
        history: Saved model versions (``model`` may be among them); empty: ``model`` alone.
        summaries: Per cluster id, what the cluster summaries computed: ``label``,
            ``keywords``, ``representatives`` (dicts with ``id``, ``text``, ``distance``),
            ``label_changed``. Clusters without representatives get the sampled members
            nearest their centroid.
        notes: Sentences shown under the title.
        limit: Most points drawn on the map.
        seed: Seed of the sample and the projection.
        generated_at: ISO time of the report (default: now, UTC).

    Returns:
        The :class:`ReportData`, ready for :func:`embcluster.report.html.render_html`.
    """
    labels = model.assign(np.asarray(sample.vectors, dtype=np.float32)) if len(sample.ids) else None
    flags = labels.is_anomaly if labels is not None else np.zeros(0, dtype=bool)
    picked = sample_rows(len(sample.ids), limit, seed, keep=flags)
    vectors = np.asarray(sample.vectors, dtype=np.float32)[picked] if len(picked) else np.zeros((0, model.centroids.shape[1]))
    proj = project(vectors, model.centroids, metric=model.metric, seed=seed, fit_rows=~flags[picked])
    rows = labels.rows[picked] if labels is not None else np.zeros(0, dtype=np.int64)
    distances = labels.cluster_distance[picked] if labels is not None else np.zeros(0)
    texts = sample.texts
    points = MapPoints(
        ids=[str(sample.ids[i]) for i in picked], x=proj.points[:, 0].tolist(), y=proj.points[:, 1].tolist(),
        cluster_id=[int(c) for c in model.cluster_ids[rows]], is_anomaly=[bool(a) for a in flags[picked]],
        text=[short_text(texts[i]) if texts else "" for i in picked],
    )
    known = summaries or {}
    out_clusters = []
    for info in clusters:
        row = model.row_of(info.cluster_id)
        summ = known.get(info.cluster_id) or {}
        reps = [Representative(id=str(r.get("id", "")), text=short_text(r.get("text")),
                               distance=None if r.get("distance") is None else float(r["distance"]))
                for r in summ.get("representatives") or []]
        if not reps and row is not None:
            reps = _representatives(rows, distances, sample, picked, row)
        out_clusters.append(ClusterSummary(
            cluster_id=info.cluster_id, size=info.size, share=info.size / point_count if point_count else 0.0,
            radius=info.radius, anomaly_count=info.anomaly_count, populated=info.populated,
            label=str(summ.get("label") or ""), keywords=[str(w) for w in summ.get("keywords") or []],
            representatives=reps, label_changed=bool(summ.get("label_changed", False)),
            **_centre(proj.points, proj.centroids, rows, flags[picked], row),
        ))
    versions = list(history) if any(m.version == model.version for m in history) else [*history, model]
    return ReportData(
        collection=collection, kind=kind, metric=model.metric, model_version=model.version,
        generated_at=generated_at or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        point_count=point_count, projection=proj.method, explained=list(proj.explained), points=points,
        clusters=out_clusters, k_selection=k_selection([m for m in versions if m.version <= model.version]),
        history=version_history(versions, model.version), notes=list(notes),
    )
