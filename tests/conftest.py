"""Shared fixtures: settings on a temporary data directory and one text model per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The bundled model is local; nothing may be fetched from a hub during tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from embcluster.config import Settings  # noqa: E402


@pytest.fixture(scope="session")
def text_embedder():
    """The bundled all-MiniLM-L6-v2, loaded once for the whole session."""
    from embcluster.embed.registry import bundled_model_path
    from embcluster.embed.text import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("all-MiniLM-L6-v2", bundled_model_path(), batch_size=64)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh data directory (port 0 = any free port)."""
    return Settings(data_dir=tmp_path / "data", port=0)
