"""ListPoints (the service core): every point exactly once, also while points are ingested,
replaced and deleted between pages; the filters against GetPoint; tokens and page sizes checked.

Both stores: Qdrant Edge and qdrant-client's local mode (the code path of the Qdrant server
backend). Small 8-d VECTOR collections, no gRPC.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from embcluster.core.listing import TOKEN_VERSION
from embcluster.errors import FailedPrecondition, InvalidArgument, NotFound
from embcluster.pipeline import EmbclusterService, point_id_for
from embcluster.runs import RunContext
from embcluster.schema import CollectionSettings, CollectionSpec, ItemInput, RunRequest, RunState
from embcluster.store.base import FieldMissing, PointFilter
from embcluster.store.server import QdrantConnection, QdrantStoreFactory

DIM = 8
K = 4
NAME = "pts"
SEQ = "ingest_seq"
CENTERS = np.random.default_rng(21).normal(size=(K, DIM)) * 6.0


def blobs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (CENTERS[np.arange(n) % K] + rng.normal(scale=0.4, size=(n, DIM))).astype(np.float32)


def items(x: np.ndarray, prefix: str, start: int = 0) -> list[ItemInput]:
    return [ItemInput(id=f"{prefix}{start + i}", vector=row.tolist(), metadata={"i": start + i})
            for i, row in enumerate(x)]


@pytest.fixture(params=["edge", "qdrant-local"])
def make(request: pytest.FixtureRequest, root: Path,
         make_service: Callable[..., EmbclusterService]) -> Iterator[Callable[[], EmbclusterService]]:
    """Opens the service on ``root`` (again after a close): Edge, or qdrant-client's local mode (one
    client for every reopen, as a Qdrant server outlives the service)."""
    factories: list[QdrantStoreFactory] = []

    def open_service() -> EmbclusterService:
        if request.param == "edge":
            return make_service(root)
        if not factories:
            factories.append(QdrantStoreFactory(QdrantConnection(path=":memory:"), prefix="lp_"))
        return make_service(root, store_factory=factories[0], store="qdrant", qdrant_path=":memory:")

    yield open_service
    for f in factories:
        f.close()


@pytest.fixture
def svc(make: Callable[[], EmbclusterService]) -> EmbclusterService:
    s = make()
    s.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM, metric="cosine",
                                       settings=CollectionSettings(contamination=0.05)))
    return s


def cluster(svc: EmbclusterService, k: int = K) -> None:
    info = svc.start_clustering(NAME, RunRequest(k=k, seed=0))
    svc.runs.wait(NAME, timeout=120)
    done = svc.get_run(NAME, info.run_id)
    assert done.state is RunState.SUCCEEDED, done.error


def stored_ids(svc: EmbclusterService) -> set[str]:
    store = svc.registry.get(NAME).store
    out: set[str] = set()
    offset = None
    while True:
        page, offset = store.scroll(limit=500, offset=offset, with_payload=False)
        out.update(p.id for p in page)
        if offset is None:
            return out


def page_all(svc: EmbclusterService, size: int, between: Callable[[int, list[str]], None] | None = None,
             **filters: object) -> list[str]:
    """Every page's point ids in order; ``between(page_no, ids so far)`` runs after each page."""
    out: list[str] = []
    token = ""
    page = 0
    while True:
        points, token = svc.list_points(NAME, page_size=size, page_token=token, **filters)  # type: ignore[arg-type]
        assert len(points) <= size
        out.extend(p.point_id for p in points)
        if not token:
            return out
        page += 1
        if between is not None:
            between(page, out)


# --------------------------------------------------------------------------- exactly once


