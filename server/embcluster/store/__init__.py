"""Vector stores: one protocol, an embedded Qdrant Edge implementation (the default)."""

from .base import FieldEquals, FieldMissing, PointFilter, StoredPoint, StoreFactory, VectorStore
from .edge import EdgeStore, EdgeStoreFactory

__all__ = [
    "FieldEquals",
    "FieldMissing",
    "PointFilter",
    "StoredPoint",
    "StoreFactory",
    "VectorStore",
    "EdgeStore",
    "EdgeStoreFactory",
]
