"""Domain errors. Each carries a code; ``api/`` maps codes to gRPC status codes."""

from __future__ import annotations

import enum

__all__ = [
    "ErrorCode",
    "EmbclusterError",
    "InvalidArgument",
    "NotFound",
    "AlreadyExists",
    "FailedPrecondition",
    "PermissionDenied",
    "ResourceExhausted",
    "Unavailable",
    "shown",
    "ECHO_LIMIT",
    "MESSAGE_LIMIT",
]

ECHO_LIMIT = 200  # characters of a caller's value echoed in an error message or a log line
MESSAGE_LIMIT = 2000  # characters of one error message (a status trailer must stay small)


def shown(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters: how every caller-supplied value is echoed.

    Errors and logs name the offending value; an unbounded one (a 20,000-character name) would
    overflow the gRPC status trailer and fill the log.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...<{len(text)} characters>"


class ErrorCode(enum.Enum):
    """What kind of failure an error is, independent of the transport."""

    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    FAILED_PRECONDITION = "failed_precondition"
    PERMISSION_DENIED = "permission_denied"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class EmbclusterError(Exception):
    """Base of every error the core raises on purpose."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str) -> None:
        if len(message) > MESSAGE_LIMIT:  # a safety net: values are echoed through shown()
            message = f"{message[:MESSAGE_LIMIT]}...<{len(message)} characters>"
        super().__init__(message)
        self.message = message


class InvalidArgument(EmbclusterError):
    """The request itself is wrong; retrying it unchanged fails again."""

    code = ErrorCode.INVALID_ARGUMENT


class NotFound(EmbclusterError):
    """A named collection, point or run does not exist."""

    code = ErrorCode.NOT_FOUND


class AlreadyExists(EmbclusterError):
    """Creating something that exists."""

    code = ErrorCode.ALREADY_EXISTS


class FailedPrecondition(EmbclusterError):
    """The request is valid but the state does not allow it (e.g. no model yet)."""

    code = ErrorCode.FAILED_PRECONDITION


class PermissionDenied(EmbclusterError):
    """The server is configured not to do this for a caller (e.g. a file outside its allowed directories)."""

    code = ErrorCode.PERMISSION_DENIED


class ResourceExhausted(EmbclusterError):
    """A size or count limit was exceeded."""

    code = ErrorCode.RESOURCE_EXHAUSTED


class Unavailable(EmbclusterError):
    """A backend cannot be reached; retrying later may succeed."""

    code = ErrorCode.UNAVAILABLE
