"""Embedding tiers: how a collection's text model runs, chosen at creation and recorded with it.

========== =====================================================================================
tier       what embeds the texts
========== =====================================================================================
full       the model on sentence-transformers (torch), CUDA when torch sees one: the default
onnx-int8  the model exported to ONNX with int8 weights, on ONNX Runtime (built on first use)
static     a model2vec static model distilled from the model (built on first use; tens of
           times faster, somewhat lower quality)
model_dir  the sentence-transformers model in the directory ``embedding_model`` names
gpu        the model on sentence-transformers on CUDA; refused at creation without a CUDA device
========== =====================================================================================

``onnx-int8`` and ``static`` are derived from the collection's model (the bundled
all-MiniLM-L6-v2 or one configured in ``text_models``) and cached under
``<data_dir>/embedders`` (:mod:`embcluster.embed.build_cache`). Every tier has its own
fingerprint, recorded on the collection: a collection is only served by the same tier of the
same model, like today's model check.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["EmbeddingTier", "TIERS", "DEFAULT_TIER", "BUILT_TIERS", "NO_CUDA"]

EmbeddingTier = Literal["full", "onnx-int8", "static", "model_dir", "gpu"]
TIERS: tuple[EmbeddingTier, ...] = ("full", "onnx-int8", "static", "model_dir", "gpu")
DEFAULT_TIER: EmbeddingTier = "full"
BUILT_TIERS: tuple[EmbeddingTier, ...] = ("onnx-int8", "static")  # derived from the model and cached
NO_CUDA = "embedding_tier 'gpu' needs a CUDA device, and torch sees no CUDA device on this server"