def test_pages_every_point_exactly_once_while_points_are_ingested_and_replaced(svc: EmbclusterService) -> None:
    svc.ingest(NAME, items(blobs(120, seed=0), "p"))
    cluster(svc)
    rng = np.random.default_rng(5)
    replaced_seen: list[str] = []

    def between(page: int, listed: list[str]) -> None:
        if page > 12:  # 9 new points per page of 7: the listing must get to an end
            return
        # New points, with caller ids and random ids: their UUIDs sort anywhere, many before the cursor.
        fresh = items(blobs(6, seed=100 + page), f"new{page}-") + [
            ItemInput(vector=row.tolist()) for row in blobs(3, seed=200 + page)]
        svc.ingest(NAME, fresh)
        # Replace points already listed and points not listed yet (same id, another vector and metadata).
        done = [i for i in range(120) if point_id_for(NAME, f"p{i}") in set(listed)]
        todo = [i for i in range(120) if i not in done]
        pick = [int(rng.choice(done))] + ([int(rng.choice(todo))] if todo else [])
        replaced_seen.extend(point_id_for(NAME, f"p{i}") for i in pick)
        svc.ingest(NAME, [ItemInput(id=f"p{i}", vector=blobs(1, seed=300 + page + i)[0].tolist(),
                                    metadata={"replaced": page}) for i in pick])

    listed = page_all(svc, 7, between)
    assert len(listed) == len(set(listed)), "a point was listed twice"
    assert set(listed) == stored_ids(svc)
    assert len(listed) == 120 + 12 * 9
    assert set(replaced_seen) <= set(listed)


def test_a_point_ingested_during_paging_comes_after_the_pages_already_read(svc: EmbclusterService) -> None:
    svc.ingest(NAME, items(blobs(30, seed=1), "a"))
    first, token = svc.list_points(NAME, page_size=10)
    smallest = str(uuid.UUID(int=1))  # sorts before every other id: point-id paging would skip it
    svc.ingest(NAME, [ItemInput(id="late", vector=blobs(1, seed=9)[0].tolist())])
    rest: list[str] = []
    while token:
        page, token = svc.list_points(NAME, page_size=10, page_token=token)
        rest.extend(p.external_id for p in page)
    assert rest[-1] == "late" and rest.count("late") == 1
    assert smallest not in rest
    assert len(first) + len(rest) == 31


def test_replaced_points_keep_their_place_and_deleted_ones_go(svc: EmbclusterService) -> None:
    svc.ingest(NAME, items(blobs(40, seed=2), "r"))
    order = page_all(svc, 1000)
    svc.ingest(NAME, items(blobs(40, seed=3), "r")[::-1])  # every point replaced, in the opposite order
    assert page_all(svc, 1000) == order
    svc.delete_points(NAME, ids=["r0", "r39"])
    assert page_all(svc, 9) == order[1:-1]
    svc.ingest(NAME, [ItemInput(id="r0", vector=blobs(1, seed=4)[0].tolist())])  # a new point again: last
    assert page_all(svc, 9) == order[1:-1] + [point_id_for(NAME, "r0")]


def test_sequence_numbers_keep_rising_after_a_restart(svc: EmbclusterService,
                                                      make: Callable[[], EmbclusterService]) -> None:
    svc.ingest(NAME, items(blobs(20, seed=6), "s"))
    before = page_all(svc, 8)
    svc.delete_points(NAME, ids=["s19"])  # the newest point: its number must not be handed out again
    svc.close()
    again = make()
    again.ingest(NAME, items(blobs(3, seed=7), "t"))
    listed = page_all(again, 8)
    assert listed == before[:-1] + [point_id_for(NAME, f"t{i}") for i in range(3)]


