"""`embcluster clusters NAME` and `embcluster members NAME CLUSTER` against a real in-process server,
and the labels `embcluster cluster` prints."""

from __future__ import annotations

import re

import numpy as np
import pytest

from embcluster.cli import main
from embcluster.data import load_wordnet

from .conftest import Running


def _rows(out: str, header: str) -> list[list[str]]:
    """The table under the line that starts with ``header``, each line split on runs of two or more spaces."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{header}\b", line.strip()))
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append(re.split(r" {2,}", line.strip()))
    return rows


def test_clusters_shows_labels_and_keywords_and_marks_a_changed_label(running: Running, capsys) -> None:
    c = running.client
    addr = running.server.address
    by_cat: dict[str, list[dict[str, str]]] = {}
    for r in load_wordnet():
        by_cat.setdefault(r["category"], []).append(r)
    plants = by_cat["noun.plant"][:80]
    c.create_collection("docs", input_kind="text")
    c.ingest("docs", [{"id": r["id"], "text": r["text"]} for r in by_cat["verb.motion"][:80]])
    c.ingest("docs", [{"id": r["id"], "text": r["text"]} for r in plants])
    assert main(["cluster", "docs", "-k", "2", "--target", addr]) == 0
    out = capsys.readouterr().out
    served = {cl.cluster_id: cl for cl in c.list_clusters("docs").clusters}
    for cid, cl in served.items():  # the run's table has each cluster's label
        assert re.search(rf"^ +{cid} +{cl.size} +[\d.]+ +{cl.anomaly_count}  {re.escape(cl.summary.label)}$", out, re.M)
    assert "label of cluster" not in out  # nothing to rename in a first run

    assert main(["clusters", "docs", "--target", addr]) == 0
    out = capsys.readouterr().out
    assert out.startswith("collection 'docs': model v1, 2 clusters, 160 points; summaries: keywords\n")
    rows = _rows(out, "cluster")
    assert len(rows) == 2
    for cid, size, share, radius, anomalies, label, keywords in rows:
        cl = served[int(cid)]
        assert (int(size), int(anomalies), label) == (cl.size, cl.anomaly_count, cl.summary.label)
        assert share == f"{100 * cl.size / 160:.1f}%" and float(radius) == round(cl.radius, 4)
        assert keywords == ", ".join(k.term for k in cl.summary.keywords[:5])
    assert [int(r[1]) for r in rows] == sorted((cl.size for cl in served.values()), reverse=True)

    # Plant definitions replaced by food ones: the run and the table say which label changed.
    plant = c.get_point("docs", id=plants[0]["id"]).assignment.cluster_id
    old = served[plant].summary.label
    c.delete_points("docs", ids=[r["id"] for r in plants])
    c.ingest("docs", [{"id": r["id"], "text": r["text"]} for r in by_cat["noun.food"][:110]])
    assert main(["cluster", "docs", "-k", "2", "--target", addr]) == 0
    new = c.get_cluster("docs", plant).label
    assert f"label of cluster {plant} changed: {old!r} -> {new!r}" in capsys.readouterr().out
    assert main(["clusters", "docs", "--target", addr]) == 0
    out = capsys.readouterr().out
    labels = {int(r[0]): r[5] for r in _rows(out, "cluster")}
    assert labels[plant] == f"{new} *" and not labels[next(i for i in labels if i != plant)].endswith("*")
    assert f"* label changed by the run that made v2:\n  cluster {plant}: {old!r} -> {new!r}" in out


def test_members_nearest_first_or_in_listing_order(running: Running, capsys) -> None:
    c = running.client
    addr = running.server.address
    rng = np.random.default_rng(0)
    c.create_collection("vec", input_kind="vector", vector_dim=3, distance="euclid")
    c.ingest("vec", [{"id": f"v{i:03d}", "vector": ([6.0, 0, 0] if i % 2 else [0, 6.0, 0]) + rng.normal(size=3)}
                     for i in range(100)])
    c.cluster("vec", k=2, seed=0)
    cid = c.get_point("vec", id="v001").assignment.cluster_id
    members = list(c.iter_cluster_members("vec", cid))
    nearest = sorted(members, key=lambda p: p.assignment.cluster_distance)

    assert main(["members", "vec", str(cid), "--limit", "5", "--target", addr]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"cluster {cid} of 'vec' (model v1): showing 5 of {len(members)} members, "
                          "nearest the centroid first\n")
    rows = _rows(out, "id")
    assert [r[0] for r in rows] == [p.external_id for p in nearest[:5]]
    assert [float(r[1]) for r in rows] == [round(p.assignment.cluster_distance, 4) for p in nearest[:5]]
    flagged = [p.external_id for p in members if p.assignment.is_anomaly]
    assert main(["members", "vec", str(cid), "--limit", "100", "--target", addr]) == 0
    rows = _rows(capsys.readouterr().out, "id")
    assert len(rows) == len(members) and [r[0] for r in rows if len(r) > 2 and r[2] == "yes"] == \
        [p.external_id for p in nearest if p.external_id in flagged]

    # More members than --scan: the first ones in listing order, and it says so.
    assert main(["members", "vec", str(cid), "--limit", "3", "--scan", "10", "--target", addr]) == 0
    out = capsys.readouterr().out
    assert "showing 3 of over 10 members, in listing order" in out
    assert [r[0] for r in _rows(out, "id")] == [p.external_id for p in members[:3]]

    # VECTOR clusters have representatives only: the table names the nearest members instead.
    assert main(["clusters", "vec", "--target", addr]) == 0
    out = capsys.readouterr().out
    assert "summaries: representatives_only" in out
    row = next(r for r in _rows(out, "cluster") if int(r[0]) == cid)
    assert row[5] == "-" and row[6] == "nearest: " + ", ".join(p.external_id for p in nearest[:3])

    # An unknown cluster or collection: one line, NOT_FOUND, exit 1.
    assert main(["members", "vec", "99", "--target", addr]) == 1
    err = capsys.readouterr().err
    assert err.startswith("embcluster: NOT_FOUND: cluster 99 not in model v1") and "Traceback" not in err
    assert main(["clusters", "nope", "--target", addr]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["members", "vec", str(cid), "--limit", "0", "--target", addr])
    assert exit_.value.code == 2 and "must be >= 1, got 0" in capsys.readouterr().err
