"""Events and transactions: a typed schema, validation of raw events, and the event featurizer.

An EVENT collection is created with an :class:`EventSchema`: typed fields, each mapped to a
fixed block of the vector (so the collection's dimension is known from the schema alone):

========== ============================================================ ===============
type       features                                                     dims
========== ============================================================ ===============
numeric    optional signed ``log1p``, robust scaling ``(x - median) / IQR``, 1
           clipped to ``±clip``
categorical one-hot over the fitted vocabulary when it has at most         buckets + 1
           ``buckets`` values, else hashed (blake2b) into ``buckets``
           slots; values not seen at fit go to the last, *unknown* slot
timestamp  hour-of-day sin/cos, day-of-week sin/cos (UTC), recency:      5
           robust-scaled ``log1p(days before the fit reference)``
text       the collection's text model embedding (unit length)           model dim
========== ============================================================ ===============

Each block is multiplied by its field's ``weight``. A missing optional field contributes zeros
(the fitted median for numbers). Fields not in the schema are kept under the point's ``source``
and ignored by the featurizer.

The *fitted* state (medians, IQRs, vocabularies, the recency reference) is the featurizer; it
is fitted from the parsed records stored in each point's ``source`` and saved as JSON with a
``schema_version`` (never pickle). With an ``entity_key`` the collection holds one point per
entity (a *profile*, see :mod:`embcluster.embed.profiles`) and the same fitted state featurizes
the profile's aggregates.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InvalidArgument, shown
from .event_schema import (
    DAY,
    FEATURIZER_SCHEMA_VERSION,
    FIELD_TYPES,
    HASHED_BUCKETS,
    MAX_VOCAB,
    TS_DIMS,
    EventSchema,
    FieldSpec,
    TextEmbed,
    check_schema,
    cyclic_time,
    hash_slot,
    parse_events,
    parse_timestamp,
    robust_scale,
    signed_log,
)
from .profiles import fit_profile_state, profile_dim, transform_profiles


__all__ = [
    "FIELD_TYPES",
    "FEATURIZER_SCHEMA_VERSION",
    "FieldSpec",
    "EventSchema",
    "EventFeaturizer",
    "check_schema",
    "parse_events",
    "parse_timestamp",
    "infer_schema",
    "cyclic_time",
    "robust_scale",
]

logger = logging.getLogger(__name__)


class EventFeaturizer:
    """The fitted event featurizer (``kind`` ``event``, or ``profile`` for entity profiles).

    Args:
        schema: The collection's event schema.
        text_embed: Embeds texts with the collection's text model (None if no text field).
        text_dim: The text model's dimension (0 if no text field).
        state: Fitted statistics per field (see :meth:`fit`); empty = unfitted.
        version: 1, 2, ... per collection; 0 = not fitted.
        provisional: Fitted on the first ingest batch only (an automatic refit follows).
    """

    def __init__(self, schema: EventSchema, *, text_embed: TextEmbed | None = None, text_dim: int = 0,
                 state: dict[str, Any] | None = None, version: int = 0, provisional: bool = False,
                 fitted_points: int = 0) -> None:
        self.schema = schema
        self.kind = "profile" if schema.entity_key else "event"
        self.text_embed = text_embed
        self.text_dim = text_dim if schema.has_text else 0
        self.state: dict[str, Any] = state or {}
        self.version = version
        self.provisional = provisional
        self.fitted_points = fitted_points

    # ------------------------------------------------------------------ shape

    @property
    def event_dim(self) -> int:
        """Width of one event's vector."""
        return sum(f.dims(self.text_dim) for f in self.schema.fields)

    @property
    def dim(self) -> int:
        """Width of the vectors this featurizer writes (fixed by the schema)."""
        if self.kind == "event":
            return self.event_dim
        return profile_dim(self.schema, self.text_dim)

    def field_layout(self) -> list[tuple[str, int]]:
        """``(field, width)`` of each block of an event vector, in order (ExplainPoint's per-field split)."""
        return [(f.name, f.dims(self.text_dim)) for f in self.schema.fields]

    # ------------------------------------------------------------------ fit

    def fit(self, records: Sequence[Mapping[str, Any]], *, version: int, provisional: bool) -> "EventFeaturizer":
        """A new featurizer fitted on point ``source`` records (events, or profiles' events)."""
        if self.kind == "profile":
            state = fit_profile_state(self, records)
        else:
            state = self.fit_events([r["event"] for r in records])
        return EventFeaturizer(self.schema, text_embed=self.text_embed, text_dim=self.text_dim, state=state,
                               version=version, provisional=provisional, fitted_points=len(records))

    def fit_events(self, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Per-field statistics of parsed events."""
        stats: dict[str, Any] = {}
        state: dict[str, Any] = {"fields": stats}
        ts_all = [float(e[f.name]) for f in self.schema.fields if f.type == "timestamp" for e in events if f.name in e]
        reference = max(ts_all) if ts_all else 0.0
        state["reference_ts"] = reference
        for f in self.schema.fields:
            vals = [e[f.name] for e in events if f.name in e]
            if f.type == "numeric":
                x = np.asarray(vals, dtype=np.float64)
                med, scale = robust_scale(signed_log(x) if f.log else x)
                stats[f.name] = {"median": med, "scale": scale}
            elif f.type == "categorical":
                counts: dict[str, int] = {}
                for v in vals:
                    counts[v] = counts.get(v, 0) + 1
                vocab = sorted(counts, key=lambda v: (-counts[v], v))[:MAX_VOCAB]
                mode = "onehot" if len(vocab) <= f.buckets else "hashed"
                stats[f.name] = {"mode": mode, "vocab": vocab}
            elif f.type == "timestamp":
                age = np.log1p(np.maximum(reference - np.asarray(vals, dtype=np.float64), 0.0) / DAY)
                med, scale = robust_scale(age)
                stats[f.name] = {"age_median": med, "age_scale": scale}
        return state

    # ------------------------------------------------------------------ transform

    def transform(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``(n, dim)`` float32 vectors of point ``source`` records."""
        if self.kind == "profile":
            return transform_profiles(self, records)
        return self.transform_events([r["event"] for r in records])

    def field_blocks(self, events: Sequence[Mapping[str, Any]], *, with_text: bool = True) -> dict[str, np.ndarray]:
        """Each field's unweighted block ``(n, width)`` (text blocks are zero without ``with_text``)."""
        n = len(events)
        blocks: dict[str, np.ndarray] = {}
        for f in self.schema.fields:
            st = self.state.setdefault("fields", {}).setdefault(f.name, {})
            if f.type == "numeric":
                col = np.full(n, np.nan)
                for i, e in enumerate(events):
                    if f.name in e:
                        col[i] = e[f.name]
                if f.log:
                    col = signed_log(col)
                z = (col - st.get("median", 0.0)) / st.get("scale", 1.0)
                blocks[f.name] = np.clip(np.nan_to_num(z, nan=0.0), -f.clip, f.clip)[:, None]
            elif f.type == "categorical":
                block = np.zeros((n, f.buckets + 1))
                vocab = st.get("_index")
                if vocab is None:
                    vocab = st["_index"] = {v: j for j, v in enumerate(st.get("vocab", []))}
                for i, e in enumerate(events):
                    v = e.get(f.name)
                    if v is None:
                        continue
                    j = vocab.get(v)
                    if j is None:
                        block[i, f.buckets] = 1.0  # unknown bucket
                    elif st.get("mode") == "onehot":
                        block[i, j] = 1.0
                    else:
                        block[i, hash_slot(v, f.buckets)] = 1.0
                blocks[f.name] = block
            elif f.type == "timestamp":
                block = np.zeros((n, TS_DIMS))
                rows = [i for i, e in enumerate(events) if f.name in e]
                if rows:
                    ts = np.asarray([events[i][f.name] for i in rows], dtype=np.float64)
                    block[rows, :4] = cyclic_time(ts)
                    age = np.log1p(np.maximum(self.state.get("reference_ts", 0.0) - ts, 0.0) / DAY)
                    z = (age - st.get("age_median", 0.0)) / st.get("age_scale", 1.0)
                    block[rows, 4] = np.clip(z, -f.clip, f.clip)
                blocks[f.name] = block
            else:
                block = np.zeros((n, self.text_dim))
                rows = [i for i, e in enumerate(events) if e.get(f.name)]
                if rows and with_text and self.text_embed is not None:
                    block[rows] = self.text_embed([events[i][f.name] for i in rows])
                blocks[f.name] = block
        return blocks

    def transform_events(self, events: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``(n, event_dim)`` float32 vectors of parsed events."""
        blocks = self.field_blocks(events)
        if not events:
            return np.zeros((0, self.event_dim), dtype=np.float32)
        return np.concatenate([blocks[f.name] * f.weight for f in self.schema.fields], axis=1).astype(np.float32)

    # ------------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        """JSON form with a schema version (the vocabularies and scalers, never pickle)."""
        state = {**self.state, "fields": {name: {k: v for k, v in st.items() if not k.startswith("_")}
                                          for name, st in self.state.get("fields", {}).items()}}
        return {"schema_version": FEATURIZER_SCHEMA_VERSION, "kind": self.kind, "version": self.version,
                "provisional": self.provisional, "fitted_points": self.fitted_points, "text_dim": self.text_dim,
                "schema": self.schema.to_json(), "state": state}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, text_embed: TextEmbed | None = None) -> "EventFeaturizer":
        """Inverse of :meth:`to_json`."""
        if data.get("schema_version") != FEATURIZER_SCHEMA_VERSION:
            raise ValueError(f"featurizer schema_version {shown(data.get('schema_version'))} unsupported")
        return cls(EventSchema.from_json(data["schema"]), text_embed=text_embed, text_dim=int(data["text_dim"]),
                   state=dict(data["state"]), version=int(data["version"]), provisional=bool(data["provisional"]),
                   fitted_points=int(data.get("fitted_points", 0)))


# ---------------------------------------------------------------------------------- inference


def infer_schema(samples: Sequence[Mapping[str, Any]], *, entity_key: str = "",
                 max_onehot: int = 16) -> tuple[EventSchema, list[str]]:
    """Propose a schema from sample events; returns it and one note per field (why that type).

    Rules: booleans and strings of low cardinality -> categorical; numbers -> numeric (send
    numeric codes such as merchant category codes as strings); numbers or strings that parse as timestamps and
    whose name or values look like times -> timestamp; long or mostly unique strings with
    spaces -> text. Heavy right tails (skew of the positive values > 2, or max/median > 50) ->
    ``log``. Fields present in every sample are ``required``.
    """
    if not samples:
        raise InvalidArgument("InferSchema needs at least one sample event")
    names: list[str] = []
    for s in samples:
        for k in s:
            if k not in names:
                names.append(k)
    fields: list[FieldSpec] = []
    notes: list[str] = []
    n = len(samples)
    for name in names:
        vals = [s[name] for s in samples if s.get(name) is not None]
        required = len(vals) == n
        spec, note = _infer_field(name, vals, n, max_onehot)
        if spec is None and name == entity_key and vals:  # an entity key is an identifier by design
            spec, note = FieldSpec(name, "categorical"), "entity key"
        if spec is None:
            notes.append(f"{name}: skipped ({note})")
            continue
        spec.required = required or name == entity_key
        fields.append(spec)
        notes.append(f"{name}: {spec.type}{' (log)' if spec.log else ''} — {note}")
    if entity_key:
        key = next((f for f in fields if f.name == entity_key), None)
        if key is None:
            raise InvalidArgument(f"entity_key {shown(entity_key)} does not occur in the samples")
        if key.type != "categorical":
            notes.append(f"{entity_key}: made categorical (entity key)")
            key.type, key.log = "categorical", False
    schema = EventSchema(fields=fields, entity_key=entity_key, window_days=30.0 if entity_key else 0.0)
    return schema, notes


_TIME_WORDS = ("time", "date", "ts", "timestamp", "created", "at", "when")


def _looks_like_time_name(name: str) -> bool:
    low = name.lower()
    parts = low.replace("-", "_").split("_")
    return low in _TIME_WORDS or any(p in ("time", "timestamp", "date", "ts", "at", "datetime") for p in parts)


def _infer_field(name: str, vals: list[Any], n: int, max_onehot: int) -> tuple[FieldSpec | None, str]:
    if not vals:
        return None, "no values in the samples"
    if any(isinstance(v, datetime) for v in vals):
        return FieldSpec(name, "timestamp"), "timestamp values"
    if all(isinstance(v, bool) for v in vals):
        return FieldSpec(name, "categorical", buckets=2), "boolean"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        x = np.asarray(vals, dtype=np.float64)
        if not np.isfinite(x).all():
            return None, "non-finite numbers"
        distinct = len(set(vals))
        if _looks_like_time_name(name) and x.min() > 3e8 and x.max() < 1e10:
            return FieldSpec(name, "timestamp"), "epoch seconds under a time-like name"
        log = False
        pos = x[x > 0]
        if len(pos) >= 0.9 * len(x) and len(pos) > 2:
            med = float(np.median(pos))
            mean, sd = float(pos.mean()), float(pos.std())
            skew = float(np.mean(((pos - mean) / sd) ** 3)) if sd > 0 else 0.0
            log = skew > 2.0 or (med > 0 and float(pos.max()) / med > 50)
        return FieldSpec(name, "numeric", log=log), f"numbers ({distinct} distinct){'; heavy right tail' if log else ''}"
    if all(isinstance(v, str) for v in vals):
        parsed = [parse_timestamp(v) for v in vals]
        if all(p is not None for p in parsed) and (any(not v.strip().lstrip("+-").replace(".", "", 1).isdigit()
                                                       for v in vals) or _looks_like_time_name(name)):
            return FieldSpec(name, "timestamp"), "RFC 3339 strings"
        distinct = len(set(vals))
        mean_len = sum(len(v) for v in vals) / len(vals)
        spaced = sum(" " in v.strip() for v in vals) / len(vals)
        if spaced > 0.5 and (mean_len > 20 or distinct > 0.5 * len(vals)):
            return FieldSpec(name, "text"), f"free text (mean {mean_len:.0f} characters, {distinct} distinct)"
        if distinct == len(vals) and len(vals) >= 20 and spaced == 0:
            return None, f"{distinct} distinct values in {len(vals)} samples: an identifier, not a feature"
        buckets = distinct if distinct <= max_onehot else HASHED_BUCKETS
        return FieldSpec(name, "categorical", buckets=max(1, buckets)), (
            f"{distinct} distinct strings ({'one-hot' if distinct <= max_onehot else 'hashed'})")
    return None, "mixed value types"
