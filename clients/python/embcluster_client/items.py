"""Conversion of plain Python values into ``embcluster.v1`` items and vectors."""

from __future__ import annotations

import numpy as np

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, Union

from embcluster.api.v1 import embcluster_pb2 as pb

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "VectorLike",
    "ItemLike",
    "make_vector",
    "make_item",
    "make_items",
    "make_image_metadata",
    "make_image_item",
    "make_image_spec",
    "make_field_value",
    "make_event",
    "make_event_item",
    "make_event_schema",
]

VectorLike: TypeAlias = Union[Sequence[float], "npt.NDArray[Any]"]
"""A sequence of numbers or a 1-D numpy array."""

ItemLike: TypeAlias = Union[str, pb.Item, VectorLike, Mapping[str, Any]]
"""A text, a vector, a ready ``pb.Item`` or a dict with ``id``/``text``/``vector``/``image``/``metadata``."""

_ITEM_KEYS = frozenset({"id", "text", "vector", "image", "event", "metadata"})
_IMAGE_KEYS = frozenset({"title", "caption", "alt_text", "tags", "attributes"})
_NUMERIC_KEYS = frozenset({"key", "low", "high", "log", "weight", "default_value"})


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
    has_image, has_event = obj.get("image") is not None, obj.get("event") is not None
    if has_text + has_vector + has_image + has_event != 1:
        raise ValueError("an item dict needs exactly one of 'text', 'vector', 'image' or 'event'")
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
    elif has_event:
        event = obj["event"]
        item.event.CopyFrom(event if isinstance(event, pb.Event) else make_event(event))
    elif has_image:
        image = obj["image"]
        item.image.CopyFrom(image if isinstance(image, pb.ImageMetadata) else _image_from_mapping(image))
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


def make_image_metadata(
    *,
    title: str = "",
    caption: str = "",
    alt_text: str = "",
    tags: Iterable[str] = (),
    attributes: Mapping[str, Any] | None = None,
) -> pb.ImageMetadata:
    """Builds the ``ImageMetadata`` of one image (no pixels).

    Args:
        title: The image's title.
        caption: Its caption.
        alt_text: Its alternative text.
        tags: Keywords (strings).
        attributes: Free-form JSON-like attributes (camera, colours, dimensions, ...); numbers
            travel as doubles.

    Returns:
        The message.

    Raises:
        TypeError: a field has the wrong type (e.g. a tag that is not a str).
    """
    for name, value in (("title", title), ("caption", caption), ("alt_text", alt_text)):
        if not isinstance(value, str):
            raise TypeError(f"image {name} must be a str, got {type(value).__name__}")
    if isinstance(tags, (str, bytes)):
        raise TypeError("image tags must be an iterable of str, not a single str")
    tag_list = list(tags)
    for j, tag in enumerate(tag_list):
        if not isinstance(tag, str):
            raise TypeError(f"image tags[{j}] must be a str, got {type(tag).__name__}")
    msg = pb.ImageMetadata(title=title, caption=caption, alt_text=alt_text, tags=tag_list)
    if attributes:
        if not isinstance(attributes, Mapping):
            raise TypeError(f"image attributes must be a dict, got {type(attributes).__name__}")
        try:
            msg.attributes.update(attributes)
        except (TypeError, ValueError) as e:
            raise TypeError(f"image attributes are not JSON-like: {e}") from e
    return msg


def _image_from_mapping(obj: Any) -> pb.ImageMetadata:
    if not isinstance(obj, Mapping):
        raise TypeError(f"item image must be a dict or ImageMetadata, got {type(obj).__name__}")
    unknown = set(obj) - _IMAGE_KEYS
    if unknown:
        raise ValueError(f"unknown image keys {sorted(map(str, unknown))}; allowed: {sorted(_IMAGE_KEYS)}")
    return make_image_metadata(**obj)


