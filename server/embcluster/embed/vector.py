"""Raw vectors: the caller already embedded its data."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["VectorEmbedder"]


class VectorEmbedder:
    """Identity embedder for VECTOR collections of a fixed dimension."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.name = "vector"
        self.fingerprint = f"vector:{dim}"

    def embed(self, inputs: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
        """Already validated vectors (a list or a matrix) as a float32 matrix (no copy if it is one)."""
        return np.asarray(inputs, dtype=np.float32).reshape(len(inputs), self.dim)
