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

    def embed(self, inputs: Sequence[Sequence[float]]) -> np.ndarray:
        """Stack already validated vectors into a float32 matrix."""
        if not inputs:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(inputs, dtype=np.float32).reshape(len(inputs), self.dim)
