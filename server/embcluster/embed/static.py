"""The ``static`` tier: a model2vec static model distilled locally from a sentence-transformers model.

Distilling (:func:`build_static`) runs every token of the source model's own vocabulary through
the source model once (no download, no other vocabulary), reduces the token vectors to
:data:`STATIC_PCA_DIMS` dimensions with PCA and weights them by token frequency (SIF); it takes
tens of seconds on a CPU and is cached (:mod:`embcluster.embed.build_cache`). Embedding a text
is then the normalised mean of its tokens' vectors: no neural network runs, which is what makes
the tier tens of times faster than the full model, at some loss of quality (bench/bench_tiers.py).

A static model has no attention window; it reads at most :data:`STATIC_WINDOW` tokens of a text,
and long texts are truncated or pooled over windows of that many tokens like on every tier.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .long_text import WindowPlanner
from .text import WindowedTextEmbedder, fingerprint_directory

__all__ = ["STATIC_PCA_DIMS", "STATIC_WINDOW", "STATIC_RECIPE", "StaticEmbedder", "build_static"]

logger = logging.getLogger(__name__)

STATIC_PCA_DIMS = 256  # model2vec's default: PCA to 256 dimensions improves its static vectors
STATIC_WINDOW = 512  # tokens of a text the static model reads (model2vec's default max_length)
# What a cached build was made with: a change here rebuilds the cache (build.json differs).
STATIC_RECIPE: dict[str, Any] = {"tool": "model2vec.distill", "model2vec": "0.10.0", "pca_dims": STATIC_PCA_DIMS,
                                 "sif_coefficient": 1e-4, "vocabulary": "source tokenizer"}


def build_static(source: Path, target: Path) -> None:
    """Distil the sentence-transformers model at ``source`` into a static model saved under ``target``.

    Runs on the CPU and reads only ``source`` (the vocabulary is the source tokenizer's own).
    """
    # Heavy (model2vec's distiller imports torch and transformers): only when a build is needed.
    from model2vec.distill import distill

    started = time.perf_counter()
    model = distill(model_name=str(source), device="cpu", pca_dims=STATIC_PCA_DIMS,
                    sif_coefficient=STATIC_RECIPE["sif_coefficient"])
    logger.info("distilled %s into a %d-d static model in %.1f s", source, model.dim, time.perf_counter() - started)
    model.save_pretrained(str(target))


class StaticEmbedder(WindowedTextEmbedder):
    """Texts embedded with a model2vec static model (the ``static`` tier).

    Args:
        name: Name recorded on collections (the source model's).
        path: The built static model's directory (:func:`build_static`).
        batch_size: Texts per batch.
    """

    def __init__(self, name: str, path: Path, *, batch_size: int = 1024) -> None:
        from model2vec import StaticModel

        started = time.perf_counter()
        self.name = name
        self.path = path
        self.batch_size = batch_size
        self._model = StaticModel.from_pretrained(path, max_length=STATIC_WINDOW, normalize=True,
                                                  force_download=False)
        self.dim = int(self._model.dim)
        self.fingerprint = "static:" + fingerprint_directory(path)
        self.window = STATIC_WINDOW
        self._planner: WindowPlanner | None = WindowPlanner(self._model.tokenizer, self.window)
        # model2vec sets the truncation of its tokenizer on every encode: one encode at a time.
        self._lock = threading.Lock()
        # On this normal-priority thread: starts the tokenizers library's thread pool, which keeps
        # the priority of the thread that starts it (embed/priority.py)
        self._encode(["warm-up", "a second warm-up text"])
        logger.info("loaded the static model of %s (%d-d) in %.1f s", name, self.dim, time.perf_counter() - started)

    @property
    def model(self) -> Any:
        """The loaded ``model2vec.StaticModel``."""
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            out = self._model.encode(texts, max_length=self.window, batch_size=self.batch_size,
                                     use_multiprocessing=False, normalize=True)
        out = np.ascontiguousarray(out, dtype=np.float32)
        # Rows are re-normalised here in float32 (model2vec normalised them in float16). A text with
        # no known token (only emoji, say) has no vector at all: it gets the first unit vector, so
        # every such text lands in one place instead of a zero vector that cosine cannot compare.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        unit = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
        unit[norms[:, 0] == 0, 0] = 1.0
        return unit
