"""What drift costs: recording recent labels at ingest, and computing a drift report.

In-process core (``EmbclusterService``), one VECTOR collection (384-d, cosine) with a served
model of ``--k`` clusters fitted on ``--fit`` points; nothing is asserted.

(a) **Online overhead at ingest.** Every labelled ingest batch is recorded into the recent
    window (:class:`embcluster.drift.RecentWindow`). Timed, on the same batches: one whole
    ``service.ingest`` call (validate, assign + score, append to the vector log, upsert into
    Qdrant Edge, record) vs. the recording alone (``RecentWindow.add`` of that batch's labels,
    on a window of the service's size). Reported: the recording's share of an ingest call.
(b) **A drift report vs. a classify call.** ``service.drift(name)`` on a full window (the
    service's ``drift_window`` recent points, the version comparison cached as the service does)
    vs. ``service.classify`` of one vector, interleaved call by call.

    .venv/bin/python bench/bench_drift.py [--k 64] [--fit 20000] [--batch 500] [--batches 20] [--r 200]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_result, print_table, quiet_logs, ratio, summarize_ms  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--fit", type=int, default=20_000, help="points the model is fitted on")
    parser.add_argument("--batch", type=int, default=500, help="items per ingest call")
    parser.add_argument("--batches", type=int, default=20, help="timed ingest calls")
    parser.add_argument("--r", type=int, default=200, help="timed drift / classify calls each")
    args = parser.parse_args()
    quiet_logs()

    from embcluster.config import Settings
    from embcluster.drift import RecentWindow
    from embcluster.pipeline import EmbclusterService
    from embcluster.runtime import limit_blas_threads
    from embcluster.schema import CollectionSpec, ItemInput, RunRequest

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="embcluster-drift-")), log_level="WARNING",
                        schedule_tick_s=3600)
    limit_blas_threads(settings.blas_threads)  # as `embcluster serve` does
    svc = EmbclusterService(settings)
    svc.open()
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(2 * args.k, args.dim)).astype(np.float32)

    def data(n: int, seed: int) -> np.ndarray:
        r = np.random.default_rng(seed)
        return centers[r.integers(0, len(centers), n)] + 0.35 * r.normal(size=(n, args.dim)).astype(np.float32)

    name = "drift"
    svc.create_collection(CollectionSpec(name=name, input_kind="vector", vector_dim=args.dim))
    fit = data(args.fit, 1)
    for s in range(0, len(fit), 1000):
        svc.ingest(name, [ItemInput(vector=v) for v in fit[s:s + 1000]])
    svc.start_clustering(name, RunRequest(k=args.k, seed=0))
    svc.runs.wait(name, timeout=3600)
    model = svc.registry.get(name).model  # the served model, to label batches as ingest does
    assert model is not None

    # (a) ingest calls vs. recording alone, batch by batch
    batches = [data(args.batch, 100 + b) for b in range(args.batches + 2)]
    window = RecentWindow(settings.drift_window)
    ingest_s: list[float] = []
    record_s: list[float] = []
    for b, x in enumerate(batches):
        items = [ItemInput(vector=v) for v in x]
        t0 = time.perf_counter()
        svc.ingest(name, items)
        t_ingest = time.perf_counter() - t0
        labels = model.assign(x)
        t0 = time.perf_counter()
        window.add(model.version, labels.rows, labels.cluster_distance, labels.is_anomaly)
        t_record = time.perf_counter() - t0
        if b >= 2:  # warm-up batches
            ingest_s.append(t_ingest)
            record_s.append(t_record)
    ing, rec = statistics.median(ingest_s), statistics.median(record_s)
    print_table(f"(a) per ingest call of {args.batch} vectors ({args.dim}-d, k={args.k}), median of {len(ingest_s)}",
                ["path", "ms", "% of an ingest call"],
                [["service.ingest (records drift inside)", ing * 1e3, 100.0],
                 ["RecentWindow.add alone", rec * 1e3, 100.0 * ratio(rec, ing)]])

    # fill the window to its capacity, then (b) drift report vs. classify one vector
    while svc.drift(name).recent_points < settings.drift_window:
        svc.ingest(name, [ItemInput(vector=v) for v in data(1000, int(rng.integers(1 << 30)))])
    query = [ItemInput(vector=data(1, 7)[0])]
    for _ in range(10):
        svc.drift(name)
        svc.classify(name, query)
    paths = {"drift": (lambda: svc.drift(name)), "classify": (lambda: svc.classify(name, query))}
    timings: dict[str, list[float]] = {"drift": [], "classify": []}
    for i in range(args.r):
        for key in (("drift", "classify") if i % 2 == 0 else ("classify", "drift")):  # alternate the order
            t0 = time.perf_counter()
            paths[key]()
            timings[key].append(time.perf_counter() - t0)
    drift_s, classify_s = timings["drift"], timings["classify"]
    report = svc.drift(name)
    d, c = summarize_ms(drift_s), summarize_ms(classify_s)
    print_table(f"(b) GetDrift core call on a window of {report.recent_points} points vs classify(1 vector), "
                f"{args.r} interleaved calls each",
                ["path", "p50 ms", "p99 ms", "p50 ratio"],
                [["service.drift", d["p50_ms"], d["p99_ms"], ratio(d["p50_ms"], c["p50_ms"])],
                 ["service.classify (1 item)", c["p50_ms"], c["p99_ms"], 1.0]])
    svc.close()
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    emit_result("drift", vars(args), {
        "ingest_ms_p50": ing * 1e3, "record_ms_p50": rec * 1e3, "record_share_of_ingest": ratio(rec, ing),
        "drift_ms": d, "classify_ms": c, "drift_over_classify_p50": ratio(d["p50_ms"], c["p50_ms"]),
        "window_points": report.recent_points,
    })


if __name__ == "__main__":
    main()
