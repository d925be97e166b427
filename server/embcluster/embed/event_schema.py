"""Event schemas: typed fields, validation and parsing of raw events, and the feature primitives.

The schema half of :mod:`embcluster.embed.events` (which holds the fitted featurizer): what a field
is, how a raw event is checked and parsed, and the per-field helpers (robust scaling, cyclic time,
hashed slots) that both single events and profiles (:mod:`embcluster.embed.profiles`) use.
See :mod:`embcluster.embed.events` for the feature blocks of each field type.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import InvalidArgument, shown

__all__ = [
    "FIELD_TYPES",
    "FEATURIZER_SCHEMA_VERSION",
    "DAY",
    "TS_DIMS",
    "MAX_VOCAB",
    "HASHED_BUCKETS",
    "TextEmbed",
    "FieldSpec",
    "EventSchema",
    "check_schema",
    "parse_events",
    "parse_timestamp",
    "cyclic_time",
    "robust_scale",
    "signed_log",
    "hash_slot",
]

logger = logging.getLogger(__name__)

FIELD_TYPES = ("numeric", "categorical", "timestamp", "text")
FEATURIZER_SCHEMA_VERSION = 1
MAX_FIELDS = 256
MAX_BUCKETS = 4096
MAX_ABS_NUMBER = 1e300  # numeric field values: larger ones could overflow a profile's sums
MAX_VOCAB = 100_000  # values remembered by a hashed field (the rest are unknown)
MAX_CATEGORY_CHARS = 256
HASHED_BUCKETS = 32  # what InferSchema proposes for a large vocabulary
TS_DIMS = 5
DAY = 86_400.0
# 1970-01-01 was a Thursday: Monday = 0 is (days + 3) % 7.
_EPOCH_WEEKDAY = 3

TextEmbed = Callable[[Sequence[str]], np.ndarray]


@dataclass
class FieldSpec:
    """One typed field of an event.

    Attributes:
        name: Key of the field in each event.
        type: ``numeric``, ``categorical``, ``timestamp`` or ``text``.
        weight: Multiplies the field's block of the vector (0 < weight <= 100).
        required: A missing value is an error (else it contributes zeros).
        log: Numeric only: apply ``sign(x) * log1p(|x|)`` before scaling (heavy tails: amounts).
        clip: Numeric (and recency): clip the robust-scaled value to ``±clip``.
        buckets: Categorical only: one-hot slots (small vocabularies) or hash buckets (large).
    """

    name: str
    type: str
    weight: float = 1.0
    required: bool = False
    log: bool = False
    clip: float = 5.0
    buckets: int = 16

    def dims(self, text_dim: int) -> int:
        """Width of this field's block."""
        return {"numeric": 1, "categorical": self.buckets + 1, "timestamp": TS_DIMS, "text": text_dim}[self.type]


