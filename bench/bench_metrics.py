"""What the observability interceptor (request ids + Prometheus RPC metrics) costs per call.

Set-up (not timed): one service over a VECTOR collection (384-d, ``--points`` points, clustered
with k=16), served by TWO in-process gRPC servers on 127.0.0.1: one with the
``ObservabilityInterceptor`` (the default), one without it (``GrpcServer(observe=False)``); both
keep the error interceptor. A client per server.

Then ``--r`` sequential calls per path, interleaved call by call (drift and background load hit
both alike), after a warm-up, for two RPCs:

* ``GetCollection`` — a small call (its handler counts points in the store);
* ``Classify`` of one 384-d vector — a typical read;

and the time of one scrape (``ServiceMetrics.render()``: counters + the gauges read from the
service). Prints p50/p99 (ms) and the ratio with/without. Nothing is asserted.

    .venv/bin/python bench/bench_metrics.py [--r 2000] [--points 5000]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from _common import InProcessServer, emit_result, interleaved, print_table, quiet_logs, ratio, summarize_ms  # noqa: E402

DIM = 384


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--r", type=int, default=2000, help="timed calls per path and RPC (default 2000)")
    ap.add_argument("--points", type=int, default=5000, help="points in the collection (default 5000)")
    ap.add_argument("--warmup", type=int, default=50)
    args = ap.parse_args()
    quiet_logs()

    from embcluster.api.server import GrpcServer
    from embcluster.schema import ItemInput
    from embcluster_client import EmbclusterClient

    params = {"r": args.r, "points": args.points, "warmup": args.warmup, "dim": DIM}
    results: dict[str, Any] = {}
    started = time.perf_counter()
    with InProcessServer() as srv:
        plain = GrpcServer(srv.service, srv.settings, observe=False)
        plain.start()
        bare = EmbclusterClient(plain.address, timeout=60)
        try:
            rng = np.random.default_rng(0)
            centres = rng.standard_normal((16, DIM)).astype(np.float32)
            x = centres[rng.integers(0, 16, args.points)] + 0.1 * rng.standard_normal((args.points, DIM)).astype(np.float32)
            srv.client.create_collection("m", input_kind="vector", vector_dim=DIM)
            for s in range(0, args.points, 1000):
                srv.service.ingest("m", [ItemInput(id=f"p{s + i}", vector=v.tolist()) for i, v in enumerate(x[s:s + 1000])])
            srv.client.cluster("m", k=16, seed=0)
            query = x[7] + 0.01
            observed = srv.client
            for rpc, call in (("GetCollection", lambda c: c.get_collection("m")),
                              ("Classify", lambda c: c.classify("m", [query]))):
                lat = interleaved({"with": lambda: call(observed), "without": lambda: call(bare)},
                                   args.r, args.warmup)
                stats = {k: summarize_ms(v) for k, v in lat.items()}
                rows = [[label, stats[k]["p50_ms"], stats[k]["p99_ms"], stats[k]["mean_ms"],
                         ratio(stats[k]["p50_ms"], stats["without"]["p50_ms"]),
                         ratio(stats[k]["p99_ms"], stats["without"]["p99_ms"])]
                        for k, label in (("without", "no observability interceptor"),
                                         ("with", "request ids + RPC metrics"))]
                print_table(f"{rpc}, {args.r} calls per path, interleaved", [
                    "path", "p50 ms", "p99 ms", "mean ms", "p50 x without", "p99 x without"], rows)
                results[rpc] = {
                    "stats": stats,
                    "ratio_p50_with_over_without": ratio(stats["with"]["p50_ms"], stats["without"]["p50_ms"]),
                    "ratio_p99_with_over_without": ratio(stats["with"]["p99_ms"], stats["without"]["p99_ms"]),
                    "overhead_p50_us": 1000 * (stats["with"]["p50_ms"] - stats["without"]["p50_ms"]),
                }
                r = results[rpc]
                print(f"    with/without: p50 {r['ratio_p50_with_over_without']:.3f}x, "
                      f"p99 {r['ratio_p99_with_over_without']:.3f}x, overhead p50 {r['overhead_p50_us']:.1f} us")
            scrape = [0.0] * 20
            for i in range(len(scrape)):
                t0 = time.perf_counter()
                body = srv.service.metrics.render()
                scrape[i] = time.perf_counter() - t0
            results["scrape"] = {**summarize_ms(scrape), "bytes": len(body)}
            print(f"\none scrape (render, {args.points} points, 16 clusters): "
                  f"p50 {results['scrape']['p50_ms']:.2f} ms, {len(body)} bytes")
        finally:
            bare.close()
            plain.stop(grace=0)
    results["wall_s"] = time.perf_counter() - started
    print(f"\nwall time {results['wall_s']:.1f}s")
    emit_result("metrics", params, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
