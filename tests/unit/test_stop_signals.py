"""``serve``'s signal handling: a SIGINT is answered wherever the main thread is when it lands."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from embcluster.stop_signals import Interrupted, StopSignals

# Runs in its own process (it replaces SIGINT's handler and traces the main thread). For every
# Python line the main thread executes while it waits — the waiting code's and anything it calls,
# e.g. a lock's bookkeeping — one trial raises SIGINT right there: the handler runs at that line,
# with whatever the main thread holds at that moment held. Each wait must end.
_AT_EVERY_LINE = textwrap.dedent("""
    import signal, sys, threading
    from embcluster.stop_signals import StopSignals

    trials = 0
    for n in range(1, 200):
        signals = StopSignals()
        signals.install()
        signals.enter("serving")
        seen = 0

        def tracer(frame, event, arg):
            global seen
            if event == "line":
                seen += 1
                if seen == n:
                    signal.raise_signal(signal.SIGINT)  # its handler runs at once or at the next bytecode
            return tracer

        def no_line_n():  # the wait has fewer lines than n: end it another way, and end the trials
            if seen < n:
                signals.request_stop()

        timer = threading.Timer(1.0, no_line_n)
        timer.start()
        sys.settrace(tracer)
        signals.wait()
        sys.settrace(None)
        timer.cancel()
        signals.restore()
        if seen < n:
            break
        assert signals.stopping and signals.signum == signal.SIGINT
        trials += 1
    print("trials", trials, flush=True)
""")


def test_a_signal_at_any_line_of_the_wait_ends_it() -> None:
    try:
        proc = subprocess.run([sys.executable, "-c", _AT_EVERY_LINE], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("a SIGINT landing inside StopSignals.wait() was never answered (the handler waited on a lock "
                    "the main thread held)")
    assert proc.returncode == 0, proc.stderr
    trials = int(proc.stdout.split()[-1])
    assert trials >= 2, proc.stdout  # the wait's own two lines at least


def test_a_stop_asked_from_another_thread_ends_the_wait() -> None:
    signals = StopSignals()
    try:
        threading.Timer(0.2, signals.request_stop).start()
        started = time.monotonic()
        signals.wait()
        assert signals.stopping
        assert time.monotonic() - started >= 0.15
        signals.request_stop()  # twice is harmless
    finally:
        signals.restore()
    signals.request_stop()  # after the sockets are closed: nothing raised, nothing written elsewhere


def test_install_off_the_main_thread_fails_cleanly_and_restore_is_idempotent() -> None:
    signals = StopSignals()
    failed: list[BaseException] = []

    def install() -> None:
        try:
            signals.install()
        except ValueError as exc:
            failed.append(exc)

    before = signal.getsignal(signal.SIGINT)
    worker = threading.Thread(target=install)
    worker.start()
    worker.join()
    assert failed, "installing signal handlers off the main thread should fail"
    assert signal.getsignal(signal.SIGINT) is before
    signals.restore()  # again: harmless
    mine = StopSignals()
    mine.install()
    mine.restore()
    mine.restore()
    assert signal.getsignal(signal.SIGINT) is before


def test_signals_before_opening_raise_then_ask_then_say_still(capfd: pytest.CaptureFixture[str]) -> None:
    signals = StopSignals()
    signals.install()
    try:
        with pytest.raises(Interrupted) as raised:
            signal.raise_signal(signal.SIGTERM)
        assert raised.value.signum == signal.SIGTERM and signals.stopping
        signals.enter("shutting down")
        signal.raise_signal(signal.SIGINT)  # the second: only says so
        assert signals.signum == signal.SIGTERM
        assert "still shutting down" in capfd.readouterr().err
        signals.wait()  # returns at once: a stop was asked for
    finally:
        signals.restore()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
