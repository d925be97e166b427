"""Conversion of plain Python values into ``embcluster.v1`` items and vectors."""

from __future__ import annotations

import numpy as np

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, Union

from embcluster.api.v1 import embcluster_pb2 as pb

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["VectorLike", "ItemLike", "make_vector", "make_item", "make_items"]

VectorLike: TypeAlias = Union[Sequence[float], "npt.NDArray[Any]"]
"""A sequence of numbers or a 1-D numpy array."""

ItemLike: TypeAlias = Union[str, pb.Item, VectorLike, Mapping[str, Any]]
"""A text, a vector, a ready ``pb.Item`` or a dict with ``id``/``text``/``vector``/``metadata``."""

_ITEM_KEYS = frozenset({"id", "text", "vector", "metadata"})


def _is_vector_like(obj: object) -> bool:
    if isinstance(obj, (str, bytes, bytearray, Mapping)):
        return False
    return isinstance(obj, Sequence) or hasattr(obj, "ndim")


def make_vector(seq: VectorLike) -> pb.Vector:
    """Converts a sequence of numbers or a 1-D numpy array into a ``pb.Vector``.

    Values are stored as float32. NaN and dimension checks are left to the server.

    Args:
        seq: The vector's values.

    Returns:
        The vector message.

    Raises:
        TypeError: ``seq`` is not a sequence of numbers.
        ValueError: ``seq`` is an array that is not 1-D.
    """
    if not _is_vector_like(seq):
        raise TypeError(f"expected a sequence of numbers, got {type(seq).__name__}")
    ndim = getattr(seq, "ndim", 1)
    if ndim != 1:
        raise ValueError(f"expected a 1-D array, got {ndim}-D")
    try:
        # Packed little-endian float32 bytes: far cheaper to encode and parse than `values`.
        return pb.Vector(f32=np.asarray(seq, dtype="<f4").tobytes())
    except (TypeError, ValueError) as e:
        raise TypeError(f"vector values must be numbers: {e}") from e


def make_item(obj: ItemLike) -> pb.Item:
    """Converts one user value into a ``pb.Item``.

    Accepted values:

    * ``str``: a text item.
    * ``pb.Item``: returned as is.
    * a sequence of numbers or a 1-D numpy array: a vector item.
    * a dict with an optional ``id`` (str), exactly one of ``text`` (str) or
      ``vector`` (vector-like), and optional ``metadata`` (a JSON-like dict stored in
      the item's ``Struct``).

    Args:
        obj: The value to convert.

    Returns:
        The item message.

    Raises:
        TypeError: ``obj`` or one of its fields has an unsupported type.
        ValueError: a dict has unknown keys, or both or neither of ``text`` and ``vector``.
    """
    if isinstance(obj, str):
        return pb.Item(text=obj)
    if isinstance(obj, pb.Item):
        return obj
    if isinstance(obj, Mapping):
        return _item_from_mapping(obj)
    if _is_vector_like(obj):
        return pb.Item(vector=make_vector(obj))
    raise TypeError(
        f"cannot convert {type(obj).__name__} to an Item; "
        "expected str, Item, a sequence of numbers or a dict"
    )


def _item_from_mapping(obj: Mapping[str, Any]) -> pb.Item:
    unknown = set(obj) - _ITEM_KEYS
    if unknown:
        raise ValueError(f"unknown item keys {sorted(map(str, unknown))}; allowed: {sorted(_ITEM_KEYS)}")
    has_text, has_vector = obj.get("text") is not None, obj.get("vector") is not None
    if has_text == has_vector:
        raise ValueError("an item dict needs exactly one of 'text' or 'vector'")
    item = pb.Item()
    item_id = obj.get("id")
    if item_id is not None:
        if not isinstance(item_id, str):
            raise TypeError(f"item id must be a str, got {type(item_id).__name__}")
        item.id = item_id
    if has_text:
        text = obj["text"]
        if not isinstance(text, str):
            raise TypeError(f"item text must be a str, got {type(text).__name__}")
        item.text = text
    else:
        item.vector.CopyFrom(make_vector(obj["vector"]))
    metadata = obj.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError(f"item metadata must be a dict, got {type(metadata).__name__}")
        try:
            item.metadata.update(metadata)
        except (TypeError, ValueError) as e:
            raise TypeError(f"item metadata is not JSON-like: {e}") from e
    return item


def iter_items(items: Iterable[ItemLike], start: int = 0) -> Iterator[pb.Item]:
    """Converts ``items`` lazily, naming the failing index (counted from ``start``) in errors."""
    if isinstance(items, (str, bytes, Mapping, pb.Item)):
        raise TypeError(f"items must be an iterable of items, not a single {type(items).__name__}")
    for index, obj in enumerate(items, start):
        try:
            yield make_item(obj)
        except (TypeError, ValueError) as e:
            cls = TypeError if isinstance(e, TypeError) else ValueError
            raise cls(f"item {index}: {e}") from e


def make_items(items: Iterable[ItemLike]) -> list[pb.Item]:
    """Converts an iterable of user values with :func:`make_item`.

    Args:
        items: The values to convert.

    Returns:
        The item messages, in order.

    Raises:
        TypeError: a value cannot be converted (the message starts with ``item N:``),
            or ``items`` is a single str/dict/Item rather than an iterable of them.
        ValueError: a dict value is malformed (the message starts with ``item N:``).
    """
    return list(iter_items(items))
