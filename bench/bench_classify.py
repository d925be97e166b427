"""Single-item Classify latency over loopback gRPC, as a ratio against same-process baselines.

Set-up (not timed): a VECTOR collection (384-d, ``--points`` points drawn around 16 centres,
clustered with k=16) and a TEXT collection (``--texts`` WordNet definitions, clustered with k=12),
served by an in-process server on 127.0.0.1.

Then ``--r`` sequential single-item calls per path, the paths interleaved call by call (so drift
and background load hit them alike), after a warm-up:

* vector: ``client.classify`` over gRPC  vs.  the in-process core ``service.classify``;
* text:   ``client.classify`` over gRPC  vs.  ``service.classify``  vs.  the bare
  ``SentenceTransformer.encode`` of the same text on the service's own model instance.

Prints p50/p99 (ms) and the ratios gRPC/in-process (and /encode for text). Nothing is asserted.
The client and the server share this process (and its GIL), so the gRPC figure includes both
ends of the call.

    .venv/bin/python bench/bench_classify.py [--r 300] [--points 5000] [--texts 1000]
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


def _report(title: str, lat: dict[str, list[float]], labels: dict[str, str], base: str) -> dict[str, Any]:
    stats = {k: summarize_ms(v) for k, v in lat.items()}
    rows = []
    for key, label in labels.items():
        s = stats[key]
        rows.append([label, s["p50_ms"], s["p99_ms"], s["mean_ms"],
                     ratio(s["p50_ms"], stats[base]["p50_ms"]), ratio(s["p99_ms"], stats[base]["p99_ms"])])
    print_table(title, ["path", "p50 ms", "p99 ms", "mean ms", f"p50 x {base}", f"p99 x {base}"], rows)
    return stats


def setup_vector(srv: InProcessServer, points: int, k: int, batch: int) -> tuple[str, np.ndarray]:
    from embcluster.schema import ItemInput

    rng = np.random.default_rng(1)
    centres = rng.standard_normal((k, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, k, points)
    x = centres[labels] + 0.05 * rng.standard_normal((points, DIM)).astype(np.float32)
    name = "vec"
    srv.client.create_collection(name, input_kind="vector", vector_dim=DIM, distance="cosine")
    for start in range(0, points, batch):
        srv.service.ingest(name, [ItemInput(id=f"v{start + i}", vector=row.tolist())
                                  for i, row in enumerate(x[start:start + batch])])
    srv.client.cluster(name, k=k, seed=0, timeout=600)
    query = (centres[3] + 0.05 * rng.standard_normal(DIM)).astype(np.float32)  # not a stored point
    return name, query


def setup_text(srv: InProcessServer, texts: int, k: int, batch: int) -> tuple[str, str]:
    from embcluster.data import load_wordnet
    from embcluster.schema import ItemInput

    rows = load_wordnet(limit=texts + 1)
    stored, query = rows[:texts], rows[-1]["text"]  # the query text is not stored
    name = "txt"
    srv.client.create_collection(name, input_kind="text")
    for start in range(0, len(stored), batch):
        srv.service.ingest(name, [ItemInput(id=r["id"], text=r["text"]) for r in stored[start:start + batch]])
    srv.client.cluster(name, k=k, seed=0, timeout=600)
    return name, query


def bench_search(srv: InProcessServer, name: str, inside: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    """Grouped vs plain Search, in-process and gRPC, for a query inside a cluster and one between two."""
    client, service = srv.client, srv.service
    coll = service.registry.get(name)
    centres = coll.model.centroids  # type: ignore[union-attr]
    between = (centres[0] + centres[1]) / 2
    limit = args.groups * args.group_size
    out: dict[str, Any] = {}
    for label, q in (("inside a cluster", inside), ("between two centres", between.astype(np.float32))):
        ql = q.tolist()
        groups = service.search_groups(name, vector=ql, groups=args.groups, group_size=args.group_size)
        print(f"\n{label}: {len(groups)} groups of {[len(g.hits) for g in groups]} hits; the plain top {limit} "
              f"span {len({h.point.assignment.cluster_id for h in service.search(name, vector=ql, limit=limit)})}"
              " clusters")
        lat = interleaved({
            "plain": lambda: service.search(name, vector=ql, limit=limit),
            "grouped": lambda: service.search_groups(name, vector=ql, groups=args.groups, group_size=args.group_size),
            "grpc_plain": lambda: client.search(name, q, limit=limit),
            "grpc_grouped": lambda: client.search_groups(name, q, groups=args.groups, group_size=args.group_size),
        }, args.r, args.warmup)
        stats = _report(f"vector Search, {label}: grouped {args.groups} x {args.group_size} vs plain limit {limit}, "
                        f"{args.points} points, {args.r} calls", lat,
                        {"plain": "in-process plain", "grouped": "in-process grouped", "grpc_plain": "gRPC plain",
                         "grpc_grouped": "gRPC grouped"}, base="plain")
        entry = {"stats": stats,
                 "ratio_p50_grouped_over_plain": ratio(stats["grouped"]["p50_ms"], stats["plain"]["p50_ms"]),
                 "ratio_p50_grpc_grouped_over_plain": ratio(stats["grpc_grouped"]["p50_ms"],
                                                            stats["grpc_plain"]["p50_ms"])}
        print(f"    grouped/plain p50: in-process {entry['ratio_p50_grouped_over_plain']:.2f}x, "
              f"gRPC {entry['ratio_p50_grpc_grouped_over_plain']:.2f}x")
        out[label] = entry
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--r", type=int, default=300, help="timed calls per path (default 300)")
    ap.add_argument("--points", type=int, default=5000, help="points in the VECTOR collection (default 5000)")
    ap.add_argument("--k-vector", type=int, default=16)
    ap.add_argument("--texts", type=int, default=1000, help="WordNet definitions in the TEXT collection (default 1000)")
    ap.add_argument("--k-text", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=20, help="untimed rounds before timing (default 20)")
    ap.add_argument("--groups", type=int, default=5, help="grouped search: clusters (default 5)")
    ap.add_argument("--group-size", type=int, default=3, help="grouped search: hits per cluster (default 3)")
    ap.add_argument("--skip-search", action="store_true", help="leave out grouped vs plain Search")
    ap.add_argument("--skip-vector", action="store_true")
    ap.add_argument("--skip-text", action="store_true")
    args = ap.parse_args()
    quiet_logs()

    from embcluster.schema import ItemInput

    params = {"r": args.r, "points": args.points, "k_vector": args.k_vector, "texts": args.texts,
              "k_text": args.k_text, "warmup": args.warmup, "dim": DIM, "groups": args.groups,
              "group_size": args.group_size}
    results: dict[str, Any] = {}
    started = time.perf_counter()
    with InProcessServer() as srv:
        client, service = srv.client, srv.service

        if not args.skip_vector:
            t0 = time.perf_counter()
            vname, vquery = setup_vector(srv, args.points, args.k_vector, batch=1000)
            setup_s = time.perf_counter() - t0
            vlist = vquery.tolist()
            a = client.classify(vname, [vquery])[0]
            b = service.classify(vname, [ItemInput(vector=vlist)])[0]
            if a.cluster_id != b.cluster_id:  # both paths should answer alike; reported, not asserted
                print(f"WARNING: vector paths disagree: gRPC cluster {a.cluster_id}, in-process {b.cluster_id}")
            lat = interleaved({
                "grpc": lambda: client.classify(vname, [vquery]),
                "core": lambda: service.classify(vname, [ItemInput(vector=vlist)]),
            }, args.r, args.warmup)
            stats = _report(
                f"vector Classify, 1 item, {DIM}-d, {args.points} points, k={args.k_vector}, {args.r} calls",
                lat, {"core": "in-process service.classify", "grpc": "gRPC client.classify"}, base="core")
            results["vector"] = {
                "stats": stats, "setup_s": setup_s,
                "ratio_p50_grpc_over_core": ratio(stats["grpc"]["p50_ms"], stats["core"]["p50_ms"]),
                "ratio_p99_grpc_over_core": ratio(stats["grpc"]["p99_ms"], stats["core"]["p99_ms"]),
                "grpc_overhead_p50_ms": stats["grpc"]["p50_ms"] - stats["core"]["p50_ms"],
            }
            print(f"    gRPC/in-process: p50 {results['vector']['ratio_p50_grpc_over_core']:.2f}x, "
                  f"p99 {results['vector']['ratio_p99_grpc_over_core']:.2f}x, "
                  f"overhead p50 {results['vector']['grpc_overhead_p50_ms']:.3f} ms")
            if not args.skip_search:
                results["search"] = bench_search(srv, vname, vquery, args)

        if not args.skip_text:
            t0 = time.perf_counter()
            tname, tquery = setup_text(srv, args.texts, args.k_text, batch=500)
            setup_s = time.perf_counter() - t0
            embedder = srv.text_embedder()
            model = getattr(embedder, "_model", None)
            if model is not None:
                def encode() -> Any:
                    return model.encode([tquery], batch_size=embedder.batch_size, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)
            else:  # the embedder's own entry point if its model attribute ever moves
                def encode() -> Any:
                    return embedder.embed([tquery])
            a = client.classify(tname, [tquery])[0]
            b = service.classify(tname, [ItemInput(text=tquery)])[0]
            if a.cluster_id != b.cluster_id:
                print(f"WARNING: text paths disagree: gRPC cluster {a.cluster_id}, in-process {b.cluster_id}")
            lat = interleaved({
                "grpc": lambda: client.classify(tname, [tquery]),
                "core": lambda: service.classify(tname, [ItemInput(text=tquery)]),
                "encode": encode,
            }, args.r, args.warmup)
            stats = _report(
                f"text Classify, 1 item ({len(tquery)} chars), {args.texts} texts, k={args.k_text}, {args.r} calls",
                lat, {"encode": "bare SentenceTransformer.encode", "core": "in-process service.classify",
                      "grpc": "gRPC client.classify"}, base="core")
            results["text"] = {
                "stats": stats, "setup_s": setup_s,
                "ratio_p50_grpc_over_core": ratio(stats["grpc"]["p50_ms"], stats["core"]["p50_ms"]),
                "ratio_p99_grpc_over_core": ratio(stats["grpc"]["p99_ms"], stats["core"]["p99_ms"]),
                "ratio_p50_grpc_over_encode": ratio(stats["grpc"]["p50_ms"], stats["encode"]["p50_ms"]),
                "ratio_p99_grpc_over_encode": ratio(stats["grpc"]["p99_ms"], stats["encode"]["p99_ms"]),
                "ratio_p50_core_over_encode": ratio(stats["core"]["p50_ms"], stats["encode"]["p50_ms"]),
                "grpc_overhead_p50_ms": stats["grpc"]["p50_ms"] - stats["core"]["p50_ms"],
            }
            t = results["text"]
            print(f"    gRPC/in-process: p50 {t['ratio_p50_grpc_over_core']:.2f}x, p99 {t['ratio_p99_grpc_over_core']:.2f}x;"
                  f"  gRPC/encode: p50 {t['ratio_p50_grpc_over_encode']:.2f}x, p99 {t['ratio_p99_grpc_over_encode']:.2f}x;"
                  f"  in-process/encode: p50 {t['ratio_p50_core_over_encode']:.2f}x")

    results["wall_s"] = time.perf_counter() - started
    print(f"\nwall time {results['wall_s']:.1f}s")
    emit_result("classify", params, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
