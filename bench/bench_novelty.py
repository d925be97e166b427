"""Novelty: from the first point of two new groups to a model that serves them as new clusters.

In-process core (``EmbclusterService``, the real scheduler thread ticking every ``--tick`` s), a
VECTOR collection (``--dim``-d, cosine): three groups (60% of ``--n``) are ingested and clustered
at k = 3 by hand; then the schedule ``drift_ks=0.3, anomaly_ratio=5, k=3, k_max=8`` is set and two
new groups (the other 40%, shuffled) are ingested in batches of 1,000.

Reported:

* **time to serve**: from the first new point's ingest call to the drift-triggered model being
  served and its catch-up done (the run's own timings included), vs. the **baseline** of the same
  process: the time the ingest alone took plus a manual ``StartClustering(k=5)`` of the final
  collection (what a user who knew there were five groups would have to run). The ratio is the
  cost of noticing by itself;
* the new model's k, how many old ids persisted, how many appeared, the run's ``trigger_detail``;
* **NMI** of the new points' cluster ids against their generating groups (1 = each new group is
  exactly one new cluster), and of all points;
* **control**: the same number of points drawn from the old groups into a second collection with
  the same schedule: runs fired within ``--control-ticks`` ticks (expected 0), its distance KS.

``--text`` runs the same on real texts instead (the bundled WordNet glosses, MiniLM embeddings):
three categories fitted, two others ingested (120 definitions each). Nothing is asserted.

    .venv/bin/python bench/bench_novelty.py [--n 10000] [--dim 64] [--tick 0.2] [--text]
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

OLD_CATEGORIES = ("verb.motion", "noun.plant", "noun.food")
NEW_CATEGORIES = ("noun.animal", "verb.communication")


def _labels(svc: Any, name: str) -> dict[str, int]:
    """Item id -> served cluster id of every point."""
    out: dict[str, int] = {}
    token = ""
    while True:
        page, token = svc.list_points(name, page_size=1000, page_token=token)
        out.update({p.external_id: p.assignment.cluster_id if p.assignment else -1 for p in page})
        if not token:
            return out


def _synthetic(n: int, dim: int, seed: int) -> tuple[list[Any], list[int], list[Any], list[int], list[Any]]:
    """(old items, their groups, new items, their groups, control items) as ItemInputs."""
    from embcluster.schema import ItemInput

    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(5, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)

    def draw(groups: list[int], m: int, prefix: str) -> tuple[list[Any], list[int]]:
        g = rng.choice(groups, size=m)
        x = centers[g] + rng.normal(scale=0.6 / np.sqrt(dim), size=(m, dim))  # cosine spread ~0.15
        return [ItemInput(id=f"{prefix}-{i}", vector=v.astype(np.float32)) for i, v in enumerate(x)], g.tolist()

    n_new = int(0.4 * n)
    old, old_g = draw([0, 1, 2], n - n_new, "old")
    new, new_g = draw([3, 4], n_new, "new")
    control, _ = draw([0, 1, 2], n_new, "ctl")
    return old, old_g, new, new_g, control


def _text() -> tuple[list[Any], list[int], list[Any], list[int], list[Any]]:
    from embcluster.data import load_wordnet
    from embcluster.schema import ItemInput

    by: dict[str, list[dict[str, str]]] = {}
    for r in load_wordnet():
        by.setdefault(r["category"], []).append(r)
    old = [(ItemInput(id=r["id"], text=r["text"]), g) for g, c in enumerate(OLD_CATEGORIES) for r in by[c]]
    new = [(ItemInput(id=r["id"], text=r["text"]), 3 + g) for g, c in enumerate(NEW_CATEGORIES) for r in by[c]]
    rng = np.random.default_rng(0)
    new = [new[i] for i in rng.permutation(len(new))]
    # control: the old categories' glosses again, as new items (other ids)
    control = [ItemInput(id=f"ctl-{i}", text=it.text) for i, (it, _) in enumerate(old[: len(new)])]
    return [o for o, _ in old], [g for _, g in old], [o for o, _ in new], [g for _, g in new], control


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="points in the end (60%% old groups, 40%% new)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--tick", type=float, default=0.2, help="the scheduler's tick (schedule_tick_s)")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--control-ticks", type=int, default=25)
    parser.add_argument("--text", action="store_true", help="WordNet glosses (3 categories fitted, 2 new)")
    args = parser.parse_args()
    quiet_logs()

    from sklearn.metrics import normalized_mutual_info_score as nmi

    from embcluster.config import Settings
    from embcluster.pipeline import EmbclusterService
    from embcluster.runtime import limit_blas_threads
    from embcluster.schema import CollectionSettings, CollectionSpec, RunRequest, RunState, Schedule

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="embcluster-novelty-")), log_level="WARNING",
                        schedule_tick_s=args.tick)
    limit_blas_threads(settings.blas_threads)
    svc = EmbclusterService(settings)
    svc.open()
    old, old_g, new, new_g, control = _text() if args.text else _synthetic(args.n, args.dim, 0)
    schedule = Schedule(drift_ks=0.3, anomaly_ratio=5.0, k=3, k_max=8)
    kind: dict[str, Any] = {"input_kind": "text"} if args.text else {"input_kind": "vector", "vector_dim": args.dim}

    def ingest(name: str, items: list[Any]) -> None:
        for s in range(0, len(items), args.batch):
            svc.ingest(name, items[s:s + args.batch])

    def fitted(name: str) -> None:
        svc.create_collection(CollectionSpec(name=name, **kind, settings=CollectionSettings(default_k=3)))
        ingest(name, old)
        svc.start_clustering(name, RunRequest(k=3, seed=0))
        svc.runs.wait(name, timeout=3600)
        svc.update_collection(name, CollectionSettings(schedule=schedule))

    fitted("novel")
    old_ids = sorted(svc.get_model("novel", 0).cluster_ids)
    t0 = time.perf_counter()
    ingest("novel", new)
    ingest_s = time.perf_counter() - t0
    served = 1
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        served = svc.get_collection("novel").served_model_version
        run = svc.runs.last("novel")
        if served >= 2 and svc.runs.active("novel") is None and run is not None and run.state.finished:
            break
        svc.autorun.wait_ticks(1)
    serve_s = time.perf_counter() - t0
    run = svc.runs.last("novel")
    model = svc.get_model("novel", 0)
    labels = _labels(svc, "novel")
    new_labels = [labels[it.id] for it in new]
    all_labels = [labels[it.id] for it in old] + new_labels
    found = {
        "served_version": model.version, "k": model.k, "runs": len(svc.list_models("novel")) - 1,
        "trigger": run.trigger if run else "", "trigger_detail": run.trigger_detail if run else "",
        "run_state": run.state.value if run else "",
        "old_ids_persisted": len(set(model.metrics.get("matching", {}).get("persisted", [])) & set(old_ids)),
        "appeared": len(model.metrics.get("matching", {}).get("appeared", [])),
        "nmi_new": float(nmi(new_g, new_labels)), "nmi_all": float(nmi(old_g + new_g, all_labels)),
        "novelty": model.metrics.get("novelty"),
    }

    # Baseline, same process: a manual re-cluster of the final collection at the right k.
    t1 = time.perf_counter()
    manual = svc.start_clustering("novel", RunRequest(k=5, seed=0))
    svc.runs.wait("novel", timeout=3600)
    manual_s = time.perf_counter() - t1
    manual_ok = svc.get_run("novel", manual.run_id).state is RunState.SUCCEEDED
    labels = _labels(svc, "novel")
    found["nmi_new_manual_k5"] = float(nmi(new_g, [labels[it.id] for it in new]))

    # Control: as many points from the old groups; nothing should fire.
    fitted("control")
    ingest("control", control)
    svc.autorun.wait_ticks(args.control_ticks)
    ctl = svc.drift("control", candidates=True)
    control_runs = svc.get_collection("control").served_model_version - 1
    svc.close()
    shutil.rmtree(settings.data_dir, ignore_errors=True)

    baseline = ingest_s + manual_s
    print_table(f"novelty: {len(old)} old points (3 groups), {len(new)} new (2 groups)"
                + (" — WordNet glosses" if args.text else f", {args.dim}-d"),
                ["path", "s", "ratio to baseline"],
                [["first new point -> drift model served", serve_s, ratio(serve_s, baseline)],
                 ["baseline: ingest alone + manual k=5 run", baseline, 1.0],
                 ["  ingest alone", ingest_s, ratio(ingest_s, baseline)],
                 ["  manual StartClustering(k=5)" + ("" if manual_ok else " (FAILED)"), manual_s,
                  ratio(manual_s, baseline)]])
    print_table("the drift-triggered model", ["figure", "value"],
                [[k, v] for k, v in found.items() if k != "novelty"])
    print_table("control: the same number of points from the old groups", ["figure", "value"],
                [["runs fired", control_runs], ["ticks waited", args.control_ticks],
                 ["distance KS", ctl.distance_ks], ["anomaly rate recent / fit",
                                                    f"{ctl.anomaly_rate_recent:.4f} / {ctl.anomaly_rate_fit:.4f}"],
                 ["candidates", len(ctl.candidates)]])
    emit_result("novelty", vars(args), {
        "serve_s": serve_s, "ingest_s": ingest_s, "manual_run_s": manual_s, "baseline_s": baseline,
        "serve_over_baseline": ratio(serve_s, baseline), **found,
        "control_runs": control_runs, "control_ks": ctl.distance_ks, "control_candidates": len(ctl.candidates),
    })


if __name__ == "__main__":
    main()
