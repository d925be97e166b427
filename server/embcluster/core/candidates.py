"""Candidate clusters: groups forming among the served model's recent anomalies, before any run.

``GetDrift`` reports them (``DriftReport.candidates``); the scheduler never computes them. The
points are read from the store, not from the drift window: the anomalies labelled by the served
version (``is_anomaly``, ``model_version``) and ingested after it was fitted (their ingest sequence
number, microseconds since the epoch, is above the model's ``created_at``). Cost is bounded: at
most ``CANDIDATE_MAX_POINTS`` such points are read (one scroll, in id order: a uniform subset of
them, as ids are random), then grouped by :func:`embcluster.cluster.novelty.find_groups` (the same
rule a drift run with ``k_max`` uses to add clusters) into at most ``MAX_CANDIDATES`` groups.
TEXT and IMAGE_METADATA collections also get each group's keywords (class-based TF-IDF of its
members' texts against the other anomalies read).
"""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np

from ..cluster.novelty import NOVELTY_MIN_POINTS, find_groups
from ..insight.keywords import KeywordConfig, cluster_keywords
from ..models import ClusterModel
from ..schema import DriftCandidate
from ..store.base import FieldEquals, FieldRange, PointFilter
from .kinds import Kind
from .records import SEQ_FIELD, OpenCollection

__all__ = ["CANDIDATE_MAX_POINTS", "MAX_CANDIDATES", "CANDIDATE_KEYWORDS", "drift_candidates"]

logger = logging.getLogger(__name__)

CANDIDATE_MAX_POINTS = 2_000  # recent anomalies read per GetDrift (at most)
MAX_CANDIDATES = 8  # groups looked for among them
CANDIDATE_KEYWORDS = 5


def _micros(timestamp: str) -> int:
    """An RFC 3339 timestamp as microseconds since the epoch (the ingest sequence's scale); 0 if malformed."""
    try:
        return int(datetime.fromisoformat(timestamp).timestamp() * 1_000_000)
    except ValueError:
        return 0


def drift_candidates(coll: OpenCollection, kind: Kind, model: ClusterModel) -> list[DriftCandidate]:
    """Groups of the served model's recent anomalies that a run could make clusters (largest first).

    Args:
        coll: The collection.
        kind: Its input kind (vectors in the model's space; texts for keywords).
        model: The served model.
    """
    flt = PointFilter(must=(FieldEquals("is_anomaly", True), FieldEquals("model_version", int(model.version)),
                            FieldRange(SEQ_FIELD, gt=_micros(model.created_at))))
    points, _ = coll.store.scroll(limit=CANDIDATE_MAX_POINTS, flt=flt, with_vectors=True)
    if not points:
        return []
    vectors = kind.model_vectors(coll, model, points)
    ok = ~np.isnan(vectors).any(axis=1)
    points = [p for p, keep in zip(points, ok) if keep]
    vectors = vectors[ok]
    settings = coll.record.settings
    groups, _ = find_groups(vectors, model.centroids[model.populated], metric=model.metric,
                            min_size=max(int(settings.min_cluster_size or 1), NOVELTY_MIN_POINTS),
                            max_groups=MAX_CANDIDATES, seed=int(settings.seed or 0))
    if not groups:
        return []
    keywords: dict[int, list[str]] = {}
    texts = kind.summary_sources(coll, [p.payload for p in points]).texts
    if texts is not None and any(texts):
        labels = np.full(len(points), -1, dtype=np.int64)  # the anomalies in no group: the background class
        for j, g in enumerate(groups):
            labels[g.members] = j
        found = cluster_keywords(texts, labels, config=KeywordConfig(top_n=CANDIDATE_KEYWORDS))
        keywords = {j: [kw.term for kw in found.get(j, [])] for j in range(len(groups))}
    logger.debug("collection %s: %d recent anomalies read, %d candidate group(s)", coll.record.name, len(points),
                 len(groups))
    return [DriftCandidate(size=g.size, nearest_ids=[points[i].id for i in g.nearest],
                           mean_distance=g.mean_distance, separation=g.separation, keywords=keywords.get(j, []))
            for j, g in enumerate(groups)]
