"""`embcluster serve` as a process: a port or data directory in use, Ctrl-C at each stage, a logged shutdown."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from embcluster_client import EmbclusterClient

pytestmark = pytest.mark.slow

SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


class Proc:
    """`embcluster serve --port 0` (unless a port is given) with stdout and stderr collected line by line."""

    def __init__(self, data_dir: Path, *args: str, port: int = 0, module: str = "embcluster.cli", **env: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "serve", "--port", str(port), "--no-metrics", "--data-dir", str(data_dir),
             *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "EMBCLUSTER_LOG_LEVEL": "INFO", **env})
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            lines.append(line)

    def wait_line(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.out):
                if m := re.search(pattern, line):
                    return m
            assert self.proc.poll() is None, f"exited {self.proc.returncode}:\n{self.text()}"
            time.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r}:\n{self.text()}")

    def address(self) -> str:
        return self.wait_line(r"serving on (\S+:\d+)").group(1)

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(10)
        return code

    def text(self) -> str:
        return "".join(self.out) + "".join(self.err)


def _handlers_installed(pid: int, timeout: float = 60) -> None:
    """Wait until the process catches SIGTERM: `serve` installed its handlers (Python alone does not)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        if int(re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.M).group(1), 16) & SIGTERM_BIT:  # type: ignore[union-attr]
            return
        time.sleep(0.005)
    raise AssertionError("serve never installed its signal handlers")


def _wait_for(proc: Proc, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.text():
        assert time.monotonic() < deadline and proc.proc.poll() is None, f"no {text!r}:\n{proc.text()}"
        time.sleep(0.02)


def test_a_port_or_data_directory_in_use_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    first = Proc(tmp_path / "a", "--lazy-model")
    try:
        address = first.address()
        port = int(address.rsplit(":", 1)[1])
        with EmbclusterClient(address, timeout=60) as c:
            c.create_collection("v", input_kind="vector", vector_dim=2)
            c.ingest("v", [{"id": "x", "vector": [1.0, 2.0]}])
        same_port = Proc(tmp_path / "b", "--lazy-model", port=port)
        assert same_port.finish() == 1
        assert same_port.err == [f"embcluster: cannot bind 127.0.0.1:{port}: address already in use (another "
                                 "embcluster serve?); stop that process or choose another port (--port or "
                                 "EMBCLUSTER_PORT; 0 = any free port)\n"]
        assert not same_port.out
        # an empty data directory too: before the lock, a second server started on it and its first
        # create of a name the first server had removed that collection's shard
        for data in (tmp_path / "a", tmp_path / "empty"):
            if data.name == "empty":
                holder = Proc(data, "--lazy-model")
                holder.address()
            second = Proc(data, "--lazy-model")
            assert second.finish() == 1
            pid = first.proc.pid if data.name == "a" else holder.proc.pid
            assert second.err == [f"embcluster: data directory {str(data.resolve())!r} is in use by another "
                                  f"process (pid {pid}: another embcluster serve, or an export/import --data-dir): "
                                  "stop it first, or give this one another --data-dir (EMBCLUSTER_DATA_DIR)\n"]
        holder.proc.send_signal(signal.SIGTERM)
        assert holder.finish() == 0
        with EmbclusterClient(address, timeout=60) as c:  # every call still reaches the first server
            assert [c.get_collection("v").point_count for _ in range(10)] == [1] * 10
    finally:
        first.proc.send_signal(signal.SIGTERM)
        assert first.finish() == 0


def test_ctrl_c_at_every_stage_is_one_line_never_a_traceback(tmp_path: Path) -> None:
    # at the first moment `serve` handles signals (via `python -m embcluster`, the command's entry point)
    early = Proc(tmp_path / "early", module="embcluster")
    _handlers_installed(early.proc.pid)
    early.proc.send_signal(signal.SIGINT)
    assert early.finish() == 130
    assert early.err == ["embcluster: interrupted (SIGINT) during start-up; nothing was opened\n"], early.text()

    # serving, while the text model still loads in the background: a clean stop
    loading = Proc(tmp_path / "loading")
    loading.address()
    loading.proc.send_signal(signal.SIGINT)
    assert loading.finish() == 0, loading.text()
    assert "shutting down (SIGINT)" in loading.text() and "Traceback" not in loading.text()

    # serving with a collection: the shutdown logs each step
    data = tmp_path / "data"
    serving = Proc(data, "--lazy-model")
    with EmbclusterClient(serving.address(), timeout=60) as c:
        c.create_collection("v", input_kind="vector", vector_dim=2)
        c.ingest("v", [{"id": f"p{i}", "vector": [float(i), 1.0]} for i in range(50)])
    serving.proc.send_signal(signal.SIGINT)
    assert serving.finish() == 0
    log = serving.text()
    assert "Traceback" not in log
    for step in ("shutting down (SIGINT)", "shutdown: gRPC server stopped in ", "closing collection v (50 points)…",
                 "closed collection v in ", "stopped in "):
        assert step in log, step

    # a slow shutdown (an open stream holds the grace period): a second Ctrl-C says so, a third exits now
    slow = Proc(data, "--lazy-model", EMBCLUSTER_SHUTDOWN_GRACE_S="60")
    with EmbclusterClient(slow.address(), timeout=60) as c:
        c.ingest("v", [{"id": "late", "vector": [0.5, 0.5]}])
        watcher = c.watch_anomalies("v")  # never ends by itself
        assert c.get_collection("v").point_count == 51  # the same connection: the stream is open by now
        slow.proc.send_signal(signal.SIGINT)
        _wait_for(slow, "shutting down (SIGINT)")
        slow.proc.send_signal(signal.SIGINT)
        _wait_for(slow, "embcluster: still shutting down (")
        slow.proc.send_signal(signal.SIGINT)
        assert slow.finish(timeout=30) == 130
        with pytest.raises(grpc.RpcError):
            next(iter(watcher))
    err = "".join(slow.err)
    assert "embcluster: still shutting down (" in err and "Acknowledged writes are already safe" in err
    assert "embcluster: exiting without finishing; acknowledged writes are safe" in err
    assert "Traceback" not in err

    again = Proc(data, "--lazy-model")  # the forced exit lost no acknowledged write, and left no lock
    with EmbclusterClient(again.address(), timeout=60) as c:
        assert c.get_collection("v").point_count == 51 and c.get_point("v", id="late").external_id == "late"
    again.proc.send_signal(signal.SIGTERM)
    assert again.finish() == 0
