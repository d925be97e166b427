"""The ``Embedder`` protocol."""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from .long_text import Embedded, LongText

__all__ = ["Embedder", "TextEmbedder"]


@runtime_checkable
class Embedder(Protocol):
    """Maps a batch of validated inputs of one kind to an ``(n, dim)`` float32 array.

    ``name`` and ``fingerprint`` are recorded on the collection at creation so that a
    later start with a different model is refused instead of silently mixing spaces.
    ``embed`` may be called from two threads at once (the embedding queue's two lanes): an
    embedder that cannot run concurrent calls serialises them itself.
    """

    name: str
    fingerprint: str
    dim: int

    def embed(self, inputs: Sequence[Any]) -> np.ndarray:
        """Embed ``inputs`` (already validated) into an ``(len(inputs), dim)`` float32 array."""
        ...


@runtime_checkable
class TextEmbedder(Embedder, Protocol):
    """An embedder of texts that also embeds texts longer than its window the documented way."""

    def embed_long(self, texts: Sequence[str], long_text: LongText) -> Embedded:
        """Embed texts, long ones truncated or pooled (see :mod:`embcluster.embed.long_text`)."""
        ...
