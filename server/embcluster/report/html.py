"""One self-contained HTML file from a :class:`ReportData`: open it anywhere, offline.

Everything is inline: the BokehJS bundle (read from the installed ``bokeh`` package, ~1.3 MB),
the figures' data, the style and two small scripts. Nothing is fetched, so the file works with
no network and no server.

Untrusted strings (collection names, texts, labels, keywords, ids) reach the page two ways,
both escaped: the tables and headings here go through :func:`html.escape`, and the figures'
data is embedded by Bokeh, which HTML-escapes its JSON (so ``</script>`` cannot close the
script) and draws strings as canvas text or plain-text tooltips.

The first script of the page records every error (``error`` events, unhandled rejections,
``console.error``) into ``<pre id="report-errors">`` and the ``data-report-errors`` count on
``<html>``; the last sets ``data-report-state="rendered"`` on ``<body>`` once Bokeh has drawn
every figure (``"failed"`` after 20 s without). A reader sees a broken report at once, and a
headless browser test reads both from the DOM.
"""

from __future__ import annotations

import html
from typing import Any

from bokeh.embed import components
from bokeh.resources import Resources

from .charts import build_figures, label_of, report_colours
from .data import ClusterSummary, ReportData, VersionEntry

__all__ = ["render_html", "escape_html"]

_GUARD = """<script>
(function () {
  var errors = [];
  function show() {
    var el = document.getElementById("report-errors");
    if (el) { el.hidden = errors.length === 0; el.textContent = errors.join("\\n"); }
  }
  function record(message) {
    errors.push(String(message));
    document.documentElement.setAttribute("data-report-errors", String(errors.length));
    show();
  }
  window.addEventListener("error", function (e) {
    var what = e.message || (e.target && (e.target.src || e.target.href)) || "resource failed to load";
    record("error: " + what);
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    record("unhandled rejection: " + (e.reason && e.reason.message ? e.reason.message : e.reason));
  });
  var original = console.error;
  console.error = function () {
    record("console.error: " + Array.prototype.map.call(arguments, String).join(" "));
    return original.apply(console, arguments);
  };
  document.documentElement.setAttribute("data-report-errors", "0");
  document.addEventListener("DOMContentLoaded", show);
})();
</script>"""

_STATUS = """<script>
(function () {
  var started = Date.now();
  function done() {
    if (typeof Bokeh === "undefined" || !Bokeh.index) { return false; }
    var roots = document.querySelectorAll("[data-root-id]");
    for (var i = 0; i < roots.length; i++) {
      var view = Bokeh.index[roots[i].getAttribute("data-root-id")];
      if (!view || (typeof view.has_finished === "function" && !view.has_finished())) { return false; }
    }
    return true;
  }
  function check() {
    if (done()) {
      document.body.setAttribute("data-report-state", "rendered");
      document.body.setAttribute("data-report-figures", String(document.querySelectorAll("[data-root-id]").length));
    } else if (Date.now() - started > 20000) {
      document.body.setAttribute("data-report-state", "failed");
    } else {
      setTimeout(check, 50);
    }
  }
  window.addEventListener("load", function () { setTimeout(check, 0); });
})();
</script>"""

_STYLE = """<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 24px 48px; color: #222; }
h1 { font-size: 22px; margin: 20px 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
.meta, .note { color: #555; margin: 2px 0; } code { background: #f3f3f3; padding: 0 3px; }
table { border-collapse: collapse; width: 100%; margin-top: 8px; } th, td { border-bottom: 1px solid #e4e4e4;
  padding: 4px 8px; text-align: left; vertical-align: top; } th { background: #fafafa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
.reps { margin: 0; padding-left: 16px; } .reps li { margin: 0; } .id { color: #777; }
.changed { color: #b35806; font-size: 12px; }
#report-errors { background: #fee; border: 1px solid #900; color: #900; padding: 8px; white-space: pre-wrap; }
</style>"""


def escape_html(value: Any) -> str:
    """HTML text of any value: escaped, quotes included (safe in text and attribute values)."""
    return html.escape("" if value is None else str(value), quote=True)


_e = escape_html


