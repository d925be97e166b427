"""Python clients for the embcluster gRPC service.

- :class:`Client` / :class:`AsyncClient`: the Pythonic clients; they return the frozen dataclasses
  of :mod:`embcluster_client.models` (enums by name, dicts, datetimes; ``.proto`` keeps each
  message) and ``client.grpc`` is the protobuf client underneath.
- :class:`EmbclusterClient` / :class:`AsyncEmbclusterClient`: the low-level protobuf clients;
  responses are ``pb`` (the generated ``embcluster.v1`` messages module) types.

Both raise the typed exceptions of :mod:`embcluster_client.errors` (``NotFound``,
``InvalidArgument``, ...: ``grpc.RpcError`` subclasses) for every failed call.
"""

from embcluster.api.v1 import embcluster_pb2 as pb

from . import errors, models
from .aio import AsyncEmbclusterClient
from .client import EmbclusterClient
from .enums import ClusterEventKind, Distance, EventFieldType, InputKind, LongText, RunState, SummaryKind
from .errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    EmbclusterError,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    RunFailed,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
)
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
from .pythonic import Client
from .pythonic_aio import AsyncClient
from .streams import AsyncStream, Stream
from ._requests import schedule

__all__ = [
    "Client",
    "AsyncClient",
    "EmbclusterClient",
    "AsyncEmbclusterClient",
    "models",
    "errors",
    "InputKind",
    "Distance",
    "EventFieldType",
    "RunState",
    "LongText",
    "SummaryKind",
    "ClusterEventKind",
    "Stream",
    "AsyncStream",
    "EmbclusterError",
    "Cancelled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
    "RunFailed",
    "make_item",
    "make_items",
    "make_vector",
    "make_image_item",
    "make_image_metadata",
    "make_image_spec",
    "make_event",
    "make_event_item",
    "make_event_schema",
    "schedule",
    "pb",
]
