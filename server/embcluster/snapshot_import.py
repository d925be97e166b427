"""Verify and import a snapshot file (the format: :mod:`embcluster.snapshot`).

Import reads the file twice: a first pass checks every member's size and sha256 against the
manifest before anything is created; the second pass recreates the store with its payload
indexes, the vector log, the models and the record, checking every member again. An import
that fails for any reason removes everything it created. It builds the collection through the
service's registry (the same steps as a create) and adopts it when complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tarfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from .errors import InvalidArgument, NotFound, shown
from .models import ClusterModel, ModelStore
from .core.records import CollectionRecord, OpenCollection, point_id_for
from .store.vectorlog import VectorLog
from .validation import check_name, check_vector_index

if TYPE_CHECKING:
    from .config import Settings
    from .core.service import EmbclusterService
from .snapshot_format import (
    FILE_MEMBER,
    MAX_MEMBER_BYTES,
    MODEL_MEMBER,
    POINTS_MEMBER,
    READ_BLOCK,
    SCHEMA_VERSION,
    SNAPSHOT_FORMAT,
    HashingReader,
    Progress,
    ProgressFn,
    SnapshotSummary,
    is_state_file,
    resolve_snapshot_path,
)

__all__ = ["import_collection", "verify_snapshot"]

logger = logging.getLogger(__name__)


def _members(path: Path, reader: HashingReader) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Every member of the tar stream, in order; the caller reads its data before the next."""
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            for info in tar:
                yield tar, info
    except tarfile.TarError as exc:
        raise InvalidArgument(f"snapshot {shown(str(path))} is truncated or not a tar file: {exc}") from None


def _read_member(path: Path, tar: tarfile.TarFile, info: tarfile.TarInfo, *, keep: bool) -> tuple[bytes, str, int]:
    """The member's data (if ``keep``), its sha256 and size; a short read is INVALID_ARGUMENT."""
    if not info.isfile():
        raise InvalidArgument(f"snapshot {shown(str(path))}: member {shown(info.name)} is not a regular file")
    if info.size > MAX_MEMBER_BYTES:
        raise InvalidArgument(f"snapshot {shown(str(path))}: member {shown(info.name)} is {info.size} bytes, "
                              f"over the {MAX_MEMBER_BYTES} limit")
    f = tar.extractfile(info)
    assert f is not None  # a regular file
    sha = hashlib.sha256()
    parts: list[bytes] = []
    size = 0
    try:
        while True:
            block = f.read(READ_BLOCK)
            if not block:
                break
            sha.update(block)
            size += len(block)
            if keep:
                parts.append(block)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidArgument(f"snapshot {shown(str(path))}: member {shown(info.name)} is truncated: {exc}") from None
    if size != info.size:
        raise InvalidArgument(f"snapshot {shown(str(path))}: member {shown(info.name)} is truncated "
                              f"({size} of {info.size} bytes)")
    return b"".join(parts), sha.hexdigest(), size


def _open_source(service_settings: Settings, path: str, confined: bool) -> Path:
    source = resolve_snapshot_path(service_settings, path, confined=confined)
    if not source.is_file():
        raise NotFound(f"snapshot file {shown(str(source))} not found on the server's machine")
    return source


def verify_snapshot(path: Path, on_progress: ProgressFn | None = None) -> tuple[dict[str, Any], str, int]:
    """Check every member of a snapshot against its manifest, reading the file once.

    Returns:
        ``(manifest, sha256 of the file, size in bytes)``.

    Raises:
        InvalidArgument: The file is truncated, corrupt (naming the member) or not a snapshot.
    """
    progress = Progress("verify", path.name, path.stat().st_size, on_progress)
    seen: list[dict[str, Any]] = []
    manifest: dict[str, Any] | None = None
    with open(path, "rb") as raw:
        reader = HashingReader(raw, progress)
        for tar, info in _members(path, reader):
            name = info.name
            if manifest is not None:
                raise InvalidArgument(f"snapshot {shown(str(path))}: member {shown(name)} follows manifest.json")
            data, digest, size = _read_member(path, tar, info, keep=name == "manifest.json")
            if name == "manifest.json":
                manifest = _parse_manifest(path, data)
            else:
                seen.append({"name": name, "size": size, "sha256": digest})
        reader.drain()
    if manifest is None:
        raise InvalidArgument(f"snapshot {shown(str(path))} has no manifest.json: the file is truncated "
                              f"(last member: {shown(seen[-1]['name'] if seen else 'none')}) or not a snapshot")
    expected = {m["name"]: m for m in manifest["members"]}
    for m in seen:
        want = expected.pop(m["name"], None)
        if want is None:
            raise InvalidArgument(f"snapshot {shown(str(path))}: member {shown(m['name'])} is not in the manifest")
        if want["size"] != m["size"] or want["sha256"] != m["sha256"]:
            raise InvalidArgument(f"snapshot {shown(str(path))}: member {shown(m['name'])} is corrupt "
                                  f"(sha256 {m['sha256'][:16]}…, {m['size']} bytes; the manifest says "
                                  f"{str(want['sha256'])[:16]}…, {want['size']} bytes)")
    if expected:
        raise InvalidArgument(f"snapshot {shown(str(path))}: member {shown(next(iter(expected)))} is missing")
    if [m["name"] for m in seen] != [m["name"] for m in manifest["members"]]:
        raise InvalidArgument(f"snapshot {shown(str(path))}: members are out of the manifest's order")
    return manifest, reader.sha.hexdigest(), reader.size


