"""``embcluster events NAME [--since V] [--follow]``: what each model version did to the clusters.

One line per cluster life-cycle event (BIRTH, DEATH, SPLIT, MERGE, GROW, SHRINK) of every stored
model version after ``--since``, oldest first, read from ``ListModels``; ``--follow`` then keeps
printing the events of each version a run publishes (``WatchClusterEvents``) until Ctrl-C. Talks
to a running server (``--target HOST:PORT``, see :mod:`embcluster.cli_client`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from .cli_client import Handler, add_connection_flags, connect, guarded

__all__ = ["COMMANDS", "add_parsers", "event_line", "print_events"]


def add_parsers(sub: Any) -> None:
    """Add ``events`` to ``embcluster``'s sub-parsers."""
    ev = sub.add_parser("events", help="cluster life-cycle events (birth, death, split, merge, grow, shrink) "
                                       "of each model version; --follow streams new ones")
    ev.add_argument("name", help="the collection")
    ev.add_argument("--since", type=int, default=0, metavar="V",
                    help="only versions after V (default 0: every stored version)")
    ev.add_argument("--follow", "-f", action="store_true",
                    help="then print the events of each new version as runs publish them, until Ctrl-C")
    add_connection_flags(ev)


def event_line(event: Any) -> str:
    """One event as a line: version, kind, cluster, related ids, size and share before -> after."""
    from embcluster_client import pb

    kind = pb.ClusterEventKind.Name(event.kind).removeprefix("CLUSTER_EVENT_KIND_")
    related = list(event.related_ids)
    how = {"SPLIT": f" -> {related}", "MERGE": f" <- {related}", "BIRTH": f" (filed under {related} before)"}
    return (f"v{event.model_version}  {kind:<6}  cluster {event.cluster_id}{how.get(kind, '') if related else ''}: "
            f"{event.size_before} -> {event.size_after} points, {100 * event.share_before:.1f}% -> "
            f"{100 * event.share_after:.1f}%")


def print_events(events: Any, *, stream: TextIO | None = None, flush: bool = False) -> int:
    """Print events, one line each; returns how many."""
    out = stream or sys.stdout
    n = 0
    for e in events:
        print(event_line(e), file=out, flush=flush)
        n += 1
    return n


def _events(args: argparse.Namespace) -> int:
    with connect(args) as client:
        every = client.list_models(args.name)
        models = [m for m in every if m.version > args.since]
        shown = print_events(e for m in models for e in m.events)
        last = max([args.since, *(m.version for m in models)])
        if not args.follow:
            if not shown:
                print(f"no cluster events in {args.name!r} after v{args.since}"
                      + ("" if every else " (no model version yet)"))
            return 0
        call = client.watch_cluster_events(args.name, since_version=last)
        print(f"following {args.name!r} after v{last} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        try:
            print_events(call, flush=True)
        except KeyboardInterrupt:
            call.cancel()
            print("", file=sys.stderr)
            return 0
    return 0


COMMANDS: dict[str, Handler] = {"events": guarded(_events)}
