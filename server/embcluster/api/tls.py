"""TLS and mTLS credentials of the gRPC port, from the ``tls_*_file`` settings."""

from __future__ import annotations

from pathlib import Path

import grpc

from ..config import Settings
from ..errors import InvalidArgument

__all__ = ["server_credentials"]


def _read(setting: str, path: Path) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"{setting} {str(path)!r} cannot be read: {exc.strerror or type(exc).__name__}") from None
    if b"-----BEGIN" not in data:
        raise InvalidArgument(f"{setting} {str(path)!r} is not PEM (no '-----BEGIN' line)")
    return data


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials (requiring a client certificate when ``tls_client_ca_file`` is set), or None."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    pair = (_read("tls_key_file", settings.tls_key_file), _read("tls_cert_file", settings.tls_cert_file))
    ca = _read("tls_client_ca_file", settings.tls_client_ca_file) if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)
