"""Shutdown: each step logged, and durable work left to the next start instead of redone at close."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embcluster.pipeline import EmbclusterService
from embcluster.schema import CollectionSpec, ItemInput, RunRequest, RunState

DIM = 8


def _model_versions(svc: EmbclusterService, name: str) -> dict[int, int]:
    coll = svc.registry.get(name)
    counts: dict[int, int] = {}
    offset = None
    while True:
        points, offset = coll.store.scroll(limit=500, offset=offset)
        for p in points:
            counts[p.payload["model_version"]] = counts.get(p.payload["model_version"], 0) + 1
        if offset is None:
            return counts


def test_a_shutdown_mid_write_back_leaves_the_revert_to_the_next_start(
        tmp_path: Path, make_service: Any, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    svc = make_service(data, page_size=16)  # 25 write-back pages
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(4, DIM)) * 6)[rng.integers(0, 4, 400)] + rng.normal(size=(400, DIM))
    svc.create_collection(CollectionSpec(name="c", input_kind="vector", metric="euclid", vector_dim=DIM))
    svc.ingest("c", [ItemInput(id=f"p{i}", vector=v.astype(np.float32)) for i, v in enumerate(x)])
    svc.start_clustering("c", RunRequest(k=4, seed=0))
    svc.runs.wait("c")
    assert svc.get_collection("c").served_model_version == 1
    coll = svc.registry.get("c")
    original = coll.store.set_fields
    writes = {"pages": 0, "reverted": 0}
    closer = threading.Thread(target=svc.close)

    def set_fields(updates):  # type: ignore[no-untyped-def]
        writes["pages"] += 1
        writes["reverted"] += sum(1 for _, fields in updates if fields["model_version"] == 1)
        if writes["pages"] == 5:  # run 2 is writing its labels: the server shuts down now
            closer.start()
        return original(updates)

    coll.store.set_fields = set_fields  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger="embcluster")
    run = svc.start_clustering("c", RunRequest(k=4, seed=1))
    deadline = time.monotonic() + 60
    while not closer.is_alive() and closer.ident is None and time.monotonic() < deadline:
        time.sleep(0.01)
    closer.join(60)
    assert not closer.is_alive()
    assert svc.runs.get("c", run.run_id).state is RunState.CANCELLED
    # A revert would have written v1's labels back onto the pages written so far: left to the next start.
    assert writes["reverted"] == 0 and writes["pages"] >= 5
    logged = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"shutdown: cancelling run {run.run_id} of c (assigning") for m in logged)
    assert "closing collection c (400 points)…" in logged
    assert any(m.startswith("closed collection c in ") for m in logged)

    again = make_service(data, page_size=16)  # the start-up catch-up puts every point back on v1
    again.wait_idle()
    assert again.get_collection("c").served_model_version == 1
    assert _model_versions(again, "c") == {1: 400}
