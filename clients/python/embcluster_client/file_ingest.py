"""Ingest a JSONL, CSV or Parquet file through the API, resumably (``embcluster ingest FILE``).

Rows are read in order, converted to items (id, text or vector, chosen metadata fields), and
sent in batches with ``Ingest``; after each acknowledged batch a checkpoint file records how
far the file has been stored. A re-run after Ctrl-C, a crash or a rejected batch resumes right
after the last acknowledged batch:

* JSONL and CSV: the checkpoint keeps the byte offset, line and row reached and the SHA-256 of
  the file up to there; a re-run resumes if the file still starts with those bytes, so a bad
  row after that point can be fixed, and rows appended later are picked up by the next run.
* Parquet: resumes by row count when the file's size and modification time are unchanged.

Bad rows are never dropped silently: without ``skip_invalid`` the first one stops the run with
a message naming its row (and line) and field; with it, each is written to a JSONL report and
counted. A row repeating an id seen earlier replaces that point, as if the rows were sent one by
one. Re-sending a batch is harmless for rows with ids (the point is replaced); rows without
an id get a random one, so a crash between the server's acknowledgement and the checkpoint write
can store such a batch twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import grpc

from embcluster.api.v1 import embcluster_pb2 as pb

from .client import EmbclusterClient
from .items import make_event, make_image_metadata

__all__ = ["IngestOptions", "IngestSummary", "IngestFailed", "ingest_file", "detect_format",
           "checkpoint_path", "CHECKPOINT_SCHEMA_VERSION"]

logger = logging.getLogger(__name__)

CHECKPOINT_SCHEMA_VERSION = 1
FORMATS = ("jsonl", "csv", "parquet")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_ITEM_INDEX = re.compile(r"\bitem (\d+)\b")
_PARQUET_HINT = ("reading Parquet needs pyarrow, an optional dependency: "
                 "pip install 'embcluster[parquet]' (pyarrow==26.0.1)")


class IngestFailed(Exception):
    """The run stopped; ``message`` says why and where, the checkpoint says how far it got."""

    def __init__(self, message: str, *, rows_done: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.rows_done = rows_done


@dataclass
class IngestOptions:
    """What to read and how to send it.

    Attributes:
        collection: Target collection (must exist).
        batch_size: Rows per ``Ingest`` call.
        id_field: Field holding the caller's id; rows without it get a random id (unless
            ``require_id``).
        text_field: Field holding the text (TEXT collections).
        vector_field: Field holding the vector (VECTOR collections): a list of numbers; in CSV a
            JSON array or numbers separated by spaces or commas.
        metadata_fields: Fields copied into the item's metadata (each must be present).
        fmt: ``jsonl``, ``csv`` or ``parquet``; None = from the file's suffix.
        require_id: A row without ``id_field`` is a bad row.
        skip_invalid: Report bad rows to ``skipped_path`` and go on instead of stopping.
        restart: Ignore an existing checkpoint and start from the first row.
        checkpoint: Checkpoint file (default ``FILE.embcluster-checkpoint.json``).
        skipped_path: Report of skipped rows (default ``FILE.embcluster-skipped.jsonl``).
    """

    collection: str
    batch_size: int = 256
    id_field: str = "id"
    text_field: str = "text"
    vector_field: str = "vector"
    metadata_fields: tuple[str, ...] = ()
    fmt: str | None = None
    require_id: bool = False
    skip_invalid: bool = False
    restart: bool = False
    checkpoint: Path | None = None
    skipped_path: Path | None = None


@dataclass
class IngestSummary:
    """What a run did."""

    rows_read: int = 0  # rows consumed by this run (ingested + skipped)
    ingested: int = 0  # points stored by this run
    skipped: int = 0  # bad rows reported by this run
    resumed_from_row: int = 0  # rows already done by earlier runs
    total_ingested: int = 0  # over all runs, per the checkpoint
    checkpoint: str = ""
    skipped_report: str = ""


@dataclass
class _Row:
    index: int  # 0-based data row
    line: int | None  # 1-based line where it starts (text formats)
    data: dict[str, Any] | None
    raw: bytes = b""  # bytes consumed up to the end of this row (text formats)
    error: str | None = None
    field: str | None = None

    def where(self) -> str:
        return f"row {self.index + 1}" + (f" (line {self.line})" if self.line is not None else "")


@dataclass
class _Checkpoint:
    file: str
    format: str
    collection: str
    rows: int = 0  # data rows consumed (ingested or skipped)
    ingested: int = 0
    skipped: int = 0
    offset: int = 0  # text formats: bytes consumed
    lines: int = 0  # text formats: lines consumed
    prefix_sha256: str = ""  # text formats: of the first `offset` bytes
    size: int = 0
    mtime_ns: int = 0
    updated_at: str = ""
    header: list[str] = field(default_factory=list)  # CSV

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "schema_version": CHECKPOINT_SCHEMA_VERSION}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> "_Checkpoint":
        if data.get("schema_version") != CHECKPOINT_SCHEMA_VERSION:
            raise IngestFailed(f"{where}: checkpoint schema_version {data.get('schema_version')!r} unsupported; "
                               "delete it or pass --restart")
        return cls(**{k: v for k, v in data.items() if k != "schema_version"})


def detect_format(path: Path, fmt: str | None = None) -> str:
    """``fmt`` if given, else from the suffix (``.jsonl``/``.ndjson``, ``.csv``, ``.parquet``/``.pq``)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise IngestFailed(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise IngestFailed(f"cannot tell the format of {str(path)!r} from its suffix {path.suffix!r}; "
                           f"pass --format ({', '.join(FORMATS)})")
    return found


def checkpoint_path(path: Path, given: Path | None = None) -> Path:
    """Where the checkpoint of ``path`` lives."""
    return given or path.with_name(path.name + ".embcluster-checkpoint.json")


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------- readers


def _read_jsonl(f: io.BufferedReader, start_index: int, start_line: int) -> Iterator[_Row]:
    index, line_no = start_index, start_line
    pending = b""
    for raw in f:
        line_no += 1
        pending += raw
        text = raw.strip()
        if not text:
            continue
        row = _Row(index=index, line=line_no, data=None, raw=pending)
        pending = b""
        index += 1
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            row.error = f"invalid JSON: {exc}"
        else:
            if isinstance(value, dict):
                row.data = value
            else:
                row.error = f"expected a JSON object, got {type(value).__name__}"
        yield row


class _Lines:
    """Decoded lines of a binary file, remembering the raw bytes handed out (for CSV)."""

    def __init__(self, f: io.BufferedReader, first_line: int) -> None:
        self._f = f
        self.line = first_line
        self.raw = b""

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        raw = self._f.readline()
        if not raw:
            raise StopIteration
        self.line += 1
        self.raw += raw
        return raw.decode("utf-8-sig" if self.line == 1 else "utf-8")  # strict: a bad byte is a bad row


def _csv_header(path: Path) -> tuple[list[str], bytes, int]:
    with open(path, "rb") as f:
        lines = _Lines(f, 0)
        try:
            header = next(csv.reader(lines))
        except StopIteration:
            raise IngestFailed(f"{path}: empty CSV file (no header row)") from None
        return [h.strip() for h in header], lines.raw, lines.line


def _read_csv(f: io.BufferedReader, header: list[str], start_index: int, start_line: int) -> Iterator[_Row]:
    csv.field_size_limit(64 * 1024 * 1024)
    lines = _Lines(f, start_line)
    reader = csv.reader(lines)
    index = start_index
    while True:
        first = lines.line + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            row = _Row(index=index, line=first, data=None, raw=lines.raw, error=f"invalid CSV: {exc}")
        else:
            if not record and not lines.raw.strip():
                continue  # blank line: its bytes go with the next row
            row = _Row(index=index, line=first, data=None, raw=lines.raw)
            if len(record) != len(header):
                row.error = f"has {len(record)} fields, the header has {len(header)}"
            else:
                row.data = dict(zip(header, record))
        lines.raw = b""
        index += 1
        yield row


def _read_parquet(path: Path, start_index: int) -> Iterator[_Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise IngestFailed(_PARQUET_HINT) from None
    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        if index + batch.num_rows <= start_index:
            index += batch.num_rows
            continue
        for data in batch.to_pylist():
            if index >= start_index:
                yield _Row(index=index, line=None, data=data)
            index += 1


def _count_rows(path: Path, fmt: str, offset: int) -> int | None:
    """Rows left to read (JSONL exact, CSV approximate: one per non-blank line)."""
    if fmt == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            return None
        return int(pq.ParquetFile(path).metadata.num_rows)
    with open(path, "rb") as f:
        f.seek(offset)
        return sum(1 for line in f if line.strip())


# ---------------------------------------------------------------------------------------- rows -> items


class _BadRow(ValueError):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        return value
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return str(value)  # dates, decimals, ... from Parquet


def _vector(value: Any, dim: int) -> list[float]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = json.loads(text)
        else:
            value = [v for v in re.split(r"[\s,;]+", text) if v]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list of numbers, got {type(value).__name__}")
    out = [float(v) for v in value]
    if len(out) != dim:
        raise ValueError(f"has {len(out)} values, the collection's vectors have {dim}")
    bad = next((v for v in out if not math.isfinite(v)), None)
    if bad is not None:
        raise ValueError(f"contains {bad}")
    return out


_IMAGE_TEXT_FIELDS = ("title", "caption", "alt_text")


def _event_fields(data: dict[str, Any], opts: IngestOptions, types: dict[str, int]) -> pb.Event:
    """An EVENT row: every field but the id and metadata fields; CSV strings read by the schema's types."""
    fields: dict[str, Any] = {}
    for name, value in data.items():
        if name == opts.id_field or name in opts.metadata_fields:
            continue
        ftype = types.get(name)
        if isinstance(value, str) and ftype in (pb.EVENT_FIELD_TYPE_NUMERIC, pb.EVENT_FIELD_TYPE_TIMESTAMP):
            if not value.strip():
                continue  # an empty CSV cell is a missing value (the schema says if it is required)
            if ftype == pb.EVENT_FIELD_TYPE_NUMERIC:
                try:
                    value = float(value)
                except ValueError:
                    raise _BadRow(name, f"expected a number, got {value!r:.60}") from None
        if value is None:
            continue
        fields[name] = value
    try:
        return make_event(fields)
    except (TypeError, ValueError) as exc:
        raise _BadRow(None, str(exc)) from None


def _image(data: dict[str, Any]) -> pb.ImageMetadata:
    """An IMAGE_METADATA row: title, caption, alt_text, tags (a list, or in CSV a string split on , ; |),
    attributes (an object, or in CSV its JSON text)."""
    kwargs: dict[str, Any] = {}
    for name in _IMAGE_TEXT_FIELDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise _BadRow(name, f"expected a string, got {type(value).__name__} {value!r:.60}")
        kwargs[name] = value or ""
    tags = data.get("tags")
    if isinstance(tags, str):
        tags = [t.strip() for t in re.split(r"[,;|]", tags) if t.strip()]
    kwargs["tags"] = tags or []
    attributes = data.get("attributes")
    if isinstance(attributes, str):
        try:
            attributes = json.loads(attributes) if attributes.strip() else None
        except json.JSONDecodeError as exc:
            raise _BadRow("attributes", f"not a JSON object: {exc}") from None
    if attributes is not None and not isinstance(attributes, dict):
        raise _BadRow("attributes", f"expected an object, got {type(attributes).__name__}")
    kwargs["attributes"] = attributes
    try:
        return make_image_metadata(**kwargs)
    except (TypeError, ValueError) as exc:
        raise _BadRow(None, str(exc)) from None


def _to_item(data: dict[str, Any], opts: IngestOptions, kind: int, dim: int,
             event_types: dict[str, int] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {}
    raw_id = data.get(opts.id_field)
    if raw_id is None or raw_id == "":
        if opts.require_id:
            raise _BadRow(opts.id_field, f"no {opts.id_field!r} value")
    elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool):
        item["id"] = str(raw_id)
    else:
        raise _BadRow(opts.id_field, f"id must be a string or an integer, got {type(raw_id).__name__} {raw_id!r:.60}")
    if kind == pb.INPUT_KIND_EVENT:
        item["event"] = _event_fields(data, opts, event_types or {})
    elif kind == pb.INPUT_KIND_IMAGE_METADATA:
        item["image"] = _image(data)
    elif kind == pb.INPUT_KIND_VECTOR:
        if data.get(opts.vector_field) in (None, ""):
            raise _BadRow(opts.vector_field, f"no {opts.vector_field!r} value")
        try:
            item["vector"] = _vector(data[opts.vector_field], dim)
        except (ValueError, TypeError) as exc:
            raise _BadRow(opts.vector_field, f"bad vector: {exc}") from None
    else:
        text = data.get(opts.text_field)
        if not isinstance(text, str):
            what = "no value" if text is None else f"expected a string, got {type(text).__name__} {text!r:.60}"
            raise _BadRow(opts.text_field, what)
        if not text.strip():
            raise _BadRow(opts.text_field, "empty text")
        item["text"] = text
    if opts.metadata_fields:
        meta: dict[str, Any] = {}
        for name in opts.metadata_fields:
            if name not in data:
                raise _BadRow(name, f"metadata field {name!r} missing")
            try:
                meta[name] = _json_value(data[name])
            except ValueError as exc:
                raise _BadRow(name, f"metadata field {name!r}: {exc}") from None
        item["metadata"] = meta
    return item


# ---------------------------------------------------------------------------------------- the run


def _fingerprint(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _prefix_hash(path: Path, offset: int) -> "hashlib._Hash":
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        left = offset
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    return digest


def _load_checkpoint(path: Path, cp_path: Path, fmt: str, opts: IngestOptions) -> tuple[_Checkpoint | None, "hashlib._Hash | None"]:
    if opts.restart or not cp_path.exists():
        return None, None
    try:
        cp = _Checkpoint.from_json(json.loads(cp_path.read_text(encoding="utf-8")), cp_path)
    except (json.JSONDecodeError, TypeError) as exc:
        raise IngestFailed(f"{cp_path}: unreadable checkpoint ({exc}); delete it or pass --restart") from None
    if cp.collection != opts.collection or cp.format != fmt:
        raise IngestFailed(f"{cp_path} is for collection {cp.collection!r} ({cp.format}); "
                           "pass --restart to ingest this file from the start")
    if fmt == "parquet":
        if (cp.size, cp.mtime_ns) != _fingerprint(path):
            raise IngestFailed(f"{path} changed since the checkpoint ({cp.rows} rows done); "
                               "pass --restart to ingest it from the start")
        return cp, None
    size = path.stat().st_size
    digest = _prefix_hash(path, cp.offset) if size >= cp.offset else None
    if digest is None or digest.hexdigest() != cp.prefix_sha256:
        raise IngestFailed(f"{path} no longer starts with the {cp.rows} rows the checkpoint recorded as done; "
                           "pass --restart to ingest it from the start")
    return cp, digest


def ingest_file(client: EmbclusterClient, path: Path, opts: IngestOptions, *,
                on_start: Callable[[int | None, int], None] | None = None,
                on_batch: Callable[[int], None] | None = None,
                on_skip: Callable[[str], None] | None = None) -> IngestSummary:
    """Ingest ``path`` into ``opts.collection``, resuming from its checkpoint.

    Args:
        client: A connected client.
        path: The JSONL, CSV or Parquet file.
        opts: Fields, batch size, format, checkpoint and skip behaviour.
        on_start: Called once with (rows left if cheaply known else None, rows already done).
        on_batch: Called with the number of rows consumed after each acknowledged batch.
        on_skip: Called with a one-line description of each skipped row.

    Returns:
        What this run did.

    Raises:
        IngestFailed: a bad row (without ``skip_invalid``), a rejected batch, an unusable
            checkpoint or file, or an RPC failure; the checkpoint keeps the progress made.
    """
    if opts.batch_size < 1:
        raise IngestFailed(f"batch size must be >= 1, got {opts.batch_size}")
    if not path.is_file():
        raise IngestFailed(f"{str(path)!r} is not a file")
    fmt = detect_format(path, opts.fmt)
    try:
        coll = client.get_collection(opts.collection)
    except grpc.RpcError as exc:
        raise IngestFailed(f"collection {opts.collection!r}: {exc.code().name}: {exc.details()}") from None
    if coll.input_kind not in (pb.INPUT_KIND_TEXT, pb.INPUT_KIND_VECTOR, pb.INPUT_KIND_EVENT,
                               pb.INPUT_KIND_IMAGE_METADATA):
        raise IngestFailed(f"collection {opts.collection!r} is {pb.InputKind.Name(coll.input_kind)}; "
                           "file ingest supports TEXT, VECTOR, EVENT and IMAGE_METADATA collections")
    event_types = {f.name: f.type for f in coll.event_schema.fields}
    content_field = {pb.INPUT_KIND_TEXT: opts.text_field, pb.INPUT_KIND_VECTOR: opts.vector_field}.get(coll.input_kind)
    cp_path = checkpoint_path(path, opts.checkpoint)
    cp, digest = _load_checkpoint(path, cp_path, fmt, opts)
    summary = IngestSummary(checkpoint=str(cp_path))
    header: list[str] = []
    if fmt == "csv":
        header, header_raw, header_lines = _csv_header(path)
        for name in (opts.id_field, *([content_field] if content_field else []), *opts.metadata_fields):
            if name not in header and (name != opts.id_field or opts.require_id):
                raise IngestFailed(f"{path}: no column {name!r} in the header ({', '.join(header)})")
    if cp is None:
        cp = _Checkpoint(file=path.name, format=fmt, collection=opts.collection, header=header)
        digest = hashlib.sha256()
        if fmt == "csv":
            cp.offset, cp.lines = len(header_raw), header_lines
            digest.update(header_raw)
    summary.resumed_from_row = cp.rows
    if cp.rows:
        logger.info("resuming %s after row %d (%d stored, %d skipped before)", path, cp.rows, cp.ingested, cp.skipped)
    if on_start is not None:
        on_start(_count_rows(path, fmt, cp.offset) if fmt != "parquet" else
                 max((_count_rows(path, fmt, 0) or 0) - cp.rows, 0), cp.rows)
    skipped_path = opts.skipped_path or path.with_name(path.name + ".embcluster-skipped.jsonl")
    skipped_file = None

    def fail(row: _Row, field_name: str | None, message: str) -> IngestFailed:
        return IngestFailed(f"{path}: {row.where()}" + (f", field {field_name!r}" if field_name else "")
                            + f": {message}. Rows before it are stored and checkpointed; fix the row and re-run "
                            "to resume there (or pass --skip-invalid)", rows_done=cp.rows if cp else 0)

    def skip(row: _Row, field_name: str | None, message: str) -> None:
        nonlocal skipped_file
        if skipped_file is None:
            skipped_file = open(skipped_path, "a", encoding="utf-8")
            summary.skipped_report = str(skipped_path)
        skipped_file.write(json.dumps({"row": row.index + 1, "line": row.line, "field": field_name,
                                       "error": message}) + "\n")
        skipped_file.flush()
        summary.skipped += 1
        if on_skip is not None:
            on_skip(f"{row.where()}" + (f", field {field_name!r}" if field_name else "") + f": {message}")

    def commit(rows: list[_Row], stored: int, skipped: int) -> None:
        assert cp is not None
        for row in rows:
            if digest is not None:
                digest.update(row.raw)
            cp.offset += len(row.raw)
            cp.lines += row.raw.count(b"\n")
        cp.rows += len(rows)
        cp.ingested += stored
        cp.skipped += skipped
        if digest is not None:
            cp.prefix_sha256 = digest.hexdigest()
        cp.size, cp.mtime_ns = _fingerprint(path)
        cp.updated_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        _write_json_atomic(cp_path, cp.to_json())
        summary.rows_read += len(rows)
        summary.ingested += stored
        if on_batch is not None:
            on_batch(len(rows))

    def store(rows: list[_Row], good: list[tuple[_Row, dict[str, Any]]], skipped: int) -> None:
        """Send ``good`` (the convertible rows among ``rows``) in one call; checkpoint ``rows``.

        A row the server rejects (INVALID_ARGUMENT naming ``item i``) is skipped and the rest
        re-sent with --skip-invalid; otherwise the rows before it are stored and the run stops.
        """
        while good:
            try:
                client.ingest(opts.collection, [it for _, it in good])
                break
            except grpc.RpcError as exc:
                details = exc.details() or ""
                m = _ITEM_INDEX.search(details)
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT or m is None or int(m.group(1)) >= len(good):
                    raise IngestFailed(
                        f"{path}: the batch of rows {rows[0].index + 1}-{rows[-1].index + 1} failed: "
                        f"{exc.code().name}: {details}; rows 1-{cp.rows if cp else 0} are stored and "
                        "checkpointed, re-run to resume", rows_done=cp.rows if cp else 0) from None
                bad_row, _ = good[int(m.group(1))]
                if not opts.skip_invalid:
                    before = [g for g in good if g[0].index < bad_row.index]
                    store([r for r in rows if r.index < bad_row.index], before, skipped)
                    raise fail(bad_row, None, f"rejected by the server: {details}") from None
                good.pop(int(m.group(1)))
                skip(bad_row, None, f"rejected by the server: {details}")
                skipped += 1
        commit(rows, len(good), skipped)

    def send(rows: list[_Row]) -> None:
        good: list[tuple[_Row, dict[str, Any]]] = []
        ids: set[str] = set()
        skipped = 0
        start = 0  # first row of the part not sent yet
        for i, row in enumerate(rows):
            try:
                if row.error is not None or row.data is None:
                    raise _BadRow(row.field, row.error or "unreadable row")
                item = _to_item(row.data, opts, coll.input_kind, coll.dim, event_types)
            except _BadRow as exc:
                if not opts.skip_invalid:
                    store(rows[start:i], good, skipped)
                    raise fail(row, exc.field, exc.message) from None
                skip(row, exc.field, exc.message)
                skipped += 1
                continue
            if "id" in item and item["id"] in ids:
                # A later version of a point already in this call (the server refuses repeated ids
                # in one call): send the rows before it first, so the file's last version wins.
                store(rows[start:i], good, skipped)
                good, ids, skipped, start = [], set(), 0, i
            if "id" in item:
                ids.add(item["id"])
            good.append((row, item))
        store(rows[start:], good, skipped)

    def send_all(rows_iter: Iterator[_Row]) -> None:
        batch: list[_Row] = []
        for row in rows_iter:
            batch.append(row)
            if len(batch) >= opts.batch_size:
                send(batch)
                batch = []
        if batch:
            send(batch)

    try:
        if fmt == "parquet":
            send_all(_read_parquet(path, cp.rows))
        else:
            with open(path, "rb") as f:
                f.seek(cp.offset)
                send_all(_read_jsonl(f, cp.rows, cp.lines) if fmt == "jsonl"
                         else _read_csv(f, cp.header or header, cp.rows, cp.lines))
    finally:
        if skipped_file is not None:
            skipped_file.close()
    if not cp_path.exists():  # an empty file (or nothing new): still record where we are
        _write_json_atomic(cp_path, cp.to_json())
    summary.total_ingested = cp.ingested
    return summary
