"""The snapshot file format's shared parts: member names, paths, the summary, progress and hashing.

The format itself is described in :mod:`embcluster.snapshot` (export) and used by
:mod:`embcluster.snapshot_import` (verify and import).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable

from .errors import InvalidArgument, PermissionDenied, shown

if TYPE_CHECKING:
    from .config import Settings

__all__ = [
    "SNAPSHOT_FORMAT",
    "SCHEMA_VERSION",
    "MAX_MEMBER_BYTES",
    "READ_BLOCK",
    "LOG_EVERY_S",
    "MODEL_MEMBER",
    "POINTS_MEMBER",
    "FILE_MEMBER",
    "NOT_COPIED_DIRS",
    "SnapshotSummary",
    "ProgressFn",
    "Progress",
    "HashingWriter",
    "HashingReader",
    "is_state_file",
    "resolve_snapshot_path",
    "snapshot_roots",
    "check_export_target",
]

logger = logging.getLogger(__name__)

SNAPSHOT_FORMAT = "embcluster-snapshot"
SCHEMA_VERSION = 1
MAX_MEMBER_BYTES = 1 << 30  # one chunk or model file; the exporter writes pages of page_size points
READ_BLOCK = 1 << 20
LOG_EVERY_S = 2.0
MODEL_MEMBER = re.compile(r"^models/v([1-9][0-9]{0,8})/(model\.json|centroids\.npy)$")
POINTS_MEMBER = re.compile(r"^points/([0-9]{6,9})\.(ids|f32|payload\.jsonl)$")
# Path components start with a letter, digit or underscore: no "..", no hidden or absolute paths.
FILE_MEMBER = re.compile(r"^files/((?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}/){0,3}[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")
NOT_COPIED_DIRS = ("models", "runs")  # models are members of their own; run records are history


def is_state_file(rel: str) -> bool:
    """Whether ``rel`` (a ``files/`` member's path) may be written into a collection directory.

    The record, the vector log, models and run records are never taken from ``files/``: a
    crafted snapshot could otherwise replace them behind the import's own checks.
    """
    parts = rel.split("/")
    return not (rel == "collection.json" or parts[0] in NOT_COPIED_DIRS
                or (len(parts) == 1 and parts[0].startswith("vectors.")))


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


MAX_PATH_BYTES = 4096  # PATH_MAX on Linux
MAX_NAME_BYTES = 255  # NAME_MAX: one path component


def check_path_length(path: str) -> str:
    """A path the file system can take: checked before it touches the file system (no ENAMETOOLONG)."""
    size = len(path.encode("utf-8", "surrogatepass"))
    if size > MAX_PATH_BYTES:
        raise InvalidArgument(f"path {shown(path)} is {size} bytes; the limit is {MAX_PATH_BYTES}")
    for part in path.split("/"):
        part_size = len(part.encode("utf-8", "surrogatepass"))
        if part_size > MAX_NAME_BYTES:
            raise InvalidArgument(f"path component {shown(part)} is {part_size} bytes; "
                                  f"the limit is {MAX_NAME_BYTES}")
    return path


def resolve_snapshot_path(settings: Settings, path: str, *, confined: bool = False) -> Path:
    """The snapshot file a request names: absolute, or relative to ``<data_dir>/snapshots``.

    The path is on the server's machine: the server reads and writes it. ``confined`` (requests
    through the API) also refuses, with PERMISSION_DENIED, a file outside ``<data_dir>/snapshots``
    and the ``snapshot_dirs`` setting, symlinks resolved.
    """
    if not path or not path.strip():
        raise InvalidArgument("path is empty: give a snapshot file path on the server's machine")
    if "\x00" in path:
        raise InvalidArgument(f"path {shown(path)} contains a NUL byte")
    check_path_length(path)
    try:
        p = Path(path).expanduser()
    except RuntimeError as exc:  # "~someone" with no such user
        raise InvalidArgument(f"snapshot path {shown(path)}: {exc}") from None
    if not p.is_absolute():
        if ".." in p.parts:  # relative paths stay under <data_dir>/snapshots
            raise InvalidArgument(f"relative snapshot path {shown(path)} leaves <data_dir>/snapshots ('..'): "
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
            f"snapshot path {shown(str(target))} is outside the directories this server reads and writes "
            f"snapshots in ({', '.join(repr(str(r)) for r in roots)}): give a path relative to "
            "<data_dir>/snapshots, or have the server started with the directory in EMBCLUSTER_SNAPSHOT_DIRS")
    return where


def check_export_target(settings: Settings, target: Path) -> None:
    """An export never writes over the service's own state (its data directory, but for ``snapshots/``)."""
    data_dir = Path(settings.data_dir).expanduser().resolve()
    where = target.resolve()
    if where.is_relative_to(data_dir) and not where.is_relative_to(data_dir / "snapshots"):
        raise InvalidArgument(f"snapshot path {shown(str(target))} is inside the data directory {shown(str(data_dir))}: "
                              "write snapshots under its snapshots/ directory (a relative path) or elsewhere")


class Progress:
    """Calls the caller's callback on every step and logs at most every couple of seconds."""

    def __init__(self, phase: str, what: str, total: int, callback: ProgressFn | None) -> None:
        self.phase, self.what, self.total, self.callback = phase, what, total, callback
        self._logged = time.monotonic()

    def __call__(self, done: int) -> None:
        if self.callback is not None:
            self.callback(self.phase, done, self.total)
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY_S:
            self._logged = now
            logger.info("%s %s: %d / %d %s", self.phase, self.what, done, self.total,
                        "bytes" if self.phase == "verify" else "points")


class HashingWriter:
    """File-like sink for tarfile's stream mode: writes through and hashes what it writes."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)


class HashingReader:
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
        while self.read(READ_BLOCK):
            pass
