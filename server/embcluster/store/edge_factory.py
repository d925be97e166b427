"""The Qdrant Edge store factory: one embedded shard per collection under the data directory.

Creating a shard sets its payload indexes; opening one settles what an interrupted index build
left (:func:`~.edge_index.recover`) and refuses a shard another process holds. The store itself
is :class:`~.edge.EdgeStore`.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import qdrant_edge as qe

from ..errors import FailedPrecondition
from ..fsio import allocated_bytes, check_free_space, space_error
from .base import ForeignStore, Metric, VectorIndexSettings
from .edge import EdgeStore, edge_config, load_shard, space_errors
from .edge_convert import index_ops, shard_vector_params
from .edge_index import build_dir, recover, remove_leftovers

__all__ = ["EdgeStoreFactory"]


class EdgeStoreFactory:
    """Shards under ``<root>/<name>``; the server process owns every shard it opens."""

    backend = "edge"
    can_attach = False  # an embedded shard is always the service's own

    def __init__(self, root: Path, *, sync: bool = False, reserve_bytes: int = 0) -> None:
        self.root = root
        self.sync = sync
        self.reserve_bytes = reserve_bytes

    def native_name(self, name: str) -> str:
        """The shard's directory name (the collection's own name)."""
        return name

    def attach(self, native_name: str, vector_name: str = "") -> ForeignStore:
        """Refused: the embedded store holds only collections the service created."""
        raise FailedPrecondition("attaching an existing Qdrant collection needs store=qdrant "
                                 "(this server runs the embedded Qdrant Edge store)")

    def close(self) -> None:
        """Nothing to release: each store closes its own shard."""

    def create(self, name: str, *, dim: int, metric: Metric, indexed: dict[str, str],
               index: VectorIndexSettings = VectorIndexSettings()) -> EdgeStore:
        """Create a shard and its payload indexes (``index``: its HNSW settings)."""
        path = self.root / name
        if path.exists():
            shutil.rmtree(path)  # leftovers of a create that crashed before it was recorded
        # and of a dropped collection of this name whose drop a crash cut short: discarded, never restored
        shutil.rmtree(build_dir(self.root, name, "old"), ignore_errors=True)
        remove_leftovers(self.root, name)
        self.root.mkdir(parents=True, exist_ok=True)
        check_free_space(self.root, self.reserve_bytes)  # the engine mmaps what it creates: no SIGBUS
        cfg = edge_config(dim, metric, index)
        shard = None
        try:
            with space_errors(path):
                shard = qe.EdgeShard.create(str(path), cfg)
                for key, kind in indexed.items():
                    for op in index_ops(key, kind):
                        shard.update(op)
                if self.sync:
                    shard.flush()
        except BaseException:
            if shard is not None:
                with contextlib.suppress(Exception):
                    shard.close()
            shutil.rmtree(path, ignore_errors=True)
            raise
        return EdgeStore(shard, path, sync=self.sync, reserve_bytes=self.reserve_bytes, index=index)

    def open(self, name: str, index: VectorIndexSettings = VectorIndexSettings()) -> EdgeStore:
        """Open an existing shard; a shard held by another process is a clear error.

        What an interrupted index build left is settled first (:func:`~.edge_index.recover`), and
        the shard's HNSW settings are (re)written as ``index`` says (shards older than the index
        get them here; int8 codes, fixed at creation, are kept as the shard has them). An index due (e.g. points written by an older server) starts building.
        """
        path = self.root / name
        recover(self.root, name)
        if self.reserve_bytes:  # loading rewrites the shard's data into new mapped files (~its size): no SIGBUS
            check_free_space(self.root, self.reserve_bytes + allocated_bytes(path),
                             "the reserve (min_free_mb) plus the shard's own size, which loading it needs")
        try:
            shard = load_shard(path, edge_config(*shard_vector_params(path), index))
        except Exception as exc:  # the binding raises plain Exception
            err = space_error(exc, path)
            if err is not None:
                raise err from exc
            if "WouldBlock" in str(exc) or "WAL" in str(exc):
                raise FailedPrecondition(
                    f"shard {str(path)!r} is open in another process (is another embcluster "
                    f"server running on this data directory?): {exc}"
                ) from exc
            raise
        store = EdgeStore(shard, path, sync=self.sync, reserve_bytes=self.reserve_bytes, index=index)
        store.unindexed = store.probe_unindexed()
        store.indexer.poke(force=True)
        return store

    def drop(self, name: str) -> None:
        """Remove the shard directory (and what an index build left beside it).

        ``.old-<name>`` goes first: a crash after it and before the shard leaves a shard with no
        old copy, never an old copy that the next open would restore.
        """
        shutil.rmtree(build_dir(self.root, name, "old"), ignore_errors=True)
        shutil.rmtree(self.root / name, ignore_errors=True)
        remove_leftovers(self.root, name)
