"""IMAGE_METADATA end to end over gRPC on real data: Phosphor icon metadata (name, tags, category).

The icons' own Figma categories are the labels; the clustering must agree with them far better
than the same clustering agrees with shuffled labels (the chance level, computed here).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import grpc
import numpy as np
import pytest
from embcluster_client import make_image_item, make_image_spec, pb
from sklearn.metrics import normalized_mutual_info_score

from embcluster.data import load_phosphor
from embcluster.embed.image import render_image_metadata
from embcluster.embed.registry import EmbedderRegistry
from embcluster.pipeline import EmbclusterService
from embcluster.schema import CollectionSpec, ImageMetadataInput, ImageMetadataSpec, ItemInput, NumericAttribute

CATEGORIES = 6
PER_CATEGORY = 40


def _icons() -> list[dict[str, Any]]:
    """A seeded sample: PER_CATEGORY icons from each of the first CATEGORIES categories (by name) with >= 60."""
    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in load_phosphor():
        by_cat[row["figma_category"]].append(row)
    cats = sorted(c for c, rows in by_cat.items() if len(rows) >= 60)[:CATEGORIES]
    rng = np.random.default_rng(7)
    out = []
    for c in cats:
        rows = by_cat[c]
        out.extend(rows[i] for i in sorted(rng.choice(len(rows), PER_CATEGORY, replace=False)))
    return out


ICONS = _icons()
SPEC = make_image_spec(
    text_fields=["title", "tags"],
    numeric_attributes=[{"key": "published_in", "low": 1.0, "high": 2.1, "weight": 0.2}],
)


def _item(row: dict[str, Any]) -> pb.Item:
    return make_image_item(row["id"], title=row["title"], tags=row["tags"],
                           attributes={"published_in": row["published_in"], "codepoint": row["codepoint"]},
                           metadata={"category": row["figma_category"]})


def test_phosphor_icons_cluster_by_category_through_every_rpc(running) -> None:
    c = running.client
    col = c.create_collection("icons", input_kind="image_metadata", image_metadata=SPEC, seed=0, contamination=0.02)
    assert col.input_kind == pb.INPUT_KIND_IMAGE_METADATA and col.dim == 384 + 1
    assert list(col.image_metadata.text_fields) == ["title", "tags"]
    assert col.image_metadata.numeric_attributes[0].weight == pytest.approx(0.2)

    results = c.ingest_many("icons", [_item(r) for r in ICONS], batch_size=100)
    assert len(results) == len(ICONS)
    run = c.cluster("icons", k=CATEGORIES)
    assert run.k == CATEGORIES

    cluster_of: dict[str, int] = {}
    for cl in c.list_clusters("icons").clusters:
        for p in c.iter_cluster_members("icons", cl.cluster_id):
            cluster_of[p.external_id] = p.assignment.cluster_id
    assert len(cluster_of) == len(ICONS)
    truth = [r["figma_category"] for r in ICONS]
    found = [cluster_of[r["id"]] for r in ICONS]
    score = normalized_mutual_info_score(truth, found)
    rng = np.random.default_rng(0)
    chance = max(normalized_mutual_info_score(rng.permutation(truth), found) for _ in range(20))
    assert score > max(3 * chance, chance + 0.2), (score, chance)

    # GetPoint returns the stored source: the typed metadata and its rendering as `text`.
    row = ICONS[3]
    p = c.get_point("icons", id=row["id"], with_vector=True)
    assert p.image.title == row["title"] and list(p.image.tags) == row["tags"]
    assert p.image.attributes["published_in"] == pytest.approx(row["published_in"])
    assert p.text == f"{row['title']}. tags: {', '.join(row['tags'])}."
    assert len(p.vector.values) == 385 and p.metadata["category"] == row["figma_category"]

    # Classify and search by image metadata: an icon's own metadata finds that icon.
    (a,) = c.classify("icons", [_item(row)])
    assert a.cluster_id == p.assignment.cluster_id and a.model_version == run.model_version
    hits = c.search("icons", {"title": row["title"], "tags": row["tags"], "attributes": {"published_in":
                                                                                        row["published_in"]}}, limit=3)
    assert hits[0].point.external_id == row["id"] and hits[0].score == pytest.approx(1.0, abs=1e-4)
    text_hits = c.search("icons", p.text, limit=3, cluster_id=p.assignment.cluster_id)
    assert text_hits[0].point.external_id == row["id"]

    # Anomalies and their explanation carry the image source too.
    flagged = list(c.iter_anomalies("icons"))
    assert flagged and all(q.image.title for q in flagged)
    why = c.explain_point("icons", id=flagged[0].external_id)
    assert why.is_anomaly and why.point.image.title == flagged[0].image.title

    # Bad input names the item and the field; nothing of that batch is stored.
    bad = make_image_item("bad", title="x", attributes={"published_in": "soon"})
    with pytest.raises(grpc.RpcError) as e:
        c.ingest("icons", [_item(ICONS[0]), bad])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "item 1" in e.value.details() and "'published_in' must be a number" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        c.ingest("icons", [make_image_item("empty", alt_text="only alt text", attributes={"published_in": 1.0})])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "item 0" in e.value.details()
    assert "none of the collection's chosen fields (title, tags)" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        c.ingest("icons", ["a plain text"])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "takes image metadata" in e.value.details()

    # A feed: each batch acknowledged in order, a bad one rejected without ending the stream.
    acks = list(c.ingest_stream("icons", [[bad], [make_image_item("new-1", title="umbrella", tags=["rain"],
                                                                  attributes={"published_in": 2.0})]]))
    assert acks[0].error_code == "INVALID_ARGUMENT" and "item 0" in acks[0].error_message
    assert not acks[1].error_code and acks[1].results[0].assignment.model_version == run.model_version
    assert c.get_collection("icons").point_count == len(ICONS) + 1


def test_bad_spec_is_invalid_argument(running) -> None:
    with pytest.raises(grpc.RpcError) as e:
        running.client.create_collection("im", input_kind="image_metadata",
                                         image_metadata=make_image_spec(text_fields=["title", "colour"]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'colour'" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        running.client.create_collection("tx", input_kind="text", image_metadata=make_image_spec())
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_non_finite_attributes_are_invalid_argument_naming_item_and_key(running) -> None:  # type: ignore[no-untyped-def]
    c = running.client
    c.create_collection("im", input_kind="image_metadata", image_metadata=make_image_spec())
    bad = [make_image_item("a", title="a"), make_image_item("b", title="b", attributes={"width": 1, "iso": math.inf})]
    with pytest.raises(grpc.RpcError) as e:
        c.ingest("im", bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "item 1: attributes: 'iso' is not a finite number" in e.value.details()
    assert c.get_collection("im").point_count == 0
    with pytest.raises(grpc.RpcError) as e:
        c.search("im", {"title": "a", "attributes": {"w": math.nan}})
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'w'" in e.value.details()


def test_spec_survives_a_restart(settings, text_embedder) -> None:  # type: ignore[no-untyped-def]
    registry = EmbedderRegistry(settings)
    registry.add(text_embedder)
    spec = ImageMetadataSpec(text_fields=["caption"], text_attributes=["camera"],
                             numeric_attributes=[NumericAttribute(key="width", low=0, high=8000, weight=0.5)])
    image = ImageMetadataInput(caption="A lighthouse on a cliff", attributes={"camera": "X100", "width": 4000.0})
    svc = EmbclusterService(settings, embedders=registry)
    svc.open()
    svc.create_collection(CollectionSpec(name="photos", input_kind="image_metadata", image_spec=spec))
    svc.ingest("photos", [ItemInput(id="a", image=image)])
    svc.close()

    svc = EmbclusterService(settings, embedders=registry)
    svc.open()
    try:
        info = svc.get_collection("photos")
        assert info.image_spec == spec and info.dim == 385
        svc.ingest("photos", [ItemInput(id="b", image=ImageMetadataInput(caption="A red barn",
                                                                         attributes={"width": 800.0}))])
        a = svc.get_point("photos", id="a", with_vector=True)
        assert a.text == render_image_metadata(image, spec) == "A lighthouse on a cliff. camera: X100."
        assert a.image == image
        # The numeric tail: 0.5 * 4000 / 8000 before the cosine normalisation of the whole vector.
        vec = np.asarray(a.vector)
        assert vec[-1] / np.linalg.norm(vec[:-1]) == pytest.approx(0.25, rel=1e-4)
        with pytest.raises(Exception, match="numeric attribute 'width' is missing"):
            svc.ingest("photos", [ItemInput(id="c", image=ImageMetadataInput(caption="no width"))])
    finally:
        svc.close()


def test_async_client_creates_ingests_and_searches_images(running) -> None:
    import asyncio

    from embcluster_client import AsyncEmbclusterClient

    rows = ICONS[:12]

    async def main() -> tuple[pb.Collection, list[pb.SearchHit], pb.Point]:
        async with AsyncEmbclusterClient(running.server.address) as ac:
            col = await ac.create_collection("aio-icons", input_kind="image_metadata",
                                             image_metadata=make_image_spec(text_fields=["tags", "title"]))
            await ac.ingest("aio-icons", [_item(r) for r in rows])
            hits = await ac.search("aio-icons", pb.ImageMetadata(title=rows[5]["title"], tags=rows[5]["tags"]),
                                   limit=2)
            return col, hits, await ac.get_point("aio-icons", id=rows[5]["id"])

    col, hits, point = asyncio.run(main())
    assert col.dim == 384 and list(col.image_metadata.text_fields) == ["tags", "title"]
    assert hits[0].point.external_id == rows[5]["id"]
    assert point.text.startswith("tags: ") and point.image.title == rows[5]["title"]
