"""``embcluster demo``: real data ingested, clustered and printed, against a running server or an
embedded one.

Without ``--target`` the demo starts its own server on a temporary data directory and removes it
at the end (also after an error or Ctrl-C); ``--keep-data DIR`` keeps the data in ``DIR`` instead.
The demo never deletes a collection it did not create in this run: an existing one is refused
unless ``--replace`` says to delete and recreate it. Progress goes to stderr
(:class:`embcluster.progress.Progress`), results to stdout.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Iterator

from .cli_client import Handler, add_connection_flags, connect, guarded
from .cli_tools import watch_with_progress
from .progress import Progress

__all__ = ["COMMANDS", "add_parser", "demo_collections"]

logger = logging.getLogger(__name__)

_DEFAULT_NAMES = {"text": "demo-wordnet", "image_metadata": "demo-icons", "event": "demo-loans"}


def add_parser(sub: Any) -> None:
    """Add ``demo`` to ``embcluster``'s sub-parsers."""
    demo = sub.add_parser("demo", help="ingest and cluster real data (WordNet, icons or loans), print the clusters")
    demo.add_argument("--kind", choices=["text", "image_metadata", "event"], default="text",
                      help="text: WordNet definitions; image_metadata: Phosphor icon metadata (title, tags); "
                           "event: Lending Club loans as events, then user profiles of a synthetic card stream")
    demo.add_argument("--collection", help="collection name (default demo-wordnet / demo-icons / demo-loans; "
                                           "event also makes NAME-users)")
    demo.add_argument("--replace", action="store_true",
                      help="delete and recreate the demo's collections if they exist (refused otherwise)")
    demo.add_argument("--keep-data", metavar="DIR", type=Path,
                      help="embedded server: keep its data in DIR (default: a temporary directory, removed at the end)")
    demo.add_argument("-n", type=int, help="items to ingest (default 2000 of 5141 definitions / all 1512 icons / "
                                           "all 2000 loans)")
    demo.add_argument("-k", type=int, help="clusters (default 12 for text, 18 for icons, 8 for loans)")
    add_connection_flags(demo, default="start an embedded server (EMBCLUSTER_TARGET is not used)")


def demo_collections(kind: str, name: str | None) -> list[str]:
    """The collections ``demo --kind KIND [--collection NAME]`` creates."""
    base = name or _DEFAULT_NAMES[kind]
    return [base, f"{base}-users"] if kind == "event" else [base]


@contextmanager
def _embedded_server(keep: Path | None) -> Iterator[str]:
    """A server in this process on ``keep`` or a temporary directory (removed on the way out)."""
    from .api.server import GrpcServer
    from .config import Settings
    from .logs import configure_logging
    from .pipeline import EmbclusterService

    configure_logging("WARNING", "text")
    data_dir = keep if keep is not None else Path(tempfile.mkdtemp(prefix="embcluster-demo-"))
    service = server = None
    try:
        settings = Settings(port=0, data_dir=data_dir)
        service = EmbclusterService(settings)
        service.open()
        server = GrpcServer(service, settings)
        server.start()
        print(f"started an embedded server on {server.address}"
              + (f" (data kept in {data_dir})" if keep is not None else "")
              + "; pass --target HOST:PORT to use a running one", file=sys.stderr)
        yield server.address
    finally:
        if server is not None:
            server.stop()
        if service is not None:
            service.close()
        if keep is None:
            shutil.rmtree(data_dir, ignore_errors=True)


def _demo(args: argparse.Namespace) -> int:
    if args.target is None:
        with _embedded_server(args.keep_data) as address:
            args.target = address
            return _against_server(args)
    if args.keep_data is not None:
        print("embcluster: --keep-data is for the embedded server; a server given by --target keeps its own data",
              file=sys.stderr)
        return 2
    return _against_server(args)


