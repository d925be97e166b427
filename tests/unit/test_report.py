"""The report package: projection, ReportData, build_report and the self-contained HTML.

The browser half (the page really renders, with no errors) is tests/unit/test_report_browser.py.
"""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from embcluster.report import MapPoints, PointSample, ReportData, build_report, project, render_html, sample_rows
from embcluster.report.build import SHORT_TEXT_CHARS, short_text
from embcluster.report.charts import ANOMALY_COLOUR, TURBO_END, cluster_colours

from .report_fixtures import HOSTILE, blobs, fitted_versions, listing, synthetic_report

MAX_REPORT_BYTES = 4_000_000  # "a few MB" for 10k drawn points, with every hover text at its longest


@pytest.fixture(scope="module")
def report() -> ReportData:
    return synthetic_report(2000)


@pytest.fixture(scope="module")
def hostile() -> ReportData:
    return synthetic_report(600, hostile=True, fit_points=600)


# ---------------------------------------------------------------- projection


def test_projection_is_deterministic_for_a_seed() -> None:
    x = blobs(3000, dim=48, seed=3)
    cen = x[:5]
    a, b = project(x, cen, seed=7), project(x, cen, seed=7)
    assert np.array_equal(a.points, b.points) and np.array_equal(a.centroids, b.centroids)
    assert a.points.shape == (3000, 2) and a.centroids.shape == (5, 2)
    assert a.explained[0] >= a.explained[1] > 0


def test_centroids_land_on_their_members() -> None:
    """PCA is linear: a centroid that is its members' mean projects onto their projected mean."""
    x = blobs(2000, dim=32, seed=4)
    labels = np.random.default_rng(0).integers(0, 4, size=len(x))
    means = np.stack([x[labels == c].mean(axis=0) for c in range(4)])
    proj = project(x, means, seed=0)
    for c in range(4):
        np.testing.assert_allclose(proj.centroids[c], proj.points[labels == c].mean(axis=0), atol=1e-3)


def test_outliers_left_out_of_the_fit_do_not_take_an_axis() -> None:
    rng = np.random.default_rng(0)
    centres = np.zeros((3, 10))
    centres[0, 0], centres[1, 1], centres[2, 0] = 5.0, 5.0, -5.0
    x = centres[rng.integers(0, 3, size=900)] + 0.3 * rng.normal(size=(900, 10))
    x[:3, 9] = 500.0  # three far outliers along an axis no cluster uses
    normal = np.ones(len(x), dtype=bool)
    normal[:3] = False
    spread = [np.ptp(project(x, centres, seed=0, fit_rows=rows).centroids, axis=0).min() for rows in (None, normal)]
    assert spread[0] < 1.0 < spread[1]  # with the outliers the clusters collapse on one axis


def test_cosine_rows_are_projected_at_unit_length() -> None:
    x = blobs(500, dim=8, seed=5)
    scaled = x * np.random.default_rng(1).uniform(0.1, 10, size=(len(x), 1)).astype(np.float32)
    a, b = project(x, x[:2], metric="cosine", seed=0), project(scaled, x[:2], metric="cosine", seed=0)
    np.testing.assert_allclose(np.abs(a.points), np.abs(b.points), atol=1e-4)


def test_projection_of_degenerate_inputs() -> None:
    assert project(np.zeros((0, 5)), np.zeros((2, 5))).points.shape == (0, 2)
    one = project(np.ones((1, 5)), np.ones((1, 5)))
    assert one.points.shape == (1, 2) and one.centroids.shape == (1, 2)
    line = project(np.arange(10, dtype=np.float32)[:, None], np.zeros((2, 1)))
    assert line.points.shape == (10, 2) and not line.points[:, 1].any()
    with pytest.raises(ValueError, match="same width"):
        project(np.zeros((4, 3)), np.zeros((2, 5)))


