"""The report opens in a real headless browser (Debian's ``chromium``): the map, the tables and
the k curves render, with no console errors, offline; a screenshot shows them.

Two error detectors, each shown to fire on a page with a deliberate error:

* the page's own guard (first script of every report, see ``report/html.py``) counts ``error``
  events, unhandled rejections and ``console.error`` calls into ``data-report-errors`` on
  ``<html>`` and lists them in ``<pre id="report-errors">``; ``--dump-dom`` reads them back, with
  ``data-report-state`` on ``<body>`` ("rendered" once Bokeh has drawn every figure);
* Chromium's own log (``--enable-logging=stderr``) prints uncaught exceptions as
  ``CONSOLE ... "Uncaught ..."`` lines, also those a broken guard would miss.

Host resolution is switched off (``--host-resolver-rules``), so anything the page tried to
fetch would fail, and a failed load is an ``error`` event the guard counts.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
import subprocess
from pathlib import Path

import pytest

from embcluster.report import ReportData, render_html
from embcluster.report.charts import ANOMALY_COLOUR, report_colours

from .report_fixtures import synthetic_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: Debian's package renders the report (`apt-get install -y chromium`; "
           ".ci/run installs it when it runs as root with apt-get)")

WIDTH, HEIGHT = 1400, 2400
MAP_BOTTOM = 1000  # the map ends above this row at that width (title, notes, 640 px figure)


def _chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
           "--no-default-browser-check", "--disable-extensions", f"--user-data-dir={profile}",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=30000", *args, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240)


def _attr(dom: str, tag: str, name: str) -> str | None:
    match = re.search(rf"<{tag}\b[^>]*\s{name}=\"([^\"]*)\"", dom)
    return match.group(1) if match else None


def _uncaught(log: str) -> list[str]:
    return [line for line in log.splitlines() if "CONSOLE" in line and "Uncaught" in line]


def _write(tmp_path: Path, html: str, name: str = "report.html") -> Path:
    path = tmp_path / name
    path.write_text(html, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def hostile() -> ReportData:
    return synthetic_report(2000, hostile=True)


def _near(pixel: tuple[int, int, int], colour: str, alpha: float, tol: int = 10) -> bool:
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    blended = [alpha * c + (1 - alpha) * 255 for c in rgb]  # drawn with this alpha over white
    return all(abs(p - b) <= tol for p, b in zip(pixel, blended))


def test_report_renders_in_headless_chromium(tmp_path: Path, hostile: ReportData) -> None:
    page = _write(tmp_path, render_html(hostile))
    run = _chromium(page, tmp_path / "profile", "--dump-dom")
    dom = run.stdout
    assert run.returncode == 0, run.stderr[-2000:]
    assert _attr(dom, "body", "data-report-state") == "rendered", dom[-3000:]
    assert _attr(dom, "body", "data-report-figures") == "4"  # map, sizes, k curves, history
    errors = re.search(r'<pre id="report-errors"[^>]*>(.*?)</pre>', dom, re.S)
    assert _attr(dom, "html", "data-report-errors") == "0", errors.group(1) if errors else dom[:2000]
    assert _uncaught(run.stderr) == []
    # the hostile strings stayed text: no injected script ran, no injected element exists
    assert "data-pwned" not in (re.search(r"<body\b[^>]*>", dom) or [""])[0]
    assert "<img src=\"x\"" not in dom and "<img src=x" not in dom
    # the tables, and a Bokeh root in each figure's place
    assert len(re.findall(r"<tr data-cluster-id=", dom)) == len(hostile.clusters)
    history = re.search(r'<table id="history-table">.*?</table>', dom, re.S)
    assert history and history.group(0).count("<tr>") == 1 + len(hostile.history)
    assert 'id="k-range"' in dom
    for section in ("map", "sizes", "kcurves", "history"):
        assert re.search(rf'<div id="{section}"><div id="[^"]+" data-root-id="[^"]+"[^>]*><div class="bk-', dom), section

    shot = tmp_path / "report.png"
    run = _chromium(page, tmp_path / "profile", f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}",
                    "--hide-scrollbars")
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    colours = image.getcolors(maxcolors=WIDTH * HEIGHT)
    assert colours is not None and len(colours) > 200, "blank or nearly blank screenshot"
    # The map (the top of the page): every cluster with 20 points or more on it shows in its colour
    # (points are drawn at alpha 0.6 over white, which nothing else on the page is), and the
    # anomalies' red crosses (opaque; no cluster colour or other element uses that red).
    top = image.crop((0, 0, WIDTH, MAP_BOTTOM)).getcolors(maxcolors=WIDTH * MAP_BOTTOM)
    assert top is not None
    seen = {rgb for _, rgb in top}
    palette = report_colours(hostile)
    counts = Counter(c for c, a in zip(hostile.points.cluster_id, hostile.points.is_anomaly) if not a)
    big = [cid for cid, n in counts.items() if n >= 20]
    assert len(big) >= 3
    missing = [cid for cid in big if not any(_near(p, palette[cid], 0.6) for p in seen)]
    assert not missing, f"cluster colours not on the map: {missing}"
    assert any(_near(p, ANOMALY_COLOUR, 1.0, tol=4) for p in seen), "no anomaly cross on the map"


def test_the_error_detectors_catch_a_broken_page(tmp_path: Path) -> None:
    html = render_html(synthetic_report(300, fit_points=300))
    broken = html.replace("</body>", "<script>console.error('deliberate'); notDefinedAnywhere();</script></body>")
    run = _chromium(_write(tmp_path, broken), tmp_path / "profile", "--dump-dom")
    assert _attr(run.stdout, "html", "data-report-errors") == "2"
    assert "console.error: deliberate" in run.stdout and "notDefinedAnywhere is not defined" in run.stdout
    assert any("notDefinedAnywhere" in line for line in _uncaught(run.stderr))
    # Without BokehJS no figure renders: the status says so, and both detectors see the failure.
    start, end = html.index("<script>\n/* BEGIN bokeh.min.js */"), html.index("</head>")
    run = _chromium(_write(tmp_path, html[:start] + html[end:], "no-bokeh.html"), tmp_path / "profile", "--dump-dom")
    assert _attr(run.stdout, "body", "data-report-state") == "failed"
    assert int(_attr(run.stdout, "html", "data-report-errors") or 0) >= 1
    assert any("Bokeh is not defined" in line for line in _uncaught(run.stderr))


def test_a_page_that_fetches_is_caught(tmp_path: Path) -> None:
    """The offline check can fail: a resource from the network is an error the guard counts."""
    html = render_html(synthetic_report(300, fit_points=300))
    fetching = html.replace("</body>", '<img src="https://example.invalid/pixel.png"></body>')
    run = _chromium(_write(tmp_path, fetching), tmp_path / "profile", "--dump-dom")
    assert _attr(run.stdout, "html", "data-report-errors") == "1"
    assert "https://example.invalid/pixel.png" in run.stdout
