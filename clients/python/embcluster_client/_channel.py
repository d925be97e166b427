"""Opening channels for both clients: plaintext or TLS (with a client certificate for mTLS), and
an API key sent on every call as ``authorization: Bearer <key>``."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

__all__ = ["Security", "open_channel", "open_aio_channel"]

_AUTH_KEY = "authorization"


@dataclass(frozen=True)
class Security:
    """How a client reaches the server: TLS settings and an API key (all off by default).

    ``tls`` is implied by ``ca_cert``, ``client_cert`` or ``server_name``; without ``ca_cert`` the
    system's trusted roots verify the server. ``client_cert`` and ``client_key`` (PEM files) go
    together (mTLS).
    """

    api_key: str | None = None
    tls: bool = False
    ca_cert: str | Path | None = None
    client_cert: str | Path | None = None
    client_key: str | Path | None = None
    server_name: str | None = None

    @property
    def uses_tls(self) -> bool:
        return bool(self.tls or self.ca_cert or self.client_cert or self.server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together (mTLS)")
        read = lambda p: Path(p).read_bytes() if p is not None else None  # noqa: E731
        return grpc.ssl_channel_credentials(root_certificates=read(self.ca_cert),
                                            private_key=read(self.client_key),
                                            certificate_chain=read(self.client_cert))

    def options(self, base: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        extra = [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []
        return base + extra

    @property
    def header(self) -> tuple[str, str]:
        return (_AUTH_KEY, f"Bearer {self.api_key}")


class _Details(collections.namedtuple("_Details", ("method", "timeout", "metadata", "credentials",
                                                   "wait_for_ready", "compression")),
               grpc.ClientCallDetails):
    pass


class _KeyInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                      grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the API key header to every call of a blocking channel."""

    def __init__(self, header: tuple[str, str]) -> None:
        self._header = header

    def _details(self, d: Any) -> _Details:
        return _Details(d.method, d.timeout, [*(d.metadata or ()), self._header], d.credentials,
                        d.wait_for_ready, getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(details), request_iterator)


def _aio_details(d: Any, header: tuple[str, str]) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(tuple(d.metadata) if d.metadata else ()), header)
    return grpc.aio.ClientCallDetails(d.method, d.timeout, metadata, d.credentials, d.wait_for_ready)


class _AioKey:
    """Adds the API key header to every call of an asyncio channel (one subclass per call kind:
    ``grpc.aio`` files each interceptor under one kind only)."""

    def __init__(self, header: tuple[str, str]) -> None:
        self._header = header

    async def _forward(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_aio_details(details, self._header), request)


class _AioKeyUnaryUnary(_AioKey, grpc.aio.UnaryUnaryClientInterceptor):
    intercept_unary_unary = _AioKey._forward


class _AioKeyUnaryStream(_AioKey, grpc.aio.UnaryStreamClientInterceptor):
    intercept_unary_stream = _AioKey._forward


class _AioKeyStreamUnary(_AioKey, grpc.aio.StreamUnaryClientInterceptor):
    intercept_stream_unary = _AioKey._forward


class _AioKeyStreamStream(_AioKey, grpc.aio.StreamStreamClientInterceptor):
    intercept_stream_stream = _AioKey._forward


def open_channel(target: str, options: list[tuple[str, Any]], security: Security) -> grpc.Channel:
    """A blocking channel with ``security`` applied."""
    opts = security.options(options)
    channel = (grpc.secure_channel(target, security.credentials(), options=opts) if security.uses_tls
               else grpc.insecure_channel(target, options=opts))
    if security.api_key:
        return grpc.intercept_channel(channel, _KeyInterceptor(security.header))
    return channel


def open_aio_channel(target: str, options: list[tuple[str, Any]], security: Security) -> grpc.aio.Channel:
    """An asyncio channel with ``security`` applied."""
    opts = security.options(options)
    interceptors: list[Any] | None = None
    if security.api_key:
        h = security.header
        interceptors = [_AioKeyUnaryUnary(h), _AioKeyUnaryStream(h), _AioKeyStreamUnary(h), _AioKeyStreamStream(h)]
    if security.uses_tls:
        return grpc.aio.secure_channel(target, security.credentials(), options=opts, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, options=opts, interceptors=interceptors)
