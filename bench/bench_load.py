"""Bounded mixed load over loopback, and what the API-key interceptor costs per call.

Set-up (not timed): one in-process server (``InProcessServer``) with ``--keys`` API keys
configured; ``--collections`` VECTOR collections (64-d, cosine), each seeded with ``--seed-points``
points around 8 centres and clustered with k=8, so Classify has a served model. No text model is
loaded. Every client sends an admin key.

**(a) load**: ``--threads`` threads (default 16) share one client and call, at random, Ingest
(20 new points), Classify (1-10 vectors), Search (limit 10) and GetPoint (a seeded id) on a
random collection, until ``--calls`` calls are done or ``--seconds`` have passed, whichever comes
first (it always stops by itself). When half the calls are done, a clustering run (k=8) starts
on the first collection and is watched to its end while the load goes on. Printed: calls and
errors per RPC (goal: 0 errors), p50/p99 ms per RPC, the run's wall time, and the process RSS
sampled every ``--rss-every`` seconds and at each phase (before, run start, run end, end).

**(b) auth cost**: a second gRPC server over the same service without keys; ``--r`` sequential
calls per path, interleaved call by call, of GetCollection and Classify (one vector) through
three paths: no keys configured, an unrestricted key, a key confined to the collection (its
requests are checked field by field). Printed: p50/p99 and the ratio to the no-key path
(goal: p50 ratio ≤ 1.05).

**(c) durability**: raw-vector ingest with ``DURABILITY=fsync`` (the default) vs ``batched``, the
same vectors through two in-process servers, alternating (``bench_durability.bench``, which
prints the same table on its own). Nothing is asserted.

    .venv/bin/python bench/bench_load.py [--calls 6000] [--seconds 75] [--threads 16] [--r 1500]
        [--skip-load] [--skip-auth] [--skip-durability]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import random  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
from embcluster_client import pb  # noqa: E402

from _common import InProcessServer, emit_result, interleaved, print_table, quiet_logs, ratio, summarize_ms  # noqa: E402
from bench_durability import bench as durability_bench  # noqa: E402

DIM = 64
RPCS = ("Ingest", "Classify", "Search", "GetPoint")


def rss_mb() -> float:
    """Resident set size of this process (server and clients), MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_keys(n: int, collection: str) -> tuple[list[Any], dict[str, str]]:
    from embcluster.auth import ApiKeyRecord, hash_key, new_key

    keys = {"admin": new_key(), "confined": new_key()}
    records = [ApiKeyRecord(name="admin", sha256=hash_key(keys["admin"]), scopes=("admin",)),
               ApiKeyRecord(name="confined", sha256=hash_key(keys["confined"]), scopes=("write",),
                            collections=(collection,))]
    records += [ApiKeyRecord(name=f"other{i}", sha256=hash_key(new_key()), scopes=("read",)) for i in range(max(0, n - 2))]
    return records, keys


def load(client: Any, names: list[str], seeded: int, args: argparse.Namespace,
         rng_seed: int = 0) -> dict[str, Any]:
    lat: dict[str, list[float]] = defaultdict(list)
    errors: Counter[str] = Counter()
    done = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds
    half = threading.Event()
    fresh = [0]
    rss: list[tuple[str, float, float, int]] = [("before load", 0.0, rss_mb(), 0)]
    started = time.monotonic()

    def calls_for(rng: random.Random) -> tuple[str, Callable[[], Any]]:
        name = rng.choice(names)
        op = rng.choices(RPCS, weights=(2, 3, 3, 2))[0]
        if op == "Ingest":
            with lock:
                base = fresh[0]
                fresh[0] += 20
            items = [{"id": f"n{base + i}", "vector": np.random.default_rng(base + i).standard_normal(DIM).tolist()}
                     for i in range(20)]
            return op, lambda: client.ingest(name, items)
        if op == "Classify":
            vectors = [np.random.default_rng(rng.randrange(10**9)).standard_normal(DIM).tolist()
                       for _ in range(rng.randint(1, 10))]
            return op, lambda: client.classify(name, vectors)
        if op == "Search":
            query = np.random.default_rng(rng.randrange(10**9)).standard_normal(DIM).tolist()
            return op, lambda: client.search(name, query, limit=10)
        point = f"s{rng.randrange(seeded)}"
        return op, lambda: client.get_point(name, id=point)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            with lock:
                if done[0] >= args.calls:
                    return
                done[0] += 1
                if done[0] >= args.calls // 2:
                    half.set()
            op, call = calls_for(rng)
            t0 = time.perf_counter()
            try:
                call()
            except Exception as exc:  # counted, never raised: the load goes on
                code = getattr(exc, "code", None)
                errors[f"{op}:{code().name if callable(code) else type(exc).__name__}"] += 1
                continue
            lat[op].append(time.perf_counter() - t0)

    run: dict[str, Any] = {}

    def clustering() -> None:
        if not half.wait(timeout=args.seconds):
            return
        rss.append(("run start", time.monotonic() - started, rss_mb(), done[0]))
        t0 = time.perf_counter()
        try:
            final = client.cluster(names[0], k=8, seed=1)
            run.update(state=pb.RunState.Name(final.state), model_version=final.model_version)
        except Exception as exc:
            run.update(error=repr(exc)[:300])
        run["wall_s"] = time.perf_counter() - t0
        rss.append(("run end", time.monotonic() - started, rss_mb(), done[0]))

    stop_sampling = threading.Event()

    def sampler() -> None:
        while not stop_sampling.wait(args.rss_every):
            rss.append(("sample", time.monotonic() - started, rss_mb(), done[0]))

    threads = [threading.Thread(target=worker, args=(i,), name=f"load-{i}") for i in range(args.threads)]
    side = [threading.Thread(target=clustering, name="load-run"), threading.Thread(target=sampler, daemon=True)]
    for t in threads + side:
        t.start()
    for t in threads:
        t.join()
    side[0].join()
    stop_sampling.set()
    wall = time.monotonic() - started
    rss.append(("end", wall, rss_mb(), done[0]))
    return {"lat": lat, "errors": errors, "calls": done[0], "wall_s": wall, "run": run, "rss": rss}


