"""``embcluster serve``: start-up, serving and shutdown of the service process.

Start-up, in this order (README "Start-up and shutdown", docs/architecture.md):

1. settings and logging; the data directory's lock (:class:`~embcluster.datalock.DataDirLock`:
   one process per data directory);
2. the store connection, then the gRPC port, bound before anything is opened: a port in use is
   a one-line error (``cannot bind 127.0.0.1:50051: address already in use ...``);
3. the default text model starts loading in a background thread (importing sentence-transformers
   and torch is most of a start-up: seconds), while
4. the data directory is opened (collections, start-up repairs); the server starts with health
   NOT_SERVING and prints ``embcluster serving on HOST:PORT``. Every call is answered from then
   on; one that needs the text model waits for it (at most its deadline);
5. when the model is loaded, health turns SERVING and ``embcluster ready: ...`` is printed.
   ``--lazy-model`` skips 3: SERVING at once, the model loads at its first use.

Signals (SIGINT = Ctrl-C, SIGTERM): before the serving line they end the start-up once what
is open is closed (exit 130 / 143, one line on stderr); after it they stop the server (exit 0).
The shutdown logs each step at INFO. A second signal during it says it is still shutting down;
a third exits at once: acknowledged writes survive a killed process (the store's WAL and the
vector log, fsynced or in the page cache), and the next start repairs what was left.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .stop_signals import Interrupted, StopSignals

if TYPE_CHECKING:  # the imports themselves wait until the signal handlers are in place
    from .api.server import GrpcServer
    from .config import Settings
    from .metrics import MetricsEndpoint
    from .pipeline import EmbclusterService

__all__ = ["serve", "settings_from_args"]

logger = logging.getLogger(__name__)

def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings: environment and ``.env`` overridden by the command line flags that were given."""
    from .config import Settings

    overrides = {k: v for k, v in {"host": args.host, "port": args.port, "data_dir": args.data_dir,
                                   "log_level": args.log_level, "store": getattr(args, "store", None),
                                   "qdrant_url": getattr(args, "qdrant_url", None),
                                   "qdrant_path": getattr(args, "qdrant_path", None),
                                   "log_format": getattr(args, "log_format", None),
                                   "metrics_port": getattr(args, "metrics_port", None),
                                   "metrics_host": getattr(args, "metrics_host", None),
                                   "metrics_enabled": False if getattr(args, "no_metrics", False) else None,
                                   "live_report": False if getattr(args, "no_live_report", False) else None,
                                   "api_keys_file": getattr(args, "api_keys_file", None),
                                   "insecure_open": True if getattr(args, "insecure_open", False) else None,
                                   "tls_cert_file": getattr(args, "tls_cert", None),
                                   "tls_key_file": getattr(args, "tls_key", None),
                                   "tls_client_ca_file": getattr(args, "tls_client_ca", None),
                                   }.items() if v is not None}
    return Settings(**overrides)


def serve(args: argparse.Namespace, *, as_program: bool = False) -> int:
    """Run ``embcluster serve`` until SIGINT/SIGTERM; returns the exit status (see the module docstring).

    Args:
        args: The parsed command line.
        as_program: This call is the whole process (the ``embcluster`` command, not a test calling
            ``main``): exit with :func:`os._exit` once everything is closed and flushed. The
            interpreter's own teardown after torch takes seconds and has nothing left to save, and
            it would wait for a model still loading or a handler thread that ignored its cancellation.
    """
    signals = StopSignals()
    try:
        try:
            signals.install()  # inside: a signal right after it is still one line, not a traceback
            code = _Serve(args, signals).run()
        except Interrupted as exc:
            print(f"embcluster: interrupted ({signal.Signals(exc.signum).name}) during start-up; nothing was opened",
                  file=sys.stderr)
            code = 128 + exc.signum
        if as_program:  # the handlers stay: a signal from here on may only say "still shutting down"
            sys.stdout.flush()
            sys.stderr.flush()
            logging.shutdown()
            os._exit(code)
        return code
    finally:  # reached unless the process ended above: a caller in-process gets its handlers back
        signals.restore()


