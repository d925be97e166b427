"""Command line: ``embcluster serve`` runs the service; ``embcluster demo`` shows it working.

Every command other than ``serve`` talks to a server through the gRPC API: the server
process owns its Qdrant Edge shards, so nothing else may open them while it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("faiss.loader", "sentence_transformers", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .config import Settings

    overrides = {k: v for k, v in {"host": args.host, "port": args.port, "data_dir": args.data_dir,
                                   "log_level": args.log_level}.items() if v is not None}
    return Settings(**overrides)


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from .api.server import GrpcServer
    from .errors import EmbclusterError
    from .pipeline import EmbclusterService
    from .runtime import limit_blas_threads

    try:
        settings = _settings(args)
    except ValidationError as exc:
        print(f"embcluster: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    limit_blas_threads(settings.blas_threads)
    service = EmbclusterService(settings)
    try:
        service.open()
        server = GrpcServer(service, settings)
    except EmbclusterError as exc:
        print(f"embcluster: {exc.message}", file=sys.stderr)
        service.close()
        return 1
    if not args.lazy_model:
        service.embedders.text(settings.default_text_model)  # load now, not on the first request
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    # A line tools can wait for (tests parse the port from it).
    print(f"embcluster serving on {server.address} (data: {Path(settings.data_dir).resolve()})", flush=True)
    stop.wait()
    logger.info("shutting down")
    server.stop()
    service.close()
    return 0


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
        with EmbclusterClient(target, timeout=120) as client:
            rows = load_wordnet(args.n)
            name = args.collection
            if any(c.name == name for c in client.list_collections()):
                client.delete_collection(name)
            client.create_collection(name, input_kind="text", contamination=0.01)
            started = time.perf_counter()
            done = 0
            for i in range(0, len(rows), 128):
                batch = rows[i:i + 128]
                client.ingest(name, [{"id": r["id"], "text": r["text"],
                                      "metadata": {"word": r["word"], "category": r["category"]}} for r in batch])
                done += len(batch)
                _bar("ingest", done, len(rows))
            print(f"\ningested {done} WordNet definitions in {time.perf_counter() - started:.1f}s")
            try:
                run = client.cluster(name, k=args.k, seed=0,
                                     on_progress=lambda r: _bar(f"cluster ({r.phase})", r.progress, 1.0))
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
    demo = sub.add_parser("demo", help="ingest and cluster WordNet definitions, print the clusters")
    demo.add_argument("--target", help="HOST:PORT of a running server (default: start an embedded one)")
    demo.add_argument("--collection", default="demo-wordnet")
    demo.add_argument("-n", type=int, default=2000, help="definitions to ingest (max 5141)")
    demo.add_argument("-k", type=int, default=12)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return _demo(args)


if __name__ == "__main__":
    raise SystemExit(main())
