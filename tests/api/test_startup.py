"""Start-up without a real process: health NOT_SERVING while the text model loads, calls that wait for it,
no model stack at import, a port in use, the data directory's lock, reflection v1 beside v1alpha."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
from embcluster_client import EmbclusterClient
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2 as alpha

from embcluster.api import server as server_module
from embcluster.api.reflection import V1_FILE, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME
from embcluster.api.server import SERVICE_NAME, GrpcServer
from embcluster.config import Settings
from embcluster.datalock import DataDirLock
from embcluster.embed.registry import EmbedderRegistry
from embcluster.errors import FailedPrecondition, Unavailable
from embcluster.pipeline import EmbclusterService

from .conftest import Running


class GatedLoader:
    """A model loader that returns the session's model only when the test opens the gate; counts its calls."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self.gate = threading.Event()
        self.calls = 0

    def __call__(self, name: str, path: Path, batch_size: int) -> Any:
        self.calls += 1
        assert self.gate.wait(60), "the test never opened the gate"
        return self.embedder


def _health(channel: grpc.Channel, service: str = "") -> str:
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status.status)


def test_not_serving_until_the_model_is_loaded_and_text_calls_wait_for_it(settings: Settings, text_embedder) -> None:  # type: ignore[no-untyped-def]
    loader = GatedLoader(text_embedder)
    service = EmbclusterService(settings, embedders=EmbedderRegistry(settings, load=loader))
    service.open()
    server = GrpcServer(service, settings)
    loading = service.embedders.load_in_background(settings.default_text_model)
    server.start(ready=False)
    loading.add_done_callback(lambda _: server.set_ready())  # what `embcluster serve` does
    channel = grpc.insecure_channel(server.address)
    client = EmbclusterClient(server.address, timeout=60)
    try:
        assert _health(channel) == _health(channel, SERVICE_NAME) == "NOT_SERVING"
        # calls that need no text model are answered at once
        client.create_collection("v", input_kind="vector", vector_dim=2)
        client.ingest("v", [{"id": "a", "vector": [1.0, 0.0]}])
        assert [c.name for c in client.list_collections()] == ["v"]
        assert client.get_point("v", id="a").external_id == "a"
        # a text call waits for the load, for at most its own deadline
        with pytest.raises(grpc.RpcError) as err:
            EmbclusterClient(server.address, timeout=0.5).create_collection("t", input_kind="text")
        # whichever side sees the deadline first: the server's wait ends with it (UNAVAILABLE, saying why)
        assert err.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
        if err.value.code() == grpc.StatusCode.UNAVAILABLE:
            assert "is still loading" in (err.value.details() or "")
        waited: dict[str, Any] = {}
        waiting = threading.Thread(target=lambda: waited.update(
            created=client.create_collection("t", input_kind="text"),
            ingested=client.ingest("t", ["a red cotton shirt"])))
        waiting.start()
        time.sleep(0.3)
        assert waiting.is_alive() and "created" not in waited  # still waiting: nothing failed
        loader.gate.set()
        waiting.join(60)
        assert waited["created"].dim == 384 and len(waited["ingested"]) == 1
        assert _health(channel) == _health(channel, SERVICE_NAME) == "SERVING"
        assert loader.calls == 1  # every waiter got the one load
    finally:
        loader.gate.set()
        channel.close()
        client.close()
        server.stop(grace=0)
        service.close()


def test_a_wait_for_a_loading_model_ends_with_the_call_deadline(settings: Settings, text_embedder) -> None:  # type: ignore[no-untyped-def]
    from embcluster.deadlines import call_deadline, remaining

    loader = GatedLoader(text_embedder)
    registry = EmbedderRegistry(settings, load=loader)
    loading = registry.load_in_background("")
    assert remaining() is None  # outside a call: no deadline
    started = time.monotonic()
    with call_deadline(0.3), pytest.raises(Unavailable, match="still loading"):
        registry.text("all-MiniLM-L6-v2")
    assert 0.25 < time.monotonic() - started < 10
    loader.gate.set()
    assert loading.result(timeout=60) is registry.text("") is text_embedder
    assert loader.calls == 1


