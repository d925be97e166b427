"""Python client for the embcluster gRPC service.

``pb`` is the generated ``embcluster.v1`` messages module; responses are its types.
"""

from embcluster.api.v1 import embcluster_pb2 as pb

from .aio import AsyncEmbclusterClient
from .client import EmbclusterClient
from .errors import RunFailed
from .items import (
    make_event,
    make_event_item,
    make_event_schema,
    make_image_item,
    make_image_metadata,
    make_image_spec,
    make_item,
    make_items,
    make_vector,
)
from ._requests import schedule

__all__ = [
    "EmbclusterClient",
    "AsyncEmbclusterClient",
    "make_item",
    "make_items",
    "make_vector",
    "make_image_item",
    "make_image_metadata",
    "make_image_spec",
    "make_event",
    "make_event_item",
    "make_event_schema",
    "RunFailed",
    "schedule",
    "pb",
]
