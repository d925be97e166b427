"""Between protobuf messages and :mod:`embcluster_client.models`, in both directions.

The conversion is generic: it walks a model's dataclass fields with their type hints next to the
message's descriptor, so a model only declares its fields and their Python types. The type hint
decides what a field becomes:

- ``X | None``: None when the message leaves the field unset (proto3 ``optional`` scalars and
  message fields); without ``None`` an unset message field is converted from its default;
- a ``ProtoEnum`` subclass: the member of the wire number;
- ``dict[str, Any]`` on a ``Struct``: plain JSON values (integral numbers as ``int``);
- ``datetime`` on a string (RFC 3339) or a ``Timestamp``: an aware ``datetime`` in UTC;
- ``list[float]`` on a ``Vector``: its numbers (``values`` or the packed ``f32`` bytes);
- another model: converted recursively; ``list[...]`` on repeated fields.

Plans are built once per model class and checked against the descriptor (a model field that is not
in the message, or a hint the rules do not cover, fails at the first conversion).
"""

from __future__ import annotations

import dataclasses
import math
import struct
import types
import typing
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from embcluster.api.v1 import embcluster_pb2 as pb

from . import models as m
from .enums import ProtoEnum

__all__ = ["message_class", "to_model", "to_proto", "struct_to_dict", "value_to_python"]

M = TypeVar("M")

# Models named differently from their message (list wrappers and responses with a better name).
_RENAMED: dict[type, type[Message]] = {
    m.PointPage: pb.ListPointsResponse,
    m.ClusterList: pb.ListClustersResponse,
    m.InferredSchema: pb.InferSchemaResponse,
    m.IngestAck: pb.IngestStreamResponse,
}

_MAX_EXACT_INT = 2**53  # doubles hold every integer up to here exactly


def message_class(model: type) -> type[Message]:
    """The protobuf message class of a model class."""
    return _RENAMED.get(model) or getattr(pb, model.__name__)  # type: ignore[no-any-return]


def value_to_python(value: struct_pb2.Value) -> Any:
    """A ``google.protobuf.Value`` as a plain value (integral numbers as ``int``)."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [value_to_python(v) for v in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        if math.isfinite(number) and number.is_integer() and abs(number) <= _MAX_EXACT_INT:
            return int(number)
        return number
    if kind in ("string_value", "bool_value"):
        return getattr(value, kind)
    return None  # null_value, or no kind at all


def struct_to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    """A ``google.protobuf.Struct`` as a dict of plain values."""
    return {key: value_to_python(v) for key, v in message.fields.items()}


def _parse_time(text: str) -> datetime | None:
    if not text:
        return None
    parsed = datetime.fromisoformat(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _vector(message: pb.Vector) -> list[float]:
    if message.f32:
        return list(struct.unpack(f"<{len(message.f32) // 4}f", message.f32))
    return list(message.values)


def _optional(hint: Any) -> tuple[Any, bool]:
    """(the hint without None, whether None was allowed)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


@dataclasses.dataclass(frozen=True)
class _Field:
    """How one field converts: its name, whether unset means None, and the two directions."""

    name: str
    nullable: bool
    has_presence: bool
    read: Callable[[Any], Any]  # message field value -> Python value
    write: Callable[[Message, Any], None]  # (message, Python value) -> sets the field


