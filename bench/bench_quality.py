"""Clustering quality and stability on real data, side by side with scikit-learn.

(a) **Quality**: mean ARI and NMI against the true labels over ``--seeds`` seeds (0..4) of
    embcluster's ``fit_kmeans`` with the service's defaults (``backend=None``, the ``n_init`` a
    run uses when the request gives 0, default ``max_iter``/``tol``) vs. scikit-learn
    ``KMeans(n_init=10, random_state=seed)``, on

    * scikit-learn's ``load_digits`` (k = 10, raw pixel features, ``euclid``);
    * the 5,141 WordNet definitions of ``embcluster.data.load_wordnet`` embedded with the bundled
      all-MiniLM-L6-v2 (normalised), k = 45 = number of lexical categories; ``cosine`` for
      embcluster, scikit-learn on the same normalised vectors.

    The WordNet embeddings are cached in the temp directory (``np.save``), keyed by the model
    fingerprint and the data; ``--no-cache`` recomputes them.

(b) **Stability through the service**: an ``EmbclusterService`` on a temporary data directory, a
    VECTOR (cosine, 384-d) collection fed with the precomputed WordNet embeddings (ids = WordNet
    ids). Ingest a seeded 90%, cluster (k = 45, seed 0), record every point's ``cluster_id``,
    ingest the other 10%, re-cluster (k = 45; the service warm-starts from the previous
    centroids) and report the share of the first 90% that keep their ``cluster_id`` plus the
    model's matching report. Row 1 re-clusters with seed 0, row 2 with seed 1 (each in a fresh
    collection).

Targets are printed with met / NOT met, never asserted.

    .venv/bin/python bench/bench_quality.py [--seeds 5] [--no-cache] [--skip-quality] [--skip-stability]
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_result, print_table, quiet_logs  # noqa: E402

# When a request gives no n_init, a clustering run (core/clustering.py) uses default_n_init(sample, k) — the same
# function is used here; the stability runs in (b) record what the service used in their params.
QUALITY_TOLERANCE = 0.01  # target: ours >= sklearn - 0.01
STABILITY_TARGET = 0.95


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _normalize(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


# ---------------------------------------------------------------------------------------- data


def wordnet_embeddings(use_cache: bool) -> tuple[list[dict[str, str]], np.ndarray, dict[str, Any]]:
    """WordNet rows and their normalised bundled-model embeddings (cached by model fingerprint)."""
    from embcluster.data import load_wordnet
    from embcluster.embed.registry import bundled_model_path
    from embcluster.embed.text import fingerprint_directory

    rows = load_wordnet()
    model_path = bundled_model_path()
    fingerprint = fingerprint_directory(model_path)
    data_hash = hashlib.sha256("\n".join(f"{r['id']}\t{r['text']}" for r in rows).encode()).hexdigest()
    key = hashlib.sha256(f"{fingerprint}|{data_hash}".encode()).hexdigest()[:24]
    cache = Path(tempfile.gettempdir()) / f"embcluster-bench-wordnet-{key}.npy"
    info: dict[str, Any] = {"fingerprint": fingerprint, "cache_file": str(cache), "cached": False}
    if use_cache and cache.exists():
        x = np.load(cache)
        if x.shape[0] == len(rows):
            info["cached"] = True
            return rows, _normalize(x), info
    from embcluster.embed.text import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder("all-MiniLM-L6-v2", model_path)
    t0 = time.perf_counter()
    x = _normalize(emb.embed([r["text"] for r in rows]))
    info["embed_s"] = time.perf_counter() - t0
    if use_cache:
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, x)
        os.replace(tmp, cache)
    return rows, x, info


# ------------------------------------------------------------------------------------- quality


def quality_on(name: str, x: np.ndarray, y: np.ndarray, k: int, metric: str, seeds: list[int]) -> dict[str, Any]:
    """Per-seed ARI/NMI of embcluster's fit (service defaults) and of scikit-learn KMeans(n_init=10)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from embcluster.cluster.kmeans import default_n_init, fit_kmeans

    out: dict[str, Any] = {"ours": {"ari": [], "nmi": [], "s": []}, "sklearn": {"ari": [], "nmi": [], "s": []},
                           "n": len(x), "k": k, "metric": metric}
    for seed in seeds:
        t0 = time.perf_counter()
        fit = fit_kmeans(x, k, metric=metric, seed=seed, n_init=default_n_init(len(x), k))  # type: ignore[arg-type]
        out["ours"]["s"].append(time.perf_counter() - t0)
        out["ours"]["ari"].append(adjusted_rand_score(y, fit.labels))
        out["ours"]["nmi"].append(normalized_mutual_info_score(y, fit.labels))
        out["ours_backend"] = fit.backend

        t0 = time.perf_counter()
        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
        out["sklearn"]["s"].append(time.perf_counter() - t0)
        out["sklearn"]["ari"].append(adjusted_rand_score(y, km.labels_))
        out["sklearn"]["nmi"].append(normalized_mutual_info_score(y, km.labels_))
        print(f"  {name} seed {seed}: ours ARI {out['ours']['ari'][-1]:.3f} NMI {out['ours']['nmi'][-1]:.3f} | "
              f"sklearn ARI {out['sklearn']['ari'][-1]:.3f} NMI {out['sklearn']['nmi'][-1]:.3f}", flush=True)
    for side in ("ours", "sklearn"):
        for m in ("ari", "nmi", "s"):
            out[side][f"mean_{m}"] = float(np.mean(out[side][m]))
    return out


