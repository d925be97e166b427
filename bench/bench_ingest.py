"""Ingest throughput through gRPC, as a ratio against same-process baselines.

(a) raw vectors: N random float32 384-d vectors in batches through the Python client into a
    VECTOR collection of an in-process server, vs. upserting the same vectors, batch size, point
    ids and payload shape straight into a Qdrant Edge shard (``EdgeShard.update(upsert_points)``).
    Also reported for context: the in-process core (``EmbclusterService.ingest``) without gRPC.
    Goal (issue 15): gRPC/direct >= 0.6x with the server's default ``durability=fsync`` (the
    direct upsert syncs nothing). ``bench_ingest_stages.py`` splits the gRPC time by stage.
(b) text: M WordNet definitions through gRPC into a TEXT collection vs. embedding the same texts
    in the same batches with the service's own embedder instance (same model, same threads).

Each path is warmed up, then timed ``--repeats`` times into a fresh collection/shard, with the
order of the paths alternating between repeats; the median is reported. Figures are printed,
never asserted.

    .venv/bin/python bench/bench_ingest.py [--n 20000] [--m 1000] [--batch 500] [--repeats 3]
        [--durability fsync|batched]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

from _common import InProcessServer, emit_result, print_table, quiet_logs, ratio  # noqa: E402

DIM = 384
GOAL_RAW = 0.6  # issue 15: raw-vector gRPC ingest >= 0.6x a direct Edge upsert


# ---------------------------------------------------------------- (a) raw vectors


def _direct_shard(path: Path) -> Any:
    """A Qdrant Edge shard configured like the service's VECTOR collections (cosine, same indexes)."""
    import qdrant_edge as qe

    from embcluster.pipeline import INDEXED_FIELDS
    from embcluster.store.edge import BOOL_MIRROR_PREFIX

    types = {"integer": qe.PayloadSchemaType.Integer, "bool": qe.PayloadSchemaType.Bool,
             "keyword": qe.PayloadSchemaType.Keyword}
    if path.exists():
        shutil.rmtree(path)
    cfg = qe.EdgeConfig(vectors={"": qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine)})
    shard = qe.EdgeShard.create(str(path), cfg)
    for key, kind in INDEXED_FIELDS.items():
        shard.update(qe.UpdateOperation.create_field_index(key, types[kind]))
        if kind == "bool":
            shard.update(qe.UpdateOperation.create_field_index(BOOL_MIRROR_PREFIX + key, types["integer"]))
    return shard


def _direct_ingest(shard: Any, name: str, vectors: np.ndarray, batch: int) -> None:
    """What a caller of Qdrant Edge itself does: ids, payloads of the service's shape, one upsert per batch."""
    import qdrant_edge as qe

    from embcluster.pipeline import point_id_for

    for start in range(0, len(vectors), batch):
        rows = vectors[start:start + batch].tolist()
        points = []
        for j, row in enumerate(rows):
            ext = f"v{start + j}"
            points.append(qe.Point(id=point_id_for(name, ext), vector=row,
                                   payload={"external_id": ext, "meta": {"i": start + j}}))
        shard.update(qe.UpdateOperation.upsert_points(points))


def _vector_items(vectors: np.ndarray, offset: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"v{offset + i}", "vector": v, "metadata": {"i": offset + i}} for i, v in enumerate(vectors)]


def bench_raw(srv: InProcessServer, n: int, batch: int, repeats: int, with_core: bool) -> dict[str, Any]:
    from embcluster.schema import ItemInput

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    client, service = srv.client, srv.service
    counter = iter(range(1_000_000))

    def fresh_collection() -> str:
        name = f"raw{next(counter)}"
        client.create_collection(name, input_kind="vector", vector_dim=DIM, distance="cosine")
        return name

    def grpc_run(vecs: np.ndarray) -> float:
        name = fresh_collection()
        items = _vector_items(vecs)  # dicts with numpy rows, as a caller holds them
        t0 = time.perf_counter()
        client.ingest_many(name, items, batch_size=batch)
        elapsed = time.perf_counter() - t0
        client.delete_collection(name)
        return elapsed

    def core_run(vecs: np.ndarray) -> float:
        name = fresh_collection()
        items = [ItemInput(id=f"v{i}", vector=v.tolist(), metadata={"i": i}) for i, v in enumerate(vecs)]
        t0 = time.perf_counter()
        for start in range(0, len(items), batch):
            service.ingest(name, items[start:start + batch])
        elapsed = time.perf_counter() - t0
        client.delete_collection(name)
        return elapsed

    def direct_run(vecs: np.ndarray) -> float:
        name = f"direct{next(counter)}"
        path = srv.scratch_dir("shards") / name
        shard = _direct_shard(path)
        t0 = time.perf_counter()
        _direct_ingest(shard, name, vecs, batch)
        elapsed = time.perf_counter() - t0
        shard.close()
        shutil.rmtree(path, ignore_errors=True)
        return elapsed

    paths: dict[str, Callable[[np.ndarray], float]] = {"grpc": grpc_run, "direct": direct_run}
    if with_core:
        paths["core"] = core_run
    warm = vectors[: min(n, 2 * batch)]
    for fn in paths.values():
        fn(warm)
    times: dict[str, list[float]] = {k: [] for k in paths}
    order = list(paths)
    for r in range(repeats):
        for key in (order if r % 2 == 0 else order[::-1]):
            times[key].append(paths[key](vectors))

    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: n / v for k, v in med.items()}
    rows = [["direct Qdrant Edge upsert", rate["direct"], med["direct"], 1.0]]
    if with_core:
        rows.append(["core EmbclusterService.ingest", rate["core"], med["core"], ratio(rate["core"], rate["direct"])])
    rows.append(["gRPC client.ingest_many", rate["grpc"], med["grpc"], ratio(rate["grpc"], rate["direct"])])
    print_table(f"(a) raw-vector ingest: {n} x {DIM}-d float32, batch {batch}, median of {repeats}",
                ["path", "points/s", "seconds", "x direct"], rows)
    grpc_ratio = ratio(rate["grpc"], rate["direct"])
    print(f"    gRPC/direct = {grpc_ratio:.2f}x (goal >= {GOAL_RAW}x: {'met' if grpc_ratio >= GOAL_RAW else 'NOT met'})")
    return {
        "points_per_s": rate, "seconds_median": med, "seconds_all": times,
        "ratio_grpc_over_direct": grpc_ratio,
        "ratio_core_over_direct": ratio(rate["core"], rate["direct"]) if with_core else None,
        "goal_ratio": GOAL_RAW,
    }