def _element(fd: FieldDescriptor, hint: Any, where: str) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(wire value -> Python, Python -> wire value) of one (element) value; messages via CopyFrom."""
    if fd.type == FieldDescriptor.TYPE_ENUM:
        if not (isinstance(hint, type) and issubclass(hint, ProtoEnum)):
            raise TypeError(f"{where}: an enum field needs a ProtoEnum hint, not {hint!r}")
        return hint.from_number, lambda member: member.number
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        full = fd.message_type.full_name
        if full == "google.protobuf.Struct" and typing.get_origin(hint) is dict:
            return struct_to_dict, _struct_of
        if full == "google.protobuf.Timestamp" and hint is datetime:
            return lambda ts: ts.ToDatetime(tzinfo=timezone.utc), _timestamp_of
        if full == "embcluster.v1.Vector" and typing.get_origin(hint) is list:
            return _vector, lambda values: pb.Vector(values=values)
        if dataclasses.is_dataclass(hint) and message_class(hint).DESCRIPTOR is fd.message_type:  # type: ignore[arg-type]
            model = typing.cast(type, hint)
            return (lambda msg: to_model(msg, model)), to_proto
        raise TypeError(f"{where}: no conversion from {full} to {hint!r}")
    if fd.type == FieldDescriptor.TYPE_STRING and hint is datetime:
        return _parse_time, lambda dt: dt.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    if hint in (int, float, str, bool, bytes):
        return (lambda v: v), (lambda v: v)
    raise TypeError(f"{where}: no conversion from a {fd.cpp_type}-typed field to {hint!r}")


def _struct_of(data: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(data)
    return out


def _timestamp_of(dt: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(dt.astimezone(timezone.utc))
    return out


def _plan_field(fd: FieldDescriptor, hint: Any, where: str) -> _Field:
    inner, nullable = _optional(hint)
    name = fd.name
    if fd.is_repeated:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            raise TypeError(f"{where}: map fields are not supported")
        if typing.get_origin(inner) is not list or nullable:
            raise TypeError(f"{where}: a repeated field needs a list[...] hint, not {hint!r}")
        read_one, write_one = _element(fd, typing.get_args(inner)[0], where)
        is_message = fd.type == FieldDescriptor.TYPE_MESSAGE

        def write_list(msg: Message, values: Any) -> None:
            target = getattr(msg, name)
            for value in values:
                if is_message:
                    target.add().CopyFrom(write_one(value))
                else:
                    target.append(write_one(value))

        return _Field(name, False, False, lambda values: [read_one(v) for v in values], write_list)
    read, write_one = _element(fd, inner, where)
    if nullable and not fd.has_presence and not (fd.type == FieldDescriptor.TYPE_STRING and inner is datetime):
        raise TypeError(f"{where}: None is allowed but the field has no presence")
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        def write(msg: Message, value: Any) -> None:
            sub = write_one(value)
            if nullable or sub.ByteSize():  # without None in the hint, empty and unset are one
                getattr(msg, name).CopyFrom(sub)
    else:
        def write(msg: Message, value: Any) -> None:
            setattr(msg, name, write_one(value))
    return _Field(name, nullable, fd.has_presence, read, write)


_PLANS: dict[type, tuple[_Field, ...]] = {}


def _plan(model: type) -> tuple[_Field, ...]:
    plan = _PLANS.get(model)
    if plan is None:
        descriptor: Descriptor = message_class(model).DESCRIPTOR
        hints = typing.get_type_hints(model)
        fields = []
        for f in dataclasses.fields(model):
            if f.name == "proto":
                continue
            where = f"{model.__name__}.{f.name}"
            fd = descriptor.fields_by_name.get(f.name)
            if fd is None:
                raise TypeError(f"{where}: {descriptor.full_name} has no field {f.name!r}")
            fields.append(_plan_field(fd, hints[f.name], where))
        plan = _PLANS[model] = tuple(fields)
    return plan


def to_model(message: Message, model: type[M]) -> M:
    """The model of ``message`` (``message`` kept as its ``proto``).

    Args:
        message: A message of ``model``'s message type.
        model: A class of :mod:`embcluster_client.models`.

    Raises:
        TypeError: ``message`` is not of the model's message type.
    """
    if message.DESCRIPTOR is not message_class(model).DESCRIPTOR:
        raise TypeError(f"{model.__name__} is read from {message_class(model).DESCRIPTOR.full_name}, "
                        f"not {message.DESCRIPTOR.full_name}")
    values: dict[str, Any] = {}
    for f in _plan(model):
        if f.nullable and f.has_presence and not message.HasField(f.name):
            values[f.name] = None
        else:
            values[f.name] = f.read(getattr(message, f.name))
    return typing.cast(Any, model)(**values, proto=message)


def to_proto(model: Any) -> Message:
    """A new message built from a model's fields (not its ``proto``: the fields may have been
    replaced with ``dataclasses.replace``); None fields are left unset."""
    out = message_class(type(model))()
    for f in _plan(type(model)):
        value = getattr(model, f.name)
        if value is not None:
            f.write(out, value)
    return out
