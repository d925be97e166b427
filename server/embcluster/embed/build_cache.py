"""Derived models built once and cached under the data directory (``<data_dir>/embedders``).

A tier such as ``static`` or ``onnx-int8`` is derived from a sentence-transformers model by a
long local computation (distilling, exporting, quantizing: tens of seconds). Its result is
cached in a directory of its own, named after the tier and the source model's fingerprint, and
built like this:

* into a temporary sibling directory (``.<name>.tmp-<random>``), removed if the build fails,
  so a failed or interrupted build never leaves a half-built model under the final name;
* ``build.json`` (the schema version, tier, source fingerprint and recipe) written last, after the
  files it vouches for are synced;
* renamed into place in one step (and the parent directory fsynced).

A directory whose ``build.json`` does not match what is asked for (another recipe, another schema
version, or a leftover without it) is rebuilt. One process owns a data directory
(:mod:`embcluster.datalock`), and within it :class:`embcluster.embed.registry.EmbedderRegistry`
starts one build per tier at a time, so no two builds race for the same directory.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

from ..fsio import fsync_dir, fsync_tree, read_json, write_json_atomic

__all__ = ["BUILD_SCHEMA_VERSION", "BUILD_FILE", "cached_build", "is_built"]

logger = logging.getLogger(__name__)

BUILD_SCHEMA_VERSION = 1
BUILD_FILE = "build.json"


def is_built(directory: Path, meta: Mapping[str, Any]) -> bool:
    """Whether ``directory`` holds a finished build of exactly ``meta``."""
    path = directory / BUILD_FILE
    if not path.is_file():
        return False
    try:
        recorded = read_json(path)
    except (OSError, ValueError):
        return False
    return bool(recorded == {**meta, "schema_version": BUILD_SCHEMA_VERSION})


def cached_build(directory: Path, meta: Mapping[str, Any], build: Callable[[Path], None], *, what: str,
                 progress_every_s: float = 15.0) -> Path:
    """``directory`` holding ``build``'s output for ``meta``: reused if built before, else built now.

    Args:
        directory: The final directory (its parent is created if needed).
        meta: What identifies the build (tier, source fingerprint, recipe); JSON-serialisable.
        build: Writes the model's files into the (empty, temporary) directory it is given.
        what: How the log names the build (e.g. ``static model of all-MiniLM-L6-v2``).
        progress_every_s: While it runs, a log line says so this often (the build reports no
            progress of its own to the log).

    Returns:
        ``directory``.
    """
    if is_built(directory, meta):
        logger.info("using the cached %s (%s)", what, directory)
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    for leftover in directory.parent.glob(f".{directory.name}.tmp-*"):  # a build killed mid-way
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = directory.with_name(f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}")
    started = time.perf_counter()
    logger.info("building the %s into %s (first use; this takes a while, once)", what, directory)
    done = threading.Event()
    threading.Thread(target=_heartbeat, args=(done, what, started, progress_every_s), name="build-progress",
                     daemon=True).start()
    try:
        tmp.mkdir()
        build(tmp)
        fsync_tree(tmp)  # the files on disk before the build.json that says they are whole
        write_json_atomic(tmp / BUILD_FILE, {**meta, "schema_version": BUILD_SCHEMA_VERSION})
        if directory.exists():  # a stale build (other recipe or schema): replaced whole
            shutil.rmtree(directory)
        tmp.rename(directory)
        fsync_dir(directory.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        logger.error("building the %s failed after %.1f s; nothing was kept", what, time.perf_counter() - started)
        raise
    finally:
        done.set()
    logger.info("built the %s in %.1f s", what, time.perf_counter() - started)
    return directory


def _heartbeat(done: threading.Event, what: str, started: float, every_s: float) -> None:
    while not done.wait(every_s):
        logger.info("still building the %s (%.0f s so far)", what, time.perf_counter() - started)
