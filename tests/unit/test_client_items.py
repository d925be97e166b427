"""Unit tests of the Python client's item conversion and request builders (no server)."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf.json_format import MessageToDict

from embcluster_client import RunFailed, make_item, make_items, make_vector, pb
from embcluster_client import _requests as rq


def f32(values: list[float]) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float32)]


def decoded(vec) -> list[float]:  # type: ignore[no-untyped-def]
    """The numbers a ``pb.Vector`` carries (packed ``f32`` bytes, as the client sends them)."""
    assert not vec.values, "the client sends packed f32 bytes, not values"
    return [float(v) for v in np.frombuffer(vec.f32, dtype="<f4")]


def test_str_is_text_item() -> None:
    item = make_item("hello")
    assert item.WhichOneof("content") == "text"
    assert item.text == "hello"
    assert item.id == ""
    assert not item.HasField("metadata")


def test_item_passes_through() -> None:
    item = pb.Item(id="a", text="x")
    assert make_item(item) is item


@pytest.mark.parametrize(
    "value",
    [[0.1, 0.2, 3], (0.1, 0.2, 3), np.array([0.1, 0.2, 3.0]), np.array([0.1, 0.2, 3.0], dtype=np.float32)],
)
def test_vector_item_values_are_float32(value: object) -> None:
    item = make_item(value)  # type: ignore[arg-type]
    assert item.WhichOneof("content") == "vector"
    assert decoded(item.vector) == f32([0.1, 0.2, 3.0])


def test_make_vector() -> None:
    assert decoded(make_vector([1, 2.5])) == [1.0, 2.5]
    assert decoded(make_vector([])) == []
    with pytest.raises(ValueError, match="1-D"):
        make_vector(np.zeros((2, 2)))
    with pytest.raises(TypeError):
        make_vector("abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        make_vector([1.0, "x"])  # type: ignore[list-item]


def test_dict_text_item_with_id_and_metadata() -> None:
    meta = {"sku": "A-1", "price": 9.5, "qty": 3, "tags": ["x", "y"], "ok": True, "none": None, "sub": {"a": 1}}
    item = make_item({"id": "sku-1", "text": "red shoe", "metadata": meta})
    assert item.id == "sku-1"
    assert item.text == "red shoe"
    assert MessageToDict(item.metadata) == meta
    assert MessageToDict(item)["metadata"] == meta


def test_dict_vector_item() -> None:
    item = make_item({"vector": np.array([1.5, -2.0]), "id": "v"})
    assert item.id == "v"
    assert item.WhichOneof("content") == "vector"
    assert decoded(item.vector) == [1.5, -2.0]
    assert not item.HasField("metadata")


def test_nan_is_not_validated_client_side() -> None:
    item = make_item([float("nan"), 1.0])
    assert np.isnan(decoded(item.vector)[0])


@pytest.mark.parametrize(
    ("value", "exc", "match"),
    [
        ({"text": "a", "vector": [1.0]}, ValueError, "exactly one"),
        ({"id": "a"}, ValueError, "exactly one"),
        ({"text": "a", "colour": "red"}, ValueError, "colour"),
        ({"text": 5}, TypeError, "text"),
        ({"text": "a", "id": 5}, TypeError, "id"),
        ({"text": "a", "metadata": ["x"]}, TypeError, "metadata"),
        ({"text": "a", "metadata": {"x": object()}}, TypeError, "metadata"),
        (42, TypeError, "int"),
        (b"bytes", TypeError, "bytes"),
        (None, TypeError, "NoneType"),
    ],
)
def test_make_item_rejects(value: object, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        make_item(value)  # type: ignore[arg-type]


def test_make_items_mixed_in_order() -> None:
    items = make_items(["a", [1.0, 2.0], {"id": "c", "text": "c"}, pb.Item(text="d")])
    assert [i.WhichOneof("content") for i in items] == ["text", "vector", "text", "text"]
    assert [i.id for i in items] == ["", "", "c", ""]
    assert items[3].text == "d"


def test_make_items_accepts_generator() -> None:
    assert [i.text for i in make_items(str(n) for n in range(3))] == ["0", "1", "2"]


def test_make_items_names_index() -> None:
    with pytest.raises(TypeError, match=r"^item 3: "):
        make_items(["a", "b", "c", 7])
    with pytest.raises(ValueError, match=r"^item 1: .*exactly one"):
        make_items(["a", {"id": "x"}])
    with pytest.raises(TypeError, match=r"^item 0: "):
        make_items([[1.0, "x"]])


@pytest.mark.parametrize("value", ["abc", {"text": "a"}, pb.Item(text="a")])
def test_make_items_rejects_single_item(value: object) -> None:
    with pytest.raises(TypeError, match="iterable"):
        make_items(value)  # type: ignore[arg-type]


def test_ingest_batches_sizes_order_and_global_index() -> None:
    reqs = list(rq.ingest_batches("c", (f"t{n}" for n in range(5)), 2))
    assert [len(r.items) for r in reqs] == [2, 2, 1]
    assert all(r.collection == "c" for r in reqs)
    assert [i.text for r in reqs for i in r.items] == [f"t{n}" for n in range(5)]
    assert list(rq.ingest_batches("c", [], 2)) == []
    with pytest.raises(TypeError, match=r"^item 3: "):
        list(rq.ingest_batches("c", ["a", "b", "c", 1], 2))
    with pytest.raises(ValueError, match="batch_size"):
        list(rq.ingest_batches("c", ["a"], 0))


def test_ingest_and_classify_requests() -> None:
    req = rq.ingest("c", [{"id": "x", "text": "t", "metadata": {"k": "v"}}])
    assert req.collection == "c"
    assert req.items[0].id == "x"
    assert MessageToDict(req.items[0].metadata) == {"k": "v"}
    creq = rq.classify("c", [[1.0, 2.0]])
    assert creq.collection == "c"
    assert decoded(creq.items[0].vector) == [1.0, 2.0]


def test_create_collection_request() -> None:
    req = rq.create_collection("docs")
    assert req.input_kind == pb.INPUT_KIND_TEXT
    assert req.distance == pb.DISTANCE_COSINE
    assert not req.HasField("store_source")
    assert not any(req.settings.HasField(f) for f in ("contamination", "min_cluster_size", "default_k", "seed"))

    req = rq.create_collection(
        "vecs",
        input_kind="vector",
        distance="euclid",
        vector_dim=8,
        store_source=False,
        contamination=0.05,
        default_k=4,
        seed=0,
    )
    assert (req.name, req.input_kind, req.distance, req.vector_dim) == ("vecs", pb.INPUT_KIND_VECTOR, pb.DISTANCE_EUCLID, 8)
    assert req.HasField("store_source") and req.store_source is False
    assert req.settings.contamination == 0.05
    assert req.settings.default_k == 4
    assert req.settings.HasField("seed") and req.settings.seed == 0
    assert not req.settings.HasField("min_cluster_size")

    with pytest.raises(ValueError, match="input_kind"):
        rq.create_collection("x", input_kind="image")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distance"):
        rq.create_collection("x", distance="dot")  # type: ignore[arg-type]


def test_update_collection_sets_only_given_fields() -> None:
    req = rq.update_collection("c", min_cluster_size=0)
    assert req.name == "c"
    assert req.settings.HasField("min_cluster_size") and req.settings.min_cluster_size == 0
    assert not req.settings.HasField("contamination")
    assert not req.settings.HasField("default_k")
    assert not req.settings.HasField("seed")


def test_get_point_request() -> None:
    req = rq.get_point("c", id="sku", with_vector=True)
    assert req.WhichOneof("key") == "id" and req.id == "sku" and req.with_vector
    req = rq.get_point("c", point_id="p1")
    assert req.WhichOneof("key") == "point_id" and req.point_id == "p1"
    with pytest.raises(ValueError):
        rq.get_point("c")
    with pytest.raises(ValueError):
        rq.get_point("c", id="a", point_id="b")


def test_delete_points_and_paging_requests() -> None:
    req = rq.delete_points("c", ids=["a", "b"], point_ids=("p",))
    assert list(req.ids) == ["a", "b"] and list(req.point_ids) == ["p"]
    req2 = rq.list_cluster_members("c", -1, page_size=7, page_token="t")
    assert (req2.cluster_id, req2.page_size, req2.page_token) == (-1, 7, "t")
    req3 = rq.list_anomalies("c", page_size=3)
    assert (req3.collection, req3.page_size, req3.page_token) == ("c", 3, "")


def test_start_clustering_request() -> None:
    req = rq.start_clustering("c")
    assert req.WhichOneof("k_spec") is None
    assert not req.HasField("seed")
    req = rq.start_clustering("c", k=5, seed=0, sample_size=100, n_init=2)
    assert req.WhichOneof("k_spec") == "k" and req.k == 5
    assert req.HasField("seed") and req.seed == 0
    assert (req.sample_size, req.n_init) == (100, 2)
    req = rq.start_clustering("c", k_range=(2, 9))
    assert req.WhichOneof("k_spec") == "k_range"
    assert (req.k_range.min, req.k_range.max) == (2, 9)
    with pytest.raises(ValueError):
        rq.start_clustering("c", k=3, k_range=(2, 4))


def test_search_request() -> None:
    req = rq.search("c", "red shoe")
    assert req.WhichOneof("query") == "text" and req.text == "red shoe"
    assert req.limit == 10
    assert not req.HasField("cluster_id")
    req = rq.search("c", np.array([0.1, 0.2]), limit=3, cluster_id=0)
    assert req.WhichOneof("query") == "vector"
    assert decoded(req.vector) == f32([0.1, 0.2])
    assert req.HasField("cluster_id") and req.cluster_id == 0


def test_run_finished_and_run_failed() -> None:
    assert rq.run_finished(pb.ClusteringRun(state=pb.RUN_STATE_SUCCEEDED)) is True
    assert rq.run_finished(pb.ClusteringRun(state=pb.RUN_STATE_RUNNING)) is False
    assert rq.run_finished(pb.ClusteringRun(state=pb.RUN_STATE_PENDING)) is False
    for state in (pb.RUN_STATE_FAILED, pb.RUN_STATE_CANCELLED):
        run = pb.ClusteringRun(run_id="r1", collection="c", state=state, error="boom")
        with pytest.raises(RunFailed) as info:
            rq.run_finished(run)
        assert info.value.run is run
        assert "r1" in str(info.value) and pb.RunState.Name(state) in str(info.value)


def test_channel_options() -> None:
    assert dict(rq.channel_options(123)) == {
        "grpc.max_send_message_length": 123,
        "grpc.max_receive_message_length": 123,
    }


def test_schedule_refuses_negative_counts_before_protobuf_does() -> None:
    from embcluster_client import schedule

    with pytest.raises(ValueError, match="schedule after_changes must be >= 1, got -1"):
        schedule(after_changes=-1)
    with pytest.raises(ValueError, match="schedule k must be >= 2, got -4"):
        schedule(interval_s=60, k=-4)
    assert schedule(after_changes=0).after_changes == 0  # zero goes through: the server names it
