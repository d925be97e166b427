"""Validation of what an Ingest or Classify call carries, item by item, and of a search query.

The collection-level checks (names, specs, settings, schedules, run requests) are in
:mod:`embcluster.validation`; this module adds the per-item ones. Every message names the item
(``item 3: ...``) and the offending value; internal code assumes what passes here is valid.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np

from .config import Settings
from .embed.image import render_image_metadata
from .errors import InvalidArgument, shown
from .schema import ImageMetadataInput, ImageMetadataSpec, InputKind, ItemInput
from .validation import check_json_shape

__all__ = ["check_items", "check_query", "check_image_item"]


def _vector_value_errors(items: Sequence[ItemInput], dim: int, cosine: bool) -> tuple[np.ndarray, dict[int, str]]:
    """Stack the well-shaped vectors once and find bad values vectorised.

    Returns the float32 matrix (rows of ill-shaped vectors are zero; the caller raises on
    those first) and the value error message of each bad row, by item index.
    """
    shaped = [it.vector is not None and len(it.vector) == dim for it in items]
    ok = np.flatnonzero(shaped)
    rows = [items[int(i)].vector for i in ok]
    mat: np.ndarray
    if rows and all(type(r) is np.ndarray and r.dtype == np.float32 and r.ndim == 1 for r in rows):
        # Packed f32 vectors (the API's np.frombuffer views): one copy into the matrix, no float64
        # detour, and no overflow check (float32 values cannot overflow float32).
        block: np.ndarray = np.concatenate(rows).reshape(len(ok), dim)  # type: ignore[arg-type]
        if len(ok) == len(items):
            mat = out = block
        else:
            mat = out = np.zeros((len(items), dim), dtype=np.float32)
            out[ok] = block
    else:
        mat = np.zeros((len(items), dim), dtype=np.float64)
        if len(ok):
            mat[ok] = np.asarray(rows, dtype=np.float64).reshape(len(ok), dim)
        out = mat.astype(np.float32)
    errors: dict[int, str] = {}
    for i, j in np.argwhere(~np.isfinite(mat))[::-1]:
        errors[int(i)] = f"vector value [{j}] is {mat[i, j]}; values must be finite"
    if mat is not out:
        for i, j in np.argwhere(np.isfinite(mat) & ~np.isfinite(out))[::-1]:  # overflows float32
            errors.setdefault(int(i), f"vector value [{j}] is {mat[i, j]}, outside the float32 range")
    if cosine:
        for i in np.flatnonzero(~mat.any(axis=1) & np.asarray(shaped, dtype=bool)):
            errors.setdefault(int(i), "an all-zero vector has no direction under cosine distance")
    return out, errors


def check_items(
    items: Sequence[ItemInput], *, kind: InputKind, dim: int, settings: Settings, cosine: bool = False,
    with_ids: bool = True, image_spec: ImageMetadataSpec | None = None,
) -> np.ndarray | None:
    """Every item of an Ingest/Classify batch; the first bad one is reported by index.

    Returns the batch's vectors as one float32 matrix for VECTOR collections (parsed once,
    here), None for text.
    """
    if not items:
        raise InvalidArgument("no items: send at least one")
    if len(items) > settings.max_batch_items:
        raise InvalidArgument(f"{len(items)} items in one call; the limit is {settings.max_batch_items}")
    matrix, value_errors = _vector_value_errors(items, dim, cosine) if kind == "vector" else (None, {})
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"item {i}"
        if with_ids and item.id:
            if len(item.id) > 256:
                raise InvalidArgument(f"{where}: id is {len(item.id)} characters; the limit is 256")
            if item.id in seen:
                raise InvalidArgument(f"{where}: id {shown(item.id)} repeats item {seen[item.id]}")
            seen[item.id] = i
        if kind == "image_metadata":
            if item.text is not None or item.vector is not None:
                raise InvalidArgument(f"{where}: this collection takes image metadata, got "
                                      f"{'text' if item.text is not None else 'a vector'}")
            if item.image is None:
                raise InvalidArgument(f"{where}: image metadata is missing")
            check_image_item(where, item.image, image_spec or ImageMetadataSpec(), settings)
        elif kind == "event":  # the fields are checked against the schema by embed.events.parse_events
            if item.text is not None or item.vector is not None or item.image is not None:
                raise InvalidArgument(f"{where}: this collection takes events, got "
                                      f"{'text' if item.text is not None else 'a vector' if item.vector is not None else 'image metadata'}")
            if item.event is None:
                raise InvalidArgument(f"{where}: event is missing")
        elif kind == "text":
            if item.image is not None:
                raise InvalidArgument(f"{where}: this collection takes text, got image metadata")
            if item.vector is not None:
                raise InvalidArgument(f"{where}: this collection takes text, got a vector")
            if item.text is None or not item.text.strip():
                raise InvalidArgument(f"{where}: text is empty")
            if len(item.text) > settings.max_text_chars:
                raise InvalidArgument(
                    f"{where}: text is {len(item.text)} characters; the limit is {settings.max_text_chars}"
                )
        else:
            if item.image is not None:
                raise InvalidArgument(f"{where}: this collection takes vectors, got image metadata")
            if item.text is not None:
                raise InvalidArgument(f"{where}: this collection takes vectors, got text")
            if item.vector is None:
                raise InvalidArgument(f"{where}: vector is missing")
            if len(item.vector) != dim:
                raise InvalidArgument(f"{where}: vector has dimension {len(item.vector)}, expected {dim}")
            if i in value_errors:
                raise InvalidArgument(f"{where}: {value_errors[i]}")
        if item.metadata is not None:
            _check_metadata(where, item.metadata, settings.max_metadata_bytes)
    return matrix


def _check_metadata(where: str, metadata: dict[str, Any], limit: int) -> None:
    check_json_shape(f"{where}: metadata", metadata)
    try:
        encoded = json.dumps(metadata, allow_nan=False)
    except (ValueError, TypeError) as exc:  # NaN/inf, or a value JSON cannot hold
        raise InvalidArgument(f"{where}: metadata must be JSON with finite numbers ({exc})") from exc
    if len(encoded.encode()) > limit:
        raise InvalidArgument(f"{where}: metadata is {len(encoded.encode())} bytes as JSON; the limit is {limit}")


def check_query(
    text: str | None, vector: Sequence[float] | None, *, kind: InputKind, dim: int, settings: Settings, cosine: bool,
    image: ImageMetadataInput | None = None, image_spec: ImageMetadataSpec | None = None,
) -> np.ndarray | None:
    """A search query of the collection's kind (returns the vector as a 1 x dim matrix).

    IMAGE_METADATA collections take image metadata or a plain text (see ``embed/image.py``).
    """
    if kind == "image_metadata" and text is not None and image is None and vector is None:
        if not text.strip():
            raise InvalidArgument("query: text is empty")
        if len(text) > settings.max_text_chars:
            raise InvalidArgument(f"query: text is {len(text)} characters; the limit is {settings.max_text_chars}")
        return None
    return check_items([ItemInput(text=text, vector=vector, image=image)], kind=kind, dim=dim, settings=settings,
                       cosine=cosine, with_ids=False, image_spec=image_spec)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_text_attribute(where: str, key: str, value: Any) -> None:
    scalars = value if isinstance(value, (list, tuple)) else [value]
    for v in scalars:
        if v is None or isinstance(v, (str, bool)):
            continue
        if _is_number(v):
            if not math.isfinite(float(v)):
                raise InvalidArgument(f"{where}: attribute {shown(key)} is {v}; numbers must be finite")
            continue
        raise InvalidArgument(f"{where}: attribute {shown(key)} is rendered as text and must be a string, number, "
                              f"boolean or a list of them, got {type(v).__name__} {shown(v)}")


def check_image_item(where: str, image: ImageMetadataInput, spec: ImageMetadataSpec, settings: Settings) -> None:
    """One item's image metadata under the collection's spec; errors name the item and the field."""
    for name in ("title", "caption", "alt_text"):
        value = getattr(image, name)
        if not isinstance(value, str):
            raise InvalidArgument(f"{where}: image {name} must be a string, got {type(value).__name__} {shown(value)}")
    if not isinstance(image.tags, (list, tuple)):
        raise InvalidArgument(f"{where}: image tags must be a list of strings, got {type(image.tags).__name__}")
    for j, tag in enumerate(image.tags):
        if not isinstance(tag, str):
            raise InvalidArgument(f"{where}: image tags[{j}] must be a string, got {type(tag).__name__} {shown(tag)}")
    if not isinstance(image.attributes, dict):
        raise InvalidArgument(f"{where}: image attributes must be an object, got {type(image.attributes).__name__}")
    check_json_shape(f"{where}: image attributes", image.attributes)
    try:
        encoded = json.dumps(image.attributes, allow_nan=False).encode()
    except (ValueError, TypeError) as exc:  # NaN/inf, or a value JSON cannot hold
        raise InvalidArgument(f"{where}: image attributes must be JSON with finite numbers ({exc})") from exc
    if len(encoded) > settings.max_metadata_bytes:
        raise InvalidArgument(f"{where}: image attributes are {len(encoded)} bytes as JSON; "
                              f"the limit is {settings.max_metadata_bytes}")
    for key in spec.text_attributes:
        if key in image.attributes:
            _check_text_attribute(where, key, image.attributes[key])
    for attr in spec.numeric_attributes:
        value = image.attributes.get(attr.key)
        if value is None:
            if attr.default_value is None:
                raise InvalidArgument(f"{where}: numeric attribute {shown(attr.key)} is missing (the collection's "
                                      "spec requires it: it has no default_value)")
            continue
        if not _is_number(value):
            raise InvalidArgument(f"{where}: attribute {shown(attr.key)} must be a number, got "
                                  f"{type(value).__name__} {shown(value)}")
        if not math.isfinite(float(value)):
            raise InvalidArgument(f"{where}: attribute {shown(attr.key)} is {value}; numbers must be finite")
        if attr.log and value < 0:
            raise InvalidArgument(f"{where}: attribute {shown(attr.key)} is {value}; log scaling needs values >= 0")
    text = render_image_metadata(image, spec)
    if not text:
        chosen = [*spec.text_fields, *(f"attributes.{k}" for k in spec.text_attributes)]
        raise InvalidArgument(f"{where}: image metadata has none of the collection's chosen fields "
                              f"({', '.join(chosen)})")
    if len(text) > settings.max_text_chars:
        raise InvalidArgument(f"{where}: image metadata renders to {len(text)} characters; "
                              f"the limit is {settings.max_text_chars}")
