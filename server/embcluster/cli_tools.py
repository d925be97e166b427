"""``embcluster cluster`` and ``embcluster ingest`` (long commands with progress bars) and
``embcluster health``, all over the API.

Each talks to a running server (``--target HOST:PORT``, see :mod:`embcluster.cli_client`). Bars
go to stderr (tqdm on a terminal, plain lines otherwise, see :mod:`embcluster.progress`); results
go to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from .cli_client import Handler, add_connection_flags, connect, guarded, rpc_error_message
from .cli_events import print_events
from .cli_security import client_options
from .progress import Progress

__all__ = ["COMMANDS", "add_parsers", "watch_with_progress", "print_run_result"]


def add_parsers(sub: Any) -> None:
    """Add the ``cluster``, ``ingest`` and ``health`` sub-commands to an argparse sub-parser set."""
    cl = sub.add_parser("cluster", help="start a clustering run, show its progress, then the clusters it made")
    cl.add_argument("collection")
    which = cl.add_mutually_exclusive_group()
    which.add_argument("-k", type=int, help="number of clusters (default: the collection's default_k)")
    which.add_argument("--k-range", type=int, nargs=2, metavar=("A", "B"),
                       help="choose k in [A, B] by rank vote (the per-k scores are printed)")
    cl.add_argument("--seed", type=int, help="random seed (default: the collection's)")

    ing = sub.add_parser("ingest", help="ingest a JSONL, CSV or Parquet file (resumable, with a progress bar)")
    ing.add_argument("file", type=Path)
    ing.add_argument("--collection", "-c", required=True, help="target collection (must exist)")
    ing.add_argument("--batch-size", type=int, default=256, help="rows per Ingest call (default 256)")
    ing.add_argument("--format", choices=["jsonl", "csv", "parquet"], help="default: from the file's suffix")
    ing.add_argument("--id-field", help="field with the caller's id (default 'id', optional per row; "
                                        "when given, every row must have it)")
    ing.add_argument("--text-field", default="text", help="field with the text (TEXT collections; EVENT rows are every field but "
                     "the id and metadata, IMAGE_METADATA rows title/caption/alt_text/tags/attributes)")
    ing.add_argument("--vector-field", default="vector", help="field with the vector (VECTOR collections)")
    ing.add_argument("--metadata-fields", default="", help="comma-separated fields stored as metadata")
    ing.add_argument("--skip-invalid", action="store_true",
                     help="skip bad rows, listing each in FILE.embcluster-skipped.jsonl, instead of stopping")
    ing.add_argument("--skipped-file", type=Path, help="where --skip-invalid lists skipped rows")
    ing.add_argument("--checkpoint", type=Path, help="checkpoint file (default FILE.embcluster-checkpoint.json)")
    ing.add_argument("--restart", action="store_true", help="ignore the checkpoint and start from the first row")

    hl = sub.add_parser("health", help="exit 0 if the server reports SERVING (container health checks)")
    hl.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")
    add_connection_flags(cl)
    add_connection_flags(ing)
    add_connection_flags(hl, default="env EMBCLUSTER_TARGET, else 127.0.0.1 and the configured port "
                                     "(EMBCLUSTER_PORT or 50051)")


def _health(args: argparse.Namespace) -> int:
    import grpc
    from embcluster_client import EmbclusterClient

    where = args.target or getattr(args, "env_target", None)
    if where is None:  # the port this container's/host's `serve` uses
        from pydantic import ValidationError
        from pydantic_settings import SettingsError

        from .config import Settings, describe_settings_error

        try:
            where = f"127.0.0.1:{Settings().port}"
        except (ValidationError, SettingsError) as exc:
            print(f"embcluster: invalid settings:\n{describe_settings_error(exc)}", file=sys.stderr)
            return 2
    try:
        with EmbclusterClient(where, timeout=args.timeout, **client_options(args)) as client:
            status = client.health()
    except grpc.RpcError as exc:
        print(f"embcluster: {rpc_error_message(exc, where)}", file=sys.stderr)
        return 1
    print(status)
    if status == "NOT_SERVING":  # the server answers: it is starting (loading its text model) or stopping
        print(f"embcluster: {where} is up but not ready: it is still loading its text model, or shutting down",
              file=sys.stderr)
    return 0 if status == "SERVING" else 1


def _phase_label(run: Any) -> str:
    return f"cluster {run.collection} ({run.phase or 'pending'})"


def watch_with_progress(client: Any, collection: str, run_id: str, *, stream: TextIO | None = None,
                        tty: bool | None = None) -> Any:
    """Show a run's progress from ``WatchClusteringRun`` until it ends; returns the final run.

    Raises:
        RunFailed: the run ended FAILED or CANCELLED.
    """
    from embcluster_client import RunFailed, pb

    last = None
    bar = Progress(f"cluster {collection}", 100.0, unit="%", stream=stream, tty=tty)
    try:
        for last in client.watch_run(collection, run_id):
            bar.update_to(round(100 * last.progress, 1), _phase_label(last))
    finally:
        bar.close()
    if last is None or last.state != pb.RUN_STATE_SUCCEEDED:
        raise RunFailed(last if last is not None else client.get_clustering_run(collection, run_id))
    return last


def _cluster(args: argparse.Namespace) -> int:
    import grpc
    from embcluster_client import RunFailed, pb

    with connect(args, timeout=60) as client:
        started = client.start_clustering(args.collection, k=args.k,
                                          k_range=tuple(args.k_range) if args.k_range else None, seed=args.seed)
        try:
            final = watch_with_progress(client, args.collection, started.run_id)
        except RunFailed as exc:
            state = pb.RunState.Name(exc.run.state).removeprefix("RUN_STATE_").lower()
            print(f"embcluster: run {started.run_id} {state}" + (f": {exc.run.error}" if exc.run.error else ""),
                  file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            try:
                client.cancel_clustering_run(args.collection, started.run_id)
            except grpc.RpcError as exc:  # the server went away too: say so, no traceback
                print(f"\nembcluster: could not cancel run {started.run_id}: {exc.code().name}: {exc.details()}",
                      file=sys.stderr)
                return 130
            print(f"\nembcluster: asked the server to cancel run {started.run_id} (the previous model stays served)",
                  file=sys.stderr)
            return 130
        except grpc.RpcError as exc:
            print(f"embcluster: lost the run's progress stream: {exc.code().name}: {exc.details()}; "
                  f"the run {started.run_id} goes on on the server", file=sys.stderr)
            return 1
        print_run_result(client, final)
    return 0


def print_run_result(client: Any, run: Any, *, stream: TextIO | None = None) -> None:
    """Print a succeeded run: its model version and k, the per-k scores behind a chosen k, then the
    served model's clusters by size (id, size, radius, anomalies, label), the labels the run changed and
    the version's cluster events (births, deaths, splits, merges, shares that grew or shrank).

    Args:
        client: A connected ``EmbclusterClient``.
        run: The succeeded ``ClusteringRun``.
        stream: Where to print (default stdout).
    """
    import grpc

    out = stream or sys.stdout
    print(f"run {run.run_id}: model v{run.model_version}, k={run.k}, {run.points_labelled} points labelled",
          file=out)
    if len(run.k_scores) > 1:  # a k range: the rank vote that chose k
        print(f"\nk chosen by the lowest mean rank over silhouette (higher is better), Davies-Bouldin (lower), "
              f"Calinski-Harabasz (higher) and the inertia knee:", file=out)
        print(f"{'k':>6} {'silhouette':>10} {'davies-bouldin':>14} {'calinski-harabasz':>17} {'inertia':>12} "
              f"{'knee':>4} {'mean rank':>9}", file=out)
        for s in sorted(run.k_scores, key=lambda s: s.k):
            print(f"{'* ' if s.chosen else '  '}{s.k:>4} {s.silhouette:10.4f} {s.davies_bouldin:14.4f} "
                  f"{s.calinski_harabasz:17.1f} {s.inertia:12.4g} {'yes' if s.knee else '':>4} {s.mean_rank:9.2f}",
                  file=out)
    listing = client.list_clusters(run.collection)
    clusters = sorted(listing.clusters, key=lambda c: (-c.size, c.cluster_id))
    note = "" if listing.model_version == run.model_version else f" (model v{listing.model_version} is served now)"
    print(f"\n{len(clusters)} clusters{note}, by size:", file=out)
    print(f"{'cluster':>7} {'size':>8} {'radius':>8} {'anomalies':>9}  label", file=out)
    for c in clusters:
        label = c.summary.label if c.HasField("summary") and c.summary.label else ""
        print(f"{c.cluster_id:>7} {c.size:>8} {c.radius:8.4f} {c.anomaly_count:>9}  {label}"
              + ("" if c.populated else "  (not populated: its points belong to the nearest populated cluster)"),
              file=out)
    for ch in run.label_changes:
        print(f"label of cluster {ch.cluster_id} changed: {ch.old_label!r} -> {ch.new_label!r}", file=out)
    try:
        events = client.get_model(run.collection, run.model_version).events
    except grpc.RpcError:  # pruned by a later run meanwhile: nothing to add
        events = []
    if events:
        print(f"\ncluster events of v{run.model_version} (`embcluster events {run.collection}`):", file=out)
        print_events(events, stream=out)
    if listing.provisional:
        print("sizes are provisional: points are being relabelled (a write-back or repair); list again later", file=out)


def _ingest(args: argparse.Namespace) -> int:
    from embcluster_client.file_ingest import IngestFailed, IngestOptions, ingest_file

    if args.batch_size < 1:
        print(f"embcluster: --batch-size must be >= 1, got {args.batch_size}", file=sys.stderr)
        return 2
    opts = IngestOptions(
        collection=args.collection, batch_size=args.batch_size, id_field=args.id_field or "id",
        require_id=args.id_field is not None, text_field=args.text_field, vector_field=args.vector_field,
        metadata_fields=tuple(f.strip() for f in args.metadata_fields.split(",") if f.strip()),
        fmt=args.format, skip_invalid=args.skip_invalid, restart=args.restart, checkpoint=args.checkpoint,
        skipped_path=args.skipped_file,
    )
    bar: list[Progress] = []

    def on_start(total: int | None, done: int) -> None:
        if done:
            print(f"resuming {args.file} after row {done} (checkpoint)", file=sys.stderr)
        bar.append(Progress(f"ingest {args.file.name}", total, unit="rows"))

    def on_skip(what: str) -> None:
        print(f"skipped {what}", file=sys.stderr)

    try:
        with connect(args, timeout=300) as client:
            summary = ingest_file(client, args.file, opts, on_start=on_start,
                                  on_batch=lambda n: bar[0].advance(n) if bar else None, on_skip=on_skip)
    except IngestFailed as exc:
        if bar:
            bar[0].close()
        print(f"embcluster: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if bar:
            bar[0].close()
        print(f"\nembcluster: interrupted; progress is checkpointed — run the same command to resume",
              file=sys.stderr)
        return 130
    if bar:
        bar[0].close()
    print(f"ingested {summary.ingested} rows into {args.collection}"
          + (f", skipped {summary.skipped} (listed in {summary.skipped_report})" if summary.skipped else "")
          + (f"; resumed after row {summary.resumed_from_row}" if summary.resumed_from_row else "")
          + f"; checkpoint {summary.checkpoint}")
    return 0


COMMANDS: dict[str, Handler] = {"cluster": guarded(_cluster), "ingest": guarded(_ingest), "health": guarded(_health)}
