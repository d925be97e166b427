"""Raw-vector ingest with ``durability=fsync`` vs ``durability=batched``, as a ratio in one process.

Two in-process servers (``EmbclusterService`` + ``GrpcServer`` on loopback), one per durability
mode, each on its own temporary data directory on the same disk. The same N random float32
vectors go through ``client.ingest_many`` in the same batches into a fresh VECTOR collection of
each server; the order of the two modes alternates between repeats and the median is reported.

``fsync``: every acknowledged Ingest is fdatasync'ed in the vector log and in the Qdrant Edge
shard's WAL before the call returns (the segments: ``EdgeShard.flush()`` at most every 5 s; a
restart replays the WAL). ``batched``: the
same writes reach the OS only (they survive a killed process, not a power loss).
Figures are printed, never asserted.

    .venv/bin/python bench/bench_durability.py [--n 4000] [--batch 100] [--repeats 3] [--dim 384]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from _common import InProcessServer, emit_result, print_table, quiet_logs, ratio  # noqa: E402

MODES = ("batched", "fsync")


def _ingest_once(srv: InProcessServer, name: str, vectors: np.ndarray, batch: int) -> float:
    dim = vectors.shape[1]
    srv.client.create_collection(name, input_kind="vector", vector_dim=dim, distance="cosine")
    items = [{"id": f"p{i}", "vector": v} for i, v in enumerate(vectors)]
    t0 = time.perf_counter()
    srv.client.ingest_many(name, items, batch_size=batch)
    elapsed = time.perf_counter() - t0
    srv.client.delete_collection(name)
    return elapsed


def bench(n: int, batch: int, repeats: int, dim: int) -> dict[str, Any]:
    """Median seconds per mode over ``repeats`` alternating runs (after one warm-up each)."""
    vectors = np.random.default_rng(0).standard_normal((n, dim), dtype=np.float32)
    servers = {mode: InProcessServer(durability=mode) for mode in MODES}
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        for mode in MODES:  # warm-up: code paths, first shard creation
            _ingest_once(servers[mode], "warm", vectors[: min(n, 4 * batch)], batch)
        for r in range(repeats):
            order = MODES if r % 2 == 0 else MODES[::-1]
            for mode in order:
                times[mode].append(_ingest_once(servers[mode], f"run{r}", vectors, batch))
    finally:
        for srv in servers.values():
            srv.close()
    med = {mode: statistics.median(times[mode]) for mode in MODES}
    rate = {mode: n / med[mode] for mode in MODES}
    calls = -(-n // batch)
    rows = [[mode, rate[mode], med[mode], 1000 * med[mode] / calls, ratio(rate[mode], rate["batched"])]
            for mode in MODES]
    print_table(f"raw-vector ingest: {n} x {dim}-d float32, batch {batch} ({calls} calls), median of {repeats}",
                ["durability", "points/s", "seconds", "ms/call", "vs batched"], rows)
    return {
        "points_per_s": rate,
        "median_s": med,
        "ms_per_call": {mode: 1000 * med[mode] / calls for mode in MODES},
        "fsync_over_batched": ratio(rate["fsync"], rate["batched"]),
        "times_s": times,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4000, help="raw vectors per run (default 4000)")
    ap.add_argument("--batch", type=int, default=100, help="items per Ingest call (default 100)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each mode (default 3)")
    ap.add_argument("--dim", type=int, default=384, help="vector dimension (default 384)")
    args = ap.parse_args()
    quiet_logs()
    params = {"n": args.n, "batch": args.batch, "repeats": args.repeats, "dim": args.dim}
    started = time.perf_counter()
    results = bench(args.n, args.batch, args.repeats, args.dim)
    results["wall_s"] = time.perf_counter() - started
    print(f"\nfsync/batched throughput: {results['fsync_over_batched']:.3f}x; wall time {results['wall_s']:.1f}s")
    emit_result("durability", params, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
