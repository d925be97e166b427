"""The content hash that lets an unchanged re-ingest keep its stored vector (core/reuse.py)."""

from __future__ import annotations

from embcluster.core.records import CollectionRecord
from embcluster.core.reuse import content_hashes
from embcluster.schema import CollectionSettings


def _record(**changes: object) -> CollectionRecord:
    base = dict(name="c", input_kind="text", dim=384, metric="cosine", embedder="m", embedder_fingerprint="sha256:1",
                store_source=True, settings=CollectionSettings(), created_at="")
    base.update(changes)
    return CollectionRecord(**base)  # type: ignore[arg-type]


def test_the_content_hash_covers_what_the_vector_depends_on() -> None:
    (h,) = content_hashes(_record(), ["text"], 32)
    assert content_hashes(_record(), ["text", None], 32) == [h, None]
    assert content_hashes(_record(), ["text"], 8) == [h]  # truncate: the window cap does not matter
    different = [
        content_hashes(_record(), ["text "], 32),
        content_hashes(_record(embedder_fingerprint="sha256:2"), ["text"], 32),
        content_hashes(_record(metric="euclid"), ["text"], 32),
        content_hashes(_record(settings=CollectionSettings(long_text="pool")), ["text"], 32),
        content_hashes(_record(input_kind="image_metadata"), ["text"], 32),
    ]
    assert all(d != [h] for d in different)
    pooled = _record(settings=CollectionSettings(long_text="pool"))
    assert content_hashes(pooled, ["text"], 32) != content_hashes(pooled, ["text"], 8)
