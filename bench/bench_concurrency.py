"""Ingest under concurrency, and Classify beside a bulk ingest, as ratios against same-process baselines.

All through an in-process server on 127.0.0.1 (client and server share this process), the
embedding queue of ``embed/batching.py`` in front of the bundled all-MiniLM-L6-v2:

(a) ``--calls`` single-text ``Ingest`` calls (WordNet definitions, each with an id) made from
    ``--threads`` threads at once vs. the same calls one after another (texts/s; ratio).
    Target: >= 4x.
(b) bulk text ingest (``--m`` texts, batches of ``--batch``) vs. the service's own embedder
    embedding the same texts in the same batches (``bench_ingest.py`` (b)). Target: >= 0.95x.
(c) one-vector ``Classify`` (VECTOR collection, no embedding) and one-text ``Classify`` (TEXT
    collection): p50/p99 idle vs. while another thread bulk-ingests texts without a pause
    (ratio of p99). Target for the vector Classify: <= 3x.
(d) re-ingest of ``--m`` unchanged texts (same ids, same texts) vs. their first ingest (ratio
    of the times: re-ingest reuses the stored vectors and embeds nothing).

``--torch-threads N`` sets ``torch.set_num_threads(N)`` before anything runs (default: torch's
own choice, one per core). Figures are printed, never asserted.

    .venv/bin/python bench/bench_concurrency.py [--threads 32] [--calls 192] [--m 1000] [--batch 500]
        [--r 200] [--skip a,b,c,d] [--torch-threads N] [--batch-wait-ms MS] [--grpc-workers N]
        [--durability fsync|batched]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402


from _common import InProcessServer, emit_result, print_table, quiet_logs, ratio, summarize_ms  # noqa: E402
from bench_classify import setup_text, setup_vector  # noqa: E402
from bench_ingest import bench_text  # noqa: E402


def _wordnet(n: int, offset: int = 0) -> list[dict[str, Any]]:
    from embcluster.data import load_wordnet

    rows = load_wordnet(limit=offset + n)[offset:]
    return [{"id": r["id"], "text": r["text"]} for r in rows]


# ---------------------------------------------------------------- (a) concurrent single-text calls


def bench_concurrent(srv: InProcessServer, threads: int, calls: int) -> dict[str, Any]:
    client = srv.client
    items = _wordnet(calls)
    counter = iter(range(1_000_000))

    def fresh() -> str:
        name = f"conc{next(counter)}"
        client.create_collection(name, input_kind="text")
        return name

    cpu: dict[str, float] = {"sequential": 0.0, "concurrent": 0.0, "one_call": 0.0}

    def one_call() -> float:  # every text in one Ingest: what perfect batching of the same texts costs
        name = fresh()
        t0, c0 = time.perf_counter(), time.process_time()
        client.ingest(name, items)
        elapsed = time.perf_counter() - t0
        cpu["one_call"] += time.process_time() - c0
        client.delete_collection(name)
        return elapsed

    def sequential() -> float:
        name = fresh()
        t0, c0 = time.perf_counter(), time.process_time()
        for it in items:
            client.ingest(name, [it])
        elapsed = time.perf_counter() - t0
        cpu["sequential"] += time.process_time() - c0
        client.delete_collection(name)
        return elapsed

    def concurrent() -> float:
        name = fresh()
        parts = [items[i::threads] for i in range(threads)]
        start = threading.Barrier(threads + 1)

        def work(part: list[dict[str, Any]]) -> None:
            start.wait()
            for it in part:
                client.ingest(name, [it])

        pool = [threading.Thread(target=work, args=(p,)) for p in parts]
        for t in pool:
            t.start()
        start.wait()
        t0, c0 = time.perf_counter(), time.process_time()
        for t in pool:
            t.join()
        elapsed = time.perf_counter() - t0
        cpu["concurrent"] += time.process_time() - c0
        client.delete_collection(name)
        return elapsed

    client.create_collection("warm", input_kind="text")
    for it in items[:16]:
        client.ingest("warm", [it])
    client.delete_collection("warm")
    def batches() -> int:
        return sum(b.batches for b in srv.service.kinds.batchers.batchers())

    seq = sequential()
    before = batches()
    conc = concurrent()
    per_batch = calls / max(1, batches() - before)
    one = one_call()
    one2 = one_call()
    conc2 = concurrent()  # the other order too: background load hits both alike
    seq2 = sequential()
    s, c, o = (seq + seq2) / 2, (conc + conc2) / 2, (one + one2) / 2
    rate = {"sequential": calls / s, "concurrent": calls / c, "one_call": calls / o}
    r = ratio(rate["concurrent"], rate["sequential"])
    print_table(f"(a) {calls} single-text Ingest calls: {threads} threads at once vs one after another "
                "(mean of 2 runs each); the same texts in one call for reference",
                ["path", "texts/s", "seconds", "x sequential"],
                [["sequential", rate["sequential"], s, 1.0], [f"{threads} threads", rate["concurrent"], c, r],
                 ["all in one call", rate["one_call"], o, ratio(rate["one_call"], rate["sequential"])]])
    print(f"    concurrent/sequential = {r:.2f}x (target >= 4x); {per_batch:.1f} texts per embedding batch "
          "in the concurrent run")
    # Process CPU (server, client and torch threads alike): if the concurrent run keeps every core
    # busy, its rate cannot rise above cores / CPU per text, whatever the batching.
    cores = os.cpu_count() or 1
    cpu_ms = {k: 1000 * v / (2 * calls) for k, v in cpu.items()}
    busy = {"sequential": cpu["sequential"] / (seq + seq2) / cores, "concurrent": cpu["concurrent"] / (conc + conc2) / cores,
            "one_call": cpu["one_call"] / (one + one2) / cores}
    print(f"    CPU per text: sequential {cpu_ms['sequential']:.1f} ms, concurrent {cpu_ms['concurrent']:.1f} ms, "
          f"one call {cpu_ms['one_call']:.1f} ms; cores busy: sequential {100 * busy['sequential']:.0f}%, "
          f"concurrent {100 * busy['concurrent']:.0f}%, one call {100 * busy['one_call']:.0f}% of {cores}")
    return {"texts_per_s": rate, "seconds": {"sequential": [seq, seq2], "concurrent": [conc, conc2]},
            "ratio_concurrent_over_sequential": r, "texts_per_embedding_batch": per_batch,
            "cpu_ms_per_text": cpu_ms, "cores_busy": busy,
            "ratio_one_call_over_sequential": ratio(rate["one_call"], rate["sequential"])}


# ---------------------------------------------------------------- (c) Classify beside a bulk ingest


class BulkIngest(threading.Thread):
    """Bulk-ingests WordNet texts into a scratch TEXT collection in a loop until stopped."""

    def __init__(self, srv: InProcessServer, m: int, batch: int) -> None:
        super().__init__(daemon=True)
        self.client = srv.client
        self.items = _wordnet(m, offset=5000)
        self.batch = batch
        self.stop_flag = threading.Event()
        self.texts = 0
        self.client.create_collection("bulk", input_kind="text")
        self.started_ingest = threading.Event()

    def run(self) -> None:
        round_ = 0
        while not self.stop_flag.is_set():
            for start in range(0, len(self.items), self.batch):
                if self.stop_flag.is_set():
                    return
                chunk = [{"id": f"{it['id']}#{round_}", "text": it["text"]}  # new ids: always embedded
                         for it in self.items[start:start + self.batch]]
                self.started_ingest.set()
                self.client.ingest("bulk", chunk)
                self.texts += len(chunk)
            round_ += 1

    def stop(self) -> None:
        self.stop_flag.set()
        self.join()


def _latencies(fn: Callable[[], Any], r: int, pause_s: float) -> list[float]:
    out = []
    for _ in range(r):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        time.sleep(pause_s)  # a caller's pace, not a tight loop: the bulk ingest gets the rest of the time
    return out


def bench_classify_under_load(srv: InProcessServer, r: int, m: int, batch: int) -> dict[str, Any]:
    client = srv.client
    vec_name, vec_query = setup_vector(srv, 5000, 16, 500)
    txt_name, txt_query = setup_text(srv, 1000, 12, 200)
    calls = {"vector": lambda: client.classify(vec_name, [vec_query]),
             "text": lambda: client.classify(txt_name, [txt_query])}
    for fn in calls.values():
        for _ in range(20):
            fn()
    idle = {k: _latencies(fn, r, 0.005) for k, fn in calls.items()}
    bulk = BulkIngest(srv, m, batch)
    bulk.start()
    bulk.started_ingest.wait()
    time.sleep(0.5)
    t0 = time.perf_counter()
    loaded = {k: _latencies(fn, r, 0.005) for k, fn in calls.items()}
    elapsed = time.perf_counter() - t0
    bulk.stop()
    stats: dict[str, Any] = {}
    rows = []
    for k in calls:
        a, b = summarize_ms(idle[k]), summarize_ms(loaded[k])
        stats[k] = {"idle": a, "under_bulk_ingest": b, "ratio_p50": ratio(b["p50_ms"], a["p50_ms"]),
                    "ratio_p99": ratio(b["p99_ms"], a["p99_ms"])}
        rows.append([f"{k} idle", a["p50_ms"], a["p99_ms"], 1.0])
        rows.append([f"{k} under bulk ingest", b["p50_ms"], b["p99_ms"], stats[k]["ratio_p99"]])
    stats["bulk_texts_per_s_during"] = bulk.texts / max(elapsed, 1e-9)
    print_table(f"(c) one-item Classify, {r} calls each, idle vs beside a bulk text ingest (batches of {batch}; "
                f"{stats['bulk_texts_per_s_during']:.0f} texts/s meanwhile)",
                ["path", "p50 ms", "p99 ms", "p99 x idle"], rows)
    print(f"    vector Classify p99 under load / idle = {stats['vector']['ratio_p99']:.2f}x (target <= 3x); "
          f"text {stats['text']['ratio_p99']:.2f}x")
    return stats


# ---------------------------------------------------------------- (d) unchanged re-ingest


def bench_reingest(srv: InProcessServer, m: int, batch: int) -> dict[str, Any]:
    client = srv.client
    items = _wordnet(m, offset=2000)
    client.create_collection("again", input_kind="text")
    t0 = time.perf_counter()
    client.ingest_many("again", items, batch_size=batch)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = client.ingest_many("again", items, batch_size=batch)
    second = time.perf_counter() - t0
    reused = sum(r.embedding_reused for r in results)
    r = ratio(first, second)
    print_table(f"(d) {m} texts ingested, then the same items again (batches of {batch})",
                ["path", "texts/s", "seconds", "x first"],
                [["first ingest", m / first, first, 1.0], ["unchanged re-ingest", m / second, second, r]])
    print(f"    re-ingest {r:.1f}x faster; {reused} of {m} items reused their stored vector")
    return {"seconds_first": first, "seconds_reingest": second, "speedup": r, "reused": reused}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--calls", type=int, default=192, help="single-text Ingest calls in (a) (default 192)")
    ap.add_argument("--m", type=int, default=1000, help="texts of the bulk ingests of (b), (c), (d)")
    ap.add_argument("--batch", type=int, default=500, help="items per bulk Ingest call")
    ap.add_argument("--r", type=int, default=200, help="timed Classify calls per path and phase in (c)")
    ap.add_argument("--text-repeats", type=int, default=3, help="timed runs of each path of (b)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: a,b,c,d")
    ap.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--batch-wait-ms", type=float, default=None, help="EMBED_BATCH_WAIT_MS (default: the setting's)")
    ap.add_argument("--grpc-workers", type=int, default=None, help="GRPC_WORKERS (default: the setting's)")
    ap.add_argument("--durability", choices=["fsync", "batched"], default=None,
                    help="DURABILITY (default: the setting's, fsync; with it every single-text Ingest waits for "
                         "its own fsync under the collection lock)")
    args = ap.parse_args()
    quiet_logs()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    overrides: dict[str, Any] = {}
    if args.batch_wait_ms is not None:
        overrides["embed_batch_wait_ms"] = args.batch_wait_ms
    if args.grpc_workers is not None:
        overrides["grpc_workers"] = args.grpc_workers
    if args.durability is not None:
        overrides["durability"] = args.durability
    params = {k: v for k, v in vars(args).items()}
    results: dict[str, Any] = {}
    started = time.perf_counter()
    with InProcessServer(**overrides) as srv:
        srv.text_embedder()  # load the model before anything is timed
        if "a" not in skip:
            results["concurrent"] = bench_concurrent(srv, args.threads, args.calls)
        if "b" not in skip:
            results["bulk_vs_encode"] = bench_text(srv, args.m, args.batch, args.text_repeats)
        if "c" not in skip:
            results["classify_under_load"] = bench_classify_under_load(srv, args.r, args.m, args.batch)
        if "d" not in skip:
            results["reingest"] = bench_reingest(srv, args.m, args.batch)
    results["wall_s"] = time.perf_counter() - started
    print(f"\nwall time {results['wall_s']:.1f}s")
    emit_result("concurrency", params, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
