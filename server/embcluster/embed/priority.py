"""The OS scheduling priority of one thread: bulk embedding yields the cores to everything else.

On Linux a nice value belongs to a thread, not to the whole process, and the threads a thread
starts inherit it, so a worker that lowers its own priority before its first forward pass also
lowers torch's OpenMP threads (the team a thread's first parallel region starts). Lowering needs
no privilege; raising it back would, so the worker never does.

Thread pools shared by the whole process keep the priority of the thread that created them:
ONNX Runtime's (made with the session, at load) and the ``tokenizers`` library's (made at the
first tokenization). Every text embedder therefore embeds once at load, on a thread of normal
priority, so neither pool is ever created by a lowered thread.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

__all__ = ["lower_thread_priority", "thread_nice"]

logger = logging.getLogger(__name__)


def thread_nice() -> int | None:
    """The calling thread's nice value (Linux), or None where threads have none of their own."""
    if not sys.platform.startswith("linux"):
        return None
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def lower_thread_priority(nice: int) -> bool:
    """Run the calling thread (and the threads it starts from now on) at nice ``nice`` at least.

    ``nice`` is absolute, not added: a thread already at ``nice`` or lower priority (a service
    started with ``nice -n 15``, say) is left as it is; ``nice`` 0 does nothing.

    Args:
        nice: The nice value, 0 (normal) to 19 (lowest).

    Returns:
        Whether the thread now runs at nice ``nice`` or lower priority. False where threads have
        no priority of their own (not Linux) or the system refused (logged once per call).
    """
    if nice <= 0:
        return False
    name = threading.current_thread().name
    try:
        current = thread_nice()
        if current is None:
            logger.info("thread priorities are per process on %s: %s keeps its priority", sys.platform, name)
            return False
        if current < nice:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as exc:  # a sandbox may forbid it; the thread still works, at normal priority
        logger.warning("could not lower the priority of thread %s to nice %d: %s", name, nice, exc)
        return False
    return True
