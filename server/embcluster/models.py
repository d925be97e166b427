"""Versioned cluster models: centroids + stable ids + calibration, saved as ``.npy`` + JSON.

Never pickled: arrays are ``.npy`` files loaded with ``allow_pickle=False`` and everything
else is JSON with a ``schema_version``. A version directory is written under a temporary
name and renamed into place, so a crash never leaves a half-written model behind.

A run saves its new version *pending* (a ``PENDING`` marker file inside the version directory,
written before the rename): the version is not published until the run switches the served
version to it and removes the marker. A run that fails or is cancelled before the switch deletes
its pending version, and the next start deletes any a dead process left behind (see
:meth:`ModelStore.settle`), so only versions that were served at some point are ever listed,
exported or rolled back to. Older servers ignore the marker.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .errors import shown
from .anomaly.ensemble import ScoreComponent, component_distances, ensemble_scores
from .anomaly.scoring import score
from .anomaly.threshold import decide
from .cluster.assign import nearest_rows, pairwise_distance
from .cluster.lifecycle import ClusterEvent, events_from_json
from .fsio import write_json_atomic
from .insight.summary import RunSummaries
from .store.base import Metric

__all__ = ["SCHEMA_VERSION", "PENDING_MARKER", "Assignments", "ClusterModel", "ModelStore", "read_summaries"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)  # v1: no anomaly-model components (scorers cblof, normalized, distance)
PENDING_MARKER = "PENDING"  # in v<N>/: saved by a run that has not switched to it yet


@dataclass
class Assignments:
    """The five written fields for a batch of points, as arrays."""

    cluster_id: np.ndarray  # int64 stable ids
    cluster_distance: np.ndarray  # float64
    anomaly_score: np.ndarray  # float64
    is_anomaly: np.ndarray  # bool
    model_version: int
    rows: np.ndarray  # centroid row of each point (cluster_id == cluster_ids[rows])

    def payloads(self) -> list[dict[str, Any]]:
        """The reserved fields of every point, as plain Python values (converted in bulk)."""
        v = self.model_version
        return [
            {"cluster_id": c, "cluster_distance": d, "anomaly_score": s, "is_anomaly": a, "model_version": v}
            for c, d, s, a in zip(self.cluster_id.tolist(), self.cluster_distance.tolist(),
                                  self.anomaly_score.tolist(), self.is_anomaly.tolist())
        ]

    def payload(self, i: int) -> dict[str, Any]:
        """The reserved payload fields of point ``i``: written together, in one operation."""
        return {
            "cluster_id": int(self.cluster_id[i]),
            "cluster_distance": float(self.cluster_distance[i]),
            "anomaly_score": float(self.anomaly_score[i]),
            "is_anomaly": bool(self.is_anomaly[i]),
            "model_version": self.model_version,
        }


@dataclass
class ClusterModel:
    """One fitted model version of a collection.

    Row ``r`` of ``centroids`` is the cluster whose stable id is ``cluster_ids[r]``.
    Unpopulated clusters (too few members in the fit sample) are kept for reporting but
    never assigned: their points go to the nearest populated cluster.
    """

    version: int
    metric: Metric
    centroids: np.ndarray
    cluster_ids: np.ndarray
    populated: np.ndarray
    radius: np.ndarray  # RMS member distance per row, on the fit sample
    large: np.ndarray  # non-rare clusters (the bulk of the data) per row, for the cblof scorer
    scorer: str
    threshold_mode: str
    thresholds: np.ndarray  # decision threshold per row (equal rows for a global threshold)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    components: tuple[ScoreComponent, ...] = ()  # the ensemble scorer's own fits (anomaly/ensemble.py)
    # What each cluster is (keywords, fields, representatives, labels), computed at the end of the run that
    # fitted this version, so it matches the labels that run wrote; None for versions made before summaries.
    summaries: RunSummaries | None = None
    # BIRTH, DEATH, SPLIT, MERGE, GROW, SHRINK against the version it replaced (cluster/lifecycle.py), derived
    # after the write-back; None for versions made before events (model.json without ``events``).
    events: list[ClusterEvent] | None = None

    @property
    def k(self) -> int:
        """Number of centroids."""
        return int(len(self.centroids))

    def assign(self, x: np.ndarray) -> Assignments:
        """Label points with this model (never refits): nearest populated cluster, score, decision."""
        rows, dist_all = self.distances(x)
        ens = None
        if self.scorer == "ensemble":
            ens = ensemble_scores(component_distances(x, self.component_centroids, self.metric), self.components)
        scores = score(self.scorer, dist_all, rows, self.radius, self.large, ensemble=ens)
        return Assignments(
            cluster_id=self.cluster_ids[rows], cluster_distance=dist_all[np.arange(len(rows)), rows].astype(np.float64),
            anomaly_score=scores, is_anomaly=decide(scores, rows, self.thresholds), model_version=self.version,
            rows=rows,
        )

    def distances(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest populated row per point and the ``(n, k)`` distances to every centroid."""
        dist_all = np.maximum(pairwise_distance(np.asarray(x, dtype=np.float32), self.centroids, self.metric), 0.0)
        return nearest_rows(dist_all, self.populated), dist_all

    @cached_property
    def component_centroids(self) -> np.ndarray:
        """Every ensemble component's centroids stacked, ``(sum of k, d)`` float64 (computed once per model)."""
        if not self.components:
            return np.zeros((0, self.centroids.shape[1]), dtype=np.float64)
        return np.concatenate([c.centroids for c in self.components]).astype(np.float64)  # scored in float64

    def anomaly_summary(self) -> dict[str, Any]:
        """How the scorer splits the fit sample into large and small clusters (see ``metrics['anomaly']``)."""
        return dict(self.metrics.get("anomaly") or {})

    def row_of(self, cluster_id: int) -> int | None:
        """Centroid row of a stable id, or None."""
        hits = np.flatnonzero(self.cluster_ids == cluster_id)
        return int(hits[0]) if len(hits) else None

    def to_json(self) -> dict[str, Any]:
        """JSON side of the model (arrays other than centroids are small and kept inline)."""
        return {
            # Version 1 when nothing needs 2, so servers before the ensemble scorer can import it.
            "schema_version": SCHEMA_VERSION if self.components else 1,
            "version": self.version,
            "metric": self.metric,
            "k": self.k,
            "dim": int(self.centroids.shape[1]),
            "cluster_ids": [int(i) for i in self.cluster_ids],
            "populated": [bool(p) for p in self.populated],
            "radius": [float(r) for r in self.radius],
            "large": [bool(v) for v in self.large],
            "scorer": self.scorer,
            "threshold_mode": self.threshold_mode,
            "thresholds": [float(t) for t in self.thresholds],
            "params": self.params,
            "metrics": self.metrics,
            "created_at": self.created_at,
            # The ensemble's centroids follow the grouping's k rows in centroids.npy.
            "anomaly_components": [
                {"k": c.k, "large": [bool(v) for v in c.large], "median": c.median, "scale": c.scale,
                 "small_share": c.small_share} for c in self.components
            ],
            # Optional key (older readers ignore it), with its own schema version inside.
            **({"summaries": self.summaries.to_json()} if self.summaries is not None else {}),
            # Optional key too: older readers ignore it, and a file without it reads as no events.
            **({"events": [e.to_json() for e in self.events]} if self.events is not None else {}),
        }

    @classmethod
    def from_files(cls, directory: Path) -> "ClusterModel":
        """Load a saved version; refuses unknown schema versions."""
        meta = json.loads((directory / "model.json").read_text())
        if meta.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
            raise ValueError(
                f"{directory}: model schema_version {shown(meta.get('schema_version'))}, expected one of "
                f"{READABLE_SCHEMA_VERSIONS}"
            )
        k = int(meta["k"])
        comp_meta = meta.get("anomaly_components") or []
        rows = k + sum(int(c["k"]) for c in comp_meta)
        centroids = np.load(directory / "centroids.npy", allow_pickle=False).astype(np.float32)
        if centroids.shape != (rows, meta["dim"]):
            raise ValueError(f"{directory}: centroids shape {centroids.shape} != ({rows}, {meta['dim']})")
        components = []
        start = k
        for c in comp_meta:
            components.append(ScoreComponent(
                centroids=centroids[start:start + int(c["k"])], large=np.asarray(c["large"], dtype=bool),
                median=float(c["median"]), scale=float(c["scale"]), small_share=float(c["small_share"])))
            start += int(c["k"])
        return cls(
            version=int(meta["version"]), metric=meta["metric"], centroids=centroids[:k],
            components=tuple(components),
            cluster_ids=np.asarray(meta["cluster_ids"], dtype=np.int64),
            populated=np.asarray(meta["populated"], dtype=bool),
            radius=np.asarray(meta["radius"], dtype=np.float64), large=np.asarray(meta["large"], dtype=bool),
            scorer=meta["scorer"], threshold_mode=meta["threshold_mode"],
            thresholds=np.asarray(meta["thresholds"], dtype=np.float64), params=meta["params"], metrics=meta["metrics"],
            created_at=meta["created_at"],
            summaries=read_summaries(meta.get("summaries"), str(directory)),
            events=events_from_json(meta["events"]) if "events" in meta else None,
        )


