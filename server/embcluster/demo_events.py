"""The EVENT half of ``embcluster demo --kind event``: real loans as events, then user profiles.

1. 2,000 Lending Club loans (``embcluster.data.load_lending_club_events``) go into an EVENT
   collection whose schema ``InferSchema`` proposes from 500 of them; the featurizer is fitted on
   all of them (``FitFeaturizer``), the loans are clustered, and each cluster is printed with its
   share of loans labelled *bad*, then the top anomalies with their fields.
2. A synthetic card-transaction stream with two planted behaviours (night-time large amounts vs
   daytime small purchases) goes into a profile collection keyed by ``user``; its two clusters
   are printed with how many users of each behaviour they hold.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from embcluster_client import EmbclusterClient, make_event_schema

from .data import load_lending_club_events
from .data.synthetic_events import PROFILE_SCHEMA_FIELDS, planted_profile_stream
from .progress import Progress

__all__ = ["run_event_demo"]


def run_event_demo(client: EmbclusterClient, name: str, n: int | None = None, k: int | None = None) -> int:
    """Run the demo against a server; returns the exit code.

    Args:
        client: A connected client.
        name: The loans collection (the profiles go into ``<name>-users``); neither may exist (the
            caller checks, and deletes them only when asked to replace them).
        n: Loans to ingest (default all 2,000).
        k: Clusters of the loans (default 8).
    """
    rows = load_lending_club_events(n)
    bad = {r["id"]: r["bad"] for r in rows}
    proposal = client.infer_schema([r["event"] for r in rows[:500]])
    print("InferSchema proposed, from 500 loans:")
    for note in proposal.notes:
        print(f"  {note}")
    client.create_collection(name, input_kind="event", distance="euclid", contamination=0.05,
                             event_schema=proposal.schema)
    started = time.perf_counter()
    items: list[dict[str, Any]] = [{"id": r["id"], "event": r["event"], "metadata": {"bad": r["bad"]}} for r in rows]
    with Progress(f"ingest {name}", len(items), unit="loans") as bar:
        for i in range(0, len(items), 500):
            client.ingest(name, items[i:i + 500])
            bar.advance(len(items[i:i + 500]))
    print(f"\ningested {len(items)} loans as events in {time.perf_counter() - started:.1f}s")
    _fit_featurizer(client, name)
    info = client.get_collection(name)
    print(f"featurizer v{info.featurizer_version} fitted on every loan ({info.dim}-d vectors)")
    run = client.cluster(name, k=k or 8, seed=0)
    print(f"model v{run.model_version}: k={run.k}\n")
    base = sum(bad.values()) / max(len(bad), 1)
    print(f"{'cluster':>7} {'size':>5} {'radius':>7} {'bad share':>9}   label (server; all loans: {base:.1%} bad)")
    for c in sorted(client.list_clusters(name).clusters, key=lambda c: -c.size):
        members = list(client.iter_cluster_members(name, c.cluster_id))
        share = sum(bad[p.external_id] for p in members) / max(len(members), 1)
        label = c.summary.label if c.HasField("summary") else ""
        print(f"{c.cluster_id:>7} {c.size:>5} {c.radius:7.3f} {share:9.1%}   {label}".rstrip())
    flagged = sorted(client.iter_anomalies(name), key=lambda p: -p.assignment.anomaly_score)
    share = sum(bad[p.external_id] for p in flagged) / max(len(flagged), 1)
    print(f"\n{len(flagged)} loans flagged, {share:.1%} of them bad; the top five:")
    for p in flagged[:5]:
        ev = dict(p.source.items())
        print(f"  score {p.assignment.anomaly_score:6.2f}  {p.external_id:<9} bad={bad[p.external_id]!s:<5} "
              f"amount={ev.get('funded_amnt'):.0f} income={ev.get('annual_inc'):.0f} "
              f"rate={ev.get('int_rate')} grade={ev.get('sub_grade')} util={ev.get('revol_util')}")

    users = f"{name}-users"
    events, behaviour = planted_profile_stream(n_users=80, events_per_user=20, seed=1)
    client.create_collection(users, input_kind="event", distance="euclid", contamination=0.02,
                             event_schema=make_event_schema(PROFILE_SCHEMA_FIELDS, entity_key="user", window_days=30))
    for i in range(0, len(events), 400):
        client.ingest(users, [{"event": e} for e in events[i:i + 400]])
    _fit_featurizer(client, users)
    client.cluster(users, k=2, seed=0)
    print(f"\n{len(events)} card transactions of {len(behaviour)} users -> one profile point per user, k=2:")
    for c in client.list_clusters(users).clusters:
        members = list(client.iter_cluster_members(users, c.cluster_id))
        kinds = Counter("night, large amounts" if behaviour[p.external_id] else "daytime, small" for p in members)
        print(f"  cluster {c.cluster_id}: {c.size} users  {dict(kinds)}")
    return 0


def _fit_featurizer(client: EmbclusterClient, name: str) -> None:
    """Refit on every point: queued behind the automatic fit the ingest may have started (no retry needed)."""
    run = client.fit_featurizer(name)
    client.wait_for_run(name, run.run_id)
