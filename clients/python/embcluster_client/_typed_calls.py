"""The channel both clients build their stubs on: every failed call raises a typed error.

Wrapping the stubs' multi-callables (like the API key in ``_channel``) catches failures of every
kind of call in one place: unary calls when they return (blocking) or are awaited (asyncio), server
streams while they are iterated. No raw ``grpc._channel._InactiveRpcError`` or
``grpc.aio.AioRpcError`` reaches a caller; the typed error keeps it as ``rpc_error``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import grpc
import grpc.aio

from ._channel import ChannelWrapper
from .errors import from_rpc_error
from .streams import AsyncStream, Stream

__all__ = ["typed_errors", "typed_errors_aio"]


class _Delegating:
    """Every attribute but the overridden ones is the wrapped call's."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._call, name)


class _Unary(_Delegating):
    """A blocking unary-response multi-callable."""

    def __call__(self, request: Any, **kwargs: Any) -> Any:
        try:
            return self._call(request, **kwargs)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def with_call(self, request: Any, **kwargs: Any) -> Any:
        try:
            return self._call.with_call(request, **kwargs)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None


class _Awaited(_Delegating):
    """An asyncio unary call: awaiting it gives the response or raises the typed error."""

    def __await__(self) -> Generator[Any, None, Any]:
        try:
            return (yield from self._call.__await__())
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None


class _UnaryAio(_Delegating):
    """An asyncio unary-response multi-callable."""

    def __call__(self, request: Any, **kwargs: Any) -> _Awaited:
        return _Awaited(self._call(request, **kwargs))


class _Streaming(_Delegating):
    """A server-streaming multi-callable (blocking or asyncio): the call comes back as a stream."""

    def __init__(self, call: Any, stream: type[Stream[Any]] | type[AsyncStream[Any]]) -> None:
        super().__init__(call)
        self._stream = stream

    def __call__(self, request: Any, **kwargs: Any) -> Stream[Any] | AsyncStream[Any]:
        return self._stream(self._call(request, **kwargs))


class _TypedErrorsChannel(ChannelWrapper):
    def __init__(self, channel: Any, *, asynchronous: bool) -> None:
        super().__init__(channel)
        self._asynchronous = asynchronous

    def wrap(self, call: Any, *, streams_out: bool) -> Any:
        if streams_out:
            return _Streaming(call, AsyncStream if self._asynchronous else Stream)
        return _UnaryAio(call) if self._asynchronous else _Unary(call)


def typed_errors(channel: grpc.Channel) -> grpc.Channel:
    """``channel`` with every failed call raising an :mod:`~embcluster_client.errors` exception."""
    return _TypedErrorsChannel(channel, asynchronous=False)  # type: ignore[return-value]


def typed_errors_aio(channel: grpc.aio.Channel) -> grpc.aio.Channel:
    """The same for a ``grpc.aio`` channel (unary calls are awaited, streams iterated with ``async for``)."""
    return _TypedErrorsChannel(channel, asynchronous=True)  # type: ignore[return-value]
