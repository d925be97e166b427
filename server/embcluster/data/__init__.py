"""Real, offline data shipped with the package: a WordNet 3.0 gloss extract (see WORDNET_LICENSE)."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["WORDNET_PATH", "load_wordnet"]

WORDNET_PATH = Path(__file__).with_name("wordnet_glosses.jsonl")


def load_wordnet(limit: int | None = None) -> list[dict[str, str]]:
    """Glosses as dicts with ``id``, ``word``, ``text`` and ``category`` (45 lexical categories)."""
    rows = []
    with WORDNET_PATH.open(encoding="utf-8") as f:
        for line in f:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows
