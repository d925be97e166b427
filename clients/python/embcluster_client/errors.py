"""Exceptions raised by the embcluster clients.

Every failed call of either client (``EmbclusterClient``, ``Client`` and their asyncio twins, unary
calls and streams alike) raises an :class:`EmbclusterError` subclass chosen by the gRPC status
code: ``NotFound``, ``InvalidArgument``, ``FailedPrecondition``, ... The server's message is
``exc.message`` and the code ``exc.status``.

They are ``grpc.RpcError`` subclasses with gRPC's own accessors, so code written against plain
gRPC keeps working::

    try:
        client.get_collection("missing")
    except NotFound as exc:          # or: except grpc.RpcError as exc
        print(exc.status, exc.message)  # == exc.code(), exc.details()

:class:`RunFailed` is not among them: it reports a clustering run that ended badly after every
call succeeded, and existing ``except grpc.RpcError`` handlers should not start catching it.
"""

from __future__ import annotations

import enum
from typing import Any

import grpc

from embcluster.api.v1 import embcluster_pb2 as pb

from . import models

__all__ = [
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
    "error_class",
    "from_rpc_error",
    "from_status",
    "RunFailed",
]


class EmbclusterError(grpc.RpcError):
    """A call to the server failed; the subclass names the gRPC status code.

    Attributes:
        status: The ``grpc.StatusCode`` (also returned by :meth:`code`, as in gRPC's errors).
        message: The server's message (also returned by :meth:`details`).
        rpc_error: The error gRPC raised, when there was one (metadata, debug string).
    """

    STATUS: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, status: grpc.StatusCode | None = None,
                 rpc_error: grpc.RpcError | None = None) -> None:
        self.status = status if status is not None else self.STATUS
        self.message = message
        self.rpc_error = rpc_error
        super().__init__(f"{self.status.name}: {message}")

    def code(self) -> grpc.StatusCode:
        """The status code (what ``grpc.RpcError.code()`` returns)."""
        return self.status

    def details(self) -> str:
        """The server's message (what ``grpc.RpcError.details()`` returns)."""
        return self.message

    def trailing_metadata(self) -> Any:
        """The call's trailing metadata (e.g. ``x-request-id``), None without a gRPC error."""
        return self.rpc_error.trailing_metadata() if self.rpc_error is not None else None  # type: ignore[attr-defined]

    def initial_metadata(self) -> Any:
        """The call's initial metadata, None without a gRPC error."""
        return self.rpc_error.initial_metadata() if self.rpc_error is not None else None  # type: ignore[attr-defined]

    def debug_error_string(self) -> str:
        """gRPC's debug string of the failure ("" without a gRPC error)."""
        if self.rpc_error is None:
            return ""
        return str(self.rpc_error.debug_error_string())  # type: ignore[attr-defined]


class Cancelled(EmbclusterError):
    """CANCELLED: the call was cancelled (usually by the caller, e.g. a stream's ``cancel()``)."""

    STATUS = grpc.StatusCode.CANCELLED


class Unknown(EmbclusterError):
    """UNKNOWN: an error without a better code."""

    STATUS = grpc.StatusCode.UNKNOWN


class InvalidArgument(EmbclusterError):
    """INVALID_ARGUMENT: the request is wrong; the message names the offending value."""

    STATUS = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(EmbclusterError):
    """DEADLINE_EXCEEDED: the call did not finish within its timeout."""

    STATUS = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(EmbclusterError):
    """NOT_FOUND: the collection, point, run or model version does not exist."""

    STATUS = grpc.StatusCode.NOT_FOUND


class AlreadyExists(EmbclusterError):
    """ALREADY_EXISTS: a collection of that name (or a snapshot file) exists already."""

    STATUS = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(EmbclusterError):
    """PERMISSION_DENIED: the API key may not do this, or a path is outside the allowed ones."""

    STATUS = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(EmbclusterError):
    """RESOURCE_EXHAUSTED: a message, batch, stream count or disk limit was reached."""

    STATUS = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(EmbclusterError):
    """FAILED_PRECONDITION: not now or not for this collection (e.g. a run is in progress)."""

    STATUS = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(EmbclusterError):
    """ABORTED: the operation was aborted (e.g. by a concurrent change)."""

    STATUS = grpc.StatusCode.ABORTED


class OutOfRange(EmbclusterError):
    """OUT_OF_RANGE: a value past the valid range."""

    STATUS = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(EmbclusterError):
    """UNIMPLEMENTED: the server does not offer this call (e.g. an older server)."""

    STATUS = grpc.StatusCode.UNIMPLEMENTED


class Internal(EmbclusterError):
    """INTERNAL: a server bug; its log has the traceback under the call's request id."""

    STATUS = grpc.StatusCode.INTERNAL


class Unavailable(EmbclusterError):
    """UNAVAILABLE: the server cannot be reached or is shutting down; retrying may help."""

    STATUS = grpc.StatusCode.UNAVAILABLE


class DataLoss(EmbclusterError):
    """DATA_LOSS: unrecoverable data loss or corruption."""

    STATUS = grpc.StatusCode.DATA_LOSS


class Unauthenticated(EmbclusterError):
    """UNAUTHENTICATED: no API key, or one the server does not know."""

    STATUS = grpc.StatusCode.UNAUTHENTICATED


# The one table from status code to exception class.
_BY_STATUS: dict[grpc.StatusCode, type[EmbclusterError]] = {cls.STATUS: cls for cls in (
    Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists, PermissionDenied,
    ResourceExhausted, FailedPrecondition, Aborted, OutOfRange, Unimplemented, Internal, Unavailable,
    DataLoss, Unauthenticated,
)}


def error_class(status: grpc.StatusCode) -> type[EmbclusterError]:
    """The exception class of a status code (``EmbclusterError`` itself for one without a class)."""
    return _BY_STATUS.get(status, EmbclusterError)


def from_status(status: grpc.StatusCode | str, message: str) -> EmbclusterError:
    """The exception for a status code or its name (e.g. an ``IngestAck.error_code``).

    Raises:
        ValueError: ``status`` is a name that is not a gRPC status code.
    """
    if isinstance(status, str):
        try:
            status = grpc.StatusCode[status]
        except KeyError:
            raise ValueError(f"not a gRPC status code name: {status!r}") from None
    return error_class(status)(message, status=status)


def from_rpc_error(exc: grpc.RpcError) -> EmbclusterError:
    """The typed exception for an error gRPC raised (returned as it is if it is one already)."""
    if isinstance(exc, EmbclusterError):
        return exc
    code = getattr(exc, "code", None)
    status = code() if callable(code) else None
    details = getattr(exc, "details", None)
    message = (details() if callable(details) else None) or str(exc)
    if not isinstance(status, grpc.StatusCode):
        status = grpc.StatusCode.UNKNOWN
    return error_class(status)(message, status=status, rpc_error=exc)


class RunFailed(Exception):
    """A clustering run ended FAILED or CANCELLED.

    Attributes:
        run: The run as last reported by the server: a ``pb.ClusteringRun`` from
            ``EmbclusterClient``, a :class:`~embcluster_client.models.ClusteringRun` from ``Client``.
    """

    def __init__(self, run: pb.ClusteringRun | models.ClusteringRun) -> None:
        self.run = run
        state = run.state.name if isinstance(run.state, enum.Enum) else pb.RunState.Name(run.state)
        detail = f": {run.error}" if run.error else ""
        super().__init__(f"clustering run {run.run_id} of {run.collection!r} ended {state}{detail}")
