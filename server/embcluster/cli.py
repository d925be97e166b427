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
import signal
import sys
import threading
from pathlib import Path
from typing import Sequence

from . import cli_clusters, cli_collections, cli_demo, cli_security, cli_snapshot, cli_tools
from .cli_client import TARGET_ENV, Handler

__all__ = ["main", "COMMANDS"]

logger = logging.getLogger(__name__)


def _configure_logging(level: str, fmt: str = "text") -> None:
    from .logs import configure_logging

    configure_logging(level, "json" if fmt == "json" else "text")


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .config import Settings

    overrides = {k: v for k, v in {"host": args.host, "port": args.port, "data_dir": args.data_dir,
                                   "log_level": args.log_level, "store": getattr(args, "store", None),
                                   "qdrant_url": getattr(args, "qdrant_url", None),
                                   "qdrant_path": getattr(args, "qdrant_path", None),
                                   "log_format": getattr(args, "log_format", None),
                                   "metrics_port": getattr(args, "metrics_port", None),
                                   "metrics_host": getattr(args, "metrics_host", None),
                                   "metrics_enabled": False if getattr(args, "no_metrics", False) else None,
                                   "api_keys_file": getattr(args, "api_keys_file", None),
                                   "insecure_open": True if getattr(args, "insecure_open", False) else None,
                                   "tls_cert_file": getattr(args, "tls_cert", None),
                                   "tls_key_file": getattr(args, "tls_key", None),
                                   "tls_client_ca_file": getattr(args, "tls_client_ca", None),
                                   }.items() if v is not None}
    return Settings(**overrides)


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from .api.server import GrpcServer
    from .config import describe_settings_error
    from .errors import EmbclusterError
    from .pipeline import EmbclusterService
    from .runtime import limit_blas_threads

    try:
        settings = _settings(args)
    except (ValidationError, SettingsError) as exc:
        print(f"embcluster: invalid settings:\n{describe_settings_error(exc)}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level, settings.log_format)
    from prometheus_client import disable_created_metrics

    # No "<name>_created" series beside every counter and histogram: undocumented, and one more
    # series per label set to store. Process-wide, hence here and not in ServiceMetrics.
    disable_created_metrics()
    for directory in settings.snapshot_dirs:  # a typo here would only show at the first export
        if not directory.is_dir():
            logger.warning("EMBCLUSTER_SNAPSHOT_DIRS: %s is not a directory; exports and imports there fail "
                           "until it exists", directory)
    limit_blas_threads(settings.blas_threads)
    try:
        service = EmbclusterService(settings)  # connects to the store (a Qdrant server: fails fast)
    except EmbclusterError as exc:
        print(f"embcluster: {exc.message}", file=sys.stderr)
        return 1
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
    endpoint = None
    if settings.metrics_enabled:
        from .metrics import MetricsEndpoint

        try:
            endpoint = MetricsEndpoint(
                service.metrics, settings.metrics_host, settings.metrics_port,
                authorize=server.keys.http_status if server.keys else None,  # the gRPC port's keys
                certfile=_str(settings.tls_cert_file), keyfile=_str(settings.tls_key_file),
                client_cafile=_str(settings.tls_client_ca_file))
            print(f"embcluster metrics on {endpoint.url}", flush=True)
        except OSError as exc:  # an auxiliary endpoint: the service itself still runs
            logger.warning("metrics endpoint disabled: cannot bind %s:%d (%s); set EMBCLUSTER_METRICS_PORT "
                           "(0 = any free port) or --no-metrics", settings.metrics_host, settings.metrics_port, exc)
    server.start()
    # A line tools can wait for (tests parse the port from it).
    print(f"embcluster serving on {server.address} (data: {Path(settings.data_dir).resolve()})", flush=True)
    stop.wait()
    logger.info("shutting down")
    clean = server.stop()  # bounded: grace period, then every open call is cancelled
    if endpoint is not None:
        endpoint.close()
    service.close()
    if not clean:  # a handler thread outlived its cancellation: exiting must not wait for it
        logging.shutdown()
        os._exit(0)
    return 0


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


#: Each command's handler (parsed arguments -> exit status).
COMMANDS: dict[str, Handler] = {"serve": _serve, "keys": cli_security.run, **cli_collections.COMMANDS,
                                **cli_clusters.COMMANDS, **cli_tools.COMMANDS, **cli_demo.COMMANDS,
                                **cli_snapshot.COMMANDS}


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
    cli_collections.add_parsers(sub)
    cli_clusters.add_parsers(sub)
    cli_tools.add_parsers(sub)
    cli_demo.add_parser(sub)
    cli_snapshot.add_parsers(sub)
    cli_security.add_parsers(sub)
    args = parser.parse_args(argv)
    # Read once here: the default server of every client command (demo: only an explicit --target).
    args.env_target = os.environ.get(TARGET_ENV, "").strip() or None
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
