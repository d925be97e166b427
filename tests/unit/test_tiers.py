"""Embedding tiers: the cached builds, each tier's vectors, the checks made before anything loads."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from embcluster.config import Settings
from embcluster.embed import build_cache
from embcluster.embed import registry as registry_module
from embcluster.embed.build_cache import BUILD_FILE, cached_build, is_built
from embcluster.embed.long_text import LongText
from embcluster.embed.onnx_int8 import ONNX_INT8_MIN_COSINE, OnnxEmbedder, onnx_exportable
from embcluster.embed.registry import EmbedderRegistry, bundled_model_path
from embcluster.embed.static import StaticEmbedder
from embcluster.errors import InvalidArgument

TEXTS = [
    "The central bank raised interest rates by half a point.",
    "Stocks fell sharply after the earnings report.",
    "The striker scored twice in the second half.",
    "A late goal sealed the championship for the home side.",
    "The new vaccine reduced hospital admissions.",
    "Researchers sequenced the genome of the wheat plant.",
    "Heavy rain flooded the valley overnight.",
    "The orchestra played Beethoven's ninth symphony.",
    "🙂🙂🙂",
    "x",
]


def _glosses(n: int) -> list[str]:
    from embcluster.data import __file__ as data_init

    rows = (Path(data_init).parent / "wordnet_glosses.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    return [json.loads(r)["text"] for r in rows]


# ---------------------------------------------------------------------- the build cache (no model)


def test_failed_build_leaves_no_half_directory(tmp_path: Path) -> None:
    target = tmp_path / "embedders" / "static-x"

    def broken(into: Path) -> None:
        (into / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        cached_build(target, {"tier": "static"}, broken, what="test model")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary directory left either


def test_build_is_reused_and_redone_for_another_recipe(tmp_path: Path) -> None:
    target = tmp_path / "static-x"
    calls: list[Path] = []

    def build(into: Path) -> None:
        calls.append(into)
        (into / "weights").write_text(str(len(calls)))

    cached_build(target, {"recipe": 1}, build, what="test model")
    cached_build(target, {"recipe": 1}, build, what="test model")
    assert len(calls) == 1 and (target / "weights").read_text() == "1"
    assert is_built(target, {"recipe": 1}) and not is_built(target, {"recipe": 2})
    cached_build(target, {"recipe": 2}, build, what="test model")
    assert len(calls) == 2 and (target / "weights").read_text() == "2"
    assert json.loads((target / BUILD_FILE).read_text())["recipe"] == 2


def test_a_build_is_synced_before_its_build_json_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[tuple[str, bool]] = []
    monkeypatch.setattr(build_cache, "fsync_tree",
                        lambda path: synced.append(((path / "weights").read_text(), (path / BUILD_FILE).exists())))
    cached_build(tmp_path / "static-x", {}, lambda into: (into / "weights").write_text("whole"), what="test model")
    assert synced == [("whole", False)]  # the files, then the marker that says they are whole


def test_leftover_of_a_killed_build_is_removed(tmp_path: Path) -> None:
    leftover = tmp_path / ".static-x.tmp-deadbeef"
    leftover.mkdir()
    (leftover / "weights").write_text("half")
    cached_build(tmp_path / "static-x", {}, lambda into: (into / "weights").write_text("whole"), what="test model")
    assert not leftover.exists() and (tmp_path / "static-x" / "weights").read_text() == "whole"


# ---------------------------------------------------------------------- checks before anything loads


def test_gpu_tier_without_cuda_is_refused_before_loading(tmp_path: Path) -> None:
    registry = EmbedderRegistry(Settings(data_dir=tmp_path), has_cuda=lambda: False)
    with pytest.raises(InvalidArgument, match="no CUDA device"):
        registry.text("", "gpu")


def test_unknown_tier_and_missing_model_dir_name_the_value(tmp_path: Path) -> None:
    registry = EmbedderRegistry(Settings(data_dir=tmp_path))
    with pytest.raises(InvalidArgument, match="unknown embedding_tier 'turbo'"):
        registry.text("", "turbo")
    missing = tmp_path / "no-such-model"
    with pytest.raises(InvalidArgument, match="no-such-model"):
        registry.text(str(missing), "model_dir")
    with pytest.raises(InvalidArgument, match="unknown embedding model 'nope'"):
        registry.text("nope", "static")


def test_directory_that_is_not_a_model_is_invalid_argument(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.txt").write_text("not a model")
    with pytest.raises(InvalidArgument, match="does not load as a sentence-transformers model"):
        EmbedderRegistry(Settings(data_dir=tmp_path / "data")).text(str(notes), "model_dir")


def test_onnx_export_refuses_layers_it_cannot_export(tmp_path: Path) -> None:
    assert onnx_exportable(bundled_model_path()) is None
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    assert "Dense" in (onnx_exportable(tmp_path) or "")
    assert "modules.json" in (onnx_exportable(tmp_path / "missing") or "")


# ---------------------------------------------------------------------- the built tiers (slow: they build models)


def _check_vectors(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.shape == (n, dim) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the session's first use builds both tiers
def test_static_tier_embeds_deterministically(tier_settings: Settings) -> None:
    emb = EmbedderRegistry(tier_settings).text("", "static")
    assert isinstance(emb, StaticEmbedder) and emb.fingerprint.startswith("static:sha256:")
    first = emb.embed(TEXTS)
    _check_vectors(first, len(TEXTS), emb.dim)
    np.testing.assert_array_equal(first, emb.embed(TEXTS))
    # Texts about the same thing are nearer than texts about different things.
    assert float(first[0] @ first[1]) > float(first[0] @ first[2])
    again = EmbedderRegistry(tier_settings).text("", "static")  # another registry: loaded from the cache
    assert again is not emb and again.fingerprint == emb.fingerprint
    np.testing.assert_array_equal(first, again.embed(TEXTS))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_static_tier_truncates_and_pools_long_texts(tier_settings: Settings, article) -> None:  # type: ignore[no-untyped-def]
    emb = EmbedderRegistry(tier_settings).text("", "static")
    long = article(40_000)  # about 9,000 tokens: 18 windows of 512
    cut = emb.embed_long([long, "short"], LongText(mode="truncate"))
    pooled = emb.embed_long([long, "short"], LongText(mode="pool", max_windows=4))
    assert cut.truncated.tolist() == [True, False] and pooled.truncated.tolist() == [True, False]
    _check_vectors(pooled.vectors, 2, emb.dim)
    assert float(cut.vectors[0] @ pooled.vectors[0]) < 0.9999  # pooling read more than the first window
    np.testing.assert_array_equal(cut.vectors[1], pooled.vectors[1])  # a short text: the same in both modes


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_second_open_does_not_rebuild(tier_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_build(source: Path, target: Path) -> None:
        raise AssertionError("rebuilt although the cache holds the build")

    monkeypatch.setattr(registry_module, "build_static", no_build)
    monkeypatch.setattr(registry_module, "build_onnx_int8", no_build)
    registry = EmbedderRegistry(tier_settings)
    assert registry.text("", "static").dim == 256
    assert registry.text("", "onnx-int8").dim == 384


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_concurrent_first_uses_build_once(tmp_path: Path, built_tiers: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = next(p for p in (built_tiers / "embedders").iterdir() if p.name.startswith("static-"))
    builds: list[Path] = []

    def slow_build(source: Path, target: Path) -> None:  # the real build's files, slowly
        builds.append(target)
        time.sleep(0.5)
        for file in built.iterdir():
            if file.name != BUILD_FILE:
                shutil.copy(file, target / file.name)

    monkeypatch.setattr(registry_module, "build_static", slow_build)
    registry = EmbedderRegistry(Settings(data_dir=tmp_path / "data"))
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(registry.text("", "static"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(got) == 4 and all(g is got[0] for g in got)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_onnx_int8_tier_is_close_to_the_full_model(tier_settings: Settings, text_embedder) -> None:  # type: ignore[no-untyped-def]
    emb = EmbedderRegistry(tier_settings).text("", "onnx-int8")
    assert isinstance(emb, OnnxEmbedder) and emb.fingerprint.startswith("onnx-int8:sha256:")
    assert emb.window == text_embedder.window  # the same tokens of a long text are read
    texts = TEXTS + _glosses(60)
    quantized = emb.embed(texts)
    _check_vectors(quantized, len(texts), 384)
    np.testing.assert_array_equal(quantized, emb.embed(texts))
    cosines = (quantized * text_embedder.embed(texts)).sum(axis=1)
    assert cosines.min() >= ONNX_INT8_MIN_COSINE, list(zip(texts, cosines))
    assert cosines.mean() >= 0.93


def test_a_long_build_logs_that_it_is_still_running(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="embcluster.embed.build_cache")
    cached_build(tmp_path / "slow", {}, lambda into: time.sleep(0.35), what="test model", progress_every_s=0.1)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("still building the test model") for line in lines), lines
    assert any(line.startswith("built the test model") for line in lines), lines


@pytest.mark.skipif(not registry_module.cuda_available(), reason="no CUDA device: the gpu tier is refused (tested above)")
def test_gpu_tier_matches_the_full_model_on_the_cpu(tmp_path: Path) -> None:
    from embcluster.embed.text import SentenceTransformerEmbedder

    emb = EmbedderRegistry(Settings(data_dir=tmp_path)).text("", "gpu")
    cpu = SentenceTransformerEmbedder("all-MiniLM-L6-v2", bundled_model_path(), device="cpu")
    assert emb.fingerprint == cpu.fingerprint  # the same weights, run on CUDA
    cosines = (emb.embed(TEXTS) * cpu.embed(TEXTS)).sum(axis=1)
    assert cosines.min() > 0.999
