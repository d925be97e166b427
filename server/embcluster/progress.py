"""Progress bars for the command line: tqdm on a terminal, plain lines otherwise.

Bars go to stderr so that stdout stays clean for results. When stderr is not a terminal
(a pipe, a CI log) a bar degrades to a short line whenever the label changes, every 10% of
a known total, and at most every ``every_s`` seconds otherwise, instead of carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["Progress"]


class Progress:
    """A progress bar (tqdm on a TTY) or its plain-text stand-in.

    Args:
        label: What is progressing (tqdm's description).
        total: Units in all (None = unknown: counts and rate only).
        unit: Unit name shown with the rate (``rows`` -> ``rows/s``).
        stream: Where to write (default stderr).
        tty: Force bar (True) or plain lines (False); default: whether ``stream`` is a terminal.
        every_s: Plain mode: longest silence between lines while progressing.
    """

    def __init__(self, label: str, total: float | None = None, *, unit: str = "it", stream: TextIO | None = None,
                 tty: bool | None = None, every_s: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.total = total
        self.unit = unit
        self.n: float = 0
        self._every = every_s
        self._started = time.monotonic()
        self._last_line = 0.0
        self._last_decile = -1
        self._printed: tuple[float, str] | None = None
        self._bar: Any = None
        if tty if tty is not None else _isatty(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit=unit, file=self.stream, dynamic_ncols=True,
                             bar_format=None if total else "{desc}: {n_fmt} {unit} [{elapsed}, {rate_fmt}]")

    def update_to(self, n: float, label: str | None = None) -> None:
        """Set the absolute position (and optionally a new label)."""
        if isinstance(n, float) and n.is_integer():
            n = int(n)  # "10 rows", not "10.0 rows"
        changed = label is not None and label != self.label
        if label is not None:
            self.label = label
        if self._bar is not None:
            if changed:
                self._bar.set_description_str(label, refresh=False)
            self._bar.update(n - self._bar.n)
            self.n = n
            return
        self.n = n
        now = time.monotonic()
        decile = int(10 * n / self.total) if self.total else -1
        if changed or decile > self._last_decile or now - self._last_line >= self._every:
            self._last_decile = max(decile, self._last_decile)
            self._line()

    def advance(self, by: float) -> None:
        """Move forward by ``by`` units."""
        self.update_to(self.n + by)

    def _line(self) -> None:
        if self._printed == (self.n, self.label):
            return
        self._printed = (self.n, self.label)
        self._last_line = time.monotonic()
        if self.unit == "%":  # a share already: no count, no rate
            self.stream.write(f"{self.label}: {self.n:.0f}%\n")
            self.stream.flush()
            return
        elapsed = max(self._last_line - self._started, 1e-9)
        done = f"{self.n:.0f}/{self.total:.0f}" if self.total else f"{self.n:.0f}"
        pct = f" {100 * self.n / self.total:5.1f}%" if self.total else ""
        self.stream.write(f"{self.label}: {done} {self.unit}{pct} ({self.n / elapsed:.1f} {self.unit}/s)\n")
        self.stream.flush()

    def close(self) -> None:
        """Finish the bar (plain mode: a last line)."""
        if self._bar is not None:
            self._bar.close()
        else:
            self._line()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
