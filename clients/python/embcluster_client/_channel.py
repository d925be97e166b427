"""Opening channels for both clients: plaintext or TLS (with a client certificate for mTLS), and
an API key sent on every call as ``authorization: Bearer <key>``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

__all__ = ["Security", "ChannelWrapper", "open_channel", "open_aio_channel"]

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


class _Keyed:
    """A multi-callable that adds the API key header to the metadata of every call it makes."""

    def __init__(self, call: Any, header: tuple[str, str]) -> None:
        self._call = call
        self._header = header

    def _metadata(self, metadata: Any) -> tuple[tuple[str, str], ...]:
        return (*metadata, self._header) if metadata else (self._header,)

    def __call__(self, request: Any, *, metadata: Any = None, **kwargs: Any) -> Any:
        return self._call(request, metadata=self._metadata(metadata), **kwargs)

    def with_call(self, request: Any, *, metadata: Any = None, **kwargs: Any) -> Any:
        return self._call.with_call(request, metadata=self._metadata(metadata), **kwargs)

    def future(self, request: Any, *, metadata: Any = None, **kwargs: Any) -> Any:
        return self._call.future(request, metadata=self._metadata(metadata), **kwargs)


class ChannelWrapper:
    """A channel (blocking or asyncio) whose multi-callables are wrapped by :meth:`wrap`; every
    other attribute (close, subscribe, channel_ready, ...) is the channel's own."""

    def __init__(self, channel: Any) -> None:
        self._channel = channel

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)

    def wrap(self, call: Any, *, streams_out: bool) -> Any:
        """The multi-callable to use for ``call``; ``streams_out``: the response is a stream."""
        raise NotImplementedError

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self.wrap(self._channel.unary_unary(*args, **kwargs), streams_out=False)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self.wrap(self._channel.unary_stream(*args, **kwargs), streams_out=True)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self.wrap(self._channel.stream_unary(*args, **kwargs), streams_out=False)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self.wrap(self._channel.stream_stream(*args, **kwargs), streams_out=True)


class _KeyedChannel(ChannelWrapper):
    """A channel (blocking or asyncio) whose calls all carry the API key: the stubs' multi-callables
    are wrapped (one Python call per RPC; a client interceptor would cost several times more)."""

    def __init__(self, channel: Any, header: tuple[str, str]) -> None:
        super().__init__(channel)
        self._header = header

    def wrap(self, call: Any, *, streams_out: bool) -> _Keyed:
        return _Keyed(call, self._header)


def open_channel(target: str, options: list[tuple[str, Any]], security: Security) -> grpc.Channel:
    """A blocking channel with ``security`` applied."""
    opts = security.options(options)
    channel = (grpc.secure_channel(target, security.credentials(), options=opts) if security.uses_tls
               else grpc.insecure_channel(target, options=opts))
    return _KeyedChannel(channel, security.header) if security.api_key else channel  # type: ignore[return-value]


def open_aio_channel(target: str, options: list[tuple[str, Any]], security: Security) -> grpc.aio.Channel:
    """An asyncio channel with ``security`` applied."""
    opts = security.options(options)
    channel = (grpc.aio.secure_channel(target, security.credentials(), options=opts) if security.uses_tls
               else grpc.aio.insecure_channel(target, options=opts))
    return _KeyedChannel(channel, security.header) if security.api_key else channel  # type: ignore[return-value]
