"""Raw-vector ingest over gRPC: the packed ``f32`` wire form and repeated ``values`` store the same
vectors, and bad packed input is INVALID_ARGUMENT naming the item and the value (issue 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import grpc
import numpy as np
import pytest
from embcluster_client import pb

from embcluster.config import Settings

from .conftest import Running

DIM = 4


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    r = Running(Settings(data_dir=tmp_path / "data", port=0))
    for name, distance in (("packed", "euclid"), ("listed", "euclid"), ("cos", "cosine")):
        r.client.create_collection(name, input_kind="vector", vector_dim=DIM, distance=distance)
    yield r
    r.stop()


def _packed(i: int, v: np.ndarray) -> pb.Item:
    return pb.Item(id=f"p{i}", vector=pb.Vector(f32=np.asarray(v, "<f4").tobytes()))


def _listed(i: int, v: np.ndarray) -> pb.Item:
    return pb.Item(id=f"p{i}", vector=pb.Vector(values=[float(x) for x in v]))


def _stored(r: Running, name: str, n: int) -> np.ndarray:
    return np.array([r.client.get_point(name, id=f"p{i}", with_vector=True).vector.values for i in range(n)],
                    dtype=np.float32)


def _invalid(r: Running, name: str, items: list[pb.Item]) -> str:
    with pytest.raises(grpc.RpcError) as e:
        r.client.ingest(name, items)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return str(e.value.details())


def test_packed_and_listed_vectors_store_the_same_points(server: Running) -> None:
    x = np.random.default_rng(0).normal(size=(40, DIM)).astype(np.float32)
    x[3] = [1e-30, -3.4e38, 3.4e38, 0.0]  # extremes of float32 survive both forms
    a = server.client.ingest("packed", [_packed(i, v) for i, v in enumerate(x)])
    b = server.client.ingest("listed", [_listed(i, v) for i, v in enumerate(x)])
    assert [r.external_id for r in a] == [r.external_id for r in b] == [f"p{i}" for i in range(40)]
    np.testing.assert_array_equal(_stored(server, "packed", 40), x)
    np.testing.assert_array_equal(_stored(server, "listed", 40), x)
    # a batch mixing both forms (the validation's general path) stores the same again
    mixed = [(_packed if i % 2 else _listed)(i, v) for i, v in enumerate(x)]
    server.client.ingest("listed", mixed)
    np.testing.assert_array_equal(_stored(server, "listed", 40), x)
    # cosine: normalised the same way from either form
    y = x.copy()
    y[3] = [1, 2, 3, 4]  # (the extremes' squares overflow float32)
    server.client.ingest("cos", [_packed(i, v) for i, v in enumerate(y[:20])] +
                         [_listed(i, v) for i, v in enumerate(y[20:], 20)])
    got = _stored(server, "cos", 40)
    np.testing.assert_allclose(got, y / np.linalg.norm(y, axis=1, keepdims=True), rtol=1e-6)


def test_bad_packed_vectors_are_invalid_argument_naming_the_value(server: Running) -> None:
    ok = np.ones(DIM, dtype=np.float32)
    torn = pb.Item(id="t", vector=pb.Vector(f32=ok.tobytes() + b"\x00\x01"))
    msg = _invalid(server, "packed", [_packed(0, ok), torn])
    assert "item 1" in msg and "18 bytes" in msg and "multiple of 4" in msg
    msg = _invalid(server, "packed", [_packed(0, ok), _packed(1, np.ones(DIM + 1))])
    assert "item 1" in msg and "dimension 5, expected 4" in msg
    both = pb.Item(id="b", vector=pb.Vector(values=[1.0] * DIM, f32=ok.tobytes()))
    assert "item 0" in _invalid(server, "packed", [both])
    for bad, shown in ((np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")):
        v = ok.copy()
        v[2] = bad
        msg = _invalid(server, "packed", [_packed(0, ok), _packed(1, ok), _packed(2, v)])
        assert f"item 2: vector value [2] is {shown}" in msg
    msg = _invalid(server, "cos", [_packed(0, ok), _packed(1, np.zeros(DIM))])
    assert "item 1" in msg and "all-zero" in msg
    assert server.client.get_collection("packed").point_count == 0  # all or nothing
