"""Re-clustering by itself, as a user runs it: `embcluster serve` in its own process.

* a collection with a short interval schedule gets a model without anyone starting a run;
* a server killed (SIGKILL) during a run keeps serving the previous model after a restart,
  and the interrupted run is redone by itself (trigger ``restart``).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
from embcluster_client import EmbclusterClient, pb, schedule

from .test_serve import KILL_N, Server, kill_mid_write_back

pytestmark = pytest.mark.slow

FAST_TICK = {"EMBCLUSTER_SCHEDULE_TICK_S": "0.2"}


def _blobs(n: int, dim: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(100).normal(size=(k, dim)) * 5
    return centers[rng.integers(0, k, n)] + rng.normal(size=(n, dim))


def _wait_for_version(c: EmbclusterClient, name: str, version: int, timeout: float = 120) -> pb.Collection:
    deadline = time.monotonic() + timeout
    while True:
        col = c.get_collection(name)
        if col.served_model_version >= version or time.monotonic() > deadline:
            return col
        time.sleep(0.1)


def test_an_interval_schedule_re_clusters_by_itself(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", "--lazy-model", **FAST_TICK)
    try:
        c = server.client
        c.create_collection("auto", input_kind="vector", vector_dim=8, default_k=3)
        c.ingest_many("auto", [{"id": f"p{i}", "vector": v} for i, v in enumerate(_blobs(600, 8, 3, 0))],
                      batch_size=300)
        c.update_collection("auto", schedule=schedule(interval_s=2))  # after the ingest: one first run of all 600
        col = _wait_for_version(c, "auto", 1)
        assert col.served_model_version == 1, "no scheduled run within 120 s"
        model = c.get_model("auto")
        assert model.k == 3 and model.params["trigger"] == "interval"
        assert sum(cl.size for cl in c.list_clusters("auto").clusters) == 600
        time.sleep(3.0)  # an interval with nothing changed: no new version
        assert c.get_collection("auto").served_model_version == 1
        c.ingest("auto", [{"id": "late", "vector": [0.5] * 8}])
        col = _wait_for_version(c, "auto", 2)  # and again, an interval after the change
        assert col.served_model_version >= 2 and c.get_model("auto").params["trigger"] == "interval"

        c.update_collection("auto", schedule=schedule())  # off: no further runs
        at_switch = c.get_collection("auto").served_model_version
        time.sleep(6.0)  # three intervals: a schedule still on would have run (at least) twice more
        # At most the one run that may have started before the switch, however slow it is.
        assert c.get_collection("auto").served_model_version <= at_switch + 1
    finally:
        server.stop()


def test_a_run_killed_by_a_crash_is_redone_after_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    small_pages = {"EMBCLUSTER_PAGE_SIZE": "16", **FAST_TICK}  # many small write-back pages: a wide window
    first, run = kill_mid_write_back(data, small_pages)
    n = KILL_N
    server = Server(data, "--lazy-model", **small_pages)
    try:
        c = server.client
        col = c.get_collection("v")
        assert col.served_model_version == first.model_version and col.point_count == n  # previous model served
        killed = c.get_clustering_run("v", run.run_id)
        assert killed.state == pb.RUN_STATE_FAILED and "interrupted" in killed.error
        col = _wait_for_version(c, "v", killed.model_version + 1, timeout=300)
        assert col.served_model_version == killed.model_version + 1, "the interrupted run was not redone"
        redone = c.get_model("v")
        assert redone.k == 5 and redone.params["seed"] == 1 and redone.params["trigger"] == "restart"
        deadline = time.monotonic() + 120
        while True:  # the re-run's own catch-up finishes: every point on the new version
            listing = c.list_clusters("v")
            versions = {p.assignment.model_version for cl in listing.clusters
                        for p in c.iter_cluster_members("v", cl.cluster_id, page_size=1000)}
            assert versions == {col.served_model_version}  # readers only ever see the served version
            if not listing.provisional or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert not listing.provisional and listing.model_version == col.served_model_version
        assert sum(cl.size for cl in listing.clusters) == listing.point_count == n
    finally:
        server.stop()
