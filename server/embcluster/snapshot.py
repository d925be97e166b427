"""Snapshots: one collection — record, every model version, every point — in one file.

Used to back a collection up, and to move it between data directories or storage backends
(Qdrant Edge ↔ Qdrant server): the file says nothing about the backend it came from.

Format: an uncompressed POSIX tar written as a stream, members in this order::

    collection.json               the collection record, as kept in the data directory
    files/<path>                  other per-collection state files as they are (e.g. EVENT
                                  featurizers); not the vector log, run records or temp files
    models/v<N>/model.json        every published model version, byte for byte as saved (never
                                  one a failed, cancelled or interrupted run left unpublished)
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
import tarfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal

import numpy as np

from . import __version__
from .errors import AlreadyExists, InvalidArgument, shown
from .core.records import OpenCollection
from .runs import utcnow
from .validation import check_name

if TYPE_CHECKING:
    from .core.service import EmbclusterService
from .snapshot_format import (
    FILE_MEMBER,
    NOT_COPIED_DIRS,
    SCHEMA_VERSION,
    SNAPSHOT_FORMAT,
    HashingWriter,
    Progress,
    ProgressFn,
    SnapshotSummary,
    check_export_target,
    is_state_file,
    resolve_snapshot_path,
    snapshot_roots,
)
from .snapshot_import import import_collection, verify_snapshot

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


def _add(tar: tarfile.TarFile, name: str, data: bytes, members: list[dict[str, Any]]) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
    members.append({"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


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
    coll = service.registry.get(check_name(name))
    target = resolve_snapshot_path(service.settings, path, confined=confined)
    check_export_target(service.settings, target)
    if target.is_dir():
        raise InvalidArgument(f"snapshot path {shown(str(target))} is a directory; name a file")
    if target.exists() and not overwrite:
        raise AlreadyExists(f"snapshot file {shown(str(target))} exists; remove it or ask to overwrite it "
                            "(overwrite=true; --overwrite on the command line)")
    if confined:  # sub-directories of a snapshot directory are made; a configured one must exist
        own, *configured = snapshot_roots(service.settings)
        root = next(r for r in (own, *configured) if target.is_relative_to(r))
        if root != own and not root.is_dir():
            raise InvalidArgument(f"snapshot directory {shown(str(root))} (EMBCLUSTER_SNAPSHOT_DIRS) does not exist "
                                  "on the server's machine")
        target.parent.mkdir(parents=True, exist_ok=True)
    elif not Path(path).expanduser().is_absolute():
        target.parent.mkdir(parents=True, exist_ok=True)
    elif not target.parent.is_dir():
        raise InvalidArgument(f"directory {shown(str(target.parent))} does not exist on the server's machine")
    page_size = service.settings.page_size
    with service.hold_runs(name):
        with coll.lock:
            coll.check_open()
            record = coll.record.to_json()
            total = coll.store.count()
        versions = coll.models.published(int(record["served_version"]))  # never a run's unpublished version
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        progress = Progress("export", name, total, on_progress)
        points = 0
        try:
            with open(tmp, "wb") as raw:
                sink = HashingWriter(raw)
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


def _store_pages(coll: OpenCollection, page_size: int) -> Iterator[_Page]:
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


def _log_pages(coll: OpenCollection, page_size: int) -> Iterator[_Page]:
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
    if len(live) != stored or coll.vlog.stale:
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
        if not path.is_file() or rel == "collection.json" or rel.split("/")[0] in NOT_COPIED_DIRS:
            continue
        if path.name.startswith("vectors."):
            continue
        if FILE_MEMBER.fullmatch(f"files/{rel}") and is_state_file(rel):
            out.append(rel)
        else:  # temp files (".x.tmp") and names the format cannot carry
            logger.debug("snapshot of %s skips %s", directory.name, rel)
    return out
