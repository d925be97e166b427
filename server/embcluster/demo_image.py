"""The image-metadata half of ``embcluster demo --kind image_metadata``: Phosphor icons as image items."""

from __future__ import annotations

from typing import Any

from embcluster_client import make_image_item, make_image_spec, pb

from .data import load_phosphor

__all__ = ["phosphor_demo_items"]


def phosphor_demo_items(n: int | None = None) -> tuple[pb.ImageMetadataSpec, list[pb.Item]]:
    """The demo's spec and items: each icon's title and tags rendered as text; its release version as a number.

    Args:
        n: How many icons (by name order; None = all 1,512).

    Returns:
        The collection spec and the items; each item's metadata carries ``word`` (the icon name)
        and ``category`` (its Figma category), which the demo's cluster table shows.
    """
    spec = make_image_spec(text_fields=["title", "tags"],
                           numeric_attributes=[{"key": "published_in", "low": 1.0, "high": 2.1, "weight": 0.2}])
    rows: list[dict[str, Any]] = load_phosphor()[:n]
    items = [
        make_image_item(r["id"], title=r["title"], tags=r["tags"],
                        attributes={"published_in": r["published_in"], "codepoint": r["codepoint"]},
                        metadata={"word": r["name"], "category": r["figma_category"]})
        for r in rows
    ]
    return spec, items
