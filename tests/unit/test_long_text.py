"""Long texts in the text embedder: truncation that reads what the model reads, pooled windows.

The references are computed with the model's own ``encode`` and tokenizer, independently of
the planner: truncation must equal the model reading the whole text, and pooling must equal the
normalised mean of full, overlapping windows that cover the text's tokens.
"""

from __future__ import annotations

import numpy as np
import pytest

from embcluster.embed.long_text import TRUNCATE, WINDOW_OVERLAP_TOKENS, LongText, pool_windows

POOL = LongText(mode="pool")


def _encode(embedder, texts: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(embedder.model.encode(texts, normalize_embeddings=True, show_progress_bar=False))


def _token_ids(embedder, text: str) -> list[int]:  # type: ignore[no-untyped-def]
    return list(embedder.model.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


def test_truncation_equals_the_model_reading_the_whole_text(text_embedder, article) -> None:
    doc = article(25_485)
    texts = [
        doc,
        " " * 300_000 + doc[:5_000],  # no tokens in the first 300k characters: the prefix must grow
        "\u00e9t\u00e9 caf\u00e9s " * 3_000,  # accents stripped by the normaliser: offsets still map back
        "pseudopseudohypoparathyroidism " * 400,  # long words cut into many pieces
    ]
    got = text_embedder.embed_long(texts, TRUNCATE)
    assert got.truncated.tolist() == [True, True, True, True]
    np.testing.assert_allclose(got.vectors, _encode(text_embedder, texts), atol=2e-6)
    # Only the start of a long text is handed to the model (and tokenized).
    huge = article(1_000_000)
    (span,) = text_embedder.plan(huge, TRUNCATE).spans
    assert span[0] == 0 and span[1] < 5_000


def test_pooling_is_the_normalised_mean_of_full_overlapping_windows(text_embedder, article) -> None:
    doc = article(6_000)
    plan = text_embedder.plan(doc, POOL)
    assert not plan.truncated and len(plan.spans) > 2
    full = _token_ids(text_embedder, doc)
    w = text_embedder.window
    starts = []
    for a, b in plan.spans:
        ids = _token_ids(text_embedder, doc[a:b])[:w]  # what the model reads of the window's text
        assert len(ids) == w
        found = [j for j in range(len(full) - w + 1) if full[j:j + w] == ids]
        assert found, f"window {a}:{b} is not a run of the text's tokens"
        starts.append(found[0])
    assert starts[0] == 0 and starts[-1] + w == len(full)  # the windows cover every token
    assert all(0 < step <= w - WINDOW_OVERLAP_TOKENS for step in np.diff(starts))
    windows = _encode(text_embedder, [doc[a:b] for a, b in plan.spans])
    mean = windows.mean(axis=0)
    pooled = text_embedder.embed_long([doc], POOL)
    np.testing.assert_allclose(pooled.vectors[0], mean / np.linalg.norm(mean), atol=2e-6)
    truncated = text_embedder.embed_long([doc], TRUNCATE).vectors[0]
    assert float(truncated @ pooled.vectors[0]) < 0.99  # pooling reads the rest of the text


def test_pooling_stops_at_max_windows_and_counts_the_text_as_truncated(text_embedder, article) -> None:
    doc = article(6_000)
    two = LongText(mode="pool", max_windows=2)
    plan = text_embedder.plan(doc, two)
    assert plan.truncated and len(plan.spans) == 2
    got = text_embedder.embed_long([doc, "a short text"], two)
    assert got.truncated.tolist() == [True, False]
    windows = _encode(text_embedder, [doc[a:b] for a, b in plan.spans])
    mean = windows.mean(axis=0)
    np.testing.assert_allclose(got.vectors[0], mean / np.linalg.norm(mean), atol=2e-6)


def test_short_texts_get_identical_vectors_in_both_modes(text_embedder, article) -> None:
    texts = ["red cotton t-shirt, crew neck", "blue denim jacket", article(900)]  # 900 characters: one window
    truncated = text_embedder.embed_long(texts, TRUNCATE)
    pooled = text_embedder.embed_long(texts, POOL)
    assert not truncated.truncated.any() and not pooled.truncated.any()
    assert np.array_equal(truncated.vectors, pooled.vectors)
    assert np.array_equal(truncated.vectors, text_embedder.embed(texts))


@pytest.mark.parametrize("counts", [[1, 3, 2], [2], [1, 1]])
def test_pool_windows_averages_each_items_rows(counts: list[int]) -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(sum(counts), 5)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    got = pool_windows(rows, counts)
    at = 0
    for i, n in enumerate(counts):
        expected = rows[at] if n == 1 else rows[at:at + n].mean(axis=0) / np.linalg.norm(rows[at:at + n].mean(axis=0))
        np.testing.assert_allclose(got[i], expected, atol=1e-6)
        at += n
