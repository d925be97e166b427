"""Cluster life-cycle events (issue 16): does GROW/SHRINK stay quiet on re-fits of unchanged data, and what
does deriving the events cost?

1. **Threshold.** A TEXT collection of the shipped WordNet glosses (5,141, bundled all-MiniLM-L6-v2)
   is clustered at ``--k`` (seed 0), then re-clustered ``--refits`` times with other seeds and a fit
   sample smaller than the collection (``--sample``), so both the sample and the seed change while
   the data does not — what a schedule's re-runs see. Per re-fit: the largest change of a persisting
   cluster without a SPLIT or MERGE (the ones the rule looks at): its share's change (relative,
   ``max(after/before, before/after) - 1``, and absolute; full-pass sizes),
   how close the rule came to firing (``min(rel / GROW_RATIO, abs / GROW_MIN_DELTA)`` of the closest
   cluster: 1 fires) and the events reported. The threshold (``GROW_RATIO``, ``GROW_MIN_DELTA`` in
   ``embcluster.cluster.lifecycle``) must not fire here.
2. **Cost.** ``derive_events`` at ``--cost-k`` clusters (its inputs are per cluster, not per point:
   the cost is the same at 100k or 1M points), against the run's write-back of ``--cost-n`` points
   as baseline (``Labeller.write_back`` through ``ClusterModel.assign`` only, no store: a lower bound).

    .venv/bin/python bench/bench_lifecycle.py
    .venv/bin/python bench/bench_lifecycle.py --k 12 --refits 6
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_result, print_table, quiet_logs, ratio  # noqa: E402


def _threshold(args: argparse.Namespace) -> dict[str, object]:
    from embcluster.cluster.lifecycle import GROW, GROW_MIN_DELTA, GROW_RATIO, SHRINK, sizes_of
    from embcluster.config import Settings
    from embcluster.data import load_wordnet
    from embcluster.pipeline import EmbclusterService
    from embcluster.schema import CollectionSpec, ItemInput, RunRequest, RunState

    with tempfile.TemporaryDirectory(prefix="embcluster-bench-") as tmp:
        svc = EmbclusterService(Settings(data_dir=Path(tmp) / "data", log_level="WARNING", keep_model_versions=0))
        svc.open(background=False)
        try:
            svc.create_collection(CollectionSpec(name="glosses", input_kind="text"))
            glosses = [r["text"] for r in load_wordnet()]
            for start in range(0, len(glosses), 256):
                svc.ingest("glosses", [ItemInput(id=f"g{i}", text=glosses[i])
                                       for i in range(start, min(len(glosses), start + 256))])
            rows = []
            worst_rel, worst_abs, closest, fired = 0.0, 0.0, 0.0, 0
            prev = None
            for seed in range(args.refits + 1):
                run = svc.start_clustering("glosses", RunRequest(k=args.k, seed=seed, sample_size=args.sample))
                svc.runs.wait("glosses", timeout=3600)
                info = svc.get_run("glosses", run.run_id)
                if info.state is not RunState.SUCCEEDED:
                    raise SystemExit(f"run failed: {info.state} {info.error}")
                model = svc.get_model("glosses", 0)
                sizes = sizes_of(model.version, model.cluster_ids, [True] * len(model.cluster_ids), model.metrics)
                full = sizes.full or {}
                total = sum(full.values())
                kinds = sorted({e.kind for e in model.events})
                if prev is not None:
                    rel, ab, near = 0.0, 0.0, 0.0
                    # The rule looks only at persisting ids without a SPLIT or MERGE (those report the change).
                    moved = {i for e in model.events if e.kind in ("SPLIT", "MERGE") for i in (e.cluster_id, *e.related_ids)}
                    for cid in (set(prev) & set(full)) - moved:
                        b, a = prev[cid][0] / prev[cid][1], full[cid] / total
                        r = max(a / b, b / a) - 1 if a and b else 0.0  # the rule's relative change, both ways
                        rel, ab = max(rel, r), max(ab, abs(a - b))
                        near = max(near, min(r / GROW_RATIO, abs(a - b) / GROW_MIN_DELTA))  # >= 1 fires
                    worst_rel, worst_abs, closest = max(worst_rel, rel), max(worst_abs, ab), max(closest, near)
                    fired += sum(e.kind in (GROW, SHRINK) for e in model.events)
                    rows.append([seed, model.version, len(set(prev) & set(full)), f"{rel:.3f}", f"{ab:.4f}",
                                 f"{near:.2f}", ", ".join(kinds) or "-"])
                else:
                    rows.append([seed, model.version, 0, "-", "-", "-", f"{len(model.events)} x BIRTH"])
                prev = {cid: (n, total) for cid, n in full.items()}
            print_table(f"re-fits of unchanged data: WordNet glosses x MiniLM, k={args.k}, sample={args.sample}",
                        ["seed", "version", "persisting", "max rel share change", "max |share change|",
                         "closest to firing (1 fires)", "events"],
                        rows)
            print(f"threshold: GROW/SHRINK when rel > {GROW_RATIO} and abs > {GROW_MIN_DELTA}; "
                  f"fired {fired} time(s) on unchanged data")
            return {"max_rel_share_change": worst_rel, "max_abs_share_change": worst_abs, "closest_to_firing": closest,
                    "grow_shrink_fired": fired}
        finally:
            svc.close()


def _cost(args: argparse.Namespace) -> dict[str, object]:
    from embcluster.cluster.lifecycle import VersionSizes, derive_events
    from embcluster.cluster.matching import match_clusters

    rng = np.random.default_rng(0)
    k = args.cost_k
    old_rows = rng.integers(0, k, size=10_000)
    new_rows = np.where(rng.random(10_000) < 0.9, old_rows, rng.integers(0, k, size=10_000))
    ids, report, _ = match_clusters(new_rows, k, old_rows + 1, np.arange(1, k + 1), next_id=k + 1)
    before = VersionSizes(1, full={i + 1: int(s) for i, s in enumerate(rng.integers(500, 1500, size=k))})
    after = VersionSizes(2, full={int(c): int(s) for c, s in zip(ids, rng.integers(500, 1500, size=k))})
    n = 200
    t0 = time.perf_counter()
    for _ in range(n):
        derive_events(report, after, before)
    derive_s = (time.perf_counter() - t0) / n
    # Baseline: labelling --cost-n points with a k-cluster model (what the write-back does before writing).
    from embcluster.models import ClusterModel

    dim = 384
    model = ClusterModel(version=2, metric="cosine", centroids=rng.normal(size=(k, dim)).astype(np.float32),
                         cluster_ids=ids, populated=np.ones(k, bool), radius=np.ones(k), large=np.ones(k, bool),
                         scorer="distance", threshold_mode="contamination", thresholds=np.full(k, np.inf))
    x = rng.normal(size=(10_000, dim)).astype(np.float32)
    t0 = time.perf_counter()
    for _ in range(args.cost_n // len(x)):
        model.assign(x)
    assign_s = time.perf_counter() - t0
    print_table(f"derive_events at k={k} vs labelling {args.cost_n:,} points (assign only)",
                ["step", "seconds", "share of labelling"],
                [["derive_events", f"{derive_s:.6f}", f"{ratio(derive_s, assign_s):.5f}"],
                 ["assign (baseline)", f"{assign_s:.3f}", "1"]])
    return {"derive_s": derive_s, "assign_s": assign_s, "share": ratio(derive_s, assign_s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--refits", type=int, default=5)
    parser.add_argument("--sample", type=int, default=3000, help="fit sample (smaller than the 5,141 glosses)")
    parser.add_argument("--cost-k", type=int, default=100)
    parser.add_argument("--cost-n", type=int, default=100_000)
    parser.add_argument("--skip-threshold", action="store_true")
    args = parser.parse_args()
    quiet_logs()
    results = {"cost": _cost(args)}
    if not args.skip_threshold:
        results["threshold"] = _threshold(args)
    emit_result("lifecycle", vars(args), results)


if __name__ == "__main__":
    main()
