"""Long documents through the API: accepted up to MAX_TEXT_CHARS, truncated or pooled per collection, reported."""

from __future__ import annotations

from typing import Iterator

import grpc
import numpy as np
import pytest
from embcluster_client import pb

from embcluster.api.v1.embcluster_pb2_grpc import EmbclusterStub
from embcluster.config import Settings
from embcluster.embed.long_text import LongText
from tests.api.conftest import Running

MAX_WINDOWS = 4  # small, so a 25k-character article passes the cap in a POOL collection


@pytest.fixture
def server(settings: Settings, text_embedder) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    """The default message and text limits (32 MiB, 1,000,000 characters)."""
    r = Running(settings.model_copy(update={"long_text_max_windows": MAX_WINDOWS}), text_embedder)
    yield r
    r.stop()


@pytest.fixture
def stub(server: Running) -> Iterator[EmbclusterStub]:
    """The raw stub: IngestResponse as the server sends it."""
    limit = 64 * 1024 * 1024
    with grpc.insecure_channel(server.server.address, options=[("grpc.max_send_message_length", limit),
                                                               ("grpc.max_receive_message_length", limit)]) as ch:
        yield EmbclusterStub(ch)


def _vector(server: Running, collection: str, id: str) -> np.ndarray:
    return np.asarray(server.client.get_point(collection, id=id, with_vector=True).vector.values, dtype=np.float32)


def _truncated_metric(server: Running, collection: str) -> float:
    value = server.service.metrics.registry.get_sample_value("embcluster_texts_truncated_total", {"collection": collection})
    return value or 0.0


def test_long_documents_are_accepted_truncated_and_counted(server: Running, stub: EmbclusterStub, article) -> None:
    c = server.client
    c.create_collection("docs")
    news, huge = article(25_485), article(1_000_000)
    resp = stub.Ingest(pb.IngestRequest(collection="docs", items=[
        pb.Item(id="short", text="a short note"), pb.Item(id="news", text=news), pb.Item(id="huge", text=huge)]))
    assert [r.truncated for r in resp.results] == [False, True, True]
    assert resp.truncated_count == 2
    assert _truncated_metric(server, "docs") == 2
    assert len(c.get_point("docs", id="huge").text) == 1_000_000  # the source is stored whole
    # Its vector is what the model reads of the whole text.
    expected = server.service.embedders.text("").model.encode([news], normalize_embeddings=True)[0]
    np.testing.assert_allclose(_vector(server, "docs", "news"), expected, atol=2e-6)
    # The client's results carry the flag too.
    assert [r.truncated for r in c.ingest("docs", [{"id": "n2", "text": news}, "short"])] == [True, False]
    # One character over the limit: the whole batch is refused, naming the item and its size.
    with pytest.raises(grpc.RpcError) as e:
        c.ingest("docs", ["fine", article(1_000_001)])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "item 1: text is 1000001 characters; the limit is 1000000" in e.value.details()
    assert c.get_collection("docs").point_count == 5


def test_pool_averages_windows_and_differs_from_truncate(server: Running, article) -> None:
    c = server.client
    cut = c.create_collection("cut")
    pooled = c.create_collection("pooled", long_text="pool")
    assert cut.settings.long_text == pb.CollectionSettings.LONG_TEXT_TRUNCATE
    assert pooled.settings.long_text == pb.CollectionSettings.LONG_TEXT_POOL
    doc, news = article(3_000), article(25_485)  # 3 windows; 25k characters: past MAX_WINDOWS
    for name in ("cut", "pooled"):
        results = c.ingest(name, [{"id": "doc", "text": doc}, {"id": "news", "text": news}])
        assert [r.truncated for r in results] == [name == "cut", True]
        c.ingest(name, [{"id": "s1", "text": "red cotton t-shirt"}, {"id": "s2", "text": article(500)}])
    assert [r.truncated for r in c.ingest("pooled", [{"id": "doc", "text": doc}])] == [False]
    assert _truncated_metric(server, "pooled") == 1 and _truncated_metric(server, "cut") == 2

    embedder = server.service.embedders.text("")
    plan = embedder.plan(doc, LongText(mode="pool", max_windows=MAX_WINDOWS))
    assert len(plan.spans) == 3
    windows = embedder.model.encode([doc[a:b] for a, b in plan.spans], normalize_embeddings=True)
    mean = windows.mean(axis=0)
    pooled_doc = _vector(server, "pooled", "doc")
    np.testing.assert_allclose(pooled_doc, mean / np.linalg.norm(mean), atol=2e-6)
    assert float(pooled_doc @ _vector(server, "cut", "doc")) < 0.99
    for short in ("s1", "s2"):  # one window: the same vector in both modes
        assert np.array_equal(_vector(server, "pooled", short), _vector(server, "cut", short))


def test_long_text_setting_is_checked_and_fixed_at_creation(server: Running, stub: EmbclusterStub) -> None:
    c = server.client
    bad = pb.CreateCollectionRequest(name="bad", input_kind=pb.INPUT_KIND_TEXT,
                                     settings=pb.CollectionSettings(long_text=7))  # type: ignore[arg-type]
    with pytest.raises(grpc.RpcError) as e:
        stub.CreateCollection(bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "long_text" in e.value.details()
    assert "got 7" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        c.create_collection("vec", input_kind="vector", vector_dim=4, long_text="pool")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "TEXT and IMAGE_METADATA" in e.value.details()
    assert [x.name for x in c.list_collections()] == []

    c.create_collection("p", long_text="pool")
    change = pb.UpdateCollectionRequest(name="p", settings=pb.CollectionSettings(
        long_text=pb.CollectionSettings.LONG_TEXT_TRUNCATE))
    with pytest.raises(grpc.RpcError) as e:
        stub.UpdateCollection(change)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "fixed when it was created" in e.value.details()
    same = pb.UpdateCollectionRequest(name="p", settings=pb.CollectionSettings(
        long_text=pb.CollectionSettings.LONG_TEXT_POOL, default_k=5))
    updated = stub.UpdateCollection(same)
    assert updated.settings.long_text == pb.CollectionSettings.LONG_TEXT_POOL and updated.settings.default_k == 5
