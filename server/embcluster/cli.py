"""Command line: ``embcluster serve`` runs the service; ``embcluster demo`` shows it working.

Every command other than ``serve`` talks to a server through the gRPC API: the server
process owns its Qdrant Edge shards, so nothing else may open them while it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

from . import cli_security, cli_serve, cli_snapshot, cli_tools

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _configure_logging(level: str, fmt: str = "text") -> None:
    from .logs import configure_logging

    configure_logging(level, "json" if fmt == "json" else "text")


def _demo(args: argparse.Namespace) -> int:
    from embcluster_client import EmbclusterClient, RunFailed

    from .data import load_wordnet

    server = None
    service = None
    target = args.target
    if target is None:
        from .api.server import GrpcServer
        from .config import Settings
        from .pipeline import EmbclusterService

        _configure_logging("WARNING")
        data_dir = tempfile.mkdtemp(prefix="embcluster-demo-")
        settings = Settings(port=0, data_dir=Path(data_dir))
        service = EmbclusterService(settings)
        service.open()
        server = GrpcServer(service, settings)
        server.start()
        target = server.address
        print(f"started an embedded server on {target} (data in {data_dir}); "
              f"pass --target HOST:PORT to use a running one")
    try:
        with EmbclusterClient(target, timeout=120, **cli_security.client_options(args)) as client:
            kind = getattr(args, "kind", "text")
            name = args.collection or ("demo-icons" if kind == "image_metadata" else "demo-wordnet")
            if any(c.name == name for c in client.list_collections()):
                client.delete_collection(name)
            if kind == "event":  # Lending Club loans as events, then user profiles (see demo_events.py)
                from .demo_events import run_event_demo

                return run_event_demo(client, args.collection or "demo-loans", args.n, args.k)
            if kind == "image_metadata":  # Phosphor icon metadata: title + tags as text, a number appended
                from .demo_image import phosphor_demo_items

                spec, items = phosphor_demo_items(args.n)
                client.create_collection(name, input_kind="image_metadata", contamination=0.01, image_metadata=spec)
                what, k = "Phosphor icons (image metadata)", args.k or 18
            else:
                items = [{"id": r["id"], "text": r["text"], "metadata": {"word": r["word"], "category": r["category"]}}
                         for r in load_wordnet(args.n or 2000)]
                client.create_collection(name, input_kind="text", contamination=0.01)
                what, k = "WordNet definitions", args.k or 12
            started = time.perf_counter()
            done = 0
            for i in range(0, len(items), 128):
                batch = items[i:i + 128]
                client.ingest(name, batch)
                done += len(batch)
                _bar("ingest", done, len(items))
            print(f"\ningested {done} {what} in {time.perf_counter() - started:.1f}s")
            try:
                print()
                started_run = client.start_clustering(name, k=k, seed=0)
                run = cli_tools.watch_with_progress(client, name, started_run.run_id)  # bar on stderr
            except RunFailed as exc:
                print(f"\nclustering failed: {exc.run.error}", file=sys.stderr)
                return 1
            print(f"\nmodel v{run.model_version}: k={run.k}, {run.points_labelled} points labelled\n")
            _print_clusters(client, name)
    finally:
        if server is not None:
            server.stop()
        if service is not None:
            service.close()
    return 0


def _bar(label: str, done: float, total: float) -> None:
    width = 30
    frac = 0.0 if total <= 0 else min(1.0, done / total)
    sys.stdout.write(f"\r{label:<28} [{'#' * int(frac * width):<{width}}] {frac * 100:5.1f}%")
    sys.stdout.flush()


def _print_clusters(client, name: str) -> None:  # type: ignore[no-untyped-def]
    clusters = sorted(client.list_clusters(name).clusters, key=lambda c: -c.size)
    print(f"{'cluster':>7} {'size':>5} {'radius':>6}  top category         examples")
    for c in clusters:
        members = list(client.list_cluster_members(name, c.cluster_id, page_size=200).points)
        cats = Counter(p.metadata["category"] for p in members).most_common(1)
        top = f"{cats[0][0]} ({cats[0][1] * 100 // max(len(members), 1)}%)" if cats else "-"
        examples = sorted(members, key=lambda p: p.assignment.cluster_distance)[:3]
        print(f"{c.cluster_id:>7} {c.size:>5} {c.radius:6.3f}  {top:<20} {_short(examples[0].text) if examples else ''}")
        for p in examples[1:]:
            print(f"{'':>43}{_short(p.text)}")
    anomalies = sorted(client.iter_anomalies(name), key=lambda p: -p.assignment.anomaly_score)[:10]
    print(f"\ntop anomalies (of {client.get_collection(name).anomaly_count} flagged):")
    for p in anomalies:
        print(f"  score {p.assignment.anomaly_score:.3f}  cluster {p.assignment.cluster_id:>3}  "
              f"{p.metadata['word']!r}: {_short(p.text, 70)}")


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``embcluster`` command."""
    # The models ship inside pip packages; nothing may be fetched from a hub at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="embcluster", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gRPC service (Qdrant Edge under --data-dir)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1; env EMBCLUSTER_HOST)")
    serve.add_argument("--port", type=int, help="port (default 50051; 0 = any free port)")
    serve.add_argument("--data-dir", help="data directory (default ./embcluster-data)")
    serve.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.add_argument("--lazy-model", action="store_true", help="load the text model on first use")
    serve.add_argument("--log-format", choices=["text", "json"], help="log lines (default text; env EMBCLUSTER_LOG_FORMAT)")
    serve.add_argument("--metrics-host", help="metrics HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--metrics-port", type=int, help="metrics HTTP port (default 9464; 0 = any free port)")
    serve.add_argument("--no-metrics", action="store_true", help="do not serve Prometheus metrics")
    serve.add_argument("--store", choices=["edge", "qdrant"], help="vector store (default edge; env EMBCLUSTER_STORE)")
    serve.add_argument("--qdrant-url", help="Qdrant server URL for --store qdrant (env EMBCLUSTER_QDRANT_URL)")
    serve.add_argument("--qdrant-path", help="--store qdrant without a server: qdrant-client's local mode in this "
                                             "directory (tests; slow; env EMBCLUSTER_QDRANT_PATH)")
    serve.add_argument("--api-keys-file", help="API keys: JSON lines of `embcluster keys create` (env "
                                               "EMBCLUSTER_API_KEYS_FILE); every call but health then needs a key")
    serve.add_argument("--insecure-open", action="store_true",
                       help="allow a non-loopback --host without API keys (refused otherwise)")
    serve.add_argument("--tls-cert", help="PEM certificate of the gRPC port (TLS; with --tls-key)")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    serve.add_argument("--tls-client-ca", help="PEM CA: require client certificates it signed (mTLS)")
    demo = sub.add_parser("demo", help="ingest and cluster WordNet definitions, print the clusters")
    demo.add_argument("--target", help="HOST:PORT of a running server (default: start an embedded one)")
    demo.add_argument("--kind", choices=["text", "image_metadata", "event"], default="text",
                      help="text: WordNet definitions; image_metadata: Phosphor icon metadata (title, tags); "
                           "event: Lending Club loans as events, then user profiles of a synthetic card stream")
    demo.add_argument("--collection", help="collection name (default demo-wordnet / demo-icons)")
    demo.add_argument("-n", type=int, help="items to ingest (default 2000 of 5141 definitions / all 1512 icons)")
    demo.add_argument("-k", type=int, help="clusters (default 12 for text, 18 for icons)")
    cli_security.add_client_flags(demo)
    cli_snapshot.add_parsers(sub)
    cli_tools.add_parsers(sub)
    cli_security.add_parsers(sub)
    args = parser.parse_args(argv)
    if args.command in cli_tools.COMMANDS:
        return cli_tools.run(args)
    if args.command in ("export", "import"):
        return cli_snapshot.run(args)
    if args.command == "keys":
        return cli_security.run(args)
    if args.command == "serve":  # run as the program (no argv given): it ends the process itself
        return cli_serve.serve(args, as_program=argv is None)
    return _demo(args)


if __name__ == "__main__":
    raise SystemExit(main())
