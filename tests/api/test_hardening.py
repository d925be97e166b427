"""Bad input is never INTERNAL, echoed values are bounded, streams are fair, shutdown always completes."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest

from embcluster.api.server import SERVICE_NAME
from embcluster.api.v1 import embcluster_pb2 as pb
from embcluster.api.v1 import embcluster_pb2_grpc as pb_grpc
from embcluster.config import Settings
from embcluster.validation import MAX_METADATA_DEPTH, MAX_METADATA_KEYS

from .conftest import Running


def _code(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


def _nested(depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        out = {"a": out}
    return out


@pytest.fixture
def vec(tmp_path: Path) -> Iterator[Running]:
    r = Running(Settings(data_dir=tmp_path / "data", port=0, grpc_workers=6, max_open_streams=4))
    r.client.create_collection("v", input_kind="vector", vector_dim=2, distance="euclid")
    yield r
    r.stop()


def _raw(r: Running, method: str, data: bytes) -> Any:
    channel = grpc.insecure_channel(r.server.address)
    try:
        call = channel.unary_unary(f"/{SERVICE_NAME}/{method}", request_serializer=None, response_deserializer=None)
        return call(data, timeout=30)
    finally:
        channel.close()


@pytest.mark.parametrize("data", [b"\xff\xff\xff", b"\x0a\x05ab", b"\x22\x03\x0a\x01"])
def test_unparseable_request_bytes_are_invalid_argument(vec: Running, data: bytes,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    for method in ("GetCollection", "Ingest", "Search", "ListClusters"):
        with pytest.raises(grpc.RpcError) as err:
            _raw(vec, method, data)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, err.value.details())
        assert "not a valid" in (err.value.details() or "")
    assert "Exception deserializing" not in caplog.text


def test_metadata_depth_and_key_count_are_capped_so_every_stored_point_stays_readable(vec: Running) -> None:
    c = vec.client
    for bad in (_nested(MAX_METADATA_DEPTH + 1), _nested(33), {f"k{i}": i for i in range(MAX_METADATA_KEYS + 1)}):
        assert _code(lambda: c.ingest("v", [{"vector": [1.0, 0.0], "metadata": bad}])) == \
            grpc.StatusCode.INVALID_ARGUMENT
    assert c.get_collection("v").point_count == 0
    deep = _nested(MAX_METADATA_DEPTH)
    c.ingest("v", [{"id": f"p{i}", "vector": [float(i), 1.0], "metadata": deep} for i in range(60)])
    c.cluster("v", k=2)
    assert len(c.search("v", [1.0, 1.0], limit=50)) == 50
    assert c.get_point("v", id="p3").metadata["a"]["a"]
    assert c.explain_point("v", id="p3").cluster_id >= 0


def test_names_are_fully_matched_and_long_values_are_clipped_in_errors(vec: Running) -> None:
    c = vec.client
    with pytest.raises(grpc.RpcError) as err:
        c.create_collection("v\n", input_kind="vector", vector_dim=2)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not (vec.settings.data_dir / "collections" / "v\n").exists()
    with pytest.raises(grpc.RpcError) as err:
        c.get_collection("a" * 20_000)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(err.value.details() or "") < 600


def test_long_run_ids_and_path_components_never_reach_the_file_system(vec: Running,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    c = vec.client
    for run_id in ("a" * 300, "../../etc", "ab\n"):
        assert _code(lambda: c.get_clustering_run("v", run_id)) == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: c.cancel_clustering_run("v", "b" * 5000)) == grpc.StatusCode.INVALID_ARGUMENT
    long = "x" * 300
    for path in (f"{long}.snap", f"sub/{long}/a.snap", "/" + "y/" * 3000):
        assert _code(lambda: c.export_collection("v", path)) == grpc.StatusCode.INVALID_ARGUMENT
        assert _code(lambda: c.import_collection(path, name="w")) == grpc.StatusCode.INVALID_ARGUMENT
    assert "Traceback" not in caplog.text and "ENAMETOOLONG" not in caplog.text


def test_log_lines_clip_long_messages() -> None:
    from embcluster.logs import LOG_MESSAGE_LIMIT, clip_record

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %s", ("z" * 50_000,), None)
    clip_record(record)
    assert len(record.getMessage()) < LOG_MESSAGE_LIMIT + 50


def test_one_client_cannot_take_every_stream_slot(vec: Running) -> None:
    """Four slots, two per client: a third from one client is refused while another client still gets in."""
    c = vec.client
    watchers = [c.watch_anomalies("v"), c.watch_anomalies("v")]
    deadline = time.monotonic() + 10
    while vec.server.streams.open != 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(grpc.RpcError) as err:
        next(iter(c.watch_anomalies("v")))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "this client already holds 2" in (err.value.details() or "")
    channel = grpc.insecure_channel(vec.server.address)
    stub = pb_grpc.EmbclusterStub(channel)
    other = [stub.WatchAnomalies(pb.WatchAnomaliesRequest(collection="v"), metadata=[("authorization", "Bearer b")])
             for _ in range(2)]
    while vec.server.streams.open != 4:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert c.get_collection("v").name == "v"
    for w in watchers + other:
        w.cancel()
    channel.close()


def test_shutdown_completes_after_a_stream_whose_first_message_cannot_be_parsed(tmp_path: Path) -> None:
    r = Running(Settings(data_dir=tmp_path / "data", port=0, grpc_workers=4, max_open_streams=2))
    gate = threading.Event()

    def messages() -> Iterator[bytes]:
        yield b"\xff\xff\xff\xff"
        gate.wait(30)  # the client keeps its side open

    channel = grpc.insecure_channel(r.server.address)
    call = channel.stream_stream(f"/{SERVICE_NAME}/IngestStream", request_serializer=None,
                                 response_deserializer=None)(messages())
    with pytest.raises(grpc.RpcError) as err:
        next(call)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    watcher = r.client.watch_anomalies("nothing-yet")  # and one stream that never ends by itself
    started = time.monotonic()
    stopper = threading.Thread(target=r.stop, daemon=True)
    stopper.start()
    stopper.join(20)
    assert not stopper.is_alive(), "GrpcServer.stop did not return"
    assert time.monotonic() - started < 1 + 5 + 5  # grace + cancel wait + closing
    gate.set()
    watcher.cancel()
    channel.close()
