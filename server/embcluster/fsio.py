"""Crash-safe small-file writes, and the one place that recognises a full disk."""

from __future__ import annotations

import errno
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import ResourceExhausted

__all__ = ["write_json_atomic", "read_json", "space_error", "check_free_space", "allocated_bytes", "fsync_dir", "fsync_tree", "pwrite_all",
           "fdatasync_all", "fdatasync_started",
           "DirectorySync"]

_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How the Qdrant Edge binding (plain Exception) and Rust's io::Error spell the same two errnos.
_SPACE_TEXTS = ("no space left on device", "disk quota exceeded", "os error 28", "os error 122")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temp file, fsync, rename over ``path``: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(path.read_text(encoding="utf-8"))


def space_error(exc: BaseException, where: Path | str) -> ResourceExhausted | None:
    """A RESOURCE_EXHAUSTED error naming ``where`` if ``exc`` means out of space (ENOSPC, EDQUOT), else None.

    Recognises ``OSError`` by errno and the engine's own errors (the Qdrant Edge binding raises a
    plain ``Exception`` whose text carries the OS error) by their message.
    """
    if isinstance(exc, ResourceExhausted):
        return exc
    out = isinstance(exc, OSError) and exc.errno in _SPACE_ERRNOS
    if not out and not isinstance(exc, OSError):
        text = str(exc).lower()
        out = any(t in text for t in _SPACE_TEXTS)
    if not out:
        return None
    err = ResourceExhausted(f"out of disk space on the filesystem holding {str(where)!r} "
                            f"({_free_text(where)}): free space there, then retry ({_short(exc)})")
    err.__cause__ = exc
    return err


def check_free_space(where: Path | str, reserve_bytes: int, why: str = "the reserve kept for the store (min_free_mb)") -> None:
    """RESOURCE_EXHAUSTED before a write if the filesystem of ``where`` has under ``reserve_bytes`` free.

    The embedded engine grows memory-mapped files: on a full disk a write through such a mapping
    is a SIGBUS that kills the process, not an error. Refusing writes while less than a reserve is
    free keeps that from happening (``min_free_mb``; 0 turns the check off).
    """
    if reserve_bytes <= 0:
        return
    try:
        st = os.statvfs(where)
    except OSError:
        return  # not there yet: the write itself reports what is wrong
    free = st.f_bavail * st.f_frsize
    if free < reserve_bytes:
        raise ResourceExhausted(
            f"out of disk space on the filesystem holding {str(where)!r}: {free // 2**20} MiB free, under the "
            f"{reserve_bytes // 2**20} MiB of {why}; free space there, then retry")


def allocated_bytes(path: Path) -> int:
    """Disk blocks in use by the files under ``path`` (0 if it is not there)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _free_text(where: Path | str) -> str:
    try:
        st = os.statvfs(where)
    except OSError:
        return "free space unknown"
    return f"{st.f_bavail * st.f_frsize // 2**20} MiB free"


def _short(exc: BaseException, limit: int = 200) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit] + "…"


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """``os.pwrite`` until every byte is written (a short write is retried, an error raised)."""
    view = memoryview(data).cast("B")
    while len(view):
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(errno.EIO, f"pwrite wrote {n} bytes")
        view, offset = view[n:], offset + n


def fsync_dir(path: Path) -> None:
    """fsync a directory, so renames and new files in it survive a power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fdatasync every file under ``path``, then fsync every directory (deepest first), so a copied tree survives a power loss."""
    dirs: list[Path] = []
    def fail(exc: OSError) -> None:  # a directory that cannot be listed cannot be synced either: say so
        raise exc

    for top, _subdirs, files in os.walk(path, onerror=fail):
        dirs.append(Path(top))
        fds: list[int] = []
        try:
            for name in files:
                fds.append(os.open(Path(top) / name, os.O_RDONLY))
            fdatasync_all(fds)  # one directory's files together: one journal commit
        finally:
            for fd in fds:
                os.close(fd)
    for d in reversed(dirs):
        fsync_dir(d)


_sync_pool: ThreadPoolExecutor | None = None
_sync_pool_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _sync_pool
    with _sync_pool_lock:
        if _sync_pool is None:
            _sync_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fdatasync")
        return _sync_pool


def fdatasync_started(fds: Sequence[int]) -> Callable[[], None]:
    """Start an fdatasync of every one of ``fds`` in the background; the returned function waits for all.

    The waiter raises the first error once all have finished. The descriptors must stay open
    until it returns.
    """
    running = [_pool().submit(os.fdatasync, fd) for fd in fds]

    def wait() -> None:
        error: OSError | None = None
        for done in running:
            try:
                done.result()
            except OSError as exc:
                error = error or exc
        if error is not None:
            raise error

    return wait


def fdatasync_all(fds: Sequence[int]) -> None:
    """fdatasync every one of ``fds`` before returning, concurrently.

    Why concurrently: a journaling filesystem commits the syncs that wait together in one
    journal commit and one device flush (on ext4 three files take about the time of one, where
    one after the other they take three). The first error is raised once all have finished.
    """
    if len(fds) < 2:
        for fd in fds:
            os.fdatasync(fd)
        return
    fdatasync_started(fds)()


class DirectorySync:
    """fdatasync every file of one directory, and the directory itself when its entries change.

    For a write-ahead log another component writes (the Qdrant Edge shard's ``wal/``: segment
    files written in place, rotated by renames): after :meth:`sync` returns True, whatever was
    written to those files before the call survives a power loss.

    Args:
        path: The directory.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._synced_names: frozenset[str] = frozenset()

    def sync(self) -> bool:
        """Sync every file (then the directory, if its names changed since the last sync).

        Returns False, having made nothing durable, when the directory is missing, holds no
        file, or a file went away meanwhile (rotated): the caller syncs another way.
        """
        try:
            names = frozenset(e.name for e in os.scandir(self.path) if e.is_file(follow_symlinks=False))
        except FileNotFoundError:
            return False
        if not names:
            return False
        fds: list[int] = []
        try:
            for name in sorted(names):
                fds.append(os.open(self.path / name, os.O_RDONLY))
            fdatasync_all(fds)
        except FileNotFoundError:
            return False
        finally:
            for fd in fds:
                os.close(fd)
        if names != self._synced_names:  # new or renamed files: their entries too
            fsync_dir(self.path)
            self._synced_names = names
        return True