def test_a_failed_load_reaches_every_waiter_and_the_next_use_retries(settings: Settings, text_embedder) -> None:  # type: ignore[no-untyped-def]
    attempts: list[str] = []

    def flaky(name: str, path: Path, batch_size: int) -> Any:
        attempts.append(name)
        if len(attempts) == 1:
            raise OSError("model file unreadable")
        return text_embedder

    registry = EmbedderRegistry(settings, load=flaky)
    with pytest.raises(OSError, match="unreadable"):
        registry.load_in_background("").result(timeout=60)
    assert registry.text("") is text_embedder and len(attempts) == 2


def test_importing_and_building_the_server_does_not_import_the_model_stack(tmp_path: Path) -> None:
    code = f"""
import sys
from pathlib import Path
import embcluster.cli, embcluster.cli_serve
from embcluster.api.server import GrpcServer
from embcluster.config import Settings
from embcluster.pipeline import EmbclusterService
settings = Settings(port=0, data_dir=Path({str(tmp_path / "d")!r}))
service = EmbclusterService(settings)
service.open()
GrpcServer(service, settings).stop(grace=0)
service.close()
print(sorted(m for m in ("torch", "sentence_transformers", "transformers", "sklearn") if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_a_port_in_use_is_a_clear_error_even_when_grpc_itself_binds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = Running(Settings(data_dir=tmp_path / "a", port=0))
    try:
        taken = Settings(data_dir=tmp_path / "b", port=first.server.port)
        service = EmbclusterService(taken)
        try:
            with pytest.raises(Unavailable) as err:
                GrpcServer(service, taken)
            assert err.value.message.startswith(f"cannot bind 127.0.0.1:{first.server.port}: address already in use "
                                                "(another embcluster serve?)")
            # The OS probe loses a race (or is wrong): gRPC itself must still refuse the port, which it
            # does only without SO_REUSEPORT (its default would share the port and split the calls).
            monkeypatch.setattr(server_module, "_bind_problem", lambda host, port: None)
            with pytest.raises(Unavailable, match=f"cannot bind 127.0.0.1:{first.server.port}: gRPC could not bind"):
                GrpcServer(service, taken)
        finally:
            service.close()
        assert first.client.list_collections() == []  # the first server is undisturbed
    finally:
        first.stop()


def test_the_data_directory_lock_is_exclusive_and_names_its_holder(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from embcluster.cli import main

    data = tmp_path / "data"
    held = DataDirLock(data)
    with pytest.raises(FailedPrecondition, match=r"is in use by another process \(pid \d+: another embcluster serve"):
        DataDirLock(data)
    assert main(["serve", "--port", "0", "--data-dir", str(data), "--lazy-model", "--no-metrics"]) == 1
    assert "is in use by another process (pid " in capsys.readouterr().err
    assert main(["export", "x", str(tmp_path / "x.snap"), "--data-dir", str(data)]) == 1
    assert "is in use by another process (pid " in capsys.readouterr().err
    held.release()
    held.release()  # twice is harmless
    with DataDirLock(data):
        pass
    DataDirLock(data).release()


def test_embcluster_health_reports_not_serving_then_serving(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from embcluster.cli import main

    settings = Settings(data_dir=tmp_path / "data", port=0)
    service = EmbclusterService(settings)
    service.open()
    server = GrpcServer(service, settings)
    server.start(ready=False)
    try:
        assert main(["health", "--server", server.address]) == 1
        out = capsys.readouterr()
        assert out.out.strip() == "NOT_SERVING" and "still loading its text model" in out.err
        server.set_ready()
        assert main(["health", "--server", server.address]) == 0
        assert capsys.readouterr().out.strip() == "SERVING"
    finally:
        server.stop(grace=0)
        service.close()


# ---------------------------------------------------------------------------------------- reflection v1

def _v1_call(channel: grpc.Channel, requests: Iterator[alpha.ServerReflectionRequest]) -> Iterator[alpha.ServerReflectionResponse]:
    """A grpc.reflection.v1 client: its method path; v1's messages are v1alpha's field for field."""
    call = channel.stream_stream(f"/{V1_SERVICE_NAME}/ServerReflectionInfo",
                                 request_serializer=alpha.ServerReflectionRequest.SerializeToString,
                                 response_deserializer=alpha.ServerReflectionResponse.FromString)
    return call(requests)  # type: ignore[no-any-return]


def test_reflection_v1_lists_and_describes_the_services(running) -> None:  # type: ignore[no-untyped-def]
    channel = grpc.insecure_channel(running.server.address)
    try:
        asks = iter([alpha.ServerReflectionRequest(list_services=""),
                     alpha.ServerReflectionRequest(file_containing_symbol=V1_SERVICE_NAME),
                     alpha.ServerReflectionRequest(file_containing_symbol="embcluster.v1.Embcluster")])
        listed, v1_file, api_file = list(_v1_call(channel, asks))
        names = {s.name for s in listed.list_services_response.service}
        assert {"embcluster.v1.Embcluster", "grpc.health.v1.Health", V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME} <= names
        files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                 for b in v1_file.file_descriptor_response.file_descriptor_proto]
        v1 = next(f for f in files if f.name == V1_FILE)
        assert v1.package == "grpc.reflection.v1"
        method = v1.service[0].method[0]
        assert (v1.service[0].name, method.name, method.client_streaming, method.server_streaming) == (
            "ServerReflection", "ServerReflectionInfo", True, True)
        assert (method.input_type, method.output_type) == (".grpc.reflection.v1.ServerReflectionRequest",
                                                           ".grpc.reflection.v1.ServerReflectionResponse")
        fields = {(m.name, f.name): (f.number, f.type_name) for m in v1.message_type for f in m.field}
        # the field numbers of grpc/reflection/v1/reflection.proto
        assert fields[("ServerReflectionRequest", "list_services")] == (7, "")
        assert fields[("ServerReflectionRequest", "file_containing_extension")] == (
            5, ".grpc.reflection.v1.ExtensionRequest")
        assert fields[("ServerReflectionResponse", "list_services_response")] == (
            6, ".grpc.reflection.v1.ListServiceResponse")
        assert fields[("ServerReflectionResponse", "error_response")] == (7, ".grpc.reflection.v1.ErrorResponse")
        assert not any(t.startswith(".grpc.reflection.v1alpha") for _, t in fields.values())
        assert [descriptor_pb2.FileDescriptorProto.FromString(b).name
                for b in api_file.file_descriptor_response.file_descriptor_proto][0] == "embcluster/v1/embcluster.proto"
    finally:
        channel.close()


def test_a_reflection_v1_stream_holds_a_stream_slot(tmp_path: Path) -> None:
    r = Running(Settings(data_dir=tmp_path / "data", port=0, grpc_workers=3, max_open_streams=1))
    channel = grpc.insecure_channel(r.server.address)
    gate = threading.Event()

    def ask() -> Iterator[alpha.ServerReflectionRequest]:
        yield alpha.ServerReflectionRequest(list_services="")
        gate.wait(10)  # keep the stream open

    try:
        stream = _v1_call(channel, ask())
        assert next(stream).list_services_response.service
        assert r.server.streams.open == 1
        with pytest.raises(grpc.RpcError) as err:
            next(iter(r.client.watch_anomalies("nothing")))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        gate.set()
        list(stream)
    finally:
        gate.set()
        channel.close()
        r.stop()


def test_reflection_v1_needs_the_read_scope_like_v1alpha(settings: Settings) -> None:
    from embcluster.auth import ApiKeyRecord, hash_key

    key = "emb_reader-key-0123456789abcdef"
    r = Running(settings.model_copy(update={"api_keys": [ApiKeyRecord(name="reader", sha256=hash_key(key),
                                                                      scopes=("read",))]}))
    channel = grpc.insecure_channel(r.server.address)
    ask = alpha.ServerReflectionRequest(list_services="")
    try:
        for path in (f"/{V1_SERVICE_NAME}/ServerReflectionInfo", f"/{V1ALPHA_SERVICE_NAME}/ServerReflectionInfo"):
            call = channel.stream_stream(path, request_serializer=alpha.ServerReflectionRequest.SerializeToString,
                                         response_deserializer=alpha.ServerReflectionResponse.FromString)
            with pytest.raises(grpc.RpcError) as err:
                list(call(iter([ask]), timeout=10))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, path
            # the lowest scope is enough (a method the rules do not name would need admin)
            answers = list(call(iter([ask]), metadata=(("authorization", f"Bearer {key}"),), timeout=10))
            assert "embcluster.v1.Embcluster" in {s.name for s in answers[0].list_services_response.service}, path
    finally:
        channel.close()
        r.stop()
