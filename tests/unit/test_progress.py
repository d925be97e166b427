"""Progress bars: tqdm on a terminal, short plain lines otherwise (never carriage returns)."""

from __future__ import annotations

import io

from embcluster.progress import Progress


def test_plain_lines_per_decile_and_label_change() -> None:
    out = io.StringIO()
    bar = Progress("ingest f", 100, unit="rows", stream=out, every_s=3600)
    for _ in range(100):
        bar.advance(1)
    bar.update_to(100, "ingest f (done)")
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    counts = [line.split(": ")[1].split()[0] for line in lines]
    # The first update, then one line per decile, then one for the new label; close adds none.
    assert counts == ["1/100"] + [f"{n}/100" for n in range(10, 101, 10)] + ["100/100"]
    assert lines[-1].startswith("ingest f (done): 100/100 rows 100.0%")


def test_percent_unit_and_unknown_total() -> None:
    out = io.StringIO()
    bar = Progress("cluster c (fitting)", 100.0, unit="%", stream=out)
    bar.update_to(35.0)
    bar.update_to(100.0, "cluster c (done)")
    bar.close()
    assert out.getvalue().splitlines() == ["cluster c (fitting): 35%", "cluster c (done): 100%"]
    out = io.StringIO()
    with Progress("rows", None, unit="rows", stream=out, every_s=0) as bar:
        bar.advance(5)
    assert out.getvalue().splitlines()[-1].startswith("rows: 5 rows (")


def test_tty_mode_draws_a_tqdm_bar() -> None:
    out = io.StringIO()
    bar = Progress("ingest f", 10, unit="rows", stream=out, tty=True)
    bar.update_to(4)
    bar.update_to(10, "ingest f (done)")
    bar.close()
    text = out.getvalue()
    assert "\r" in text and "10/10" in text and "ingest f (done)" in text and "rows/s" in text