def test_points_stored_without_a_sequence_number_come_first_and_once(svc: EmbclusterService) -> None:
    """Data stored before sequence numbers existed: listed first in point-id order, replaced in place."""
    coll = svc.registry.get(NAME)
    old = [point_id_for(NAME, f"old{i}") for i in range(25)]
    with coll.lock:  # written the way an older server wrote them: no ingest_seq
        coll.write_points(old, blobs(25, seed=8), [{"external_id": f"old{i}", "meta": {}} for i in range(25)])
    coll.seq_next = 0  # as freshly opened
    svc.ingest(NAME, items(blobs(15, seed=9), "n"))
    assert coll.store.count(PointFilter(must=(FieldMissing(SEQ),))) == 25

    def between(page: int, listed: list[str]) -> None:
        if page >= 25:
            return
        svc.ingest(NAME, [ItemInput(id=f"old{page}", vector=blobs(1, seed=50 + page)[0].tolist()),
                          ItemInput(id=f"more{page}", vector=blobs(1, seed=70 + page)[0].tolist())])

    listed = page_all(svc, 6, between)
    assert len(listed) == len(set(listed))
    assert set(listed) == stored_ids(svc)
    assert listed[:25] == sorted(old, key=lambda i: uuid.UUID(i))
    assert coll.store.count(PointFilter(must=(FieldMissing(SEQ),))) == 25  # a replaced old point keeps no number


def test_paging_while_another_thread_ingests(svc: EmbclusterService) -> None:
    svc.ingest(NAME, items(blobs(200, seed=10), "c"))
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        n = 0
        try:
            while not stop.is_set() and n < 400:
                svc.ingest(NAME, items(blobs(10, seed=1000 + n), "w", start=n))
                svc.ingest(NAME, items(blobs(5, seed=2000 + n), "c", start=(n * 7) % 200))  # replacements
                n += 10
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    try:
        listed = page_all(svc, 13)
    finally:
        stop.set()
        t.join()
    assert not errors
    assert len(listed) == len(set(listed))
    assert {point_id_for(NAME, f"c{i}") for i in range(200)} <= set(listed)


# --------------------------------------------------------------------------- filters


def test_filters_agree_with_get_point(svc: EmbclusterService) -> None:
    svc.ingest(NAME, items(blobs(160, seed=11), "f"))
    cluster(svc)
    every = page_all(svc, 50)
    truth = {pid: svc.get_point(NAME, point_id=pid).assignment for pid in every}
    version = svc.registry.get(NAME).model.version  # type: ignore[union-attr]
    clusters = {a.cluster_id for a in truth.values() if a is not None}
    assert len(clusters) == K
    for cid in clusters:
        assert sorted(page_all(svc, 11, cluster_id=cid)) == sorted(p for p, a in truth.items() if a.cluster_id == cid)
    flagged = sorted(p for p, a in truth.items() if a.is_anomaly)
    assert flagged, "contamination 0.05 flags some points"
    assert sorted(page_all(svc, 11, anomaly=True)) == flagged
    assert sorted(page_all(svc, 11, anomaly=False)) == sorted(set(every) - set(flagged))
    assert sorted(page_all(svc, 50, model_version=version)) == sorted(every)
    assert page_all(svc, 50, model_version=version + 1) == []
    cid = min(clusters)
    both = page_all(svc, 7, cluster_id=cid, anomaly=True)
    assert sorted(both) == sorted(p for p in flagged if truth[p].cluster_id == cid)
    points, _ = svc.list_points(NAME, page_size=1000)
    assert all(p.assignment is not None and p.assignment.model_version == version and not p.relabelling
               for p in points)
    assert {p.metadata["i"] for p in points} == set(range(160))


