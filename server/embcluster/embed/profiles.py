"""User/card profiles: events aggregated by an entity key into one point per entity.

A profile point's ``source`` holds ``entity`` (the key's value), ``events`` (the entity's parsed
events inside the window: the last ``window_days`` before its newest event, at most
``max_profile_events``, oldest dropped first; a re-sent event id replaces the earlier event)
and ``profile``, the running aggregates shown to callers:

* ``count``, ``first_ts``, ``last_ts`` (epoch seconds of the schema's first timestamp field);
* ``numeric``: per numeric field ``sum``, ``mean``, ``min``, ``max`` of the raw values;
* ``categorical``: per categorical field (not the key) the share of each value (top 10);
* ``hours``: the active-hour histogram (24 counts, UTC), ``weekdays`` (7 counts, Monday first).

The profile vector (fixed width, from the same fitted featurizer as single events), per field
and multiplied by its weight: activity ``log1p(count)`` robust-scaled (1); numeric: mean and
standard deviation of the event's robust-scaled values (2); categorical: the mean of the events'
one-hot/hashed blocks, i.e. value shares (buckets + 1); timestamp: the mean hour and weekday
sin/cos of the events (4; their length says how concentrated the activity is) and the recency
of the newest event against the fit reference (1); text: the normalised mean embedding of the
newest 32 events' texts.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from .event_schema import DAY, EventSchema, TextEmbed, robust_scale

__all__ = ["merge_profile", "profile_aggregates", "profile_dim", "fit_profile_state", "transform_profiles",
           "time_field", "TEXT_EVENTS"]

TEXT_EVENTS = 32  # newest events whose texts make a profile's text block


class EventFeaturizer(Protocol):
    """What profiles use of :class:`embcluster.embed.events.EventFeaturizer` (which builds on them)."""

    schema: EventSchema
    text_embed: TextEmbed | None
    text_dim: int
    state: dict[str, Any]

    def fit_events(self, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Per-field statistics of parsed events."""
        ...

    def field_blocks(self, events: Sequence[Mapping[str, Any]], *, with_text: bool = True) -> dict[str, np.ndarray]:
        """Each field's feature block of parsed events."""
        ...


def time_field(schema: EventSchema) -> str:
    """The timestamp field that orders a profile's events (the schema's first)."""
    return next(f.name for f in schema.fields if f.type == "timestamp")


def _features(schema: EventSchema) -> list[Any]:
    return [f for f in schema.fields if f.name != schema.entity_key]


def profile_dim(schema: EventSchema, text_dim: int) -> int:
    """Width of a profile vector."""
    width = {"numeric": lambda f: 2, "categorical": lambda f: f.buckets + 1, "timestamp": lambda f: 5,
             "text": lambda f: text_dim}
    return 1 + sum(width[f.type](f) for f in _features(schema))


