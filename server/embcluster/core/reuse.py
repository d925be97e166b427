"""Re-ingesting an unchanged item reuses its stored vector instead of embedding it again.

Every point of a TEXT or IMAGE_METADATA collection ingested with a caller id keeps, at the top
level of its payload, ``embedded: {"sha256": <hex>, "truncated": <bool>}``: a SHA-256 over
everything its vector depends on — the collection's input kind, embedder fingerprint, metric,
long-text mode (and, when pooling, the server's ``LONG_TEXT_MAX_WINDOWS``), image spec, and the
item's content (its text, or its image metadata as canonical JSON) — and whether the text was
longer than what was embedded. An ingest first reads that field and the vector of the batch's
ids that are already stored (one store read); an item whose hash matches gets the stored vector
and is not embedded (its metadata, label and everything else are written as usual).

A vector and its hash are written together in one upsert, so a matching hash always describes
the stored vector, also when ingests of the same id race. Items without an id get a random point
id and are never looked up. EVENT collections do not reuse vectors: an event's vector comes from
the collection's featurizer, which refits change, and a profile point merges every event of its
entity (their text fields still go through the deduplicating embedding queue).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .records import CollectionRecord, OpenCollection

__all__ = ["EMBEDDED_FIELD", "StoredEmbeddings", "content_hashes", "stored_embeddings", "embedded_payload"]

EMBEDDED_FIELD = "embedded"  # top-level payload key: {"sha256", "truncated"}


def content_hashes(record: CollectionRecord, contents: Sequence[Any | None], max_windows: int) -> list[str | None]:
    """Per item, the hash its stored point keeps (None for an item that is not looked up: no id).

    Args:
        record: The collection (what its vectors depend on besides the content).
        contents: Per item its text or the JSON form of its image metadata; None: no caller id.
        max_windows: The server's ``LONG_TEXT_MAX_WINDOWS`` (pooled vectors depend on it).
    """
    pool = record.settings.long_text_mode == "pool"
    base = hashlib.sha256(json.dumps(
        [record.input_kind, record.embedder_fingerprint, record.metric, record.settings.long_text_mode,
         max_windows if pool else 0, record.image_spec], sort_keys=True, default=str).encode())
    out: list[str | None] = []
    for content in contents:
        if content is None:
            out.append(None)
            continue
        digest = base.copy()
        text = content if isinstance(content, str) else json.dumps(content, sort_keys=True, ensure_ascii=False,
                                                                    default=str)
        digest.update(b"\x00" + text.encode("utf-8", "surrogatepass"))
        out.append(digest.hexdigest())
    return out


@dataclass
class StoredEmbeddings:
    """The items of a batch whose stored point already holds their vector."""

    rows: list[int]  # item positions, ascending
    vectors: np.ndarray  # (len(rows), dim) float32
    truncated: np.ndarray  # bool, per row


def stored_embeddings(coll: OpenCollection, point_ids: Sequence[str], hashes: Sequence[str | None]) -> StoredEmbeddings:
    """The stored vectors of the items whose point exists with the same hash (one store read)."""
    wanted = {pid: h for pid, h in zip(point_ids, hashes) if h is not None}
    found: dict[str, tuple[Any, bool]] = {}
    if wanted:
        for p in coll.store.retrieve(list(wanted), with_vectors=True, with_payload=[EMBEDDED_FIELD]):
            mark = p.payload.get(EMBEDDED_FIELD)
            if isinstance(mark, Mapping) and mark.get("sha256") == wanted[p.id] and p.vector is not None:
                found[p.id] = (p.vector, bool(mark.get("truncated", False)))
    rows = [i for i, (pid, h) in enumerate(zip(point_ids, hashes)) if h is not None and pid in found]
    dim = coll.record.dim
    vectors = (np.asarray([found[point_ids[i]][0] for i in rows], dtype=np.float32) if rows
               else np.zeros((0, dim), dtype=np.float32))
    truncated = np.array([found[point_ids[i]][1] for i in rows], dtype=bool)
    return StoredEmbeddings(rows, vectors.reshape(len(rows), dim), truncated)


def embedded_payload(sha256: str, truncated: bool) -> dict[str, Any]:
    """The payload field a point keeps about its vector."""
    return {"sha256": sha256, "truncated": truncated}
