"""The Pythonic client's models: every response message has one, with the same fields, and the
conversion keeps every value (message -> model -> message is the identity)."""

from __future__ import annotations

import dataclasses
import struct
import typing
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from embcluster_client import models, pb
from embcluster_client.convert import message_class, struct_to_dict, to_model, to_proto
from embcluster_client.enums import Distance, EventFieldType, InputKind, ProtoEnum, RunState, SummaryKind
from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

MODELS = [getattr(models, name) for name in models.__all__ if dataclasses.is_dataclass(getattr(models, name))]
ENUMS = [InputKind, Distance, EventFieldType, RunState, SummaryKind]

# Responses the clients return as a plain value or list rather than as a model.
UNWRAPPED = {
    "ListCollectionsResponse": "list[Collection]",
    "DeleteCollectionResponse": "bool",
    "IngestResponse": "list[ItemResult]",
    "DeletePointsResponse": "int",
    "ListModelsResponse": "list[Model]",
    "ClassifyResponse": "list[Assignment]",
    "SearchResponse": "list[SearchHit] (search) or list[SearchGroup] (search_groups)",
}

WHEN = "2024-05-06T07:08:09.123+00:00"  # the server's created_at format


def _fill(descriptor: Descriptor, model: type | None, depth: int = 0) -> Message:
    """A message of ``descriptor`` with every field set to a value that is not its default."""
    msg = message_class(model)() if model is not None else _class_of(descriptor)()
    hints = typing.get_type_hints(model) if model is not None else {}
    for fd in descriptor.fields:
        hint = hints.get(fd.name)
        values = [_value(msg, fd, hint, i, depth) for i in range(2 if fd.is_repeated else 1)]
        target = getattr(msg, fd.name) if fd.is_repeated or fd.type == FieldDescriptor.TYPE_MESSAGE else None
        for value in values:
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                (target.add() if fd.is_repeated else target).CopyFrom(value)  # type: ignore[union-attr]
            elif fd.is_repeated:
                target.append(value)  # type: ignore[union-attr]
            else:
                setattr(msg, fd.name, value)
    return msg


def _class_of(descriptor: Descriptor) -> Any:
    return getattr(pb, descriptor.name)