# ----------------------------------------------------------------------------------- stability


def _cluster_ids(svc: Any, name: str) -> dict[str, int]:
    """external id -> cluster_id of every point, via list_clusters + list_cluster_members paging."""
    _, clusters = svc.list_clusters(name)
    out: dict[str, int] = {}
    for c in clusters:
        token = ""
        while True:
            points, token = svc.list_cluster_members(name, c.cluster_id, page_size=1000, page_token=token)
            for p in points:
                out[p.external_id] = int(p.assignment.cluster_id)
            if not token:
                break
    return out


def _ingest(svc: Any, name: str, ids: list[str], x: np.ndarray, batch: int) -> None:
    from embcluster.schema import ItemInput

    for s in range(0, len(ids), batch):
        svc.ingest(name, [ItemInput(id=i, vector=v) for i, v in zip(ids[s:s + batch], x[s:s + batch])])


def _cluster(svc: Any, name: str, k: int, seed: int) -> Any:
    from embcluster.schema import RunRequest

    run = svc.start_clustering(name, RunRequest(k=k, seed=seed))
    svc.runs.wait(name)
    info = svc.get_run(name, run.run_id)
    if info.state.value != "succeeded":
        raise SystemExit(f"clustering run of {name} (seed {seed}) ended {info.state.value}: {info.error}")
    return svc.get_model(name, 0)


def stability(ids: list[str], x: np.ndarray, k: int, first_frac: float, second_seeds: list[int],
              split_seed: int) -> list[dict[str, Any]]:
    """One fresh collection per second-run seed: ingest first_frac, cluster, ingest rest, re-cluster."""
    from embcluster.config import Settings
    from embcluster.pipeline import EmbclusterService
    from embcluster.schema import CollectionSpec

    rng = np.random.default_rng(split_seed)
    order = rng.permutation(len(ids))
    n_first = int(round(first_frac * len(ids)))
    first, rest = order[:n_first], order[n_first:]
    ids_first = [ids[i] for i in first]
    ids_rest = [ids[i] for i in rest]

    tmp = Path(tempfile.mkdtemp(prefix="embcluster-bench-quality-"))
    settings = Settings(port=0, data_dir=tmp / "data", log_level="WARNING")
    svc = EmbclusterService(settings)
    svc.open()
    rows: list[dict[str, Any]] = []
    try:
        for seed2 in second_seeds:
            name = f"wordnet_s{seed2}"
            svc.create_collection(CollectionSpec(name=name, input_kind="vector", metric="cosine",
                                                 vector_dim=x.shape[1]))
            _ingest(svc, name, ids_first, x[first], settings.max_batch_items)
            t0 = time.perf_counter()
            m1 = _cluster(svc, name, k, seed=0)
            run1_s = time.perf_counter() - t0
            before = _cluster_ids(svc, name)
            if len(before) != len(ids_first):
                raise SystemExit(f"{name}: read {len(before)} labelled points, expected {len(ids_first)}")

            _ingest(svc, name, ids_rest, x[rest], settings.max_batch_items)
            t0 = time.perf_counter()
            m2 = _cluster(svc, name, k, seed=seed2)
            run2_s = time.perf_counter() - t0
            after = _cluster_ids(svc, name)
            if len(after) != len(ids):
                raise SystemExit(f"{name}: read {len(after)} labelled points, expected {len(ids)}")

            kept = sum(1 for i in ids_first if after[i] == before[i])
            match = m2.metrics.get("matching", {})
            rows.append({
                "collection": name, "run1_seed": 0, "run2_seed": seed2,
                "old_points": len(ids_first), "new_points": len(ids_rest),
                "kept": kept, "kept_share": kept / len(ids_first),
                "persisted": len(match.get("persisted", [])), "appeared": len(match.get("appeared", [])),
                "vanished": len(match.get("vanished", [])), "split": len(match.get("split", {})),
                "merged": len(match.get("merged", {})), "matching": match,
                "run1": {"version": m1.version, "params": m1.params, "s": run1_s},
                "run2": {"version": m2.version, "params": m2.params, "s": run2_s},
                "clusters_run1": len(set(before.values())), "clusters_run2": len(set(after.values())),
            })
            print(f"  {name}: run1 v{m1.version} ({run1_s:.1f}s), run2 v{m2.version} ({run2_s:.1f}s, "
                  f"previous_version={m2.params.get('previous_version')}, n_init={m2.params.get('n_init')}, "
                  f"sample {m2.params.get('sample_size')}/{len(ids)}), kept {kept}/{len(ids_first)}", flush=True)
    finally:
        svc.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


