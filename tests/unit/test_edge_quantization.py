"""int8 codes for the HNSW index (``vector_index.quantization``): built, walked, rescored, kept.

A search on codes must still return float32 scores (the candidates are rescored) and an exact
search must score float32 vectors (Edge's exact search ignores codes by itself); both are checked
against numpy on the same vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qdrant_client import models as qm

from embcluster.errors import InvalidArgument
from embcluster.store import edge, edge_index
from embcluster.store.base import VectorIndexSettings
from embcluster.store.edge import EdgeStore
from embcluster.store.edge_factory import EdgeStoreFactory
from embcluster.store.qdrant_config import quantization_config, search_params
from embcluster.validation import check_vector_index

from .test_edge_index import DIM, INDEXED, built, data, exact_top, fill, uid

INT8 = VectorIndexSettings(m=16, ef_construct=64, ef=64, min_points=1000, quantization="int8")


def code_files(path: Path) -> list[Path]:
    """The files Edge writes for quantized vectors (under each indexed segment's vector storage)."""
    return [p for p in path.rglob("*") if p.is_file() and "quantized" in p.name]


def indexed_store(factory: EdgeStoreFactory, index: VectorIndexSettings, x: np.ndarray,
                  labels: np.ndarray, *, background: bool = False) -> EdgeStore:
    """A store holding ``x``, indexed here or (``background``) as the service does: a child process on a copy."""
    store = factory.create("c", dim=DIM, metric="cosine", indexed=INDEXED, index=index)
    fill(store, x, labels)
    if background:
        store.indexer.poke(force=True)
        built(store)
    else:
        with store.pause_indexing():
            store.build_index_here()
    assert store.index_state().indexed_points == len(x)
    return store


def check_searches(store: EdgeStore, x: np.ndarray) -> float:
    """Recall@10 of the collection's search; asserts every score is the float32 cosine, exact ones too."""
    found = 0
    for qi in range(0, 300, 10):
        q = x[qi]
        truth = exact_top(x, q, 10)
        hits = store.search(q, limit=10)
        for point, score in hits + store.search(q, limit=10, exact=True):
            assert abs(score - float(x[int(point.id.replace("-", ""), 16) - 1] @ q)) < 1e-5, \
                "a score is not the float32 cosine (the int8 candidates were not rescored)"
        assert [p.id for p, _ in store.search(q, limit=10, exact=True)] == truth
        found += len(set(truth) & {p.id for p, _ in hits})
    return found / 300


def test_int8_codes_are_built_walked_rescored_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge, "FULL_SCAN_KB", 16)  # walk the graph, not a scan of a small segment
    monkeypatch.setattr(edge_index, "UNINDEXED_MIN", 3000)  # due once all of this test's 3,000 points are in
    x, labels = data(3000)
    plain_factory = EdgeStoreFactory(tmp_path / "plain")
    plain = indexed_store(plain_factory, VectorIndexSettings(m=16, ef_construct=64, ef=64, min_points=1000), x, labels)
    assert code_files(plain.path) == []  # the default writes no codes
    plain.close()

    factory = EdgeStoreFactory(tmp_path / "int8")
    store = indexed_store(factory, INT8, x, labels, background=True)  # the child process loads the copy's config
    assert code_files(store.path), "no quantized vector files after the build"
    assert check_searches(store, x) >= 0.9
    store.close()
    again = factory.open("c", INT8)  # the codes and the rescoring survive a reopen
    assert code_files(again.path)
    assert again.unindexed == 0  # the open's probe of the graph finds every sampled point in it
    assert check_searches(again, x) >= 0.9
    again.close()


@pytest.mark.parametrize("value", ["int4", "INT8", "", "binary"])
def test_an_unknown_quantization_is_invalid(value: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_vector_index(VectorIndexSettings(quantization=value))
    assert "vector_index.quantization" in err.value.message and repr(value) in err.value.message
    assert "none, int8" in err.value.message


def test_the_qdrant_server_gets_codes_and_rescoring_only_with_int8() -> None:
    assert quantization_config(VectorIndexSettings()) is None
    codes = quantization_config(INT8)
    assert isinstance(codes, qm.ScalarQuantization)
    assert (codes.scalar.type, codes.scalar.quantile, codes.scalar.always_ram) == (qm.ScalarType.INT8, 0.99, True)
    assert search_params(64).quantization is None
    rescored = search_params(64, quantized=True)
    assert rescored.hnsw_ef == 64 and rescored.quantization is not None and rescored.quantization.rescore
    assert search_params(0, exact=True, quantized=True).exact
