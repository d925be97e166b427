"""``embcluster create``, ``collections``, ``info`` and ``delete``: a collection's life cycle from a shell.

All four talk to a running server (``--target HOST:PORT``, see :mod:`embcluster.cli_client`).
``delete`` asks on a terminal (type the name, or y) and refuses without ``--yes`` when stdin is
not one, so that a script never deletes by accident.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from .cli_client import Handler, add_connection_flags, connect, guarded, target

__all__ = ["COMMANDS", "INDEX_DEFAULTS", "add_parsers"]

# The server's vector index defaults, for --help only (the server applies its own). Written out
# so the CLI does not import the store (and numpy) to print them; a test keeps them equal to
# store.base.VectorIndexSettings'.
INDEX_DEFAULTS = {"m": 16, "ef_construct": 100, "ef": 128, "min_points": 20_000, "quantization": "none"}


def _count(minimum: int) -> Any:
    """An argparse type: an integer >= ``minimum`` (the wire fields are unsigned)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def add_parsers(sub: Any) -> None:
    """Add ``create``, ``collections``, ``info`` and ``delete`` to ``embcluster``'s sub-parsers."""
    cr = sub.add_parser("create", help="create a collection")
    cr.add_argument("name", help="collection name, [A-Za-z0-9_-]{1,64}")
    cr.add_argument("--kind", choices=["text", "vector", "image_metadata", "event"], default="text",
                    help="what is ingested (default text)")
    cr.add_argument("--dim", type=_count(1), help="vector collections: the vectors' dimension")
    cr.add_argument("--distance", choices=["cosine", "euclid"], default="cosine", help="default cosine")
    cr.add_argument("--model", default="", help="text and image_metadata: the embedding model (default: the server's); "
                    "with --tier model_dir: the model's directory on the server")
    cr.add_argument("--tier", default="", help="how the text model runs: full (default), onnx-int8, static, model_dir, "
                    "gpu (the server checks it)")
    cr.add_argument("--contamination", type=float, help="share of points flagged as anomalies, in (0, 0.5]")
    cr.add_argument("--default-k", type=_count(0), help="k of runs that give none")
    cr.add_argument("--min-cluster-size", type=_count(0), help="smallest fit-sample size of a populated cluster")
    cr.add_argument("--seed", type=_count(0), help="seed of runs that give none")
    cr.add_argument("--anomaly-scorer", choices=["ensemble", "cblof", "normalized", "distance"],
                    help="how strange a point is (default ensemble)")
    cr.add_argument("--threshold-mode", choices=["contamination", "cluster_quantile", "absolute"],
                    help="which scores are flagged (default contamination)")
    cr.add_argument("--anomaly-threshold", type=float, help="the absolute mode's threshold")
    cr.add_argument("--no-store-source", action="store_true", help="do not keep each item's text")
    cr.add_argument("--event-schema", type=Path, metavar="FILE.json",
                    help='event collections (required): {"fields": [{"name": "amount", "type": "numeric", '
                         '"log": true}, ...], "entity_key": "", "window_days": 0}, or just the list of fields')
    cr.add_argument("--image-spec", type=Path, metavar="FILE.json",
                    help='image_metadata collections: {"text_fields": [...], "text_attributes": [...], '
                         '"numeric_attributes": [{"key": ..., "low": ..., "high": ...}]} (default: all text fields)')
    index = cr.add_argument_group("vector index, fixed at creation (README \"Vector index\"; default: the server's)")
    d = INDEX_DEFAULTS
    index.add_argument("--index-m", type=_count(1), metavar="M",
                       help=f"edges per point of the HNSW graph (default {d['m']})")
    index.add_argument("--index-ef-construct", type=_count(1), metavar="N",
                       help=f"candidates while building (default {d['ef_construct']})")
    index.add_argument("--index-ef", type=_count(1), metavar="N",
                       help=f"candidates while searching (default {d['ef']})")
    index.add_argument("--index-min-points", type=_count(1), metavar="N",
                       help=f"no index below this many points (default {d['min_points']})")
    index.add_argument("--quantization", choices=["none", "int8"],
                       help=f"int8: graph built and walked on 1-byte codes, rescored on float32 "
                            f"(default {d['quantization']})")
    sched = cr.add_argument_group("re-clustering schedule (default: none)")
    sched.add_argument("--every", type=float, metavar="SECONDS", help="re-cluster every this many seconds")
    sched.add_argument("--after-changes", type=_count(1), metavar="N",
                       help="re-cluster after N points were ingested, replaced or deleted")
    sched.add_argument("--drift-psi", type=float, metavar="X", help="re-cluster when the cluster-share PSI exceeds X")
    sched.add_argument("--drift-ks", type=float, metavar="X",
                       help="re-cluster when the recent distance KS statistic exceeds X (recommended 0.3)")
    sched.add_argument("--anomaly-ratio", type=float, metavar="X",
                       help="re-cluster when the recent anomaly rate exceeds X times the fit's (recommended 5)")
    sched.add_argument("--anomaly-rate", type=float, metavar="SHARE",
                       help="re-cluster when the recent anomaly rate exceeds SHARE (0-1)")
    sched.add_argument("--schedule-k", type=_count(2), metavar="K", help="k of scheduled runs (default: default_k)")
    sched.add_argument("--k-max", type=_count(3), metavar="K",
                       help="a drift-triggered run may add clusters for new groups, up to K")

    ls = sub.add_parser("collections", help="list the collections: kind, points, model, clusters, anomalies, run")
    info = sub.add_parser("info", help="a collection's settings, schedule, counts, served model and runs")
    info.add_argument("name")
    rm = sub.add_parser("delete", help="delete a collection, its points and models (asks first)")
    rm.add_argument("name")
    rm.add_argument("--yes", "-y", action="store_true",
                    help="do not ask (required when stdin is not a terminal)")
    for p in (cr, ls, info, rm):
        add_connection_flags(p)


