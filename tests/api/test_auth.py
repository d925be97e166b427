"""API keys over the real gRPC server: no key, wrong scope, a collection-restricted key, health
open, the refusal to serve an open non-loopback port, and the metrics endpoint's keys."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import grpc
import numpy as np
import pytest
from embcluster_client import AsyncEmbclusterClient, EmbclusterClient, pb

from embcluster.api.auth import RULES
from embcluster.api.server import GrpcServer
from embcluster.auth import ApiKeyRecord, KeyRing, hash_key, is_loopback, key_line
from embcluster.config import Settings
from embcluster.errors import FailedPrecondition
from embcluster.metrics import MetricsEndpoint

from .conftest import Running

KEYS = {"admin": "emb_admin-key-0123456789abcdef", "reader": "emb_reader-key-0123456789abcdef",
        "writer_a": "emb_writer-a-key-0123456789abcdef", "admin_a": "emb_admin-a-key-0123456789abcdef"}
RECORDS = [
    ApiKeyRecord(name="admin", sha256=hash_key(KEYS["admin"]), scopes=("admin",)),
    ApiKeyRecord(name="reader", sha256=hash_key(KEYS["reader"]), scopes=("read",)),
    ApiKeyRecord(name="writer_a", sha256=hash_key(KEYS["writer_a"]), scopes=("write",), collections=("a",)),
    ApiKeyRecord(name="admin_a", sha256=hash_key(KEYS["admin_a"]), scopes=("admin",), collections=("a", "a2")),
]


def _key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.jsonl"
    path.write_text("# test keys\n\n" + "\n".join(key_line(r) for r in RECORDS) + "\n")
    return path


@pytest.fixture
def secured(settings: Settings, tmp_path: Path) -> Iterator[Running]:
    r = Running(settings.model_copy(update={"api_keys_file": _key_file(tmp_path)}))
    admin = EmbclusterClient(r.server.address, timeout=30, api_key=KEYS["admin"])
    for name in ("a", "b"):
        admin.create_collection(name, input_kind="vector", vector_dim=4)
        admin.ingest(name, [{"id": f"{name}{i}", "vector": [float(i), 1.0, 0.0, 0.5]} for i in range(5)])
    admin.close()
    yield r
    r.stop()


def _client(r: Running, who: str | None) -> EmbclusterClient:
    return EmbclusterClient(r.server.address, timeout=30, api_key=KEYS[who] if who else None)


def _code(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


def test_no_key_or_an_unknown_key_is_unauthenticated_and_health_stays_open(secured: Running) -> None:
    anonymous = secured.client  # the fixture's client sends no key
    assert _code(anonymous.list_collections) == grpc.StatusCode.UNAUTHENTICATED
    assert _code(lambda: anonymous.get_collection("a")) == grpc.StatusCode.UNAUTHENTICATED
    assert _code(lambda: list(anonymous.watch_run("a", "r"))) == grpc.StatusCode.UNAUTHENTICATED
    assert anonymous.health() == "SERVING"
    with EmbclusterClient(secured.server.address, timeout=30, api_key="emb_not-a-key-at-all-0000000") as wrong:
        assert _code(wrong.list_collections) == grpc.StatusCode.UNAUTHENTICATED
    channel = grpc.insecure_channel(secured.server.address)
    list_rpc = channel.unary_unary("/embcluster.v1.Embcluster/ListCollections",
                                   request_serializer=pb.ListCollectionsRequest.SerializeToString,
                                   response_deserializer=pb.ListCollectionsResponse.FromString)
    for header in (KEYS["admin"], f"Basic {KEYS['admin']}", "Bearer "):  # not "Bearer <key>"
        with pytest.raises(grpc.RpcError) as info:
            list_rpc(pb.ListCollectionsRequest(), metadata=[("authorization", header)], timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert KEYS["admin"] not in (info.value.details() or "")
    assert len(list_rpc(pb.ListCollectionsRequest(), metadata=[("authorization", f"bearer {KEYS['admin']}")],
                        timeout=10).collections) == 2
    channel.close()


def test_read_key_reads_and_is_denied_every_write(secured: Running) -> None:
    with _client(secured, "reader") as c:
        assert {x.name for x in c.list_collections()} == {"a", "b"}
        assert c.get_point("b", id="b1").external_id == "b1"
        assert len(c.search("a", [1.0, 1.0, 0.0, 0.5], limit=3)) == 3
        denied = [
            lambda: c.ingest("a", [{"id": "x", "vector": [0.0, 1.0, 0.0, 0.0]}]),
            lambda: c.delete_points("a", ids=["a1"]),
            lambda: c.start_clustering("a", k=2),
            lambda: c.create_collection("c", input_kind="vector", vector_dim=4),
            lambda: c.delete_collection("b"),
            lambda: c.export_collection("a", "a.snap"),
        ]
        for call in denied:
            assert _code(call) == grpc.StatusCode.PERMISSION_DENIED
    with _client(secured, "admin") as admin:
        assert admin.get_collection("a").point_count == 5  # nothing the reader tried went through


def test_collection_restricted_key_sees_only_its_collections(secured: Running) -> None:
    with _client(secured, "writer_a") as c:
        assert [x.name for x in c.list_collections()] == ["a"]
        assert c.get_collection("a").name == "a"
        c.ingest("a", [{"id": "new", "vector": [0.0, 2.0, 0.0, 1.0]}])
        not_found = [
            lambda: c.get_collection("b"),
            lambda: c.get_collection("missing"),
            lambda: c.get_point("b", id="b1"),
            lambda: c.search("b", [1.0, 1.0, 0.0, 0.5]),
            lambda: c.ingest("b", [{"id": "x", "vector": [0.0, 1.0, 0.0, 0.0]}]),
            lambda: list(c.watch_run("b", "run")),
        ]
        for call in not_found:
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            assert "not found" in info.value.details()
        # A stream whose second message names another collection ends NOT_FOUND after the first.
        requests = [pb.IngestRequest(collection=name, items=[pb.Item(id=f"s-{name}", vector=pb.Vector(
            values=[1.0, 0.0, 0.0, 0.0]))]) for name in ("a", "b")]
        responses = c._stub.IngestStream(iter(requests), timeout=30)
        first = next(responses)
        assert first.sequence == 0 and not first.error_code
        with pytest.raises(grpc.RpcError) as info:
            next(responses)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert _code(lambda: c.create_collection("a3", input_kind="vector", vector_dim=4)) \
            == grpc.StatusCode.PERMISSION_DENIED  # write scope: no create at all
    with _client(secured, "admin_a") as c:
        assert _code(lambda: c.create_collection("c", input_kind="vector", vector_dim=4)) \
            == grpc.StatusCode.PERMISSION_DENIED  # a name outside its list
        assert c.create_collection("a2", input_kind="vector", vector_dim=4).name == "a2"
        assert sorted(x.name for x in c.list_collections()) == ["a", "a2"]
        assert _code(lambda: c.delete_collection("b")) == grpc.StatusCode.NOT_FOUND
    with _client(secured, "admin") as admin:
        assert admin.get_collection("b").point_count == 5
        assert admin.get_collection("a").point_count == 7


def test_async_client_sends_the_key(secured: Running) -> None:
    async def go() -> tuple[list[str], grpc.StatusCode]:
        async with AsyncEmbclusterClient(secured.server.address, timeout=30, api_key=KEYS["writer_a"]) as c:
            names = [x.name for x in await c.list_collections()]
            run = await c.start_clustering("a", k=2)
            states = [r.state async for r in c.watch_run("a", run.run_id)]  # a stream through the key's interceptor
            assert states and states[-1] == pb.RUN_STATE_SUCCEEDED
            try:
                await c.get_collection("b")
            except grpc.RpcError as exc:
                return names, exc.code()
        raise AssertionError("no error")

    names, code = asyncio.run(go())
    assert names == ["a"] and code == grpc.StatusCode.NOT_FOUND


def test_every_rpc_has_a_rule() -> None:
    methods = set(pb.DESCRIPTOR.services_by_name["Embcluster"].methods_by_name)
    assert methods == set(RULES), methods ^ set(RULES)
    for name, (scope, field) in RULES.items():
        request = pb.DESCRIPTOR.services_by_name["Embcluster"].methods_by_name[name].input_type
        assert scope in ("read", "write", "admin")
        assert field is None or field in request.fields_by_name, name


def test_refuses_a_non_loopback_address_without_keys(settings: Settings, make_service, tmp_path: Path) -> None:
    service = make_service(settings.data_dir)
    for host in ("0.0.0.0", "::", "192.0.2.1", "example.org"):
        with pytest.raises(FailedPrecondition, match="refusing to serve gRPC on"):
            GrpcServer(service, settings.model_copy(update={"host": host}))
    with pytest.raises(FailedPrecondition, match="metrics on 0.0.0.0"):
        GrpcServer(service, settings.model_copy(update={"metrics_host": "0.0.0.0"}))
    for update in ({"insecure_open": True}, {"api_keys_file": _key_file(tmp_path)}, {"api_keys": RECORDS[:1]}):
        server = GrpcServer(service, settings.model_copy(update={"host": "0.0.0.0", **update}))
        server.start()
        server.stop(grace=0)
    for host in ("127.0.0.1", "localhost", "127.0.0.2"):
        GrpcServer(service, settings.model_copy(update={"host": host})).stop(grace=0)
    assert is_loopback("::1") and is_loopback("[::1]") and not is_loopback("::") and not is_loopback("")


def test_serve_refuses_to_start_open_on_all_interfaces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from embcluster.cli import main

    assert main(["serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path / "d"), "--lazy-model",
                 "--no-metrics"]) == 1
    err = capsys.readouterr().err
    assert "refusing to serve gRPC on 0.0.0.0 without API keys" in err and "--insecure-open" in err


def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EMBCLUSTER_API_KEYS", "[" + key_line(RECORDS[1]) + "]")
    ring = KeyRing.load(None, Settings(data_dir=tmp_path).api_keys)
    assert ring.authenticate(KEYS["reader"]).name == "reader"  # type: ignore[union-attr]
    assert ring.authenticate(KEYS["admin"]) is None


def test_metrics_endpoint_requires_a_key(secured: Running) -> None:
    endpoint = MetricsEndpoint(secured.service.metrics, "127.0.0.1", 0, authorize=secured.server.keys.http_status)
    try:
        def status(key: str | None) -> int:
            request = urllib.request.Request(endpoint.url, headers={"Authorization": f"Bearer {key}"} if key else {})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    body = response.read().decode()
                    assert "embcluster_collection_points" in body
                    return response.status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert status(None) == 401
        assert status("emb_wrong-0000000000000000000") == 401
        assert status(KEYS["writer_a"]) == 403  # restricted: the series name every collection
        assert status(KEYS["reader"]) == 200
    finally:
        endpoint.close()


def test_constant_time_lookup_finds_each_key() -> None:
    ring = KeyRing(RECORDS)
    for name, key in KEYS.items():
        principal = ring.authenticate(key)
        assert principal is not None and principal.name == name
    assert ring.authenticate(KEYS["admin"] + "x") is None
    assert ring.from_header(None) is None and ring.from_header("Bearer " + "x" * 600) is None
    assert np.all([ring.from_header(f"Bearer {k}") is not None for k in KEYS.values()])
