"""The raw-vector ingest path's fast spellings give exactly what the plain ones give (issue 15)."""

from __future__ import annotations

import uuid

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from embcluster.core.records import point_id_for

_NAMESPACE = uuid.UUID("6f1c7d0e-6d1b-4b8e-9a51-8a6f0c2e4b11")


def _uuid5(collection: str, external_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{collection}\x00{external_id}"))


def test_point_id_is_the_uuid5_stored_points_were_given() -> None:
    # pinned: ids already stored must keep resolving to the same point
    assert point_id_for("docs", "sku-1") == _uuid5("docs", "sku-1")
    assert point_id_for("raw0", "v0") == "61435091-15f8-5ed1-927a-73dee4555698" == _uuid5("raw0", "v0")
    ids = [point_id_for("c", f"v{i}") for i in range(5000)]
    assert ids == [_uuid5("c", f"v{i}") for i in range(5000)]
    assert {uuid.UUID(i).version for i in ids} == {5}
    assert {uuid.UUID(i).variant for i in ids} == {uuid.RFC_4122}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.text(max_size=300))
def test_point_id_equals_uuid5_for_any_text(collection: str, external_id: str) -> None:
    try:
        expected = _uuid5(collection, external_id)
    except UnicodeEncodeError:  # lone surrogates: both spellings refuse them
        try:
            point_id_for(collection, external_id)
        except UnicodeEncodeError:
            return
        raise AssertionError("point_id_for accepted a text uuid5 refuses") from None
    assert point_id_for(collection, external_id) == expected


def _check(vectors: list, cosine: bool = False):  # type: ignore[no-untyped-def]
    from embcluster.config import Settings
    from embcluster.errors import InvalidArgument
    from embcluster.schema import ItemInput
    from embcluster.validation_items import check_items

    items = [ItemInput(id=f"i{n}", vector=v) for n, v in enumerate(vectors)]
    try:
        return check_items(items, kind="vector", dim=3, settings=Settings(), cosine=cosine), None
    except InvalidArgument as exc:
        return None, exc.message


def test_float32_rows_validate_like_lists() -> None:
    """check_items' float32 fast path (the API's packed vectors) gives the general path's matrix and errors."""
    rows = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    fast, _ = _check(list(rows))
    slow, _ = _check([r.tolist() for r in rows])
    assert fast is not None and slow is not None and fast.dtype == slow.dtype == np.float32
    np.testing.assert_array_equal(fast, slow)
    for bad in (np.nan, np.inf, -np.inf):
        r = rows.copy()
        r[4, 1] = bad
        assert _check(list(r))[1] == _check([x.tolist() for x in r])[1] == \
            f"item 4: vector value [1] is {float(bad)}; values must be finite"
    zero = rows.copy()
    zero[2] = 0
    assert _check(list(zero), cosine=True)[1] == _check([x.tolist() for x in zero], cosine=True)[1] == \
        "item 2: an all-zero vector has no direction under cosine distance"
    short = list(rows[:3]) + [np.ones(2, dtype=np.float32)] + list(rows[3:])
    assert _check(short)[1] == "item 3: vector has dimension 2, expected 3"
    # float64 and 2-D rows take the general path (float64 values can overflow float32)
    assert _check([np.array([1e39, 0.0, 1.0])])[1] == "item 0: vector value [0] is 1e+39, outside the float32 range"
