"""How long a thread waits for the GIL beside store writes, and which calls hold it.

A query shares the process with every write: while a thread holds Python's GIL inside one C or
Rust call, every other thread (gRPC handlers, the client, a Classify) waits for that call to end,
whatever its priority. A probe thread sleeps 0.2 ms in a loop and records how late it wakes up:
its lateness is the wait for the GIL (plus the OS's wake-up latency, ~0.1 ms).

(a) The calls of a bulk write, alone, on a Qdrant Edge shard configured like the service's
    (cosine, the service's payload indexes, the same payload shape): ``EdgeShard.update`` of one
    upsert of ``--batch`` points, ``EdgeShard.flush`` after it, and numpy's ``tolist`` of the
    batch's vectors; ``time.sleep(0.01)`` as the control, a call that releases the GIL. For each:
    its median duration and the probe's median longest wait during a call. A wait close to the
    duration: the call holds the GIL throughout; close to 0: it lets other threads run.
(b) The service: the probe's lateness while the in-process server bulk-ingests ``--n`` random
    384-d vectors in batches of ``--batch`` through gRPC (the durability default), and idle:
    p50 / p99 / p99.9 / max and how many waits exceeded 3 ms.

Figures are printed, never asserted.

    .venv/bin/python bench/bench_gil.py [--batch 500] [--calls 20] [--n 20000]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

from _common import InProcessServer, emit_result, print_table, quiet_logs  # noqa: E402
from bench_ingest import DIM, _direct_shard, _vector_items  # noqa: E402

PROBE_SLEEP_S = 0.0002


class Probe(threading.Thread):
    """Sleeps ``PROBE_SLEEP_S`` in a loop; records (start, lateness in s) of every wake-up."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            t0 = time.perf_counter()
            time.sleep(PROBE_SLEEP_S)
            self.samples.append((t0, time.perf_counter() - t0 - PROBE_SLEEP_S))

    def stop(self) -> list[tuple[float, float]]:
        self.stop_flag.set()
        self.join()
        return self.samples


def _longest_wait(samples: list[tuple[float, float]], start: float, end: float) -> float:
    """The probe's longest lateness among the sleeps that overlapped [start, end]."""
    waits = [late for t0, late in samples if t0 < end and t0 + PROBE_SLEEP_S + late > start]
    return max(waits, default=0.0)


def bench_calls(batch: int, calls: int) -> dict[str, Any]:
    """(a): each call's duration and the probe's longest wait during it."""
    import qdrant_edge as qe

    rng = np.random.default_rng(0)
    root = Path(tempfile.mkdtemp(prefix="embcluster-bench-gil-"))
    shard = _direct_shard(root / "shard")
    intervals: dict[str, list[tuple[float, float]]] = {"EdgeShard.update": [], "EdgeShard.flush": [],
                                                       "ndarray.tolist": [], "time.sleep(0.01) (control)": []}

    def timed(label: str, fn: Callable[[], Any]) -> None:
        t0 = time.perf_counter()
        fn()
        intervals[label].append((t0, time.perf_counter()))
        time.sleep(0.003)  # the probe wakes between calls

    probe = Probe()
    probe.start()
    time.sleep(0.05)
    for c in range(calls):
        vectors = rng.standard_normal((batch, DIM), dtype=np.float32)
        timed("ndarray.tolist", vectors.tolist)
        points = [qe.Point(id=uuid.uuid4(), vector=row,
                           payload={"external_id": f"v{c}-{j}", "meta": {"i": j}, "ingest_seq": c * batch + j})
                  for j, row in enumerate(vectors.tolist())]
        op = qe.UpdateOperation.upsert_points(points)
        timed("EdgeShard.update", lambda: shard.update(op))
        timed("EdgeShard.flush", shard.flush)
        timed("time.sleep(0.01) (control)", lambda: time.sleep(0.01))  # releases the GIL: the probe runs on
    samples = probe.stop()
    shard.close()
    shutil.rmtree(root, ignore_errors=True)
    out: dict[str, Any] = {}
    rows = []
    for label, spans in intervals.items():
        durations = [(end - start) * 1000 for start, end in spans]
        waits = [_longest_wait(samples, start, end) * 1000 for start, end in spans]
        d, w = statistics.median(durations), statistics.median(waits)
        out[label] = {"duration_ms_median": d, "longest_wait_ms_median": w, "calls": len(spans)}
        rows.append([label, d, w, w / d if d > 0 else 0.0])
    print_table(f"(a) one call of a bulk write ({batch} points), {calls} calls each, medians",
                ["call", "duration ms", "probe's longest wait ms", "wait / duration"], rows)
    return out


def _lateness_stats(samples: list[tuple[float, float]]) -> dict[str, float]:
    late = np.array([s[1] for s in samples]) * 1000
    return {"wakeups": int(len(late)), "p50_ms": float(np.percentile(late, 50)),
            "p99_ms": float(np.percentile(late, 99)), "p999_ms": float(np.percentile(late, 99.9)),
            "max_ms": float(late.max()), "over_3ms": int((late > 3).sum())}


def bench_service(n: int, batch: int) -> dict[str, Any]:
    """(b): the probe's lateness idle and during a raw-vector bulk ingest through gRPC."""
    vectors = np.random.default_rng(1).standard_normal((n, DIM), dtype=np.float32)
    with InProcessServer() as srv:
        srv.client.create_collection("gil", input_kind="vector", vector_dim=DIM, distance="cosine")
        srv.client.ingest_many("gil", _vector_items(vectors[:batch], offset=n), batch_size=batch)  # warm-up
        probe = Probe()
        probe.start()
        time.sleep(1.0)
        idle = probe.stop()
        probe = Probe()
        probe.start()
        t0 = time.perf_counter()
        srv.client.ingest_many("gil", _vector_items(vectors), batch_size=batch)
        elapsed = time.perf_counter() - t0
        during = probe.stop()
    idle_stats, during_stats = _lateness_stats(idle), _lateness_stats(during)
    rows = [[phase, s["wakeups"], s["p50_ms"], s["p99_ms"], s["p999_ms"], s["max_ms"], s["over_3ms"]]
            for phase, s in (("idle (1 s)", idle_stats), (f"bulk ingest ({elapsed:.1f} s)", during_stats))]
    print_table(f"(b) probe lateness in the server's process: {n} vectors ingested in batches of {batch} via gRPC",
                ["phase", "wake-ups", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "> 3 ms"], rows)
    return {"idle": idle_stats, "bulk_ingest": during_stats, "ingest_s": elapsed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=500, help="points per write")
    ap.add_argument("--calls", type=int, default=20, help="calls of each kind in (a)")
    ap.add_argument("--n", type=int, default=20000, help="vectors ingested in (b)")
    args = ap.parse_args()
    quiet_logs()
    results = {"calls": bench_calls(args.batch, args.calls), "service": bench_service(args.n, args.batch)}
    emit_result("gil", vars(args), results)


if __name__ == "__main__":
    main()
