"""An in-process gRPC server over a real service (Qdrant Edge on a temp dir) and a client."""

from __future__ import annotations

import json
from typing import Iterator

import pytest
from embcluster_client import EmbclusterClient

from embcluster.api.server import GrpcServer
from embcluster.config import Settings
from embcluster.embed.registry import EmbedderRegistry
from embcluster.pipeline import EmbclusterService


class Running:
    """A started server, its service and a connected client."""

    def __init__(self, settings: Settings, text_embedder=None) -> None:  # type: ignore[no-untyped-def]
        registry = EmbedderRegistry(settings)  # without the shared model: VECTOR-only servers load none
        if text_embedder is not None:
            registry.add(text_embedder)
        self.settings = settings
        self.service = EmbclusterService(settings, embedders=registry)
        self.service.open()
        self.server = GrpcServer(self.service, settings)
        self.server.start()
        self.client = EmbclusterClient(self.server.address, timeout=60)

    def stop(self) -> None:
        self.client.close()
        self.server.stop(grace=1)
        self.service.close()


def restarted_with_another_fingerprint(r: Running, collection: str, text_embedder) -> Running:  # type: ignore[no-untyped-def]
    """Stop ``r``, record another model fingerprint for ``collection`` (as if its model had changed), start again."""
    r.stop()
    record_path = r.settings.data_dir / "collections" / collection / "collection.json"
    record = json.loads(record_path.read_text())
    record["embedder_fingerprint"] = "sha256:" + "0" * 64
    record_path.write_text(json.dumps(record))
    return Running(r.settings, text_embedder)


@pytest.fixture
def running(settings: Settings, text_embedder) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    """Server with a small message limit so RESOURCE_EXHAUSTED is cheap to provoke."""
    small = settings.model_copy(update={"max_message_bytes": 1024 * 1024, "max_batch_items": 300})
    r = Running(small, text_embedder)
    yield r
    r.stop()
