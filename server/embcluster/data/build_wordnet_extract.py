"""Rebuild ``wordnet_glosses.jsonl`` from Debian's ``wordnet-base`` package.

Usage: ``python server/embcluster/data/build_wordnet_extract.py /usr/share/wordnet``
(after ``apt-get install wordnet-base`` or ``dpkg-deb -x wordnet-base_*.deb``).

Takes a seeded, per-category stratified sample of synset glosses (the
definition part, before the first ``;``) with their WordNet lexical category
(``noun.animal``, ``verb.motion`` ...), which serves as a real label set for
clustering quality checks. WordNet 3.0 licence: see ``WORDNET_LICENSE``.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group "
    "noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant "
    "noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
PER_CATEGORY = 120
SEED = 20261123


def main(root: Path, out: Path) -> None:
    """Write the stratified extract."""
    by_cat: dict[str, list[dict[str, str]]] = {}
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (root / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):  # licence header
                continue
            head, _, gloss = line.partition("|")
            fields = head.split()
            definition = gloss.split(";")[0].strip().strip('"').strip()
            if len(definition) < 12:
                continue
            cat = LEXNAMES[int(fields[1])]
            by_cat.setdefault(cat, []).append(
                {"id": f"wn-{pos}-{fields[0]}", "word": fields[4].replace("_", " "),
                 "text": definition, "category": cat}
            )
    rng = random.Random(SEED)
    rows: list[dict[str, str]] = []
    for cat in sorted(by_cat):
        items = by_cat[cat]
        rows.extend(rng.sample(items, min(PER_CATEGORY, len(items))))
    rng.shuffle(rows)
    with out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} glosses in {len(by_cat)} categories to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).with_name("wordnet_glosses.jsonl"))
