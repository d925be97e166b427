"""Embedders: turn a collection's inputs into float32 vectors, one protocol per kind of input."""

from .base import Embedder
from .registry import EmbedderRegistry
from .text import SentenceTransformerEmbedder
from .vector import VectorEmbedder

__all__ = ["Embedder", "EmbedderRegistry", "SentenceTransformerEmbedder", "VectorEmbedder"]
