"""``embcluster clusters NAME``, ``embcluster members NAME CLUSTER`` and ``embcluster drift NAME``: what the clusters are, from a shell.

``drift`` prints how far the collection has moved from its served model (``GetDrift``) and the
groups forming among its recent anomalies ("a new group of N points is forming").

``clusters`` prints the served model's clusters by size with their summaries (label, top keywords
or event fields; the nearest members' ids when a collection has nothing else to summarise, e.g.
VECTOR). ``members`` prints a cluster's points, nearest the centroid first when the whole cluster
could be read (at most ``--scan`` points), else in listing order. Both talk to a running server
(``--target HOST:PORT``, see :mod:`embcluster.cli_client`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence, TextIO

from .cli_client import Handler, add_connection_flags, connect, guarded, positive_int

__all__ = ["COMMANDS", "add_parsers", "cluster_rows", "describe_point", "drift_lines"]

_DEFAULT_SCAN = 10_000
_TERMS = 5  # keywords or fields shown per cluster


def add_parsers(sub: Any) -> None:
    """Add ``clusters``, ``members`` and ``drift`` to ``embcluster``'s sub-parsers."""
    cl = sub.add_parser("clusters", help="the served model's clusters: size, share, radius, anomalies, label, "
                                         "top keywords or fields")
    cl.add_argument("name", help="the collection")
    mb = sub.add_parser("members", help="a cluster's points: id, distance to the centroid, anomaly flag, text")
    mb.add_argument("name", help="the collection")
    mb.add_argument("cluster", type=int, help="the cluster id (see `embcluster clusters NAME`)")
    mb.add_argument("--limit", "-n", type=positive_int, default=20, help="points shown (default 20)")
    mb.add_argument("--scan", type=positive_int, default=_DEFAULT_SCAN,
                    help=f"read at most this many members to order them by distance (default {_DEFAULT_SCAN:,}); "
                         "a larger cluster is shown in listing order")
    dr = sub.add_parser("drift", help="how far the collection moved from its served model, and new groups forming "
                                      "among its recent anomalies")
    dr.add_argument("name", help="the collection")
    for p in (cl, mb, dr):
        add_connection_flags(p)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _kind_name(summary: Any) -> str:
    from embcluster_client import pb

    return str(pb.SummaryKind.Name(summary.kind).removeprefix("SUMMARY_KIND_").lower())


def _what(summary: Any | None) -> tuple[str, str]:
    """(label, top keywords / fields / representatives) of a cluster's summary."""
    if summary is None:
        return "-", "(no summary: the version was saved before summaries, or its run could not make them)"
    kind = _kind_name(summary)
    if kind == "representatives_only":
        ids = ", ".join(r.id for r in summary.representatives[:3])
        return "-", f"nearest: {ids}" if ids else "-"
    terms = [f.text for f in summary.fields] if kind == "fields" else [k.term for k in summary.keywords]
    label = summary.label or "-"
    return (label + (" *" if summary.label_changed else "")), ", ".join(terms[:_TERMS]) or "-"


def cluster_rows(listing: Any) -> list[tuple[str, ...]]:
    """One table row per cluster of a ``ListClustersResponse``, by size: id, size, share, radius,
    anomalies, label, keywords (or fields, or the nearest members' ids)."""
    total = max(sum(c.size for c in listing.clusters), 1)
    rows: list[tuple[str, ...]] = []
    for c in sorted(listing.clusters, key=lambda c: (-c.size, c.cluster_id)):
        label, terms = _what(c.summary if c.HasField("summary") else None)
        rows.append((str(c.cluster_id), str(c.size), f"{100 * c.size / total:.1f}%", f"{c.radius:.4f}",
                     str(c.anomaly_count), label if c.populated else f"{label} (not populated)", terms))
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                        for i, (cell, w) in enumerate(zip(row, widths))).rstrip(), file=out)


