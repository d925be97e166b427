"""Real, offline data shipped with the package: a WordNet 3.0 gloss extract (see WORDNET_LICENSE) and
the Phosphor icon metadata (see PHOSPHOR_LICENSE)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["WORDNET_PATH", "load_wordnet", "PHOSPHOR_PATH", "load_phosphor", "LENDING_CLUB_PATH",
           "load_lending_club_events"]

WORDNET_PATH = Path(__file__).with_name("wordnet_glosses.jsonl")
PHOSPHOR_PATH = Path(__file__).with_name("phosphor_icons.jsonl")
LENDING_CLUB_PATH = Path(__file__).with_name("lending_club_events.jsonl")


def load_wordnet(limit: int | None = None) -> list[dict[str, str]]:
    """Glosses as dicts with ``id``, ``word``, ``text`` and ``category`` (45 lexical categories)."""
    rows = []
    with WORDNET_PATH.open(encoding="utf-8") as f:
        for line in f:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def load_phosphor() -> list[dict[str, Any]]:
    """The 1,512 icons of ``@phosphor-icons/core`` 2.1.1 (MIT, see ``PHOSPHOR_LICENSE``), sorted by name.

    Each row: ``id``, ``name``, ``title``, ``tags``, ``categories``, ``figma_category`` (one of 18:
    the single label to score clusterings against), ``codepoint``, ``published_in``, ``updated_in``.
    """
    with PHOSPHOR_PATH.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def load_lending_club_events(limit: int | None = None) -> list[dict[str, Any]]:
    """2,000 Lending Club loans (2016 Q1; ``modeldata``, MIT, see ``LENDING_CLUB_LICENSE``) as events.

    Each row: ``id``, ``bad`` (the table's ``Class == "bad"``, 5.5% of the extract) and ``event``
    (17 fields: amounts, rates, counts, grade, state, term, ...). Built by
    ``build_lending_club_extract.py``.
    """
    rows = []
    with LENDING_CLUB_PATH.open(encoding="utf-8") as f:
        for line in f:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows
