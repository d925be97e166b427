"""Conversions between the store's types and the Qdrant Edge binding's (filters, payloads, points)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import qdrant_edge as qe

from .base import Condition, FieldEquals, FieldMissing, Metric, PointFilter, StoredPoint

__all__ = ["BOOL_MIRROR_PREFIX", "edge_filter", "with_mirrors", "payload_selector", "edge_vector", "edge_point",
           "graph_params", "index_ops", "shard_vector_params"]

# qdrant-edge-py 0.9.0 turns MatchValue(True) into MatchValue(1), so no filter can match a
# boolean payload value. Each boolean-indexed key is therefore mirrored as 0/1 under
# BOOL_MIRROR_PREFIX + key (integer-indexed); filters use the mirror, reads hide it.
BOOL_MIRROR_PREFIX = "_ec_bool_"


def _condition(cond: Condition) -> qe.FieldCondition:
    if isinstance(cond, FieldEquals):
        if isinstance(cond.value, bool):
            return qe.FieldCondition(key=BOOL_MIRROR_PREFIX + cond.key, match=qe.MatchValue(int(cond.value)))
        return qe.FieldCondition(key=cond.key, match=qe.MatchValue(cond.value))
    if isinstance(cond, FieldMissing):
        return qe.FieldCondition(key=cond.key, is_empty=True)
    # Integer bounds as floats: exact below 2**53, far beyond any ingest sequence number.
    return qe.FieldCondition(key=cond.key, range=qe.RangeFloat(
        gt=float(cond.gt) if cond.gt is not None else None, lte=float(cond.lte) if cond.lte is not None else None))


def edge_filter(flt: PointFilter | None) -> qe.Filter | None:
    """The binding's filter for ``flt`` (None: no filter)."""
    if flt is None or (not flt.must and not flt.must_not):
        return None
    return qe.Filter(
        must=[_condition(c) for c in flt.must] or None,
        must_not=[_condition(c) for c in flt.must_not] or None,
    )


def with_mirrors(payload: dict[str, Any], bool_keys: frozenset[str]) -> dict[str, Any]:
    """``payload`` plus the 0/1 mirror of each boolean-indexed key it carries."""
    mirrors = {BOOL_MIRROR_PREFIX + k: int(v) for k, v in payload.items() if k in bool_keys and isinstance(v, bool)}
    return {**payload, **mirrors} if mirrors else payload


def payload_selector(with_payload: bool | Sequence[str]) -> Any:
    """All, none, or these payload keys."""
    if isinstance(with_payload, bool):
        return with_payload
    return qe.PayloadSelector.Include(list(with_payload))


def edge_vector(raw: Any) -> np.ndarray | None:
    """A record's vector (ours: the default, unnamed one) as float32, None if it has none."""
    if raw is None:
        return None
    if isinstance(raw, dict):  # named vectors: ours is the default, unnamed one
        raw = raw.get("")
    return np.asarray(raw, dtype=np.float32)


def edge_point(rec: Any, with_vectors: bool) -> StoredPoint:
    """A record or scored point of the binding as a :class:`StoredPoint` (mirrors hidden)."""
    return StoredPoint(
        id=str(rec.id),
        payload={k: v for k, v in (rec.payload or {}).items() if not k.startswith(BOOL_MIRROR_PREFIX)},
        vector=edge_vector(rec.vector) if with_vectors else None,
    )


_INDEX_TYPES = {
    "integer": qe.PayloadSchemaType.Integer,
    "bool": qe.PayloadSchemaType.Bool,
    "keyword": qe.PayloadSchemaType.Keyword,
}


def index_ops(key: str, kind: str) -> list[Any]:
    """The update operations that index ``key`` (a bool key also gets its 0/1 mirror)."""
    ops = [qe.UpdateOperation.create_field_index(key, _INDEX_TYPES[kind])]
    if kind == "bool":
        ops.append(qe.UpdateOperation.create_field_index(BOOL_MIRROR_PREFIX + key, _INDEX_TYPES["integer"]))
    return ops


def shard_vector_params(path: Path) -> tuple[int, Metric]:
    """Dimension and metric recorded in a shard's ``edge_config.json``."""
    cfg = json.loads((path / "edge_config.json").read_text())
    params = cfg["vectors"][""]
    distance = str(params["distance"]).lower()
    return int(params["size"]), ("euclid" if distance.startswith("euclid") else "cosine")


# On int8 codes: walk the graph scoring codes, then rescore twice ``limit`` candidates on float32
# (asked for, not left to the engine's default).
_RESCORED = qe.QuantizationSearchParams(rescore=True, oversampling=2.0)


def graph_params(ef: int, quantized: bool, *, indexed_only: bool = False) -> qe.SearchParams:
    """A walk of the HNSW graph keeping ``ef`` candidates, with ACORN for filters; rescored on float32 over codes."""
    return qe.SearchParams(hnsw_ef=ef, acorn=qe.AcornSearchParams(enable=True), indexed_only=indexed_only,
                           quantization=_RESCORED if quantized else None)
