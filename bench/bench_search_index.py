"""Search with and without the HNSW index on Qdrant Edge (issue 17): latency, recall, build, write-back, re-cluster.

Synthetic ``--dim``-d unit vectors around ``--clusters`` planted centres (``cluster_id`` = the
centre, ``is_anomaly`` on 1% of the points), queries held out from the same distribution.
Recall@10 is against exact search on the same vectors (numpy); the same store answers with and
without the index, so latencies are ratios within one run.

Part 1, the store (``EdgeStore``, the collection's default index settings):

* ingest throughput (batches of 1,000), then Search p50/p99 and recall@10 before any index
  (exact scans): plain, in one cluster, anomalies only;
* the background build (child process on a copy; its figures: copy, optimize, swap) and the
  ingest throughput while it runs (``--during`` more points, journaled and replayed), compared
  with the same ingest without a build;
* Search p50/p99 and recall@10 with the index, the same three ways;
* write-back of the five reserved fields on every point (one ``set_fields`` page of 1,000 at a
  time, as a run does) unindexed vs indexed, search right after it (Edge moved every rewritten
  point out of the graph) and the rebuild it makes due.

Part 3 (``--writeback N``): the write-back alone on N points, an unindexed and an indexed shard
(indexed in-process), page by page interleaved so that a varying load hits both alike; a first
round (points leave the graph) and a second (they already have).

Part 2 (``--recluster``), the service: two VECTOR collections with the same points, one never
indexed (``min_points`` above its size) and one indexed; a steady-state re-cluster (the second
run) of each, with the index rebuilt in between as the service does; ratio indexed / not.

    .venv/bin/python bench/bench_search_index.py --n 100000
    .venv/bin/python bench/bench_search_index.py --n 200000 --recluster
    .venv/bin/python bench/bench_search_index.py --skip-store --writeback 50000
    .venv/bin/python bench/bench_search_index.py --n 1000000 --recluster   # the issue's target size

``--m``, ``--ef-construct``, ``--ef`` and ``--quantization`` set every collection's index (the
service's defaults otherwise); ``--ef-sweep 128,512`` repeats part 1's searches at each ``ef``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_result, print_table, quiet_logs, ratio, summarize_ms  # noqa: E402

if TYPE_CHECKING:
    from embcluster.store.base import VectorIndexSettings


def make_data(n: int, dim: int, clusters: int, seed: int, noise_seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors: a planted centre, a spread within a 48-d subspace, and a little full-rank noise.

    Sentence embeddings are like this (a low intrinsic dimension); isotropic 384-d noise is the
    worst case of every ANN index and resembles no embedding.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    basis = rng.normal(size=(48, dim)).astype(np.float32) / np.sqrt(48)
    rng = np.random.default_rng(seed if noise_seed is None else noise_seed)
    labels = rng.integers(0, clusters, n)
    x = (0.5 * centres[labels] + rng.normal(size=(n, 48)).astype(np.float32) @ basis
         + 0.15 * rng.normal(size=(n, dim)).astype(np.float32))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def uid(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def fields(i: int, label: int, version: int) -> dict[str, Any]:
    return {"cluster_id": int(label), "cluster_distance": 0.25, "anomaly_score": -0.5 + (i % 7) / 10,
            "is_anomaly": i % 100 == 0, "model_version": version}


def ingest(store: Any, x: np.ndarray, labels: np.ndarray, start: int) -> float:
    t0 = time.perf_counter()
    for s in range(0, len(x), 1000):
        e = min(len(x), s + 1000)
        store.upsert([uid(start + i) for i in range(s, e)], x[s:e],
                     [{"external_id": f"p{start + i}", **fields(start + i, labels[i], 1)} for i in range(s, e)])
    return len(x) / (time.perf_counter() - t0)


def write_back(store: Any, labels: np.ndarray, version: int) -> float:
    t0 = time.perf_counter()
    for s in range(0, len(labels), 1000):
        store.set_fields([(uid(i), fields(i, labels[i], version)) for i in range(s, min(len(labels), s + 1000))])
    return time.perf_counter() - t0


def exact_truth(x: np.ndarray, labels: np.ndarray, queries: np.ndarray,
                q_labels: np.ndarray) -> dict[str, list[set[str]]]:
    """The ids of each query's 10 exact nearest neighbours (numpy), per way of searching."""
    anomalies = np.array([i % 100 == 0 for i in range(len(x))])
    masks: dict[str, Callable[[int], np.ndarray | None]] = {
        "plain": lambda q: None, "in_cluster": lambda q: labels == q_labels[q], "anomalies": lambda q: anomalies}
    out: dict[str, list[set[str]]] = {way: [] for way in masks}
    for s in range(0, len(queries), 16):  # 16 queries x n scores at a time
        block = queries[s:s + 16] @ x.T
        for j, scores in enumerate(block):
            for way, mask_of in masks.items():
                mask = mask_of(s + j)
                ranked = np.where(mask, scores, -np.inf) if mask is not None else scores
                out[way].append({uid(int(i)) for i in np.argpartition(-ranked, 10)[:10]})
    return out