def _num(value: float | int | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _cluster_row(c: ClusterSummary, colour: str) -> str:
    reps = "".join(f'<li><span class="id">{_e(r.id)}</span> {_e(r.text)}</li>' for r in c.representatives)
    changed = ' <span class="changed">(label changed)</span>' if c.label_changed else ""
    return (
        f'<tr data-cluster-id="{c.cluster_id}"><td class="num"><span class="swatch" style="background:{_e(colour)}">'
        f'</span>{c.cluster_id}</td><td>{_e(c.label)}{changed}</td><td class="num">{c.size}</td>'
        f'<td class="num">{c.share:.1%}</td><td class="num">{_num(c.radius, ".4g")}</td>'
        f'<td class="num">{c.anomaly_count}</td><td>{_e(", ".join(c.keywords))}</td>'
        f'<td><ul class="reps">{reps}</ul></td></tr>'
    )


def _clusters_table(data: ReportData, colours: dict[int, str]) -> str:
    head = ('<tr><th class="num">cluster</th><th>label</th><th class="num">points</th><th class="num">share</th>'
            '<th class="num">radius</th><th class="num">anomalies</th><th>keywords</th><th>representatives</th></tr>')
    rows = "".join(_cluster_row(c, colours.get(c.cluster_id, "#999999"))
                   for c in sorted(data.clusters, key=lambda c: -c.size))
    return f'<table id="clusters-table"><thead>{head}</thead><tbody>{rows}</tbody></table>'


def _history_row(v: VersionEntry) -> str:
    match = ", ".join(f"{_e(k)} {n}" for k, n in v.matching.items() if n)
    events = "; ".join(f"{_e(kind)} {', '.join(str(i) for i in ids)}" for kind, ids in v.events.items())
    return (
        f'<tr><td class="num">{v.version}{" (served)" if v.served else ""}</td><td>{_e(v.created_at)}</td>'
        f'<td>{_e(v.trigger)}</td><td class="num">{v.k}</td><td class="num">{_num(v.points, "d")}</td>'
        f'<td class="num">{_num(v.anomalies, "d")}</td><td class="num">{_num(v.silhouette, ".3f")}</td>'
        f'<td class="num">{_num(v.psi_versions, ".4f")}</td><td class="num">{_num(v.centroid_shift_mean, ".4f")}</td>'
        f'<td>{match}</td><td>{events}</td></tr>'
    )


def _history_table(data: ReportData) -> str:
    head = ('<tr><th class="num">version</th><th>created</th><th>trigger</th><th class="num">k</th>'
            '<th class="num">points</th><th class="num">anomalies</th><th class="num">silhouette</th>'
            '<th class="num">PSI vs previous</th><th class="num">centroid shift</th><th>clusters matched</th>'
            '<th>cluster events</th></tr>')
    rows = "".join(_history_row(v) for v in reversed(data.history))
    return f'<table id="history-table"><thead>{head}</thead><tbody>{rows}</tbody></table>'


def _k_section(data: ReportData, divs: dict[str, str]) -> str:
    sel = data.k_selection
    if sel is None or "kcurves" not in divs:
        return ('<p class="note" id="k-none">No run of the versions shown chose k from a range '
                '(each was fitted with a fixed k).</p>')
    return (f'<p class="note" id="k-range">Run of version {sel.version}: k from {sel.k_min} to {sel.k_max}, '
            f'chosen k = {sel.chosen_k} (dashed line; the rank vote over the four criteria).</p>'
            f'<div id="kcurves">{divs["kcurves"]}</div>')


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML document.

    Args:
        data: What to show (see :class:`ReportData`); every string in it is treated as untrusted.

    Returns:
        The HTML text (UTF-8 when written). It references nothing outside itself.
    """
    colours = report_colours(data)
    script, divs = components(build_figures(data, colours))
    bokeh_js = Resources(mode="inline", components=["bokeh"]).render_js()
    anomalies = sum(data.points.is_anomaly)
    explained = " and ".join(f"{v:.0%}" for v in data.explained)
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in data.notes)
    labelled = [label_of(c) for c in data.clusters if c.label]
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f"<title>embcluster report: {_e(data.collection)}</title>\n",
        _GUARD, "\n", _STYLE, "\n", bokeh_js, "\n</head>\n",
        '<body data-report-state="loading">\n<header>\n',
        f'<h1>Collection <code id="collection-name">{_e(data.collection)}</code></h1>\n',
        f'<p class="meta">{_e(data.kind)} · {_e(data.metric)} · model version {data.model_version} · '
        f'{data.point_count} points · {len(data.clusters)} clusters · generated {_e(data.generated_at)}</p>\n',
        notes, '<pre id="report-errors" hidden></pre>\n</header>\n',
        '<section id="map-section"><h2>Map</h2>\n',
        f'<p class="note">{len(data.points)} of {data.point_count} points (a seeded sample), {anomalies} of them '
        f'anomalies (red crosses); {_e(data.projection.upper())} of the stored vectors, the axes carry '
        f'{explained or "—"} of the variance of the sample\'s non-anomalous points. Diamonds are the cluster centres'
        f'{", labelled" if labelled else ", labelled by id"}.</p>\n',
        f'<div id="map">{divs["map"]}</div></section>\n',
        f'<section id="sizes-section"><h2>Cluster sizes</h2>\n<div id="sizes">{divs["sizes"]}</div></section>\n',
        f'<section id="k-section"><h2>Choice of k</h2>\n{_k_section(data, divs)}</section>\n',
        '<section id="history-section"><h2>History over model versions</h2>\n',
        f'<div id="history">{divs.get("history", "")}</div>\n{_history_table(data)}</section>\n',
        f'<section id="clusters-section"><h2>Clusters</h2>\n{_clusters_table(data, colours)}</section>\n',
        script, "\n", _STATUS, "\n</body>\n</html>\n",
    ]
    return "".join(parts)