def _clusters(args: argparse.Namespace) -> int:
    with connect(args) as client:
        listing = client.list_clusters(args.name)
    out = sys.stdout
    summarized = [c.summary for c in listing.clusters if c.HasField("summary")]
    kinds = sorted({_kind_name(s) for s in summarized})
    print(f"collection {args.name!r}: model v{listing.model_version}, {len(listing.clusters)} clusters, "
          f"{listing.point_count} points" + (f"; summaries: {', '.join(kinds)}" if kinds else "; no summaries"),
          file=out)
    terms = "keywords" if kinds == ["keywords"] else "fields" if kinds == ["fields"] else "keywords / fields"
    _table(("cluster", "size", "share", "radius", "anomalies", "label", terms), cluster_rows(listing),
           {0, 1, 2, 3, 4}, out)
    changed = sorted((s for s in summarized if s.label_changed), key=lambda s: s.cluster_id)
    if changed:
        print(f"\n* label changed by the run that made v{listing.model_version}:", file=out)
        for s in changed:
            print(f"  cluster {s.cluster_id}: {s.previous_label!r} -> {s.label!r}", file=out)
    if listing.provisional:
        print("sizes are provisional: points are being relabelled (a write-back or repair); list again later",
              file=out)
    return 0


def describe_point(point: Any) -> str:
    """What a point is, in one line: its text, else its event fields (``k=v, ...``), else ``""``."""
    if point.text:
        return str(point.text)
    if point.HasField("source"):
        from google.protobuf import json_format

        source = json_format.MessageToDict(point.source)
        return ", ".join(f"{k}={v}" for k, v in source.items() if not isinstance(v, (dict, list)))
    return ""


def _members(args: argparse.Namespace) -> int:
    with connect(args) as client:
        summary = client.get_cluster(args.name, args.cluster)
        points = []
        complete = False
        for p in client.iter_cluster_members(args.name, args.cluster, page_size=min(1000, args.scan)):
            points.append(p)
            if len(points) >= args.scan:
                break
        else:
            complete = True
    if complete:
        points.sort(key=lambda p: (p.assignment.cluster_distance, p.external_id or p.point_id))
        order = "nearest the centroid first"
    else:
        order = f"in listing order (more than {args.scan:,} members: --scan orders larger clusters by distance)"
    shown = points[:args.limit]
    label = f" {summary.label!r}," if summary.label else ""
    print(f"cluster {args.cluster} of {args.name!r} (model v{summary.model_version}):{label} "
          f"showing {len(shown)} of {len(points) if complete else f'over {args.scan:,}'} members, {order}")
    rows = [(p.external_id or p.point_id, f"{p.assignment.cluster_distance:.4f}",
             "yes" if p.assignment.is_anomaly else "", _short(describe_point(p), 80)) for p in shown]
    _table(("id", "distance", "anomaly", "text"), rows, {1}, sys.stdout)
    return 0


def _num(msg: Any, name: str, fmt: str = ".3f") -> str:
    return format(getattr(msg, name), fmt) if msg.HasField(name) else "-"


def drift_lines(drift: Any) -> list[str]:
    """What ``embcluster drift`` prints of a ``Drift`` message."""
    if not drift.model_version:
        return [f"collection {drift.collection!r}: no model served yet"]
    lines = [f"collection {drift.collection!r}: model v{drift.model_version}, {drift.recent_points} points "
             "labelled since it was served",
             f"  cluster-share PSI {_num(drift, 'psi_shares')}   distance KS {_num(drift, 'distance_ks')}",
             f"  distance p50/p90: fit {_num(drift, 'distance_p50_fit')}/{_num(drift, 'distance_p90_fit')}, "
             f"recent {_num(drift, 'distance_p50_recent')}/{_num(drift, 'distance_p90_recent')}",
             f"  anomaly rate: fit {_num(drift, 'anomaly_rate_fit', '.2%')}, "
             f"recent {_num(drift, 'anomaly_rate_recent', '.2%')}"]
    if drift.HasField("psi_versions"):
        lines.append(f"  vs v{drift.previous_version}: share PSI {drift.psi_versions:.3f}, "
                     f"centroid shift mean/max {_num(drift, 'centroid_shift_mean')}/{_num(drift, 'centroid_shift_max')}")
    if not drift.candidates:
        lines.append("no new group is forming among the recent anomalies")
    for c in drift.candidates:
        about = f": {', '.join(c.keywords)}" if c.keywords else ""
        lines.append(f"a new group of {c.size} points is forming{about} (mean distance {c.mean_distance:.3f}, "
                     f"separation {c.separation:.2f}; e.g. {', '.join(c.nearest_ids[:3])})")
    return lines


def _drift(args: argparse.Namespace) -> int:
    with connect(args) as client:
        drift = client.get_drift(args.name)
    print("\n".join(drift_lines(drift)))
    return 0


COMMANDS: dict[str, Handler] = {"clusters": guarded(_clusters), "members": guarded(_members),
                                "drift": guarded(_drift)}
