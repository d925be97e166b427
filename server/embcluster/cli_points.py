"""``embcluster points NAME``: every point of a collection with its cluster and anomaly flag (ListPoints).

Talks to a running server (``--target HOST:PORT``, see :mod:`embcluster.cli_client`). A table by
default, JSON lines with ``--json`` (one ListPoints ``Point`` per line, vectors left out).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .cli_client import Handler, add_connection_flags, connect, guarded, positive_int

__all__ = ["COMMANDS", "add_parsers"]

TEXT_WIDTH = 60


def add_parsers(sub: Any) -> None:
    """Add ``points`` to ``embcluster``'s sub-parsers."""
    pts = sub.add_parser("points", help="list a collection's points with their cluster and anomaly flag")
    pts.add_argument("name", help="the collection")
    pts.add_argument("--cluster", type=int, metavar="ID", help="only this cluster's points")
    pts.add_argument("--anomalies", action="store_true", help="only the points flagged as anomalies")
    pts.add_argument("--model-version", type=positive_int, metavar="V",
                     help="only points whose stored labels are version V's")
    pts.add_argument("--limit", type=positive_int, metavar="N", help="at most N points (default: all)")
    pts.add_argument("--json", action="store_true", help="JSON lines: one point per line, every field")
    add_connection_flags(pts)


def _text(point: Any) -> str:
    text = point.text or (json.dumps(_dict(point.source), sort_keys=True) if point.HasField("source") else "")
    text = " ".join(text.split())
    return text if len(text) <= TEXT_WIDTH else text[:TEXT_WIDTH - 1] + "…"


def _dict(message: Any) -> Any:
    from google.protobuf import json_format

    # Every field (cluster 0 and false flags too), 64-bit integers as JSON numbers.
    return json_format.MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True,
                                     unquote_int64_if_possible=True)


def _row(point: Any) -> tuple[str, ...]:
    ident = point.external_id or point.point_id
    if not point.HasField("assignment"):
        return ident, "-", "-", "-", "-", _text(point)
    a = point.assignment
    return (ident, str(a.cluster_id), f"{a.cluster_distance:.4f}", f"{a.anomaly_score:.3f}",
            "yes" if a.is_anomaly else "", _text(point))


def _points(args: argparse.Namespace) -> int:
    limit = args.limit
    page_size = min(limit, 500) if limit else 500
    shown: list[Any] = []
    more = False
    with connect(args) as client:
        token = ""
        while True:
            page = client.list_points(args.name, cluster_id=args.cluster, anomalies=True if args.anomalies else None,
                                      model_version=args.model_version, page_size=page_size, page_token=token)
            shown.extend(page.points)
            token = page.next_page_token
            if limit and len(shown) >= limit:
                more = len(shown) > limit or bool(token)
                shown = shown[:limit]
                break
            if not token:
                break
    if args.json:
        for p in shown:
            print(json.dumps(_dict(p), ensure_ascii=False, sort_keys=True))
    else:
        header = ("id", "cluster", "distance", "score", "anomaly", "text")
        rows = [_row(p) for p in shown]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
        right = {1, 2, 3}
        for row in [header, *rows]:
            cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
            print("  ".join([*cells, row[-1]]).rstrip())
    if not shown:
        print(f"no points in {args.name!r} match", file=sys.stderr)
    elif more:
        print(f"first {len(shown)} points shown; raise --limit for more", file=sys.stderr)
    return 0


COMMANDS: dict[str, Handler] = {"points": guarded(_points)}