def _json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} {path}: invalid JSON: {exc}") from None


def _specs(args: argparse.Namespace) -> dict[str, Any]:
    """The event schema, image spec, vector index and schedule options (ValueError names the offending value)."""
    from embcluster_client import make_event_schema, make_image_spec, pb, schedule

    out: dict[str, Any] = {}
    if args.event_schema is not None:
        data = _json_file(args.event_schema, "--event-schema")
        if isinstance(data, list):
            data = {"fields": data}
        if not isinstance(data, dict) or not isinstance(data.get("fields"), list):
            raise ValueError(f"--event-schema {args.event_schema}: expected a list of fields or an object with "
                             "\"fields\"")
        try:
            out["event_schema"] = make_event_schema(**data)
        except TypeError as exc:  # an unknown top-level key
            raise ValueError(f"--event-schema {args.event_schema}: {exc}") from None
    if args.image_spec is not None:
        data = _json_file(args.image_spec, "--image-spec")
        if not isinstance(data, dict):
            raise ValueError(f"--image-spec {args.image_spec}: expected an object")
        try:
            out["image_metadata"] = make_image_spec(**data)
        except TypeError as exc:
            raise ValueError(f"--image-spec {args.image_spec}: {exc}") from None
    knobs = {"m": args.index_m, "ef_construct": args.index_ef_construct, "ef": args.index_ef,
             "min_points": args.index_min_points, "quantization": args.quantization}
    if any(v is not None for v in knobs.values()):
        out["vector_index"] = pb.VectorIndexSettings(**{k: v for k, v in knobs.items() if v is not None})
    triggers = {"interval_s": args.every, "after_changes": args.after_changes, "drift_psi": args.drift_psi,
                "drift_ks": args.drift_ks, "anomaly_ratio": args.anomaly_ratio, "anomaly_rate": args.anomaly_rate}
    if any(v is not None for v in triggers.values()):
        out["schedule"] = schedule(**triggers, k=args.schedule_k, k_max=args.k_max)
    elif args.schedule_k is not None or args.k_max is not None:
        raise ValueError("--schedule-k and --k-max need a trigger: --every, --after-changes, --drift-psi, "
                         "--drift-ks, --anomaly-ratio or --anomaly-rate")
    return out


