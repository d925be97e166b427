"""What a featurizer refit does to ingest running beside it, and what ingest does to the refit.

In-process core (``EmbclusterService``), one EVENT collection (euclid, schema from
``InferSchema`` on the Lending Club loans) of ``--n`` events (the 2,000 bundled loans repeated
under new ids), no cluster model, so a refit is the fit plus the re-featurize pass over every
point (``PAGE_SIZE`` points per page, each page under the collection lock). Nothing is asserted.

(a) **Ingest latency**: ``--r`` ingest calls of ``--batch`` events on the idle collection, vs.
    ingest calls issued back to back while a refit runs (until it ends). Reported: p50 / p99 /
    max per call, the ratios during/idle, and the longest single call as a share of the refit's
    duration (a refit that held the lock for its whole pass would make that share ~1).
(b) **Refit duration**: the same refit alone vs. with that ingest running beside it.

    .venv/bin/python bench/bench_refit_ingest.py [--n 20000] [--batch 10] [--r 100]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_result, print_table, quiet_logs, ratio, summarize_ms  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="events in the collection before the refits")
    parser.add_argument("--batch", type=int, default=10, help="events per timed ingest call")
    parser.add_argument("--r", type=int, default=100, help="timed ingest calls on the idle collection")
    args = parser.parse_args()
    quiet_logs()

    from embcluster.config import Settings
    from embcluster.data import load_lending_club_events
    from embcluster.pipeline import EmbclusterService
    from embcluster.runtime import limit_blas_threads
    from embcluster.schema import CollectionSpec, ItemInput, RunState

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="embcluster-refit-")), log_level="WARNING",
                        schedule_tick_s=3600, featurizer_min_points=10**9)  # refits only when asked
    limit_blas_threads(settings.blas_threads)  # as `embcluster serve` does
    svc = EmbclusterService(settings)
    svc.open()
    loans = [r["event"] for r in load_lending_club_events()]
    schema, _ = svc.infer_schema(loans[:500])
    name = "refit"
    svc.create_collection(CollectionSpec(name=name, input_kind="event", metric="euclid", event_schema=schema))
    counter = 0

    def items(n: int) -> list[ItemInput]:
        nonlocal counter
        out = [ItemInput(id=f"e{counter + i}", event=loans[(counter + i) % len(loans)]) for i in range(n)]
        counter += n
        return out

    for _ in range(0, args.n, 1000):
        svc.ingest(name, items(1000))

    def refit() -> float:
        t0 = time.perf_counter()
        run = svc.fit_featurizer(name)
        svc.runs.wait(name, timeout=3600)
        assert svc.get_run(name, run.run_id).state == RunState.SUCCEEDED
        return time.perf_counter() - t0

    def timed_ingest() -> float:
        batch = items(args.batch)
        t0 = time.perf_counter()
        svc.ingest(name, batch)
        return time.perf_counter() - t0

    refit()  # warm-up: the first refit replaces the provisional featurizer
    idle = [timed_ingest() for _ in range(args.r)]
    alone_s = refit()

    busy: list[float] = []
    t0 = time.perf_counter()
    run = svc.fit_featurizer(name)
    while svc.get_run(name, run.run_id).state in (RunState.PENDING, RunState.RUNNING):
        busy.append(timed_ingest())
    svc.runs.wait(name, timeout=3600)
    with_ingest_s = time.perf_counter() - t0
    assert svc.get_run(name, run.run_id).state == RunState.SUCCEEDED
    points = svc.get_collection(name).point_count
    svc.close()
    shutil.rmtree(settings.data_dir, ignore_errors=True)

    i, b = summarize_ms(idle), summarize_ms(busy)
    print_table(f"(a) ingest of {args.batch} events per call: idle ({len(idle)} calls) vs during a refit of "
                f"~{points} points ({len(busy)} calls)",
                ["when", "p50 ms", "p99 ms", "max ms", "max / refit"],
                [["idle", i["p50_ms"], i["p99_ms"], max(idle) * 1e3, ""],
                 ["during the refit", b["p50_ms"], b["p99_ms"], max(busy) * 1e3, ratio(max(busy), with_ingest_s)],
                 ["ratio during/idle", ratio(b["p50_ms"], i["p50_ms"]), ratio(b["p99_ms"], i["p99_ms"]),
                  ratio(max(busy), max(idle)), ""]])
    print_table("(b) refit duration", ["refit", "s", "ratio"],
                [["alone", alone_s, 1.0], ["with ingest beside it", with_ingest_s, ratio(with_ingest_s, alone_s)]])
    emit_result("refit_ingest", vars(args), {
        "points": points, "idle_ms": i, "during_ms": b, "idle_max_ms": max(idle) * 1e3,
        "during_max_ms": max(busy) * 1e3, "during_calls": len(busy),
        "longest_call_share_of_refit": ratio(max(busy), with_ingest_s),
        "refit_alone_s": alone_s, "refit_with_ingest_s": with_ingest_s,
        "refit_slowdown": ratio(with_ingest_s, alone_s),
    })


if __name__ == "__main__":
    main()
