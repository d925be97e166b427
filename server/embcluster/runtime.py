"""Process-wide runtime set-up, applied once at start-up (never deep in the code)."""

from __future__ import annotations

import logging

__all__ = ["limit_blas_threads"]

logger = logging.getLogger(__name__)


def limit_blas_threads(threads: int) -> None:
    """Cap numpy's BLAS thread pool.

    The server's matrix products are small (an ingest batch against k centroids) and run
    beside gRPC, Qdrant Edge and FAISS threads; on a 2-core machine a multi-threaded BLAS call
    then waits on descheduled workers and a 0.2 ms product takes several ms (measured by
    ``bench/bench_online_scoring.py``). FAISS, which does the heavy fitting, keeps its own
    OpenMP threads.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")
    logger.debug("BLAS threads limited to %d", threads)
