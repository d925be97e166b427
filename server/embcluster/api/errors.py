"""One table from domain error codes to gRPC status codes, and the interceptor applying it."""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import grpc

from ..errors import EmbclusterError, ErrorCode
from ..fsio import space_error
from .streams import is_non_blocking

__all__ = ["STATUS_BY_CODE", "ErrorInterceptor"]

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


class ErrorInterceptor(grpc.ServerInterceptor):
    """Domain errors to their status code, out of disk space to RESOURCE_EXHAUSTED, the rest to INTERNAL (logged).

    Covers unary and streaming handlers (an error inside a stream ends it with that code).
    """

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or is_non_blocking(handler):  # not our code, and must keep its flag
            return handler
        method = handler_call_details.method

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
                    return unary(request, context)
                except Exception as exc:
                    fail(exc, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_wrapped, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        streaming = handler.unary_stream or handler.stream_stream

        def stream_wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from streaming(request, context)
            except Exception as exc:
                fail(exc, context)

        factory = (grpc.unary_stream_rpc_method_handler if handler.unary_stream is not None
                   else grpc.stream_stream_rpc_method_handler)
        return factory(stream_wrapped, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)
