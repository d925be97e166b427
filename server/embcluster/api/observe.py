"""The observability interceptor: request ids (metadata <-> contextvar <-> logs) and RPC metrics.

It sits outside :class:`~embcluster.api.errors.ErrorInterceptor`, so it sees the final status
code of every call (the error interceptor has already turned domain errors into codes).
"""

from __future__ import annotations

import logging
import re
import os
import time
from typing import Any, Callable, Iterator

import grpc

from ..logs import request_id_var
from ..metrics import ServiceMetrics
from .streams import is_non_blocking

__all__ = ["REQUEST_ID_KEY", "ObservabilityInterceptor"]

logger = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")  # anything else is replaced, not logged verbatim


def _request_id(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and _VALID_ID.fullmatch(value):
            return value
    return os.urandom(16).hex()  # 128 random bits like uuid4, at a fraction of its cost


def _code(context: grpc.ServicerContext, failed: bool) -> str:
    code = context.code()
    if code is None:
        if not context.is_active():  # the client cancelled or its deadline passed
            return "CANCELLED"
        return "UNKNOWN" if failed else "OK"
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


class ObservabilityInterceptor(grpc.ServerInterceptor):
    """Per call: take ``x-request-id`` from the metadata (or make one), put it in the logging
    context, echo it in the trailing metadata, and record count + latency by method
    and final status code (a stream counts once, its latency lasting until its end).

    Args:
        metrics: Where to record; None records nothing (request ids only).
    """

    def __init__(self, metrics: ServiceMetrics | None) -> None:
        self._metrics = metrics

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or is_non_blocking(handler):  # the health Watch: wrapping would cost it a thread
            return handler
        method = handler_call_details.method.lstrip("/")
        request_id = _request_id(handler_call_details.invocation_metadata)
        metrics = self._metrics
        echo = ((REQUEST_ID_KEY, request_id),)

        def begin(context: grpc.ServicerContext) -> Any:
            token = request_id_var.set(request_id)
            # Trailing metadata only: sending initial metadata early is a separate batch in gRPC core
            # and cost ~0.25 ms per call here (bench/bench_metrics.py); trailers ride with the status.
            context.set_trailing_metadata(echo)
            return token

        def finish(context: grpc.ServicerContext, token: Any, started: float, failed: bool) -> None:
            if metrics is not None:
                metrics.observe_rpc(method, _code(context, failed), time.perf_counter() - started)
            try:
                request_id_var.reset(token)
            except ValueError:  # a stream closed from another context (e.g. collected later)
                request_id_var.set("")

        def unary(behaviour: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
                started = time.perf_counter()
                token = begin(context)
                failed = True
                try:
                    response = behaviour(request, context)
                    failed = False
                    return response
                finally:
                    finish(context, token, started, failed)
            return wrapped

        def streaming(behaviour: Callable[[Any, grpc.ServicerContext], Iterator[Any]]) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                started = time.perf_counter()
                token = begin(context)
                failed = True
                try:
                    yield from behaviour(request, context)
                    failed = False
                finally:
                    finish(context, token, started, failed)
            return wrapped

        kw = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **kw)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **kw)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), **kw)
        return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), **kw)
