"""SIGINT/SIGTERM of ``embcluster serve``, handled without taking a lock.

A Python signal handler runs in the main thread between two bytecodes, possibly while that thread
holds a lock: a handler that takes the same lock waits for itself forever. ``threading.Event.set``
takes the Event's condition lock, which the main thread holds for a few bytecodes each time it
enters or leaves ``Event.wait`` — a SIGINT landing there hung ``serve`` (seen once in CI: a Ctrl-C
right after the ready line was never answered). So the handler only sets a flag, and the main
thread waits by reading a socket that the interpreter's C-level handler writes to the moment a
signal arrives (:func:`signal.set_wakeup_fd`): a signal that lands after the flag was read but
before the read began still ends the read, although its Python handler only runs afterwards.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from types import FrameType
from typing import Any

__all__ = ["Interrupted", "StopSignals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A signal during the part of start-up where nothing needs closing (raised from the handler)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StopSignals:
    """What each SIGINT/SIGTERM does depends on how far the process is.

    * ``raising`` (start-up before the data directory is opened): raise :class:`Interrupted`;
    * afterwards the first one asks to stop (:meth:`wait` returns; :attr:`stopping` is true);
    * a second one says the process is still starting or shutting down;
    * a third exits at once.

    :meth:`request_stop` asks the same from any thread (the model loader's failure).
    """

    def __init__(self) -> None:
        self.signum = 0
        self.raising = True
        self.phase = "starting"
        self.since = time.monotonic()
        self._stopping = False
        self._count = 0
        self._previous: dict[int, Any] = {}
        self._previous_wakeup = -1
        self._installed = False
        # A socket pair rather than os.pipe(): once closed, a late write fails instead of reaching
        # whatever file reused the descriptor number.
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_write.setblocking(False)  # a full buffer already holds a wake-up

    @property
    def stopping(self) -> bool:
        """A stop was asked for (by a signal or :meth:`request_stop`)."""
        return self._stopping

    def install(self) -> None:
        """Handle SIGINT and SIGTERM from now on (call from the main thread; elsewhere ValueError)."""
        try:
            self._previous_wakeup = signal.set_wakeup_fd(self._wake_write.fileno(), warn_on_full_buffer=False)
        except ValueError:
            self.restore()
            raise
        self._installed = True
        for sig in _SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        """Put back what :meth:`install` replaced (if it ran) and close the wake-up sockets; idempotent."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
        if self._installed:
            signal.set_wakeup_fd(self._previous_wakeup)
            self._installed = False
        self._wake_read.close()
        self._wake_write.close()

    def enter(self, phase: str) -> None:
        """Now ``phase`` (``opening``, ``serving``, ``shutting down``): a signal asks to stop."""
        self.raising, self.phase, self.since = False, phase, time.monotonic()

    def request_stop(self) -> None:
        """Ask the main thread to stop; safe from any thread and from the signal handler."""
        self._stopping = True
        try:
            self._wake_write.send(b"\0")
        except OSError:  # full (a wake-up is waiting already) or closed (nobody waits any more)
            pass

    def wait(self) -> None:
        """Block the calling (main) thread until a stop is asked for."""
        while not self._stopping:
            # Ended by the byte a signal's arrival writes (its Python handler runs at the loop's
            # next turn, before the flag is read again) or by request_stop's.
            self._wake_read.recv(64)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._count += 1
        if self._count == 1:
            self.signum = signum
            self.request_stop()
            if self.raising:
                raise Interrupted(signum)
            return
        if self._count == 2:
            _say(f"embcluster: still {self.phase} ({time.monotonic() - self.since:.0f} s so far; the log shows each "
                 "step). Acknowledged writes are already safe: signal once more to exit at once (the next start "
                 "repairs what is left)")
            return
        _say("embcluster: exiting without finishing; acknowledged writes are safe, the next start repairs the rest")
        try:
            logging.shutdown()  # may raise if the main thread was writing to the same stream
        finally:
            os._exit(128 + signum)


def _say(line: str) -> None:
    """One line on stderr, written directly: a signal handler must not wait on a stream's lock."""
    try:
        os.write(2, (line + "\n").encode())
    except OSError:
        pass