def merge_profile(schema: EventSchema, existing: Mapping[str, Any] | None, entity: str,
                  new_events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The profile ``source`` after adding ``new_events`` to ``existing`` (None = new entity)."""
    tf = time_field(schema)
    events = list(existing.get("events", [])) if existing else []
    new_ids = {e["_id"] for e in new_events if e.get("_id")}
    if new_ids:
        events = [e for e in events if e.get("_id") not in new_ids]
    events.extend(dict(e) for e in new_events)
    events.sort(key=lambda e: e[tf])
    if schema.window_days > 0 and events:
        start = events[-1][tf] - schema.window_days * DAY
        events = [e for e in events if e[tf] >= start]
    events = events[-schema.max_profile_events:]
    return {"entity": entity, "events": events, "profile": profile_aggregates(schema, events)}


def profile_aggregates(schema: EventSchema, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The documented running aggregates of a profile's window."""
    tf = time_field(schema)
    ts = np.asarray([e[tf] for e in events], dtype=np.float64)
    out: dict[str, Any] = {"count": len(events), "first_ts": float(ts.min()) if len(ts) else None,
                           "last_ts": float(ts.max()) if len(ts) else None, "numeric": {}, "categorical": {}}
    for f in _features(schema):
        vals = [e[f.name] for e in events if f.name in e]
        if f.type == "numeric" and vals:
            x = np.asarray(vals, dtype=np.float64)
            out["numeric"][f.name] = {"sum": float(x.sum()), "mean": float(x.mean()), "min": float(x.min()),
                                      "max": float(x.max())}
        elif f.type == "categorical" and vals:
            counts: dict[str, int] = {}
            for v in vals:
                counts[v] = counts.get(v, 0) + 1
            top = sorted(counts, key=lambda v: (-counts[v], v))[:10]
            out["categorical"][f.name] = {v: counts[v] / len(vals) for v in top}
    hours = np.floor(np.mod(ts, DAY) / 3600).astype(int)
    days = np.mod(np.floor(ts / DAY) + 3, 7).astype(int)
    out["hours"] = np.bincount(hours, minlength=24).tolist()
    out["weekdays"] = np.bincount(days, minlength=7).tolist()
    return out


def fit_profile_state(feat: EventFeaturizer, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Event statistics over every profile's events, plus the profile-level activity/recency scalers."""
    events = [e for r in records for e in r["events"]]
    state = feat.fit_events(events)
    counts = np.log1p(np.asarray([len(r["events"]) for r in records], dtype=np.float64))
    med, scale = robust_scale(counts)
    state["profile_count"] = {"median": med, "scale": scale}
    tf = time_field(feat.schema)
    newest = np.asarray([max(e[tf] for e in r["events"]) for r in records if r["events"]], dtype=np.float64)
    age = np.log1p(np.maximum(state["reference_ts"] - newest, 0.0) / DAY)
    med, scale = robust_scale(age)
    state["profile_recency"] = {"median": med, "scale": scale}
    return state


def transform_profiles(feat: EventFeaturizer, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """``(n, profile_dim)`` float32 vectors of profile ``source`` records."""
    schema = feat.schema
    n = len(records)
    out = np.zeros((n, profile_dim(schema, feat.text_dim)), dtype=np.float64)
    if not n:
        return out.astype(np.float32)
    lengths = np.asarray([len(r["events"]) for r in records])
    events = [e for r in records for e in r["events"]]
    blocks = feat.field_blocks(events, with_text=False)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    has = lengths > 0
    denom = np.maximum(lengths, 1)[:, None]

    def mean(block: np.ndarray) -> np.ndarray:
        sums = np.zeros((n, block.shape[1]))
        if len(block):
            sums[has] = np.add.reduceat(block, starts[has], axis=0)
        return sums / denom

    st = feat.state.get("profile_count", {"median": 0.0, "scale": 1.0})
    out[:, 0] = np.clip((np.log1p(lengths) - st["median"]) / st["scale"], -5.0, 5.0)
    col = 1
    tf = time_field(schema)
    for f in _features(schema):
        block = blocks[f.name]
        if f.type == "numeric":
            m = mean(block)
            sd = np.sqrt(np.maximum(mean(block**2) - m**2, 0.0))
            out[:, col:col + 2] = np.concatenate([m, sd], axis=1) * f.weight
            col += 2
        elif f.type == "categorical":
            out[:, col:col + f.buckets + 1] = mean(block) * f.weight
            col += f.buckets + 1
        elif f.type == "timestamp":
            out[:, col:col + 4] = mean(block[:, :4]) * f.weight
            newest = np.asarray([max((e[f.name] for e in r["events"] if f.name in e), default=np.nan)
                                 for r in records])
            age = np.log1p(np.maximum(feat.state.get("reference_ts", 0.0) - newest, 0.0) / DAY)
            rs = feat.state.get("profile_recency", {"median": 0.0, "scale": 1.0}) if f.name == tf else \
                {"median": feat.state["fields"].get(f.name, {}).get("age_median", 0.0),
                 "scale": feat.state["fields"].get(f.name, {}).get("age_scale", 1.0)}
            z = np.nan_to_num((age - rs["median"]) / rs["scale"], nan=0.0)
            out[:, col + 4] = np.clip(z, -f.clip, f.clip) * f.weight
            col += 5
        else:
            if feat.text_embed is not None:
                for i, r in enumerate(records):
                    texts = [e[f.name] for e in r["events"][-TEXT_EVENTS:] if e.get(f.name)]
                    if texts:
                        v = np.asarray(feat.text_embed(texts), dtype=np.float64).mean(axis=0)
                        out[i, col:col + feat.text_dim] = v / max(float(np.linalg.norm(v)), 1e-12) * f.weight
            col += feat.text_dim
    return out.astype(np.float32)
