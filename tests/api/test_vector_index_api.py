"""The vector index knobs through the API: set at creation, reported, validated, kept across a restart."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from embcluster.api.v1 import embcluster_pb2 as pb
from embcluster.config import Settings
from embcluster_client import Client
from embcluster_client.errors import InvalidArgument

from .conftest import Running


def test_index_settings_are_set_reported_and_kept(settings: Settings) -> None:
    r = Running(settings)
    try:
        client = Client(r.server.address, timeout=60)
        made = client.create_collection("v", input_kind="vector", vector_dim=8,
                                        vector_index=pb.VectorIndexSettings(m=8, ef=64, min_points=5000))
        assert made.vector_index is not None
        assert (made.vector_index.m, made.vector_index.ef_construct, made.vector_index.ef,
                made.vector_index.min_points) == (8, 100, 64, 5000)  # ef_construct 0: its default
        client.ingest("v", [v for v in np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)])
        state = client.get_collection("v").index_state
        assert state is not None and state.points == 20 and state.indexed_points == 0 and not state.building
        default = client.create_collection("d", input_kind="vector", vector_dim=8)
        assert default.vector_index is not None and default.vector_index.min_points == 20000
    finally:
        r.stop()
    r = Running(settings)  # the settings are the record's: the same after a restart
    try:
        again = Client(r.server.address, timeout=60).get_collection("v")
        assert again.vector_index is not None and (again.vector_index.m, again.vector_index.ef) == (8, 64)
    finally:
        r.stop()


@pytest.mark.parametrize("field,value", [("m", 2), ("ef_construct", 5000), ("ef", 3), ("min_points", 10)])
def test_out_of_range_knobs_are_invalid_argument(running: Running, field: str, value: int) -> None:
    client = Client(running.server.address, timeout=60)
    with pytest.raises(InvalidArgument) as err:
        client.create_collection("bad", input_kind="vector", vector_dim=8,
                                 vector_index=pb.VectorIndexSettings(**{field: value}))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"vector_index.{field}" in err.value.message and str(value) in err.value.message
    assert "bad" not in [c.name for c in client.list_collections()]
