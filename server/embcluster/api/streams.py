"""A cap on the streaming calls open at once: each one holds a gRPC worker thread for its whole life."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import grpc

from ..errors import ResourceExhausted

__all__ = ["StreamSlots", "StreamLimitInterceptor", "is_non_blocking"]


class StreamSlots:
    """Counts open streams; one over ``limit`` is refused rather than queued.

    Without a cap, as many idle watchers as there are worker threads would leave none for unary
    calls, and every later request would wait in gRPC's queue with no error.

    Args:
        limit: Streams allowed at once (below the number of gRPC worker threads).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._open = 0

    @property
    def open(self) -> int:
        """Streams open now."""
        return self._open

    @contextmanager
    def hold(self, method: str) -> Iterator[None]:
        """Hold a slot for the body of one streaming call; RESOURCE_EXHAUSTED when none is free."""
        with self._lock:
            if self._open >= self.limit:
                raise ResourceExhausted(
                    f"{method}: {self.limit} streaming calls are already open on this server "
                    f"(max_open_streams={self.limit}); close one and call again, or raise "
                    "EMBCLUSTER_MAX_OPEN_STREAMS (it must stay below EMBCLUSTER_GRPC_WORKERS)")
            self._open += 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1


def is_non_blocking(handler: Any) -> bool:
    """A handler gRPC runs without a worker thread (grpc_health's ``Watch``): wrappers must pass it as is.

    Wrapping its behaviour in a generator would drop the flag, and each such call would then
    hold a worker thread for as long as the client keeps it open.
    """
    behaviour = handler.unary_stream or handler.stream_stream or handler.unary_unary or handler.stream_unary
    return bool(getattr(behaviour, "experimental_non_blocking", False))


class StreamLimitInterceptor(grpc.ServerInterceptor):
    """Holds a :class:`StreamSlots` slot for every blocking streaming call, of any service.

    Innermost interceptor: its RESOURCE_EXHAUSTED goes through the error interceptor like any
    domain error.
    """

    def __init__(self, slots: StreamSlots) -> None:
        self.slots = slots

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or not (handler.unary_stream or handler.stream_stream) or is_non_blocking(handler):
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        slots = self.slots
        behaviour = handler.unary_stream or handler.stream_stream

        def held(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            with slots.hold(method):
                yield from behaviour(request, context)

        factory = (grpc.unary_stream_rpc_method_handler if handler.unary_stream is not None
                   else grpc.stream_stream_rpc_method_handler)
        return factory(held, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)
