"""Cluster summaries (embcluster.insight) vs the k-means fit they follow, same 100k points, same process.

Issue 14's target: computing the summaries costs at most 10% of a re-cluster's time at 100k
points. Baseline: ``fit_kmeans`` on the same ``--n`` x ``--dim`` unit vectors (the service's
default backend and restarts, cosine), the fit a run performs. Then, from that fit's labels
and distances:

* **text**: ``summarize("text", ...)`` over ``--n`` short texts, WordNet glosses (the shipped
  extract) drawn so that each cluster's texts come from its own lexical category (cluster
  ``c`` -> category ``c mod 45``), like a real clustering of glosses; keywords sample at most
  ``max_texts_per_cluster`` texts per cluster (default 1,000). Also timed with every text read
  (no sampling), to show what the sample saves, and ``cluster_keywords`` alone on every text;
* **event**: ``summarize("event", ...)`` over ``--n`` Lending Club events (the shipped 2,000,
  drawn with replacement by category of cluster as above, 17 numeric and categorical fields),
  at most ``max_events_per_cluster`` rows per cluster (default 1,000);
* **vector**: ``summarize("vector", ...)``: representatives only.

The text inputs are built before timing (in the service they are the sample points' stored
``source`` payloads, a store read that is not timed here). BLAS runs on one thread, as in the
server (``BLAS_THREADS=1``); FAISS uses its own OpenMP threads. Each step is reported in wall
seconds and in process CPU seconds (all threads): on a machine shared with other work the wall
time of the multi-threaded fit stretches more than the single-threaded summaries', so both
ratios are printed.

    .venv/bin/python bench/bench_insight.py                 # 100,000 x 384, k = 50
    .venv/bin/python bench/bench_insight.py --n 20000 --k 20
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_result, print_table, quiet_logs, ratio  # noqa: E402
from bench_kmeans import make_data  # noqa: E402


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``, its wall seconds and its process CPU seconds."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    quiet_logs()

    from embcluster.cluster.assign import pairwise_distance
    from embcluster.cluster.kmeans import default_n_init, fit_kmeans
    from embcluster.data import load_lending_club_events, load_wordnet
    from embcluster.insight.keywords import KeywordConfig, cluster_keywords
    from embcluster.insight.summary import SummaryConfig, SummaryInput, summarize
    from embcluster.runtime import limit_blas_threads

    limit_blas_threads(1)
    rng = np.random.default_rng(args.seed)
    x = make_data(args.n, args.dim, 4 * args.k, args.seed)
    n_init = default_n_init(args.n, args.k)
    fit, fit_s, fit_cpu = timed(lambda: fit_kmeans(x, args.k, metric="cosine", seed=args.seed, n_init=n_init))
    labels = fit.labels
    dist = np.maximum(pairwise_distance(x, fit.centroids, "cosine")[np.arange(args.n), labels], 0.0)
    flags = dist > np.quantile(dist, 0.99)
    ids = [f"pt-{i}" for i in range(args.n)]

    rows = load_wordnet()
    cats = sorted({r["category"] for r in rows})
    by_cat = {c: [r["text"] for r in rows if r["category"] == c] for c in cats}
    texts = [by_cat[cats[c % len(cats)]][rng.integers(len(by_cat[cats[c % len(cats)]]))] for c in labels.tolist()]
    loans = load_lending_club_events()
    grades = sorted({r["event"]["sub_grade"] for r in loans})
    by_grade = {g: [r for r in loans if r["event"]["sub_grade"] == g] for g in grades}
    sources = []
    for c in labels.tolist():
        pool = by_grade[grades[c % len(grades)]]
        sources.append({"event": pool[rng.integers(len(pool))]["event"]})
    fields = {k: ("numeric" if isinstance(v, (int, float)) else "categorical") for k, v in loans[0]["event"].items()}

    base = SummaryInput(ids=ids, cluster_ids=labels, distances=dist, is_anomaly=flags)
    runs = {
        "text": lambda cfg: summarize("text", replace(base, texts=texts), config=cfg),
        "event": lambda cfg: summarize("event", replace(base, sources=sources, event_fields=fields), config=cfg),
        "vector": lambda cfg: summarize("vector", base, config=cfg),
    }
    default = SummaryConfig()
    unsampled = SummaryConfig(keywords=KeywordConfig(max_texts_per_cluster=args.n))
    timings: dict[str, tuple[float, float]] = {}
    out: dict[str, Any] = {}
    for name, cfg in (("text", default), ("text_all_texts", unsampled), ("event", default), ("vector", default)):
        out[name], wall, cpu = timed(lambda: runs[name.split("_")[0]](cfg))
        timings[name] = (wall, cpu)
    _, wall, cpu = timed(lambda: cluster_keywords(texts, labels, config=unsampled.keywords))
    timings["keywords_only_all_texts"] = (wall, cpu)  # c-TF-IDF over every text, nothing else

    table = [["k-means fit (baseline)", fit_s, fit_cpu, 1.0, 1.0, ""]]
    for name, (wall, cpu) in timings.items():
        target = "met" if ratio(wall, fit_s) <= 0.10 and ratio(cpu, fit_cpu) <= 0.10 else "NOT met"
        table.append([f"summarize {name}", wall, cpu, ratio(wall, fit_s), ratio(cpu, fit_cpu),
                      "(reference)" if name.endswith("all_texts") else target])
    print_table(f"{args.n:,} points x {args.dim}, k = {args.k} (fit n_init = {n_init}, backend {fit.backend})",
                ["step", "wall s", "cpu s", "x fit (wall)", "x fit (cpu)", "target <= 10%"], table)
    for s in out["text"].clusters[:3]:
        print(f"  text cluster {s.cluster_id}: {s.label!r} ({s.size} points)")
    for s in out["event"].clusters[:3]:
        print(f"  event cluster {s.cluster_id}: {s.label!r}")
    results: dict[str, Any] = {"fit_s": fit_s, "fit_cpu_s": fit_cpu, "n_init": n_init}
    for name, (wall, cpu) in timings.items():
        results.update({f"{name}_s": wall, f"{name}_cpu_s": cpu, f"{name}_share_of_fit": ratio(wall, fit_s),
                        f"{name}_cpu_share_of_fit": ratio(cpu, fit_cpu)})
    emit_result("insight", vars(args), results)


if __name__ == "__main__":
    main()