def _against_server(args: argparse.Namespace) -> int:
    from embcluster_client import RunFailed

    names = demo_collections(args.kind, args.collection)
    with connect(args, timeout=120) as client:
        existing = {c.name for c in client.list_collections()}
        taken = [n for n in names if n in existing]
        if taken and not args.replace:
            print(f"embcluster: collection {', '.join(map(repr, taken))} already exists; the demo does not "
                  "replace a collection it did not create: pass --replace to delete and recreate it, or "
                  "--collection NAME for another name", file=sys.stderr)
            return 1
        for n in taken:
            print(f"replacing collection {n!r} (--replace): deleted", file=sys.stderr)
            client.delete_collection(n)
        if args.kind == "event":  # Lending Club loans as events, then user profiles (see demo_events.py)
            from .demo_events import run_event_demo

            return run_event_demo(client, names[0], args.n, args.k)
        try:
            return _items_demo(client, args.kind, names[0], args.n, args.k)
        except RunFailed as exc:
            print(f"\nembcluster: clustering failed: {exc.run.error}", file=sys.stderr)
            return 1


def _items_demo(client: Any, kind: str, name: str, n: int | None, k: int | None) -> int:
    import grpc

    from .data import load_wordnet

    if kind == "image_metadata":  # Phosphor icon metadata: title + tags as text, a number appended
        from .demo_image import phosphor_demo_items

        spec, items = phosphor_demo_items(n)
        client.create_collection(name, input_kind="image_metadata", contamination=0.01, image_metadata=spec)
        what, k = "Phosphor icons (image metadata)", k or 18
    else:
        items = [{"id": r["id"], "text": r["text"], "metadata": {"word": r["word"], "category": r["category"]}}
                 for r in load_wordnet(n or 2000)]
        client.create_collection(name, input_kind="text", contamination=0.01)
        what, k = "WordNet definitions", k or 12
    started = time.perf_counter()
    with Progress(f"ingest {name}", len(items), unit="items") as bar:
        for i in range(0, len(items), 128):
            batch = items[i:i + 128]
            client.ingest(name, batch)
            bar.advance(len(batch))
    print(f"ingested {len(items)} {what} in {time.perf_counter() - started:.1f}s")
    started_run = client.start_clustering(name, k=k, seed=0)
    try:
        run = watch_with_progress(client, name, started_run.run_id)  # bar on stderr
    except KeyboardInterrupt:  # a running server would go on with the run: stop it, then exit
        with suppress(grpc.RpcError):
            client.cancel_clustering_run(name, started_run.run_id)
        raise
    print(f"\nmodel v{run.model_version}: k={run.k}, {run.points_labelled} points labelled\n")
    _print_clusters(client, name)
    return 0


def _print_clusters(client: Any, name: str) -> None:
    clusters = sorted(client.list_clusters(name).clusters, key=lambda c: -c.size)
    # The server's label (from its cluster summary) beside the category the demo's own metadata says.
    print(f"{'cluster':>7} {'size':>5} {'radius':>6}  {'label (server)':<30} top category         examples")
    for c in clusters:
        members = list(client.list_cluster_members(name, c.cluster_id, page_size=200).points)
        cats = Counter(p.metadata["category"] for p in members).most_common(1)
        top = f"{cats[0][0]} ({cats[0][1] * 100 // max(len(members), 1)}%)" if cats else "-"
        label = _short(c.summary.label, 30) if c.HasField("summary") and c.summary.label else "-"
        examples = sorted(members, key=lambda p: p.assignment.cluster_distance)[:3]
        print(f"{c.cluster_id:>7} {c.size:>5} {c.radius:6.3f}  {label:<30} {top:<20} "
              f"{_short(examples[0].text) if examples else ''}")
        for p in examples[1:]:
            print(f"{'':>74}{_short(p.text)}")
    anomalies = sorted(client.iter_anomalies(name), key=lambda p: -p.assignment.anomaly_score)[:10]
    print(f"\ntop anomalies (of {client.get_collection(name).anomaly_count} flagged; ids as stored, "
          f"for `get_point`):")
    for p in anomalies:
        word = p.metadata["word"]
        label = p.external_id if word in p.external_id else f"{p.external_id} ({word})"
        print(f"  score {p.assignment.anomaly_score:.3f}  cluster {p.assignment.cluster_id:>3}  "
              f"{label}: {_short(p.text, 70)}")


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


COMMANDS: dict[str, Handler] = {"demo": guarded(_demo)}  # Ctrl-C: exit 130, the embedded server cleaned up
