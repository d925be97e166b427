"""Unit tests of boundary validation (embcluster.validation): every error names what is wrong."""

from __future__ import annotations

import math
import re

import pytest

from embcluster.config import Settings
from embcluster.errors import ErrorCode, FailedPrecondition, InvalidArgument
from embcluster.schema import CollectionSettings, CollectionSpec, ItemInput, RunRequest
from embcluster.validation_reads import check_page_size
from embcluster.validation import (
    MAX_K_RANGE,
    check_name,
    check_run_request,
    check_settings,
    check_spec,
)
from embcluster.validation_items import check_items, check_query


@pytest.fixture
def cfg(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, max_batch_items=5, max_text_chars=50, max_metadata_bytes=100)


GOOD_V = [1.0, 2.0, 3.0]


def vector_items(bad: ItemInput, at: int = 2) -> list[ItemInput]:
    items = [ItemInput(id=f"v{i}", vector=list(GOOD_V)) for i in range(4)]
    items[at] = bad
    return items


def text_items(bad: ItemInput, at: int = 2) -> list[ItemInput]:
    items = [ItemInput(id=f"t{i}", text=f"hello {i}") for i in range(4)]
    items[at] = bad
    return items


def check_vec(items, cfg, *, cosine=False):
    check_items(items, kind="vector", dim=3, settings=cfg, cosine=cosine)


def check_text(items, cfg):
    check_items(items, kind="text", dim=0, settings=cfg)


# --------------------------------------------------------------------------- check_items


def test_valid_batches_pass(cfg) -> None:
    check_vec([ItemInput(id=f"v{i}", vector=list(GOOD_V), metadata={"a": i}) for i in range(5)], cfg, cosine=True)
    check_text([ItemInput(id=f"t{i}", text="x" * 50) for i in range(5)], cfg)


def test_empty_batch(cfg) -> None:
    with pytest.raises(InvalidArgument, match="no items"):
        check_vec([], cfg)


def test_too_many_items_names_count_and_limit(cfg) -> None:
    with pytest.raises(InvalidArgument) as ei:
        check_vec([ItemInput(vector=list(GOOD_V)) for _ in range(6)], cfg)
    assert "6" in ei.value.message and "5" in ei.value.message
    assert ei.value.code is ErrorCode.INVALID_ARGUMENT


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_or_whitespace_text(cfg, text) -> None:
    with pytest.raises(InvalidArgument, match=r"^item 2: text is empty"):
        check_text(text_items(ItemInput(id="x", text=text)), cfg)


def test_missing_text(cfg) -> None:
    with pytest.raises(InvalidArgument, match=r"^item 1: "):
        check_text(text_items(ItemInput(id="x"), at=1), cfg)


def test_text_over_max_chars(cfg) -> None:
    with pytest.raises(InvalidArgument, match=r"^item 3: text is 51 characters; the limit is 50"):
        check_text(text_items(ItemInput(id="x", text="y" * 51), at=3), cfg)


def test_text_collection_rejects_vector_and_vice_versa(cfg) -> None:
    with pytest.raises(InvalidArgument, match=r"^item 2: .*takes text"):
        check_text(text_items(ItemInput(id="x", vector=list(GOOD_V))), cfg)
    with pytest.raises(InvalidArgument, match=r"^item 2: .*takes vectors"):
        check_vec(vector_items(ItemInput(id="x", text="hi")), cfg)
    with pytest.raises(InvalidArgument, match=r"^item 2: vector is missing"):
        check_vec(vector_items(ItemInput(id="x")), cfg)


