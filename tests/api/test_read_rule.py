"""Reads honour the consistency rule while a run writes its new version back (docs/architecture.md)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import grpc
import numpy as np
import pytest

from embcluster.config import Settings
from embcluster.runs import RunContext

from .conftest import Running

DIM = 4
N = 240


@pytest.fixture
def paused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Running, str, threading.Event]]:
    """A served v1, then run 2 paused after its first write-back page (outside the collection lock)."""
    r = Running(Settings(data_dir=tmp_path / "data", port=0, page_size=16))
    c = r.client
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, DIM)) * 8
    x = np.concatenate([cen + rng.normal(size=(N // 4, DIM)) for cen in centers])
    c.create_collection("c", input_kind="vector", vector_dim=DIM, distance="euclid")
    c.ingest("c", [{"id": f"p{i}", "vector": v.tolist()} for i, v in enumerate(x)])
    c.cluster("c", k=4, seed=0)
    reached, release = threading.Event(), threading.Event()
    original = RunContext.progress

    def progress(self, phase, fraction, **kw):  # type: ignore[no-untyped-def]
        if phase == "assigning" and self.info.points_labelled and not reached.is_set():
            reached.set()
            release.wait(60)
        return original(self, phase, fraction, **kw)

    monkeypatch.setattr(RunContext, "progress", progress)
    run = c.start_clustering("c", k=3, seed=1)
    assert reached.wait(60), "run 2 never reached its write-back"
    try:
        yield r, run.run_id, release
    finally:
        release.set()
        r.stop()


def test_readers_see_only_the_served_version_during_a_write_back(paused) -> None:  # type: ignore[no-untyped-def]
    r, run_id, release = paused
    c = r.client
    stored = {p.payload["model_version"] for p in r.service.registry.get("c").store.scroll(limit=N)[0]}
    assert stored == {1, 2}, "the test needs a half-written version 2"
    errors: list[str] = []

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(15):
                for hit in c.search("c", rng.normal(size=DIM).tolist(), limit=50):
                    if hit.point.assignment.model_version != 1:
                        errors.append(f"search served v{hit.point.assignment.model_version}")
                p = c.get_point("c", id=f"p{int(rng.integers(N))}")
                if p.assignment.model_version != 1:
                    errors.append(f"get_point served v{p.assignment.model_version}")
                listing = c.list_clusters("c")
                if not listing.provisional and sum(cl.size for cl in listing.clusters) != listing.point_count:
                    errors.append("cluster sizes do not add up and the listing is not provisional")
                for cl in listing.clusters:
                    for m in c.list_cluster_members("c", cl.cluster_id, page_size=1000).points:
                        if m.assignment.cluster_id != cl.cluster_id or m.assignment.model_version != 1:
                            errors.append("a listed member does not carry the listed cluster of v1")
        except grpc.RpcError as exc:
            errors.append(f"{exc.code()}: {exc.details()}")

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    points = [c.get_point("c", id=f"p{i}") for i in range(N)]
    assert any(p.relabelling for p in points) and all(p.assignment.model_version == 1 for p in points)
    assert c.list_clusters("c").provisional
    explained = c.explain_point("c", id="p0")
    assert explained.model_version == 1
    release.set()
    c.wait_for_run("c", run_id, timeout=60)
    after = c.list_clusters("c")
    assert after.model_version == 2 and not after.provisional
    assert sum(cl.size for cl in after.clusters) == after.point_count == N
    assert not any(c.get_point("c", id=f"p{i}").relabelling for i in range(0, N, 7))

