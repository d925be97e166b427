"""EVENT on real data: do the anomaly flags of Lending Club loans featurized as events find the bad
loans better than baselines, how fast is featurizing, and do user profiles separate planted
behaviours?

Data: 2,000 Lending Club loans of 2016 Q1 (``embcluster.data.load_lending_club_events``; 17
fields: amounts, rates, counts, grade, state, term, ...; 5.5% labelled ``bad``). Bad loans are
only mildly unusual, so every method here sits well below 1.0; the comparison is what counts.

Through the service (an in-process server, the Python client over loopback), all with the same
k, seed and contamination (0.05):

* **EVENT (InferSchema)**: the schema ``InferSchema`` proposes from 500 of the loans, ingest,
  ``FitFeaturizer``, ``cluster``; each point's ``anomaly_score`` read back with
  ``ListClusterMembers``;
* **TEXT (JSON rendered, MiniLM)**: the same loans as their JSON text in a TEXT collection (the
  naive way to push events through a text model);
* **IsolationForest** (scikit-learn, 100 trees, seed 0) on the raw numeric columns, no service;
* **random scores**: the chance level (AUROC 0.5, AP = the bad share).

Reported: AUROC and average precision of ``anomaly_score`` against ``bad``, the bad share among
the flagged loans, and the ratios EVENT / baseline.

Featurize throughput: events/s of the fitted featurizer's ``transform`` on the 2,000 loans (median
of repeats) vs MiniLM's ``encode`` of the first ``--encode-n`` of their JSON texts on the service's
own model instance (events/s; one timed pass).

Profiles: two synthetic card streams (``embcluster.data.synthetic_events``) into profile
collections keyed by ``user``: NMI and purity of the users' clusters against their planted
behaviour, vs the baseline of clustering the single events (same k) and giving each user the
majority cluster of its events. *planted* (k=2): half the users spend at night with large amounts
at online merchants, half in the daytime with small ones (visible in every event). *loyalty*
(k=6): loyal users always pay their one favourite of five merchants similar amounts, explorers pay
any of them widely varying amounts — no single event tells them apart, only the aggregates do.

    .venv/bin/python bench/bench_events.py [--k 8] [--users 200] [--events-per-user 20] [--no-text] [--encode-n 200]
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.ensemble import IsolationForest  # noqa: E402
from sklearn.metrics import average_precision_score, normalized_mutual_info_score, roc_auc_score  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import InProcessServer, emit_result, print_table, quiet_logs, ratio, time_median  # noqa: E402

CONTAMINATION = 0.05


def _scores(client: Any, name: str) -> dict[str, tuple[float, bool, int]]:
    """external id -> (anomaly_score, is_anomaly, cluster_id) of every point."""
    out = {}
    for c in client.list_clusters(name).clusters:
        for p in client.iter_cluster_members(name, c.cluster_id):
            out[p.external_id] = (p.assignment.anomaly_score, p.assignment.is_anomaly, p.assignment.cluster_id)
    return out


def _fit(client: Any, name: str) -> None:
    import grpc

    while True:
        try:
            run = client.fit_featurizer(name)
            break
        except grpc.RpcError as exc:  # the automatic fit may be running
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            time.sleep(0.1)
    client.wait_for_run(name, run.run_id)


def _profiles_vs_events(c: Any, tag: str, events: list[dict[str, Any]], behaviour: dict[str, int], k: int,
                        seed: int, make_event_schema: Any, fields: list[dict[str, Any]]
                        ) -> tuple[dict[str, float], dict[str, float], float]:
    """Profile collection vs per-event clustering + majority vote: (profile scores, baseline scores, events/s)."""
    users = sorted(behaviour)
    truth = np.array([behaviour[u] for u in users])

    def scores(labels: np.ndarray) -> dict[str, float]:
        purity = sum(np.bincount(truth[labels == v]).max() for v in np.unique(labels)) / len(truth)
        return {"nmi": float(normalized_mutual_info_score(truth, labels)), "purity": float(purity)}

    name = f"users_{tag}"
    c.create_collection(name, input_kind="event", distance="euclid", contamination=0.02,
                        event_schema=make_event_schema(fields, entity_key="user", window_days=30))
    t0 = time.perf_counter()
    for i in range(0, len(events), 500):
        c.ingest(name, [{"event": e} for e in events[i:i + 500]])
    eps = len(events) / (time.perf_counter() - t0)
    _fit(c, name)
    c.cluster(name, k=k, seed=seed)
    got = _scores(c, name)
    prof = np.array([got[u][2] for u in users])
    flat = f"events_{tag}"  # baseline: single events clustered, each user = its events' majority cluster
    c.create_collection(flat, input_kind="event", distance="euclid",
                        event_schema=make_event_schema([f for f in fields if f["name"] != "user"]))
    c.ingest_many(flat, [{"id": f"e{i}", "event": {key: v for key, v in e.items() if key != "user"}}
                         for i, e in enumerate(events)], batch_size=500)
    _fit(c, flat)
    c.cluster(flat, k=k, seed=seed)
    got = _scores(c, flat)
    votes: dict[str, Counter[int]] = {u: Counter() for u in users}
    for i, e in enumerate(events):
        votes[e["user"]][got[f"e{i}"][2]] += 1
    base = np.array([votes[u].most_common(1)[0][0] for u in users])
    return scores(prof), scores(base), eps


def _evaluate(y: np.ndarray, scores: np.ndarray, flags: np.ndarray | None) -> dict[str, float]:
    return {"auroc": float(roc_auc_score(y, scores)), "ap": float(average_precision_score(y, scores)),
            "flag_bad_share": float(y[flags].mean()) if flags is not None and flags.any() else float("nan")}


def main() -> None:
    """Run the benchmark and print tables + the RESULT line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--events-per-user", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-text", action="store_true", help="skip the JSON-text/MiniLM baseline")
    ap.add_argument("--encode-n", type=int, default=200, help="JSON texts timed through MiniLM encode")
    args = ap.parse_args()
    quiet_logs()

    from embcluster.data import load_lending_club_events
    from embcluster.data.synthetic_events import (PROFILE_SCHEMA_FIELDS, loyalty_profile_stream,
                                                  planted_profile_stream)
    from embcluster.embed.events import parse_events
    from embcluster_client import make_event_schema

    rows = load_lending_club_events()
    ids = [r["id"] for r in rows]
    y = np.array([r["bad"] for r in rows])
    results: dict[str, Any] = {}
    with InProcessServer() as srv:
        c = srv.client
        # ---- EVENT
        proposal = c.infer_schema([r["event"] for r in rows[:500]])
        c.create_collection("loans", input_kind="event", distance="euclid", contamination=CONTAMINATION,
                            event_schema=proposal.schema)
        t0 = time.perf_counter()
        c.ingest_many("loans", [{"id": r["id"], "event": r["event"]} for r in rows], batch_size=500)
        ingest_s = time.perf_counter() - t0
        _fit(c, "loans")
        c.cluster("loans", k=args.k, seed=args.seed)
        got = _scores(c, "loans")
        ev = _evaluate(y, np.array([got[i][0] for i in ids]), np.array([got[i][1] for i in ids]))
        results["event"] = {**ev, "ingest_events_per_s": len(rows) / ingest_s}
        # ---- baselines
        num = [k for k, v in rows[0]["event"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        x = np.array([[r["event"][k] for k in num] for r in rows], dtype=np.float64)
        iso = IsolationForest(random_state=0).fit(x)
        iso_scores = -iso.score_samples(x)
        cut = np.quantile(iso_scores, 1 - CONTAMINATION)
        results["iforest"] = _evaluate(y, iso_scores, iso_scores > cut)
        rng = np.random.default_rng(args.seed)
        results["random"] = _evaluate(y, rng.random(len(y)), None)
        texts = [json.dumps(r["event"], sort_keys=True) for r in rows]
        if not args.no_text:
            c.create_collection("loans_text", input_kind="text", contamination=CONTAMINATION)
            c.ingest_many("loans_text", [{"id": r["id"], "text": t} for r, t in zip(rows, texts)], batch_size=250)
            c.cluster("loans_text", k=args.k, seed=args.seed)
            got = _scores(c, "loans_text")
            results["text_json"] = _evaluate(y, np.array([got[i][0] for i in ids]), np.array([got[i][1] for i in ids]))
        table = [["EVENT (InferSchema)", results["event"]["auroc"], results["event"]["ap"],
                  results["event"]["flag_bad_share"], "1.00"]]
        for key, label in (("text_json", "TEXT: JSON via MiniLM"), ("iforest", "IsolationForest (numbers)"),
                           ("random", "random scores")):
            if key in results:
                r = results[key]
                table.append([label, r["auroc"], r["ap"], r["flag_bad_share"],
                              f"{ratio(results['event']['auroc'], r['auroc']):.2f}"])
                results[f"auroc_ratio_event_vs_{key}"] = ratio(results["event"]["auroc"], r["auroc"])
        print_table(f"Lending Club, {len(rows)} loans ({y.mean():.1%} bad), k={args.k}, contamination "
                    f"{CONTAMINATION}", ["method", "AUROC", "AP", "bad share of flags", "EVENT AUROC / this"], table)

        # ---- featurize throughput
        svc = srv.service
        coll = svc.registry.get("loans")
        feat = svc.kinds.event.featurizer(coll)
        records = [{"event": e} for e in parse_events(feat.schema, [r["event"] for r in rows])]
        feat_s, _ = time_median(lambda: feat.transform(records), repeats=args.repeats)
        results["featurize_events_per_s"] = len(rows) / feat_s
        row = [["featurizer.transform", len(rows) / feat_s, "-"]]
        if not args.no_text:
            emb = srv.text_embedder()
            sub = texts[:args.encode_n]  # MiniLM is slow: timed on a subset, compared per event
            enc_s, _ = time_median(lambda: emb.embed(sub), repeats=1, warmup=0)
            results["minilm_json_per_s"] = len(sub) / enc_s
            speedup = ratio(len(rows) / feat_s, len(sub) / enc_s)
            results["featurize_speedup_vs_minilm"] = speedup
            row.append([f"MiniLM encode of the JSON ({len(sub)})", len(sub) / enc_s, f"{speedup:.0f}x"])
        print_table("Featurize throughput (2,000 loans)", ["path", "events/s", "featurizer speed-up"], row)

        # ---- profiles
        streams = [("planted", planted_profile_stream, 2,
                    "two planted behaviours (night/large vs day/small), k=2"),
                   ("loyalty", loyalty_profile_stream, 6,
                    "loyal vs exploring users: visible only in aggregate, k=6")]
        for tag, stream, k, title in streams:
            events, behaviour = stream(n_users=args.users, events_per_user=args.events_per_user, seed=args.seed)
            prof, base, eps = _profiles_vs_events(c, tag, events, behaviour, k, args.seed, make_event_schema,
                                                  PROFILE_SCHEMA_FIELDS)
            results[f"profiles_{tag}"] = {**prof, "events_per_s": eps}
            results[f"events_majority_{tag}"] = base
            print_table(f"Profiles: {len(events)} transactions of {len(behaviour)} users, {title}",
                        ["method", "NMI", "purity"],
                        [["profile points (entity_key=user)", prof["nmi"], prof["purity"]],
                         ["single events, user = majority", base["nmi"], base["purity"]]])
            print(f"profile ingest: {eps:.0f} events/s")
    emit_result("events", vars(args), results)


if __name__ == "__main__":
    main()
