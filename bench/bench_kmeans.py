"""k-means fit: embcluster's backends vs. raw FAISS and scikit-learn, same data, same objective.

Data: ``--n`` x ``--dim`` float32 unit vectors drawn from a seeded mixture of ``4 * k`` Gaussian
blobs on the sphere (uneven weights and spreads, like text embeddings). Every method runs
Euclidean k-means (``metric="euclid"`` for ``fit_kmeans``) with one initialisation, ``--iters``
Lloyd iterations and ``tol=0``, so they all minimise the same objective:

* embcluster default: ``fit_kmeans(..., backend=None)`` (FAISS Lloyd after k-means++ seeding);
* embcluster numpy fallback: ``fit_kmeans(..., backend="numpy")``;
* raw FAISS: ``faiss.Kmeans(d, k, niter, nredo=1, seed=0, max_points_per_centroid=n//k+1).train(x)``;
* scikit-learn: ``KMeans(n_clusters=k, n_init=1, max_iter, tol=0, random_state=0, algorithm="lloyd")``.

Inertia is recomputed for every method by one numpy routine (sum of squared L2 distances of
``x`` to its nearest centroid). Reported: wall seconds, time / FAISS, time / sklearn, inertia
relative to the better of FAISS and sklearn, and the targets with met / NOT met (printed only).

    .venv/bin/python bench/bench_kmeans.py                 # 200,000 x 384, k = 64, 20 iterations
    .venv/bin/python bench/bench_kmeans.py --n 50000 --repeats 3
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_result, print_table, quiet_logs, ratio, time_once  # noqa: E402

METHODS = ("default", "numpy", "faiss", "sklearn")
LABELS = {
    "default": "embcluster default (backend=None)",
    "numpy": "embcluster numpy fallback",
    "faiss": "raw FAISS Kmeans",
    "sklearn": "scikit-learn KMeans (lloyd)",
}


def make_data(n: int, dim: int, blobs: int, seed: int) -> np.ndarray:
    """Unit vectors from a mixture of ``blobs`` Gaussian blobs on the sphere (uneven sizes/spreads)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((blobs, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    weights = rng.dirichlet(np.full(blobs, 2.0))
    # Per-dimension noise scale: ||noise|| ~ spread, i.e. cos(point, centre) ~ 1/sqrt(1+spread^2).
    spread = rng.uniform(0.6, 1.2, size=blobs).astype(np.float32) / np.sqrt(dim, dtype=np.float32)
    labels = rng.choice(blobs, size=n, p=weights)
    x = np.empty((n, dim), dtype=np.float32)
    step = 50_000
    for s in range(0, n, step):
        lab = labels[s:s + step]
        noise = rng.standard_normal((len(lab), dim), dtype=np.float32)
        xb = centers[lab] + noise * spread[lab, None]
        xb /= np.linalg.norm(xb, axis=1, keepdims=True)
        x[s:s + step] = xb
    return x


def inertia(x: np.ndarray, centroids: np.ndarray, block: int = 32_768) -> float:
    """Sum over rows of the squared L2 distance to the nearest centroid (float64 accumulation)."""
    c = np.ascontiguousarray(centroids, dtype=np.float32)
    c_sq = (c.astype(np.float64) ** 2).sum(axis=1)
    total = 0.0
    for s in range(0, len(x), block):
        xb = x[s:s + block]
        d2 = (xb.astype(np.float64) ** 2).sum(axis=1)[:, None] - 2.0 * (xb @ c.T).astype(np.float64) + c_sq[None, :]
        total += float(np.maximum(d2.min(axis=1), 0.0).sum())
    return total


def thread_report() -> dict[str, Any]:
    """Thread counts of FAISS's OpenMP and of every BLAS/OpenMP pool, vs. the machine's cores."""
    import faiss
    from threadpoolctl import threadpool_info

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    pools = [
        {"lib": p.get("prefix"), "api": p.get("user_api"), "threads": p.get("num_threads")}
        for p in threadpool_info()
    ]
    limits = {v: os.environ[v] for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
              if v in os.environ}
    info = {"cores": cores, "faiss_omp_threads": faiss.omp_get_max_threads(), "pools": pools, "env_limits": limits}
    info["all_default"] = (
        info["faiss_omp_threads"] == cores and all(p["threads"] == cores for p in pools) and not limits
    )
    return info


def runners(x: np.ndarray, k: int, iters: int) -> dict[str, Callable[[], np.ndarray]]:
    """One callable per method; each fits on ``x`` and returns its centroids."""
    import faiss
    from sklearn.cluster import KMeans

    from embcluster.cluster.kmeans import fit_kmeans

    n, d = x.shape

    def default() -> np.ndarray:
        return fit_kmeans(x, k, metric="euclid", seed=0, n_init=1, max_iter=iters, tol=0.0, backend=None).centroids

    def numpy_fallback() -> np.ndarray:
        return fit_kmeans(x, k, metric="euclid", seed=0, n_init=1, max_iter=iters, tol=0.0, backend="numpy").centroids

    def raw_faiss() -> np.ndarray:
        km = faiss.Kmeans(d, k, niter=iters, nredo=1, seed=0, max_points_per_centroid=n // k + 1, verbose=False)
        km.train(x)
        return np.asarray(km.centroids, dtype=np.float32)

    def sklearn() -> np.ndarray:
        km = KMeans(n_clusters=k, n_init=1, max_iter=iters, tol=0.0, random_state=0, algorithm="lloyd")
        km.fit(x)
        return km.cluster_centers_.astype(np.float32)

    return {"default": default, "numpy": numpy_fallback, "faiss": raw_faiss, "sklearn": sklearn}


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--iters", type=int, default=20, help="Lloyd iterations for every method")
    parser.add_argument("--blobs", type=int, default=0, help="planted blobs (default 4 * k)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed fits per method (order rotates between repeats; median reported)")
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    args = parser.parse_args()
    quiet_logs()
    blobs = args.blobs or 4 * args.k

    threads = thread_report()
    print(f"threads: cores={threads['cores']}  faiss omp={threads['faiss_omp_threads']}  "
          + "  ".join(f"{p['lib']}({p['api']})={p['threads']}" for p in threads["pools"])
          + (f"  env limits={threads['env_limits']}" if threads["env_limits"] else "")
          + f"  -> {'machine defaults' if threads['all_default'] else 'NOT the machine defaults'}")

    x = make_data(args.n, args.dim, blobs, args.seed)
    print(f"data: {args.n:,} x {args.dim} float32 unit vectors, {blobs} blobs; k={args.k}, "
          f"{args.iters} iterations, n_init=1, tol=0, euclid")

    # Warm-up: load every library and touch every code path on a small slice (not timed).
    warm_n = min(len(x), max(20 * args.k, 5_000))
    for fn in runners(x[:warm_n], args.k, 2).values():
        fn()

    fns = runners(x, args.k, args.iters)
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    inert: dict[str, list[float]] = {m: [] for m in METHODS}
    for rep in range(max(1, args.repeats)):
        order = METHODS[rep % len(METHODS):] + METHODS[:rep % len(METHODS)]
        for m in order:
            box: dict[str, np.ndarray] = {}
            t = time_once(lambda: box.setdefault("c", fns[m]()))
            times[m].append(t)
            inert[m].append(inertia(x, box["c"]))
            print(f"  repeat {rep + 1}: {m:<8} {t:7.2f} s  inertia {inert[m][-1]:,.2f}", flush=True)

    t = {m: statistics.median(v) for m, v in times.items()}
    # Inertia is deterministic per method (same seeds); the first repeat's value is reported.
    j = {m: v[0] for m, v in inert.items()}
    best_ref = min(j["faiss"], j["sklearn"])
    rel = {m: j[m] / best_ref - 1.0 for m in METHODS}

    rows = [[LABELS[m], t[m], ratio(t[m], t["faiss"]), ratio(t[m], t["sklearn"]), j[m], 100.0 * rel[m]]
            for m in METHODS]
    print_table(
        f"k-means fit {args.n:,} x {args.dim}, k={args.k}, {args.iters} iters "
        f"(median of {max(1, args.repeats)}; inertia vs best of FAISS/sklearn = {best_ref:,.2f})",
        ["method", "seconds", "x FAISS", "x sklearn", "inertia", "inertia +%"], rows,
    )

    targets = [
        ("default time <= 1.5x FAISS", f"{ratio(t['default'], t['faiss']):.2f}x",
         ratio(t["default"], t["faiss"]) <= 1.5),
        ("numpy time <= 3x FAISS", f"{ratio(t['numpy'], t['faiss']):.2f}x", ratio(t["numpy"], t["faiss"]) <= 3.0),
        ("default inertia within 1% of best(sklearn, FAISS)", f"{100 * rel['default']:+.3f}%",
         rel["default"] <= 0.01),
        ("numpy inertia within 1% of best(sklearn, FAISS)", f"{100 * rel['numpy']:+.3f}%", rel["numpy"] <= 0.01),
        ("default >= 5x faster than sklearn", f"{ratio(t['sklearn'], t['default']):.2f}x",
         ratio(t["sklearn"], t["default"]) >= 5.0),
    ]
    print_table("targets (printed, not asserted; timings are noisy on a busy machine)",
                ["target", "measured", "status"], [[name, got, verdict(ok)] for name, got, ok in targets])

    emit_result(
        "kmeans",
        {"n": args.n, "dim": args.dim, "k": args.k, "iters": args.iters, "blobs": blobs,
         "repeats": max(1, args.repeats), "seed": args.seed},
        {
            "seconds": t, "seconds_all": times, "inertia": j, "inertia_best_ref": best_ref,
            "inertia_rel_to_best": rel,
            "ratio_vs_faiss": {m: ratio(t[m], t["faiss"]) for m in METHODS},
            "ratio_vs_sklearn": {m: ratio(t[m], t["sklearn"]) for m in METHODS},
            "targets": {name: {"measured": got, "met": ok} for name, got, ok in targets},
            "threads": threads,
        },
    )


if __name__ == "__main__":
    main()
