"""A cap on the streaming calls open at once: each one holds a gRPC worker thread for its whole life.

Slots are also counted per client, so one client cannot hold them all: a client is its API key
when the call carries ``authorization`` metadata (hashed, never kept), else its peer's address
without the port (all connections from one host are one client).
"""

from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import grpc

from ..errors import ResourceExhausted

__all__ = ["StreamSlots", "StreamLimitInterceptor", "is_non_blocking", "client_of"]


def client_of(context: grpc.ServicerContext) -> str:
    """Who a call comes from, for fairness: a hash of its ``authorization`` value, else its peer's host."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and value:
            raw = value if isinstance(value, bytes) else str(value).encode()
            return "key:" + hashlib.sha256(raw).hexdigest()[:16]
    peer = context.peer() or ""
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        address = address.rsplit(":", 1)[0]  # drop the port: one host, one client
    return f"peer:{kind}:{address}"


class StreamSlots:
    """Counts open streams; one over ``limit`` is refused rather than queued.

    Without a cap, as many idle watchers as there are worker threads would leave none for unary
    calls, and every later request would wait in gRPC's queue with no error.

    Args:
        limit: Streams allowed at once (below the number of gRPC worker threads).
        per_client: Streams one client may hold at once (default: ``limit``).
    """

    def __init__(self, limit: int, per_client: int | None = None) -> None:
        self.limit = limit
        self.per_client = min(per_client or limit, limit)
        self._lock = threading.Lock()
        self._open = 0
        self._by_client: dict[str, int] = {}

    @property
    def open(self) -> int:
        """Streams open now."""
        return self._open

    def held_by(self, client: str) -> int:
        """Streams ``client`` holds now."""
        return self._by_client.get(client, 0)

    @contextmanager
    def hold(self, method: str, client: str = "") -> Iterator[None]:
        """Hold a slot for the body of one streaming call; RESOURCE_EXHAUSTED when none is free.

        A client already holding ``per_client`` slots is refused even when others are free.
        """
        with self._lock:
            if self._open >= self.limit:
                raise ResourceExhausted(
                    f"{method}: {self.limit} streaming calls are already open on this server "
                    f"(max_open_streams={self.limit}); close one and call again, or raise "
                    "EMBCLUSTER_MAX_OPEN_STREAMS (it must stay below EMBCLUSTER_GRPC_WORKERS)")
            if self._by_client.get(client, 0) >= self.per_client:
                raise ResourceExhausted(
                    f"{method}: this client already holds {self.per_client} streaming calls "
                    f"(max_open_streams_per_client={self.per_client}); close one and call again")
            self._open += 1
            self._by_client[client] = self._by_client.get(client, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1
                left = self._by_client[client] - 1
                if left:
                    self._by_client[client] = left
                else:
                    del self._by_client[client]


def is_non_blocking(handler: Any) -> bool:
    """A handler gRPC runs without a worker thread (the health service's ``Watch``): wrappers must pass it as is.

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
            with slots.hold(method, client_of(context)):
                yield from behaviour(request, context)

        factory = (grpc.unary_stream_rpc_method_handler if handler.unary_stream is not None
                   else grpc.stream_stream_rpc_method_handler)
        return factory(held, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)
