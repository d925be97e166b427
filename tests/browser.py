"""A real headless browser for the report tests: Debian's ``chromium``, run as a command.

Shared by the report's own browser test (a file), the live view's (a page served by
``LiveReport``) and the end-to-end test against ``embcluster serve``. Two error detectors:

* the page's own guard (first script of every report, see ``report/html.py``) counts ``error``
  events, unhandled rejections and ``console.error`` calls into ``data-report-errors`` on
  ``<html>`` and lists them in ``<pre id="report-errors">``; ``--dump-dom`` reads them back, with
  ``data-report-state`` on ``<body>`` ("rendered" once Bokeh has drawn every figure);
* Chromium's own log (``--enable-logging=stderr``) prints uncaught exceptions as
  ``CONSOLE ... "Uncaught ..."`` lines (also those a broken guard would miss), and refused
  Content-Security-Policy loads as ``Refused to ...`` lines.

Host resolution is switched off (``--host-resolver-rules``) for every host but 127.0.0.1 (the
test servers), so anything the page tried to fetch elsewhere would fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "needs_chromium", "chromium", "chromium_async", "attr", "uncaught", "refused",
           "errors_shown", "check_rendered", "rendered_dom", "near", "colours_of"]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: Mark for tests that need the browser (skipped with the reason when it is not installed).
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: Debian's package renders the report (`apt-get install -y chromium`; "
           ".ci/run installs it when it runs as root with apt-get)")


def _command(target: Path | str, profile: Path, *args: str, budget_ms: int = 30000) -> list[str]:
    assert CHROMIUM is not None
    url = target.as_uri() if isinstance(target, Path) else target
    return [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--enable-logging=stderr", "--v=0",
            f"--virtual-time-budget={budget_ms}", *args, url]


def chromium(target: Path | str, profile: Path, *args: str, budget_ms: int = 30000) -> subprocess.CompletedProcess[str]:
    """Open ``target`` (a file, or a URL) headless with ``args`` (``--dump-dom``, ``--screenshot=...``)."""
    return subprocess.run(_command(target, profile, *args, budget_ms=budget_ms), capture_output=True, text=True,
                          timeout=240)


def chromium_async(target: Path | str, profile: Path, *args: str, budget_ms: int = 30000) -> subprocess.Popen[str]:
    """:func:`chromium` started in the background (``communicate()`` it)."""
    return subprocess.Popen(_command(target, profile, *args, budget_ms=budget_ms), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def attr(dom: str, tag: str, name: str) -> str | None:
    """The value of attribute ``name`` on the first ``<tag>`` of a dumped DOM."""
    match = re.search(rf"<{tag}\b[^>]*\s{name}=\"([^\"]*)\"", dom)
    return match.group(1) if match else None


def uncaught(log: str) -> list[str]:
    """Chromium's log lines of uncaught exceptions."""
    return [line for line in log.splitlines() if "CONSOLE" in line and "Uncaught" in line]


def refused(log: str) -> list[str]:
    """Chromium's log lines of loads a Content-Security-Policy refused."""
    return [line for line in log.splitlines() if "Content Security Policy" in line or "Refused to" in line]


def errors_shown(dom: str) -> str:
    """What the page's guard listed in ``<pre id="report-errors">`` (for assertion messages)."""
    match = re.search(r'<pre id="report-errors"[^>]*>(.*?)</pre>', dom, re.S)
    return match.group(1) if match else dom[:2000]


def check_rendered(dom: str, log: str, *, figures: int | None = None) -> None:
    """Assert that a dumped report page drew every figure (``figures`` of them, if given) with no
    error from either detector and no load a Content-Security-Policy refused."""
    assert attr(dom, "body", "data-report-state") == "rendered", dom[-3000:]
    if figures is not None:
        assert attr(dom, "body", "data-report-figures") == str(figures)
    assert attr(dom, "html", "data-report-errors") == "0", errors_shown(dom)
    assert uncaught(log) == [] and refused(log) == [], log[-3000:]


def rendered_dom(target: Path | str, profile: Path, *, figures: int | None = None) -> str:
    """Open ``target``, :func:`check_rendered` it, and return its DOM."""
    run = chromium(target, profile, "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    check_rendered(run.stdout, run.stderr, figures=figures)
    return run.stdout


def near(pixel: tuple[int, int, int], colour: str, alpha: float, tol: int = 10) -> bool:
    """Whether ``pixel`` is ``colour`` (``#rrggbb``) drawn with ``alpha`` over white."""
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    blended = [alpha * c + (1 - alpha) * 255 for c in rgb]
    return all(abs(p - b) <= tol for p, b in zip(pixel, blended))


def colours_of(png: Path, box: tuple[int, int, int, int] | None = None) -> set[tuple[int, int, int]]:
    """The distinct RGB colours of a screenshot (or of ``box`` = left, top, right, bottom in it)."""
    from PIL import Image

    image = Image.open(png).convert("RGB")
    if box is not None:
        image = image.crop(box)
    found = image.getcolors(maxcolors=image.width * image.height)
    assert found is not None
    return {rgb for _, rgb in found}
