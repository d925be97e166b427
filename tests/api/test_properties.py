"""Property-based: generated requests to every RPC are never INTERNAL or UNKNOWN.

Requests are built from the protobuf descriptors (every field of every request message, nested
messages and Structs included), plus raw random bytes sent to each method path through a
generic channel. After every rejected call the stored state is unchanged; at the end of each
test every stored point is still readable through GetPoint, Search and ExplainPoint.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterator

import grpc
import numpy as np
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from embcluster.api.server import SERVICE_NAME
from embcluster.api.v1 import embcluster_pb2 as pb
from embcluster.config import Settings
from embcluster.store.ids import public_point_id

from .conftest import Running

pytestmark = pytest.mark.slow

METHODS = list(pb.DESCRIPTOR.services_by_name["Embcluster"].methods)
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
OK_READ = {None, grpc.StatusCode.FAILED_PRECONDITION}  # ExplainPoint before any model is served
CALL_TIMEOUT = 20.0
STREAM_TIMEOUT = 1.0  # watchers never end by themselves: a deadline ends them
PROPERTY = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))

# Strings the server gives meaning to (existing names, traversal, over-long, a trailing newline).
WORDS = ["v", "t", "", "nope", "v\n", "a" * 300, "../x", "p1", "p2", "/tmp/x.snap", "s.snap", "0" * 16]
DIM = 4
READ_SAMPLE = 10  # points per collection read back after each RPC's examples


def _text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(WORDS), st.text(max_size=24))


def _scalar(f: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = f.type
    if t == FieldDescriptor.TYPE_STRING:
        return _text()
    if t == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=40), st.just(np.ones(DIM, np.float32).tobytes()))
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_DOUBLE:
        return st.one_of(st.sampled_from([0.0, 0.1, 1.0, -1.0, 3.0, 1e300, math.nan, math.inf]), st.floats())
    if t == FieldDescriptor.TYPE_FLOAT:
        return st.one_of(st.floats(-10, 10, width=32), st.floats(width=32))
    if t == FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([v.number for v in f.enum_type.values] + [77])
    signed = t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32,
                   FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64)
    bits = 32 if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32,
                       FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32) else 64
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    return st.one_of(st.integers(max(lo, -2), 12), st.integers(lo, hi))


def _repeated(f: FieldDescriptor) -> bool:
    flag = getattr(f, "is_repeated", None)
    return bool(flag) if flag is not None else f.label == FieldDescriptor.LABEL_REPEATED


@st.composite
def messages(draw: Callable[..., Any], desc: Descriptor, depth: int = 0) -> Any:
    """A message of type ``desc``: each field set or not, nested messages down to depth 4."""
    msg = message_factory.GetMessageClass(desc)()
    for f in desc.fields:
        nested = f.type == FieldDescriptor.TYPE_MESSAGE
        if (nested and depth >= 4) or not draw(st.booleans()):
            continue
        target = getattr(msg, f.name) if nested or _repeated(f) else None
        if nested and f.message_type.GetOptions().map_entry:
            key_f, val_f = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
            for _ in range(draw(st.integers(0, 3))):
                key = draw(_scalar(key_f))
                if val_f.type == FieldDescriptor.TYPE_MESSAGE:
                    target[key].CopyFrom(draw(messages(val_f.message_type, depth + 1)))
                else:
                    target[key] = draw(_scalar(val_f))
        elif _repeated(f):
            size = st.sampled_from([0, 1, 2, DIM, 5]) if f.name == "values" else st.integers(0, 3)
            for _ in range(draw(size)):
                if nested:
                    target.add().CopyFrom(draw(messages(f.message_type, depth + 1)))
                else:
                    target.append(draw(_scalar(f)))
        elif nested:
            target.CopyFrom(draw(messages(f.message_type, depth + 1)))
        else:
            setattr(msg, f.name, draw(_scalar(f)))
    return msg


def _filled(desc: Descriptor, text: str, depth: int = 0, *, collection: str = "") -> Any:
    """A message with every string field (nested ones too) set to ``text``, its ``collection`` to
    ``collection`` if given: explicit examples every RPC gets."""
    msg = message_factory.GetMessageClass(desc)()
    for f in desc.fields:
        if f.type == FieldDescriptor.TYPE_STRING:
            value = collection if f.name == "collection" and collection else text
            if _repeated(f):
                getattr(msg, f.name).append(value)
            else:
                setattr(msg, f.name, value)
        elif (f.type == FieldDescriptor.TYPE_MESSAGE and depth < 2 and not _repeated(f)
              and f.message_type.full_name.startswith("embcluster.")):
            getattr(msg, f.name).CopyFrom(_filled(f.message_type, text, depth + 1, collection=collection))
    return msg


# ------------------------------------------------------------------ the server and its state


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, text_embedder) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("props") / "data"
    r = Running(Settings(data_dir=data, port=0, grpc_workers=8, max_batch_items=50, page_size=16), text_embedder)
    c = r.client
    c.create_collection("v", input_kind="vector", vector_dim=DIM, distance="euclid")
    rng = np.random.default_rng(0)
    c.ingest("v", [{"id": f"p{i}", "vector": rng.normal(size=DIM).tolist(), "metadata": {"i": i}}
                   for i in range(40)])
    c.cluster("v", k=3, seed=0)
    c.create_collection("t", input_kind="text")
    c.ingest("t", [{"id": f"p{i}", "text": f"note number {i}"} for i in range(6)])
    yield r
    r.stop()


def _idle(r: Running) -> None:
    for info in r.service.list_collections():
        r.service.runs.wait(info.name, timeout=60)


def _state(r: Running) -> dict[str, Any]:
    """What a rejected call must leave unchanged: every collection, its record and every point's payload."""
    _idle(r)
    out: dict[str, Any] = {}
    for info in r.service.list_collections():
        coll = r.service.registry.get(info.name)
        points, _ = coll.store.scroll(limit=100_000)
        out[info.name] = (repr(info), sorted((str(p.id), json.dumps(p.payload, sort_keys=True, default=str))
                                             for p in points))
    return out


