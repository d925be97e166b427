"""Shutdown of a large collection: idle, and in the middle of a run's write-back; each step timed.

One in-process server (``EmbclusterService`` + ``GrpcServer``, ``DURABILITY=batched`` to ingest
quickly) gets ``--n`` random float32 ``--dim``-d vectors through the client into one VECTOR
collection, clusters them once (k=8: every point carries v1's fields), then starts a second
run and, once its write-back has reached ``--at`` of the run's progress, shuts down as
``embcluster serve`` does: ``GrpcServer.stop`` then ``EmbclusterService.close``. The service's
own INFO lines name each step; this script prints them with their times.

Baseline, in the same run: the same shutdown of a second, idle copy of the collection (reopened
from the same data directory, no run). Reported: seconds of each, and their ratio. What a
cancelled run leaves (its partial write-back) is durable and marked by ``model_version``; the
next start's catch-up puts those points back on the served version, so ``close`` does not
(before 2026-12-02 it reverted them at close, in the foreground). Figures are printed, never
asserted.

    .venv/bin/python bench/bench_shutdown.py [--n 300000] [--dim 64] [--at 0.85]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from _common import InProcessServer, emit_result, print_table, quiet_logs, ratio  # noqa: E402


class _Steps(logging.Handler):
    """The service's INFO lines during a shutdown, with seconds since it began."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.t0 = time.perf_counter()
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((time.perf_counter() - self.t0, record.getMessage()))


def _shutdown(srv: InProcessServer) -> tuple[float, list[tuple[float, str]]]:
    steps = _Steps()
    log = logging.getLogger("embcluster")
    log.addHandler(steps)
    log.setLevel(logging.INFO)
    try:
        steps.t0 = time.perf_counter()
        srv.client.close()
        srv.grpc.stop(grace=1)
        steps.lines.append((time.perf_counter() - steps.t0, "gRPC server stopped"))
        srv.service.close()
        return time.perf_counter() - steps.t0, steps.lines
    finally:
        log.removeHandler(steps)
        log.setLevel(logging.WARNING)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--at", type=float, default=0.85, help="run progress (0.35-0.9 is the write-back) to stop at")
    args = ap.parse_args()
    quiet_logs()
    srv = InProcessServer(durability="batched")
    c = srv.client
    c.create_collection("v", input_kind="vector", vector_dim=args.dim, distance="cosine")
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for i in range(0, args.n, 1000):
        vecs = rng.standard_normal((min(1000, args.n - i), args.dim)).astype(np.float32)
        c.ingest("v", [{"id": f"p{i + j}", "vector": v} for j, v in enumerate(vecs)])
    ingest_s = time.perf_counter() - t0
    c.cluster("v", k=8, seed=0)
    run = c.start_clustering("v", k=8, seed=1)
    while True:
        state = srv.service.get_run("v", run.run_id)
        if (state.phase == "assigning" and state.progress >= args.at) or state.state.value in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    at = (state.phase, round(state.progress, 2), state.points_labelled)
    busy_s, busy_lines = _shutdown(srv)

    idle = InProcessServer(data_dir=srv.data_dir, durability="batched")  # reopened: the catch-up runs first
    idle.service.wait_idle(timeout=3600)
    idle_s, idle_lines = _shutdown(idle)
    shutil.rmtree(srv.data_dir, ignore_errors=True)

    rows: list[list[Any]] = [[f"{t:.2f}", m] for t, m in busy_lines]
    print_table(f"shutdown during the write-back of run 2 at {at} ({args.n} x {args.dim})", ["s", "step"], rows)
    print_table("shutdown of the same collection, idle", ["s", "step"], [[f"{t:.2f}", m] for t, m in idle_lines])
    print(f"\ningest {ingest_s:.1f} s; shutdown mid write-back {busy_s:.2f} s vs idle {idle_s:.2f} s "
          f"({ratio(busy_s, idle_s):.2f}x)")
    emit_result("shutdown", vars(args), {"ingest_s": ingest_s, "busy_shutdown_s": busy_s, "idle_shutdown_s": idle_s,
                                         "busy_over_idle": ratio(busy_s, idle_s), "stopped_at": list(at)})


if __name__ == "__main__":
    main()
