"""Compatibility names: the service core now lives in :mod:`embcluster.core` (see docs/architecture.md).

``from embcluster.pipeline import EmbclusterService`` keeps working for the API layer, the command
line, the benches and the tests.
"""

from __future__ import annotations

from .core.records import CREATING_MARKER, INDEXED_FIELDS, RESERVED_FIELDS, CollectionRecord, point_id_for
from .core.service import EmbclusterService

__all__ = ["EmbclusterService", "point_id_for", "RESERVED_FIELDS", "INDEXED_FIELDS", "CREATING_MARKER",
           "CollectionRecord"]