def _create(args: argparse.Namespace) -> int:
    try:
        specs = _specs(args)
    except ValueError as exc:
        print(f"embcluster: {exc}", file=sys.stderr)
        return 2
    with connect(args) as client:
        coll = client.create_collection(
            args.name, input_kind=args.kind, distance=args.distance, embedding_model=args.model,
            vector_dim=args.dim or 0, store_source=False if args.no_store_source else None,
            contamination=args.contamination, min_cluster_size=args.min_cluster_size, default_k=args.default_k,
            seed=args.seed, anomaly_scorer=args.anomaly_scorer, threshold_mode=args.threshold_mode,
            anomaly_threshold=args.anomaly_threshold, embedding_tier=args.tier, **specs)
    print(f"created {_kind(coll)} collection {coll.name!r} ({coll.embedder}{_tier(coll)}, {coll.dim}-d, {_distance(coll)})")
    return 0


def _kind(coll: Any) -> str:
    from embcluster_client import pb

    return str(pb.InputKind.Name(coll.input_kind).removeprefix("INPUT_KIND_").lower())


def _distance(coll: Any) -> str:
    from embcluster_client import pb

    return str(pb.Distance.Name(coll.distance).removeprefix("DISTANCE_").lower())


def _run_state(run: Any) -> str:
    from embcluster_client import pb

    return str(pb.RunState.Name(run.state).removeprefix("RUN_STATE_").lower())


def _active(coll: Any) -> str:
    """The run in progress in a few words, or ``-``."""
    if not coll.HasField("active_run"):
        return "-"
    run = coll.active_run
    return f"{_run_state(run)} {run.phase} {run.progress * 100:.0f}%"


