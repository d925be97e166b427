"""Embedding tiers through the API: bad input refused at creation, a static collection end to end,
the recorded tier and fingerprint checked when the server starts again."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import grpc
import numpy as np
import pytest

from embcluster.config import Settings
from embcluster.embed.registry import bundled_model_path, cuda_available
from tests.api.conftest import Running


@pytest.fixture
def server(settings: Settings, text_embedder) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    r = Running(settings, text_embedder)
    yield r
    r.stop()


def _refused(r: Running, code: grpc.StatusCode, needle: str, name: str = "t", **kwargs: object) -> None:
    with pytest.raises(grpc.RpcError) as err:
        r.client.create_collection(name, **kwargs)  # type: ignore[arg-type]
    assert err.value.code() == code, err.value.details()
    assert needle in (err.value.details() or ""), err.value.details()
    assert name not in [c.name for c in r.client.list_collections()]


def test_bad_tiers_are_invalid_argument_at_creation(server: Running, tmp_path: Path) -> None:
    bad = grpc.StatusCode.INVALID_ARGUMENT
    _refused(server, bad, "'turbo'", embedding_tier="turbo")
    _refused(server, bad, str(tmp_path / "no-model"), embedding_tier="model_dir", embedding_model=str(tmp_path / "no-model"))
    _refused(server, bad, "needs the model's directory", embedding_tier="model_dir")
    _refused(server, bad, "takes no embedding_tier", input_kind="vector", vector_dim=4, embedding_tier="static")
    _refused(server, bad, "unknown embedding model 'nope'", embedding_tier="onnx-int8", embedding_model="nope")
    # The full tier's model with a dimension it does not have.
    _refused(server, bad, "vector_dim 128 differs", vector_dim=128)


@pytest.mark.skipif(cuda_available(), reason="this machine has a CUDA device: the gpu tier is accepted")
def test_gpu_tier_without_a_cuda_device_is_refused_at_creation(server: Running) -> None:
    _refused(server, grpc.StatusCode.INVALID_ARGUMENT, "no CUDA device", embedding_tier="gpu")


def test_model_dir_tier_checks_the_directory_and_its_dimension(server: Running, tmp_path: Path) -> None:
    model = str(bundled_model_path())
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    _refused(server, grpc.StatusCode.INVALID_ARGUMENT, "does not load as a sentence-transformers model",
             embedding_tier="model_dir", embedding_model=str(not_a_model))
    _refused(server, grpc.StatusCode.INVALID_ARGUMENT, "differs from the dimension",
             embedding_tier="model_dir", embedding_model=model, vector_dim=256)
    coll = server.client.create_collection("mine", embedding_tier="model_dir", embedding_model=model, vector_dim=384)
    assert (coll.embedding_tier, coll.embedder, coll.dim) == ("model_dir", model, 384)
    server.client.ingest("mine", [{"id": "a", "text": "a sentence"}])
    got = server.client.get_point("mine", id="a", with_vector=True)
    assert len(got.vector.values) == 384


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the session's first use builds the tiers
def test_static_collection_end_to_end(tier_settings: Settings, text_embedder) -> None:  # type: ignore[no-untyped-def]
    r = Running(tier_settings, text_embedder)
    try:
        coll = r.client.create_collection("fast", embedding_tier="static", long_text="pool")
        assert (coll.embedding_tier, coll.dim) == ("static", 256)
        assert coll.embedder_fingerprint.startswith("static:sha256:")
        texts = ["rates rose at the central bank", "the striker scored a late goal", "heavy rain flooded the valley"]
        r.client.ingest("fast", [{"id": f"p{i}", "text": t} for i, t in enumerate(texts)])
        v = np.asarray(r.client.get_point("fast", id="p0", with_vector=True).vector.values)
        assert v.shape == (256,) and abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
        hits = r.client.search("fast", "interest rates and banks", limit=1)
        assert hits[0].point.external_id == "p0"
        assert r.client.get_collection("fast").embedding_tier == "static"
    finally:
        r.stop()


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_changed_tier_model_is_refused_after_a_restart(tier_settings: Settings, text_embedder) -> None:  # type: ignore[no-untyped-def]
    r = Running(tier_settings, text_embedder)
    try:
        r.client.create_collection("fast", embedding_tier="static")
        r.client.ingest("fast", [{"id": "a", "text": "a sentence"}])
    finally:
        r.stop()
    built = next(p for p in (Path(tier_settings.data_dir) / "embedders").iterdir() if p.name.startswith("static-"))
    with (built / "README.md").open("a", encoding="utf-8") as f:  # the cached model is no longer the same files
        f.write("\nedited\n")
    r = Running(tier_settings, text_embedder)
    try:
        with pytest.raises(grpc.RpcError) as err:
            r.client.ingest("fast", [{"id": "b", "text": "another sentence"}])
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "Restore that model or re-create the collection" in (err.value.details() or "")
    finally:
        r.stop()


def test_cli_create_passes_the_tier_and_shows_the_refusal(server: Running, capsys: pytest.CaptureFixture[str]) -> None:
    from embcluster.cli import main

    addr = server.server.address
    assert main(["create", "t", "--tier", "turbo", "--target", addr]) == 1
    assert capsys.readouterr().err.startswith("embcluster: INVALID_ARGUMENT: unknown embedding_tier 'turbo'")
    model = str(bundled_model_path())
    assert main(["create", "t", "--tier", "model_dir", "--model", model, "--target", addr]) == 0
    assert f"created text collection 't' ({model} on tier model_dir, 384-d, cosine)" in capsys.readouterr().out
