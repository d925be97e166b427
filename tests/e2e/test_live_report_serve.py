"""The live view of a real ``embcluster serve`` process: the index, the report, the version a page
polls, the cache, 404s, API keys, and a headless Chromium opening the live page."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from embcluster_client import Client

from tests.browser import chromium, colours_of, needs_chromium, rendered_dom

pytestmark = pytest.mark.slow


class Serve:
    """``embcluster serve`` on free ports; ``address`` (gRPC) and ``live`` (the /report/ URL)."""

    def __init__(self, tmp_path: Path, *extra: str) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "EMBCLUSTER_LOG_LEVEL": "INFO"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "embcluster.cli", "serve", "--port", "0", "--metrics-port", "0", "--lazy-model",
             "--data-dir", str(tmp_path / "data"), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert self.proc.stdout is not None
        self.lines: list[str] = []
        self.address = self.live = None
        deadline = time.monotonic() + 120
        while self.address is None and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if m := re.search(r"^embcluster live report on (\S+)$", line):
                self.live = m.group(1)
            if m := re.search(r"serving on (\S+:\d+)", line):
                self.address = m.group(1)
        assert self.address and self.live, "".join(self.lines)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(self.live + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        rest, _ = self.proc.communicate(timeout=60)
        return "".join(self.lines) + rest


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    s = Serve(tmp_path)
    yield s
    s.stop()


def _shop(client: Client, n: int = 1200) -> None:
    client.create_collection("shop", input_kind="vector", vector_dim=16, distance="euclid")
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6.0, size=(5, 16))
    client.ingest_many("shop", [{"id": f"sku-{i}", "vector": (centres[i % 5] + rng.normal(size=16)).tolist(),
                                 "metadata": {"shelf": f"aisle {i % 5}"}} for i in range(n)])


def test_the_live_view_follows_the_served_version(serve: Serve, tmp_path: Path) -> None:
    assert serve.live.startswith("http://127.0.0.1:") and serve.live.endswith("/report/")
    with Client(serve.address, timeout=120) as c:
        _shop(c)
        status, index = serve.get("")
        assert status == 200 and b'<a href="/report/shop">shop</a>' in index and b"no model yet" in index
        status, waiting = serve.get("shop")
        assert status == 200 and b'id="waiting"' in waiting
        c.cluster("shop", k_range=(3, 7))
        status, index = serve.get("")
        assert status == 200 and re.search(rb'<a href="/report/shop">shop</a></td><td>vector</td><td class="num">1200'
                                           rb"</td><td>v1</td>", index)
        status, first = serve.get("shop")
        assert status == 200 and b'<code id="collection-name">shop</code>' in first and b"model version 1 " in first
        assert serve.get("shop")[1] == first  # the same bytes (generated once): served from the cache
        v1 = json.loads(serve.get("shop/version")[1])
        assert v1["model_version"] == 1

        c.cluster("shop", k=4)  # a run publishes version 2
        v2 = json.loads(serve.get("shop/version")[1])
        assert v2["model_version"] == 2 and v2["revision"] != v1["revision"]
        status, second = serve.get("shop")
        assert status == 200 and b"model version 2 " in second and second != first
        assert serve.get("nope")[0] == 404 and serve.get("nope/version")[0] == 404 and serve.get("shop/x")[0] == 404


@needs_chromium
def test_headless_chromium_opens_the_live_page(serve: Serve, tmp_path: Path) -> None:
    with Client(serve.address, timeout=120) as c:
        _shop(c)
        c.cluster("shop", k_range=(3, 7))
    url = serve.live + "shop"
    dom = rendered_dom(url, tmp_path / "profile", figures=4)  # map, sizes, k curves, history
    assert re.search(r'<p id="live-status" class="note">Live view: this page reloads', dom)  # not a saved copy
    shot = tmp_path / "live.png"
    run = chromium(url, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,1600", "--hide-scrollbars")
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    assert len(colours_of(shot)) > 200, "blank or nearly blank screenshot"


def test_keys_guard_the_live_view(tmp_path: Path) -> None:
    made = subprocess.run([sys.executable, "-m", "embcluster.cli", "keys", "create", "--name", "ops",
                           "--scopes", "admin"], capture_output=True, text=True, check=True, timeout=60)
    key = re.search(r"^key: (\S+)$", made.stdout, re.M).group(1)  # type: ignore[union-attr]
    (tmp_path / "keys.jsonl").write_text([x for x in made.stdout.splitlines() if x.startswith("{")][0] + "\n")
    serve = Serve(tmp_path, "--api-keys-file", str(tmp_path / "keys.jsonl"))
    try:
        with Client(serve.address, timeout=60, api_key=key) as c:
            c.create_collection("v", input_kind="vector", vector_dim=2)
        for path in ("", "v", "v/version", "nope"):
            assert serve.get(path)[0] == 401, path
            assert serve.get(path, {"Authorization": "Bearer emb_not-a-key"})[0] == 401, path
        assert serve.get("", {"Authorization": f"Bearer {key}"}) [0] == 200
        basic = "Basic " + base64.b64encode(f"me:{key}".encode()).decode()
        status, body = serve.get("v/version", {"Authorization": basic})
        assert status == 200 and json.loads(body)["model_version"] == 0
        assert serve.get("nope", {"Authorization": basic})[0] == 404
    finally:
        output = serve.stop()
    assert key not in output