def test_sample_rows() -> None:
    assert sample_rows(5, 10, 0).tolist() == [0, 1, 2, 3, 4]
    a, b = sample_rows(10_000, 500, 3), sample_rows(10_000, 500, 3)
    assert np.array_equal(a, b) and len(np.unique(a)) == 500 and np.all(np.diff(a) > 0)
    keep = np.zeros(10_000, dtype=bool)
    keep[[7, 70, 700, 7000]] = True
    assert set(np.flatnonzero(keep)) <= set(sample_rows(10_000, 50, 1, keep=keep).tolist())
    keep[:9000] = True  # more flagged than half the limit: half drawn first, the rest uniformly from all others
    drawn = sample_rows(10_000, 100, 1, keep=keep)
    assert len(drawn) == 100 and len(np.unique(drawn)) == 100 and 50 < keep[drawn].sum() < 100


# ---------------------------------------------------------------- data and build


def test_report_data_json_round_trip(report: ReportData) -> None:
    text = json.dumps(report.to_json(), allow_nan=False)
    assert ReportData.from_json(json.loads(text)) == report


def test_non_finite_numbers_become_null(report: ReportData) -> None:
    data = ReportData.from_json(report.to_json())
    data.clusters[0].radius = math.inf
    assert data.k_selection is not None
    data.k_selection.scores[0].davies_bouldin = math.nan
    out = json.loads(json.dumps(data.to_json(), allow_nan=False))
    assert out["clusters"][0]["radius"] is None and out["k_selection"]["scores"][0]["davies_bouldin"] is None


def test_map_point_columns_must_agree() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        MapPoints(ids=["a"], x=[0.0], y=[], cluster_id=[1], is_anomaly=[False], text=[""])


def test_build_report_from_model_versions(report: ReportData) -> None:
    assert report.model_version == 2 and len(report.points) == 2000
    assert sum(c.size for c in report.clusters) == report.point_count
    assert all(c.share == pytest.approx(c.size / 2000) for c in report.clusters)
    assert set(report.points.cluster_id) <= {c.cluster_id for c in report.clusters}
    flagged = sum(report.points.is_anomaly)
    assert flagged == sum(c.anomaly_count for c in report.clusters) > 0
    # k curves: version 2 used a fixed k, so they come from version 1's k range
    sel = report.k_selection
    assert sel is not None and sel.version == 1 and (sel.k_min, sel.k_max) == (2, 6)
    assert [s.k for s in sel.scores] == [2, 3, 4, 5, 6] and sum(s.chosen for s in sel.scores) == 1
    assert sel.chosen_k == next(s.k for s in sel.scores if s.chosen)
    # history: drift of version 2 against version 1, none for the first
    v1, v2 = report.history
    assert (v1.version, v2.version, v2.served, v1.served) == (1, 2, True, False)
    assert v1.psi_versions is None and v2.psi_versions is not None and v2.psi_versions > 0
    assert v2.centroid_shift_mean is not None and sum(v2.sizes) == v2.points == 2000
    assert v2.matching.keys() >= {"persisted", "appeared", "vanished"}
    populated = sorted(c for c, n in zip(v1.cluster_ids, v1.sizes) if n)  # unpopulated clusters are left out
    assert len(populated) >= 2 and v1.events == {"BIRTH": populated}  # the first version: every cluster is born
    # every populated cluster's label sits among its members; representatives are its members
    by_id = {c.cluster_id: c for c in report.clusters}
    xs, ys, cids = np.array(report.points.x), np.array(report.points.y), np.array(report.points.cluster_id)
    for c in report.clusters:
        members = cids == c.cluster_id
        if members.sum() >= 20:
            assert c.x is not None and c.y is not None
            assert xs[members].min() <= c.x <= xs[members].max() and ys[members].min() <= c.y <= ys[members].max()
            assert c.label and c.keywords and len(c.representatives) == 3
    ids = report.points.ids
    for c in by_id.values():
        for r in c.representatives:
            assert report.points.cluster_id[ids.index(r.id)] == c.cluster_id


def test_a_small_map_keeps_the_anomalies() -> None:
    small = synthetic_report(2000, limit=300)
    assert len(small.points) == 300
    assert sum(small.points.is_anomaly) == sum(c.anomaly_count for c in small.clusters)  # all of them (< 150)


