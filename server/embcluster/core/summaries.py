"""Cluster summaries of a run's new model version, and reading them back (docs/architecture.md).

At the end of every clustering run, after its write-back and before its version is served, the
run's own sample (the points its fit saw, with their ids) is labelled with the new model, their
stored sources are read from the store in one pass (TEXT / IMAGE_METADATA texts, EVENT events or
profiles; nothing for VECTOR), and :func:`embcluster.insight.summary.summarize` turns them, with
the write-back's full-pass sizes, radii and anomaly counts and the served version's summaries
(label stability), into one summary per cluster. They are stored with the version
(``ClusterModel.summaries`` in its ``model.json``), so they always describe the labels that
version wrote. Summaries are an extra: a failure is logged and the version is stored without them.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..insight.summary import ClusterSummary, ClusterTotals, RunSummaries, SummaryConfig, SummaryInput, summarize
from ..models import ClusterModel
from ..store.ids import public_point_id
from .kinds import Kind
from .records import OpenCollection

__all__ = ["RunSample", "MAX_SUMMARY_POINTS", "summarize_run", "summarize_run_safely", "totals_of",
           "unsummarised_cluster"]

logger = logging.getLogger(__name__)

# Of the run's sample (max(10,000, 256 k) points): 200 points a cluster on average up to k = 50, where
# keyword labels are stable across resamples (insight/labels.py); reading and summarising more costs
# more than 10% of a re-cluster at 100k EVENT points (bench/bench_recluster.py --kind event).
MAX_SUMMARY_POINTS = 10_000
_RETRIEVE_PAGE = 1024


@dataclass(frozen=True)
class RunSample:
    """The points a run fitted on: their ids (as the vector log holds them) and vectors."""

    ids: Sequence[uuid.UUID]
    vectors: np.ndarray


def totals_of(model: ClusterModel, stats: Mapping[str, Any]) -> ClusterTotals:
    """The write-back's full-pass figures per stable cluster id (rows of ``sizes_full`` etc.)."""
    ids = [int(c) for c in model.cluster_ids]
    sizes = stats.get("sizes_full") or [0] * len(ids)
    radius = stats.get("radius_full") or [float(r) for r in model.radius]
    flagged = stats.get("anomaly_counts_full") or []
    return ClusterTotals(sizes={c: int(sizes[r]) for r, c in enumerate(ids)},
                         radius={c: float(radius[r]) for r, c in enumerate(ids)},
                         anomalies={c: int(flagged[r]) for r, c in enumerate(ids)} if flagged else {})


def _subsample(sample: RunSample, cap: int, seed: int) -> RunSample:
    if len(sample.ids) <= cap:
        return sample
    pick = np.sort(np.random.default_rng(seed).choice(len(sample.ids), size=cap, replace=False))
    return RunSample([sample.ids[i] for i in pick.tolist()], sample.vectors[pick])


def summarize_run(coll: OpenCollection, kind: Kind, model: ClusterModel, sample: RunSample,
                  stats: Mapping[str, Any], *, previous: RunSummaries | None, seed: int = 0,
                  max_points: int | None = None, config: SummaryConfig | None = None) -> RunSummaries:
    """The summaries of ``model``'s clusters from the run's sample (see the module doc).

    Args:
        coll: The collection (its store holds the sampled points' sources).
        kind: The collection's kind (what its payloads hold).
        model: The new version, already written back.
        sample: The run's sample.
        stats: The write-back's statistics (``sizes_full``, ``radius_full``, ``anomaly_counts_full``).
        previous: The served version's summaries (label stability), None if it has none.
        seed: Seed of the subsample when the sample is larger than ``max_points``.
        max_points: Sample points read at most (None: :data:`MAX_SUMMARY_POINTS`).
        config: Keyword, field and representative settings.
    """
    part = _subsample(sample, MAX_SUMMARY_POINTS if max_points is None else max_points, seed)
    keys = [str(i) for i in part.ids]
    payloads: dict[str, Mapping[str, Any]] = {}
    for s in range(0, len(keys), _RETRIEVE_PAGE):  # points deleted since the sample was read are skipped
        for p in coll.store.retrieve(keys[s:s + _RETRIEVE_PAGE]):
            payloads[str(p.id)] = p.payload
    rows = [i for i, key in enumerate(keys) if key in payloads]
    found = [payloads[keys[i]] for i in rows]
    # Nearest populated cluster and its distance, as assign() computes them; no anomaly scores:
    # the counts come from the write-back's full pass.
    nearest, dist_all = model.distances(part.vectors[rows])
    parts = kind.summary_sources(coll, found)
    data = SummaryInput(
        ids=[str(p.get("external_id") or public_point_id(keys[i])) for i, p in zip(rows, found)],
        cluster_ids=model.cluster_ids[nearest], distances=dist_all[np.arange(len(rows)), nearest].astype(np.float64),
        texts=parts.texts, sources=parts.sources, event_fields=parts.event_fields, metric=model.metric,
    )
    made = summarize(coll.record.input_kind, data, totals=totals_of(model, stats), previous=previous, config=config)
    return RunSummaries.from_json(made.to_json())  # as stored (rounded): the served copy answers like a reloaded one


def summarize_run_safely(coll: OpenCollection, kind: Kind, model: ClusterModel, sample: RunSample,
                         stats: Mapping[str, Any], *, previous: RunSummaries | None, seed: int = 0) -> RunSummaries | None:
    """:func:`summarize_run`, or None (logged) when it fails: summaries never fail a run."""
    try:
        return summarize_run(coll, kind, model, sample, stats, previous=previous, seed=seed)
    except Exception:
        logger.exception("collection %s: model v%d is stored without cluster summaries: summarising failed",
                         coll.record.name, model.version)
        return None


def unsummarised_cluster(meta: Mapping[str, Any], cluster_id: int) -> ClusterSummary | None:
    """A cluster of a version without summaries, with that version's own figures (None: no such id).

    Sizes, radii and anomaly counts come from the write-back's full pass where the version recorded
    it (``metrics``), else from its fit sample's radius; ``kind`` stays representatives only and
    the caller reports it as not summarised.
    """
    ids = [int(c) for c in meta.get("cluster_ids", [])]
    if cluster_id not in ids:
        return None
    r = ids.index(cluster_id)
    metrics = meta.get("metrics") or {}
    sizes = metrics.get("sizes_full") or []
    radius = metrics.get("radius_full") or meta.get("radius") or []
    flagged = metrics.get("anomaly_counts_full") or []
    size = int(sizes[r]) if r < len(sizes) else 0
    return ClusterSummary(cluster_id=cluster_id, size=size, share=size / max(sum(int(v) for v in sizes), 1),
                          radius=float(radius[r]) if r < len(radius) else 0.0,
                          anomaly_count=int(flagged[r]) if r < len(flagged) else 0, kind="representatives_only")
