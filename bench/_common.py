"""Shared helpers for the benchmark scripts.

Every benchmark compares a path through the service with a baseline run in the same
process, and reports the ratio; nothing is asserted. Helpers here:

* :class:`InProcessServer` — an :class:`EmbclusterService` plus a started :class:`GrpcServer`
  on ``127.0.0.1:<free port>`` over a temporary data directory, and a client connected to it;
* :func:`time_median` — median wall time of a callable over repeats (after warm-up calls);
* :func:`interleaved` — latencies of several paths timed call by call in rotating order;
* :func:`percentile` / :func:`summarize_ms` — latency percentiles;
* :func:`print_table` and :func:`emit_result` — the human table and the final
  ``RESULT {json}`` line.
"""

from __future__ import annotations

import os

# The bundled model is local; nothing may be fetched from a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Sequence  # noqa: E402

__all__ = [
    "InProcessServer",
    "cluster_labels",
    "time_median",
    "interleaved",
    "time_once",
    "percentile",
    "summarize_ms",
    "ratio",
    "print_table",
    "emit_result",
    "environment",
]


class InProcessServer:
    """Service core + gRPC server + client, all in this process, on a throw-away data directory.

    Usage::

        with InProcessServer() as srv:
            srv.client.create_collection(...)
            srv.service.classify(...)     # the in-process core, same objects the server uses

    Args:
        data_dir: Use this directory instead of a fresh temporary one (kept afterwards).
        **overrides: Extra :class:`Settings` fields (e.g. ``grpc_workers=4``).
    """

    def __init__(self, data_dir: Path | None = None, **overrides: Any) -> None:
        from embcluster.api.server import GrpcServer
        from embcluster.config import Settings
        from embcluster.pipeline import EmbclusterService
        from embcluster_client import EmbclusterClient

        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="embcluster-bench-"))
        self.settings = Settings(port=0, data_dir=self.data_dir / "data", log_level="WARNING", **overrides)
        self.service = EmbclusterService(self.settings)
        self.service.open()
        self.grpc = GrpcServer(self.service, self.settings)
        self.grpc.start()
        self.address = self.grpc.address
        self.client = EmbclusterClient(self.address, timeout=600.0)

    def text_embedder(self) -> Any:
        """The service's own default text embedder (loaded on first use; shared with collections)."""
        return self.service.embedders.text("")

    def scratch_dir(self, name: str) -> Path:
        """A directory under the benchmark's data directory (for baselines' own files)."""
        path = self.data_dir / "scratch" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def close(self) -> None:
        """Stop everything and remove the temporary data directory."""
        try:
            self.client.close()
        finally:
            try:
                self.grpc.stop(grace=0)
            finally:
                self.service.close()
                if self._own_dir:
                    shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "InProcessServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cluster_labels(client: Any, name: str, ids: Sequence[str], page_size: int = 1000) -> list[int]:
    """Each caller id's ``cluster_id`` under the served model, read back with ``ListClusterMembers``."""
    found: dict[str, int] = {}
    for cl in client.list_clusters(name).clusters:
        for p in client.iter_cluster_members(name, cl.cluster_id, page_size=page_size):
            found[p.external_id] = p.assignment.cluster_id
    return [found[i] for i in ids]


def time_once(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_median(fn: Callable[[], Any], *, repeats: int = 3, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall seconds of ``fn`` over ``repeats`` timed calls after ``warmup`` untimed ones.

    Returns:
        ``(median, all timings)``.
    """
    for _ in range(warmup):
        fn()
    times = [time_once(fn) for _ in range(max(1, repeats))]
    return statistics.median(times), times


def interleaved(paths: dict[str, Callable[[], Any]], r: int, warmup: int) -> dict[str, list[float]]:
    """``r`` timed calls of each path, call by call in rotating order, after ``warmup`` untimed rounds."""
    keys = list(paths)
    for _ in range(warmup):
        for key in keys:
            paths[key]()
    out: dict[str, list[float]] = {k: [] for k in keys}
    perf = time.perf_counter
    for i in range(r):
        shift = i % len(keys)
        for key in keys[shift:] + keys[:shift]:
            fn = paths[key]
            t0 = perf()
            fn()
            out[key].append(perf() - t0)
    return out


def percentile(samples: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) with linear interpolation between order statistics."""
    if not samples:
        return math.nan
    xs = sorted(samples)
    if len(xs) == 1:
        return float(xs[0])
    pos = (len(xs) - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def summarize_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 / mean in milliseconds of latencies given in seconds."""
    ms = [s * 1000.0 for s in samples_s]
    return {
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms) if ms else math.nan,
        "n": len(ms),
    }


def ratio(a: float, b: float) -> float:
    """``a / b`` (NaN when ``b`` is 0)."""
    return a / b if b else math.nan


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}"
    return str(value)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain, aligned text table."""
    cells = [list(map(str, header))] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    line = "  ".join("-" * w for w in widths)
    for i, row in enumerate(cells):
        print("  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print(line)
    sys.stdout.flush()


def environment() -> dict[str, Any]:
    """What the figures were taken on (for the JSON line)."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = bool(torch.cuda.is_available())
    except Exception:  # torch is only needed by the text benchmarks
        pass
    return info


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else round(obj, 6)
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def emit_result(bench: str, params: dict[str, Any], results: dict[str, Any]) -> None:
    """The final machine-readable line: ``RESULT {"bench": ..., "params": ..., "results": ...}``."""
    line = {"bench": bench, "params": params, "results": results, "env": environment()}
    print("RESULT " + json.dumps(_clean(line), sort_keys=True))
    sys.stdout.flush()


def quiet_logs() -> None:
    """Only warnings and errors from the service and libraries."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("embcluster", "sentence_transformers", "transformers", "grpc"):
        logging.getLogger(name).setLevel(logging.WARNING)
