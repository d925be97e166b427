"""``embcluster export`` / ``embcluster import``: snapshots from the command line.

Two modes:

* **through a running server** (default, ``--target HOST:PORT``, alias ``--server``): the server writes or reads
  the file, so the path is on the *server's* machine (relative = under its
  ``<data_dir>/snapshots``);
* **offline** (``--data-dir DIR``, no server running on it): the service is opened in this
  process on ``DIR`` with the backend chosen by ``--store`` (plus ``--qdrant-url`` or
  ``--qdrant-path``, or the ``EMBCLUSTER_*`` environment), e.g. to move a collection from Qdrant
  Edge into a Qdrant server. A server running on the same Edge data directory holds its shards:
  the offline open then fails with a clear message (use the API instead).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from .cli_client import Handler, add_connection_flags, connect, guarded

__all__ = ["COMMANDS", "add_parsers", "run"]

logger = logging.getLogger(__name__)


def add_parsers(sub: Any) -> None:
    """Add the ``export`` and ``import`` sub-commands to ``embcluster``'s sub-parsers."""
    exp = sub.add_parser("export", help="write a collection to a snapshot file (to move or back it up)")
    exp.add_argument("collection")
    exp.add_argument("path", help="snapshot file (through a server: on the server's machine)")
    exp.add_argument("--overwrite", action="store_true", help="replace an existing file")
    imp = sub.add_parser("import", help="create a collection from a snapshot file")
    imp.add_argument("path", help="snapshot file (through a server: on the server's machine)")
    imp.add_argument("--as", dest="name", default="", help="name of the new collection (default: the snapshot's)")
    for p in (exp, imp):
        p.add_argument("--data-dir", help="offline: open this data directory in-process (no server may run on it)")
        p.add_argument("--store", choices=["edge", "qdrant"], help="offline: vector store backend (env EMBCLUSTER_STORE)")
        p.add_argument("--qdrant-url", help="offline, --store qdrant: Qdrant server URL")
        p.add_argument("--qdrant-path", help="offline, --store qdrant: qdrant-client local-mode directory")
        p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
        add_connection_flags(p)


def run(args: argparse.Namespace) -> int:
    """Run ``export`` or ``import``; prints the summary, returns the exit status."""
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if args.data_dir:
        if args.target:
            print("embcluster: give --target (through a server) or --data-dir (offline), not both", file=sys.stderr)
            return 2
        return _offline(args)
    if args.store or args.qdrant_url or args.qdrant_path:
        print("embcluster: --store/--qdrant-url/--qdrant-path need --data-dir (offline mode); a server "
              "uses its own backend", file=sys.stderr)
        return 2
    return _through_server(args)


def _print(summary: Any, verb: str) -> None:
    print(f"{verb} {summary.source_collection!r} -> {summary.collection!r}: {summary.points} points, "
          f"{summary.models} model versions (serving v{summary.served_model_version}), "
          f"{summary.bytes} bytes, sha256 {summary.sha256} [{summary.path}] in {summary.seconds:.1f}s")


def _through_server(args: argparse.Namespace) -> int:
    with connect(args, timeout=30) as client:
        if args.command == "export":
            _print(client.export_collection(args.collection, args.path, overwrite=args.overwrite), "exported")
        else:
            _print(client.import_collection(args.path, name=args.name), "imported")
    return 0


def _offline(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from .config import Settings, describe_settings_error
    from .datalock import DataDirLock
    from .errors import EmbclusterError
    from .pipeline import EmbclusterService
    from .snapshot import export_collection, import_collection

    overrides = {k: v for k, v in {"data_dir": args.data_dir, "store": args.store, "qdrant_url": args.qdrant_url,
                                   "qdrant_path": args.qdrant_path}.items() if v is not None}
    try:
        settings = Settings(**overrides)
    except (ValidationError, SettingsError) as exc:
        print(f"embcluster: invalid settings:\n{describe_settings_error(exc)}", file=sys.stderr)
        return 2
    from .progress import Progress

    bar: list[Progress] = []  # one bar per phase (verify: bytes; export/import: points)

    def progress(phase: str, done: int, total: int) -> None:
        if not bar or bar[-1].label != phase:
            if bar:
                bar[-1].close()
            bar.append(Progress(phase, total, unit="bytes" if phase == "verify" else "points"))
        bar[-1].update_to(done)

    service: EmbclusterService | None = None
    lock: DataDirLock | None = None
    try:
        lock = DataDirLock(Path(settings.data_dir))  # not while a server (or another tool) has it open
        service = EmbclusterService(settings)  # a Qdrant backend that cannot be reached fails here
        service.open(background=False)  # no runs, catch-ups or scheduler: the next server start does those
        if args.command == "export":
            summary = export_collection(service, args.collection, args.path, overwrite=args.overwrite,
                                        on_progress=progress)
        else:
            summary = import_collection(service, args.path, name=args.name, on_progress=progress)
    except EmbclusterError as exc:
        if bar:
            bar[-1].close()
        print(f"embcluster: {exc.code.name}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        if service is not None:
            service.close()
        if lock is not None:
            lock.release()
    if bar:
        bar[-1].close()
    _print(summary, "exported" if args.command == "export" else "imported")
    return 0


COMMANDS: dict[str, Handler] = {"export": guarded(run), "import": guarded(run)}
