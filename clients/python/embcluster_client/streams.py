"""Server streams as the clients return them: iterators that raise typed errors.

A :class:`Stream` (blocking) or :class:`AsyncStream` (asyncio) wraps the gRPC call of a server
stream: iterating it yields the messages (converted, for ``Client``, to models) and a failure
raises the :mod:`~embcluster_client.errors` exception of its status code; every other attribute of
the call is the call's own, e.g. ``cancel()`` to stop early, ``code()``, ``trailing_metadata()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

import grpc
import grpc.aio

from .errors import from_rpc_error

__all__ = ["Stream", "AsyncStream"]

T = TypeVar("T")


def _same(message: Any) -> Any:
    return message


class Stream(Generic[T]):
    """A blocking server stream: an iterator of ``T`` that keeps the call's methods (``cancel()``)."""

    def __init__(self, call: Any, convert: Callable[[Any], T] = _same) -> None:
        self._call = call
        self._convert = convert

    def __getattr__(self, name: str) -> Any:  # cancel, code, details, trailing_metadata, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._call, name)

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        try:
            message = next(self._call)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return self._convert(message)


class AsyncStream(Generic[T]):
    """An asyncio server stream: an async iterator of ``T`` that keeps the call's methods."""

    def __init__(self, call: Any, convert: Callable[[Any], T] = _same) -> None:
        self._call = call
        self._convert = convert
        self._messages: Any = None

    def __getattr__(self, name: str) -> Any:  # cancel, code, details, trailing_metadata, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._call, name)

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._messages is None:
            self._messages = self._call.__aiter__()
        try:
            message = await self._messages.__anext__()
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return self._convert(message)

    async def read(self) -> T | Any:
        """The next message, or ``grpc.aio.EOF`` after the last (as the call's own ``read()``)."""
        try:
            message = await self._call.read()
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return message if message is grpc.aio.EOF else self._convert(message)
