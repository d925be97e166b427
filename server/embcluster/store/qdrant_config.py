"""Qdrant collection configuration: what a collection's vectors are, and the HNSW of those we create.

The Qdrant server builds HNSW indexes itself, in the background, once a segment holds more than
``indexing_threshold`` KB of vectors; searches scan the rest exactly. The service passes the
collection's :class:`~.base.VectorIndexSettings` at creation (``m``, ``ef_construct``, the
threshold from ``min_points``, int8 codes with ``quantization="int8"``) and ``ef`` with every
search (rescoring on float32 when the collection has codes). ``payload_m=0``: no extra graphs per
payload value (the indexed payload fields are the reserved ones, rewritten by every re-cluster).
"""

from __future__ import annotations

from typing import Any

from qdrant_client import models as qm

from ..errors import FailedPrecondition, NotFound
from .base import IndexState, Metric, VectorIndexSettings

__all__ = ["vector_params", "hnsw_config", "optimizers_config", "quantization_config", "search_params", "index_state"]


def hnsw_config(index: VectorIndexSettings) -> qm.HnswConfigDiff:
    """The HNSW settings of a collection the service creates."""
    return qm.HnswConfigDiff(m=index.m, ef_construct=index.ef_construct, payload_m=0)


def optimizers_config(index: VectorIndexSettings, dim: int) -> qm.OptimizersConfigDiff:
    """No index below ``min_points`` points: the server's threshold is in KB of vectors per segment."""
    return qm.OptimizersConfigDiff(indexing_threshold=max(1, index.min_points * dim * 4 // 1024))


def quantization_config(index: VectorIndexSettings) -> qm.ScalarQuantization | None:
    """int8 codes kept in RAM (quantile 0.99, as on Edge), or none."""
    if not index.quantized:
        return None
    return qm.ScalarQuantization(scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, quantile=0.99,
                                                                    always_ram=True))


def search_params(ef: int, exact: bool = False, quantized: bool = False) -> qm.SearchParams:
    """``ef`` at search time, or an exact scan (on float32 vectors); with codes, candidates rescored on float32."""
    if exact:
        return qm.SearchParams(exact=True)
    return qm.SearchParams(hnsw_ef=ef, quantization=qm.QuantizationSearchParams(rescore=True, oversampling=2.0)
                           if quantized else None)


def index_state(info: Any) -> IndexState:
    """Points, indexed points, and whether the server's optimizer is at work (status not green)."""
    status = getattr(info.status, "value", info.status)
    return IndexState(points=int(info.points_count or 0), indexed_points=int(info.indexed_vectors_count or 0),
                      building=str(status).lower() not in ("green", "grey"))


def vector_params(info: Any, vector_name: str, collection: str) -> tuple[int, Metric, str]:
    """``(dim, metric, vector name)`` of a collection's (named) vector; errors name the choices."""
    vectors = info.config.params.vectors
    if isinstance(vectors, dict):
        names = sorted(vectors)
        if not vector_name:
            if len(names) == 1:
                vector_name = names[0]
            elif "" in vectors:
                vector_name = ""
            else:
                raise FailedPrecondition(
                    f"Qdrant collection {collection!r} has several named vectors {names}: name the one to cluster")
        if vector_name not in vectors:
            raise NotFound(f"Qdrant collection {collection!r} has no vector named {vector_name!r}; it has {names}")
        params = vectors[vector_name]
    else:
        if vector_name:
            raise NotFound(f"Qdrant collection {collection!r} has only an unnamed vector, not {vector_name!r}")
        params = vectors
    distance = params.distance
    if distance == qm.Distance.COSINE:
        metric: Metric = "cosine"
    elif distance == qm.Distance.EUCLID:
        metric = "euclid"
    else:
        raise FailedPrecondition(
            f"vector {vector_name or '(unnamed)'!r} of Qdrant collection {collection!r} uses distance "
            f"{getattr(distance, 'value', distance)}; only Cosine and Euclid can be clustered")
    return int(params.size), metric, vector_name