def _element_hint(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    inner = args[0] if args else hint
    return typing.get_args(inner)[0] if typing.get_origin(inner) is list else inner


def _value(msg: Message, fd: FieldDescriptor, hint: Any, i: int, depth: int) -> Any:
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        name = fd.message_type.full_name
        if name == "google.protobuf.Struct":
            out = struct_pb2.Struct()
            out.update({"n": 3, "x": 2.5, "s": "text", "b": True, "null": None,
                        "list": [1, "two", None, False, {"deep": [0.25]}], "nested": {"k": "v"}})
            return out
        if name == "embcluster.v1.Vector":
            return pb.Vector(values=[0.5, -1.0, 2.0])
        inner = _element_hint(hint)
        return _fill(fd.message_type, inner if dataclasses.is_dataclass(inner) else None, depth + 1)
    if fd.type == FieldDescriptor.TYPE_ENUM:
        return fd.enum_type.values[-1].number
    if fd.type == FieldDescriptor.TYPE_STRING:
        return WHEN if _element_hint(hint) is datetime else f"{fd.name}-{i}"
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return f"{fd.name}-{i}\x00\xff".encode("latin-1")
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return True
    if fd.cpp_type in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        return 0.5 + i
    return 7 + i


def test_every_model_has_exactly_its_messages_fields() -> None:
    for model in MODELS:
        descriptor = message_class(model).DESCRIPTOR
        fields = {f.name for f in dataclasses.fields(model)} - {"proto"}
        assert fields == set(descriptor.fields_by_name), f"{model.__name__} vs {descriptor.full_name}"
        proto = next(f for f in dataclasses.fields(model) if f.name == "proto")
        assert not proto.repr and not proto.compare


def test_every_enum_has_exactly_the_protos_values() -> None:
    for enum_cls in ENUMS:
        descriptor = enum_cls.descriptor()
        assert [m.name for m in enum_cls] == [v.name.removeprefix(enum_cls.prefix()) for v in descriptor.values]
        for member in enum_cls:
            assert descriptor.values_by_number[member.number].name == enum_cls.prefix() + member.name
            assert enum_cls.from_number(member.number) is member


def test_every_response_of_the_service_has_a_model_or_is_unwrapped() -> None:
    covered = {message_class(model).DESCRIPTOR.name for model in MODELS}
    for method in pb.DESCRIPTOR.services_by_name["Embcluster"].methods:
        out = method.output_type.name
        assert out in covered or out in UNWRAPPED, f"{method.name} returns {out}: no model"
    # ... and every message a model contains has its model too (nothing reaches the user as protobuf).
    for model in MODELS:
        for fd in message_class(model).DESCRIPTOR.fields:
            if fd.type == FieldDescriptor.TYPE_MESSAGE and fd.message_type.file is pb.DESCRIPTOR:
                assert fd.message_type.name in covered or fd.message_type.name == "Vector", (model, fd.name)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_round_trip_keeps_every_field(model: type) -> None:
    msg = _fill(message_class(model).DESCRIPTOR, model)
    converted = to_model(msg, model)
    assert converted.proto is msg  # type: ignore[attr-defined]
    assert to_proto(converted) == msg
    assert to_model(to_proto(converted), model) == converted
    text = repr(converted)
    assert "proto=" not in text
    for fd in msg.DESCRIPTOR.fields:  # enums show their names, never their numbers
        if fd.type == FieldDescriptor.TYPE_ENUM:
            value = getattr(converted, fd.name)
            assert isinstance(value, ProtoEnum)
            assert f"{fd.name}={type(value).__name__}.{value.name}" in text
            assert str(value) == value.name


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_unset_optional_fields_are_none(model: type) -> None:
    converted = to_model(message_class(model)(), model)
    hints = typing.get_type_hints(model)
    for f in dataclasses.fields(model):
        if f.name == "proto":
            continue
        optional = type(None) in typing.get_args(hints[f.name])
        value = getattr(converted, f.name)
        assert (value is None) == optional, f"{model.__name__}.{f.name} = {value!r}"
    assert to_proto(converted) == message_class(model)()


def test_enums_show_names_and_compare_with_strings() -> None:
    run = to_model(pb.ClusteringRun(run_id="r1", state=pb.RUN_STATE_SUCCEEDED), models.ClusteringRun)
    assert run.state is RunState.SUCCEEDED
    assert str(run.state) == "SUCCEEDED" and f"{run.state}" == "SUCCEEDED"
    assert repr(run.state) == "RunState.SUCCEEDED" and "3" not in repr(run.state)
    assert "state=RunState.SUCCEEDED" in repr(run)
    assert run.state == "SUCCEEDED" and run.state.number == pb.RUN_STATE_SUCCEEDED
    assert run.state.finished and not RunState.RUNNING.finished
    assert RunState.from_number(99) is RunState.UNSPECIFIED  # a newer server's value does not crash


def test_struct_fields_are_plain_python() -> None:
    point = pb.Point(point_id="p1")
    point.metadata.update({"price": 59, "ratio": 0.25, "tags": ["a", 1, None, True, {"k": [False]}],
                           "gone": None, "on": False, "deep": {"x": {"y": -3}}})
    converted = to_model(point, models.Point)
    assert converted.metadata == {"price": 59, "ratio": 0.25, "tags": ["a", 1, None, True, {"k": [False]}],
                                  "gone": None, "on": False, "deep": {"x": {"y": -3}}}
    assert type(converted.metadata["price"]) is int and type(converted.metadata["ratio"]) is float
    assert converted.source is None and converted.assignment is None and converted.vector is None
    big = struct_pb2.Struct()
    big.update({"big": 2.0**60, "nan": float("nan")})
    as_dict = struct_to_dict(big)
    assert type(as_dict["big"]) is float and as_dict["nan"] != as_dict["nan"]


def test_times_are_utc_datetimes_and_vectors_lists() -> None:
    run = to_model(pb.ClusteringRun(created_at="2024-05-06T09:08:09.5+02:00", finished_at=""), models.ClusteringRun)
    assert run.created_at == datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=timezone.utc)
    assert run.created_at.utcoffset() == timedelta(0) and run.finished_at is None
    packed = pb.Point(vector=pb.Vector(f32=struct.pack("<3f", 0.5, -1.0, 2.0)))
    assert to_model(packed, models.Point).vector == [0.5, -1.0, 2.0]


def test_a_message_of_another_type_is_refused() -> None:
    with pytest.raises(TypeError, match="Collection is read from embcluster.v1.Collection, not embcluster.v1.Point"):
        to_model(pb.Point(), models.Collection)


def test_list_wrappers_iterate_over_their_items() -> None:
    clusters = to_model(pb.ListClustersResponse(model_version=2, clusters=[pb.Cluster(cluster_id=0, size=3),
                                                                           pb.Cluster(cluster_id=1, size=4)]),
                        models.ClusterList)
    assert [c.size for c in clusters] == [3, 4] and len(clusters) == 2 and clusters.model_version == 2
    page = to_model(pb.ListPointsResponse(points=[pb.Point(point_id="a")]), models.PointPage)
    assert [p.point_id for p in page] == ["a"] and page.next_page_token == ""
    ack = to_model(pb.IngestStreamResponse(sequence=1, error_code="INVALID_ARGUMENT"), models.IngestAck)
    assert not ack.ok and to_model(pb.IngestStreamResponse(), models.IngestAck).ok


def test_models_are_frozen_and_replace_rebuilds_the_message() -> None:
    schema = to_model(pb.EventSchema(entity_key="user", fields=[pb.EventField(name="amount", type=pb.EVENT_FIELD_TYPE_NUMERIC)]),
                      models.EventSchema)
    with pytest.raises(dataclasses.FrozenInstanceError):
        schema.entity_key = "card"  # type: ignore[misc]
    assert schema.fields[0].type is EventFieldType.NUMERIC
    changed = dataclasses.replace(schema, entity_key="card")
    assert changed.proto.entity_key == "user"  # the message it was read from
    assert to_proto(changed) == pb.EventSchema(entity_key="card", fields=[schema.fields[0].proto])
