"""Command line: ``embcluster serve`` runs the service; the other commands talk to one.

Every command other than ``serve`` and ``keys`` talks to a server through the gRPC API (the
server process owns its Qdrant Edge shards, so nothing else may open them while it runs), at
``--target HOST:PORT`` (alias ``--server``; default ``EMBCLUSTER_TARGET``, else 127.0.0.1:50051).
``demo`` without ``--target`` starts an embedded server of its own. Each command lives in a
``cli_*`` module that adds its parser and a ``COMMANDS`` entry (name -> handler).
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Sequence

from . import (cli_clusters, cli_collections, cli_demo, cli_events, cli_points, cli_report, cli_security, cli_serve,
               cli_snapshot, cli_tools)
from .cli_client import TARGET_ENV, Handler

__all__ = ["main", "COMMANDS"]

logger = logging.getLogger(__name__)


#: Each command's handler (parsed arguments -> exit status).
COMMANDS: dict[str, Handler] = {"keys": cli_security.run, **cli_collections.COMMANDS, **cli_clusters.COMMANDS,
                                **cli_points.COMMANDS, **cli_tools.COMMANDS, **cli_demo.COMMANDS,
                                **cli_snapshot.COMMANDS, **cli_report.COMMANDS, **cli_events.COMMANDS}


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
    serve.add_argument("--no-metrics", action="store_true",
                       help="do not serve Prometheus metrics (nor the live report, which shares their port)")
    serve.add_argument("--no-live-report", action="store_true",
                       help="do not serve the cluster reports at /report/ beside the metrics")
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
    cli_collections.add_parsers(sub)
    cli_points.add_parsers(sub)
    cli_clusters.add_parsers(sub)
    cli_events.add_parsers(sub)
    cli_tools.add_parsers(sub)
    cli_demo.add_parser(sub)
    cli_snapshot.add_parsers(sub)
    cli_report.add_parser(sub)
    cli_security.add_parsers(sub)
    args = parser.parse_args(argv)
    # Read once here: the default server of every client command (demo: only an explicit --target).
    args.env_target = os.environ.get(TARGET_ENV, "").strip() or None
    if args.command == "serve":  # run as the program (no argv given): it ends the process itself
        return cli_serve.serve(args, as_program=argv is None)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