@pytest.mark.parametrize("bad", [[1.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
def test_wrong_dimension(cfg, bad) -> None:
    with pytest.raises(InvalidArgument) as ei:
        check_vec(vector_items(ItemInput(id="x", vector=bad)), cfg)
    assert ei.value.message.startswith("item 2:")
    assert f"dimension {len(bad)}" in ei.value.message and "expected 3" in ei.value.message


def test_nested_vector_is_wrong_dimension(cfg) -> None:
    with pytest.raises(InvalidArgument, match=r"^item 2: vector has dimension"):
        check_vec(vector_items(ItemInput(id="x", vector=[[1.0, 2.0, 3.0]])), cfg)  # type: ignore[list-item]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_vector_value(cfg, value) -> None:
    with pytest.raises(InvalidArgument) as ei:
        check_vec(vector_items(ItemInput(id="x", vector=[0.5, value, 1.0]), at=2), cfg)
    msg = ei.value.message
    assert msg.startswith("item 2:")
    assert "[1]" in msg and "finite" in msg


def test_all_zero_vector_only_rejected_under_cosine(cfg) -> None:
    items = vector_items(ItemInput(id="x", vector=[0.0, 0.0, 0.0]), at=1)
    with pytest.raises(InvalidArgument, match=r"^item 1: an all-zero vector"):
        check_vec(items, cfg, cosine=True)
    check_vec(items, cfg, cosine=False)  # fine under Euclidean distance


def test_duplicate_ids_name_both_items(cfg) -> None:
    items = vector_items(ItemInput(id="v0", vector=list(GOOD_V)), at=3)
    with pytest.raises(InvalidArgument) as ei:
        check_vec(items, cfg)
    assert ei.value.message.startswith("item 3:")
    assert "'v0'" in ei.value.message and "item 0" in ei.value.message


def test_duplicate_ids_allowed_without_ids_and_empty_ids_not_duplicates(cfg) -> None:
    check_vec([ItemInput(vector=list(GOOD_V)) for _ in range(3)], cfg)  # empty ids never collide
    items = [ItemInput(id="same", vector=list(GOOD_V)) for _ in range(3)]
    check_items(items, kind="vector", dim=3, settings=cfg, with_ids=False)


def test_id_too_long(cfg) -> None:
    with pytest.raises(InvalidArgument, match=r"^item 2: id is 257 characters"):
        check_vec(vector_items(ItemInput(id="i" * 257, vector=list(GOOD_V))), cfg)


def test_metadata_too_large(cfg) -> None:
    with pytest.raises(InvalidArgument) as ei:
        check_vec(vector_items(ItemInput(id="x", vector=list(GOOD_V), metadata={"k": "z" * 200})), cfg)
    assert ei.value.message.startswith("item 2: metadata is ")
    assert "the limit is 100" in ei.value.message


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_metadata_with_non_finite_number(cfg, bad) -> None:
    with pytest.raises(InvalidArgument, match=r"^item 2: metadata must be JSON with finite numbers"):
        check_vec(vector_items(ItemInput(id="x", vector=list(GOOD_V), metadata={"a": {"b": [1, bad]}})), cfg)


def test_metadata_not_json(cfg) -> None:
    with pytest.raises((InvalidArgument, TypeError)) as ei:
        check_vec(vector_items(ItemInput(id="x", vector=list(GOOD_V), metadata={"a": object()})), cfg)
    assert isinstance(ei.value, InvalidArgument), f"a non-JSON metadata value leaked {type(ei.value).__name__}"


def test_first_bad_item_is_reported(cfg) -> None:
    items = [ItemInput(id="a", vector=list(GOOD_V)), ItemInput(id="b", vector=[1.0]),
             ItemInput(id="c", vector=[math.nan, 0, 0])]
    with pytest.raises(InvalidArgument, match=r"^item 1:"):
        check_vec(items, cfg)


def test_check_query(cfg) -> None:
    check_query(None, [1.0, 2.0, 3.0], kind="vector", dim=3, settings=cfg, cosine=True)
    with pytest.raises(InvalidArgument, match="dimension 2"):
        check_query(None, [1.0, 2.0], kind="vector", dim=3, settings=cfg, cosine=False)
    with pytest.raises(InvalidArgument, match="text is empty"):
        check_query("  ", None, kind="text", dim=0, settings=cfg, cosine=True)
    with pytest.raises(InvalidArgument, match="all-zero"):
        check_query(None, [0.0, 0.0, 0.0], kind="vector", dim=3, settings=cfg, cosine=True)
    check_query(None, [0.0, 0.0, 0.0], kind="vector", dim=3, settings=cfg, cosine=False)


def test_first_bad_item_is_reported_across_kinds_of_error(cfg) -> None:
    items = [ItemInput(id="a", vector=list(GOOD_V)), ItemInput(id="b", vector=[math.nan, 0, 0]),
             ItemInput(id="c", vector=list(GOOD_V), metadata={"x": math.nan})]
    with pytest.raises(InvalidArgument, match=r"^item 1:"):
        check_vec(items, cfg)


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_vector_outside_float32_range(cfg) -> None:
    with pytest.raises(InvalidArgument, match=r"^item 2: .*1e\+39"):
        check_vec(vector_items(ItemInput(id="x", vector=[1.0, 1e39, 0.0])), cfg)


def test_check_page_size() -> None:
    assert check_page_size(0) == 100
    assert check_page_size(1000) == 1000
    for bad in (-1, 1001):
        with pytest.raises(InvalidArgument, match=str(bad)):
            check_page_size(bad)


# --------------------------------------------------------------------------- check_spec / names


@pytest.mark.parametrize("name", ["", "a b", "a/b", "..", "x" * 65, "é", "a.b"])
def test_bad_names(name) -> None:
    with pytest.raises(InvalidArgument, match="collection name"):
        check_name(name)
    with pytest.raises(InvalidArgument, match="collection name"):
        check_spec(CollectionSpec(name=name, input_kind="vector", vector_dim=4))


@pytest.mark.parametrize("name", ["a", "A-b_9", "x" * 64])
def test_good_names(name) -> None:
    assert check_name(name) == name


def test_vector_spec_needs_dim() -> None:
    with pytest.raises(InvalidArgument, match="vector_dim must be in .* got 0"):
        check_spec(CollectionSpec(name="v", input_kind="vector", vector_dim=0))
    with pytest.raises(InvalidArgument, match="got 70000"):
        check_spec(CollectionSpec(name="v", input_kind="vector", vector_dim=70_000))
    spec = CollectionSpec(name="v", input_kind="vector", vector_dim=8, metric="euclid")
    assert check_spec(spec) is spec


def test_vector_spec_rejects_model() -> None:
    with pytest.raises(InvalidArgument, match="embedding_model"):
        check_spec(CollectionSpec(name="v", input_kind="vector", vector_dim=4, embedding_model="m"))


def test_text_spec_takes_a_vector_dim_in_range_and_tiers_by_name() -> None:
    # TEXT: vector_dim is the dimension the model must have (checked against the model at creation).
    check_spec(CollectionSpec(name="t", input_kind="text", vector_dim=384))
    check_spec(CollectionSpec(name="t", input_kind="text"))
    with pytest.raises(InvalidArgument, match="vector_dim must be 0 .* got 100000"):
        check_spec(CollectionSpec(name="t", input_kind="text", vector_dim=100_000))
    with pytest.raises(InvalidArgument, match="unknown embedding_tier 'fast'"):
        check_spec(CollectionSpec(name="t", input_kind="text", embedding_tier="fast"))
    with pytest.raises(InvalidArgument, match="needs the model's directory"):
        check_spec(CollectionSpec(name="t", input_kind="text", embedding_tier="model_dir"))
    with pytest.raises(InvalidArgument, match="takes no embedding_tier, got 'static'"):
        check_spec(CollectionSpec(name="v", input_kind="vector", vector_dim=4, embedding_tier="static"))


def test_spec_bad_kind_and_metric() -> None:
    with pytest.raises(InvalidArgument, match="input_kind"):
        check_spec(CollectionSpec(name="t", input_kind="image"))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="'dot'"):
        check_spec(CollectionSpec(name="t", input_kind="vector", vector_dim=3, metric="dot"))  # type: ignore[arg-type]


def test_spec_checks_its_settings() -> None:
    with pytest.raises(InvalidArgument, match="contamination"):
        check_spec(CollectionSpec(name="t", input_kind="vector", vector_dim=3,
                                  settings=CollectionSettings(contamination=0.9)))


# --------------------------------------------------------------------------- check_settings


@pytest.mark.parametrize("value", [0.0, 0.6, -0.1, 1.0])
def test_contamination_out_of_range(value) -> None:
    with pytest.raises(InvalidArgument) as ei:
        check_settings(CollectionSettings(contamination=value))
    assert "contamination" in ei.value.message and str(value) in ei.value.message


@pytest.mark.parametrize("value", [0.001, 0.5])
def test_contamination_in_range(value) -> None:
    check_settings(CollectionSettings(contamination=value))


def test_other_settings_ranges() -> None:
    with pytest.raises(InvalidArgument, match="min_cluster_size"):
        check_settings(CollectionSettings(min_cluster_size=0))
    with pytest.raises(InvalidArgument, match="default_k"):
        check_settings(CollectionSettings(default_k=1))
    with pytest.raises(InvalidArgument, match="seed"):
        check_settings(CollectionSettings(seed=-1))
    check_settings(CollectionSettings())  # all None = nothing to check
    check_settings(CollectionSettings.defaults())


# --------------------------------------------------------------------------- check_run_request


def test_run_request_k_below_two() -> None:
    with pytest.raises(InvalidArgument, match="k must be >= 2, got 1"):
        check_run_request(RunRequest(k=1), point_count=100, default_k=8)
    with pytest.raises(InvalidArgument, match="got 0"):
        check_run_request(RunRequest(k=0), point_count=100, default_k=8)


def test_run_request_k_exceeds_points() -> None:
    with pytest.raises(InvalidArgument) as ei:
        check_run_request(RunRequest(k=12), point_count=7, default_k=8)
    assert re.search(r"\b12\b", ei.value.message) and re.search(r"\b7\b", ei.value.message)


def test_run_request_default_k_applied_and_checked() -> None:
    out = check_run_request(RunRequest(seed=3), point_count=100, default_k=8)
    assert out.k == 8 and out.seed == 3 and out.k_range is None
    with pytest.raises(InvalidArgument, match="k=8 exceeds the collection's 5 points"):
        check_run_request(RunRequest(), point_count=5, default_k=8)


def test_run_request_empty_collection() -> None:
    with pytest.raises(FailedPrecondition, match="empty") as ei:
        check_run_request(RunRequest(k=2), point_count=0, default_k=8)
    assert ei.value.code is ErrorCode.FAILED_PRECONDITION
    assert not isinstance(ei.value, InvalidArgument)


def test_run_request_k_range_too_wide() -> None:
    hi = 2 + MAX_K_RANGE  # MAX_K_RANGE + 1 candidates
    with pytest.raises(InvalidArgument) as ei:
        check_run_request(RunRequest(k_range=(2, hi)), point_count=10_000, default_k=8)
    assert str(MAX_K_RANGE + 1) in ei.value.message and str(MAX_K_RANGE) in ei.value.message
    ok = check_run_request(RunRequest(k_range=(2, hi - 1)), point_count=10_000, default_k=8)
    assert ok.k_range == (2, hi - 1)


@pytest.mark.parametrize("rng", [(1, 5), (6, 5)])
def test_run_request_k_range_order(rng) -> None:
    with pytest.raises(InvalidArgument, match="k_range must satisfy"):
        check_run_request(RunRequest(k_range=rng), point_count=100, default_k=8)


def test_run_request_k_range_exceeds_points() -> None:
    with pytest.raises(InvalidArgument, match="k_range max 9 exceeds the collection's 6 points"):
        check_run_request(RunRequest(k_range=(2, 9)), point_count=6, default_k=8)


def test_run_request_both_k_and_range() -> None:
    with pytest.raises(InvalidArgument, match="not both"):
        check_run_request(RunRequest(k=3, k_range=(2, 4)), point_count=100, default_k=8)


def test_run_request_sample_size_and_n_init() -> None:
    with pytest.raises(InvalidArgument, match="sample_size 5"):
        check_run_request(RunRequest(k=6, sample_size=5), point_count=100, default_k=8)
    with pytest.raises(InvalidArgument, match="n_init"):
        check_run_request(RunRequest(k=3, n_init=101), point_count=100, default_k=8)
    with pytest.raises(InvalidArgument, match="sample_size must be >= 0"):
        check_run_request(RunRequest(k=3, sample_size=-1), point_count=100, default_k=8)