# ------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="quality: seeds 0..N-1")
    parser.add_argument("--no-cache", action="store_true", help="re-embed WordNet (no cache read or write)")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-stability", action="store_true")
    parser.add_argument("--first-frac", type=float, default=0.9, help="stability: share ingested before run 1")
    parser.add_argument("--split-seed", type=int, default=0, help="stability: seed of the 90/10 split")
    args = parser.parse_args()
    quiet_logs()

    t0 = time.perf_counter()
    rows, wn_x, wn_info = wordnet_embeddings(use_cache=not args.no_cache)
    wn_ids = [r["id"] for r in rows]
    categories = sorted({r["category"] for r in rows})
    wn_y = np.array([categories.index(r["category"]) for r in rows])
    print(f"WordNet: {len(rows):,} definitions, {len(categories)} categories, {wn_x.shape[1]}-d "
          f"({'cache ' + wn_info['cache_file'] if wn_info['cached'] else 'embedded'}, "
          f"{time.perf_counter() - t0:.1f}s)")

    params = {"seeds": args.seeds, "service_n_init": "default_n_init(n, k)", "first_frac": args.first_frac,
              "split_seed": args.split_seed, "wordnet_n": len(rows), "wordnet_k": len(categories)}
    results: dict[str, Any] = {"wordnet_embeddings": wn_info}

    if not args.skip_quality:
        from sklearn.datasets import load_digits

        digits = load_digits()
        seeds = list(range(args.seeds))
        sets = {
            "digits": quality_on("digits", digits.data.astype(np.float32), digits.target, 10, "euclid", seeds),
            "wordnet": quality_on("wordnet", wn_x, wn_y, len(categories), "cosine", seeds),
        }
        table, targets = [], []
        for ds, r in sets.items():
            for m in ("ari", "nmi"):
                ours, ref = r["ours"][f"mean_{m}"], r["sklearn"][f"mean_{m}"]
                ok = ours >= ref - QUALITY_TOLERANCE
                table.append([ds, m.upper(), ours, ref, ours - ref, verdict(ok)])
                targets.append({"dataset": ds, "metric": m, "ours": ours, "sklearn": ref, "met": ok})
        print_table(
            f"(a) quality vs true labels, mean over seeds 0..{args.seeds - 1}: embcluster fit_kmeans "
            f"(backend={sets['digits'].get('ours_backend')}, n_init=default_n_init(n, k)) vs sklearn KMeans(n_init=10); "
            f"digits k=10 euclid, WordNet k={len(categories)} cosine",
            ["data", "metric", "embcluster", "sklearn", "diff", "ours >= sklearn - 0.01"], table,
        )
        print_table("    fit time, mean seconds per seed (context only)", ["data", "embcluster", "sklearn"],
                    [[ds, r["ours"]["mean_s"], r["sklearn"]["mean_s"]] for ds, r in sets.items()])
        results["quality"] = sets
        results["quality_targets"] = targets

    if not args.skip_stability:
        stab = stability(wn_ids, wn_x, len(categories), args.first_frac, [0, 1], args.split_seed)
        print_table(
            f"(b) stability through EmbclusterService: WordNet, ingest {args.first_frac:.0%} -> cluster k="
            f"{len(categories)} seed 0 -> ingest the rest -> re-cluster (warm start)",
            ["run 2 seed", "old pts", "new pts", "kept id", "share", "target>=0.95", "persisted", "appeared",
             "vanished", "split", "merged"],
            [[r["run2_seed"], r["old_points"], r["new_points"], r["kept"], r["kept_share"],
              verdict(r["kept_share"] >= STABILITY_TARGET), r["persisted"], r["appeared"], r["vanished"],
              r["split"], r["merged"]] for r in stab],
        )
        results["stability"] = stab

    emit_result("quality", params, results)


if __name__ == "__main__":
    main()