# ---------------------------------------------------------------- (b) text


def bench_text(srv: InProcessServer, m: int, batch: int, repeats: int) -> dict[str, Any]:
    from embcluster.data import load_wordnet

    rows = load_wordnet(limit=m)
    texts = [r["text"] for r in rows]
    items = [{"id": r["id"], "text": r["text"], "metadata": {"category": r["category"]}} for r in rows]
    embedder = srv.text_embedder()  # the instance the TEXT collections use
    client = srv.client
    counter = iter(range(1_000_000))

    def fresh_collection() -> str:
        name = f"text{next(counter)}"
        client.create_collection(name, input_kind="text")
        return name

    def grpc_run(its: list[dict[str, Any]]) -> float:
        name = fresh_collection()
        t0 = time.perf_counter()
        client.ingest_many(name, its, batch_size=batch)
        elapsed = time.perf_counter() - t0
        client.delete_collection(name)
        return elapsed

    def encode_run(txts: list[str]) -> float:
        t0 = time.perf_counter()
        for start in range(0, len(txts), batch):
            embedder.embed(txts[start:start + batch])
        return time.perf_counter() - t0

    # Warm-up: one full batch through the model (first passes at new shapes are slow), a small
    # one through gRPC (the model behind it is the same instance).
    encode_run(texts[: min(m, batch)])
    grpc_run(items[: min(m, 64)])
    times: dict[str, list[float]] = {"grpc": [], "encode": []}
    for r in range(repeats):
        pair = [("encode", lambda: encode_run(texts)), ("grpc", lambda: grpc_run(items))]
        for key, fn in (pair if r % 2 == 0 else pair[::-1]):
            times[key].append(fn())

    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: m / v for k, v in med.items()}
    text_ratio = ratio(rate["grpc"], rate["encode"])
    print_table(
        f"(b) text ingest: {m} WordNet definitions, batch {batch}, {embedder.name} "
        f"(embed batch {embedder.batch_size}), median of {repeats}",
        ["path", "texts/s", "seconds", "x encode"],
        [["embedder.embed (SentenceTransformer.encode)", rate["encode"], med["encode"], 1.0],
         ["gRPC client.ingest_many", rate["grpc"], med["grpc"], text_ratio]],
    )
    print(f"    gRPC/encode = {text_ratio:.2f}x")
    return {"texts_per_s": rate, "seconds_median": med, "seconds_all": times, "ratio_grpc_over_encode": text_ratio}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000, help="raw vectors (default 20000)")
    ap.add_argument("--m", type=int, default=1000, help="WordNet texts (default 1000)")
    ap.add_argument("--batch", type=int, default=500, help="items per Ingest call / upsert (default 500)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each raw path (default 3)")
    ap.add_argument("--text-repeats", type=int, default=3, help="timed runs of each text path (default 3)")
    ap.add_argument("--no-core", action="store_true", help="skip the in-process core row of (a)")
    ap.add_argument("--durability", choices=["fsync", "batched"], default=None,
                    help="the server's durability setting (default: the server's default, fsync)")
    ap.add_argument("--skip-raw", action="store_true")
    ap.add_argument("--skip-text", action="store_true")
    args = ap.parse_args()
    quiet_logs()

    params = {"n": args.n, "m": args.m, "batch": args.batch, "repeats": args.repeats,
              "text_repeats": args.text_repeats, "dim": DIM, "durability": args.durability or "default"}
    results: dict[str, Any] = {}
    started = time.perf_counter()
    with InProcessServer(**({"durability": args.durability} if args.durability else {})) as srv:
        if not args.skip_raw:
            results["raw"] = bench_raw(srv, args.n, args.batch, args.repeats, with_core=not args.no_core)
        if not args.skip_text:
            results["text"] = bench_text(srv, args.m, args.batch, args.text_repeats)
    results["wall_s"] = time.perf_counter() - started
    print(f"\nwall time {results['wall_s']:.1f}s")
    emit_result("ingest", params, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
