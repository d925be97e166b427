"""Distinctive keywords per cluster: class-based TF-IDF over the members' source texts.

The idea is BERTopic's c-TF-IDF: every cluster's texts are joined into one "class document",
and a term scores high when it is frequent in that class and rare in the collection::

    score(t, c) = tf(t, c) * log(1 + 1 / (K * p(t)))

where ``tf(t, c)`` is the term's count in cluster ``c`` over all term counts of ``c`` (L1),
``K`` the number of clusters that have any term and ``p(t)`` the term's share of all term
counts. Without a background this is exactly BERTopic's ``log(1 + A / f(t))`` (``A`` the average
term count per class, ``f(t)`` the term's count over all classes: ``A / f(t) = 1 / (K p(t))``).
Written with the share ``p(t)``, the collection's own frequencies can stand in as background:
when ``background`` counts are given (e.g. :func:`count_terms` over a larger sample, or a
running count kept at ingest), ``p(t) = (background(t) + sample(t)) / (background total +
sample total)``, so a term the background has never seen still has a finite weight.

Scale: a collection of 100k-1M points is summarised at the end of every re-cluster, so each
cluster contributes at most ``max_texts_per_cluster`` texts (a seeded sample), each cut to
``max_chars_per_text`` characters, and all counting is on sparse matrices (scikit-learn's
``CountVectorizer``). ``bench/bench_insight.py`` measures the cost.

Tokens: lowercase unicode words of at least two characters with at least one letter (pure
numbers are dropped, ``3d`` is kept), scikit-learn's English stop words removed; optionally
bigrams of the remaining tokens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import CountVectorizer

__all__ = ["Keyword", "KeywordConfig", "TOKEN_PATTERN", "tokenize", "count_terms", "cluster_keywords",
           "group_texts"]

logger = logging.getLogger(__name__)

# A word of >= 2 unicode word characters with at least one letter: drops "1999", keeps "3d".
TOKEN_PATTERN = r"(?u)\b(?=\w*[^\W\d_])\w\w+\b"


@dataclass(frozen=True)
class Keyword:
    """One distinctive term of a cluster and its c-TF-IDF score (higher = more distinctive)."""

    term: str
    score: float


@dataclass(frozen=True)
class KeywordConfig:
    """How keywords are computed.

    Attributes:
        top_n: Keywords returned per cluster.
        bigrams: Also score pairs of adjacent tokens (after stop-word removal), e.g. "running shoes".
        max_texts_per_cluster: Texts sampled per cluster (seeded); the rest are not read.
        max_chars_per_text: Each text is cut to this many characters before tokenizing.
        min_count: A keyword occurs at least this often in its cluster's sample (lowered to the
            cluster's highest term count when nothing reaches it, so tiny clusters get keywords).
        seed: Seed of the per-cluster samples.
    """

    top_n: int = 10
    bigrams: bool = False
    max_texts_per_cluster: int = 1000
    max_chars_per_text: int = 1000
    min_count: int = 2
    seed: int = 0


def _vectorizer(bigrams: bool) -> CountVectorizer:
    # Imported here: scikit-learn (and scipy with it) takes about a second to import, and the server imports
    # this module at start-up, which must answer within a couple of seconds (tests/api/test_startup.py).
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    return CountVectorizer(lowercase=True, token_pattern=TOKEN_PATTERN, stop_words=sorted(ENGLISH_STOP_WORDS),
                           ngram_range=(1, 2) if bigrams else (1, 1), dtype=np.int64)


def tokenize(text: str) -> list[str]:
    """The unigram tokens of ``text`` as keywords see them (lowercase, no stop words or numbers)."""
    analyze = _vectorizer(False).build_analyzer()
    return list(analyze(text))


def count_terms(texts: Sequence[str], *, bigrams: bool = False, max_chars_per_text: int = 1000) -> dict[str, int]:
    """Term counts of ``texts`` (a collection's background frequencies for :func:`cluster_keywords`).

    Args:
        texts: Source texts, e.g. a sample of the whole collection.
        bigrams: Count bigrams too (use the same setting as the keywords).
        max_chars_per_text: Each text is cut to this many characters.

    Returns:
        Term -> count; empty when no text has a token.
    """
    docs = [t[:max_chars_per_text] for t in texts if t]
    if not docs:
        return {}
    vec = _vectorizer(bigrams)
    try:
        x = vec.fit_transform(docs)
    except ValueError:  # no token at all (only stop words or numbers)
        return {}
    totals = np.asarray(x.sum(axis=0)).ravel()
    return {str(t): int(c) for t, c in zip(vec.get_feature_names_out(), totals.tolist())}


def group_texts(texts: Sequence[str | None], labels: np.ndarray | Sequence[int]) -> dict[int, list[int]]:
    """Indices of the non-empty texts of each label, in input order."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    order = np.argsort(labels, kind="stable")
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    out: dict[int, list[int]] = {}
    for part in np.split(order, cuts) if len(order) else []:
        out[int(labels[part[0]])] = [int(i) for i in part if texts[i]]
    return out


def _sample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    if n <= cap:
        return np.arange(n)
    return np.sort(rng.choice(n, size=cap, replace=False))


def cluster_keywords(texts: Mapping[int, Sequence[str | None]] | Sequence[str | None],
                     labels: np.ndarray | Sequence[int] | None = None, *, config: KeywordConfig | None = None,
                     background: Mapping[str, int] | None = None) -> dict[int, list[Keyword]]:
    """The ``top_n`` distinctive keywords of every cluster (class-based TF-IDF, see the module doc).

    Args:
        texts: Either a mapping cluster id -> its members' texts, or one text per point (None or
            "" for a point without text) with ``labels``.
        labels: Cluster id of each text (only with a sequence of texts).
        config: Sampling, tokens and how many keywords.
        background: Term counts of the whole collection (:func:`count_terms`); None = the
            sampled texts of all clusters are the background.

    Returns:
        Cluster id -> keywords, best first (every cluster of the input; [] when it has no token).
    """
    cfg = config or KeywordConfig()
    if isinstance(texts, Mapping):
        if labels is not None:
            raise ValueError("labels go with a sequence of texts, not with a mapping")
        members: dict[int, list[str]] = {int(c): [t for t in ts if t] for c, ts in texts.items()}
    else:
        if labels is None:
            raise ValueError("a sequence of texts needs labels (or pass a mapping cluster id -> texts)")
        members = {c: [t for i in idx if (t := texts[i])] for c, idx in group_texts(texts, labels).items()}
    rng = np.random.default_rng(cfg.seed)
    docs: list[str] = []
    doc_cluster: list[int] = []
    clusters = sorted(members)
    for row, c in enumerate(clusters):
        pool = members[c]
        for j in _sample(len(pool), cfg.max_texts_per_cluster, rng).tolist():
            docs.append(pool[j][:cfg.max_chars_per_text])
            doc_cluster.append(row)
    out: dict[int, list[Keyword]] = {c: [] for c in clusters}
    if not docs:
        return out
    vec = _vectorizer(cfg.bigrams)
    try:
        x = vec.fit_transform(docs)
    except ValueError:  # no token in any text
        return out
    member = sp.csr_matrix((np.ones(len(docs)), (np.asarray(doc_cluster), np.arange(len(docs)))),
                           shape=(len(clusters), len(docs)))
    counts = sp.csr_matrix(member @ x)  # clusters x terms
    terms = vec.get_feature_names_out()
    idf = _class_idf(counts, terms, background)
    for row, c in enumerate(clusters):
        lo, hi = counts.indptr[row], counts.indptr[row + 1]
        if lo == hi:
            continue
        cols, cnt = counts.indices[lo:hi], counts.data[lo:hi]
        tf = cnt / cnt.sum()
        keep = cnt >= min(cfg.min_count, cnt.max())
        cols, score = cols[keep], tf[keep] * idf[cols[keep]]
        best = np.lexsort((terms[cols], -score))[:cfg.top_n]  # by score, ties by term: deterministic
        out[c] = [Keyword(term=str(terms[cols[i]]), score=float(score[i])) for i in best if score[i] > 0]
    return out


def _class_idf(counts: sp.csr_matrix, terms: np.ndarray, background: Mapping[str, int] | None) -> np.ndarray:
    """``log(1 + 1 / (K p(t)))`` per term of ``counts`` (clusters x terms)."""
    rows = np.asarray(counts.sum(axis=1)).ravel()
    term_total = np.asarray(counts.sum(axis=0)).ravel().astype(np.float64)
    grand = float(term_total.sum())
    if background:
        term_total = term_total + np.fromiter((background.get(str(t), 0) for t in terms), dtype=np.float64,
                                              count=len(terms))
        grand += float(sum(background.values()))
    k = max(int((rows > 0).sum()), 1)
    idf: np.ndarray = np.log1p(grand / (k * term_total))
    return idf
