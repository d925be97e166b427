"""Snapshots: one collection — record, every model version, every point — in one file.

Used to back a collection up, and to move it between data directories or storage backends
(Qdrant Edge ↔ Qdrant server): the file says nothing about the backend it came from.

Format: an uncompressed POSIX tar written as a stream, members in this order::

    collection.json               the collection record, as kept in the data directory
    files/<path>                  other per-collection state files as they are (e.g. EVENT
                                  featurizers); not the vector log, run records or temp files
    models/v<N>/model.json        every saved model version, byte for byte as saved
    models/v<N>/centroids.npy
    points/<chunk>.ids            16 bytes per point: its UUID
    points/<chunk>.f32            little-endian float32 vectors, points x dim
    points/<chunk>.payload.jsonl  one JSON object per line: the point's full payload
    manifest.json                 last: format, schema_version, embcluster version, the record,
                                  counts and the size + sha256 of every other member

Nothing is pickled and nothing is extracted to disk under a name taken from the file: member
names must match the patterns above, arrays are raw float32 / ``.npy`` read with
``allow_pickle=False``, the rest is JSON.

Export (:func:`export_collection`) streams: one page of ``settings.page_size`` points at a time is
read from the store (under the collection lock, so a page never sees half of an ingest batch)
and appended to the tar, so memory stays bounded; the file is written under a temporary name
and renamed into place when complete. No clustering run may be active or start while a
collection is exported (FAILED_PRECONDITION), so the record, the models and every point's five
fields belong together. Ingest and deletes are *not* held off: a point written or deleted
while the export runs is in the snapshot or not depending on whether its page had been read
(it is never there twice, nor torn); stop writers for a point-in-time copy.

Import (:func:`import_collection`) reads the file twice: a first pass checks every member's
size and sha256 against the manifest (a corrupt or truncated file is INVALID_ARGUMENT naming
the member) before anything is created; the second pass recreates the store with its payload
indexes, the vector log, the models and the record (served version, ``next_version``,
``next_cluster_id`` unchanged), checking every member again. An import that fails for any
reason removes everything it created. Point ids: kept as they are under the original name;
under a new name (``--as``), a point with a caller id gets the id the new collection derives
from it (UUIDv5 of (new name, external id)) so lookups, deletes and re-ingests by caller id
keep working, and a point without one keeps its random UUID. Labels are payload fields and the
models are keyed by nothing but the collection, so both stay valid.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, Literal

import numpy as np

from . import __version__
from .errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from .models import ClusterModel, ModelStore
from .pipeline import CREATING_MARKER, INDEXED_FIELDS, CollectionRecord, _Collection, point_id_for
from .runs import utcnow
from .store.vectorlog import VectorLog
from .validation import check_name

if TYPE_CHECKING:
    from .config import Settings
    from .pipeline import EmbclusterService

__all__ = [
    "SNAPSHOT_FORMAT",
    "SCHEMA_VERSION",
    "SnapshotSummary",
    "ProgressFn",
    "resolve_snapshot_path",
    "snapshot_roots",
    "export_collection",
    "import_collection",
    "verify_snapshot",
]

logger = logging.getLogger(__name__)

SNAPSHOT_FORMAT = "embcluster-snapshot"
SCHEMA_VERSION = 1
MAX_MEMBER_BYTES = 1 << 30  # one chunk or model file; the exporter writes pages of page_size points
_READ_BLOCK = 1 << 20
_LOG_EVERY_S = 2.0
_MODEL_MEMBER = re.compile(r"^models/v([1-9][0-9]{0,8})/(model\.json|centroids\.npy)$")
_POINTS_MEMBER = re.compile(r"^points/([0-9]{6,9})\.(ids|f32|payload\.jsonl)$")
# Path components start with a letter, digit or underscore: no "..", no hidden or absolute paths.
_FILE_MEMBER = re.compile(r"^files/((?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}/){0,3}[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")
_NOT_COPIED_DIRS = ("models", "runs")  # models are members of their own; run records are history


def _is_state_file(rel: str) -> bool:
    """Whether ``rel`` (a ``files/`` member's path) may be written into a collection directory.

    The record, the vector log, models and run records are never taken from ``files/``: a
    crafted snapshot could otherwise replace them behind the import's own checks.
    """
    parts = rel.split("/")
    return not (rel == "collection.json" or parts[0] in _NOT_COPIED_DIRS
                or (len(parts) == 1 and parts[0].startswith("vectors.")))


_TEXT_MODEL_KINDS = ("text", "image_metadata")  # kinds whose vectors come from a text model

# phase ("export", "verify", "import"), done, total: points (bytes for "verify")
ProgressFn = Callable[[str, int, int], None]


@dataclass
class SnapshotSummary:
    """What an export wrote or an import read.

    Attributes:
        collection: The collection exported, or created by the import.
        source_collection: The collection's name inside the snapshot.
        path: The snapshot file (absolute, on the server's machine).
        points: Points in the snapshot.
        models: Model versions in the snapshot.
        bytes: Size of the snapshot file.
        sha256: SHA-256 of the whole snapshot file (hex).
        served_model_version: The version served by the exported / imported collection (0 = none).
        seconds: Wall time of the export or import.
    """

    collection: str
    source_collection: str
    path: str
    points: int
    models: int
    bytes: int
    sha256: str
    served_model_version: int
    seconds: float


def resolve_snapshot_path(settings: Settings, path: str, *, confined: bool = False) -> Path:
    """The snapshot file a request names: absolute, or relative to ``<data_dir>/snapshots``.

    The path is on the server's machine: the server reads and writes it. ``confined`` (requests
    through the API) also refuses, with PERMISSION_DENIED, a file outside ``<data_dir>/snapshots``
    and the ``snapshot_dirs`` setting, symlinks resolved.
    """
    if not path or not path.strip():
        raise InvalidArgument("path is empty: give a snapshot file path on the server's machine")
    if "\x00" in path:
        raise InvalidArgument(f"path {path!r} contains a NUL byte")
    try:
        p = Path(path).expanduser()
    except RuntimeError as exc:  # "~someone" with no such user
        raise InvalidArgument(f"snapshot path {path!r}: {exc}") from None
    if not p.is_absolute():
        if ".." in p.parts:  # relative paths stay under <data_dir>/snapshots
            raise InvalidArgument(f"relative snapshot path {path!r} leaves <data_dir>/snapshots ('..'): "
                                  "give an absolute path for a file elsewhere")
        p = (Path(settings.data_dir) / "snapshots" / p).absolute()
    if confined:
        return _check_allowed(settings, p)
    return p


def snapshot_roots(settings: Settings) -> list[Path]:
    """Where the API may put or read snapshot files: ``<data_dir>/snapshots`` and ``snapshot_dirs``."""
    # Settings already expanded "~" in both (validators); resolve() follows symlinks.
    return [(Path(settings.data_dir) / "snapshots").resolve()] + [Path(d).resolve() for d in settings.snapshot_dirs]


def _check_allowed(settings: Settings, target: Path) -> Path:
    """``target`` with every symlink and ``..`` resolved; PERMISSION_DENIED unless under a snapshot root.

    The caller goes on with the resolved path, so a symlink in the requested path cannot
    redirect the later read or write. (A local user who can write inside a snapshot root could
    still swap a directory for a link between this check and the write: roots must not be
    writable by others.)
    """
    where = target.resolve()  # non-strict: the file (and a sub-directory) may not exist yet
    roots = snapshot_roots(settings)
    if not any(where.is_relative_to(root) for root in roots):
        raise PermissionDenied(
            f"snapshot path {str(target)!r} is outside the directories this server reads and writes "
            f"snapshots in ({', '.join(repr(str(r)) for r in roots)}): give a path relative to "
            "<data_dir>/snapshots, or have the server started with the directory in EMBCLUSTER_SNAPSHOT_DIRS")
    return where


def _check_export_target(settings: Settings, target: Path) -> None:
    """An export never writes over the service's own state (its data directory, but for ``snapshots/``)."""
    data_dir = Path(settings.data_dir).expanduser().resolve()
    where = target.resolve()
    if where.is_relative_to(data_dir) and not where.is_relative_to(data_dir / "snapshots"):
        raise InvalidArgument(f"snapshot path {str(target)!r} is inside the data directory {str(data_dir)!r}: "
                              "write snapshots under its snapshots/ directory (a relative path) or elsewhere")


class _Progress:
    """Calls the caller's callback on every step and logs at most every couple of seconds."""

    def __init__(self, phase: str, what: str, total: int, callback: ProgressFn | None) -> None:
        self.phase, self.what, self.total, self.callback = phase, what, total, callback
        self._logged = time.monotonic()

    def __call__(self, done: int) -> None:
        if self.callback is not None:
            self.callback(self.phase, done, self.total)
        now = time.monotonic()
        if now - self._logged >= _LOG_EVERY_S:
            self._logged = now
            logger.info("%s %s: %d / %d %s", self.phase, self.what, done, self.total,
                        "bytes" if self.phase == "verify" else "points")


class _HashingWriter:
    """File-like sink for tarfile's stream mode: writes through and hashes what it writes."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)


class _HashingReader:
    """File-like source for tarfile's stream mode: hashes every byte read."""

    def __init__(self, raw: IO[bytes], on_read: Callable[[int], None] | None = None) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0
        self.on_read = on_read

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        self.size += len(data)
        if self.on_read is not None:
            self.on_read(self.size)
        return data

    def drain(self) -> None:
        """Hash what tarfile left unread (end-of-archive padding)."""
        while self.read(_READ_BLOCK):
            pass


def _add(tar: tarfile.TarFile, name: str, data: bytes, members: list[dict[str, Any]]) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
    members.append({"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


# ---------------------------------------------------------------------------------------- export


def export_collection(service: EmbclusterService, name: str, path: str, *, overwrite: bool = False,
                      on_progress: ProgressFn | None = None,
                      vectors_from: Literal["log", "store"] = "log", confined: bool = False) -> SnapshotSummary:
    """Write one collection to a snapshot file on the server's machine.

    Args:
        service: The open service that owns the collection.
        name: The collection.
        path: Target file: absolute, or relative to ``<data_dir>/snapshots`` (created if needed).
        overwrite: Replace an existing file (otherwise ALREADY_EXISTS).
        on_progress: Called as ``(phase, points_done, points_total)`` after every page.
        vectors_from: ``log`` (default): vectors from the service's own float32 copy (the
            vector log: a ``pread``, no Python object per number), payloads from the store, when
            the log's live count matches the store's (else the store is read); ``store``: both
            from the store (a scroll with vectors, several times slower through the binding).
        confined: Refuse a path outside :func:`snapshot_roots` (the API sets it; the offline CLI,
            run by the machine's own user, does not).

    Returns:
        The summary: points, models, bytes and sha256 of the file.

    Raises:
        NotFound: No such collection (or it was deleted during the export).
        FailedPrecondition: A clustering run is active on the collection.
        AlreadyExists: ``path`` exists and ``overwrite`` is false.
        InvalidArgument: ``path`` is empty or its directory does not exist.
        PermissionDenied: ``confined`` and ``path`` is outside the snapshot directories.
    """
    started = time.perf_counter()
    coll = service._get(check_name(name))  # noqa: SLF001 - the core's own snapshot stage
    target = resolve_snapshot_path(service.settings, path, confined=confined)
    _check_export_target(service.settings, target)
    if target.is_dir():
        raise InvalidArgument(f"snapshot path {str(target)!r} is a directory; name a file")
    if target.exists() and not overwrite:
        raise AlreadyExists(f"snapshot file {str(target)!r} exists; remove it or ask to overwrite it "
                            "(overwrite=true; --overwrite on the command line)")
    if confined:  # sub-directories of a snapshot directory are made; a configured one must exist
        own, *configured = snapshot_roots(service.settings)
        root = next(r for r in (own, *configured) if target.is_relative_to(r))
        if root != own and not root.is_dir():
            raise InvalidArgument(f"snapshot directory {str(root)!r} (EMBCLUSTER_SNAPSHOT_DIRS) does not exist "
                                  "on the server's machine")
        target.parent.mkdir(parents=True, exist_ok=True)
    elif not Path(path).expanduser().is_absolute():
        target.parent.mkdir(parents=True, exist_ok=True)
    elif not target.parent.is_dir():
        raise InvalidArgument(f"directory {str(target.parent)!r} does not exist on the server's machine")
    page_size = service.settings.page_size
    with service.hold_runs(name):
        with coll.lock:
            coll.check_open()
            record = coll.record.to_json()
            total = coll.store.count()
        versions = coll.models.versions()
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        progress = _Progress("export", name, total, on_progress)
        points = 0
        try:
            with open(tmp, "wb") as raw:
                sink = _HashingWriter(raw)
                members: list[dict[str, Any]] = []
                with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                    _add(tar, "collection.json", _json_bytes(record), members)
                    for rel in _state_files(coll.directory):
                        _add(tar, f"files/{rel}", (coll.directory / rel).read_bytes(), members)
                    for v in versions:
                        vdir = coll.models.directory / f"v{v}"
                        for fname in ("model.json", "centroids.npy"):
                            _add(tar, f"models/v{v}/{fname}", (vdir / fname).read_bytes(), members)
                    chunk = 0
                    pages = _log_pages(coll, page_size) if vectors_from == "log" else _store_pages(coll, page_size)
                    for ids, vecs, payloads in pages:
                        stem = f"points/{chunk:06d}"
                        _add(tar, f"{stem}.ids", b"".join(uuid.UUID(i).bytes for i in ids), members)
                        _add(tar, f"{stem}.f32", np.ascontiguousarray(vecs, "<f4").tobytes(), members)
                        _add(tar, f"{stem}.payload.jsonl", b"".join(_json_bytes(pl) + b"\n" for pl in payloads),
                             members)
                        chunk += 1
                        points += len(ids)
                        progress(points)
                    manifest = {
                        "format": SNAPSHOT_FORMAT, "schema_version": SCHEMA_VERSION,
                        "embcluster_version": __version__, "created_at": utcnow(), "collection": record,
                        "counts": {"points": points, "models": len(versions), "chunks": chunk},
                        "model_versions": versions, "members": members,
                    }
                    _add(tar, "manifest.json", json.dumps(manifest, indent=1).encode("utf-8"), [])
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    summary = SnapshotSummary(
        collection=name, source_collection=name, path=str(target), points=points, models=len(versions),
        bytes=sink.size, sha256=sink.sha.hexdigest(), served_model_version=int(record["served_version"]),
        seconds=time.perf_counter() - started,
    )
    logger.info("exported %s to %s: %d points, %d models, %d bytes in %.1fs", name, target, points,
                len(versions), summary.bytes, summary.seconds)
    return summary


_Page = tuple[list[str], np.ndarray, list[dict[str, Any]]]  # ids, float32 vectors, payloads


def _store_pages(coll: _Collection, page_size: int) -> Iterator[_Page]:
    """Every point from a store scroll with vectors, page by page, each page under the lock."""
    offset: str | None = None
    while True:
        with coll.lock:  # a page never sees half of an ingest batch
            coll.check_open()
            page, offset = coll.store.scroll(limit=page_size, offset=offset, with_vectors=True, with_payload=True)
        without = [p.id for p in page if p.vector is None]
        if without:  # a point of an attached collection may lack the clustered vector: not exported
            logger.warning("export of %s skips %d point(s) without the collection's vector (e.g. %s)",
                           coll.record.name, len(without), without[0])
            page = [p for p in page if p.vector is not None]
        if page:
            yield ([p.id for p in page], np.stack([np.asarray(p.vector, dtype=np.float32) for p in page]),
                   [p.payload for p in page])
        if offset is None:
            return


def _log_pages(coll: _Collection, page_size: int) -> Iterator[_Page]:
    """Every point with its vector from the vector log and its payload from the store.

    The log's live set is taken once (checked against the store's count; on a mismatch the
    store is read instead). Each page is read under the collection lock, so the log and the
    store agree within it; ids the log saw written since the live set was taken are read back
    from the store with their current vector (or skipped, if deleted), so a vector and its
    payload always belong together.
    """
    with coll.lock:
        coll.check_open()
        live = coll.vlog.live()
        stored = coll.store.count()
    if len(live) != stored:
        logger.warning("vector log of %s has %d live points, the store %d: exporting from the store",
                       coll.record.name, len(live), stored)
        yield from _store_pages(coll, page_size)
        return
    changed: set[str] = set()
    seen = live.end
    for start in range(0, len(live), page_size):
        rows = live.rows[start:start + page_size]
        with coll.lock:
            coll.check_open()
            if coll.vlog.records > seen:
                end = coll.vlog.records
                changed.update(coll.vlog.ids_since(seen))
                seen = end
            uids, vecs = next(coll.vlog.iter_pages(live, len(rows), rows=rows))
            ids = [str(u) for u in uids]
            payloads = {p.id: p.payload for p in coll.store.retrieve(ids)}
            fresh = [i for i in ids if i in changed and i in payloads]
            current = {p.id: p for p in coll.store.retrieve(fresh, with_vectors=True)} if fresh else {}
        keep = [j for j, i in enumerate(ids) if i in payloads and (i not in changed or i in current)]
        out_ids = [ids[j] for j in keep]
        out_vecs = np.array(vecs[keep], dtype=np.float32)
        out_payloads = []
        for row, i in enumerate(out_ids):
            if i in current:  # written since the live set: the store's current vector and payload
                out_vecs[row] = np.asarray(current[i].vector, dtype=np.float32)
                out_payloads.append(current[i].payload)
            else:
                out_payloads.append(payloads[i])
        if out_ids:
            yield out_ids, out_vecs, out_payloads


def _state_files(directory: Path) -> list[str]:
    """Relative paths of the collection's other state files (not the vector log, models, runs)."""
    out = []
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory).as_posix()
        if not path.is_file() or rel == "collection.json" or rel.split("/")[0] in _NOT_COPIED_DIRS:
            continue
        if path.name.startswith("vectors."):
            continue
        if _FILE_MEMBER.match(f"files/{rel}") and _is_state_file(rel):
            out.append(rel)
        else:  # temp files (".x.tmp") and names the format cannot carry
            logger.debug("snapshot of %s skips %s", directory.name, rel)
    return out


# ---------------------------------------------------------------------------------------- reading


def _members(path: Path, reader: _HashingReader) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Every member of the tar stream, in order; the caller reads its data before the next."""
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            for info in tar:
                yield tar, info
    except tarfile.TarError as exc:
        raise InvalidArgument(f"snapshot {str(path)!r} is truncated or not a tar file: {exc}") from None


def _read_member(path: Path, tar: tarfile.TarFile, info: tarfile.TarInfo, *, keep: bool) -> tuple[bytes, str, int]:
    """The member's data (if ``keep``), its sha256 and size; a short read is INVALID_ARGUMENT."""
    if not info.isfile():
        raise InvalidArgument(f"snapshot {str(path)!r}: member {info.name!r} is not a regular file")
    if info.size > MAX_MEMBER_BYTES:
        raise InvalidArgument(f"snapshot {str(path)!r}: member {info.name!r} is {info.size} bytes, "
                              f"over the {MAX_MEMBER_BYTES} limit")
    f = tar.extractfile(info)
    assert f is not None  # a regular file
    sha = hashlib.sha256()
    parts: list[bytes] = []
    size = 0
    try:
        while True:
            block = f.read(_READ_BLOCK)
            if not block:
                break
            sha.update(block)
            size += len(block)
            if keep:
                parts.append(block)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidArgument(f"snapshot {str(path)!r}: member {info.name!r} is truncated: {exc}") from None
    if size != info.size:
        raise InvalidArgument(f"snapshot {str(path)!r}: member {info.name!r} is truncated "
                              f"({size} of {info.size} bytes)")
    return b"".join(parts), sha.hexdigest(), size


def _open_source(service_settings: Settings, path: str, confined: bool) -> Path:
    source = resolve_snapshot_path(service_settings, path, confined=confined)
    if not source.is_file():
        raise NotFound(f"snapshot file {str(source)!r} not found on the server's machine")
    return source


def verify_snapshot(path: Path, on_progress: ProgressFn | None = None) -> tuple[dict[str, Any], str, int]:
    """Check every member of a snapshot against its manifest, reading the file once.

    Returns:
        ``(manifest, sha256 of the file, size in bytes)``.

    Raises:
        InvalidArgument: The file is truncated, corrupt (naming the member) or not a snapshot.
    """
    progress = _Progress("verify", path.name, path.stat().st_size, on_progress)
    seen: list[dict[str, Any]] = []
    manifest: dict[str, Any] | None = None
    with open(path, "rb") as raw:
        reader = _HashingReader(raw, progress)
        for tar, info in _members(path, reader):
            name = info.name
            if manifest is not None:
                raise InvalidArgument(f"snapshot {str(path)!r}: member {name!r} follows manifest.json")
            data, digest, size = _read_member(path, tar, info, keep=name == "manifest.json")
            if name == "manifest.json":
                manifest = _parse_manifest(path, data)
            else:
                seen.append({"name": name, "size": size, "sha256": digest})
        reader.drain()
    if manifest is None:
        raise InvalidArgument(f"snapshot {str(path)!r} has no manifest.json: the file is truncated "
                              f"(last member: {seen[-1]['name'] if seen else 'none'!r}) or not a snapshot")
    expected = {m["name"]: m for m in manifest["members"]}
    for m in seen:
        want = expected.pop(m["name"], None)
        if want is None:
            raise InvalidArgument(f"snapshot {str(path)!r}: member {m['name']!r} is not in the manifest")
        if want["size"] != m["size"] or want["sha256"] != m["sha256"]:
            raise InvalidArgument(f"snapshot {str(path)!r}: member {m['name']!r} is corrupt "
                                  f"(sha256 {m['sha256'][:16]}…, {m['size']} bytes; the manifest says "
                                  f"{str(want['sha256'])[:16]}…, {want['size']} bytes)")
    if expected:
        raise InvalidArgument(f"snapshot {str(path)!r}: member {next(iter(expected))!r} is missing")
    if [m["name"] for m in seen] != [m["name"] for m in manifest["members"]]:
        raise InvalidArgument(f"snapshot {str(path)!r}: members are out of the manifest's order")
    return manifest, reader.sha.hexdigest(), reader.size


def _parse_manifest(path: Path, data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise InvalidArgument(f"snapshot {str(path)!r}: member 'manifest.json' is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != SNAPSHOT_FORMAT:
        raise InvalidArgument(f"snapshot {str(path)!r}: member 'manifest.json' is not an {SNAPSHOT_FORMAT} manifest")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise InvalidArgument(f"snapshot {str(path)!r}: snapshot schema_version {manifest.get('schema_version')!r} "
                              f"is not supported (this server reads {SCHEMA_VERSION})")
    members = manifest.get("members")
    if not isinstance(members, list) or not all(
        isinstance(m, dict) and isinstance(m.get("name"), str) and isinstance(m.get("size"), int)
        and isinstance(m.get("sha256"), str) for m in members
    ):
        raise InvalidArgument(f"snapshot {str(path)!r}: member 'manifest.json' has no valid member list")
    for m in members:
        f = _FILE_MEMBER.match(m["name"])
        if m["name"] != "collection.json" and not _MODEL_MEMBER.match(m["name"]) \
                and not _POINTS_MEMBER.match(m["name"]) and not (f and _is_state_file(f.group(1))):
            raise InvalidArgument(f"snapshot {str(path)!r}: unexpected member {m['name']!r}")
    counts, versions = manifest.get("counts"), manifest.get("model_versions", [])
    if not isinstance(manifest.get("collection"), dict) or not isinstance(counts, dict) \
            or not isinstance(counts.get("points"), int) or isinstance(counts.get("points"), bool) \
            or counts["points"] < 0 or not isinstance(versions, list) \
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in versions):
        raise InvalidArgument(f"snapshot {str(path)!r}: member 'manifest.json' lacks a valid collection record, "
                              "point count or model version list")
    return manifest


# ---------------------------------------------------------------------------------------- import


@dataclass
class _Probe:
    """The part of an open collection the service's embedder check reads."""

    record: CollectionRecord
    embedder: Any = None


def _check_embedder(service: EmbclusterService, record: CollectionRecord) -> None:
    """Collections embedded with a text model need this server's copy of it (the start-up rule)."""
    if record.input_kind not in _TEXT_MODEL_KINDS:
        return
    try:
        service._embedder(_Probe(record))  # type: ignore[arg-type]  # noqa: SLF001 - the same rule as at start-up
    except InvalidArgument as exc:  # the registry does not know the model
        raise FailedPrecondition(f"the snapshot's collection {record.name!r} was embedded with model "
                                 f"{record.embedder!r}, which this server does not have: {exc.message}") from None


def import_collection(service: EmbclusterService, path: str, *, name: str = "",
                      on_progress: ProgressFn | None = None, confined: bool = False) -> SnapshotSummary:
    """Create a collection from a snapshot file on the server's machine, in the service's backend.

    Args:
        service: The open service (Qdrant Edge or Qdrant server backend).
        path: The snapshot: absolute, or relative to ``<data_dir>/snapshots``.
        name: The new collection's name (default: the name in the snapshot).
        on_progress: Called as ``(phase, done, total)``: ``verify`` in bytes, then ``import`` in points.
        confined: Refuse a path outside :func:`snapshot_roots` (set by the API).

    Returns:
        The summary (points, models, bytes, sha256 of the file, served version).

    Raises:
        NotFound: No file at ``path``.
        InvalidArgument: Corrupt, truncated or not a snapshot (naming the member); a bad name.
        AlreadyExists: A collection of that name exists.
        FailedPrecondition: A TEXT collection whose embedding model this server lacks or has in
            another version.
        PermissionDenied: ``confined`` and ``path`` is outside the snapshot directories.
    """
    started = time.perf_counter()
    source = _open_source(service.settings, path, confined)
    manifest, file_sha, file_size = verify_snapshot(source, on_progress)
    try:
        record = CollectionRecord.from_json(dict(manifest["collection"]))
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidArgument(f"snapshot {str(source)!r}: member 'manifest.json' has an unreadable "
                              f"collection record: {exc}") from None
    source_name = record.name
    if record.external_collection:  # exported from an attached Qdrant collection: imported as our own
        logger.info("snapshot %s was exported from attached Qdrant collection %r: imported as a collection "
                    "of this service", source, record.external_collection)
        record.external_collection, record.vector_name, record.field_prefix = "", "", ""
    new_name = check_name(name or record.name)
    total = int(manifest["counts"]["points"])
    with service.reserve_name(new_name):  # ALREADY_EXISTS if taken
        _check_embedder(service, record)
        record.name = new_name
        directory = service.root / "collections" / new_name
        created: list[Any] = []  # what to undo: the store, the vector log
        store_created = False  # a store that create() refused (e.g. someone's Qdrant collection) is never dropped
        try:
            shutil.rmtree(directory, ignore_errors=True)  # leftovers of a crashed create/import
            directory.mkdir(parents=True)
            store = service.store_factory.create(new_name, dim=record.dim, metric=record.metric,  # type: ignore[arg-type]
                                                 indexed=INDEXED_FIELDS)
            store_created = True
            (directory / CREATING_MARKER).touch()  # ours now: a crash before the record drops it at start-up
            created.append(store)
            vlog = VectorLog(directory, record.dim)
            created.append(vlog)
            models = ModelStore(directory / "models")
            points = _load_members(service, source, manifest, record, source_name, store, vlog, models,
                                   _Progress("import", new_name, total, on_progress))
            stored = store.count()
            if points != total or stored != total:
                raise InvalidArgument(f"snapshot {str(source)!r}: the manifest counts {total} points, the file "
                                      f"holds {points} and the store took {stored}")
            coll = _Collection(record=record, store=store, vlog=vlog, directory=directory, models=models)
            if record.served_version:
                if record.served_version not in models.versions():
                    raise InvalidArgument(f"snapshot {str(source)!r}: served model v{record.served_version} "
                                          f"is not among its models {models.versions()}")
                coll.model = models.load(record.served_version)
            vlog.mark_consistent()
            record.store = service.store_factory.backend  # the backend it now lives in
            coll.save()  # the record is what makes the collection exist after a restart
            (directory / CREATING_MARKER).unlink()
        except BaseException:
            _undo(service, new_name, directory, created, drop_store=store_created)
            raise
        with service._lock:  # noqa: SLF001 - register like create_collection does
            service.runs.register(new_name, directory / "runs")
            service._collections[new_name] = coll  # noqa: SLF001
    summary = SnapshotSummary(
        collection=new_name, source_collection=source_name, path=str(source), points=points,
        models=len(models.versions()), bytes=file_size, sha256=file_sha,
        served_model_version=record.served_version, seconds=time.perf_counter() - started,
    )
    logger.info("imported %s from %s (as %s): %d points, %d models, serving v%d, in %.1fs", source_name,
                source, new_name, points, summary.models, record.served_version, summary.seconds)
    return summary


def _undo(service: EmbclusterService, name: str, directory: Path, created: list[Any], *, drop_store: bool) -> None:
    """Remove what a failed import made (its store, if it made one, vector log and directory)."""
    for obj in reversed(created):
        try:
            obj.close()
        except Exception:
            logger.exception("closing the partial import of %s failed", name)
    if drop_store:
        try:
            service.store_factory.drop(name)
        except Exception:
            logger.exception("dropping the partial store of %s failed", name)
    shutil.rmtree(directory, ignore_errors=True)
    logger.warning("import of %s failed; removed what it had created", name)


def _load_members(service: EmbclusterService, source: Path, manifest: dict[str, Any], record: CollectionRecord,
                  source_name: str, store: Any, vlog: VectorLog, models: ModelStore, progress: _Progress) -> int:
    """Second pass: every member checked again against the manifest, then loaded."""
    expected = {m["name"]: m for m in manifest["members"]}
    renamed = record.name != source_name
    record_dir = vlog.ids_path.parent
    seen: set[str] = set()
    dim = record.dim
    pending: dict[str, bytes] = {}
    pending_stem = ""
    points = 0

    def bad(member: str, why: str) -> InvalidArgument:
        return InvalidArgument(f"snapshot {str(source)!r}: member {member!r} {why}")

    with open(source, "rb") as raw:
        for tar, info in _members(source, _HashingReader(raw)):
            name = info.name
            if name == "manifest.json":
                break
            if name in seen:
                raise bad(name, "appears twice")
            seen.add(name)
            want = expected.get(name)
            data, digest, size = _read_member(source, tar, info, keep=True)
            if want is None or want["sha256"] != digest or want["size"] != size:
                raise bad(name, "changed or is corrupt (sha256 differs from the manifest)")
            if name == "collection.json":
                continue
            f = _FILE_MEMBER.match(name)
            if f:
                if not _is_state_file(f.group(1)):  # the manifest check refuses these already
                    raise bad(name, "names a file the import never takes from a snapshot")
                target = record_dir / f.group(1)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                continue
            m = _MODEL_MEMBER.match(name)
            if m:
                vdir = models.directory / f"v{int(m.group(1))}"
                vdir.mkdir(parents=True, exist_ok=True)
                (vdir / m.group(2)).write_bytes(data)
                if (vdir / "model.json").exists() and (vdir / "centroids.npy").exists():
                    try:
                        model = ClusterModel.from_files(vdir)
                    except (ValueError, KeyError, TypeError, OSError) as exc:
                        raise bad(name, f"is not a readable model: {exc}") from None
                    if model.centroids.shape[1] != dim or model.version != int(m.group(1)):
                        raise bad(name, f"holds model v{model.version} of {model.centroids.shape[1]}-d, "
                                        f"expected v{m.group(1)} of {dim}-d")
                continue
            p = _POINTS_MEMBER.match(name)
            if p is None:
                raise bad(name, "is not part of the snapshot format")
            stem = f"points/{p.group(1)}"
            if pending and pending_stem != stem:
                raise bad(name, f"starts a chunk before {pending_stem!r} is complete")
            pending_stem = stem
            pending[p.group(2)] = data
            if len(pending) < 3:
                continue
            ids_raw, vec_raw, payload_raw = pending.pop("ids"), pending.pop("f32"), pending.pop("payload.jsonl")
            n = len(ids_raw) // 16
            if len(ids_raw) != 16 * n:
                raise bad(f"{stem}.ids", f"has {len(ids_raw)} bytes, not a multiple of 16")
            if len(vec_raw) != 4 * dim * n:
                raise bad(f"{stem}.f32", f"has {len(vec_raw)} bytes, expected {n} x {dim} float32")
            vectors = np.frombuffer(vec_raw, dtype="<f4").reshape(n, dim).astype(np.float32)
            if not np.isfinite(vectors).all():
                raise bad(f"{stem}.f32", "has non-finite values")
            lines = payload_raw.decode("utf-8").splitlines()
            if len(lines) != n:
                raise bad(f"{stem}.payload.jsonl", f"has {len(lines)} lines for {n} points")
            try:
                payloads = [json.loads(line) for line in lines]
            except ValueError as exc:
                raise bad(f"{stem}.payload.jsonl", f"is not JSON lines: {exc}") from None
            if not all(isinstance(pl, dict) for pl in payloads):
                raise bad(f"{stem}.payload.jsonl", "holds a line that is not a JSON object")
            ids = [str(uuid.UUID(bytes=ids_raw[16 * i:16 * i + 16])) for i in range(n)]
            if any(not isinstance(pl.get("external_id", ""), str) for pl in payloads):
                raise bad(f"{stem}.payload.jsonl", "holds an external_id that is not a string")
            if renamed:  # caller ids map to the new collection's derived ids
                ids = [point_id_for(record.name, pl["external_id"]) if pl.get("external_id") else pid
                       for pid, pl in zip(ids, payloads)]
            vlog.append(ids, vectors)  # ahead of the store, as ingest does
            store.upsert(ids, vectors, payloads)
            points += n
            progress(points)
    if pending:
        raise InvalidArgument(f"snapshot {str(source)!r}: a points chunk is incomplete ({sorted(pending)})")
    saved = models.versions()
    if saved != [int(v) for v in manifest.get("model_versions", saved)]:
        raise InvalidArgument(f"snapshot {str(source)!r}: models {saved} differ from the manifest's "
                              f"{manifest.get('model_versions')}")
    for v in saved:
        if not ((models.directory / f"v{v}" / "model.json").exists()
                and (models.directory / f"v{v}" / "centroids.npy").exists()):
            raise InvalidArgument(f"snapshot {str(source)!r}: model v{v} is incomplete")
    return points
