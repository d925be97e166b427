"""The report's Bokeh figures: the map, cluster sizes, the choice of k, history over versions.

Bokeh (a pip package) renders them offline: ``html.py`` inlines the BokehJS bundle from the
installed package, and every figure here uses only models of that core bundle (no widgets,
tables or WebGL bundles, each another 0.5–1 MB). Strings reach BokehJS as data (escaped in
its embedded JSON) and are drawn as canvas text or plain-text tooltips, never as HTML.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.layouts import gridplot
from bokeh.models import ColumnDataSource, DataRange1d, FactorRange, HoverTool
from bokeh.models.annotations import LabelSet
from bokeh.palettes import Category20, Turbo256
from bokeh.plotting import figure

from .data import ClusterSummary, ReportData

__all__ = ["ANOMALY_COLOUR", "MAX_LABELS", "TURBO_END", "build_figures", "cluster_colours", "label_of", "report_colours"]

ANOMALY_COLOUR = "#d62728"
MAX_LABELS = 40  # cluster labels drawn on the map (the largest clusters); more would hide the points
MAX_HISTORY_LINES = 12  # clusters drawn in the size history (the largest now)
LABEL_CHARS = 32
TURBO_END = 185  # Turbo256 up to orange (#fd9229): its reds would read as anomalies
POINT_TOOLTIPS = [("id", "@id"), ("cluster", "@cid @clabel"), ("anomaly", "@anomaly"), ("text", "@text")]


def label_of(cluster: ClusterSummary, limit: int = LABEL_CHARS) -> str:
    """The cluster's label for the map (its id when it has none), cut to ``limit`` characters."""
    text = cluster.label or (", ".join(cluster.keywords[:3]) if cluster.keywords else "")
    text = f"#{cluster.cluster_id} {text}".strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cluster_colours(ids: list[int]) -> dict[int, str]:
    """A distinct colour per cluster id (in id order), never the anomalies' red.

    Up to 18 clusters: Category20 without its red pair (the saturated half first); more: spread
    over Turbo from its dark blue to orange, short of its reds.
    """
    ordered = sorted(set(ids))
    palette = [c for c in Category20[20] if c not in (ANOMALY_COLOUR, "#ff9896")]
    palette = palette[0::2] + palette[1::2]
    if len(ordered) <= len(palette):
        return {cid: palette[i] for i, cid in enumerate(ordered)}
    step = TURBO_END / max(len(ordered) - 1, 1)
    return {cid: Turbo256[int(round(i * step))] for i, cid in enumerate(ordered)}


def _map(data: ReportData, colours: dict[int, str]) -> Any:
    labels = {c.cluster_id: c.label for c in data.clusters}
    pts = data.points
    base: dict[str, list[Any]] = {
        "id": pts.ids, "text": pts.text, "cid": [f"#{c}" for c in pts.cluster_id],
        "clabel": [labels.get(c, "") for c in pts.cluster_id], "anomaly": ["yes" if a else "no" for a in pts.is_anomaly],
        "colour": [colours.get(c, "#999999") for c in pts.cluster_id],
    }
    normal = [i for i, a in enumerate(pts.is_anomaly) if not a]
    flagged = [i for i, a in enumerate(pts.is_anomaly) if a]
    fig = figure(title=f"{len(pts)} of {data.point_count} points ({data.projection.upper()})", height=640,
                 sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset,save", name="map",
                 output_backend="canvas")
    xy = {"x": np.asarray(pts.x, dtype=np.float32), "y": np.asarray(pts.y, dtype=np.float32)}  # sent as binary
    sources = [ColumnDataSource({**{key: [col[i] for i in rows] for key, col in base.items()},
                                 **{key: col[rows] for key, col in xy.items()}}) for rows in (normal, flagged)]
    dots = fig.scatter("x", "y", source=sources[0], marker="circle", size=5, fill_color="colour", fill_alpha=0.6,
                       line_alpha=0.0)
    crosses = fig.scatter("x", "y", source=sources[1], marker="x", size=9, line_width=2, line_color=ANOMALY_COLOUR,
                          legend_label="anomaly")
    fig.add_tools(HoverTool(renderers=[dots, crosses], tooltips=POINT_TOOLTIPS))
    placed = sorted((c for c in data.clusters if c.x is not None and c.populated), key=lambda c: -c.size)[:MAX_LABELS]
    centres = ColumnDataSource({"x": [c.x for c in placed], "y": [c.y for c in placed],
                                "label": [label_of(c) for c in placed]})
    fig.scatter("x", "y", source=centres, marker="diamond", size=11, fill_color="black", line_color="white")
    fig.add_layout(LabelSet(x="x", y="y", text="label", source=centres, x_offset=7, y_offset=4,
                            text_font_size="11px", background_fill_color="white", background_fill_alpha=0.75))
    fig.legend.location = "top_left"
    fig.xaxis.axis_label = f"PC1 ({data.explained[0]:.0%} of the variance)" if data.explained else "PC1"
    fig.yaxis.axis_label = f"PC2 ({data.explained[1]:.0%})" if len(data.explained) > 1 else "PC2"
    return fig


