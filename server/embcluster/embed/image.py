"""Image metadata → one vector: a documented text rendering embedded with the text model, plus scaled numbers.

The rendering is deterministic (same metadata and spec → the same text, byte for byte) and
readable, because it is also what a point shows as its ``text``::

    <title>. <caption>. <alt text>. tags: <tag>, <tag>. <key>: <value>; <key>: <value>.

* Only the spec's ``text_fields`` appear, in the spec's order; empty fields are skipped.
* A field that already ends in ``.``, ``!`` or ``?`` gets no second full stop; whitespace runs
  collapse to one space.
* ``text_attributes`` are rendered as ``key: value`` in the spec's order (``_`` in a key reads as a
  space); lists are joined with ``", "``, booleans read ``yes``/``no``, whole numbers print without
  ``.0`` (``4000``), other numbers with up to 6 significant digits. Absent or null attributes are
  skipped.

Each of the spec's ``numeric_attributes`` becomes one more dimension after the text embedding:
``weight * (t(x) - t(low)) / (t(high) - t(low))`` with ``t = log1p`` when ``log`` is set. The text
embedding is unit length, so a weight of 1 lets the full ``[low, high]`` range move a point as far
as a change of topic does; cosine collections normalise the whole vector afterwards. The scaling
needs no fit (the caller states the range), so it is identical online and in batch, and a stored
vector is never stale. A plain text query (``Search`` by text) is embedded like a rendering whose
numeric features sit at their ``default_value`` (or mid-range when there is none).
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence, cast

import numpy as np

from ..schema import ImageMetadataInput, ImageMetadataSpec, NumericAttribute
from .base import Embedder, TextEmbedder
from .long_text import Embedded, LongText

__all__ = ["render_image_metadata", "format_attribute_value", "scale_numeric", "numeric_features",
           "ImageMetadataEmbedder"]

_SPACE = re.compile(r"\s+")
_FINAL = (".", "!", "?")


def _sentence(text: str) -> str:
    text = _SPACE.sub(" ", text).strip()
    if not text:
        return ""
    return text if text.endswith(_FINAL) else text + "."


def format_attribute_value(value: Any) -> str:
    """How one attribute value reads in the rendering (see the module docstring)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        number = float(value)
        if number.is_integer() and abs(number) < 1e15:
            return str(int(number))
        return f"{number:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_attribute_value(v) for v in value if v is not None)
    return _SPACE.sub(" ", str(value)).strip()


def render_image_metadata(image: ImageMetadataInput, spec: ImageMetadataSpec) -> str:
    """The text that is embedded for ``image`` under ``spec`` (empty if no chosen field has content).

    Args:
        image: Validated image metadata.
        spec: The collection's choice of fields.

    Returns:
        The rendering, e.g. ``"Red barn. A barn at dusk. tags: farm, rural. colour: red; camera: X100."``.
    """
    parts: list[str] = []
    for name in spec.text_fields:
        if name == "tags":
            tags = [_SPACE.sub(" ", t).strip() for t in image.tags]
            tags = [t for t in tags if t]
            if tags:
                parts.append(_sentence("tags: " + ", ".join(tags)))
        else:
            parts.append(_sentence(getattr(image, name)))
    attrs = []
    for key in spec.text_attributes:
        value = image.attributes.get(key)
        if value is None:
            continue
        shown = format_attribute_value(value)
        if shown:
            attrs.append(f"{key.replace('_', ' ')}: {shown}")
    if attrs:
        parts.append(_sentence("; ".join(attrs)))
    return " ".join(p for p in parts if p)


def scale_numeric(value: float, attr: NumericAttribute) -> float:
    """One numeric attribute as its feature: ``weight * (t(value) - t(low)) / (t(high) - t(low))``."""
    if attr.log:
        lo, hi, x = math.log1p(attr.low), math.log1p(attr.high), math.log1p(value)
    else:
        lo, hi, x = attr.low, attr.high, value
    return float(attr.weight * (x - lo) / (hi - lo))


def _neutral(attr: NumericAttribute) -> float:
    """The value a text query assumes: the default, else the middle of the range (after ``t``)."""
    if attr.default_value is not None:
        return attr.default_value
    if attr.log:
        return math.expm1((math.log1p(attr.low) + math.log1p(attr.high)) / 2)
    return (attr.low + attr.high) / 2


def numeric_features(images: Sequence[ImageMetadataInput | None], spec: ImageMetadataSpec) -> np.ndarray:
    """The ``(len(images), len(spec.numeric_attributes))`` scaled features (None = a text query)."""
    out = np.zeros((len(images), len(spec.numeric_attributes)), dtype=np.float64)
    for j, attr in enumerate(spec.numeric_attributes):
        for i, image in enumerate(images):
            if image is None:
                value = _neutral(attr)
            else:
                raw = image.attributes.get(attr.key)
                value = float(raw) if raw is not None else float(attr.default_value)  # type: ignore[arg-type]
            out[i, j] = scale_numeric(value, attr)
    return out


class ImageMetadataEmbedder:
    """Embeds validated :class:`ImageMetadataInput` (or query texts) for one collection's spec.

    Args:
        text: The collection's text embedder (the same model registry as TEXT collections).
        spec: Which fields are rendered and which numbers are appended.

    ``name`` and ``fingerprint`` are the text model's (the spec is recorded beside them on the
    collection); ``dim`` is the text model's plus one per numeric attribute.
    """

    def __init__(self, text: Embedder, spec: ImageMetadataSpec) -> None:
        self.text = text
        self.spec = spec
        self.name = text.name
        self.fingerprint = text.fingerprint
        self.dim = text.dim + len(spec.numeric_attributes)

    def render(self, images: Sequence[ImageMetadataInput]) -> list[str]:
        """The renderings that :meth:`embed` embeds."""
        return [render_image_metadata(im, self.spec) for im in images]

    def embed(self, inputs: Sequence[ImageMetadataInput]) -> np.ndarray:
        """Embed validated image metadata into an ``(n, dim)`` float32 array."""
        return self._stack(self.text.embed(self.render(inputs)), numeric_features(list(inputs), self.spec))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed free texts (search queries) with neutral numeric features."""
        return self._stack(self.text.embed(list(texts)), numeric_features([None] * len(texts), self.spec))

    def embed_long(self, inputs: Sequence[ImageMetadataInput], long_text: LongText) -> Embedded:
        """:meth:`embed` with renderings longer than the model's window truncated or pooled (``long_text``)."""
        text = cast(TextEmbedder, self.text).embed_long(self.render(inputs), long_text)
        return Embedded(self._stack(text.vectors, numeric_features(list(inputs), self.spec)), text.truncated)

    def embed_queries(self, texts: Sequence[str], long_text: LongText) -> Embedded:
        """:meth:`embed_texts` with long texts truncated or pooled (``long_text``)."""
        text = cast(TextEmbedder, self.text).embed_long(list(texts), long_text)
        return Embedded(self._stack(text.vectors, numeric_features([None] * len(texts), self.spec)), text.truncated)

    def _stack(self, text_vectors: np.ndarray, features: np.ndarray) -> np.ndarray:
        if not features.shape[1]:
            return np.ascontiguousarray(text_vectors, dtype=np.float32)
        return np.ascontiguousarray(np.hstack([text_vectors, features]), dtype=np.float32)
