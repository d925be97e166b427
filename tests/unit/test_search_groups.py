"""Search grouped by cluster (the service core): groups of the served model, best first, with labels,
checked against brute force and GetPoint; the read rule during a write-back; the arguments checked.

Both stores: Qdrant Edge (grouped from plain searches) and qdrant-client's local mode (Qdrant's
own group-by query).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from embcluster.errors import FailedPrecondition, InvalidArgument
from embcluster.insight.summary import ClusterSummary, RunSummaries
from embcluster.pipeline import EmbclusterService
from embcluster.runs import RunContext
from embcluster.schema import CollectionSpec, ItemInput, RunRequest, RunState
from embcluster.store.server import QdrantConnection, QdrantStoreFactory

DIM = 8
K = 5
NAME = "grp"
CENTERS = np.random.default_rng(31).normal(size=(K, DIM)) * 4.0


def blobs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (CENTERS[np.arange(n) % K] + rng.normal(scale=0.8, size=(n, DIM))).astype(np.float32)


@pytest.fixture(params=["edge", "qdrant-local"])
def svc(request: pytest.FixtureRequest, root: Path,
        make_service: Callable[..., EmbclusterService]) -> Iterator[EmbclusterService]:
    if request.param == "edge":
        s = make_service(root)
        factory = None
    else:
        factory = QdrantStoreFactory(QdrantConnection(path=":memory:"), prefix="sg_")
        s = make_service(root, store_factory=factory, store="qdrant", qdrant_path=":memory:")
    s.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM, metric="euclid"))
    yield s
    s.close()
    if factory is not None:
        factory.close()


def clustered(svc: EmbclusterService, x: np.ndarray) -> None:
    svc.ingest(NAME, [ItemInput(id=f"p{i}", vector=row.tolist()) for i, row in enumerate(x)])
    info = svc.start_clustering(NAME, RunRequest(k=K, seed=0))
    svc.runs.wait(NAME, timeout=120)
    assert svc.get_run(NAME, info.run_id).state is RunState.SUCCEEDED


def expected(svc: EmbclusterService, x: np.ndarray, q: np.ndarray, groups: int, size: int) -> list[tuple[int, list[str]]]:
    """Brute force over the served labels (GetPoint): clusters by their nearest member, nearest members first."""
    cid = [svc.get_point(NAME, id=f"p{i}").assignment.cluster_id for i in range(len(x))]  # type: ignore[union-attr]
    d = np.linalg.norm(x - q, axis=1)
    by: dict[int, list[int]] = {}
    for i in np.argsort(d, kind="stable"):
        by.setdefault(cid[i], []).append(int(i))
    ranked = sorted(by.items(), key=lambda kv: d[kv[1][0]])[:groups]
    return [(c, [f"p{i}" for i in members[:size]]) for c, members in ranked]


def test_groups_are_the_served_clusters_best_first(svc: EmbclusterService) -> None:
    x = blobs(300, seed=0)
    clustered(svc, x)
    rng = np.random.default_rng(1)
    for groups, size in ((3, 2), (5, 3), (2, 40), (1, 1)):
        q = rng.normal(size=DIM).astype(np.float32) * 3
        got = svc.search_groups(NAME, vector=q.tolist(), groups=groups, group_size=size)
        assert [(g.cluster_id, [h.point.external_id for h in g.hits]) for g in got] == expected(svc, x, q, groups,
                                                                                                 size)
        assert len(got) <= groups and all(len(g.hits) <= size for g in got)
        for g in got:
            assert all(h.point.assignment is not None and h.point.assignment.cluster_id == g.cluster_id
                       for h in g.hits)
            assert [h.score for h in g.hits] == sorted(h.score for h in g.hits)  # euclid: distances, nearest first
            assert g.label == ""  # no summaries in this version
        bests = [g.hits[0].score for g in got]
        assert bests == sorted(bests)
    default = svc.search_groups(NAME, vector=x[0].tolist())
    assert len(default) == 5 and all(len(g.hits) == 3 for g in default)  # groups 5, group_size 3
    assert default[0].hits[0].point.external_id == "p0"


def test_groups_carry_the_served_versions_labels(svc: EmbclusterService) -> None:
    x = blobs(150, seed=2)
    clustered(svc, x)
    model = svc.registry.get(NAME).model
    assert model is not None
    named = [int(c) for c in model.cluster_ids][:3]  # the others have no summary
    model.summaries = RunSummaries(input_kind="vector", clusters=[
        ClusterSummary(cluster_id=c, size=1, share=0.1, radius=1.0, anomaly_count=0, kind="keywords",
                       label=f"group {c}") for c in named])
    got = svc.search_groups(NAME, vector=x[0].tolist(), groups=K, group_size=1)
    assert {g.cluster_id for g in got} == {int(c) for c in model.cluster_ids}
    assert {g.cluster_id: g.label for g in got} == {int(c): (f"group {c}" if c in named else "")
                                                    for c in model.cluster_ids}


def test_during_a_write_back_hits_are_grouped_by_the_served_version(svc: EmbclusterService,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    x = blobs(200, seed=3)
    clustered(svc, x)
    served = svc.registry.get(NAME).model
    reached, release = threading.Event(), threading.Event()
    original = RunContext.progress

    def progress(self, phase, fraction, **kw):  # type: ignore[no-untyped-def]
        if phase == "assigning" and self.info.points_labelled and not reached.is_set():
            reached.set()
            release.wait(60)
        return original(self, phase, fraction, **kw)

    monkeypatch.setattr(RunContext, "progress", progress)
    svc.start_clustering(NAME, RunRequest(k=3, seed=1))  # other clusters: the write-back moves points
    try:
        assert reached.wait(60)
        stored = {p.payload["model_version"] for p in svc.registry.get(NAME).store.scroll(limit=1000)[0]}
        assert len(stored) == 2, "the test needs a half-written new version"
        ids = {int(c) for c in served.cluster_ids}  # type: ignore[union-attr]
        for q in x[:20]:
            for g in svc.search_groups(NAME, vector=q.tolist(), groups=K, group_size=4):
                assert g.cluster_id in ids
                for h in g.hits:
                    a = h.point.assignment
                    assert a is not None and a.model_version == served.version and a.cluster_id == g.cluster_id  # type: ignore[union-attr]
    finally:
        release.set()
        svc.runs.wait(NAME, timeout=120)


def test_arguments_are_checked(svc: EmbclusterService) -> None:
    x = blobs(40, seed=4)
    svc.ingest(NAME, [ItemInput(id=f"p{i}", vector=row.tolist()) for i, row in enumerate(x)])
    with pytest.raises(FailedPrecondition, match="no cluster model yet"):
        svc.search_groups(NAME, vector=x[0].tolist())
    for kw, msg in (({"groups": 101}, r"groups must be in \[1, 100\], got 101"),
                    ({"group_size": 101}, r"group_size must be in \[1, 100\], got 101"),
                    ({"groups": 50, "group_size": 30}, r"at most 1000, got 50 x 30 = 1500"),
                    ({"limit": 10}, "limit 10 applies to plain search"),
                    ({"cluster_id": 2}, "cluster_id 2 restricts a plain search")):
        with pytest.raises(InvalidArgument, match=msg):
            svc.search_groups(NAME, vector=x[0].tolist(), **kw)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="dimension"):
        svc.search_groups(NAME, vector=[1.0, 2.0])
