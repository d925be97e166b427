"""The ``onnx-int8`` tier: the sentence-transformers model exported to ONNX with int8 weights.

:func:`build_onnx_int8` exports the model's transformer with ``torch.onnx`` (the TorchScript
exporter) and quantizes its weights to int8 with ONNX Runtime's dynamic quantization; both run
locally on the CPU from the model directory (no download) and the result is cached
(:mod:`embcluster.embed.build_cache`). :class:`OnnxEmbedder` tokenizes with the model's own fast
tokenizer (same window: ``max_seq_length``), runs the graph on ONNX Runtime and pools the token
vectors as the model's pooling layer does (mean or CLS), then normalises.

Only models made of a transformer, a mean or CLS pooling layer and optionally a normalisation
layer can be exported this way; any other (a Dense layer, max pooling) is refused at creation.
Int8 weights move the vectors slightly: the cosine to the full model's own vectors is above
:data:`ONNX_INT8_MIN_COSINE` on the test texts (tests/unit/test_tiers.py).
"""

from __future__ import annotations

import inspect
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .long_text import WindowPlanner
from .text import WindowedTextEmbedder, fingerprint_directory

__all__ = ["ONNX_RECIPE", "ONNX_INT8_MIN_COSINE", "OnnxEmbedder", "build_onnx_int8", "onnx_exportable"]

logger = logging.getLogger(__name__)

ONNX_INT8_MIN_COSINE = 0.85  # documented floor of the cosine to the full model's vector, per text
ONNX_RECIPE: dict[str, Any] = {"exporter": "torch.onnx (TorchScript)", "opset": 17,
                               "quantization": "onnxruntime quantize_dynamic QInt8"}
_MODEL = "model_int8.onnx"
_CONFIG = "onnx_config.json"
_TOKENIZER = "tokenizer.json"
_SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")


def _pooling(source: Path) -> tuple[str, str]:
    """``(pooling, "")`` with ``mean`` or ``cls`` when the model at ``source`` can be exported, else ``("", why not)``."""
    try:
        modules = json.loads((source / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "", "it has no readable modules.json (not a sentence-transformers model directory)"
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k not in _SUPPORTED_MODULES for k in kinds):
        return "", f"its layers are {kinds}; only Transformer, Pooling (mean or CLS) and Normalize can be exported"
    try:
        config = json.loads((source / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError):
        return "", "its pooling layer has no readable config.json"
    modes = [k for k, v in config.items() if k.startswith("pooling_mode_") and v]
    if modes not in (["pooling_mode_mean_tokens"], ["pooling_mode_cls_token"]):
        return "", f"its pooling is {modes}; only mean or CLS pooling can be exported"
    return ("mean" if modes == ["pooling_mode_mean_tokens"] else "cls"), ""


def onnx_exportable(source: Path) -> str | None:
    """Why the sentence-transformers model at ``source`` cannot be exported (None: it can)."""
    return _pooling(source)[1] or None


def build_onnx_int8(source: Path, target: Path) -> None:
    """Export the model at ``source`` to ONNX, quantize it to int8 and save it (and its tokenizer) in ``target``."""
    # Heavy: torch, sentence-transformers and ONNX Runtime's quantizer, only when a build is needed.
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a weight-loading bar in a server log is noise
    pooling, reason = _pooling(source)
    if reason:
        raise ValueError(f"the model at {source} cannot be exported to ONNX: {reason}")
    started = time.perf_counter()
    st = SentenceTransformer(str(source), device="cpu", local_files_only=True)
    transformer: Any = st[0].auto_model
    transformer.eval()
    dim: Any = (getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)()
    max_seq_length: Any = st.max_seq_length
    accepted = inspect.signature(transformer.forward).parameters
    inputs = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in accepted]

    class _Graph(torch.nn.Module):  # keyword arguments only: the model's positional order varies
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *args: Any) -> Any:
            return self.transformer(**dict(zip(inputs, args))).last_hidden_state

    sample = st.tokenizer(["an example text", "another one"], padding=True, return_tensors="pt")
    fp32 = target / "model_fp32.onnx"
    # The exporter warns about its own deprecation and about tracing Python conditions of the
    # attention mask (constant for an encoder without a cache): noise in a server log.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Graph(), tuple(sample[name] for name in inputs), str(fp32), input_names=inputs,
                          output_names=["last_hidden_state"], opset_version=ONNX_RECIPE["opset"], dynamo=False,
                          dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*inputs, "last_hidden_state"]})
    exported = time.perf_counter()
    root = logging.getLogger()
    root.addFilter(_quiet_quantizer)
    try:
        quantize_dynamic(str(fp32), str(target / _MODEL), weight_type=QuantType.QInt8)
    finally:
        root.removeFilter(_quiet_quantizer)
    fp32.unlink()
    st.tokenizer.backend_tokenizer.save(str(target / _TOKENIZER))
    config = {"inputs": inputs, "max_seq_length": int(max_seq_length), "pooling": pooling, "dim": int(dim)}
    (target / _CONFIG).write_text(json.dumps(config, indent=1), encoding="utf-8")
    logger.info("exported %s to ONNX in %.1f s and quantized it to int8 in %.1f s", source, exported - started,
                time.perf_counter() - exported)


