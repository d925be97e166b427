"""Where raw-vector ingest spends its time: each stage's seconds and share of the gRPC total.

Runs ``client.ingest_many`` of N random 384-d float32 vectors (dicts with an id, a numpy row and
metadata, as in ``bench_ingest.py`` (a)) into fresh VECTOR collections of an in-process server,
with timers wrapped around the stages of the path (client conversion, request decoding,
validation, embedding, ids and payloads, sequence numbers, the vector log and its fdatasync, the
store's upsert and flush, metrics, the response), and the direct Qdrant Edge upsert of the same
payloads (``bench_ingest.py``'s baseline) in the same run. Times are inclusive (a stage contains
the stages indented below it); "other" rows are the remainder of their parent. The timers cost
about a microsecond per wrapped call (≈ 3 per item: point ids and client conversion).

A stage that does not exist at the checked-out commit is left out, so the script also runs
against older code (``PYTHONPATH=<old checkout>/server:<old checkout>/clients/python``).

    .venv/bin/python bench/bench_ingest_stages.py [--n 10000] [--batch 500] [--repeats 3]
        [--durability fsync|batched]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import importlib  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

from _common import InProcessServer, emit_result, print_table, quiet_logs  # noqa: E402
from bench_ingest import DIM, _direct_ingest, _direct_shard, _vector_items  # noqa: E402

SPENT: dict[str, float] = defaultdict(float)  # what the timers saw (also outside the timed calls)
CALLS: dict[str, int] = defaultdict(int)
TIMED_SPENT: dict[str, float] = defaultdict(float)  # the part of it within the timed ingest calls
TIMED_CALLS: dict[str, int] = defaultdict(int)

# (label, parent label, module, attribute path): the stages, outermost first.
STAGES: list[tuple[str, str, str, str]] = [
    ("client: items -> pb.Item", "total", "embcluster_client.items", "make_item"),
    ("server: Ingest handler", "total", "embcluster.api.servicer", "EmbclusterServicer.Ingest"),
    ("decode request (items_from_pb)", "server: Ingest handler", "embcluster.api.convert", "items_from_pb"),
    ("core: Points.ingest", "server: Ingest handler", "embcluster.core.points", "Points.ingest"),
    ("prepare (validate, embed, ids, payloads)", "core: Points.ingest", "embcluster.core.kinds",
     "_EmbeddedKind.prepare"),
    ("validate (check_items)", "prepare (validate, embed, ids, payloads)", "embcluster.core.kinds", "check_items"),
    ("embed (VectorEmbedder + normalise)", "prepare (validate, embed, ids, payloads)", "embcluster.core.kinds",
     "_EmbeddedKind.embed"),
    ("point ids (uuid5)", "prepare (validate, embed, ids, payloads)", "embcluster.core.kinds", "point_id_for"),
    ("sequence numbers (store read)", "core: Points.ingest", "embcluster.core.records", "OpenCollection.sequence"),
    ("write_points", "core: Points.ingest", "embcluster.core.records", "OpenCollection.write_points"),
    ("vector log append", "write_points", "embcluster.store.vectorlog", "VectorLog.append"),
    ("vlog fdatasync", "vector log append", "", "vectorlog os.fdatasync"),
    ("vlog checkpoint", "write_points", "embcluster.store.vectorlog", "VectorLog.mark_consistent"),
    ("store upsert", "write_points", "embcluster.store.edge", "EdgeStore.upsert"),
    ("wait for the vlog's fdatasync", "store upsert", "", "the wait VectorLog.append returns"),
    ("free-space check", "store upsert", "embcluster.store.edge", "check_free_space"),
    ("shard.update (engine)", "store upsert", "", "shard.update"),
    ("WAL fdatasync (durability=fsync)", "store upsert", "embcluster.fsio", "DirectorySync.sync"),
    ("shard.flush (WAL + segments)", "store upsert", "", "shard.flush"),
    ("metrics", "core: Points.ingest", "embcluster.metrics", "ServiceMetrics.observe_ingest"),
    ("auto featurizer check", "core: Points.ingest", "embcluster.core.featurizers",
     "FeaturizerLifecycle.maybe_auto_refit"),
    ("encode response", "server: Ingest handler", "embcluster.api.convert", "ingest_response_to_pb"),
]


def _timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    perf = time.perf_counter

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = perf()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[label] += perf() - t0
            CALLS[label] += 1

    return wrapper


class _ShardProxy:
    """Times a shard's update and flush (the binding's class takes no new attributes)."""

    def __init__(self, shard: Any) -> None:
        self._inner = shard
        self.update = _timed("shard.update (engine)", shard.update)
        self.flush = _timed("shard.flush (WAL + segments)", shard.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def install_timers() -> list[str]:
    """Wrap every stage found at this commit; returns the labels installed."""
    installed = []
    for label, _parent, module, path in STAGES:
        if not module:
            continue
        try:
            owner: Any = importlib.import_module(module)
            *outer, attr = path.split(".")
            for part in outer:
                owner = getattr(owner, part)
            fn = getattr(owner, attr)
        except (ImportError, AttributeError):
            continue
        setattr(owner, attr, _timed(label, fn))
        installed.append(label)
    try:  # the shard's own update and flush: swap in a timing proxy when a store is made
        from embcluster.store import edge

        init = edge.EdgeStore.__init__

        def proxied_init(self: Any, shard: Any, *args: Any, **kwargs: Any) -> None:
            init(self, _ShardProxy(shard), *args, **kwargs)

        edge.EdgeStore.__init__ = proxied_init  # type: ignore[method-assign]
        installed += ["shard.update (engine)", "shard.flush (WAL + segments)"]
    except (ImportError, AttributeError):
        pass
    try:  # the wait for a vector log fdatasync that runs while the store converts the batch
        from embcluster.store import vectorlog as vlog_module

        append = vlog_module.VectorLog.append

        def timed_append(self: Any, *args: Any, **kwargs: Any) -> Any:
            wait = append(self, *args, **kwargs)
            return _timed("wait for the vlog's fdatasync", wait) if callable(wait) else wait

        vlog_module.VectorLog.append = timed_append  # type: ignore[method-assign]
        installed.append("wait for the vlog's fdatasync")
    except (ImportError, AttributeError):
        pass
    try:  # the vector log's own fdatasync calls (not the WAL's)
        from embcluster.store import vectorlog

        class _Os:
            def __getattr__(self, name: str) -> Any:
                return getattr(os, name)

        proxy = _Os()
        proxy.fdatasync = _timed("vlog fdatasync", os.fdatasync)  # type: ignore[attr-defined]
        vectorlog.os = proxy  # type: ignore[assignment]
        installed.append("vlog fdatasync")
    except ImportError:
        pass
    return installed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--durability", choices=["fsync", "batched", "default"], default="fsync",
                    help="the server's durability setting (default: leave it unset, for commits without one)")
    args = ap.parse_args()
    quiet_logs()
    installed = install_timers()
    vectors = np.random.default_rng(0).standard_normal((args.n, DIM), dtype=np.float32)
    totals: list[float] = []
    direct: list[float] = []
    overrides = {} if args.durability == "default" else {"durability": args.durability}
    with InProcessServer(**overrides) as srv:
        client = srv.client

        def grpc_run(vecs: np.ndarray, name: str) -> float:
            client.create_collection(name, input_kind="vector", vector_dim=DIM, distance="cosine")
            items = _vector_items(vecs)
            spent, calls = dict(SPENT), dict(CALLS)
            t0 = time.perf_counter()
            client.ingest_many(name, items, batch_size=args.batch)
            elapsed = time.perf_counter() - t0
            for k in SPENT:
                TIMED_SPENT[k] += SPENT[k] - spent.get(k, 0.0)
                TIMED_CALLS[k] += CALLS[k] - calls.get(k, 0)
            client.delete_collection(name)
            return elapsed

        def direct_run(vecs: np.ndarray, name: str) -> float:
            path = srv.scratch_dir("shards") / name
            shard = _direct_shard(path)
            t0 = time.perf_counter()
            _direct_ingest(shard, name, vecs, args.batch)
            elapsed = time.perf_counter() - t0
            shard.close()
            shutil.rmtree(path, ignore_errors=True)
            return elapsed

        grpc_run(vectors[: 2 * args.batch], "warm")
        direct_run(vectors[: 2 * args.batch], "dwarm")
        TIMED_SPENT.clear()
        TIMED_CALLS.clear()
        for r in range(args.repeats):
            pair = [lambda: totals.append(grpc_run(vectors, f"g{r}")),
                    lambda: direct.append(direct_run(vectors, f"d{r}"))]
            for fn in (pair if r % 2 == 0 else pair[::-1]):
                fn()

    runs = args.repeats
    total = sum(totals) / runs
    spent = {k: v / runs for k, v in TIMED_SPENT.items()}
    spent["total"] = total
    children: dict[str, list[str]] = defaultdict(list)
    for label, parent, _m, _p in STAGES:
        if label in installed and label in spent:
            children[parent].append(label)
    rows: list[list[Any]] = []

    def walk(label: str, depth: int) -> None:
        calls = f"{TIMED_CALLS[label] / runs:.0f}" if label in TIMED_CALLS else ""
        rows.append(["  " * depth + label, spent[label], 100.0 * spent[label] / total, calls])
        kids = children.get(label, [])
        for kid in kids:
            walk(kid, depth + 1)
        if kids:
            other = spent[label] - sum(spent[k] for k in kids)
            rows.append(["  " * (depth + 1) + "other", other, 100.0 * other / total, ""])

    walk("total", 0)
    rows[0][0] = "total: client.ingest_many (gRPC)"
    med_g, med_d = statistics.median(totals), statistics.median(direct)
    print_table(f"raw-vector ingest stages: {args.n} x {DIM}-d, batch {args.batch}, durability={args.durability}, "
                f"mean of {runs} runs", ["stage", "seconds/run", "% of gRPC", "calls/run"], rows)
    print(f"\n    gRPC {args.n / med_g:,.0f} points/s, direct Edge upsert {args.n / med_d:,.0f} points/s: "
          f"{med_d / med_g:.2f}x (medians of {runs})")
    emit_result("ingest_stages", vars(args), {
        "seconds_per_run": spent, "grpc_s": totals, "direct_s": direct,
        "ratio_grpc_over_direct": med_d / med_g,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