@dataclass
class EventSchema:
    """The typed fields of a collection's events, and the optional profile aggregation.

    Attributes:
        fields: The typed fields.
        entity_key: When set, events are aggregated into one point per value of this
            (categorical) field: a user or card *profile*.
        window_days: Profiles keep the events of the last ``window_days`` before the entity's
            newest event (0 = no limit).
        max_profile_events: Profiles keep at most this many newest events.
    """

    fields: list[FieldSpec] = field(default_factory=list)
    entity_key: str = ""
    window_days: float = 0.0
    max_profile_events: int = 1000

    @property
    def has_text(self) -> bool:
        """True when a field is embedded with the text model."""
        return any(f.type == "text" for f in self.fields)

    def field(self, name: str) -> FieldSpec | None:
        """The field called ``name``."""
        return next((f for f in self.fields if f.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "EventSchema":
        """Inverse of :meth:`to_json`."""
        return cls(fields=[FieldSpec(**f) for f in data.get("fields", [])], entity_key=data.get("entity_key", ""),
                   window_days=float(data.get("window_days", 0.0)),
                   max_profile_events=int(data.get("max_profile_events", 1000)))


def check_schema(schema: EventSchema) -> EventSchema:
    """Validate a schema given at collection creation; messages name the field and value."""
    if not schema.fields:
        raise InvalidArgument("an EVENT collection needs an event_schema with at least one field")
    if len(schema.fields) > MAX_FIELDS:
        raise InvalidArgument(f"event_schema has {len(schema.fields)} fields; the limit is {MAX_FIELDS}")
    seen: set[str] = set()
    for f in schema.fields:
        where = f"event_schema field {shown(f.name)}"
        if not f.name or len(f.name) > 128:
            raise InvalidArgument(f"event_schema field names must have 1..128 characters, got {shown(f.name)}")
        if f.name in seen:
            raise InvalidArgument(f"{where} is defined twice")
        seen.add(f.name)
        if f.type not in FIELD_TYPES:
            raise InvalidArgument(f"{where}: type must be one of {', '.join(FIELD_TYPES)}, got {shown(f.type)}")
        if not (math.isfinite(f.weight) and 0 < f.weight <= 100):
            raise InvalidArgument(f"{where}: weight must be in (0, 100], got {f.weight}")
        if not (math.isfinite(f.clip) and 0 < f.clip <= 1e6):
            raise InvalidArgument(f"{where}: clip must be in (0, 1e6], got {f.clip}")
        if f.type == "categorical" and not (1 <= f.buckets <= MAX_BUCKETS):
            raise InvalidArgument(f"{where}: buckets must be in [1, {MAX_BUCKETS}], got {f.buckets}")
        if f.log and f.type != "numeric":
            raise InvalidArgument(f"{where}: log applies to numeric fields only (type {shown(f.type)})")
    if schema.entity_key:
        key = schema.field(schema.entity_key)
        if key is None or key.type != "categorical":
            raise InvalidArgument(f"entity_key {shown(schema.entity_key)} must name a categorical field of the schema")
        key.required = True
        if not any(f.type == "timestamp" for f in schema.fields):
            raise InvalidArgument("a profile collection (entity_key set) needs a timestamp field for its window")
        next(f for f in schema.fields if f.type == "timestamp").required = True  # the window's clock
    if not (math.isfinite(schema.window_days) and schema.window_days >= 0):
        raise InvalidArgument(f"window_days must be >= 0, got {schema.window_days}")
    if not (1 <= schema.max_profile_events <= 100_000):
        raise InvalidArgument(f"max_profile_events must be in [1, 100000], got {schema.max_profile_events}")
    return schema


# ---------------------------------------------------------------------------------- parsing


def parse_timestamp(value: Any) -> float | None:
    """Epoch seconds of an RFC 3339 string, a datetime or epoch seconds; None if unparseable.

    Strings without an offset are taken as UTC.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return float(text) if text.lstrip("+-").replace(".", "", 1).isdigit() else _iso(text)
        except ValueError:
            return None
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _iso(text: str) -> float:
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _json_scalar(where: str, value: Any) -> Any:
    """An unknown field is kept as is if JSON can hold it."""
    if isinstance(value, datetime):
        return parse_timestamp(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(f"{where}: value {value} is not finite")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise InvalidArgument(f"{where}: unsupported value type {type(value).__name__}")


def _parse_value(where: str, spec: FieldSpec, value: Any, max_text_chars: int) -> Any:
    t = spec.type
    if t == "numeric":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidArgument(f"{where}: numeric field expects a number, got {type(value).__name__} {shown(value)}")
        if not math.isfinite(value):
            raise InvalidArgument(f"{where}: value {value} is not finite")
        if abs(value) > MAX_ABS_NUMBER:  # profile sums of up to 100k such values stay finite
            raise InvalidArgument(f"{where}: value {value} is beyond +-{MAX_ABS_NUMBER:g}")
        return float(value)
    if t == "categorical":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidArgument(f"{where}: value {value} is not finite")
            return str(int(value)) if value.is_integer() else repr(value)
        if not isinstance(value, str):
            raise InvalidArgument(f"{where}: categorical field expects a string, got {type(value).__name__} {shown(value)}")
        if len(value) > MAX_CATEGORY_CHARS:
            raise InvalidArgument(f"{where}: category has {len(value)} characters; the limit is {MAX_CATEGORY_CHARS}")
        return value
    if t == "timestamp":
        ts = parse_timestamp(value)
        if ts is None:
            raise InvalidArgument(f"{where}: cannot parse timestamp {shown(value)} (RFC 3339 or epoch seconds)")
        return ts
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: text field expects a string, got {type(value).__name__} {shown(value)}")
    if len(value) > max_text_chars:
        raise InvalidArgument(f"{where}: text is {len(value)} characters; the limit is {max_text_chars}")
    return value


def parse_events(schema: EventSchema, events: Sequence[Mapping[str, Any] | None], *,
                 max_text_chars: int = 20_000) -> list[dict[str, Any]]:
    """Validate raw events against ``schema`` and normalise their values.

    Numbers become floats, categories strings, timestamps epoch seconds (float), texts stay
    strings. Unknown fields are kept (JSON scalars) and ignored by the featurizer.

    Raises:
        InvalidArgument: naming the item index and the field (wrong type, missing required
            field, unparseable timestamp, non-finite number, text over the limit).
    """
    specs = {f.name: f for f in schema.fields}
    out: list[dict[str, Any]] = []
    for i, event in enumerate(events):
        if event is None:
            raise InvalidArgument(f"item {i}: this collection takes events, got no event")
        rec: dict[str, Any] = {}
        for name, value in event.items():
            where = f"item {i} field {shown(name)}"
            spec = specs.get(name)
            if value is None:
                continue
            rec[name] = _json_scalar(where, value) if spec is None else _parse_value(where, spec, value, max_text_chars)
        for spec in schema.fields:
            if spec.required and spec.name not in rec:
                raise InvalidArgument(f"item {i} field {shown(spec.name)}: required field is missing")
        out.append(rec)
    return out


# ---------------------------------------------------------------------------------- featurizing


def signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def robust_scale(values: np.ndarray) -> tuple[float, float]:
    """(median, scale): the IQR, else the std, else 1."""
    if not len(values):
        return 0.0, 1.0
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    scale = float(q3 - q1)
    if scale <= 1e-12:
        scale = float(np.std(values))
    return float(med), scale if scale > 1e-12 else 1.0


def hash_slot(value: str, buckets: int) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little") % buckets


def cyclic_time(ts: np.ndarray) -> np.ndarray:
    """``(n, 4)``: hour-of-day sin/cos and day-of-week sin/cos of epoch seconds (UTC)."""
    ts = np.asarray(ts, dtype=np.float64)
    day_frac = np.mod(ts, DAY) / DAY
    week_frac = (np.mod(np.floor(ts / DAY) + _EPOCH_WEEKDAY, 7) + day_frac) / 7.0
    a, b = 2 * np.pi * day_frac, 2 * np.pi * week_frac
    return np.stack([np.sin(a), np.cos(a), np.sin(b), np.cos(b)], axis=1)