def _quiet_quantizer(record: logging.LogRecord) -> bool:
    """Drops the quantizer's INFO lines (one per tensor, hundreds) that it logs on the root logger."""
    return record.levelno >= logging.WARNING


class OnnxEmbedder(WindowedTextEmbedder):
    """Texts embedded with an int8 ONNX export of a sentence-transformers model (the ``onnx-int8`` tier).

    Args:
        name: Name recorded on collections (the source model's).
        path: The built directory (:func:`build_onnx_int8`).
        batch_size: Texts per forward pass.
    """

    def __init__(self, name: str, path: Path, *, batch_size: int = 64) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        started = time.perf_counter()
        self.name = name
        self.path = path
        self.batch_size = batch_size
        config = json.loads((path / _CONFIG).read_text(encoding="utf-8"))
        self._inputs: list[str] = list(config["inputs"])
        self._cls = config["pooling"] == "cls"
        self.dim = int(config["dim"])
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # its warnings about unused initializers are noise in a server log
        self._session = onnxruntime.InferenceSession(str(path / _MODEL), options, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(path / _TOKENIZER))
        max_len = int(config["max_seq_length"])
        self.window = max_len - int(tokenizer.num_special_tokens_to_add(False))
        self._planner: WindowPlanner | None = WindowPlanner(tokenizer, self.window)
        tokenizer.enable_truncation(max_len)
        tokenizer.enable_padding()
        self._tokenizer = tokenizer
        self.fingerprint = "onnx-int8:" + fingerprint_directory(path)
        # On this normal-priority thread: starts the tokenizers library's thread pool, which keeps
        # the priority of the thread that starts it (embed/priority.py)
        self._encode(["warm-up", "a second warm-up text"])
        logger.info("loaded the ONNX int8 model of %s (%d-d) in %.1f s", name, self.dim, time.perf_counter() - started)

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Sorted by length so that each batch pads to similar lengths (as sentence-transformers does).
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            rows = order[start:start + self.batch_size]
            encodings = self._tokenizer.encode_batch([texts[i] for i in rows])
            mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
            feed = {"input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64), "attention_mask": mask,
                    "token_type_ids": np.asarray([e.type_ids for e in encodings], dtype=np.int64)}
            # no lock: a session runs concurrent calls (the queue's interactive and bulk passes), and
            # the tokenizer's settings are fixed above, so encode_batch only reads it
            hidden = self._session.run(None, {k: feed[k] for k in self._inputs})[0]
            if self._cls:
                pooled = hidden[:, 0, :]
            else:
                weights = mask[:, :, None].astype(np.float32)
                pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[rows] = pooled
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
