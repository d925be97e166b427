"""Representatives: the members of a cluster nearest its centroid, with a short excerpt of their source."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..cluster.assign import pairwise_distance
from ..store.base import Metric

__all__ = ["Representative", "DEFAULT_EXCERPT_CHARS", "excerpt", "centroid_distances", "nearest_members",
           "nearest_indices", "representatives_by_cluster"]

DEFAULT_EXCERPT_CHARS = 160
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Representative:
    """A member near its cluster's centroid.

    Attributes:
        id: The point's id as the caller passed it (the external id is what users recognise).
        distance: Distance to the centroid (the collection's metric).
        text: A short excerpt of its source ("" when it has none).
    """

    id: str
    distance: float
    text: str = ""


def excerpt(text: str | None, max_chars: int = DEFAULT_EXCERPT_CHARS) -> str:
    """``text`` on one line, cut at a word boundary to at most ``max_chars`` characters (with "…")."""
    if not text:
        return ""
    flat = _SPACE.sub(" ", text).strip()
    if len(flat) <= max_chars:
        return flat
    cut = flat[:max_chars - 1]
    space = cut.rfind(" ")
    if space >= max_chars // 2:  # a word boundary not too far back
        cut = cut[:space]
    return cut.rstrip(" ,;:.") + "…"


def centroid_distances(vectors: np.ndarray, centroid: np.ndarray, metric: Metric) -> np.ndarray:
    """Distance of each vector to ``centroid`` (``1 - cos`` or L2, as the model computes it).

    Under cosine the vectors are taken to be unit length, as a cosine collection stores them.
    """
    d = pairwise_distance(np.asarray(vectors, dtype=np.float32), np.asarray(centroid, dtype=np.float32)[None, :],
                          metric)
    return np.maximum(d[:, 0], 0.0)


def nearest_members(ids: Sequence[str], distances: np.ndarray | Sequence[float],
                    texts: Sequence[str | None] | None = None, *, count: int = 5,
                    excerpt_chars: int = DEFAULT_EXCERPT_CHARS) -> list[Representative]:
    """The ``count`` members of one cluster nearest its centroid, nearest first (ties by id).

    Args:
        ids: The members' ids.
        distances: Each member's distance to the centroid (:func:`centroid_distances` from vectors).
        texts: Each member's source text (None: no excerpts).
        count: Representatives wanted.
        excerpt_chars: Length of each excerpt at most.
    """
    d = np.asarray(distances, dtype=np.float64)
    if len(d) != len(ids) or (texts is not None and len(texts) != len(ids)):
        raise ValueError(f"{len(ids)} ids, {len(d)} distances, {len(texts) if texts is not None else 0} texts")
    if count <= 0 or not len(d):
        return []
    nearest = np.argpartition(d, count - 1)[:count] if len(d) > count else np.arange(len(d))
    pick = sorted(nearest.tolist(), key=lambda i: (d[i], ids[i]))
    return [Representative(id=str(ids[i]), distance=float(d[i]),
                           text=excerpt(texts[i], excerpt_chars) if texts is not None else "") for i in pick]


def nearest_indices(cluster_ids: np.ndarray | Sequence[int], distances: np.ndarray | Sequence[float], *,
                    count: int = 5) -> dict[int, np.ndarray]:
    """Per cluster id, the positions of its ``count`` points nearest the centroid, nearest first.

    Args:
        cluster_ids: Each point's cluster id.
        distances: Each point's distance to its own cluster's centroid.
        count: Points per cluster.
    """
    labels = np.asarray(cluster_ids, dtype=np.int64)
    d = np.asarray(distances, dtype=np.float64)
    if len(labels) != len(d):
        raise ValueError(f"{len(labels)} cluster ids but {len(d)} distances")
    order = np.lexsort((d, labels))  # by cluster, then nearest first (ties: input order)
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    return {int(labels[part[0]]): part[:max(count, 0)] for part in (np.split(order, cuts) if len(order) else [])}


def representatives_by_cluster(ids: Sequence[str], cluster_ids: np.ndarray | Sequence[int],
                               distances: np.ndarray | Sequence[float], texts: Sequence[str | None] | None = None,
                               *, count: int = 5, excerpt_chars: int = DEFAULT_EXCERPT_CHARS,
                               ) -> dict[int, list[Representative]]:
    """:func:`nearest_members` of every cluster of a labelled sample.

    Args:
        ids: Point ids.
        cluster_ids: Each point's cluster id.
        distances: Each point's distance to its own cluster's centroid.
        texts: Each point's source text (None: no excerpts).
        count: Representatives per cluster.
        excerpt_chars: Length of each excerpt at most.
    """
    if len(ids) != len(distances) or (texts is not None and len(texts) != len(ids)):
        raise ValueError(f"{len(ids)} ids, {len(distances)} distances, {len(texts) if texts is not None else 0} texts")
    d = np.asarray(distances, dtype=np.float64)
    return {c: [Representative(id=str(ids[i]), distance=float(d[i]),
                               text=excerpt(texts[i], excerpt_chars) if texts is not None else "") for i in idx.tolist()]
            for c, idx in nearest_indices(cluster_ids, d, count=count).items()}
