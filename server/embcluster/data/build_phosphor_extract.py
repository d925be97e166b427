"""Rebuild ``phosphor_icons.jsonl`` from the npm package ``@phosphor-icons/core`` (MIT).

Usage (once, on a machine with ``npm`` and ``node``; nothing is downloaded at test or bench time)::

    cd /tmp && npm pack @phosphor-icons/core@2.1.1 && tar xzf phosphor-icons-core-2.1.1.tgz
    python server/embcluster/data/build_phosphor_extract.py /tmp/package

Reads the package's icon table (``dist/index.mjs``, evaluated by ``node``: it is JavaScript, not
JSON) and keeps, per icon, the metadata an image catalogue would carry — no SVGs:

* ``id`` (``ph-<name>``), ``name`` (``arrow-circle-down``), ``title`` (``arrow circle down``);
* ``tags``: the designers' keywords, minus the ``*new*`` / ``*updated*`` release markers;
* ``categories`` (one or more of 18 site categories) and ``figma_category`` (exactly one of 18
  Figma categories: the single label used to score clusterings);
* ``codepoint``, ``published_in``, ``updated_in`` (numbers: the font codepoint and the library
  versions that added / last changed the icon).

Rows are sorted by name (the source's own order). Licence: ``PHOSPHOR_LICENSE`` (MIT).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_DUMP = (
    "const m = await import(process.argv[1]);"
    "process.stdout.write(JSON.stringify(m.icons));"
)
_MARKERS = {"*new*", "*updated*"}


def main(package: Path, out: Path) -> None:
    """Write the extract from an unpacked ``@phosphor-icons/core`` package directory."""
    mjs = (package / "dist" / "index.mjs").resolve()
    version = json.loads((package / "package.json").read_text(encoding="utf-8"))["version"]
    raw = subprocess.run(["node", "--input-type=module", "-e", _DUMP, mjs.as_uri()],
                         check=True, capture_output=True, text=True).stdout
    rows = []
    for icon in sorted(json.loads(raw), key=lambda i: i["name"]):
        rows.append({
            "id": f"ph-{icon['name']}",
            "name": icon["name"],
            "title": icon["name"].replace("-", " "),
            "tags": [t for t in icon["tags"] if t not in _MARKERS],
            "categories": list(icon["categories"]),
            "figma_category": icon["figma_category"],
            "codepoint": int(icon["codepoint"]),
            "published_in": float(icon["published_in"]),
            "updated_in": float(icon["updated_in"]),
        })
    with out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    cats = {r["figma_category"] for r in rows}
    print(f"wrote {len(rows)} icons of @phosphor-icons/core {version} in {len(cats)} figma categories to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).with_name("phosphor_icons.jsonl"))
