"""Open streams are capped below the gRPC worker count, so unary calls always find a thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pydantic import ValidationError

from embcluster.config import Settings

from .conftest import Running


def _wait_open(r: Running, n: int) -> None:
    deadline = time.monotonic() + 10
    while r.server.streams.open != n:
        assert time.monotonic() < deadline, f"{r.server.streams.open} streams open, waited for {n}"
        time.sleep(0.02)


def test_a_stream_over_the_cap_is_resource_exhausted_and_unary_calls_are_still_served(tmp_path: Path) -> None:
    r = Running(Settings(data_dir=tmp_path / "data", port=0, grpc_workers=3, max_open_streams=2,
                         max_open_streams_per_client=2))
    try:
        c = r.client
        c.create_collection("v", input_kind="vector", vector_dim=2, distance="euclid")
        w1, w2 = c.watch_anomalies("v"), c.watch_anomalies("v")
        _wait_open(r, 2)
        assert c.get_collection("v").name == "v"  # the third worker is free for unary calls
        for call in (c.watch_anomalies("v"), c.ingest_stream("v", [[{"vector": [0.0, 1.0]}]])):
            with pytest.raises(grpc.RpcError) as err:
                next(iter(call))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "2 streaming calls are already open" in (err.value.details() or "")
        assert c.get_collection("v").point_count == 0  # the refused stream ingested nothing
        w1.cancel()
        _wait_open(r, 1)  # a cancelled watcher gives its slot back
        acks = list(c.ingest_stream("v", [[{"vector": [0.0, 1.0]}], [{"vector": [1.0, 0.0]}]]))
        assert [a.sequence for a in acks] == [0, 1] and c.get_collection("v").point_count == 2
        _wait_open(r, 1)  # a finished stream gives its slot back too
        w2.cancel()
        _wait_open(r, 0)
    finally:
        r.stop()


def test_health_watch_and_reflection_streams_never_starve_unary_calls(tmp_path: Path) -> None:
    """Health.Watch stays non-blocking (no thread held); reflection's stream counts against the cap."""
    r = Running(Settings(data_dir=tmp_path / "data", port=0, grpc_workers=3, max_open_streams=1))
    channel = grpc.insecure_channel(r.server.address)
    try:
        health = health_pb2_grpc.HealthStub(channel)
        watches = [health.Watch(health_pb2.HealthCheckRequest(service="")) for _ in range(4)]
        assert [next(w).status for w in watches] == [health_pb2.HealthCheckResponse.SERVING] * 4
        assert r.server.streams.open == 0
        assert r.client.list_collections() == []  # four open watches, three workers: still served

        def ask() -> Iterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")
            gate.wait(10)  # keep the stream open

        gate = threading.Event()
        refl = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(ask())
        assert next(refl).list_services_response.service
        _wait_open(r, 1)
        with pytest.raises(grpc.RpcError) as err:
            next(iter(r.client.watch_anomalies("nothing")))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        gate.set()
        list(refl)
        _wait_open(r, 0)
        for w in watches:
            w.cancel()
        assert r.client.list_collections() == []
    finally:
        channel.close()
        r.stop()


def test_the_stream_cap_must_leave_a_worker_for_unary_calls() -> None:
    assert Settings(grpc_workers=16).open_streams_limit == 8
    assert Settings(grpc_workers=5, max_open_streams=4).open_streams_limit == 4
    with pytest.raises(ValidationError, match=r"max_open_streams \(4\) must be below grpc_workers \(4\)"):
        Settings(grpc_workers=4, max_open_streams=4)
    with pytest.raises(ValidationError, match="grpc_workers"):
        Settings(grpc_workers=1)  # one thread cannot serve a stream and unary calls


def test_serve_names_each_bad_setting_by_its_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from embcluster.cli import main

    monkeypatch.setenv("EMBCLUSTER_MAX_OPEN_STREAMS", "0")
    monkeypatch.setenv("EMBCLUSTER_QDRANT_API_KEY", "")
    monkeypatch.setenv("EMBCLUSTER_QDRANT_TIMEOUT_S", "0")
    assert main(["serve", "--data-dir", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["embcluster: invalid settings:",
                   "  qdrant_timeout_s (EMBCLUSTER_QDRANT_TIMEOUT_S) = '0': Input should be greater than or equal to 1",
                   "  max_open_streams (EMBCLUSTER_MAX_OPEN_STREAMS) = '0': Input should be greater than or equal to 1"]
    monkeypatch.setenv("EMBCLUSTER_MAX_OPEN_STREAMS", "4")
    monkeypatch.setenv("EMBCLUSTER_GRPC_WORKERS", "4")
    monkeypatch.delenv("EMBCLUSTER_QDRANT_TIMEOUT_S")
    assert main(["serve", "--data-dir", str(tmp_path), "--port", "0"]) == 2
    assert "  max_open_streams (4) must be below grpc_workers (4)" in capsys.readouterr().err
    monkeypatch.setenv("EMBCLUSTER_TEXT_MODELS", "not json")  # pydantic-settings' own error, not a traceback
    monkeypatch.delenv("EMBCLUSTER_GRPC_WORKERS")
    assert main(["serve", "--data-dir", str(tmp_path), "--port", "0"]) == 2
    assert "EMBCLUSTER_TEXT_MODELS" in capsys.readouterr().err
    monkeypatch.setenv("EMBCLUSTER_TEXT_MODELS", '{"a": 5}')
    assert main(["serve", "--data-dir", str(tmp_path), "--port", "0"]) == 2
    assert "  text_models.a (EMBCLUSTER_TEXT_MODELS) = 5:" in capsys.readouterr().err
