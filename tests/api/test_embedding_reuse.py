"""Ingest through the embedding queue: concurrent calls, and unchanged items not embedded again (core/reuse.py)."""

from __future__ import annotations

import threading
from typing import Iterator

import grpc
import numpy as np
import pytest
from embcluster_client import make_image_item, make_image_spec, pb

from embcluster.api.v1.embcluster_pb2_grpc import EmbclusterStub
from embcluster.config import Settings
from embcluster.core.reuse import EMBEDDED_FIELD
from tests.api.conftest import Running, restarted_with_another_fingerprint

SPEC = make_image_spec(text_fields=["title", "tags"],
                       numeric_attributes=[{"key": "year", "low": 2000.0, "high": 2030.0, "weight": 0.5}])


@pytest.fixture
def server(settings: Settings, text_embedder) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    r = Running(settings, text_embedder)
    yield r
    r.stop()


@pytest.fixture
def stub(server: Running) -> Iterator[EmbclusterStub]:
    with grpc.insecure_channel(server.server.address) as ch:
        yield EmbclusterStub(ch)


def _vector(server: Running, collection: str, id: str) -> np.ndarray:
    return np.asarray(server.client.get_point(collection, id=id, with_vector=True).vector.values, dtype=np.float32)


def _reused_metric(server: Running, collection: str) -> float:
    value = server.service.metrics.registry.get_sample_value("embcluster_embeddings_reused_total",
                                                             {"collection": collection})
    return value or 0.0


def _embed_calls(server: Running) -> int:
    return sum(b.batches for b in server.service.kinds.batchers.batchers())


def _payload(server: Running, collection: str, id: str) -> dict:  # type: ignore[type-arg]
    from embcluster.core.records import point_id_for

    coll = server.service.registry.get(collection)
    (point,) = coll.store.retrieve([point_id_for(collection, id)])
    return point.payload


def test_concurrent_single_text_ingests_get_the_vectors_of_embedding_each_alone(server: Running,
                                                                               text_embedder) -> None:
    c = server.client
    c.create_collection("docs")
    texts = [f"item {i}: a {'red' if i % 2 else 'blue'} cotton shirt, size {i}" for i in range(24)] + ["dup"] * 4
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            c.ingest("docs", [{"id": f"d{i}", "text": texts[i]}])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert c.get_collection("docs").point_count == len(texts)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(_vector(server, "docs", f"d{i}"), text_embedder.embed([text])[0], atol=2e-5)


def test_reingesting_an_unchanged_text_reuses_its_vector(server: Running, stub: EmbclusterStub,
                                                         text_embedder) -> None:
    c = server.client
    c.create_collection("docs")
    first = c.ingest("docs", [{"id": "a", "text": "red cotton t-shirt", "metadata": {"v": 1}},
                              {"id": "b", "text": "blue denim jeans"}, "no id: never looked up"])
    assert [r.embedding_reused for r in first] == [False, False, False]
    assert _payload(server, "docs", "a")[EMBEDDED_FIELD]["truncated"] is False
    before_a, calls = _vector(server, "docs", "a"), _embed_calls(server)

    resp = stub.Ingest(pb.IngestRequest(collection="docs", items=[
        pb.Item(id="a", text="red cotton t-shirt", metadata={"v": 2}),  # same text, new metadata
        pb.Item(id="b", text="green wool jumper"),  # changed text: embedded again
        pb.Item(id="c", text="red cotton t-shirt"),  # same text, new id: embedded
        pb.Item(text="no id: never looked up"),
    ]))
    assert [r.embedding_reused for r in resp.results] == [True, False, False, False]
    assert resp.embedding_reused_count == 1
    assert _embed_calls(server) == calls + 1  # b, c and the id-less item in one batch; a not at all
    np.testing.assert_array_equal(_vector(server, "docs", "a"), before_a)
    assert c.get_point("docs", id="a").metadata["v"] == 2  # the rest of the point is written as usual
    np.testing.assert_allclose(_vector(server, "docs", "b"), text_embedder.embed(["green wool jumper"])[0], atol=2e-5)
    assert _reused_metric(server, "docs") == 1

    calls = _embed_calls(server)
    again = c.ingest("docs", [{"id": "a", "text": "red cotton t-shirt"}, {"id": "b", "text": "green wool jumper"}])
    assert [r.embedding_reused for r in again] == [True, True]
    assert _embed_calls(server) == calls  # nothing embedded
    assert c.get_collection("docs").point_count == 5  # a, b, c and two id-less items


def test_a_reused_long_text_keeps_its_truncated_flag(server: Running, article) -> None:  # type: ignore[no-untyped-def]
    c = server.client
    c.create_collection("docs")
    long = article(5_000)
    assert [r.truncated for r in c.ingest("docs", [{"id": "long", "text": long}])] == [True]
    again = c.ingest("docs", [{"id": "long", "text": long}])
    assert [(r.truncated, r.embedding_reused) for r in again] == [(True, True)]
    value = server.service.metrics.registry.get_sample_value("embcluster_texts_truncated_total",
                                                             {"collection": "docs"})
    assert value == 2  # counted for every ingest that reports it


def test_reingesting_unchanged_image_metadata_reuses_its_vector(server: Running) -> None:
    c = server.client
    c.create_collection("photos", input_kind="image_metadata", image_metadata=SPEC)
    barn = make_image_item("p1", title="Red barn", tags=["farm"], attributes={"year": 2010.0})
    c.ingest("photos", [barn])
    before = _vector(server, "photos", "p1")
    assert [r.embedding_reused for r in c.ingest("photos", [barn])] == [True]
    np.testing.assert_array_equal(_vector(server, "photos", "p1"), before)
    newer = make_image_item("p1", title="Red barn", tags=["farm"], attributes={"year": 2025.0})
    assert [r.embedding_reused for r in c.ingest("photos", [newer])] == [False]  # a numeric attribute changed
    assert not np.allclose(_vector(server, "photos", "p1"), before)


def test_an_unchanged_item_is_still_refused_when_the_model_fingerprint_changed(server: Running,
                                                                              text_embedder) -> None:
    server.client.create_collection("docs")
    server.client.ingest("docs", [{"id": "a", "text": "one"}])
    again = restarted_with_another_fingerprint(server, "docs", text_embedder)
    try:
        with pytest.raises(grpc.RpcError) as e:
            again.client.ingest("docs", [{"id": "a", "text": "one"}])
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        again.stop()

