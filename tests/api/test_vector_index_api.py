"""The vector index knobs through the API: set at creation, reported, validated, kept across a restart."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest

from embcluster.api.v1 import embcluster_pb2 as pb
from embcluster.api.v1 import embcluster_pb2_grpc as pb_grpc
from embcluster.config import Settings
from embcluster.store import edge
from embcluster_client import Client
from embcluster_client import _requests as rq
from embcluster_client.errors import InvalidArgument

from .conftest import Running


def test_index_settings_are_set_reported_and_kept(settings: Settings) -> None:
    r = Running(settings)
    try:
        client = Client(r.server.address, timeout=60)
        made = client.create_collection("v", input_kind="vector", vector_dim=8,
                                        vector_index=pb.VectorIndexSettings(m=8, ef=64, min_points=5000,
                                                                            quantization="int8"))
        assert made.vector_index is not None
        # ef_construct 0: its default
        assert (made.vector_index.m, made.vector_index.ef_construct, made.vector_index.ef,
                made.vector_index.min_points, made.vector_index.quantization) == (8, 100, 64, 5000, "int8")
        client.ingest("v", [v for v in np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)])
        state = client.get_collection("v").index_state
        assert state is not None and state.points == 20 and state.indexed_points == 0 and not state.building
        default = client.create_collection("d", input_kind="vector", vector_dim=8)
        assert default.vector_index is not None and default.vector_index.min_points == 20000
        assert default.vector_index.quantization == "none"
    finally:
        r.stop()
    r = Running(settings)  # the settings are the record's: the same after a restart
    try:
        again = Client(r.server.address, timeout=60).get_collection("v")
        assert again.vector_index is not None
        assert (again.vector_index.m, again.vector_index.ef, again.vector_index.quantization) == (8, 64, "int8")
    finally:
        r.stop()


@pytest.mark.parametrize("field,value", [("m", 2), ("ef_construct", 5000), ("ef", 3), ("min_points", 10),
                                         ("quantization", "int4")])
def test_out_of_range_knobs_are_invalid_argument(running: Running, field: str, value: int | str) -> None:
    client = Client(running.server.address, timeout=60)
    with pytest.raises(InvalidArgument) as err:
        client.create_collection("bad", input_kind="vector", vector_dim=8,
                                 vector_index=pb.VectorIndexSettings(**{field: value}))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"vector_index.{field}" in err.value.message and str(value) in err.value.message
    assert "bad" not in [c.name for c in client.list_collections()]


def test_a_search_takes_its_own_ef_or_scans_exactly(running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    # A sparse graph (m 4, ef 10) over isotropic points misses most neighbours; a Search with a larger
    # ef must find more of them and an exact one all: measured here against numpy, as a user would.
    monkeypatch.setattr(edge, "FULL_SCAN_KB", 16)  # small segments would otherwise be scanned exactly
    client = running.client
    client.create_collection("hard", input_kind="vector", vector_dim=32,
                             vector_index=pb.VectorIndexSettings(m=4, ef_construct=16, ef=10, min_points=1000))
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6000, 32)).astype(np.float32)  # a build needs 5,000 unindexed points
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for s in range(0, len(x), 200):
        client.ingest("hard", [{"id": f"p{i}", "vector": x[i]} for i in range(s, s + 200)])
    deadline = time.monotonic() + 300  # a guard against a hung build, not a timing assertion
    while True:
        state = client.get_collection("hard").index_state
        # indexed_points is sampled by searching the graph: this poor graph misses some of its own points
        if state.indexed_points >= len(x) // 2 and not state.building:
            break
        assert time.monotonic() < deadline, f"the index was not built: {state}"
        time.sleep(0.2)
    queries = rng.normal(size=(40, 32)).astype(np.float32)

    def found(**how: object) -> float:
        share = []
        for q in queries:
            truth = {f"p{i}" for i in np.argsort(-(x @ q))[:10]}
            share.append(len(truth & {h.point.external_id for h in client.search("hard", q, limit=10, **how)}) / 10)
        return float(np.mean(share))

    default, wide, exact = found(), found(ef=500), found(exact=True)
    assert default <= 0.6, f"the test's graph is too good to tell ef apart (recall {default})"
    assert wide >= default + 0.3, f"ef=500 found {wide} of the neighbours, the collection's ef 10 {default}"
    assert exact == 1.0


@pytest.mark.parametrize("how,words", [
    ({"ef": 5}, ["ef must be in [10, 10000]", "got 5"]),
    ({"ef": 20000}, ["ef must be in [10, 10000]", "got 20000"]),
    ({"ef": 64, "exact": True}, ["give ef (64) or exact, not both"]),
    ({"ef": 64, "group_by_cluster": (5, 3)}, ["ef 64 applies to plain search"]),
    ({"exact": True, "group_by_cluster": (5, 3)}, ["exact applies to plain search"]),
])
def test_bad_search_modes_are_invalid_argument(running: Running, how: dict, words: list[str]) -> None:
    running.client.create_collection("v", input_kind="vector", vector_dim=8)
    running.client.ingest("v", [v for v in np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)])
    run = running.client.start_clustering("v", k=2)
    running.client.wait_for_run("v", run.run_id, timeout=60)
    stub = pb_grpc.EmbclusterStub(grpc.insecure_channel(running.server.address))
    with pytest.raises(grpc.RpcError) as err:
        stub.Search(rq.search("v", np.ones(8, dtype=np.float32), **how), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for w in words:
        assert w in err.value.details()
