"""The same ingest + re-cluster workload on Qdrant Edge (embedded default) vs qdrant-client local mode.

qdrant-client's local mode is the pure-Python stand-in the Qdrant server backend is tested
against in CI (``store=qdrant`` with ``qdrant_path``); it is expected to be much slower than
Edge. This measures by how much, on small n, through the service core (no gRPC):

* ingest: ``EmbclusterService.ingest`` in batches of ``--batch`` vectors (embed = identity);
* run 1: the first clustering run (fit + write-back of the five fields onto every point);
* run 2: a second run (warm start, every point relabelled) — the steady state a schedule repeats.

Baseline: Edge, in the same process, same data and seed; ratios are local mode / Edge.

    .venv/bin/python bench/bench_store_backends.py               # n = 5000, 64-d, k = 16
    .venv/bin/python bench/bench_store_backends.py --n 2000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_result, print_table, quiet_logs, ratio  # noqa: E402


def _workload(store: str, root: Path, x: np.ndarray, *, k: int, batch: int) -> dict[str, float]:
    from embcluster.config import Settings
    from embcluster.pipeline import EmbclusterService
    from embcluster.schema import CollectionSpec, ItemInput, RunRequest, RunState

    extra: dict[str, Any] = {"store": store}
    if store == "qdrant":
        extra["qdrant_path"] = str(root / "qdrant")
    svc = EmbclusterService(Settings(data_dir=root / "data", log_level="WARNING", **extra))
    svc.open()
    try:
        svc.create_collection(CollectionSpec(name="b", input_kind="vector", metric="cosine", vector_dim=x.shape[1]))
        t0 = time.perf_counter()
        for s in range(0, len(x), batch):
            svc.ingest("b", [ItemInput(id=f"p{s + i}", vector=row) for i, row in enumerate(x[s:s + batch])])
        out = {"ingest_s": time.perf_counter() - t0}
        for label in ("run1_s", "run2_s"):
            t0 = time.perf_counter()
            info = svc.start_clustering("b", RunRequest(k=k, seed=0))
            svc.runs.wait("b", timeout=3600)
            out[label] = time.perf_counter() - t0
            done = svc.get_run("b", info.run_id)
            if done.state != RunState.SUCCEEDED:
                raise RuntimeError(f"{store}: run failed: {done.error}")
        out["points"] = float(svc.get_collection("b").point_count)
        return out
    finally:
        svc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    quiet_logs()

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(args.k, args.dim)) * 4
    x = (centers[np.arange(args.n) % args.k] + rng.normal(size=(args.n, args.dim))).astype(np.float32)

    results: dict[str, dict[str, float]] = {}
    for store in ("edge", "qdrant"):
        root = Path(tempfile.mkdtemp(prefix=f"embcluster-bench-{store}-"))
        try:
            results[store] = _workload(store, root, x, k=args.k, batch=args.batch)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    edge, local = results["edge"], results["qdrant"]
    assert edge["points"] == local["points"] == args.n
    rows = [
        (phase, edge[key], local[key], ratio(local[key], edge[key]), args.n / local[key])
        for phase, key in (("ingest", "ingest_s"), ("run 1 (fit + label all)", "run1_s"),
                           ("run 2 (relabel all)", "run2_s"))
    ]
    print_table(f"n={args.n}, dim={args.dim}, k={args.k}: Qdrant Edge vs qdrant-client local mode",
                ["phase", "edge s", "local-mode s", "local / edge", "local-mode points/s"], rows)
    emit_result("store_backends", vars(args), {
        "edge": edge, "qdrant_local": local,
        "ratio_local_over_edge": {key: ratio(local[key], edge[key]) for key in ("ingest_s", "run1_s", "run2_s")},
    })


if __name__ == "__main__":
    main()
