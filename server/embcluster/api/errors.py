"""One table from domain error codes to gRPC status codes, and the interceptor applying it.

The interceptor also hands the call's deadline to the core (:mod:`embcluster.deadlines`: a wait
for a model still loading ends with it), and parses every request itself: bytes that are not the method's request
message (a bad encoding, nesting past protobuf's recursion limit) are INVALID_ARGUMENT, never
gRPC's own INTERNAL "Exception deserializing request!" (which, on a stream's first message, also
left the call unfinishable and blocked shutdown).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import grpc

from ..deadlines import call_deadline
from ..errors import EmbclusterError, ErrorCode, InvalidArgument
from ..fsio import space_error
from .streams import is_non_blocking

__all__ = ["STATUS_BY_CODE", "ErrorInterceptor", "Unparseable", "tolerant"]

logger = logging.getLogger(__name__)

STATUS_BY_CODE: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.INTERNAL: grpc.StatusCode.INTERNAL,
}


class Unparseable:
    """Stands for a request message that could not be parsed; the handler answers INVALID_ARGUMENT."""

    def __init__(self, method: str, reason: str) -> None:
        self.error = InvalidArgument(f"{method}: the request is not a valid {method.rsplit('/', 1)[-1]} request "
                                     f"message ({reason[:200]})")


def tolerant(deserializer: Callable[[bytes], Any] | None, method: str) -> Callable[[bytes], Any] | None:
    """A request deserializer that never raises: what it cannot parse becomes an :class:`Unparseable`."""
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError, RecursionError, or anything a parser raises
            return Unparseable(method, f"{type(exc).__name__}: {exc}")

    return parse


def _parsed(request: Any) -> Any:
    if isinstance(request, Unparseable):
        raise request.error
    return request


def _parsed_stream(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        yield _parsed(request)


def _parsed_non_blocking(handler: Any, deserializer: Callable[[bytes], Any] | None) -> Any:
    """A non-blocking unary-stream handler with a tolerant deserializer; it keeps its flags."""
    behaviour = handler.unary_stream

    def run(request: Any, context: grpc.ServicerContext, *args: Any, **kwargs: Any) -> Any:
        if isinstance(request, Unparseable):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.error.message)
        return behaviour(request, context, *args, **kwargs)

    for flag in ("experimental_non_blocking", "experimental_thread_pool"):
        if hasattr(behaviour, flag):
            setattr(run, flag, getattr(behaviour, flag))
    return grpc.unary_stream_rpc_method_handler(run, request_deserializer=deserializer,
                                                response_serializer=handler.response_serializer)


class ErrorInterceptor(grpc.ServerInterceptor):
    """Domain errors to their status code, out of disk space to RESOURCE_EXHAUSTED, the rest to INTERNAL (logged).

    Covers unary and streaming handlers (an error inside a stream ends it with that code), sets
    the call's deadline for the core (:func:`~embcluster.deadlines.call_deadline`), and parses
    their requests with :func:`tolerant` deserializers (INVALID_ARGUMENT for bad bytes).
    """

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        deserializer = tolerant(handler.request_deserializer, method)
        if is_non_blocking(handler):  # the health service's Watch: only its requests are parsed here
            return _parsed_non_blocking(handler, deserializer) if handler.unary_stream is not None else handler

        def fail(exc: Exception, context: grpc.ServicerContext) -> None:
            if context.code() is not None:  # the handler already aborted with its own status
                raise exc
            if isinstance(exc, EmbclusterError):
                context.abort(STATUS_BY_CODE[exc.code], exc.message)
            full = space_error(exc, getattr(exc, "filename", None) or "the data directory or the store")
            if full is not None:  # a full disk met outside the store's own checks (a record, a model file)
                logger.warning("out of space in %s: %s", method, exc)
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, full.message)
            logger.exception("unexpected error in %s", method)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}; see the server log")

        if handler.unary_unary is not None:
            unary = handler.unary_unary

            def unary_wrapped(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    with call_deadline(context.time_remaining(), context.is_active):
                        return unary(_parsed(request), context)
                except Exception as exc:
                    fail(exc, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_wrapped, request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        streaming = handler.unary_stream or handler.stream_stream
        many = handler.stream_stream is not None

        def stream_wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                with call_deadline(context.time_remaining(), context.is_active):
                    yield from streaming(_parsed_stream(request) if many else _parsed(request), context)
            except Exception as exc:
                fail(exc, context)

        factory = (grpc.unary_stream_rpc_method_handler if handler.unary_stream is not None
                   else grpc.stream_stream_rpc_method_handler)
        return factory(stream_wrapped, request_deserializer=deserializer,
                       response_serializer=handler.response_serializer)
