"""The report opens in a real headless browser (Debian's ``chromium``): the map, the tables and
the k curves render, with no console errors, offline; a screenshot shows them.

The browser and its two error detectors (the page's own guard, Chromium's log) are in
``tests/browser.py``; each detector is shown here to fire on a page with a deliberate error.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from embcluster.report import ReportData, render_html
from embcluster.report.charts import ANOMALY_COLOUR, report_colours
from tests.browser import attr, chromium, colours_of, near, needs_chromium, rendered_dom, uncaught

from .report_fixtures import synthetic_report

pytestmark = needs_chromium

WIDTH, HEIGHT = 1400, 2400
MAP_BOTTOM = 1000  # the map ends above this row at that width (title, notes, 640 px figure)


def _write(tmp_path: Path, html: str, name: str = "report.html") -> Path:
    path = tmp_path / name
    path.write_text(html, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def hostile() -> ReportData:
    return synthetic_report(2000, hostile=True)


def test_report_renders_in_headless_chromium(tmp_path: Path, hostile: ReportData) -> None:
    page = _write(tmp_path, render_html(hostile))
    dom = rendered_dom(page, tmp_path / "profile", figures=4)  # map, sizes, k curves, history
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
    run = chromium(page, tmp_path / "profile", f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}",
                    "--hide-scrollbars")
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    from PIL import Image

    assert Image.open(shot).size == (WIDTH, HEIGHT)
    assert len(colours_of(shot)) > 200, "blank or nearly blank screenshot"
    # The map (the top of the page): every cluster with 20 points or more on it shows in its colour
    # (points are drawn at alpha 0.6 over white, which nothing else on the page is), and the
    # anomalies' red crosses (opaque; no cluster colour or other element uses that red).
    seen = colours_of(shot, (0, 0, WIDTH, MAP_BOTTOM))
    palette = report_colours(hostile)
    counts = Counter(c for c, a in zip(hostile.points.cluster_id, hostile.points.is_anomaly) if not a)
    big = [cid for cid, n in counts.items() if n >= 20]
    assert len(big) >= 3
    missing = [cid for cid in big if not any(near(p, palette[cid], 0.6) for p in seen)]
    assert not missing, f"cluster colours not on the map: {missing}"
    assert any(near(p, ANOMALY_COLOUR, 1.0, tol=4) for p in seen), "no anomaly cross on the map"


def test_the_error_detectors_catch_a_broken_page(tmp_path: Path) -> None:
    html = render_html(synthetic_report(300, fit_points=300))
    broken = html.replace("</body>", "<script>console.error('deliberate'); notDefinedAnywhere();</script></body>")
    run = chromium(_write(tmp_path, broken), tmp_path / "profile", "--dump-dom")
    assert attr(run.stdout, "html", "data-report-errors") == "2"
    assert "console.error: deliberate" in run.stdout and "notDefinedAnywhere is not defined" in run.stdout
    assert any("notDefinedAnywhere" in line for line in uncaught(run.stderr))
    # Without BokehJS no figure renders: the status says so, and both detectors see the failure.
    start, end = html.index("<script>\n/* BEGIN bokeh.min.js */"), html.index("</head>")
    run = chromium(_write(tmp_path, html[:start] + html[end:], "no-bokeh.html"), tmp_path / "profile", "--dump-dom")
    assert attr(run.stdout, "body", "data-report-state") == "failed"
    assert int(attr(run.stdout, "html", "data-report-errors") or 0) >= 1
    assert any("Bokeh is not defined" in line for line in uncaught(run.stderr))


def test_a_page_that_fetches_is_caught(tmp_path: Path) -> None:
    """The offline check can fail: a resource from the network is an error the guard counts."""
    html = render_html(synthetic_report(300, fit_points=300))
    fetching = html.replace("</body>", '<img src="https://example.invalid/pixel.png"></body>')
    run = chromium(_write(tmp_path, fetching), tmp_path / "profile", "--dump-dom")
    assert attr(run.stdout, "html", "data-report-errors") == "1"
    assert "https://example.invalid/pixel.png" in run.stdout
