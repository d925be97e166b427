"""The live view (``live_report.py``) on a real metrics endpoint over a real service (Qdrant Edge in
tmp_path, no gRPC): routes, the per-version cache, keys, and — in headless Chromium — the page
that reloads itself when a run publishes a version, and its saved copy that does not poll."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from embcluster.auth import ApiKeyRecord, KeyRing, hash_key, new_key
from embcluster.core.report import RenderedReport
from embcluster.live_report import PREFIX, LiveReport
from embcluster.metrics import MetricsEndpoint
from embcluster.pipeline import EmbclusterService
from embcluster.schema import CollectionSpec, ItemInput, RunRequest, RunState
from tests.browser import check_rendered, chromium, chromium_async, needs_chromium, refused, rendered_dom

Make = Callable[..., EmbclusterService]


def _collection(svc: EmbclusterService, name: str, n: int = 200, *, cluster: bool = True) -> None:
    svc.create_collection(CollectionSpec(name=name, input_kind="vector", vector_dim=4, metric="euclid"))
    rng = np.random.default_rng(len(name))
    svc.ingest(name, [ItemInput(id=f"{name}-{i}", vector=[i % 2 * 5.0, 0.0, 0.0, 0.0] + rng.normal(size=4) * 0.3)
                      for i in range(n)])
    if cluster:
        _run(svc, name, k=2)


def _run(svc: EmbclusterService, name: str, **request: object) -> None:
    run = svc.start_clustering(name, RunRequest(**request))  # type: ignore[arg-type]
    svc.wait_idle()
    assert svc.get_run(name, run.run_id).state == RunState.SUCCEEDED


class _Keep(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        return None  # answer the redirect itself


_NO_REDIRECTS = urllib.request.build_opener(_Keep)


class Served:
    """A service with the live view mounted on a metrics endpoint (port 0)."""

    def __init__(self, svc: EmbclusterService, view: LiveReport) -> None:
        self.svc, self.view = svc, view
        self.endpoint = MetricsEndpoint(svc.metrics, "127.0.0.1", 0, routes={PREFIX: view})
        self.base = self.endpoint.base_url

    def get(self, path: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.base + path, method=method, headers=headers or {})
        try:
            with _NO_REDIRECTS.open(req, timeout=60) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def served(make_service: Make, root: Path) -> Iterator[Served]:
    svc = make_service(root)
    s = Served(svc, LiveReport(svc, poll_s=0.5))
    yield s
    s.endpoint.close()


def test_index_report_version_and_the_per_version_cache(served: Served) -> None:
    _collection(served.svc, "shop")
    _collection(served.svc, "fresh", cluster=False)
    status, headers, body = served.get("/report/")
    page = body.decode()
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<a href="/report/shop">shop</a>' in page and '<a href="/report/fresh">fresh</a>' in page
    assert re.search(r"<td>v1</td>", page) and "no model yet" in page
    assert "default-src 'none'" in headers["Content-Security-Policy"] and headers["X-Content-Type-Options"] == "nosniff"

    status, _, first = served.get("/report/shop")
    assert status == 200 and b'<code id="collection-name">shop</code>' in first and b"model version 1 " in first
    assert b'id="live-status"' in first and b'var revision = "' in first
    status, _, second = served.get("/report/shop/")
    assert status == 200 and second == first and served.view.renders == 1  # cached: not made again
    status, headers, version = served.get("/report/shop/version")
    v1 = json.loads(version)
    assert status == 200 and headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"
    assert v1["collection"] == "shop" and v1["model_version"] == 1 and v1["revision"].endswith("/v1")
    assert f'var revision = "{v1["revision"]}"'.encode() in first

    _run(served.svc, "shop", k=2, seed=5)  # a run publishes version 2
    v2 = json.loads(served.get("/report/shop/version")[2])
    assert v2["model_version"] == 2 and v2["revision"] != v1["revision"]
    status, _, third = served.get("/report/shop")
    assert status == 200 and b"model version 2 " in third and served.view.renders == 2
    assert f'var revision = "{v2["revision"]}"'.encode() in third

    status, _, waiting = served.get("/report/fresh")  # no model yet: a page that waits for one
    assert status == 200 and b'id="waiting"' in waiting and b"no cluster model yet" in waiting
    assert b'var revision = "' in waiting and served.view.renders == 2


def test_not_found_methods_head_and_metrics_beside_it(served: Served) -> None:
    _collection(served.svc, "shop")
    for path in ("/report/nope", "/report/nope/version", "/report/shop/other", "/report/a.b", "/report/%3Cb%3E",
                 "/report/" + "x" * 65, "/reports"):
        status, _, body = served.get(path)
        assert status == 404 if path != "/reports" else status == 200, path  # /reports: the metrics app's
    status, _, body = served.get("/report/<b>x</b>")
    assert status == 404 and b"<b>" not in body
    status, headers, body = served.get("/report/shop", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, headers, body = served.get("/report/shop", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 1_000_000
    status, headers, _ = served.get("/report")
    assert status == 301 and headers["Location"] == "/report/"
    status, _, metrics = served.get("/metrics")
    assert status == 200 and b'embcluster_collection_points{collection="shop"} 200.0' in metrics
    _collection(served.svc, "other")
    assert served.get("/report/other")[0] == 200 and served.view.cached == ["other", "shop"]
    served.svc.delete_collection("shop")
    _run(served.svc, "other", k=2, seed=1)
    assert served.get("/report/other")[0] == 200 and served.view.cached == ["other"]  # the deleted one's page dropped
    assert served.get("/report/shop")[0] == 404 and b"shop" not in served.get("/report/")[2]


def test_keys_are_required_and_restrict_collections(make_service: Make, root: Path) -> None:
    svc = make_service(root)
    _collection(svc, "shop")
    _collection(svc, "hr")
    keys = {name: new_key() for name in ("ops", "shop-only", "nothing")}
    ring = KeyRing([ApiKeyRecord(name="ops", sha256=hash_key(keys["ops"]), scopes=("read",)),
                    ApiKeyRecord(name="shop-only", sha256=hash_key(keys["shop-only"]), scopes=("write",),
                                 collections=("shop",))])
    served = Served(svc, LiveReport(svc, keys=ring))
    try:
        status, headers, _ = served.get("/report/shop")
        assert status == 401 and 'Basic realm="embcluster"' in headers["WWW-Authenticate"]
        for wrong in ({"Authorization": f"Bearer {keys['nothing']}"}, {"Authorization": "Basic !!!"},
                      {"Authorization": "Basic \u00e9t\u00e9"},  # non-ASCII: was a 500 (ValueError)
                      {"Authorization": "Basic " + base64.b64encode(f"u:{keys['nothing']}".encode()).decode()}):
            assert served.get("/report/", headers=wrong)[0] == 401
            assert served.get("/report/shop/version", headers=wrong)[0] == 401
        bearer = {"Authorization": f"Bearer {keys['ops']}"}
        basic = {"Authorization": "Basic " + base64.b64encode(f"anyone:{keys['ops']}".encode()).decode()}
        for auth in (bearer, basic):  # a browser sends the key as Basic's password
            status, _, index = served.get("/report/", headers=auth)
            assert status == 200 and b"/report/shop" in index and b"/report/hr" in index
            assert served.get("/report/hr/version", headers=auth)[0] == 200
        only = {"Authorization": f"Bearer {keys['shop-only']}"}
        status, _, index = served.get("/report/", headers=only)
        assert status == 200 and b"/report/shop" in index and b"/report/hr" not in index
        assert served.get("/report/shop", headers=only)[0] == 200
        assert served.get("/report/hr", headers=only)[0] == 404  # hidden, as over gRPC
        assert served.get("/report/hr/version", headers=only)[0] == 404
    finally:
        served.endpoint.close()


class PublishesAfterFirstPage:
    """The service, except that serving the first report publishes a new version before the page
    goes out: the browser gets a page of version 1 while version 2 is served."""

    def __init__(self, svc: EmbclusterService, name: str) -> None:
        self.svc, self.name, self.reports = svc, name, 0
        self.list_collections, self.report_revision = svc.list_collections, svc.report_revision
        self.collection_names = svc.collection_names

    def report(self, name: str, *, sample_size: int = 0, fit_message: bool = True) -> RenderedReport:
        assert not fit_message  # the live view is HTTP: the gRPC message limit must not apply
        rendered = self.svc.report(name, sample_size=sample_size, fit_message=fit_message)
        self.reports += 1
        if self.reports == 1:
            _run(self.svc, self.name, k=2, seed=9)
        return rendered


@needs_chromium
def test_the_page_reloads_when_a_version_is_published_and_a_saved_copy_does_not_poll(
        make_service: Make, root: Path, tmp_path: Path) -> None:
    svc = make_service(root)
    _collection(svc, "shop")
    source = PublishesAfterFirstPage(svc, "shop")
    served = Served(svc, LiveReport(source, poll_s=0.5))
    try:
        browser = chromium_async(served.base + "/report/shop", tmp_path / "profile", "--dump-dom")
        dom, log = browser.communicate(timeout=240)
        assert browser.returncode == 0, log[-2000:]
        assert source.reports == 2  # the page polled, saw version 2 and reloaded
        assert "model version 2 " in dom
        check_rendered(dom, log)  # and the Content-Security-Policy let all of it run

        saved = tmp_path / "saved.html"  # what "save page as" keeps: the served HTML, opened as a file
        saved.write_bytes(served.get("/report/shop")[2])
        dom = rendered_dom(saved, tmp_path / "profile2")
        status_line = re.search(r'<p id="live-status" class="note">([^<]*)</p>', dom)
        assert status_line and status_line.group(1) == "A saved copy of the live view: it does not refresh."
    finally:
        served.endpoint.close()


class AddsAnImage:
    """The service, with an image from another origin appended to every report."""

    def __init__(self, svc: EmbclusterService) -> None:
        self.svc = svc
        self.list_collections, self.report_revision = svc.list_collections, svc.report_revision
        self.collection_names = svc.collection_names

    def report(self, name: str, *, sample_size: int = 0, fit_message: bool = True) -> RenderedReport:
        rendered = self.svc.report(name, sample_size=sample_size, fit_message=fit_message)
        return dataclasses.replace(rendered, html=rendered.html.replace(
            b"</body>", b'<img src="http://127.0.0.1:9/pixel.png"></body>'))


@needs_chromium
def test_the_content_security_policy_refuses_other_origins(make_service: Make, root: Path, tmp_path: Path) -> None:
    """The policy is in force, and the detector that every live-page test uses sees a refused load."""
    svc = make_service(root)
    _collection(svc, "shop")
    served = Served(svc, LiveReport(AddsAnImage(svc)))
    try:
        run = chromium(served.base + "/report/shop", tmp_path / "profile", "--dump-dom")
        assert any("pixel.png" in line for line in refused(run.stderr)), run.stderr[-3000:]
    finally:
        served.endpoint.close()
