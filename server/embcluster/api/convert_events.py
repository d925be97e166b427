"""Conversions of the EVENT messages (events, schemas, InferSchema) to and from the core's types.

Part of the conversion layer: :mod:`embcluster.api.convert` re-exports these.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

from ..embed.events import EventSchema, FieldSpec
from ..errors import InvalidArgument, shown
from .v1 import embcluster_pb2 as pb

__all__ = ["event_from_pb", "event_schema_from_pb", "event_schema_to_pb", "infer_response_to_pb"]

_TYPES = {pb.EVENT_FIELD_TYPE_NUMERIC: "numeric", pb.EVENT_FIELD_TYPE_CATEGORICAL: "categorical",
          pb.EVENT_FIELD_TYPE_TIMESTAMP: "timestamp", pb.EVENT_FIELD_TYPE_TEXT: "text"}
_TYPES_PB = {v: k for k, v in _TYPES.items()}


def event_from_pb(msg: pb.Event, where: str = "event") -> dict[str, Any]:
    """Field values as Python values (timestamps as aware UTC datetimes; unset values are missing).

    Raises:
        InvalidArgument: a timestamp outside years 1..9999, naming ``where`` and the field.
    """
    out: dict[str, Any] = {}
    for name, value in msg.fields.items():
        which = value.WhichOneof("kind")
        if which == "number_value":
            out[name] = value.number_value
        elif which == "string_value":
            out[name] = value.string_value
        elif which == "bool_value":
            out[name] = value.bool_value
        elif which == "timestamp_value":
            try:
                out[name] = value.timestamp_value.ToDatetime(tzinfo=timezone.utc)
            except (ValueError, OverflowError) as exc:  # seconds outside years 1..9999
                raise InvalidArgument(f"{where} field {shown(name)}: timestamp out of range "
                                      f"(seconds {value.timestamp_value.seconds}): {exc}") from None
    return out


def event_schema_from_pb(msg: pb.EventSchema) -> EventSchema:
    """A schema; zero values mean the defaults (weight 1, clip 5, 16 buckets, 1000 profile events)."""
    fields = []
    for f in msg.fields:
        if f.type not in _TYPES:
            raise InvalidArgument(f"event_schema field {shown(f.name)}: type must be one of "
                                  f"{', '.join(pb.EventFieldType.Name(t) for t in _TYPES)}, got {f.type}")
        fields.append(FieldSpec(name=f.name, type=_TYPES[f.type], weight=f.weight or 1.0, required=f.required,
                                log=f.log, clip=f.clip or 5.0, buckets=f.buckets or 16))
    return EventSchema(fields=fields, entity_key=msg.entity_key, window_days=msg.window_days,
                       max_profile_events=msg.max_profile_events or 1000)


def event_schema_to_pb(schema: EventSchema) -> pb.EventSchema:
    """The effective schema (every default filled in)."""
    return pb.EventSchema(
        fields=[pb.EventField(name=f.name, type=_TYPES_PB[f.type], weight=f.weight, required=f.required, log=f.log,
                              clip=f.clip, buckets=f.buckets) for f in schema.fields],
        entity_key=schema.entity_key, window_days=schema.window_days, max_profile_events=schema.max_profile_events,
    )


def infer_response_to_pb(schema: EventSchema, notes: list[str]) -> pb.InferSchemaResponse:
    """A proposed schema and the notes that explain it."""
    return pb.InferSchemaResponse(schema=event_schema_to_pb(schema), notes=notes)
