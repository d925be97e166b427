"""How the Qdrant server backend reaches Qdrant: a server URL (gRPC preferred) or qdrant-client's local mode."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient

from ..errors import FailedPrecondition, InvalidArgument, Unavailable
from ..redact import redact, redact_url

__all__ = ["QdrantConnection", "short_error"]


@dataclass(frozen=True)
class QdrantConnection:
    """How to reach Qdrant: a server ``url`` (gRPC preferred) or a local-mode ``path``.

    Built from :class:`~embcluster.config.Settings` by ``make_store_factory``.
    """

    url: str = ""
    path: str = ""
    grpc_port: int = 6334
    api_key: str | None = None
    https: bool | None = None
    ca_cert: Path | None = None
    timeout_s: int = 30

    @property
    def where(self) -> str:
        """The URL or local path, for messages."""
        return redact_url(self.url) if self.url else f"local mode {self.path}"

    def client(self) -> QdrantClient:
        """A connected client; an unreachable server is :class:`Unavailable` naming the URL."""
        if self.path:
            if self.path == ":memory:":
                return QdrantClient(location=":memory:")
            Path(self.path).mkdir(parents=True, exist_ok=True)
            return QdrantClient(path=self.path, force_disable_check_same_thread=True)
        kwargs: dict[str, Any] = {}
        if self.ca_cert is not None:
            try:
                kwargs["verify"] = ssl.create_default_context(cafile=str(self.ca_cert))  # REST (httpx)
                kwargs["grpc_options"] = {"root_certificates": Path(self.ca_cert).read_bytes()}
            except (OSError, ssl.SSLError) as exc:
                raise InvalidArgument(f"qdrant_ca_cert {str(self.ca_cert)!r} is not a readable PEM certificate: "
                                      f"{exc}") from None
        client = QdrantClient(
            url=self.url, grpc_port=self.grpc_port, prefer_grpc=True, https=self.https,
            api_key=self.api_key, timeout=self.timeout_s, check_compatibility=False, **kwargs,
        )
        try:
            client.get_collections()
        except Exception as exc:
            client.close()
            detail = short_error(exc)
            if detail.startswith(("UNAUTHENTICATED", "PERMISSION_DENIED")):  # reached it: the key is wrong
                raise FailedPrecondition(
                    f"the Qdrant server at {self.where} refused the API key (qdrant_api_key"
                    f"{' is not set' if not self.api_key else ''}): {detail[:300]}") from None
            raise Unavailable(
                f"cannot reach the Qdrant server at {self.where} (gRPC port {self.grpc_port}): {redact(detail)[:300]}"
            ) from None
        return client


def short_error(exc: BaseException) -> str:
    """One line about a failed call: gRPC status and details, or the exception's first line."""
    code, details = getattr(exc, "code", None), getattr(exc, "details", None)
    if callable(code) and callable(details):
        return f"{getattr(code(), 'name', code())}: {details()}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
