"""What online labelling costs at ingest: raw-vector ingest with a served model vs without one.

Two VECTOR collections get the same vectors in the same batches through the in-process core
(``EmbclusterService.ingest``); one has a served model (every point is assigned, scored and
flagged before it is stored), the other none. Issue target: online scoring adds <= 10%.

    .venv/bin/python bench/bench_online_scoring.py [--n 50000] [--k 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_result, print_table, ratio  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--default-blas-threads", action="store_true",
                        help="keep numpy's BLAS threads at the library default (to see why serve caps them)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from embcluster.config import Settings
    from embcluster.pipeline import EmbclusterService
    from embcluster.schema import CollectionSpec, ItemInput, RunRequest

    from embcluster.runtime import limit_blas_threads

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="embcluster-online-")), log_level="WARNING")
    if not args.default_blas_threads:
        limit_blas_threads(settings.blas_threads)  # as `embcluster serve` does at start-up
    svc = EmbclusterService(settings)
    svc.open()
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4 * args.k, args.dim)).astype(np.float32)

    def data(n: int, seed: int) -> np.ndarray:
        r = np.random.default_rng(seed)
        return centers[r.integers(0, len(centers), n)] + 0.35 * r.normal(size=(n, args.dim)).astype(np.float32)

    # The labelled collection gets a model first (fitted on separate data).
    for name in ("plain", "scored"):
        svc.create_collection(CollectionSpec(name=name, input_kind="vector", vector_dim=args.dim))
    seed_data = data(20_000, 99)
    for s in range(0, len(seed_data), 1000):
        svc.ingest("scored", [ItemInput(vector=v) for v in seed_data[s:s + 1000]])
    svc.start_clustering("scored", RunRequest(k=args.k, seed=0))
    svc.runs.wait("scored")
    assert svc.get_collection("scored").served_model_version == 1

    x = data(args.n, 1)
    batches = [[ItemInput(id=f"r{r}-{s + i}", vector=v) for i, v in enumerate(x[s:s + args.batch])]
               for r in range(args.repeats) for s in range(0, args.n, args.batch)]
    per_repeat = len(batches) // args.repeats
    times: dict[str, list[float]] = {"plain": [], "scored": []}
    for r in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        for name in ("plain", "scored"):
            t0 = time.perf_counter()
            for batch in batches[r * per_repeat:(r + 1) * per_repeat]:
                results = svc.ingest(name, batch)
            times[name].append(time.perf_counter() - t0)
            assert (results[0].assignment is not None) == (name == "scored")
    plain, scored = float(np.median(times["plain"])), float(np.median(times["scored"]))
    model = svc.registry.get("scored").model  # the scoring step alone, on the same batches
    assert model is not None
    vecs = [np.stack([np.asarray(it.vector) for it in b]) for b in batches[:per_repeat]]
    t0 = time.perf_counter()
    for v in vecs:
        model.assign(v).payloads()
    scoring_only = time.perf_counter() - t0
    # The same model scored by the grouping alone (cblof): what the default ensemble's own fits cost.
    grouping_only = dataclasses.replace(model, scorer="cblof")
    t0 = time.perf_counter()
    for v in vecs:
        grouping_only.assign(v).payloads()
    scoring_cblof = time.perf_counter() - t0
    print_table(
        f"raw-vector ingest, {args.n:,} x {args.dim}-d per repeat, batch {args.batch}, k={args.k}, median of {args.repeats}",
        ["collection", "points/s", "seconds", "x plain"],
        [["no model (store only)", args.n / plain, plain, 1.0],
         ["served model (assign + score + flag online)", args.n / scored, scored, ratio(scored, plain)],
         [f"  of which assign + score + flag alone (scorer {model.scorer})", args.n / scoring_only, scoring_only,
          ratio(scoring_only, plain)],
         ["  the same with scorer cblof (grouping centroids only)", args.n / scoring_cblof, scoring_cblof,
          ratio(scoring_cblof, plain)]],
    )
    print(f"    the {model.scorer} scorer's assign + score is {ratio(scoring_only, scoring_cblof):.2f}x cblof's "
          f"({sum(c.k for c in model.components)} extra centroids beside k={model.k})")
    overhead = ratio(scored, plain) - 1.0
    print(f"    online labelling adds {overhead * 100:.1f}% (target <= 10%: {'met' if overhead <= 0.10 else 'NOT met'}); "
          f"the scoring itself is {ratio(scoring_only, plain) * 100:.1f}% of a plain ingest, the rest is the store "
          "writing and indexing the five payload fields")
    emit_result("online_scoring", {"n": args.n, "dim": args.dim, "k": args.k, "batch": args.batch,
                                   "repeats": args.repeats},
                {"plain_s": plain, "scored_s": scored, "overhead": overhead, "scoring_only_s": scoring_only,
                 "scoring_only_ratio": ratio(scoring_only, plain), "scorer": model.scorer,
                 "scoring_cblof_s": scoring_cblof, "scorer_vs_cblof": ratio(scoring_only, scoring_cblof)})
    svc.close()


if __name__ == "__main__":
    main()
