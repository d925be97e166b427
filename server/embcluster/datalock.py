"""One process per data directory: an exclusive ``flock`` on ``<data_dir>/embcluster.lock``.

Two servers on one data directory do not share it: each keeps its own view of the collections,
and the second one creating a collection the first already has removes the first one's shard
as the leftovers of a failed create — acknowledged points lost. ``embcluster serve`` and the
offline ``export``/``import --data-dir`` tools hold this lock for as long as they have the
directory open. The kernel drops an ``flock`` when its process dies, so a crash never leaves a
stale lock behind; the file itself stays (it only ever holds the pid of the last holder).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from .errors import FailedPrecondition, shown

__all__ = ["LOCK_FILE", "DataDirLock"]

LOCK_FILE = "embcluster.lock"


class DataDirLock:
    """The exclusive lock of one data directory (created if missing), held until :meth:`release`.

    Args:
        data_dir: The data directory.

    Raises:
        FailedPrecondition: another process holds it (its pid is in the message).
    """

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            who = f"pid {holder}: " if holder.isdigit() else ""
            raise FailedPrecondition(
                f"data directory {shown(str(data_dir.resolve()))} is in use by another process ({who}another "
                "embcluster serve, or an export/import --data-dir): stop it first, or give this one another "
                "--data-dir (EMBCLUSTER_DATA_DIR)") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        """Unlock (closing the file drops the lock); calling it again does nothing."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
