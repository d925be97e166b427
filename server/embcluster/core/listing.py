"""ListPoints: every point of a collection, paged, each exactly once — also while points are ingested.

The order (docs/architecture.md, "Listing every point"):

1. points without an ingest sequence number (stored before sequence numbers existed, or an
   attached collection's points, which the service never writes) in point-id order;
2. then every other point by its ingest sequence number (``SEQ_FIELD``), which a point gets
   when it is first stored and keeps when it is replaced, and which is higher for every new
   point than for any point stored before it.

A page is read under the collection lock, so no ingest batch is half written while it is read.
The page token carries the phase and where the last page stopped (the store's next point id, or
the last sequence number returned) plus the collection and the filters it was made for, as
base64url JSON: opaque to callers, checked when it comes back.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgument, shown
from ..store.base import Condition, FieldEquals, FieldMissing, FieldRange, PointFilter, StoredPoint
from .records import SEQ_FIELD, OpenCollection

__all__ = ["ListFilter", "Cursor", "encode_token", "decode_token", "read_page"]

TOKEN_VERSION = 1


@dataclass(frozen=True)
class ListFilter:
    """What a ListPoints call keeps (None: no condition on that field)."""

    cluster_id: int | None = None
    anomaly: bool | None = None
    model_version: int | None = None

    def conditions(self) -> tuple[Condition, ...]:
        """The filter on the stored fields."""
        out: list[Condition] = []
        if self.cluster_id is not None:
            out.append(FieldEquals("cluster_id", int(self.cluster_id)))
        if self.anomaly is not None:
            out.append(FieldEquals("is_anomaly", bool(self.anomaly)))
        if self.model_version is not None:
            out.append(FieldEquals("model_version", int(self.model_version)))
        return tuple(out)

    def as_json(self) -> list[Any]:
        return [self.cluster_id, self.anomaly, self.model_version]


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: ``phase`` "id" (``after``: the store's next point id, None at the
    start) or "seq" (``after``: the last sequence number returned)."""

    phase: str = "id"
    after: str | int | None = None


def encode_token(collection: str, flt: ListFilter, cursor: Cursor | None) -> str:
    """The next page's token ("" when there is none)."""
    if cursor is None:
        return ""
    raw = json.dumps({"v": TOKEN_VERSION, "c": collection, "f": flt.as_json(), "p": cursor.phase, "a": cursor.after},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, collection: str, flt: ListFilter) -> Cursor:
    """The cursor a token carries; INVALID_ARGUMENT (naming the token) if it is not one of this listing's."""
    if not token:
        return Cursor()
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        data = None
    ok = (isinstance(data, dict) and data.get("v") == TOKEN_VERSION and "c" in data and "f" in data
          and (data.get("p") == "id" and (data.get("a") is None or isinstance(data.get("a"), str))
               or data.get("p") == "seq" and type(data.get("a")) is int))
    if not ok:
        raise InvalidArgument(f"page_token {shown(token)} is not a ListPoints page token: pass the "
                              "next_page_token of the previous page unchanged")
    if data["c"] != collection or data["f"] != flt.as_json():
        raise InvalidArgument(f"page_token {shown(token)} was made for collection {shown(data['c'])} with filters "
                              f"{data['f']}, not for {shown(collection)} with {flt.as_json()}: keep the collection "
                              "and the filters while paging")
    return Cursor(data["p"], data["a"])


def read_page(coll: OpenCollection, flt: ListFilter, size: int, cursor: Cursor) -> tuple[list[StoredPoint], Cursor | None]:
    """Up to ``size`` stored points from ``cursor`` on, and the cursor after them (None: the last page).

    Reads under the collection lock: every ingest batch is either wholly visible or not at all.
    """
    must = flt.conditions()
    with coll.lock:
        coll.check_open()
        sequenced = not coll.record.external_collection  # an attached collection's points are never ours
        if sequenced:
            coll.ensure_sequence()
        out: list[StoredPoint] = []
        if cursor.phase == "id":
            if not sequenced or coll.unsequenced:
                phase = PointFilter(must=(*must, FieldMissing(SEQ_FIELD)) if sequenced else must)
                offset = cursor.after if isinstance(cursor.after, str) else None
                out, nxt = coll.store.scroll(limit=size, offset=offset, flt=phase)
                if nxt is not None:
                    return out, Cursor("id", nxt)
                if not sequenced:
                    return out, None
            cursor = Cursor("seq", 0)
            if len(out) == size:
                return out, cursor
        rest = size - len(out)
        after = int(cursor.after) if cursor.after is not None else 0
        more = coll.store.scroll_by(SEQ_FIELD, limit=rest, flt=PointFilter(must=(*must, FieldRange(SEQ_FIELD, gt=after))))
    out.extend(more)
    if len(more) < rest:
        return out, None
    return out, Cursor("seq", int(more[-1].payload[SEQ_FIELD]))