def _parse_manifest(path: Path, data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise InvalidArgument(f"snapshot {shown(str(path))}: member 'manifest.json' is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != SNAPSHOT_FORMAT:
        raise InvalidArgument(f"snapshot {shown(str(path))}: member 'manifest.json' is not an {SNAPSHOT_FORMAT} manifest")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise InvalidArgument(f"snapshot {shown(str(path))}: snapshot schema_version {shown(manifest.get('schema_version'))} "
                              f"is not supported (this server reads {SCHEMA_VERSION})")
    members = manifest.get("members")
    if not isinstance(members, list) or not all(
        isinstance(m, dict) and isinstance(m.get("name"), str) and isinstance(m.get("size"), int)
        and isinstance(m.get("sha256"), str) for m in members
    ):
        raise InvalidArgument(f"snapshot {shown(str(path))}: member 'manifest.json' has no valid member list")
    for m in members:
        f = FILE_MEMBER.fullmatch(m["name"])
        if m["name"] != "collection.json" and not MODEL_MEMBER.fullmatch(m["name"]) \
                and not POINTS_MEMBER.fullmatch(m["name"]) and not (f and is_state_file(f.group(1))):
            raise InvalidArgument(f"snapshot {shown(str(path))}: unexpected member {shown(m['name'])}")
    counts, versions = manifest.get("counts"), manifest.get("model_versions", [])
    if not isinstance(manifest.get("collection"), dict) or not isinstance(counts, dict) \
            or not isinstance(counts.get("points"), int) or isinstance(counts.get("points"), bool) \
            or counts["points"] < 0 or not isinstance(versions, list) \
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in versions):
        raise InvalidArgument(f"snapshot {shown(str(path))}: member 'manifest.json' lacks a valid collection record, "
                              "point count or model version list")
    return manifest


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
        check_vector_index(record.index)  # a hand-edited manifest: refused here, not at the first build
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidArgument(f"snapshot {shown(str(source))}: member 'manifest.json' has an unreadable "
                              f"collection record: {exc}") from None
    except InvalidArgument as exc:
        raise InvalidArgument(f"snapshot {shown(str(source))}: member 'manifest.json': {exc.message}") from None
    source_name = record.name
    if record.external_collection:  # exported from an attached Qdrant collection: imported as our own
        logger.info("snapshot %s was exported from attached Qdrant collection %r: imported as a collection "
                    "of this service", source, record.external_collection)
        record.external_collection, record.vector_name, record.field_prefix = "", "", ""
    new_name = check_name(name or record.name)
    total = int(manifest["counts"]["points"])
    with service.reserve_name(new_name):  # ALREADY_EXISTS if taken
        service.kinds.check_embedder(record)  # the start-up rule: this server has its text model
        record.name = new_name
        directory = service.registry.directory(new_name)
        created: list[Any] = []  # what to undo: the store, the vector log
        store_created = False  # a store that create() refused (e.g. someone's Qdrant collection) is never dropped
        try:
            store = service.registry.new_store(new_name, dim=record.dim, metric=record.metric, index=record.index)
            store_created = True  # a crash before the record drops it at start-up
            created.append(store)
            vlog = service.registry.vector_log(directory, record.dim)
            created.append(vlog)
            models = ModelStore(directory / "models")
            points = _load_members(service, source, manifest, record, source_name, store, vlog, models,
                                   Progress("import", new_name, total, on_progress))
            stored = store.count()
            if points != total or stored != total:
                raise InvalidArgument(f"snapshot {shown(str(source))}: the manifest counts {total} points, the file "
                                      f"holds {points} and the store took {stored}")
            coll = OpenCollection(record=record, store=store, vlog=vlog, directory=directory, models=models)
            if record.served_version:
                if record.served_version not in models.versions():
                    raise InvalidArgument(f"snapshot {shown(str(source))}: served model v{record.served_version} "
                                          f"is not among its models {models.versions()}")
                coll.model = models.load(record.served_version)
            vlog.mark_consistent()
            record.store = service.store_factory.backend  # type: ignore[assignment]  # the backend it now lives in
            service.registry.record_created(coll)  # the record is what makes the collection exist after a restart
        except BaseException:
            _undo(service, new_name, directory, created, drop_store=store_created)
            raise
        service.registry.adopt(coll)
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
                  source_name: str, store: Any, vlog: VectorLog, models: ModelStore, progress: Progress) -> int:
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
        return InvalidArgument(f"snapshot {shown(str(source))}: member {shown(member)} {why}")

    with open(source, "rb") as raw:
        for tar, info in _members(source, HashingReader(raw)):
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
            f = FILE_MEMBER.fullmatch(name)
            if f:
                if not is_state_file(f.group(1)):  # the manifest check refuses these already
                    raise bad(name, "names a file the import never takes from a snapshot")
                target = record_dir / f.group(1)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                continue
            m = MODEL_MEMBER.fullmatch(name)
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
            p = POINTS_MEMBER.fullmatch(name)
            if p is None:
                raise bad(name, "is not part of the snapshot format")
            stem = f"points/{p.group(1)}"
            if pending and pending_stem != stem:
                raise bad(name, f"starts a chunk before {shown(pending_stem)} is complete")
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
        raise InvalidArgument(f"snapshot {shown(str(source))}: a points chunk is incomplete ({sorted(pending)})")
    saved = models.versions()
    if saved != [int(v) for v in manifest.get("model_versions", saved)]:
        raise InvalidArgument(f"snapshot {shown(str(source))}: models {saved} differ from the manifest's "
                              f"{manifest.get('model_versions')}")
    for v in saved:
        if not ((models.directory / f"v{v}" / "model.json").exists()
                and (models.directory / f"v{v}" / "centroids.npy").exists()):
            raise InvalidArgument(f"snapshot {shown(str(source))}: model v{v} is incomplete")
    return points
