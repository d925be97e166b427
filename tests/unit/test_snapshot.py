"""Snapshots (embcluster.snapshot): export a collection to one file, import it into either backend.

VECTOR collections (8-d blobs, a few hundred points, two model versions), Qdrant Edge in
tmp_path and qdrant-client's in-process local mode; no gRPC and no text model.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from embcluster.config import Settings
from embcluster.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from embcluster.pipeline import EmbclusterService, point_id_for
from embcluster.schema import CollectionSpec, ItemInput, RunRequest, RunState
from embcluster.snapshot import export_collection, import_collection, verify_snapshot
from embcluster.store.server import QdrantConnection, QdrantStoreFactory

DIM = 8
K = 4
NAME = "src"
N = 300
CENTERS = np.random.default_rng(7).normal(size=(K, DIM)) * 6.0


def blobs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (CENTERS[np.arange(n) % K] + rng.normal(scale=0.4, size=(n, DIM))).astype(np.float32)


def run(svc: EmbclusterService, name: str, **kw) -> None:  # type: ignore[no-untyped-def]
    info = svc.start_clustering(name, RunRequest(seed=0, **kw))
    svc.runs.wait(name, timeout=120)
    assert svc.get_run(name, info.run_id).state == RunState.SUCCEEDED


@pytest.fixture
def source(tmp_path: Path, make_service):  # type: ignore[no-untyped-def]
    """A cosine VECTOR collection with two model versions (v2 served) and mixed ids."""
    svc = make_service(tmp_path / "a")
    svc.create_collection(CollectionSpec(name=NAME, input_kind="vector", vector_dim=DIM, metric="cosine"))
    x = blobs(N, 1)
    items = [ItemInput(id=f"p{i}" if i % 10 else "", vector=row.tolist(),
                       metadata={"i": i, "tag": "ünï", "nested": {"f": i / 3}}) for i, row in enumerate(x)]
    for s in range(0, N, 100):
        svc.ingest(NAME, items[s:s + 100])
    run(svc, NAME, k=K)
    run(svc, NAME, k=K + 1)
    yield svc
    svc.close()


def all_points(svc: EmbclusterService, name: str) -> dict[str, tuple[np.ndarray, dict]]:
    coll = svc.registry.get(name)
    out: dict[str, tuple[np.ndarray, dict]] = {}
    offset = None
    while True:
        page, offset = coll.store.scroll(limit=100, offset=offset, with_vectors=True)
        out.update({p.id: (p.vector, p.payload) for p in page})
        if offset is None:
            return out


def canon(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def model_files(svc: EmbclusterService, name: str) -> dict[int, tuple[bytes, bytes]]:
    coll = svc.registry.get(name)
    return {v: ((coll.models.directory / f"v{v}" / "model.json").read_bytes(),
                (coll.models.directory / f"v{v}" / "centroids.npy").read_bytes()) for v in coll.models.versions()}


def assert_same_answers(a: EmbclusterService, a_name: str, b: EmbclusterService, b_name: str) -> None:
    queries = [ItemInput(vector=row.tolist()) for row in blobs(40, 99)]
    assert a.classify(a_name, queries) == b.classify(b_name, queries)
    va, ca = a.list_clusters(a_name)
    vb, cb = b.list_clusters(b_name)
    assert va == vb and ca == cb


def test_edge_to_edge_under_a_new_name(source: EmbclusterService, tmp_path: Path) -> None:
    state = source.registry.get(NAME).directory
    (state / "featurizers").mkdir()
    (state / "featurizers" / "f1.json").write_text('{"schema_version": 1}')  # other state files travel along
    (state / ".collection.json.tmp").write_text("{}")  # temp files do not
    progress: list[tuple[str, int, int]] = []
    out = export_collection(source, NAME, str(tmp_path / "snap.tar"), on_progress=lambda *a: progress.append(a))
    assert out.points == N and out.models == 2 and out.served_model_version == 2
    assert out.sha256 == hashlib.sha256((tmp_path / "snap.tar").read_bytes()).hexdigest()
    assert out.bytes == (tmp_path / "snap.tar").stat().st_size
    assert progress[-1] == ("export", N, N) and len(progress) == -(-N // 64)

    got = import_collection(source, str(tmp_path / "snap.tar"), name="copy")
    assert (got.collection, got.source_collection, got.points, got.models) == ("copy", NAME, N, 2)
    assert got.sha256 == out.sha256 and got.served_model_version == 2

    before, after = all_points(source, NAME), all_points(source, "copy")
    assert len(after) == N
    for pid, (vec, payload) in before.items():
        ext = payload["external_id"]
        new_id = point_id_for("copy", ext) if ext else pid  # caller ids map to the new name's ids
        assert new_id in after, pid
        assert np.allclose(after[new_id][0], vec) and canon(after[new_id][1]) == canon(payload)
    assert source.get_point("copy", id="p1").metadata == {"i": 1, "tag": "ünï", "nested": {"f": 1 / 3}}
    assert model_files(source, NAME) == model_files(source, "copy")
    copied = source.registry.get("copy").directory
    assert (copied / "featurizers" / "f1.json").read_text() == '{"schema_version": 1}'
    assert not (copied / ".collection.json.tmp").exists()
    rec_a, rec_b = source.registry.get(NAME).record, source.registry.get("copy").record
    assert (rec_b.served_version, rec_b.next_version, rec_b.next_cluster_id) == \
        (rec_a.served_version, rec_a.next_version, rec_a.next_cluster_id)
    assert_same_answers(source, NAME, source, "copy")
    # The copy is a full collection: its vector log agrees with the store, runs continue the numbering.
    run(source, "copy", k=K)
    assert source.get_collection("copy").served_model_version == rec_a.next_version
    source.ingest("copy", [ItemInput(id="p1", vector=blobs(1, 5)[0].tolist())])  # replaces, no duplicate
    assert source.get_collection("copy").point_count == N


def test_edge_to_qdrant_local_mode_keeps_ids_models_and_answers(source: EmbclusterService, tmp_path: Path, make_service) -> None:
    export_collection(source, NAME, str(tmp_path / "snap.tar"))
    factory = QdrantStoreFactory(QdrantConnection(path=":memory:"), prefix="t_")
    other = make_service(tmp_path / "b", store_factory=factory)
    try:
        got = import_collection(other, str(tmp_path / "snap.tar"))
        assert got.collection == NAME and got.points == N
        before, after = all_points(source, NAME), all_points(other, NAME)
        assert before.keys() == after.keys()  # same name: point ids kept
        for pid, (vec, payload) in before.items():
            assert np.allclose(after[pid][0], vec, atol=1e-6)
            assert canon(after[pid][1]) == canon(payload)
        assert model_files(source, NAME) == model_files(other, NAME)
        assert other.get_collection(NAME).served_model_version == 2
        assert_same_answers(source, NAME, other, NAME)
        # And back: a snapshot of the local-mode copy imports into Edge with the same points.
        export_collection(other, NAME, str(tmp_path / "back.tar"))
        import_collection(source, str(tmp_path / "back.tar"), name="back")
        again = all_points(source, "back")
        assert {canon(p) for _, p in again.values()} == {canon(p) for _, p in before.values()}
    finally:
        other.close()
        factory.close()


def rewrite(src: Path, dst: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Copy a snapshot, letting ``edit(name, data, manifest)`` change members; checksums recomputed."""
    with tarfile.open(src) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    manifest = json.loads(dict(members)["manifest.json"])
    entries = []
    with tarfile.open(dst, "w") as out:
        for name, data in members:
            if name == "manifest.json":
                continue
            data = edit(name, data, manifest)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
            entries.append({"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        manifest["members"] = entries
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))


