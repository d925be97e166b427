"""The README's runnable examples: every ```python block and every command of a ```bash/sh/shell block.

Shared by the extractor's unit test (tests/unit/test_readme_blocks.py) and the test that runs
the examples against a real server (tests/e2e/test_readme.py).

Rules (also stated in docs/architecture.md, "The README is tested"):

- A ```python block is one example: a complete program, run as pasted in its own interpreter.
  It may not rely on names from an earlier block, only on what earlier blocks left on the
  server or in the working directory.
- A ```bash (``sh``, ``shell``) block holds commands, one per line; a line ending in ``\\`` or
  inside an open quote continues on the next. Lines that are only a ``# comment`` are not run.
- A block that cannot run in the test (it needs a Qdrant server, Docker, a fresh install, ...)
  is preceded, as the last non-blank line before its fence, by
  ``<!-- readme-test: skip (the reason) -->``. The reason is required; any other line that
  mentions ``readme-test`` is an error, so a typo cannot silently skip or un-skip a block.
- Fences with any other language (or none) are not examples and are not run.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EXPECTED_OUTPUT", "Example", "README", "RUNNABLE_LANGS", "extract", "read_readme", "split_commands"]

README = Path(__file__).resolve().parents[1] / "README.md"
RUNNABLE_LANGS = {"python": "python", "bash": "bash", "sh": "bash", "shell": "bash"}

_FENCE = re.compile(r"^```\s*(\S*)")  # the info string's first word is the language
# (a regex the command must match, a text its stdout must contain): commands whose exit code alone
# would not show that they worked. tests/unit/test_readme_blocks.py checks that each pattern still
# matches a command of the README, so a reworded command cannot silently drop its check.
EXPECTED_OUTPUT: list[tuple[str, str]] = [
    (r"^grpcurl .* list$", "embcluster.v1.Embcluster"),
    (r"^grpcurl .* list$", "grpc.health.v1.Health"),
    (r"^grpcurl .* describe embcluster\.v1\.Embcluster$", "rpc StartClustering"),
    (r"^grpcurl .*GetCollection$", '"name": "catalogue"'),
    (r"^grpcurl .*Health/Check$", '"status": "SERVING"'),
    (r"(?s)^grpcurl .*embcluster\.v1\.Embcluster/Ingest$", '"results"'),
    (r"^\S*embcluster demo\b", "top anomalies"),
    (r"^embcluster report docs -o docs-report\.html\b", "wrote docs-report.html"),
    (r"^curl -s http://127\.0\.0\.1:9464/report/docs/version\b", '"model_version": 1'),
]
_MARKER = re.compile(r"^<!-- readme-test: skip \((?P<reason>.*\S.*)\) -->$")


@dataclass(frozen=True)
class Example:
    """One runnable piece of the README.

    Attributes:
        block: README line (1-based) of the block's opening fence.
        line: README line where the code or command starts.
        kind: ``"python"`` (a whole block) or ``"bash"`` (one command).
        code: the text to run, as written in the README.
        skip: the reason given by the block's skip marker, or None when it runs.
    """

    block: int
    line: int
    kind: str
    code: str
    skip: str | None

    @property
    def id(self) -> str:
        """A pytest id: README line and kind, e.g. ``L45-python``."""
        return f"L{self.line}-{self.kind}"


def read_readme() -> str:
    """The repository's README.md."""
    return README.read_text(encoding="utf-8")


def _complete(command: str) -> bool:
    """Whether bash would see a whole command: no trailing backslash, no quote left open."""
    if command.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # "No closing quotation"
        return False
    return True


def split_commands(body: list[str], first_line: int) -> list[tuple[int, str]]:
    """The commands of a shell block as (README line, command text), comment-only lines left out.

    Raises:
        ValueError: the block ends inside a command (an open quote or a trailing backslash).
    """
    commands: list[tuple[int, str]] = []
    pending: list[str] = []
    start = first_line
    for offset, text in enumerate(body):
        if not pending:
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            start = first_line + offset
        pending.append(text)
        joined = "\n".join(pending)
        if _complete(joined):
            commands.append((start, joined))
            pending = []
    if pending:
        raise ValueError(f"README line {start}: shell command never ends (open quote or trailing backslash)")
    return commands


def extract(text: str) -> list[Example]:
    """Every runnable example of a README text, in document order.

    Raises:
        ValueError: a malformed or misplaced skip marker, or an unclosed fence (with its line).
    """
    lines = text.splitlines()
    examples: list[Example] = []
    marker: tuple[int, str] | None = None  # (line, reason) of a marker waiting for its block
    i = 0
    while i < len(lines):
        line = lines[i]
        if "readme-test" in line:
            match = _MARKER.match(line.strip())
            if match is None:
                raise ValueError(f"README line {i + 1}: malformed readme-test marker {line.strip()!r}; "
                                 "expected '<!-- readme-test: skip (reason) -->'")
            if marker is not None:
                raise ValueError(f"README line {marker[0]}: skip marker not followed by a code block")
            marker = (i + 1, match.group("reason").strip())
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence is None:
            if line.strip() and marker is not None:
                raise ValueError(f"README line {marker[0]}: skip marker not directly before a code block")
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if end == len(lines):
            raise ValueError(f"README line {i + 1}: code block never closed")
        lang = fence.group(1).lower()
        kind = RUNNABLE_LANGS.get(lang)
        skip = marker[1] if marker else None
        if kind is None and marker is not None:
            raise ValueError(f"README line {marker[0]}: skip marker before a {lang or 'plain'} block, "
                             "which is never run")
        body = lines[i + 1:end]
        if kind == "python":
            if not any(text.strip() for text in body):
                raise ValueError(f"README line {i + 1}: empty python block")
            examples.append(Example(i + 1, i + 2, "python", "\n".join(body) + "\n", skip))
        elif kind == "bash":
            commands = split_commands(body, i + 2)
            if not commands:
                raise ValueError(f"README line {i + 1}: shell block without a command")
            examples.extend(Example(i + 1, n, "bash", cmd, skip) for n, cmd in commands)
        marker = None
        i = end + 1
    if marker is not None:
        raise ValueError(f"README line {marker[0]}: skip marker not followed by a code block")
    return examples
