"""Vector stores: one protocol, Qdrant Edge (embedded default) and Qdrant through qdrant-client."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import FieldEquals, FieldMissing, PointFilter, StoredPoint, StoreFactory, VectorStore
from ..redact import redact_url
from .edge import EdgeStore
from .edge_factory import EdgeStoreFactory

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "FieldEquals",
    "FieldMissing",
    "PointFilter",
    "StoredPoint",
    "StoreFactory",
    "VectorStore",
    "EdgeStore",
    "EdgeStoreFactory",
    "make_store_factory",
]


def make_store_factory(settings: "Settings") -> StoreFactory:
    """The backend the settings choose: Qdrant Edge under ``data_dir/shards``, or Qdrant.

    Raises:
        Unavailable: ``store=qdrant`` and the server cannot be reached (the message names the URL).
        InvalidArgument: ``store=qdrant`` without ``qdrant_url`` or ``qdrant_path``.
    """
    if settings.store == "edge":
        return EdgeStoreFactory(Path(settings.data_dir) / "shards", sync=settings.durability == "fsync",
                                reserve_bytes=settings.reserve_bytes)
    from ..errors import InvalidArgument
    from .server import QdrantConnection, QdrantStoreFactory

    if bool(settings.qdrant_url) == bool(settings.qdrant_path):
        raise InvalidArgument("store=qdrant needs exactly one of qdrant_url (a server) or qdrant_path "
                              f"(local mode), got url={redact_url(settings.qdrant_url)!r} path={settings.qdrant_path!r}")
    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key is not None else None
    conn = QdrantConnection(
        url=settings.qdrant_url, path=settings.qdrant_path, grpc_port=settings.qdrant_grpc_port, api_key=key,
        https=settings.qdrant_https, ca_cert=settings.qdrant_ca_cert, timeout_s=settings.qdrant_timeout_s,
    )
    return QdrantStoreFactory(conn, prefix=settings.qdrant_collection_prefix,
                              shard_number=settings.qdrant_shard_number,
                              replication_factor=settings.qdrant_replication_factor)
