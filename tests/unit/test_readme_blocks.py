"""The README example extractor (tests/readme_blocks.py): it finds every block, and a skip needs a reason."""

from __future__ import annotations

import re

import pytest

from tests.readme_blocks import EXPECTED_OUTPUT, extract, read_readme

SAMPLE = '''# Title

```bash
python3 -m venv .venv   # a comment with the server's apostrophe
# only a comment

grpcurl -d '{"a": 1,
  "b": 2}' \\
  127.0.0.1:50051 x.Y/Z
```

Text.

```python
print("one")
```

<!-- readme-test: skip (needs a Qdrant server) -->
```bash
docker compose up -d
docker compose down
```

```
a diagram, never run
```

```python title="x.py"
print("two")
```
'''


def test_the_sample_is_split_into_commands_and_blocks_with_their_lines() -> None:
    got = [(e.block, e.line, e.kind, e.skip) for e in extract(SAMPLE)]
    assert got == [
        (3, 4, "bash", None),
        (3, 7, "bash", None),
        (14, 15, "python", None),
        (19, 20, "bash", "needs a Qdrant server"),
        (19, 21, "bash", "needs a Qdrant server"),
        (28, 29, "python", None),
    ]
    examples = extract(SAMPLE)
    assert examples[1].code == "grpcurl -d '{\"a\": 1,\n  \"b\": 2}' \\\n  127.0.0.1:50051 x.Y/Z"
    assert examples[2].code == 'print("one")\n' and examples[2].id == "L15-python"


@pytest.mark.parametrize("marker", [
    "<!-- readme-test: skip -->",            # no reason
    "<!-- readme-test: skip () -->",         # empty reason
    "<!-- readme-test: skp (typo) -->",
    "<!-- readme-test skip (no colon) -->",
    "<!--readme-test: skip (no space)-->",
])
def test_a_malformed_marker_is_an_error_naming_its_line(marker: str) -> None:
    with pytest.raises(ValueError, match="README line 3: malformed readme-test marker"):
        extract(f"# T\n\n{marker}\n```bash\ntrue\n```\n")


@pytest.mark.parametrize("text", [
    "<!-- readme-test: skip (why) -->\n\nSome text.\n\n```bash\ntrue\n```\n",  # not directly before
    "<!-- readme-test: skip (why) -->\n```\nplain\n```\n",                     # before a block never run
    "<!-- readme-test: skip (why) -->\n",                                      # before nothing
])
def test_a_misplaced_marker_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="README line 1: skip marker"):
        extract(text)


@pytest.mark.parametrize(("text", "error"), [
    ("```bash\necho 'open quote\n```\n", "README line 2: shell command never ends"),
    ("```bash\nls \\\n```\n", "README line 2: shell command never ends"),
    ("```python\nprint(1)\n", "README line 1: code block never closed"),
    ("```bash\n# only a comment\n```\n", "README line 1: shell block without a command"),
    ("```python\n\n```\n", "README line 1: empty python block"),
])
def test_a_broken_block_is_an_error(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        extract(text)


def test_every_runnable_block_of_the_readme_is_found() -> None:
    text = read_readme()
    examples = extract(text)
    # Counted independently, indented fences included: one the extractor missed would not run.
    fences = re.findall(r"^\s*```\s*(python|bash|sh|shell)\b", text, re.M)
    assert len({e.block for e in examples}) == len(fences) > 10
    assert sum(e.kind == "python" for e in examples) == fences.count("python")
    markers = [line for line in text.splitlines() if "readme-test" in line]
    assert len({e.block for e in examples if e.skip is not None}) == len(markers)
    assert all(e.skip is None or e.skip.strip() for e in examples)
    # Most of the README runs: skipping is for what cannot run in a test.
    assert sum(e.skip is None for e in examples) > 2 * sum(e.skip is not None for e in examples)


def test_every_output_check_still_matches_a_readme_command() -> None:
    commands = [e.code.strip() for e in extract(read_readme()) if e.skip is None]
    for pattern, expected in EXPECTED_OUTPUT:
        assert any(re.search(pattern, c) for c in commands), f"no README command matches {pattern!r} ({expected!r})"