def read_summaries(data: Any, where: str) -> RunSummaries | None:
    """A version's stored summaries (``model.json``'s ``summaries``); None when there are none.

    Unreadable ones (a newer schema) are logged and dropped: the model still loads.

    Args:
        data: The stored JSON (None or empty: none).
        where: The version, for the log line.
    """
    if not data:
        return None
    try:
        return RunSummaries.from_json(data)
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("%s: cluster summaries not read (%s); the model loads without them", where, exc)
        return None


class ModelStore:
    """Model versions of one collection under ``<dir>/v<N>/``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, model: ClusterModel, *, pending: bool = False) -> Path:
        """Write ``v<N>`` atomically (temp dir + rename, fsynced).

        Args:
            model: The version to write.
            pending: Save it unpublished (a run's new version, before its switch): see
                :meth:`publish` and :meth:`discard`.
        """
        final = self.directory / f"v{model.version}"
        tmp = self.directory / f".v{model.version}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        stacked = np.concatenate([model.centroids, model.component_centroids.astype(np.float32)])  # grouping first
        np.save(tmp / "centroids.npy", np.ascontiguousarray(stacked, dtype=np.float32), allow_pickle=False)
        (tmp / "model.json").write_text(json.dumps(model.to_json(), indent=1))
        names = ["centroids.npy", "model.json"]
        if pending:  # inside the directory before the rename: the version never appears published
            (tmp / PENDING_MARKER).write_text("saved by a run; published when it is served\n")
            names.append(PENDING_MARKER)
        for name in names:
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return final

    def pending(self, version: int) -> bool:
        """Whether ``v<version>`` was saved by a run that has not switched to it (yet)."""
        return (self.directory / f"v{version}" / PENDING_MARKER).exists()

    def publish(self, version: int) -> None:
        """Mark ``v<version>`` published (the run has switched to it): from now on it is listed."""
        (self.directory / f"v{version}" / PENDING_MARKER).unlink(missing_ok=True)

    def discard(self, version: int) -> bool:
        """Delete ``v<version>`` if it is still pending (never a published version); True if deleted."""
        shutil.rmtree(self.directory / f".v{version}.tmp", ignore_errors=True)  # a save cut short
        if not self.pending(version):
            return False
        self.delete(version)
        return True

    def settle(self, served: int) -> list[int]:
        """At start-up: publish the served version if a crash left it marked, discard every other pending one.

        A process that died between a run's switch and the marker's removal left the served
        version marked; one that died before the switch left a version no point is served with.

        Returns:
            The versions discarded.
        """
        for leftover in self.directory.glob(".v*.tmp") if self.directory.exists() else []:  # saves cut short
            shutil.rmtree(leftover, ignore_errors=True)
        discarded = []
        for v in self.versions():
            if not self.pending(v):
                continue
            if v == served:
                self.publish(v)
            elif self.discard(v):
                discarded.append(v)
        return discarded

    def published(self, served: int) -> list[int]:
        """Published versions, ascending: every saved one but those pending (the served one always counts)."""
        return [v for v in self.versions() if v == served or not self.pending(v)]

    def save_metadata(self, model: ClusterModel) -> None:
        """Rewrite an already saved version's ``model.json`` (new metrics) atomically; centroids stay."""
        write_json_atomic(self.directory / f"v{model.version}" / "model.json", model.to_json())

    def load_meta(self, version: int) -> dict[str, Any]:
        """``model.json`` of a version only (listing versions needs no centroids)."""
        meta: dict[str, Any] = json.loads((self.directory / f"v{version}" / "model.json").read_text())
        return meta

    def load(self, version: int) -> ClusterModel:
        """Load ``v<version>``."""
        return ClusterModel.from_files(self.directory / f"v{version}")

    def delete(self, version: int) -> None:
        """Remove ``v<version>``: renamed away first, so a reader sees the whole version or none of it."""
        for leftover in self.directory.glob(".v*.deleted"):  # a delete cut short by a crash
            shutil.rmtree(leftover, ignore_errors=True)
        final = self.directory / f"v{version}"
        if not final.exists():
            return
        doomed = self.directory / f".v{version}.deleted"
        os.replace(final, doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def versions(self) -> list[int]:
        """Saved versions, ascending, pending ones included (callers that report use :meth:`published`)."""
        if not self.directory.exists():
            return []
        return sorted(int(p.name[1:]) for p in self.directory.glob("v*") if p.name[1:].isdigit())
