"""The cluster report: a 2-D map of a sample of points, sizes, the choice of k, history over
model versions and the cluster summaries, as one self-contained HTML file.

``projection`` (seeded PCA of points and centroids) → ``build`` (a :class:`ReportData` from a
model version, its history and a point sample) → ``html.render_html`` (Bokeh figures from
``charts``, inlined). ``data`` holds the plain, JSON-serialisable dataclasses in between.
"""

from .build import DEFAULT_MAP_POINTS, PointSample, build_report
from .data import ClusterSummary, KScoreRow, KSelection, MapPoints, ReportData, Representative, VersionEntry
from .html import render_html
from .projection import Projection, project, sample_rows

__all__ = [
    "DEFAULT_MAP_POINTS", "ClusterSummary", "KScoreRow", "KSelection", "MapPoints", "PointSample", "Projection",
    "ReportData", "Representative", "VersionEntry", "build_report", "project", "render_html", "sample_rows",
]