def _sizes(data: ReportData, colours: dict[int, str]) -> Any:
    ordered = sorted(data.clusters, key=lambda c: -c.size)
    factors = [f"#{c.cluster_id}" for c in ordered]
    src = ColumnDataSource({
        "cid": factors, "size": [c.size for c in ordered], "share": [f"{c.share:.1%}" for c in ordered],
        "anomalies": [c.anomaly_count for c in ordered], "label": [c.label for c in ordered],
        "colour": [colours.get(c.cluster_id, "#999999") for c in ordered],
    })
    fig = figure(x_range=FactorRange(factors=factors), y_range=DataRange1d(start=0), height=300, sizing_mode="stretch_width", title="Points per cluster",
                 tools="save", name="sizes", tooltips=[("cluster", "@cid @label"), ("points", "@size (@share)"),
                                                       ("anomalies", "@anomalies")])
    fig.vbar(x="cid", top="size", width=0.8, source=src, fill_color="colour", line_color=None)
    fig.xaxis.major_label_orientation = 0.9 if len(factors) > 20 else 0.0
    return fig


KCURVES = (("silhouette", "Silhouette (higher is better)"), ("davies_bouldin", "Davies–Bouldin (lower is better)"),
           ("calinski_harabasz", "Calinski–Harabasz (higher is better)"), ("inertia", "Inertia (look for the knee)"))


def _kcurves(data: ReportData) -> Any:
    sel = data.k_selection
    assert sel is not None
    figs: list[Any] = []
    for key, title in KCURVES:
        pairs = [(s.k, getattr(s, key)) for s in sel.scores if getattr(s, key) is not None]
        fig = figure(title=title, height=260, width=320, tools="save", x_axis_label="k",
                     tooltips=[("k", "@x"), (key, "@y")])
        fig.line([k for k, _ in pairs], [v for _, v in pairs], line_width=2)
        fig.scatter([k for k, _ in pairs], [v for _, v in pairs], size=6)
        fig.vspan(x=[sel.chosen_k], line_dash="dashed", line_color=ANOMALY_COLOUR, line_width=1.5)
        if key == "inertia":
            knees = [(s.k, s.inertia) for s in sel.scores if s.knee and s.inertia is not None]
            if knees:
                fig.scatter([k for k, _ in knees], [v for _, v in knees], size=12, marker="triangle",
                            fill_color="orange", legend_label="knee")
        fig.xaxis.ticker = [s.k for s in sel.scores] if len(sel.scores) <= 20 else fig.xaxis.ticker
        figs.append(fig)
    return gridplot(figs, ncols=4, toolbar_location="right")


def _history(data: ReportData, colours: dict[int, str]) -> Any:
    latest = {c.cluster_id: c.size for c in data.clusters}
    tracked = sorted(latest, key=lambda c: -latest[c])[:MAX_HISTORY_LINES]
    sizes = figure(title=f"Points per cluster over versions (the {len(tracked)} largest now)", height=300,
                   width=640, tools="pan,wheel_zoom,reset,save", x_axis_label="model version",
                   tooltips=[("version", "@x"), ("cluster", "@cid"), ("points", "@y")])
    for cid in tracked:
        xs, ys = [], []
        for v in data.history:
            if cid in v.cluster_ids and len(v.sizes) == len(v.cluster_ids):
                xs.append(v.version)
                ys.append(v.sizes[v.cluster_ids.index(cid)])
        if xs:
            src = ColumnDataSource({"x": xs, "y": ys, "cid": [f"#{cid}"] * len(xs)})
            sizes.line("x", "y", source=src, line_color=colours.get(cid, "#999999"), line_width=2)
            sizes.scatter("x", "y", source=src, fill_color=colours.get(cid, "#999999"), line_color=None, size=6)
    drift = figure(title="Drift from the previous version", height=300, width=640, tools="pan,wheel_zoom,reset,save",
                   x_axis_label="model version", tooltips=[("version", "@x"), ("value", "@y")])
    series = (("psi_versions", "PSI of cluster shares", "#1f77b4"),
              ("centroid_shift_mean", "mean centroid shift", "#2ca02c"))
    for key, name, colour in series:
        xy = [(v.version, getattr(v, key)) for v in data.history if getattr(v, key) is not None]
        if xy:
            src = ColumnDataSource({"x": [a for a, _ in xy], "y": [b for _, b in xy]})
            drift.line("x", "y", source=src, line_color=colour, line_width=2, legend_label=name)
            drift.scatter("x", "y", source=src, fill_color=colour, line_color=None, size=6, legend_label=name)
    rates = [(v.version, v.anomalies / v.points) for v in data.history if v.points and v.anomalies is not None]
    if rates:
        drift.line([a for a, _ in rates], [b for _, b in rates], line_color=ANOMALY_COLOUR, line_width=2,
                   line_dash="dashed", legend_label="anomaly rate")
    if drift.legend:
        drift.legend.location = "top_left"
    versions = [v.version for v in data.history]
    for fig in (sizes, drift):
        fig.xaxis.ticker = versions if len(versions) <= 20 else fig.xaxis.ticker  # whole versions only
    return gridplot([[sizes, drift]], toolbar_location="right")


def report_colours(data: ReportData) -> dict[int, str]:
    """The colour of every cluster id in the report (the same in every figure and table)."""
    return cluster_colours([c.cluster_id for c in data.clusters] + list(set(data.points.cluster_id)))


def build_figures(data: ReportData, colours: dict[int, str]) -> dict[str, Any]:
    """The report's Bokeh roots by name: ``map``, ``sizes``, ``history``, and ``kcurves`` when a
    run chose k from a range."""
    out = {"map": _map(data, colours), "sizes": _sizes(data, colours)}
    if data.k_selection is not None and data.k_selection.scores:
        out["kcurves"] = _kcurves(data)
    if data.history:
        out["history"] = _history(data, colours)
    return out