class _Serve:
    """One run of ``serve``: holds what start-up opened, so that any exit closes exactly that."""

    def __init__(self, args: argparse.Namespace, signals: StopSignals) -> None:
        self.args = args
        self.signals = signals
        self.started = time.monotonic()
        self.service: EmbclusterService | None = None
        self.server: GrpcServer | None = None
        self.endpoint: MetricsEndpoint | None = None
        self.model: Future[Any] | None = None
        self.model_error: BaseException | None = None
        self.unlock: Callable[[], None] = lambda: None

    def run(self) -> int:
        from pydantic import ValidationError
        from pydantic_settings import SettingsError

        from .config import describe_settings_error
        from .errors import EmbclusterError

        try:
            settings = settings_from_args(self.args)
        except (ValidationError, SettingsError) as exc:
            print(f"embcluster: invalid settings:\n{describe_settings_error(exc)}", file=sys.stderr)
            return 2
        from .logs import configure_logging

        configure_logging(settings.log_level, "json" if settings.log_format == "json" else "text")
        try:
            try:
                self._start(settings)
            except EmbclusterError as exc:
                print(f"embcluster: {exc.message}", file=sys.stderr)
                return 1
            return self._serve_until_stopped(settings)
        finally:
            self._close()

    def _start(self, settings: Settings) -> None:
        from prometheus_client import disable_created_metrics

        from .api.server import GrpcServer
        from .datalock import DataDirLock
        from .pipeline import EmbclusterService
        from .runtime import limit_blas_threads

        # No "<name>_created" series beside every counter and histogram: undocumented, and one more
        # series per label set to store. Process-wide, hence here and not in ServiceMetrics.
        disable_created_metrics()
        for directory in settings.snapshot_dirs:  # a typo here would only show at the first export
            if not directory.is_dir():
                logger.warning("EMBCLUSTER_SNAPSHOT_DIRS: %s is not a directory; exports and imports there fail "
                               "until it exists", directory)
        limit_blas_threads(settings.blas_threads)
        self.unlock = DataDirLock(Path(settings.data_dir)).release
        self.service = EmbclusterService(settings)  # connects to the store (a Qdrant server: fails fast)
        self.server = GrpcServer(self.service, settings)  # binds the port: in use = a clear error, nothing opened
        if not self.args.lazy_model:  # importing torch takes seconds: overlap it with the opening
            self.model = self.service.embedders.load_in_background(settings.default_text_model)
        self.signals.enter("opening the data directory")  # from here a signal only asks to stop
        self.service.open()
        self.endpoint = self._metrics_endpoint(settings)

    def _metrics_endpoint(self, settings: Settings) -> MetricsEndpoint | None:
        if not settings.metrics_enabled:
            return None
        from .live_report import PREFIX, LiveReport
        from .metrics import MetricsEndpoint

        assert self.service is not None and self.server is not None
        # The live view shares the endpoint's port, TLS and keys (it checks them per collection).
        routes = {PREFIX: LiveReport(self.service, keys=self.server.keys)} if settings.live_report else {}
        try:
            endpoint = MetricsEndpoint(
                self.service.metrics, settings.metrics_host, settings.metrics_port,
                authorize=self.server.keys.http_status if self.server.keys else None,  # the gRPC port's keys
                certfile=_str(settings.tls_cert_file), keyfile=_str(settings.tls_key_file),
                client_cafile=_str(settings.tls_client_ca_file), routes=routes)
        except OSError as exc:  # an auxiliary endpoint: the service itself still runs
            logger.warning("metrics endpoint disabled: cannot bind %s:%d (%s); set EMBCLUSTER_METRICS_PORT "
                           "(0 = any free port) or --no-metrics", settings.metrics_host, settings.metrics_port, exc)
            return None
        print(f"embcluster metrics on {endpoint.url}", flush=True)
        if routes:
            print(f"embcluster live report on {endpoint.base_url}{PREFIX}/", flush=True)
        return endpoint

    def _serve_until_stopped(self, settings: Settings) -> int:
        assert self.server is not None
        interrupted_early = self.signals.stopping  # while the data directory was opening
        if not interrupted_early:
            self.server.start(ready=self.model is None)
            # A line tools can wait for (tests parse the port from it).
            print(f"embcluster serving on {self.server.address} (data: {Path(settings.data_dir).resolve()})",
                  flush=True)
            self.signals.enter("serving")
            if self.model is None:
                print("embcluster ready (--lazy-model: the text model loads at its first use)", flush=True)
            else:
                self.model.add_done_callback(lambda done: self._model_done(done, settings.default_text_model))
            self.signals.wait()
        self.signals.enter("shutting down")
        if interrupted_early:
            print(f"embcluster: interrupted ({signal.Signals(self.signals.signum).name}) during start-up; closing "
                  "the data directory", file=sys.stderr)
        elif self.model_error is None:
            logger.info("shutting down (%s)", signal.Signals(self.signals.signum).name)
        return self._shutdown(128 + self.signals.signum if interrupted_early else 1 if self.model_error else 0)

    def _model_done(self, done: Future[Any], name: str) -> None:
        """In the loader thread: health SERVING, or the load failed and the server stops."""
        server = self.server
        if server is None or self.signals.stopping:  # shutting down already
            return
        error = done.exception()
        if error is not None:
            self.model_error = error
            logger.error("cannot load the default text model %s: %s", name, error)
            print(f"embcluster: cannot load the default text model {name}: {error}; stopping", file=sys.stderr,
                  flush=True)
            self.signals.request_stop()
            return
        server.set_ready()
        seconds = float(getattr(done.result(), "load_seconds", 0.0))
        logger.info("ready: health SERVING %.1f s after start-up began", time.monotonic() - self.started)
        print(f"embcluster ready: text model {name} loaded in {seconds:.1f} s (health SERVING)", flush=True)

    def _shutdown(self, code: int) -> int:
        """Stop serving and close everything, logging each step; returns ``code``."""
        started = time.perf_counter()
        if self.server is not None:
            self.server.stop()  # bounded: grace period, then every open call is cancelled (a straggler is logged)
            logger.info("shutdown: gRPC server stopped in %.1f s", time.perf_counter() - started)
            self.server = None
        self._close()
        logger.info("stopped in %.1f s", time.perf_counter() - started)
        return code

    def _close(self) -> None:
        """Close whatever is open (idempotent): metrics endpoint, service, the data directory's lock."""
        if self.server is not None:  # start-up failed after binding: nothing was served
            self.server.stop(grace=0)
            self.server = None
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None
        if self.service is not None:
            self.service.close()
            self.service = None
        self.unlock()
        self.unlock = lambda: None


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