def _call(r: Running, method: Any, request: Any) -> grpc.StatusCode | None:
    """Sends one request (``bytes`` as they are); the status code, None for OK."""
    channel = r.channel
    path = f"/{SERVICE_NAME}/{method.name}"
    raw = isinstance(request, bytes)
    ser = None if raw else (lambda m: m.SerializeToString())
    kw: dict[str, Any] = {"request_serializer": ser, "response_deserializer": None}
    try:
        if method.client_streaming:
            list(channel.stream_stream(path, **kw)(iter([request]), timeout=CALL_TIMEOUT))
        elif method.server_streaming:
            for _ in channel.unary_stream(path, **kw)(request, timeout=STREAM_TIMEOUT):
                pass
        else:
            channel.unary_unary(path, **kw)(request, timeout=CALL_TIMEOUT)
    except grpc.RpcError as exc:
        if method.server_streaming and exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return None  # a watcher that was still watching
        assert exc.code() not in NEVER, f"{method.name}: {exc.code()} {exc.details()} for {request!r:.300}"
        return exc.code()
    return None


def _check(r: Running, method: Any, request: Any) -> None:
    before = _state(r)
    code = _call(r, method, request)
    if code is not None:
        assert _state(r) == before, f"{method.name} was rejected ({code}) but changed the stored state"


def _readable(r: Running) -> None:
    """Every stored point through GetPoint, Search and ExplainPoint: never an error but no-model."""
    _idle(r)
    stub_calls = {m.name: m for m in METHODS}
    for info in r.service.list_collections():
        coll = r.service.registry.get(info.name)
        points, _ = coll.store.scroll(limit=READ_SAMPLE)
        for p in coll.store.retrieve([p.id for p in points], with_vectors=True):
            pid = public_point_id(p.id)
            got = _call(r, stub_calls["GetPoint"], pb.GetPointRequest(collection=info.name, point_id=pid))
            assert got is None, f"GetPoint {info.name}/{pid}: {got}"
            query = {"text": pb.SearchRequest(collection=info.name, text="note", limit=50),
                     "vector": pb.SearchRequest(collection=info.name, limit=50,
                                                vector=pb.Vector(values=[float(v) for v in p.vector]))
                     }.get(info.input_kind)
            if query is not None:
                assert _call(r, stub_calls["Search"], query) is None, f"Search {info.name}"
            explained = _call(r, stub_calls["ExplainPoint"], pb.ExplainPointRequest(collection=info.name,
                                                                                   point_id=pid))
            assert explained in OK_READ, f"ExplainPoint {info.name}/{pid}: {explained}"


@pytest.fixture(scope="module", autouse=True)
def _channel(server: Running) -> Iterator[None]:
    server.channel = grpc.insecure_channel(server.server.address)  # type: ignore[attr-defined]
    yield
    server.channel.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_generated_requests_are_never_internal_and_rejections_change_nothing(server: Running, method: Any) -> None:
    @PROPERTY
    @given(request=messages(method.input_type))
    @example(request=_filled(method.input_type, "a" * 300))  # over-long ids and names: ENAMETOOLONG was INTERNAL
    @example(request=_filled(method.input_type, "a" * 300, collection="v"))
    @example(request=_filled(method.input_type, "v\n"))
    def prop(request: Any) -> None:
        _check(server, method, request)

    prop()
    _readable(server)


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_random_bytes_to_every_method_are_never_internal(server: Running, method: Any) -> None:
    @settings(PROPERTY, max_examples=10)
    @given(data=st.one_of(st.binary(max_size=48), st.just(b"\xff\xff\xff\xff"), st.just(b"\x0a\xff\x01")))
    def prop(data: bytes) -> None:
        _check(server, method, data)

    prop()


@pytest.mark.parametrize("path", ["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"])
def test_random_bytes_to_the_health_service_are_never_internal(server: Running, path: str) -> None:
    @settings(PROPERTY, max_examples=10)
    @given(data=st.one_of(st.binary(max_size=48), st.just(b"\xff\xff\xff\xff")))
    def prop(data: bytes) -> None:
        call = (server.channel.unary_stream if path.endswith("Watch")  # type: ignore[attr-defined]
                else server.channel.unary_unary)(path)  # type: ignore[attr-defined]
        try:
            result = call(data, timeout=STREAM_TIMEOUT)
            if path.endswith("Watch"):
                next(result)
        except grpc.RpcError as exc:
            assert exc.code() not in NEVER, f"{path}: {exc.code()} {exc.details()}"

    prop()


def test_every_rpc_is_covered() -> None:
    from embcluster.api.servicer import EmbclusterServicer

    assert len(METHODS) >= 29 and all(m.name in EmbclusterServicer.__dict__ for m in METHODS)