def search_figures(store: Any, truth: dict[str, list[set[str]]], queries: np.ndarray,
                   q_labels: np.ndarray) -> dict[str, Any]:
    from embcluster.store.base import FieldEquals, PointFilter

    filters: dict[str, Callable[[int], Any]] = {
        "plain": lambda q: None,
        "in_cluster": lambda q: PointFilter(must=(FieldEquals("cluster_id", int(q_labels[q])),)),
        "anomalies": lambda q: PointFilter(must=(FieldEquals("is_anomaly", True),)),
    }
    out: dict[str, Any] = {}
    for way, flt_of in filters.items():
        lat: list[float] = []
        found = wanted = 0
        for q in range(len(queries)):
            t0 = time.perf_counter()
            hits = store.search(queries[q], limit=10, flt=flt_of(q))
            lat.append(time.perf_counter() - t0)
            found += len(truth[way][q] & {p.id for p, _ in hits})
            wanted += len(truth[way][q])
        out[way] = {**summarize_ms(lat), "recall_at_10": found / wanted}
    return out


def wait_built(store: Any, what: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    while store.indexer.building:
        time.sleep(0.5)
        print(f"\r{what}: building {time.perf_counter() - t0:,.0f}s", end="", flush=True)
    print()
    return dict(store.indexer.last_build or {})


def knobs(args: argparse.Namespace, **changed: Any) -> "VectorIndexSettings":
    """The bench's VectorIndexSettings (``m``, ``ef_construct``, ``ef``, ``quantization`` from the flags)."""
    from embcluster.store.base import VectorIndexSettings

    values = {"m": args.m, "ef_construct": args.ef_construct, "ef": args.ef, "quantization": args.quantization}
    return VectorIndexSettings(**{**values, **changed})


def part_store(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from embcluster.store.edge_factory import EdgeStoreFactory

    indexed = {"cluster_id": "integer", "is_anomaly": "bool", "model_version": "integer", "external_id": "keyword",
               "_seq": "integer"}
    x, labels = make_data(args.n + args.during, args.dim, args.clusters, 0)
    qx, q_labels = make_data(args.queries, args.dim, args.clusters, 0, noise_seed=99)  # held out
    main, extra = x[:args.n], x[args.n:]
    index = knobs(args)
    factory = EdgeStoreFactory(root / "shards")
    store = factory.create("bench", dim=args.dim, metric="cosine", indexed=indexed,
                           index=knobs(args, min_points=1 << 40))
    res: dict[str, Any] = {"ingest_points_per_s": ingest(store, main, labels[:args.n], 0)}
    print(f"ingest {args.n:,}: {res['ingest_points_per_s']:,.0f} points/s")
    res["writeback_unindexed_s"] = write_back(store, labels[:args.n], 2)
    truth_main = exact_truth(main, labels[:args.n], qx, q_labels)
    res["search_exact"] = search_figures(store, truth_main, qx, q_labels)
    # Baseline for the ingest-while-building figure: the same ingest, no build running.
    probe = make_data(args.during, args.dim, args.clusters, 0, noise_seed=7)
    res["ingest_no_build_points_per_s"] = ingest(store, probe[0], probe[1], 10 * args.n)
    store.delete([uid(10 * args.n + i) for i in range(args.during)])
    store.close()
    store = factory.open("bench", index)  # the default threshold now: a build is due at once
    t0 = time.perf_counter()
    store.indexer.poke(force=True)
    res["ingest_while_building_points_per_s"] = ingest(store, extra, labels[args.n:], args.n)
    res["build"] = wait_built(store, "index")
    res["build"]["wall_s"] = time.perf_counter() - t0
    res["index_state"] = vars(store.index_state())
    truth = exact_truth(x, labels, qx, q_labels)
    res["search_indexed"] = search_figures(store, truth, qx, q_labels)
    if not args.skip_writeback:
        with store.pause_indexing():
            res["writeback_indexed_s"] = write_back(store, labels, 3)
            res["search_after_writeback"] = search_figures(store, truth, qx, q_labels)
        res["rebuild_after_writeback"] = wait_built(store, "rebuild")
        res["search_rebuilt"] = search_figures(store, truth, qx, q_labels)
    res["ef_sweep"] = {}
    warm = make_data(50, args.dim, args.clusters, 0, noise_seed=98)[0]
    for ef in args.ef_sweep:  # ef is read at search time only: reopening with another one rebuilds nothing
        store.close()
        store = factory.open("bench", knobs(args, ef=ef))
        for q in warm:  # other queries first: the figures are of a warm store, not of its reopening
            store.search(q, limit=10)
        res["ef_sweep"][ef] = {"unindexed": store.unindexed, **search_figures(store, truth, qx, q_labels)}
        print(f"ef {ef}: " + ", ".join(f"{w} p50/p99 {f['p50_ms']:.2f}/{f['p99_ms']:.1f} ms recall {f['recall_at_10']:.3f}"
                                       for w, f in res["ef_sweep"][ef].items() if w != "unindexed"), flush=True)
    store.close()
    return res


def part_recluster(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from embcluster.config import Settings
    from embcluster.pipeline import EmbclusterService
    from embcluster.runtime import limit_blas_threads
    from embcluster.schema import CollectionSpec, ItemInput, RunRequest

    limit_blas_threads(1)
    svc = EmbclusterService(Settings(data_dir=root / "svc", log_level="WARNING"))
    svc.open()
    x, _ = make_data(args.n, args.dim, args.clusters, 3)
    specs = {"no_index": knobs(args, min_points=1 << 40), "index": knobs(args)}
    out: dict[str, Any] = {}
    for name, index in specs.items():
        svc.create_collection(CollectionSpec(name=name, input_kind="vector", vector_dim=args.dim, vector_index=index))
        for s in range(0, args.n, 1000):
            svc.ingest(name, [ItemInput(id=f"p{s + i}", vector=v) for i, v in enumerate(x[s:s + 1000])])
        store = svc.registry.get(name).store
        runs = []
        for seed in (0, 1):
            wait_built(store, f"{name} before run {seed}")
            t0 = time.perf_counter()
            svc.start_clustering(name, RunRequest(k=args.k, seed=seed, n_init=1))
            svc.runs.wait(name)
            runs.append(time.perf_counter() - t0)
        out[name] = {"first_run_s": runs[0], "steady_run_s": runs[1],
                     "rebuild": wait_built(store, f"{name} after the runs")}
    out["ratio_steady"] = ratio(out["index"]["steady_run_s"], out["no_index"]["steady_run_s"])
    svc.close()
    return out


def part_writeback(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The write-back alone, unindexed vs indexed shard, page by page interleaved (robust to a varying load)."""
    from embcluster.store.edge_factory import EdgeStoreFactory

    n = args.writeback
    indexed = {"cluster_id": "integer", "is_anomaly": "bool", "model_version": "integer", "external_id": "keyword"}
    never = knobs(args, min_points=1 << 40)
    x, labels = make_data(n, args.dim, args.clusters, 0)
    factory = EdgeStoreFactory(root / "writeback")
    stores = {}
    for name in ("unindexed", "indexed"):
        store = factory.create(name, dim=args.dim, metric="cosine", indexed=indexed, index=never)
        ingest(store, x, labels, 0)
        stores[name] = store
    t0 = time.perf_counter()
    stores["indexed"].build_index_here()
    out: dict[str, Any] = {"n": n, "optimize_in_process_s": time.perf_counter() - t0}
    for rnd, version in (("first", 2), ("second", 3)):  # first: off the graph; second: already moved
        took = {"unindexed": 0.0, "indexed": 0.0}
        for page, s in enumerate(range(0, n, 1000)):
            updates = [(uid(i), fields(i, labels[i], version)) for i in range(s, min(n, s + 1000))]
            for name in (("unindexed", "indexed") if page % 2 == 0 else ("indexed", "unindexed")):
                t1 = time.perf_counter()
                stores[name].set_fields(updates)
                took[name] += time.perf_counter() - t1
        out[rnd] = {**took, "ratio": ratio(took["indexed"], took["unindexed"])}
    for store in stores.values():
        store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=8, help="planted clusters (in-cluster search filters one)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--during", type=int, default=20_000, help="points ingested while the index builds")
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construct", type=int, default=100)
    parser.add_argument("--ef", type=int, default=128)
    parser.add_argument("--k", type=int, default=20, help="k of the re-cluster runs")
    parser.add_argument("--recluster", action="store_true", help="also part 2 (re-cluster ratio, the service)")
    parser.add_argument("--skip-store", action="store_true", help="skip part 1")
    parser.add_argument("--skip-writeback", action="store_true",
                        help="part 1 without the indexed write-back, the searches after it and the rebuild")
    parser.add_argument("--ef-sweep", type=lambda v: [int(e) for e in v.split(",") if e], default=[],
                        help="part 1 ends with the searches again at each of these ef (comma-separated), "
                        "the store reopened with it")
    parser.add_argument("--writeback", type=int, default=0,
                        help="part 3: this many points, the write-back alone unindexed vs indexed, interleaved")
    parser.add_argument("--quantization", choices=["none", "int8"], default="none",
                        help="the collections' vector_index.quantization (int8: codes, rescored on float32)")
    args = parser.parse_args()
    quiet_logs()
    root = Path(tempfile.mkdtemp(prefix="embcluster-index-"))
    results: dict[str, Any] = {}
    try:
        if not args.skip_store:
            results["store"] = part_store(args, root)
            st = results["store"]
            rows = [[way, st[phase][way]["p50_ms"], st[phase][way]["p99_ms"], st[phase][way]["recall_at_10"]]
                    for phase in ("search_exact", "search_indexed", "search_after_writeback", "search_rebuilt")
                    if phase in st for way in ("plain", "in_cluster", "anomalies")]
            print_table(f"Search at {args.n:,} x {args.dim}-d (limit 10); phases: exact, indexed, after write-back, "
                        "rebuilt", ["way", "p50 ms", "p99 ms", "recall@10"], rows)
            print_table("Build and writes", ["figure", "value"], [
                ["ingest points/s (no build)", st["ingest_no_build_points_per_s"]],
                ["ingest points/s (while building)", st["ingest_while_building_points_per_s"]],
                ["build: copy s", st["build"].get("copy_s", float("nan"))],
                ["build: optimize s (child)", st["build"].get("optimize_s", float("nan"))],
                ["build: swap s (reads wait)", st["build"].get("swap_s", float("nan"))],
                ["build: total s", st["build"].get("total_s", float("nan"))],
                ["write-back 5 fields, unindexed s", st["writeback_unindexed_s"]],
                ["write-back 5 fields, indexed s", st.get("writeback_indexed_s", float("nan"))],
                ["write-back ratio indexed/unindexed",
                 ratio(st.get("writeback_indexed_s", float("nan")), st["writeback_unindexed_s"])],
                ["rebuild after write-back total s",
                 st.get("rebuild_after_writeback", {}).get("total_s", float("nan"))],
            ])
            if st["ef_sweep"]:
                print_table("Search at each ef (store reopened; phase order as given)",
                            ["ef", "way", "p50 ms", "p99 ms", "recall@10"],
                            [[ef, way, f[way]["p50_ms"], f[way]["p99_ms"], f[way]["recall_at_10"]]
                             for ef, f in st["ef_sweep"].items() for way in ("plain", "in_cluster", "anomalies")])
        if args.recluster:
            results["recluster"] = part_recluster(args, root)
            rc = results["recluster"]
            print_table("Re-cluster (service, steady-state run)", ["collection", "first s", "steady s"],
                        [[k, rc[k]["first_run_s"], rc[k]["steady_run_s"]] for k in ("no_index", "index")]
                        + [["ratio index/no_index", "", rc["ratio_steady"]]])
        if args.writeback:
            results["writeback"] = part_writeback(args, root)
            wb = results["writeback"]
            print_table(f"Write-back of the five fields, {args.writeback:,} points, pages interleaved",
                        ["round", "unindexed s", "indexed s", "ratio"],
                        [[r, wb[r]["unindexed"], wb[r]["indexed"], wb[r]["ratio"]] for r in ("first", "second")])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    emit_result("search_index", vars(args), results)


if __name__ == "__main__":
    main()