def assert_nothing_left(svc: EmbclusterService, name: str) -> None:
    assert name not in [c.name for c in svc.list_collections()]
    assert not (svc.root / "collections" / name).exists()
    assert not (svc.root / "shards" / name).exists()


def test_corrupt_or_truncated_files_are_invalid_argument_naming_the_member(
        source: EmbclusterService, tmp_path: Path) -> None:
    snap = tmp_path / "snap.tar"
    export_collection(source, NAME, str(snap))
    raw = bytearray(snap.read_bytes())
    with tarfile.open(snap) as tar:
        member = next(m for m in tar.getmembers() if m.name == "points/000002.f32")
    raw[member.offset_data + 5] ^= 0xFF
    (tmp_path / "flipped.tar").write_bytes(bytes(raw))
    with pytest.raises(InvalidArgument, match=r"member 'points/000002\.f32' is corrupt"):
        import_collection(source, str(tmp_path / "flipped.tar"), name="x")
    assert_nothing_left(source, "x")

    whole = snap.read_bytes()
    (tmp_path / "cut.tar").write_bytes(whole[: member.offset_data + 100])
    with pytest.raises(InvalidArgument, match=r"truncated|points/000002\.f32"):
        import_collection(source, str(tmp_path / "cut.tar"), name="x")
    (tmp_path / "cut2.tar").write_bytes(whole[: len(whole) // 2 // 512 * 512])  # at a block boundary
    with pytest.raises(InvalidArgument, match="truncated"):
        import_collection(source, str(tmp_path / "cut2.tar"), name="x")
    (tmp_path / "junk.tar").write_bytes(b"not a tar file" * 100)
    with pytest.raises(InvalidArgument):
        import_collection(source, str(tmp_path / "junk.tar"), name="x")
    with pytest.raises(NotFound):
        import_collection(source, str(tmp_path / "missing.tar"), name="x")
    assert_nothing_left(source, "x")


def test_a_failing_import_removes_what_it_made(source: EmbclusterService, tmp_path: Path) -> None:
    snap = tmp_path / "snap.tar"
    export_collection(source, NAME, str(snap))

    def wrong_count(name: str, data: bytes, manifest: dict) -> bytes:
        manifest["counts"]["points"] = N + 1  # checksums fine, the content disagrees: found while loading
        return data

    rewrite(snap, tmp_path / "bad.tar", wrong_count)
    verify_snapshot(tmp_path / "bad.tar")  # every member is intact
    with pytest.raises(InvalidArgument, match=f"{N + 1} points"):
        import_collection(source, str(tmp_path / "bad.tar"), name="x")
    assert_nothing_left(source, "x")

    def bad_payload(name: str, data: bytes, manifest: dict) -> bytes:
        return b"{not json\n" + data.split(b"\n", 1)[1] if name == "points/000003.payload.jsonl" else data

    rewrite(snap, tmp_path / "bad2.tar", bad_payload)
    with pytest.raises(InvalidArgument, match=r"points/000003\.payload\.jsonl"):
        import_collection(source, str(tmp_path / "bad2.tar"), name="x")
    assert_nothing_left(source, "x")
    assert import_collection(source, str(snap), name="x").points == N  # the name is free again


@pytest.mark.parametrize("index", [{"quantization": "int4"}, {"m": 1}])
def test_index_settings_out_of_range_in_a_manifest_are_invalid_argument(
        source: EmbclusterService, tmp_path: Path, index: dict) -> None:
    snap = tmp_path / "snap.tar"
    export_collection(source, NAME, str(snap))

    def edited(name: str, data: bytes, manifest: dict) -> bytes:
        manifest["collection"]["vector_index"] = {**(manifest["collection"].get("vector_index") or {}), **index}
        return data

    rewrite(snap, tmp_path / "bad.tar", edited)
    field = next(iter(index))
    with pytest.raises(InvalidArgument, match=rf"manifest\.json.*vector_index\.{field}"):
        import_collection(source, str(tmp_path / "bad.tar"), name="x")
    assert_nothing_left(source, "x")


def test_unknown_text_model_is_failed_precondition(source: EmbclusterService, tmp_path: Path) -> None:
    snap = tmp_path / "snap.tar"
    export_collection(source, NAME, str(snap))

    def as_text(name: str, data: bytes, manifest: dict) -> bytes:
        rec = manifest["collection"]
        rec.update(input_kind="text", embedder="no-such-model", embedder_fingerprint="sha256:" + "0" * 64)
        return json.dumps(rec).encode() if name == "collection.json" else data

    rewrite(snap, tmp_path / "text.tar", as_text)
    with pytest.raises(FailedPrecondition, match="no-such-model"):
        import_collection(source, str(tmp_path / "text.tar"), name="x")
    assert_nothing_left(source, "x")


def test_existing_names_files_and_active_runs(source: EmbclusterService, tmp_path: Path) -> None:
    snap = tmp_path / "snap.tar"
    export_collection(source, NAME, str(snap))
    with pytest.raises(AlreadyExists):
        import_collection(source, str(snap))  # the source name exists
    with pytest.raises(AlreadyExists):
        export_collection(source, NAME, str(snap))
    export_collection(source, NAME, str(snap), overwrite=True)
    with pytest.raises(InvalidArgument, match="does not exist"):
        export_collection(source, NAME, str(tmp_path / "no" / "dir" / "s.tar"))
    with pytest.raises(InvalidArgument, match=r"leaves <data_dir>/snapshots"):
        export_collection(source, NAME, "../collections/src/vectors.f32", overwrite=True)
    with pytest.raises(InvalidArgument, match="inside the data directory"):  # the service's own state
        export_collection(source, NAME, str(source.root / "collections" / NAME / "collection.json"), overwrite=True)
    assert source.get_collection(NAME).point_count == N
    rel = export_collection(source, NAME, "nightly/s.tar")  # relative: under <data_dir>/snapshots
    assert rel.path == str((source.root / "snapshots" / "nightly" / "s.tar").absolute())
    with pytest.raises(NotFound):
        export_collection(source, "nope", str(tmp_path / "n.tar"))
    with source.hold_runs(NAME):  # what an export holds while it runs
        with pytest.raises(FailedPrecondition, match="being exported"):
            source.start_clustering(NAME, RunRequest(k=K))
    with source.registry.get(NAME).lock:  # the run waits for this lock before its first step: it stays active
        info = source.start_clustering(NAME, RunRequest(k=K, seed=0))
        assert source.runs.active(NAME) is not None
        with pytest.raises(FailedPrecondition, match="in progress"):
            export_collection(source, NAME, str(tmp_path / "during.tar"))
    source.runs.wait(NAME, timeout=120)
    assert source.get_run(NAME, info.run_id).state == RunState.SUCCEEDED
    assert not list(tmp_path.glob(".*.tmp"))


def test_member_names_outside_the_format_are_refused(tmp_path: Path) -> None:
    def member(out: tarfile.TarFile, name: str, data: bytes) -> dict:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))
        return {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    for evil in ("files/../../escape.json", "files/.hidden", "/etc/passwd", "models/v1/../../x.npy",
                 # state the import never takes from files/: the record, the vector log, models, runs
                 "files/collection.json", "files/vectors.ids", "files/models/v1/model.json", "files/runs/r.json"):
        path = tmp_path / "evil.tar"
        with tarfile.open(path, "w") as out:
            entries = [member(out, "collection.json", b"{}"), member(out, evil, b"x")]
            member(out, "manifest.json", json.dumps({"format": "embcluster-snapshot", "schema_version": 1,
                                                     "members": entries}).encode())
        with pytest.raises(InvalidArgument, match="unexpected member"):
            verify_snapshot(path)


@pytest.mark.parametrize("vectors_from", ["log", "store"])
def test_writes_during_an_export_never_tear_a_point(tmp_path: Path, vectors_from: str, make_service) -> None:
    """Points replaced or deleted mid-export: each exported vector still matches its own payload."""
    svc = make_service(tmp_path / "w")
    try:
        svc.create_collection(CollectionSpec(name="w", input_kind="vector", vector_dim=4, metric="euclid"))
        x = np.random.default_rng(3).normal(size=(200, 4)).astype(np.float32)

        def items(rows: np.ndarray, ids: range) -> list[ItemInput]:
            return [ItemInput(id=f"w{i}", vector=r.tolist(), metadata={"v0": float(r[0])}) for i, r in zip(ids, rows)]

        svc.ingest("w", items(x, range(200)))
        calls = []

        def meanwhile(phase: str, done: int, total: int) -> None:
            if not calls:  # after the first page: replace every point, delete some, add some
                svc.ingest("w", items(x + 100, range(200)))
                svc.delete_points("w", ids=[f"w{i}" for i in range(0, 200, 20)])
                svc.ingest("w", items(x[:5] - 100, range(500, 505)))
            calls.append(done)

        out = export_collection(svc, "w", str(tmp_path / "w.tar"), on_progress=meanwhile, vectors_from=vectors_from)
        assert len(calls) > 2
        import_collection(svc, str(tmp_path / "w.tar"), name="w2")
        got = all_points(svc, "w2")
        assert len(got) == out.points and 190 <= out.points <= 205
        for vec, payload in got.values():
            assert vec[0] == np.float32(payload["meta"]["v0"])  # vector and payload of the same write
        shifted = sum(payload["meta"]["v0"] > 50 for _, payload in got.values())
        assert shifted >= out.points - 64 - 5  # all but the first page show the replacement
    finally:
        svc.close()


def test_import_never_drops_a_qdrant_collection_it_did_not_create(source: EmbclusterService, tmp_path: Path, make_service) -> None:
    """The Qdrant collection the new name maps to exists (someone's data): refused, and left alone."""
    from qdrant_client import models as qm

    export_collection(source, NAME, str(tmp_path / "snap.tar"))
    factory = QdrantStoreFactory(QdrantConnection(path=":memory:"), prefix="t_")
    factory.client.create_collection("t_" + NAME, vectors_config=qm.VectorParams(size=3, distance=qm.Distance.DOT))
    factory.client.upsert("t_" + NAME, points=[qm.PointStruct(id=1, vector=[1.0, 2.0, 3.0], payload={"theirs": 1})])
    other = make_service(tmp_path / "b", store_factory=factory)
    try:
        with pytest.raises(AlreadyExists, match="not one of this service's collections"):
            import_collection(other, str(tmp_path / "snap.tar"))
        assert factory.client.collection_exists("t_" + NAME)
        (kept,) = factory.client.retrieve("t_" + NAME, ids=[1])
        assert kept.payload == {"theirs": 1}
        assert NAME not in [c.name for c in other.list_collections()]
    finally:
        other.close()
        factory.close()


def test_snapshot_of_an_attached_collection_imports_as_an_own_collection(tmp_path: Path, make_service) -> None:
    """Export of an attached Qdrant collection, import into Edge: a plain collection of the service."""
    from qdrant_client import models as qm

    from embcluster.schema import AttachSpec

    factory = QdrantStoreFactory(QdrantConnection(path=":memory:"), prefix="t_")
    factory.client.create_collection("shop", vectors_config={
        "image": qm.VectorParams(size=DIM, distance=qm.Distance.COSINE),
        "text": qm.VectorParams(size=3, distance=qm.Distance.COSINE)})
    x = blobs(60, 3)
    points = [qm.PointStruct(id=i, vector={"image": row.tolist()}, payload={"sku": f"S{i}"}) for i, row in enumerate(x)]
    points.append(qm.PointStruct(id=1000, vector={"text": [1.0, 0.0, 0.0]}, payload={"sku": "no image"}))
    factory.client.upsert("shop", points=points)
    svc = EmbclusterService(Settings(data_dir=tmp_path / "q", page_size=16, store="qdrant", qdrant_path=":memory:"),
                            store_factory=factory)
    svc.open()
    edge = make_service(tmp_path / "e")
    try:
        svc.attach_collection(AttachSpec(name="shop-map", qdrant_collection="shop", vector_name="image",
                                         field_prefix="ec_"))
        run(svc, "shop-map", k=K)
        out = export_collection(svc, "shop-map", str(tmp_path / "shop.tar"))
        assert out.points == 60  # the point without the clustered vector is not exported
        got = import_collection(edge, str(tmp_path / "shop.tar"), name="shop-copy")
        info = edge.get_collection("shop-copy")
        assert got.points == 60 and info.attached is None and info.point_count == 60
        assert edge.get_point("shop-copy", point_id="7").metadata == {"sku": "S7"}
        assert edge.get_point("shop-copy", point_id="7").assignment is not None
        edge.ingest("shop-copy", [ItemInput(id="new", vector=CENTERS[0].tolist())])  # its own points now
        assert edge.get_collection("shop-copy").point_count == 61
    finally:
        edge.close()
        svc.close()
        factory.close()