def test_short_text() -> None:
    assert short_text("  a\n b\tc ") == "a b c"
    cut = short_text("x" * 500)
    assert len(cut) == SHORT_TEXT_CHARS and cut.endswith("…")
    assert short_text(None) == ""


# ---------------------------------------------------------------- HTML


class _Refs(HTMLParser):
    """Script tags and every URL-bearing attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts = 0
        self.urls: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self._in_style = tag == "style"
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "data", "action", "poster")]
        self.styles += [v or "" for k, v in attrs if k == "style"]

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False


def _parse(page: str) -> _Refs:
    refs = _Refs()
    refs.feed(page)
    return refs


def test_html_is_self_contained(report: ReportData) -> None:
    page = render_html(report)
    refs = _parse(page)
    assert refs.urls == []  # no script src, stylesheet link, image or frame: nothing to fetch
    assert not any(re.search(r"url\s*\(|@import", s) for s in refs.styles)
    assert refs.scripts == 5  # error guard, BokehJS and its log level, the figures, the render status
    assert "/* BEGIN bokeh.min.js */" in page  # the library itself is inline
    for needle in ('id="clusters-table"', 'id="history-table"', 'id="k-range"', 'data-root-id'):
        assert needle in page
    born = report.history[0].events["BIRTH"]
    assert f"<td>BIRTH {', '.join(str(i) for i in born)}</td>" in page  # the history's events column


def test_html_escapes_hostile_strings(hostile: ReportData) -> None:
    page = render_html(hostile)
    refs = _parse(page)
    assert refs.scripts == 5 and refs.urls == []  # no injected <script> or <img src=...>
    assert HOSTILE not in page
    assert "<script>document.body" not in page and "<img src=x" not in page
    assert "&lt;/script&gt;&lt;script&gt;document.body.setAttribute(" in page  # shown, as text
    assert page.count("</script>") == 5


def test_html_without_k_range_or_history(report: ReportData) -> None:
    data = ReportData.from_json(report.to_json())
    data.k_selection, data.history = None, []
    page = render_html(data)
    assert 'id="k-none"' in page and 'id="k-range"' not in page and _parse(page).scripts == 5


def test_html_size_for_10k_points() -> None:
    data = synthetic_report(12_000, limit=10_000, text_chars=1000)  # every hover text at its longest
    assert len(data.points) == 10_000 and all(len(t) == SHORT_TEXT_CHARS for t in data.points.text)
    size = len(render_html(data).encode())
    assert size < MAX_REPORT_BYTES, f"{size} bytes"


def test_cluster_colours_are_distinct_and_never_the_anomaly_red() -> None:
    for k in (3, 18, 19, 64, 200):
        colours = cluster_colours(list(range(100, 100 + k)))
        assert len(colours) == k and ANOMALY_COLOUR not in colours.values()
        assert len(set(colours.values())) == min(k, TURBO_END + 1)


def test_a_vector_collection_with_one_fixed_k_version_and_no_points() -> None:
    """No texts, one version fitted with a fixed k (no k curves, no drift), and an empty sample."""
    x = blobs(400, dim=8, seed=6)
    versions = fitted_versions(x, x)
    model = versions[0]
    model.metrics["k_scores"] = []
    for sample in (PointSample(ids=[f"v{i}" for i in range(400)], vectors=x),
                   PointSample(ids=[], vectors=np.zeros((0, 8), dtype=np.float32))):
        data = build_report(collection="vectors", kind="vector", model=model, clusters=listing(model, x),
                            point_count=400, sample=sample, seed=1)
        assert data.k_selection is None and len(data.history) == 1 and data.history[0].psi_versions is None
        assert len(data.points) == len(sample.ids) and set(data.points.text) <= {""}
        assert all(r.text == "" for c in data.clusters for r in c.representatives)
        assert any(c.representatives for c in data.clusters) == bool(len(sample.ids))
        page = render_html(data)
        assert 'id="k-none"' in page and _parse(page).scripts == 5
        assert ReportData.from_json(json.loads(json.dumps(data.to_json()))) == data
