"""What a report costs: generation time and HTML size for 10k and 100k points.

For each ``--sizes`` n: ``n`` synthetic 384-d cosine vectors around ``--k`` centres (1% of
them scattered), each with a WordNet definition as its text (the shipped glosses, cycled:
about 60 characters each, what hover shows). A served model is fitted by the service's own
code (``fit_kmeans`` + ``calibrate`` on a 10k sample; a k range of ``--k-range`` chosen on
a 3k sample gives the k curves; a second version gives the history), untimed. Then, timed:

* ``build_report``: label the n points with the model (``ClusterModel.assign``, the path
  readers use), draw the map's seeded sample (``--limit``, anomalies kept first), PCA of the
  sample and the centroids, cluster summaries and history;
* ``render_html``: the Bokeh figures, BokehJS inlined, the tables.

Baseline, in the same process: labelling the same n points alone (``model.assign``), so the
report's cost reads as a multiple of one labelling pass. Reported per n: seconds per phase
(median of ``--repeats``), the HTML size and how much of it is the inlined BokehJS.

    .venv/bin/python bench/bench_report.py [--sizes 10000 100000] [--limit 10000] [--k 24] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_result, print_table, quiet_logs, ratio  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--limit", type=int, default=10_000, help="points drawn on the map")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=24, help="centres of the data and k of the served model")
    parser.add_argument("--k-range", type=int, nargs=2, default=[16, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the last report here")
    args = parser.parse_args()
    quiet_logs()

    from bokeh.resources import Resources

    from embcluster.cluster.choose_k import choose_k
    from embcluster.cluster.fit import calibrate
    from embcluster.cluster.kmeans import fit_kmeans
    from embcluster.data import load_wordnet
    from embcluster.report import PointSample, build_report, render_html
    from embcluster.runtime import limit_blas_threads
    from embcluster.schema import ClusterInfo, CollectionSettings

    limit_blas_threads(1)  # as `embcluster serve` does (BLAS_THREADS=1)
    glosses = [g["text"] for g in load_wordnet()]
    bokeh_js = len(Resources(mode="inline", components=["bokeh"]).render_js().encode())
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(args.k, args.dim)).astype(np.float32)
    settings = CollectionSettings.defaults()
    rows, results = [], {}
    for n in args.sizes:
        which = rng.integers(0, args.k, size=n)
        x = centres[which] + 0.35 * rng.normal(size=(n, args.dim)).astype(np.float32)
        odd = rng.choice(n, size=n // 100, replace=False)
        x[odd] = rng.normal(size=(len(odd), args.dim))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        texts = [glosses[i % len(glosses)] for i in range(n)]
        ids = [f"doc-{i}" for i in range(n)]
        fit_sample = x[rng.choice(n, size=min(n, 10_000), replace=False)]
        _, _, table = choose_k(fit_sample[:3000], args.k_range[0], args.k_range[1], metric="cosine", seed=0, n_init=1)
        models, prev, next_id = [], None, 0
        for version in (1, 2):
            fit = fit_kmeans(fit_sample, args.k, metric="cosine", seed=version, n_init=1)
            model, next_id = calibrate(fit_sample, fit.centroids, version=version, metric="cosine", settings=settings,
                                       prev=prev, next_cluster_id=next_id, seed=version, n_init=1,
                                       sample_size=len(fit_sample), backend=fit.backend, inertia=fit.inertia)
            labels = model.assign(x)
            model.metrics.update({"sizes_full": np.bincount(labels.rows, minlength=model.k).tolist(),
                                  "points_labelled": n, "anomalies_full": int(labels.is_anomaly.sum()),
                                  "k_scores": [asdict(s) for s in table] if version == 2 else []})
            models.append(model)
            prev = model
        served = models[-1]
        labels = served.assign(x)
        clusters = [ClusterInfo(cluster_id=int(c), size=int((labels.rows == r).sum()), radius=float(served.radius[r]),
                                anomaly_count=int(((labels.rows == r) & labels.is_anomaly).sum()),
                                populated=bool(served.populated[r])) for r, c in enumerate(served.cluster_ids)]
        sample = PointSample(ids=ids, vectors=x, texts=texts)
        t_assign, t_build, t_render, html = [], [], [], ""
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            served.assign(x)
            t_assign.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            data = build_report(collection="bench", kind="text", model=served, clusters=clusters, point_count=n,
                                sample=sample, history=models, limit=args.limit, seed=0)
            t_build.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            html = render_html(data)
            t_render.append(time.perf_counter() - t0)
        size = len(html.encode())
        a, b, r = statistics.median(t_assign), statistics.median(t_build), statistics.median(t_render)
        rows.append([n, len(data.points), f"{a:.2f}", f"{b:.2f}", f"{r:.2f}", f"{b + r:.2f}",
                     f"{ratio(b + r, a):.1f}x", f"{size / 1e6:.2f}", f"{(size - bokeh_js) / 1e6:.2f}"])
        results[str(n)] = {"points_drawn": len(data.points), "assign_s": a, "build_s": b, "render_s": r,
                           "report_s": b + r, "report_over_assign": ratio(b + r, a), "html_bytes": size,
                           "html_bytes_without_bokehjs": size - bokeh_js}
        if args.out is not None:
            args.out.write_text(html, encoding="utf-8")
    print_table(f"report generation (median of {args.repeats}; map limit {args.limit} points, k = {args.k})",
                ["points", "drawn", "assign s", "build s", "render s", "report s", "report/assign", "HTML MB",
                 "of it data MB"], rows)
    print(f"\nBokehJS inlined: {bokeh_js / 1e6:.2f} MB of every report")
    emit_result("report", vars(args) | {"out": str(args.out) if args.out else None}, results)


if __name__ == "__main__":
    main()