def test_model_version_filter_during_a_write_back_shows_served_fields(svc: EmbclusterService,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    svc.ingest(NAME, items(blobs(200, seed=12), "w"))
    cluster(svc)
    served = svc.registry.get(NAME).model.version  # type: ignore[union-attr]
    reached, release = threading.Event(), threading.Event()
    original = RunContext.progress

    def progress(self, phase, fraction, **kw):  # type: ignore[no-untyped-def]
        # Paused after the write-back's first page, outside the collection lock.
        if phase == "assigning" and self.info.points_labelled and not reached.is_set():
            reached.set()
            release.wait(60)
        return original(self, phase, fraction, **kw)

    monkeypatch.setattr(RunContext, "progress", progress)
    svc.start_clustering(NAME, RunRequest(k=K, seed=1))
    try:
        assert reached.wait(timeout=60)
        new = page_all(svc, 9, model_version=served + 1)
        old = page_all(svc, 9, model_version=served)
        assert new and old and not set(new) & set(old)
        assert sorted(new + old) == sorted(stored_ids(svc))
        points, _ = svc.list_points(NAME, page_size=1000, model_version=served + 1)
        assert [p.point_id for p in points] == new
        assert all(p.relabelling and p.assignment is not None and p.assignment.model_version == served
                   for p in points)  # never the version being written
        one_by_one = [svc.get_point(NAME, point_id=pid).assignment for pid in new]
        key = [(a.cluster_id, a.is_anomaly, a.model_version) for a in one_by_one]  # type: ignore[union-attr]
        assert [(a.cluster_id, a.is_anomaly, a.model_version) for a in (p.assignment for p in points)] == key  # type: ignore[union-attr]
    finally:
        release.set()
        svc.runs.wait(NAME, timeout=120)


# --------------------------------------------------------------------------- checks


def test_bad_tokens_and_page_sizes_are_invalid_argument(svc: EmbclusterService) -> None:
    svc.ingest(NAME, items(blobs(30, seed=13), "b"))
    _, token = svc.list_points(NAME, page_size=5)
    assert token
    # A well-formed token without its collection and filters was an INTERNAL KeyError.
    partial = base64.urlsafe_b64encode(json.dumps({"v": TOKEN_VERSION, "p": "id"}).encode()).decode().rstrip("=")
    for bad in ("not-a-token", token[:-3] + "@@@", "eyJ2IjoxfQ", token + "x", partial):
        with pytest.raises(InvalidArgument, match="page_token") as exc:
            svc.list_points(NAME, page_size=5, page_token=bad)
        assert bad[:40] in exc.value.message
    with pytest.raises(InvalidArgument, match="keep the collection and the filters"):
        svc.list_points(NAME, page_size=5, page_token=token, anomaly=True)
    with pytest.raises(InvalidArgument, match=r"page_size must be in \[1, 1000\], got 1001"):
        svc.list_points(NAME, page_size=1001)
    with pytest.raises(InvalidArgument, match="model_version must be at least 1, got 0"):
        svc.list_points(NAME, model_version=0)
    with pytest.raises(FailedPrecondition):
        svc.list_points(NAME, cluster_id=0)  # no model yet
    cluster(svc)
    with pytest.raises(NotFound, match="cluster 99 not in model"):
        svc.list_points(NAME, cluster_id=99)
    with pytest.raises(NotFound):
        svc.list_points("nope")
    assert len(svc.list_points(NAME)[0]) == 30  # page_size 0: the default (100)


def test_random_ids_are_not_looked_up_and_still_listed_once(svc: EmbclusterService) -> None:
    """An item without an id gets a fresh random point id, which the store cannot hold: ingest does not
    ask the store for its sequence number (one read less per batch), and paging still lists it once."""
    coll = svc.registry.get(NAME)
    asked: list[str] = []
    retrieve = coll.store.retrieve

    def spy(ids, *args, **kwargs):  # type: ignore[no-untyped-def]
        asked.extend(str(i) for i in ids)
        return retrieve(ids, *args, **kwargs)

    coll.store.retrieve = spy  # type: ignore[method-assign]
    x = blobs(12, seed=31)
    svc.ingest(NAME, [ItemInput(id="", vector=row.tolist()) for row in x[:8]] + items(x[8:], "named"))
    named = {point_id_for(NAME, f"named{i}") for i in range(4)}
    assert set(asked) == named  # only the caller-named ids were looked up
    coll.store.retrieve = retrieve  # type: ignore[method-assign]
    points, _ = svc.list_points(NAME, page_size=100)
    assert len(points) == 12 and len({p.point_id for p in points}) == 12
