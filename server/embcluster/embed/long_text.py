"""Long texts: which part of a text the model reads, cut before the whole text is tokenized.

A sentence-transformers model reads at most ``max_seq_length`` tokens (all-MiniLM-L6-v2: 256,
254 of them text). A collection embeds a longer text in one of two ways (its ``long_text``
setting, fixed at creation):

* ``truncate`` (default): the first window of 254 tokens, exactly what the model itself would
  read of the whole text.
* ``pool``: the first ``max_windows`` windows' worth of tokens is split into windows of 254
  tokens, spread evenly from the first token to the last so that every window is full and
  consecutive windows overlap by at least :data:`WINDOW_OVERLAP_TOKENS`; each window is
  embedded like a text of its own (unit length) and the item's vector is their mean, normalised
  to unit length again. A text longer than ``max_windows`` windows is cut there (and counted as
  truncated), so one huge text cannot stall an ingest.

A text of at most one window is embedded whole, identically in both modes.

Only a prefix of a long text is ever tokenized: the planner tokenizes the first
``8 x tokens needed`` characters, and doubles that prefix until its tokens reach one whole word
past the last token needed (or the text ends). Windows are handed to the model as character spans
of the original text that start at a word's first token and end after the word holding the first
token beyond the window, so the model's own truncation leaves exactly the window's tokens (the
tokenizers of sentence-transformers models split words locally: whitespace and punctuation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

__all__ = [
    "LongTextMode",
    "LONG_TEXT_MODES",
    "DEFAULT_LONG_TEXT",
    "DEFAULT_MAX_WINDOWS",
    "WINDOW_OVERLAP_TOKENS",
    "LongText",
    "TRUNCATE",
    "TextPlan",
    "WindowPlanner",
    "Embedded",
    "pool_windows",
]

LongTextMode = Literal["truncate", "pool"]
LONG_TEXT_MODES: tuple[LongTextMode, ...] = ("truncate", "pool")
DEFAULT_LONG_TEXT: LongTextMode = "truncate"
DEFAULT_MAX_WINDOWS = 32
WINDOW_OVERLAP_TOKENS = 32  # at least this many tokens shared by consecutive windows (pool)
_CHARS_PER_TOKEN = 8  # first guess of the prefix to tokenize; English runs at about 4.5


@dataclass(frozen=True)
class LongText:
    """How one call embeds texts longer than the model's window."""

    mode: LongTextMode = DEFAULT_LONG_TEXT
    max_windows: int = DEFAULT_MAX_WINDOWS  # pool: windows per text at most (beyond: truncated)
    overlap: int = WINDOW_OVERLAP_TOKENS  # pool: least overlap of consecutive windows, in tokens

    @property
    def pool(self) -> bool:
        """True when long texts are split into windows whose embeddings are averaged."""
        return self.mode == "pool"


TRUNCATE = LongText()


@dataclass(frozen=True)
class TextPlan:
    """The character spans of a text that are embedded (one per window) and whether any was left out."""

    spans: tuple[tuple[int, int], ...]
    truncated: bool


@dataclass
class Embedded:
    """Vectors of a batch, and which of its items had text beyond what was embedded."""

    vectors: np.ndarray
    truncated: np.ndarray  # bool, one per item

    @classmethod
    def whole(cls, vectors: np.ndarray) -> "Embedded":
        """Vectors of inputs that were embedded whole (raw vectors, short texts)."""
        return cls(vectors, np.zeros(len(vectors), dtype=bool))


class WindowPlanner:
    """Plans the windows of texts for a model with a window of ``window`` text tokens.

    Args:
        tokenizer: A ``tokenizers.Tokenizer`` (the model's fast tokenizer). The planner keeps
            its own copy without truncation or padding, so planning never changes the model's
            tokenizer and may run beside an encode on another thread.
        window: Text tokens the model reads (``max_seq_length`` minus its special tokens).
    """

    def __init__(self, tokenizer: Any, window: int) -> None:
        if window < 1:
            raise ValueError(f"a window needs at least one token, got {window}")
        self._tokenizer = type(tokenizer).from_str(tokenizer.to_str())
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.window = window

    def plan(self, text: str, long_text: LongText = TRUNCATE) -> TextPlan:
        """The spans of ``text`` to embed under ``long_text``."""
        w = self.window
        max_windows = max(1, long_text.max_windows) if long_text.pool else 1
        stride = max(1, w - min(max(long_text.overlap, 0), w // 2))
        limit = w + (max_windows - 1) * stride  # tokens read at most
        offsets, words, whole = self._layout(text, limit)
        n = len(offsets)
        if n <= w:
            return TextPlan(((0, len(text)),), truncated=False)
        used = min(n, limit)
        count = 1 + -(-(used - w) // stride)  # ceil: consecutive starts at most `stride` apart
        starts = [0] if count == 1 else [round(j * (used - w) / (count - 1)) for j in range(count)]
        spans = []
        for s in starts:
            first = s
            while first > 0 and words[first - 1] == words[first]:  # back to the start of its word
                first -= 1
            begin = 0 if first == 0 else offsets[first][0]
            beyond = first + w  # the first token not in the window
            if beyond >= n:  # only when the whole text was tokenized: the window runs to its end
                end = len(text)
            else:  # through the word holding `beyond`: the model's own truncation stops before it
                last = beyond
                while last + 1 < n and words[last + 1] == words[beyond]:
                    last += 1
                end = offsets[last][1]
            spans.append((begin, end))
        return TextPlan(tuple(spans), truncated=n > limit)

    def _layout(self, text: str, limit: int) -> tuple[list[tuple[int, int]], list[int], bool]:
        """Offsets and word numbers of the first tokens of ``text``: exact through token ``limit``'s word.

        Tokenizes a prefix, doubled until token ``limit`` exists and lies in a word before the
        prefix's last one (which the cut may have split), or until the prefix is the whole text.
        """
        bound = max(limit * _CHARS_PER_TOKEN, 1024)
        while True:
            whole = bound >= len(text)
            enc = self._tokenizer.encode(text if whole else text[:bound], add_special_tokens=False)
            offsets: list[tuple[int, int]] = enc.offsets
            # A tokenizer that reports no words: every token counts as a word of its own.
            words = [i if wid is None else wid for i, wid in enumerate(enc.word_ids)]
            if whole or (len(offsets) > limit and words[limit] != words[-1]):
                return offsets, words, whole
            bound *= 2


def pool_windows(vectors: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Per item, the normalised mean of its ``counts[i]`` consecutive window rows of ``vectors``.

    Items of one window keep that row unchanged (so a short text's vector does not depend on the mode).
    """
    counts_arr = np.asarray(counts, dtype=np.int64)
    if len(counts_arr) == 0 or (counts_arr == 1).all():
        return vectors
    firsts = np.concatenate([[0], np.cumsum(counts_arr)[:-1]])
    sums = np.add.reduceat(vectors.astype(np.float64), firsts, axis=0)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    pooled = (sums / np.maximum(norms, 1e-12)).astype(vectors.dtype)
    single = counts_arr == 1
    pooled[single] = vectors[firsts[single]]
    return pooled