def make_image_item(
    id: str | None = None,
    *,
    title: str = "",
    caption: str = "",
    alt_text: str = "",
    tags: Iterable[str] = (),
    attributes: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> pb.Item:
    """Builds an IMAGE_METADATA item (see :func:`make_image_metadata`).

    Args:
        id: The caller's id (None = a random id).
        title: The image's title.
        caption: Its caption.
        alt_text: Its alternative text.
        tags: Keywords (strings).
        attributes: Free-form attributes (camera, colours, dimensions, ...).
        metadata: The caller's metadata, stored under payload ``meta``.

    Returns:
        The item message.
    """
    item: dict[str, Any] = {
        "image": make_image_metadata(title=title, caption=caption, alt_text=alt_text, tags=tags,
                                     attributes=attributes),
    }
    if id is not None:
        item["id"] = id
    if metadata is not None:
        item["metadata"] = metadata
    return _item_from_mapping(item)


def make_image_spec(
    *,
    text_fields: Iterable[str] = (),
    text_attributes: Iterable[str] = (),
    numeric_attributes: Iterable[Mapping[str, Any] | pb.NumericAttribute] = (),
) -> pb.ImageMetadataSpec:
    """Builds the ``ImageMetadataSpec`` of an IMAGE_METADATA collection.

    Args:
        text_fields: Any of ``title``, ``caption``, ``alt_text``, ``tags`` in rendering order;
            empty = all four.
        text_attributes: Attribute keys rendered as ``key: value`` text.
        numeric_attributes: Attributes appended as scaled features: dicts with ``key``, ``low``,
            ``high`` and optional ``log`` (bool), ``weight`` (default 1.0) and ``default_value``
            (unset = the attribute is required), or ``pb.NumericAttribute`` messages.

    Returns:
        The spec message (the server validates names and ranges).
    """
    spec = pb.ImageMetadataSpec(text_fields=list(text_fields), text_attributes=list(text_attributes))
    for j, attr in enumerate(numeric_attributes):
        if isinstance(attr, pb.NumericAttribute):
            spec.numeric_attributes.append(attr)
            continue
        if not isinstance(attr, Mapping):
            raise TypeError(f"numeric_attributes[{j}] must be a dict or NumericAttribute, got {type(attr).__name__}")
        unknown = set(attr) - _NUMERIC_KEYS
        if unknown:
            raise ValueError(f"numeric_attributes[{j}]: unknown keys {sorted(map(str, unknown))}; "
                             f"allowed: {sorted(_NUMERIC_KEYS)}")
        spec.numeric_attributes.append(pb.NumericAttribute(**{k: v for k, v in attr.items() if v is not None}))
    return spec


_FIELD_TYPES = {"numeric": pb.EVENT_FIELD_TYPE_NUMERIC, "categorical": pb.EVENT_FIELD_TYPE_CATEGORICAL,
                "timestamp": pb.EVENT_FIELD_TYPE_TIMESTAMP, "text": pb.EVENT_FIELD_TYPE_TEXT}
_EVENT_FIELD_KEYS = frozenset({"name", "type", "weight", "required", "log", "clip", "buckets"})


def make_field_value(value: Any) -> pb.FieldValue:
    """Converts one event value: a number, str, bool or ``datetime`` (a naive one is taken as UTC).

    Raises:
        TypeError: the value has another type.
    """
    import datetime as _dt

    if isinstance(value, bool):
        return pb.FieldValue(bool_value=value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return pb.FieldValue(number_value=float(value))
    if isinstance(value, str):
        return pb.FieldValue(string_value=value)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        fv = pb.FieldValue()
        fv.timestamp_value.FromDatetime(value)
        return fv
    raise TypeError(f"event values must be numbers, str, bool or datetime, got {type(value).__name__}")


def make_event(fields: Mapping[str, Any]) -> pb.Event:
    """Builds an ``Event`` from ``{field: value}`` (None values are left out).

    Args:
        fields: Values by field name (see :func:`make_field_value`); timestamps may also be RFC 3339
            strings or epoch seconds, the collection's schema says how each field is read.

    Raises:
        TypeError: ``fields`` is not a dict, or a value has an unsupported type (named).
    """
    if not isinstance(fields, Mapping):
        raise TypeError(f"an event must be a dict of field values, got {type(fields).__name__}")
    event = pb.Event()
    for name, value in fields.items():
        if value is None:
            continue
        try:
            event.fields[str(name)].CopyFrom(make_field_value(value))
        except TypeError as e:
            raise TypeError(f"event field {name!r}: {e}") from e
    return event


def make_event_item(fields: Mapping[str, Any], *, id: str = "", metadata: Mapping[str, Any] | None = None) -> pb.Item:
    """Builds an EVENT item (see :func:`make_event`)."""
    return _item_from_mapping({"id": id, "event": fields, "metadata": metadata})


def make_event_schema(
    fields: Iterable[Mapping[str, Any]], *, entity_key: str = "", window_days: float = 0.0,
    max_profile_events: int = 0,
) -> pb.EventSchema:
    """Builds an ``EventSchema``.

    Args:
        fields: One dict per field: ``name``, ``type`` (``numeric``, ``categorical``, ``timestamp``
            or ``text``) and optional ``weight``, ``required``, ``log``, ``clip``, ``buckets``.
        entity_key: A categorical field: aggregate events into one profile point per value.
        window_days: Profiles keep the events of the last N days before the newest (0 = all).
        max_profile_events: Profiles keep at most this many events (0 = the server default, 1000).

    Raises:
        ValueError: an unknown key or field type.
    """
    out = pb.EventSchema(entity_key=entity_key, window_days=window_days, max_profile_events=max_profile_events)
    for j, f in enumerate(fields):
        unknown = set(f) - _EVENT_FIELD_KEYS
        if unknown:
            raise ValueError(f"event field {j}: unknown keys {sorted(unknown)}; allowed: {sorted(_EVENT_FIELD_KEYS)}")
        if f.get("type") not in _FIELD_TYPES:
            raise ValueError(f"event field {j}: type must be one of {sorted(_FIELD_TYPES)}, got {f.get('type')!r}")
        out.fields.add(name=f["name"], type=_FIELD_TYPES[f["type"]], weight=float(f.get("weight", 0.0)),
                       required=bool(f.get("required", False)), log=bool(f.get("log", False)),
                       clip=float(f.get("clip", 0.0)), buckets=int(f.get("buckets", 0)))
    return out
