"""Snapshot export + import throughput (points/s) vs baselines on the same collection, same process.

Set-up (not timed): a cosine VECTOR collection of ``--n`` ``--dim``-d points with a small
metadata payload, clustered once (k = ``--k``), so every point carries the five fields too.
Through the service core (no gRPC), on Qdrant Edge:

* **export** (``snapshot.export_collection``, default ``vectors_from="log"``: vectors from the
  service's vector log, payloads from the store by id, one tar) and **export (store)**
  (``vectors_from="store"``: one store scroll with vectors + payloads) vs **scroll** — a bare
  full paged read of vectors and payloads straight from the store, writing nothing (what any
  export that reads the store must pay) — and vs **iter_vectors** (vectors only);
* **import** (``snapshot.import_collection``: verify pass + load pass into a new collection:
  store upsert + vector log + models) vs **create + ingest** of the same points into a new
  collection (``create_collection``, then ``EmbclusterService.ingest`` in batches of ``--batch``:
  validate, build payloads, vector log + upsert; the new collection has no model, so nothing is
  labelled; a snapshot's payloads carry the five fields too), and vs **store upsert**: creating a
  bare store and upserting the very same ids, vectors and payloads (the floor of any import).
  Every path creates a store with its payload indexes.

Each timed path runs ``--repeats`` times (median), paths alternate between repeats.

    .venv/bin/python bench/bench_snapshot.py                 # n = 20000, 384-d, k = 16
    .venv/bin/python bench/bench_snapshot.py --n 50000
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
from _common import emit_result, print_table, quiet_logs, ratio  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    quiet_logs()

    from embcluster.config import Settings
    from embcluster.pipeline import INDEXED_FIELDS, EmbclusterService
    from embcluster.schema import CollectionSpec, ItemInput, RunRequest
    from embcluster.snapshot import export_collection, import_collection

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(args.k, args.dim)) * 4
    x = (centers[np.arange(args.n) % args.k] + rng.normal(size=(args.n, args.dim))).astype(np.float32)
    items = [ItemInput(id=f"p{i}", vector=row, metadata={"i": i, "tag": f"t{i % 7}"}) for i, row in enumerate(x)]

    root = Path(tempfile.mkdtemp(prefix="embcluster-bench-snapshot-"))
    svc = EmbclusterService(Settings(data_dir=root / "data", log_level="WARNING"))
    svc.open()
    times: dict[str, list[float]] = {k: [] for k in ("export", "export_store", "scroll", "iter_vectors", "import",
                                                     "ingest", "upsert")}
    size = 0
    try:
        svc.create_collection(CollectionSpec(name="src", input_kind="vector", metric="cosine", vector_dim=args.dim))
        for s in range(0, args.n, args.batch):
            svc.ingest("src", items[s:s + args.batch])
        svc.start_clustering("src", RunRequest(k=args.k, seed=0))
        svc.wait_idle(timeout=3600)
        store = svc.registry.get("src").store  # the baseline reads the very same store
        page = svc.settings.page_size

        def scroll() -> None:
            offset = None
            while True:
                pts, offset = store.scroll(limit=page, offset=offset, with_vectors=True, with_payload=True)
                if offset is None:
                    return

        # The same pages, held in memory, for the upsert floor (not timed).
        src_pages: list[tuple[list[str], np.ndarray, list[dict]]] = []
        offset = None
        while True:
            pts, offset = store.scroll(limit=page, offset=offset, with_vectors=True, with_payload=True)
            src_pages.append(([p.id for p in pts], np.stack([p.vector for p in pts]), [p.payload for p in pts]))
            if offset is None:
                break

        def iter_vectors() -> None:
            for _ in store.iter_vectors(page_size=page):
                pass

        for r in range(args.repeats):
            snap = root / f"snap{r}.tar"
            reads = [("export", lambda: export_collection(svc, "src", str(snap))),
                     ("export_store", lambda: export_collection(svc, "src", str(root / "s.tar"), overwrite=True,
                                                                vectors_from="store")),
                     ("scroll", scroll), ("iter_vectors", iter_vectors)]
            for name, fn in (reads if r % 2 == 0 else reads[::-1]):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
            size = snap.stat().st_size

            def ingest(target: str) -> None:
                t0 = time.perf_counter()  # both paths create their collection (store + payload indexes)
                svc.create_collection(CollectionSpec(name=target, input_kind="vector", metric="cosine",
                                                     vector_dim=args.dim))
                for s in range(0, args.n, args.batch):
                    svc.ingest(target, items[s:s + args.batch])
                times["ingest"].append(time.perf_counter() - t0)

            def load(target: str) -> None:
                t0 = time.perf_counter()
                import_collection(svc, str(snap), name=target)
                times["import"].append(time.perf_counter() - t0)

            def upsert(target: str) -> None:
                t0 = time.perf_counter()
                raw = svc.store_factory.create(target, dim=args.dim, metric="cosine", indexed=INDEXED_FIELDS)
                for ids, vecs, payloads in src_pages:
                    raw.upsert(ids, vecs, payloads)
                times["upsert"].append(time.perf_counter() - t0)
                raw.close()
                svc.store_factory.drop(target)

            writes = [(load, f"imp{r}"), (ingest, f"ing{r}"), (upsert, f"ups{r}")]
            for fn, target in (writes if r % 2 == 0 else writes[::-1]):
                fn(target)
                if target in {c.name for c in svc.list_collections()}:
                    svc.delete_collection(target)
            snap.unlink()
    finally:
        svc.close()
        shutil.rmtree(root, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    pps = {k: args.n / v for k, v in med.items()}
    rows = [
        ("export (vector log + payloads by id)", med["export"], pps["export"], "scroll",
         ratio(med["scroll"], med["export"])),
        ("export (store scroll with vectors)", med["export_store"], pps["export_store"], "scroll",
         ratio(med["scroll"], med["export_store"])),
        ("  baseline: scroll vectors + payloads", med["scroll"], pps["scroll"], "", ""),
        ("  baseline: iter_vectors", med["iter_vectors"], pps["iter_vectors"], "iter_vectors",
         ratio(med["iter_vectors"], med["export"])),
        ("import (verify + load)", med["import"], pps["import"], "create + ingest", ratio(med["ingest"], med["import"])),
        ("  baseline: create + ingest", med["ingest"], pps["ingest"], "", ""),
        ("import (verify + load)", med["import"], pps["import"], "store upsert", ratio(med["upsert"], med["import"])),
        ("  baseline: create store + upsert same payloads", med["upsert"], pps["upsert"], "", ""),
    ]
    print_table(f"n={args.n}, dim={args.dim}, k={args.k}, Qdrant Edge, snapshot {size / 1e6:.1f} MB "
                f"(median of {args.repeats})",
                ["path", "s", "points/s", "vs", "throughput ratio (path / baseline)"], rows)
    emit_result("snapshot", vars(args), {
        "seconds": med, "points_per_s": pps, "snapshot_bytes": size,
        "export_over_scroll": ratio(med["scroll"], med["export"]),
        "export_store_over_scroll": ratio(med["scroll"], med["export_store"]),
        "export_over_iter_vectors": ratio(med["iter_vectors"], med["export"]),
        "import_over_ingest": ratio(med["ingest"], med["import"]),
        "import_over_upsert": ratio(med["upsert"], med["import"]),
    })


if __name__ == "__main__":
    main()
