"""IMAGE_METADATA: the text rendering, numeric features, spec and item validation, client builders."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embcluster.config import Settings
from embcluster.embed.image import (
    ImageMetadataEmbedder,
    format_attribute_value,
    numeric_features,
    render_image_metadata,
    scale_numeric,
)
from embcluster.errors import InvalidArgument
from embcluster.schema import CollectionSpec, ImageMetadataInput, ImageMetadataSpec, ItemInput, NumericAttribute
from embcluster.validation import check_image_spec, check_spec
from embcluster.validation_items import check_items, check_query

SETTINGS = Settings(data_dir="/tmp/unused-embcluster-test")


def _image(**kw: object) -> ImageMetadataInput:
    return ImageMetadataInput(**kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- rendering


def test_rendering_is_documented_format_in_spec_order() -> None:
    image = _image(title="Red barn", caption="A barn at dusk", alt_text="barn", tags=["farm", " rural  life "],
                   attributes={"colour": "red", "camera": "X100", "iso": 400.0, "flash": False, "exposure": 0.0125})
    spec = ImageMetadataSpec(text_fields=["title", "caption", "alt_text", "tags"],
                             text_attributes=["colour", "camera", "iso", "flash", "exposure"])
    assert render_image_metadata(image, spec) == (
        "Red barn. A barn at dusk. barn. tags: farm, rural life. "
        "colour: red; camera: X100; iso: 400; flash: no; exposure: 0.0125."
    )
    reordered = ImageMetadataSpec(text_fields=["tags", "title"], text_attributes=["camera"])
    assert render_image_metadata(image, reordered) == "tags: farm, rural life. Red barn. camera: X100."


def test_rendering_skips_empty_fields_and_keeps_final_punctuation() -> None:
    image = _image(title="Where is it?", caption="  ", tags=["", "sea"], attributes={"colours": ["blue", "white"],
                                                                                    "lens": None})
    spec = ImageMetadataSpec(text_attributes=["colours", "lens", "absent_key", "shot_on"])
    assert render_image_metadata(image, spec) == "Where is it? tags: sea. colours: blue, white."
    assert render_image_metadata(_image(), ImageMetadataSpec()) == ""


def test_rendering_is_deterministic_and_independent_of_attribute_order() -> None:
    a = _image(title="t", attributes={"a": 1.0, "b": "x"})
    b = _image(title="t", attributes={"b": "x", "a": 1.0})
    spec = ImageMetadataSpec(text_fields=["title"], text_attributes=["b", "a"])
    assert render_image_metadata(a, spec) == render_image_metadata(b, spec) == "t. b: x; a: 1."


@pytest.mark.parametrize("value, shown", [
    (True, "yes"), (4000.0, "4000"), (3, "3"), (2.5, "2.5"), (1 / 3, "0.333333"), (1e20, "1e+20"),
    (["a", 1.0, None, True], "a, 1, yes"), ("  two   words ", "two words"),
])
def test_attribute_values_format(value: object, shown: str) -> None:
    assert format_attribute_value(value) == shown


# ---------------------------------------------------------------- numeric features


def test_numeric_scaling_linear_log_and_weight() -> None:
    lin = NumericAttribute(key="w", low=0, high=1000, weight=2.0)
    assert scale_numeric(500, lin) == pytest.approx(1.0)
    assert scale_numeric(2000, lin) == pytest.approx(4.0)  # not clipped: unusual stays unusual
    log = NumericAttribute(key="bytes", low=0, high=math.expm1(10), log=True)
    assert scale_numeric(math.expm1(5), log) == pytest.approx(0.5)


def test_numeric_features_defaults_and_neutral_query_value() -> None:
    spec = ImageMetadataSpec(numeric_attributes=[
        NumericAttribute(key="w", low=0, high=100), NumericAttribute(key="h", low=0, high=100, default_value=25)])
    feats = numeric_features([_image(attributes={"w": 10.0, "h": 50.0}), _image(attributes={"w": 100.0}), None], spec)
    np.testing.assert_allclose(feats, [[0.1, 0.5], [1.0, 0.25], [0.5, 0.25]])


class _FakeText:
    """A deterministic stand-in text model: the numeric tail is what is under test here."""

    name = "fake"
    fingerprint = "sha256:fake"
    dim = 4

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 4), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, len(t) % 4] = 1.0
        return out


def test_embedder_appends_one_scaled_feature_per_numeric_attribute() -> None:
    spec = ImageMetadataSpec(text_fields=["title"], numeric_attributes=[NumericAttribute(key="w", low=0, high=10)])
    emb = ImageMetadataEmbedder(_FakeText(), spec)
    assert (emb.dim, emb.name, emb.fingerprint) == (5, "fake", "sha256:fake")
    vecs = emb.embed([_image(title="abc", attributes={"w": 5.0}), _image(title="abcd", attributes={"w": 10.0})])
    assert vecs.dtype == np.float32 and vecs.shape == (2, 5)
    np.testing.assert_allclose(vecs[:, 4], [0.5, 1.0])
    assert emb.render([_image(title="abc")]) == ["abc."]
    np.testing.assert_allclose(emb.embed_texts(["q"])[0, 4], 0.5)


# ---------------------------------------------------------------- validation


def _check(images: list[ImageMetadataInput], spec: ImageMetadataSpec | None = None) -> None:
    check_items([ItemInput(image=im) for im in images], kind="image_metadata", dim=385, settings=SETTINGS,
                cosine=True, image_spec=spec or ImageMetadataSpec())


def test_valid_items_pass() -> None:
    spec = ImageMetadataSpec(text_attributes=["camera"], numeric_attributes=[NumericAttribute(key="w", low=0, high=9)])
    _check([_image(title="a", attributes={"w": 3.0, "camera": "X", "nested": {"ok": [1, 2]}})], spec)


@pytest.mark.parametrize("image, spec, expected", [
    (_image(title="a", tags=["ok", 3]), None, r"item 1: image tags\[1\] must be a string, got int 3"),
    (_image(title=5), None, "item 1: image title must be a string"),
    (_image(tags="sea"), None, "item 1: image tags must be a list of strings"),
    (_image(alt_text="only alt"), ImageMetadataSpec(text_fields=["title", "tags"]),
     "item 1: image metadata has none of the collection's chosen fields \\(title, tags\\)"),
    (_image(title="a", attributes={"w": "wide"}),
     ImageMetadataSpec(numeric_attributes=[NumericAttribute(key="w", low=0, high=1)]),
     "item 1: attribute 'w' must be a number, got str 'wide'"),
    (_image(title="a", attributes={"w": True}),
     ImageMetadataSpec(numeric_attributes=[NumericAttribute(key="w", low=0, high=1)]),
     "item 1: attribute 'w' must be a number, got bool True"),
    (_image(title="a", attributes={"w": float("nan")}),
     ImageMetadataSpec(numeric_attributes=[NumericAttribute(key="w", low=0, high=1)]),
     "item 1: image attributes must be JSON with finite numbers"),
    (_image(title="a"), ImageMetadataSpec(numeric_attributes=[NumericAttribute(key="w", low=0, high=1)]),
     "item 1: numeric attribute 'w' is missing"),
    (_image(title="a", attributes={"size": -1.0}),
     ImageMetadataSpec(numeric_attributes=[NumericAttribute(key="size", low=0, high=1e6, log=True)]),
     "item 1: attribute 'size' is -1.0; log scaling needs values >= 0"),
    (_image(title="a", attributes={"camera": {"make": "X"}}), ImageMetadataSpec(text_attributes=["camera"]),
     "item 1: attribute 'camera' is rendered as text and must be a string, number, boolean or a list"),
    (_image(title="x" * 1_000_000), None, "item 1: image metadata renders to 1000001 characters"),
])
def test_bad_items_name_item_and_field(image: ImageMetadataInput, spec: ImageMetadataSpec | None,
                                       expected: str) -> None:
    with pytest.raises(InvalidArgument, match=expected):
        _check([_image(title="fine", attributes={"w": 0.5, "size": 1.0}), image], spec)


def test_kind_mismatches_are_named() -> None:
    with pytest.raises(InvalidArgument, match="item 0: this collection takes image metadata, got text"):
        check_items([ItemInput(text="hi")], kind="image_metadata", dim=384, settings=SETTINGS)
    with pytest.raises(InvalidArgument, match="item 0: image metadata is missing"):
        check_items([ItemInput()], kind="image_metadata", dim=384, settings=SETTINGS)
    with pytest.raises(InvalidArgument, match="item 0: this collection takes text, got image metadata"):
        check_items([ItemInput(image=_image(title="a"))], kind="text", dim=384, settings=SETTINGS)
    with pytest.raises(InvalidArgument, match="item 0: this collection takes vectors, got image metadata"):
        check_items([ItemInput(image=_image(title="a"))], kind="vector", dim=3, settings=SETTINGS)


def test_queries_take_image_or_text() -> None:
    spec = ImageMetadataSpec()
    assert check_query("red barn", None, kind="image_metadata", dim=384, settings=SETTINGS, cosine=True,
                       image_spec=spec) is None
    check_query(None, None, kind="image_metadata", dim=384, settings=SETTINGS, cosine=True,
                image=_image(title="barn"), image_spec=spec)
    with pytest.raises(InvalidArgument, match="query: text is empty"):
        check_query("  ", None, kind="image_metadata", dim=384, settings=SETTINGS, cosine=True, image_spec=spec)
    with pytest.raises(InvalidArgument, match="image metadata has none of the collection's chosen fields"):
        check_query(None, None, kind="image_metadata", dim=384, settings=SETTINGS, cosine=True,
                    image=_image(), image_spec=spec)


@pytest.mark.parametrize("spec, expected", [
    (ImageMetadataSpec(text_fields=["title", "colour"]), "unknown field 'colour'; choose from title, caption"),
    (ImageMetadataSpec(text_fields=["title", "title"]), "repeats a field"),
    (ImageMetadataSpec(text_fields=[], text_attributes=[]), "choose at least one text field or text attribute"),
    (ImageMetadataSpec(numeric_attributes=[NumericAttribute(key="w", low=5, high=5)]),
     r"numeric_attributes\[0\] \('w'\): high must be > low, got low=5, high=5"),
    (ImageMetadataSpec(numeric_attributes=[NumericAttribute(key="w", low=0, high=1, weight=0)]),
     "weight must be in \\(0, 100\\], got 0"),
    (ImageMetadataSpec(numeric_attributes=[NumericAttribute(key="w", low=-1, high=1, log=True)]),
     "log scaling needs low >= 0, got -1"),
    (ImageMetadataSpec(numeric_attributes=[NumericAttribute(key="w", low=0, high=math.inf)]),
     "high must be finite, got inf"),
    (ImageMetadataSpec(numeric_attributes=[NumericAttribute(key="w", low=0, high=1),
                                           NumericAttribute(key="w", low=0, high=2)]), "repeats a key"),
])
def test_bad_specs_are_rejected(spec: ImageMetadataSpec, expected: str) -> None:
    with pytest.raises(InvalidArgument, match=expected):
        check_image_spec(spec)


def test_spec_only_for_image_collections() -> None:
    with pytest.raises(InvalidArgument, match="needs input_kind image_metadata, got 'text'"):
        check_spec(CollectionSpec(name="c", input_kind="text", image_spec=ImageMetadataSpec()))
    check_spec(CollectionSpec(name="c", input_kind="image_metadata", image_spec=ImageMetadataSpec()))


def test_spec_json_round_trip() -> None:
    spec = ImageMetadataSpec(text_fields=["tags"], text_attributes=["camera"],
                             numeric_attributes=[NumericAttribute(key="w", low=0, high=1, log=True, weight=0.5,
                                                                  default_value=0.2)])
    assert ImageMetadataSpec.from_json(spec.to_json()) == spec
    image = _image(title="t", tags=["a"], attributes={"w": 1.0})
    assert ImageMetadataInput.from_json(image.to_json()) == image


# ---------------------------------------------------------------- client builders


def test_client_builders() -> None:
    from embcluster_client import make_image_item, make_image_spec, make_item, pb

    item = make_image_item("img-1", title="Red barn", tags=["farm"], attributes={"w": 4000}, metadata={"src": "x"})
    assert item.WhichOneof("content") == "image" and item.id == "img-1"
    assert list(item.image.tags) == ["farm"] and item.image.attributes["w"] == 4000
    assert make_item({"image": {"title": "t", "tags": ["a"]}}).image.title == "t"
    with pytest.raises(TypeError, match=r"tags\[1\] must be a str"):
        make_image_item(title="t", tags=["a", 2])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="an item dict needs exactly one of 'text', 'vector', 'image'"):
        make_item({"text": "a", "image": {"title": "t"}})
    with pytest.raises(ValueError, match="unknown image keys"):
        make_item({"image": {"titel": "t"}})
    spec = make_image_spec(text_fields=["title", "tags"],
                           numeric_attributes=[{"key": "w", "low": 0, "high": 10, "weight": 0.5}])
    assert isinstance(spec, pb.ImageMetadataSpec)
    assert spec.numeric_attributes[0].HasField("weight") and not spec.numeric_attributes[0].HasField("default_value")


def test_proto_conversions() -> None:
    from embcluster.api import convert as cv
    from embcluster.api.v1 import embcluster_pb2 as pb

    assert cv.image_spec_from_pb(pb.ImageMetadataSpec()) == ImageMetadataSpec()  # empty = the default spec
    spec = cv.image_spec_from_pb(pb.ImageMetadataSpec(
        text_fields=["tags"], numeric_attributes=[pb.NumericAttribute(key="w", low=0, high=2)]))
    assert spec.numeric_attributes == [NumericAttribute(key="w", low=0, high=2, weight=1.0, default_value=None)]
    assert cv.image_spec_from_pb(cv.image_spec_to_pb(spec)) == spec
    image = ImageMetadataInput(title="t", caption="c", alt_text="a", tags=["x", "y"],
                               attributes={"w": 3.0, "colours": ["red"], "flash": True})
    assert cv.image_from_pb(cv.image_to_pb(image)) == image
    (item,) = cv.items_from_pb([pb.Item(id="i", image=cv.image_to_pb(image))])
    assert item.image == image and item.text is None and item.vector is None
