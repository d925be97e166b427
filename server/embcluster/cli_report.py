"""``embcluster report NAME -o FILE.html``: the collection's cluster report, one self-contained HTML file.

The server makes it (``GetReport``: a map of a sample of points, sizes, the k curves, history over
model versions, the cluster summaries); this command writes it and says what it holds. The file
needs no network and no server to open. Talks to a running server (``--target HOST:PORT``, see
:mod:`embcluster.cli_client`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .cli_client import Handler, add_connection_flags, connect, guarded

__all__ = ["COMMANDS", "add_parser", "describe"]


def _points(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 1 <= value <= 50_000:
        raise argparse.ArgumentTypeError(f"must be in [1, 50000], got {value}")
    return value


def add_parser(sub: Any) -> None:
    """Add ``report`` to ``embcluster``'s sub-parsers."""
    rp = sub.add_parser("report", help="write a collection's cluster report: one HTML file to open in a browser")
    rp.add_argument("name", help="the collection (it needs a served model)")
    rp.add_argument("-o", "--output", type=Path, metavar="FILE.html",
                    help="where to write it (default: NAME-report.html in the current directory)")
    rp.add_argument("--sample", type=_points, default=0, metavar="N",
                    help="most points drawn on the map (default 10000, at most 50000)")
    add_connection_flags(rp)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


def describe(report: Any, path: Path) -> str:
    """What a written report holds, in a few lines (``report``: a ``CollectionReport`` message)."""
    summaries = (f"{report.labelled_clusters} of them labelled" if report.summaries
                 else "no summaries in this version")
    versions = f"{report.versions} model version{'s' if report.versions != 1 else ''}"
    return "\n".join([
        f"wrote {path} ({_size(len(report.html))}): collection {report.collection}, model v{report.model_version}",
        f"  map: {report.points_drawn} of {report.point_count} points ({report.anomalies_drawn} anomalies)",
        f"  clusters: {report.clusters} ({summaries})",
        f"  k curves: {'yes' if report.k_curves else 'no (fixed k)'}; history: {versions}",
        f"  made by the server in {report.seconds:.1f} s; open it in a browser (works offline)",
    ])


def _report(args: argparse.Namespace) -> int:
    path: Path = args.output or Path(f"{args.name}-report.html")
    with connect(args) as client:
        report = client.get_report(args.name, sample_size=args.sample)
    path.write_bytes(report.html)
    print(describe(report, path))
    return 0


#: The command's handler (parsed arguments -> exit status).
COMMANDS: dict[str, Handler] = {"report": guarded(_report)}
