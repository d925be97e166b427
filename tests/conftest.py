"""Shared fixtures: settings and services on temporary data directories, one text model per session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

# The bundled model is local; nothing may be fetched from a hub during tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from embcluster.config import Settings  # noqa: E402
from embcluster.pipeline import EmbclusterService  # noqa: E402
from embcluster.store.base import StoreFactory  # noqa: E402


@pytest.fixture(scope="session")
def text_embedder():
    """The bundled all-MiniLM-L6-v2, loaded once for the whole session."""
    from embcluster.embed.registry import bundled_model_path
    from embcluster.embed.text import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("all-MiniLM-L6-v2", bundled_model_path(), batch_size=64)


@pytest.fixture(scope="session")
def article() -> Callable[[int], str]:
    """``article(n)``: an English text of exactly ``n`` characters, sentences from the bundled WordNet glosses."""
    import json

    from embcluster.data import __file__ as data_init

    rows = (Path(data_init).parent / "wordnet_glosses.jsonl").read_text(encoding="utf-8").splitlines()
    sentences = [f"{r['word'].capitalize()} is {r['text']}." for r in map(json.loads, rows)]
    corpus = " ".join(sentences)

    def make(n: int) -> str:
        return (corpus * (n // len(corpus) + 1))[:n]

    return make


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh data directory (port 0 = any free port)."""
    return Settings(data_dir=tmp_path / "data", port=0)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fresh data directory for a service (not created yet)."""
    return tmp_path / "data"


@pytest.fixture
def make_service() -> Iterator[Callable[..., EmbclusterService]]:
    """Opens services: ``make_service(data_dir, store_factory=None, **settings)`` (page_size 64 unless given).

    Every service it opened is closed at the end of the test (closing twice is harmless), so a
    test may close, crash-simulate or reopen as it needs.
    """
    made: list[EmbclusterService] = []

    def make(data_dir: Path, *, store_factory: StoreFactory | None = None, **overrides: Any) -> EmbclusterService:
        svc = EmbclusterService(Settings(data_dir=data_dir, **{"page_size": 64, **overrides}),
                                store_factory=store_factory)
        svc.open()
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


@pytest.fixture(scope="session")
def built_tiers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose ``embedders/`` holds the static and onnx-int8 tiers of the bundled model,
    built once per test run (tens of seconds each); tests copy it into their own data directories.

    pytest-xdist's workers share it: their base temporary directories have one parent per run, so
    the first worker that needs the tiers builds them there under a file lock and the others wait
    for it, then load the finished builds (the build cache's own path), instead of each building them.
    """
    import fcntl

    from embcluster.embed.registry import EmbedderRegistry

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    data = shared / "tiers" / "data"
    data.parent.mkdir(parents=True, exist_ok=True)
    with open(shared / "tiers.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        registry = EmbedderRegistry(Settings(data_dir=data))
        for tier in ("static", "onnx-int8"):
            registry.load_in_background("", tier).result()
    return data


@pytest.fixture
def tier_settings(tmp_path: Path, built_tiers: Path) -> Settings:
    """Settings on a fresh data directory that already holds the built tiers (no build in the test)."""
    import shutil

    shutil.copytree(built_tiers / "embedders", tmp_path / "data" / "embedders")
    return Settings(data_dir=tmp_path / "data", port=0)