def _collections(args: argparse.Namespace) -> int:
    with connect(args) as client:
        colls = client.list_collections()
    if not colls:
        print(f"no collections on {target(args)} (create one with `embcluster create NAME`)")
        return 0
    rows = [(c.name, _kind(c), str(c.point_count), f"v{c.served_model_version}" if c.served_model_version else "-",
             str(c.cluster_count), str(c.anomaly_count), _active(c)) for c in sorted(colls, key=lambda c: c.name)]
    header = ("name", "kind", "points", "model", "clusters", "anomalies", "run in progress")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {2, 4, 5}  # counts
    for row in [header, *rows]:
        print("  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                        for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    return 0


def _tier(coll: Any) -> str:
    """How the model runs, when not the default tier (`` on tier static``)."""
    return f" on tier {coll.embedding_tier}" if coll.embedding_tier not in ("", "full") else ""


def _print_info(client: Any, coll: Any, out: TextIO) -> None:
    from google.protobuf import json_format

    s = coll.settings
    print(f"collection {coll.name!r}: {_kind(coll)}, {coll.embedder}{_tier(coll)} ({coll.dim}-d), {_distance(coll)}, "
          f"created {coll.created_at}", file=out)
    print(f"points: {coll.point_count}; clusters: {coll.cluster_count}; anomalies: {coll.anomaly_count}"
          + ("" if coll.store_source else "; sources not stored"), file=out)
    print(f"settings: contamination={s.contamination:g} min_cluster_size={s.min_cluster_size} "
          f"default_k={s.default_k} seed={s.seed} anomaly_scorer={s.anomaly_scorer} "
          f"threshold_mode={s.threshold_mode}"
          + (f" anomaly_threshold={s.anomaly_threshold:g}" if s.HasField("anomaly_threshold") else ""), file=out)
    sched = s.schedule
    triggers = ([f"every {sched.interval_s:g}s"] if sched.HasField("interval_s") else []) \
        + ([f"after {sched.after_changes} changes"] if sched.HasField("after_changes") else []) \
        + ([f"when drift PSI > {sched.drift_psi:g}"] if sched.HasField("drift_psi") else []) \
        + ([f"when distance KS > {sched.drift_ks:g}"] if sched.HasField("drift_ks") else []) \
        + ([f"when the anomaly rate > {sched.anomaly_ratio:g} x the fit's"] if sched.HasField("anomaly_ratio") else []) \
        + ([f"when the anomaly rate > {sched.anomaly_rate:.2%}"] if sched.HasField("anomaly_rate") else [])
    ks = (f"k={sched.k}" if sched.HasField("k") else "") + (f" up to {sched.k_max}" if sched.HasField("k_max") else "")
    print("schedule: " + ("; ".join(triggers) + (f" ({ks.strip()})" if ks else "")
                          if triggers else "none (runs only when asked)"), file=out)
    if coll.served_model_version:
        model = client.get_model(coll.name)
        trigger = model.params.fields["trigger"].string_value if "trigger" in model.params.fields else "manual"
        print(f"served model: v{model.version}, k={model.k}, fitted {model.created_at} ({trigger})", file=out)
    else:
        print("served model: none yet (run `embcluster cluster " + coll.name + "`)", file=out)
    if coll.HasField("active_run"):
        run = coll.active_run
        print(f"run in progress: {run.run_id} {_run_state(run)} ({run.phase}, {run.progress * 100:.0f}%, "
              f"{run.trigger})", file=out)
    if coll.HasField("last_run"):
        run = coll.last_run
        what = (f"model v{run.model_version}, k={run.k}, {run.points_labelled} points labelled"
                if run.model_version and not run.error else run.error or "-")
        print(f"last run: {run.run_id} {_run_state(run)} ({run.trigger}"
              + (f": {run.trigger_detail}" if run.trigger_detail else "") + f") at {run.finished_at}: {what}",
              file=out)
    else:
        print("last run: none", file=out)
    if coll.HasField("event_schema"):
        fields = ", ".join(f"{f['name']} ({f.get('type', '').removeprefix('EVENT_FIELD_TYPE_').lower()})"
                           for f in json_format.MessageToDict(coll.event_schema).get("fields", []))
        print(f"event schema: {fields}"
              + (f"; one profile per {coll.event_schema.entity_key}" if coll.event_schema.entity_key else ""), file=out)
        print(f"featurizer: v{coll.featurizer_version}" + (" (provisional)" if coll.featurizer_provisional else ""),
              file=out)
    if coll.HasField("image_metadata"):
        spec = coll.image_metadata
        print(f"image spec: text {', '.join(spec.text_fields) or 'title, caption, alt_text, tags'}"
              + (f"; attributes {', '.join(spec.text_attributes)}" if spec.text_attributes else "")
              + (f"; numeric {', '.join(a.key for a in spec.numeric_attributes)}" if spec.numeric_attributes else ""),
              file=out)
    if coll.HasField("vector_index"):
        vi, state = coll.vector_index, coll.index_state
        print(f"vector index: m={vi.m} ef_construct={vi.ef_construct} ef={vi.ef} min_points={vi.min_points} "
              f"quantization={vi.quantization or 'none'}; {state.indexed_points} of {state.points} points indexed"
              + (", building" if state.building else ""), file=out)
    if coll.HasField("attached"):
        a = coll.attached
        print(f"attached: Qdrant collection {a.qdrant_collection!r}"
              + (f", vector {a.vector_name!r}" if a.vector_name else "")
              + (f", fields prefixed {a.field_prefix!r}" if a.field_prefix else ""), file=out)


def _info(args: argparse.Namespace) -> int:
    with connect(args) as client:
        _print_info(client, client.get_collection(args.name), sys.stdout)
    return 0


def _stdin_is_tty() -> bool:
    try:
        return bool(sys.stdin.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _confirmed(name: str, points: int) -> bool:
    """Ask on the terminal; the collection's name or y/yes confirms, anything else (or EOF) does not."""
    sys.stderr.write(f"delete collection {name!r} with its {points} points and every model version? "
                     f"type its name or y to confirm [y/N]: ")
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:  # EOF (Ctrl-D): the prompt's line was never ended
        sys.stderr.write("\n")
    answer = line.strip()
    return answer == name or answer.lower() in ("y", "yes")


def _delete(args: argparse.Namespace) -> int:
    with connect(args) as client:
        coll = client.get_collection(args.name)  # NOT_FOUND before anything is asked
        if not args.yes:
            if not _stdin_is_tty():
                print(f"embcluster: not deleting {args.name!r}: stdin is not a terminal, so nobody can confirm; "
                      "pass --yes to delete without asking", file=sys.stderr)
                return 2
            if not _confirmed(args.name, coll.point_count):
                print("embcluster: not deleted", file=sys.stderr)
                return 1
        if not client.delete_collection(args.name):
            print(f"embcluster: NOT_FOUND: collection {args.name!r} not found (deleted meanwhile?)", file=sys.stderr)
            return 1
    print(f"deleted collection {args.name!r} ({coll.point_count} points)")
    return 0


COMMANDS: dict[str, Handler] = {"create": guarded(_create), "collections": guarded(_collections),
                                "info": guarded(_info), "delete": guarded(_delete)}
