"""What a report costs through the running service: ``GetReport`` and the live view, 10k and 100k points.

For each ``--sizes`` n, set up (untimed): a VECTOR collection (384-d, cosine) of n points around
``--k`` centres (1% scattered), each with a WordNet definition in its metadata (about 60
characters: what hover shows of a VECTOR point), ingested through the client; a first run
choosing k from ``--k-range`` (the k curves) and a second at k = ``--k`` (the history). Then,
timed (median of ``--repeats``):

* ``GetReport``: the client's call over loopback gRPC (the server reads the sample from the vector
  log and the store, labels it, PCA, Bokeh, HTML; the HTML travels in the response), and the
  server's own ``seconds`` from the response;
* baseline, in the same process: the renderer alone (``build_report`` + ``render_html``, as
  ``bench_report.py`` times it) on as many of the collection's points as GetReport draws, already
  in memory with their texts; the difference is what the service adds (drawing and reading the
  sample and its anomalies, the model history, the cluster counts, the message);
* the live view: the first ``GET /report/<name>`` after a version is published (a render) and
  the next ones (the per-version cache: a look-up of the served version, no counting), over HTTP on
  the metrics endpoint.

Reported per n: seconds, HTML size, points drawn, GetReport over the renderer alone.

    .venv/bin/python bench/bench_report_service.py [--sizes 10000 100000] [--sample 10000] [--k 24] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import InProcessServer, emit_result, print_table, quiet_logs, ratio  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--sample", type=int, default=10_000, help="points drawn on the map (GetReport sample_size)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=24, help="centres of the data and k of the second run")
    parser.add_argument("--k-range", type=int, nargs=2, default=[16, 24], help="k range of the first run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    quiet_logs()

    from embcluster.data import load_wordnet
    from embcluster.live_report import PREFIX, LiveReport
    from embcluster.metrics import MetricsEndpoint
    from embcluster.report import PointSample, build_report, render_html
    from embcluster.runtime import limit_blas_threads

    limit_blas_threads(1)  # as `embcluster serve` does (BLAS_THREADS=1)
    glosses = [g["text"] for g in load_wordnet()]
    rows, results = [], {}
    with InProcessServer(durability="batched") as srv:
        live = LiveReport(srv.service)
        endpoint = MetricsEndpoint(srv.service.metrics, "127.0.0.1", 0, routes={PREFIX: live})
        c, svc = srv.client, srv.service
        for n in args.sizes:
            name = f"bench-{n}"
            rng = np.random.default_rng(n)
            centres = rng.normal(size=(args.k, args.dim)).astype(np.float32)
            c.create_collection(name, input_kind="vector", vector_dim=args.dim, distance="cosine")
            t0 = time.perf_counter()
            for start in range(0, n, 1000):
                m = min(1000, n - start)
                x = centres[rng.integers(0, args.k, size=m)] + 0.35 * rng.normal(size=(m, args.dim)).astype(np.float32)
                odd = rng.random(m) < 0.01
                x[odd] = rng.normal(size=(int(odd.sum()), args.dim))
                c.ingest(name, [{"id": f"doc-{start + i}", "vector": x[i], "metadata": {"text": glosses[(start + i) % len(glosses)]}}
                                for i in range(m)])
            ingest_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            c.cluster(name, k_range=tuple(args.k_range), timeout=3600)
            c.cluster(name, k=args.k, timeout=3600)
            cluster_s = time.perf_counter() - t0

            t_rpc, t_server, t_alone, html = [], [], [], b""
            report = None
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                report = c.get_report(name, sample_size=args.sample)
                t_rpc.append(time.perf_counter() - t0)
                t_server.append(report.seconds)
                html = report.html
            # the renderer alone on as many points as GetReport draws, already in memory
            coll = svc.registry.get(name)
            model = coll.model
            live_set = coll.vlog.live()
            picked = np.sort(np.random.default_rng(0).choice(len(live_set.rows), min(args.sample, n), replace=False))
            ids, vecs = [], []
            for page_ids, page in coll.vlog.iter_pages(live_set, 4096, rows=live_set.rows[picked]):
                ids += [str(i) for i in page_ids]
                vecs.append(page)
            sample = PointSample(ids=ids, vectors=np.concatenate(vecs), texts=[glosses[i % len(glosses)] for i in range(len(ids))])
            listing = svc.cluster_listing(name)
            history = [coll.models.load(v) for v in coll.models.published(model.version)]
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                data = build_report(collection=name, kind="vector", model=model, clusters=listing.clusters,
                                    point_count=listing.point_count, sample=sample, history=history, limit=args.sample)
                render_html(data)
                t_alone.append(time.perf_counter() - t0)
            url = f"{endpoint.base_url}{PREFIX}/{name}"
            t0 = time.perf_counter()
            with urllib.request.urlopen(url, timeout=600) as resp:
                live_bytes = len(resp.read())
            t_live_first = time.perf_counter() - t0
            t_cached = []
            for _ in range(max(args.repeats, 5)):
                t0 = time.perf_counter()
                with urllib.request.urlopen(url, timeout=600) as resp:
                    resp.read()
                t_cached.append(time.perf_counter() - t0)
            rpc, server, alone, cached = (statistics.median(t) for t in (t_rpc, t_server, t_alone, t_cached))
            assert report is not None
            rows.append([n, report.points_drawn, f"{rpc:.2f}", f"{server:.2f}", f"{alone:.2f}", f"{ratio(rpc, alone):.2f}x",
                         f"{len(html) / 1e6:.2f}", f"{t_live_first:.2f}", f"{cached * 1000:.1f}"])
            results[str(n)] = {"points_drawn": report.points_drawn, "anomalies_drawn": report.anomalies_drawn,
                               "get_report_s": rpc, "server_s": server, "renderer_alone_s": alone,
                               "get_report_over_renderer": ratio(rpc, alone), "html_bytes": len(html),
                               "live_first_get_s": t_live_first, "live_cached_get_s": cached,
                               "live_html_bytes": live_bytes, "ingest_s": ingest_s, "two_runs_s": cluster_s}
            c.delete_collection(name)
        endpoint.close()
    print_table(f"report through the service (median of {args.repeats}; sample_size {args.sample}, k = {args.k})",
                ["points", "drawn", "GetReport s", "server s", "renderer alone s", "GetReport/alone", "HTML MB",
                 "live 1st GET s", "live cached GET ms"], rows)
    emit_result("report_service", vars(args), results)


if __name__ == "__main__":
    main()