def interceptor_alone_us(keys: Any, key: tuple[str, str], n: int = 20000) -> dict[str, float]:
    """Wall µs per call of ``AuthInterceptor.intercept_service`` alone (no gRPC): key lookup over
    every configured hash, scope check; and the same for a confined key (wraps the handler)."""
    import collections

    import grpc

    from embcluster.api.auth import AuthInterceptor

    interceptor = AuthInterceptor(keys)
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: None)
    details = collections.namedtuple("details", "method invocation_metadata")
    out = {}
    for label, value in (("unrestricted", key[0]), ("confined", key[1])):
        call = details("/embcluster.v1.Embcluster/GetCollection",
                       (("user-agent", "grpc-python"), ("authorization", f"Bearer {value}")))
        t0 = time.perf_counter()
        for _ in range(n):
            interceptor.intercept_service(lambda _: handler, call)
        out[label] = (time.perf_counter() - t0) / n * 1e6
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=6000, help="calls of the load phase at most (default 6000)")
    ap.add_argument("--seconds", type=float, default=75.0, help="time limit of the load phase (default 75)")
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--collections", type=int, default=4)
    ap.add_argument("--seed-points", type=int, default=1000, help="points per collection before the load (default 1000)")
    ap.add_argument("--rss-every", type=float, default=15.0, help="seconds between RSS samples (default 15)")
    ap.add_argument("--keys", type=int, default=10, help="API keys configured (default 10)")
    ap.add_argument("--r", type=int, default=1500, help="timed calls per path and RPC of the auth phase")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--skip-auth", action="store_true")
    ap.add_argument("--skip-durability", action="store_true")
    args = ap.parse_args()
    quiet_logs()

    from embcluster.api.server import GrpcServer
    from embcluster.schema import ItemInput
    from embcluster_client import EmbclusterClient

    names = [f"load{i}" for i in range(args.collections)]
    records, keys = make_keys(args.keys, names[0])
    params = {k: getattr(args, k) for k in ("calls", "seconds", "threads", "collections", "seed_points",
                                            "keys", "r", "warmup")} | {"dim": DIM}
    results: dict[str, Any] = {}
    started = time.perf_counter()
    with InProcessServer(api_keys=records, grpc_workers=32) as srv:
        client = EmbclusterClient(srv.address, timeout=120, api_key=keys["admin"])
        rng = np.random.default_rng(0)
        centres = rng.standard_normal((8, DIM)).astype(np.float32)
        for name in names:
            client.create_collection(name, input_kind="vector", vector_dim=DIM)
            x = centres[rng.integers(0, 8, args.seed_points)] + 0.2 * rng.standard_normal((args.seed_points, DIM))
            for s in range(0, args.seed_points, 1000):
                srv.service.ingest(name, [ItemInput(id=f"s{s + i}", vector=v.tolist()) for i, v in enumerate(x[s:s + 1000])])
            client.cluster(name, k=8, seed=0)
        results["setup_s"] = time.perf_counter() - started
        print(f"set-up: {args.collections} collections x {args.seed_points} points, clustered, in "
              f"{results['setup_s']:.1f}s")
        if not args.skip_load:
            out = load(client, names, args.seed_points, args)
            rows = []
            for op in RPCS:
                st = summarize_ms(out["lat"][op])
                errs = sum(n for k, n in out["errors"].items() if k.startswith(op + ":"))
                rows.append([op, st["n"] + errs, errs, st["p50_ms"], st["p99_ms"]])
                results.setdefault("load", {})[op] = {**st, "errors": errs}
            print_table(f"(a) load: {out['calls']} calls from {args.threads} threads in {out['wall_s']:.1f}s "
                        f"({out['calls'] / out['wall_s']:.0f} calls/s), a clustering run in the middle",
                        ["rpc", "calls", "errors", "p50 ms", "p99 ms"], rows)
            run = out["run"]
            outcome = run.get("error") or f"state {run.get('state')}, model v{run.get('model_version')}"
            print(f"    errors: {sum(out['errors'].values())} {dict(out['errors']) or ''}; "
                  f"clustering run: {run.get('wall_s', float('nan')):.1f}s, {outcome}")
            print_table("RSS of the process (server + clients)", ["when", "t s", "RSS MB", "calls so far"],
                        [list(row) for row in out["rss"]])
            results["load"].update(calls=out["calls"], wall_s=out["wall_s"], errors=dict(out["errors"]),
                                   error_count=sum(out["errors"].values()), run=out["run"],
                                   rss_mb=[{"when": w, "t_s": t, "rss_mb": m, "calls": c} for w, t, m, c in out["rss"]])
        if not args.skip_auth:
            open_server = GrpcServer(srv.service, srv.settings.model_copy(update={"api_keys": []}))
            open_server.start()
            paths = {"no keys configured": EmbclusterClient(open_server.address, timeout=60),
                     "unrestricted key": client,
                     "confined key": EmbclusterClient(srv.address, timeout=60, api_key=keys["confined"])}
            query = [centres[3].tolist()]
            try:
                results["auth"] = {}
                for rpc, call in (("GetCollection", lambda c: c.get_collection(names[0])),
                                  ("Classify", lambda c: c.classify(names[0], query))):
                    lat = interleaved({k: (lambda c=c: call(c)) for k, c in paths.items()}, args.r, args.warmup)
                    stats = {k: summarize_ms(v) for k, v in lat.items()}
                    base = stats["no keys configured"]
                    print_table(f"(b) auth cost: {rpc}, {args.r} calls per path, interleaved, {args.keys} keys configured",
                                ["path", "p50 ms", "p99 ms", "p50 x no keys", "p99 x no keys"],
                                [[k, s["p50_ms"], s["p99_ms"], ratio(s["p50_ms"], base["p50_ms"]),
                                  ratio(s["p99_ms"], base["p99_ms"])] for k, s in stats.items()])
                    results["auth"][rpc] = {
                        "stats": stats,
                        "ratio_p50_key": ratio(stats["unrestricted key"]["p50_ms"], base["p50_ms"]),
                        "ratio_p50_confined": ratio(stats["confined key"]["p50_ms"], base["p50_ms"]),
                        "overhead_p50_us": 1000 * (stats["unrestricted key"]["p50_ms"] - base["p50_ms"]),
                    }
                alone = interceptor_alone_us(srv.grpc.keys, (keys["admin"], keys["confined"]))
                base_us = 1000 * results["auth"]["GetCollection"]["stats"]["no keys configured"]["p50_ms"]
                results["auth"]["interceptor_alone_us"] = alone
                print(f"\n    the interceptor alone (no gRPC, {args.keys} keys): {alone['unrestricted']:.1f} us per call "
                      f"unrestricted, {alone['confined']:.1f} us confined = "
                      f"{100 * alone['unrestricted'] / base_us:.2f}% of GetCollection's no-key p50; the rest of the "
                      "difference above is the client's header and its transport")
            finally:
                paths["no keys configured"].close()
                paths["confined key"].close()
                open_server.stop(grace=0)
        client.close()
    if not args.skip_durability:
        print("\n(c) durability")
        results["durability"] = durability_bench(4000, 100, 3, 384)
        print(f"    fsync/batched ingest throughput: {results['durability']['fsync_over_batched']:.3f}x")
    results["wall_s"] = time.perf_counter() - started
    print(f"\nwall time {results['wall_s']:.1f}s")
    emit_result("load", params, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
