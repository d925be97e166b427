"""The servicer in-process over real gRPC: every RPC, status codes, health and reflection."""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest
from embcluster_client import pb
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from embcluster.data import load_wordnet

TEXTS = load_wordnet(400)


def _code(exc_info: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    return exc_info.value.code()


def test_health_and_reflection(running) -> None:
    assert running.client.health() == "SERVING"
    channel = grpc.insecure_channel(running.server.address)
    db = ProtoReflectionDescriptorDatabase(channel)
    services = db.get_services()
    assert "embcluster.v1.Embcluster" in services
    assert "grpc.health.v1.Health" in services
    desc = db.FindFileContainingSymbol("embcluster.v1.Embcluster")
    assert desc.name == "embcluster/v1/embcluster.proto"
    channel.close()


def test_collection_lifecycle_and_errors(running) -> None:
    c = running.client
    col = c.create_collection("docs", input_kind="text", contamination=0.05)
    assert col.dim == 384 and col.embedder == "all-MiniLM-L6-v2"
    assert col.embedder_fingerprint.startswith("sha256:")
    assert col.settings.contamination == pytest.approx(0.05)
    assert col.settings.min_cluster_size == 3  # defaults are filled in
    with pytest.raises(grpc.RpcError) as e:
        c.create_collection("docs", input_kind="text")
    assert _code(e) == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as e:
        c.get_collection("nope")
    assert _code(e) == grpc.StatusCode.NOT_FOUND and "nope" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        c.create_collection("bad name!", input_kind="text")
    assert _code(e) == grpc.StatusCode.INVALID_ARGUMENT and "bad name!" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        c.create_collection("v0", input_kind="vector", vector_dim=0)
    assert _code(e) == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        c.create_collection("t2", input_kind="text", embedding_model="no-such-model")
    assert _code(e) == grpc.StatusCode.INVALID_ARGUMENT and "no-such-model" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        c.update_collection("docs", contamination=0.9)
    assert _code(e) == grpc.StatusCode.INVALID_ARGUMENT and "0.9" in e.value.details()
    assert c.update_collection("docs", default_k=5).settings.default_k == 5
    assert [x.name for x in c.list_collections()] == ["docs"]
    assert c.delete_collection("docs")
    assert c.list_collections() == []
    with pytest.raises(grpc.RpcError) as e:
        c.ingest("docs", ["hello"])
    assert _code(e) == grpc.StatusCode.NOT_FOUND


def test_bad_items_are_rejected_by_index_and_store_nothing(running) -> None:
    c = running.client
    c.create_collection("v", input_kind="vector", vector_dim=4)
    c.create_collection("t", input_kind="text")
    good = [1.0, 2.0, 3.0, 4.0]
    cases = [
        ("v", [good, [1.0, 2.0, 3.0]], "item 1"),
        ("v", [good, good, [1.0, math.nan, 0.0, 0.0]], "item 2"),
        ("v", [good, [1.0, math.inf, 0.0, 0.0]], "item 1"),
        ("v", [good, [0.0, 0.0, 0.0, 0.0]], "item 1"),
        ("t", ["fine", "   "], "item 1"),
        ("t", ["fine", "x" * (running.settings.max_text_chars + 1)], "item 1"),
        ("t", [{"text": "a"}, {"text": "b", "metadata": {"blob": "y" * 70_000}}], "item 1"),
        ("t", [{"text": "a"}, {"text": "b", "metadata": {"x": {"y": [1, math.inf]}}}],
         "item 1: metadata: 'x.y[1]' is not a finite number"),
        ("t", [{"text": "a", "metadata": {"n": math.nan}}], "item 0: metadata: 'n' is not a finite number"),
        ("t", [good], "item 0"),
        ("v", [[float(i)] * 4 for i in range(1, 302)], "301 items"),
    ]
    for name, items, needle in cases:
        with pytest.raises(grpc.RpcError) as e:
            c.ingest(name, items)
        assert _code(e) == grpc.StatusCode.INVALID_ARGUMENT, needle
        assert needle in e.value.details(), (needle, e.value.details())
    assert c.get_collection("v").point_count == 0
    assert c.get_collection("t").point_count == 0


def test_message_over_transport_limit_is_resource_exhausted(running) -> None:
    c = running.client
    c.create_collection("v", input_kind="vector", vector_dim=4)
    big = [{"text": None, "vector": [1.0, 2.0, 3.0, 4.0], "metadata": {"pad": "z" * 60_000}}]
    items = [{"vector": [1.0, 2.0, 3.0, 4.0], "metadata": {"pad": "z" * 60_000}} for _ in range(30)]
    assert big  # 30 x 60 KB > the 1 MiB server limit
    with pytest.raises(grpc.RpcError) as e:
        c.ingest("v", items)
    assert _code(e) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert c.get_collection("v").point_count == 0


def test_text_loop_cluster_classify_search(running) -> None:
    c = running.client
    c.create_collection("wn", input_kind="text", contamination=0.02)
    first = c.ingest("wn", [{"id": r["id"], "text": r["text"], "metadata": {"cat": r["category"]}}
                            for r in TEXTS[:300]])
    assert [r.external_id for r in first] == [r["id"] for r in TEXTS[:300]]
    assert not first[0].HasField("assignment")  # no model yet

    with pytest.raises(grpc.RpcError) as e:
        c.classify("wn", ["anything"])
    assert _code(e) == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as e:
        c.start_clustering("wn", k=301)
    assert _code(e) == grpc.StatusCode.INVALID_ARGUMENT and "301" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        c.start_clustering("wn", k=1)
    assert _code(e) == grpc.StatusCode.INVALID_ARGUMENT

    run = c.cluster("wn", k=6, seed=1)
    assert run.state == pb.RUN_STATE_SUCCEEDED and run.model_version == 1 and run.points_labelled == 300
    col = c.get_collection("wn")
    assert col.served_model_version == 1 and col.point_count == 300
    clusters = c.list_clusters("wn")
    assert clusters.model_version == 1
    assert sum(cl.size for cl in clusters.clusters) == 300
    assert sum(cl.anomaly_count for cl in clusters.clusters) == col.anomaly_count > 0

    # every point carries all five fields from version 1, exactly once across clusters
    seen = set()
    for cl in clusters.clusters:
        members = list(c.iter_cluster_members("wn", cl.cluster_id, page_size=37))
        assert len(members) == cl.size
        for p in members:
            assert p.assignment.model_version == 1 and p.assignment.cluster_id == cl.cluster_id
            seen.add(p.point_id)
    assert len(seen) == 300
    anomalies = list(c.iter_anomalies("wn", page_size=3))
    assert len(anomalies) == col.anomaly_count and all(p.assignment.is_anomaly for p in anomalies)

    # online: new items are labelled with the served model on ingest
    later = c.ingest("wn", [r["text"] for r in TEXTS[300:310]])
    assert all(r.assignment.model_version == 1 for r in later)
    stored = c.get_point("wn", point_id=later[0].point_id)
    assert stored.assignment == later[0].assignment and stored.text == TEXTS[300]["text"]

    # classify stores nothing and agrees with ingest's online label
    labels = c.classify("wn", [TEXTS[300]["text"]])
    assert labels[0].cluster_id == later[0].assignment.cluster_id
    assert c.get_collection("wn").point_count == 310

    # search within a cluster returns only that cluster's members
    target = clusters.clusters[0].cluster_id
    hits = c.search("wn", "a kind of animal", limit=20, cluster_id=target)
    assert hits and all(h.point.assignment.cluster_id == target for h in hits)
    top = c.search("wn", TEXTS[5]["text"], limit=1)
    assert top[0].point.external_id == TEXTS[5]["id"] and top[0].score == pytest.approx(1.0, abs=1e-4)

    # get by caller id, with metadata; delete by caller id and point id
    p = c.get_point("wn", id=TEXTS[0]["id"], with_vector=True)
    assert p.metadata["cat"] == TEXTS[0]["category"] and len(p.vector.values) == 384
    assert c.delete_points("wn", ids=[TEXTS[0]["id"], "missing"], point_ids=[later[1].point_id]) == 2
    with pytest.raises(grpc.RpcError) as e:
        c.get_point("wn", id=TEXTS[0]["id"])
    assert _code(e) == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        c.get_point("wn", point_id="not-a-uuid")
    assert _code(e) == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        c.list_cluster_members("wn", 999)
    assert _code(e) == grpc.StatusCode.NOT_FOUND


def test_k_range_reports_per_k_table(running) -> None:
    c = running.client
    c.create_collection("blobs", input_kind="vector", vector_dim=16, distance="euclid")
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(4, 16)) * 8
    x = np.concatenate([ctr + rng.normal(size=(100, 16)) for ctr in centers])
    c.ingest("blobs", [v.tolist() for v in x[:300]])
    c.ingest("blobs", [v.tolist() for v in x[300:]])
    run = c.cluster("blobs", k_range=(2, 7), seed=0)
    assert run.k == 4
    assert [s.k for s in run.k_scores] == [2, 3, 4, 5, 6, 7]
    assert max(run.k_scores, key=lambda s: s.silhouette).k == 4
    assert min(run.k_scores, key=lambda s: s.davies_bouldin).k == 4
    assert [s.k for s in run.k_scores if s.chosen] == [4]
    assert min(run.k_scores, key=lambda s: s.mean_rank).k == 4
    assert c.get_clustering_run("blobs", run.run_id).state == pb.RUN_STATE_SUCCEEDED
    with pytest.raises(grpc.RpcError) as e:
        c.get_clustering_run("blobs", "nosuchrun")
    assert _code(e) == grpc.StatusCode.NOT_FOUND


def test_changed_model_fingerprint_is_refused(running, text_embedder) -> None:
    from tests.api.conftest import restarted_with_another_fingerprint

    running.client.create_collection("docs", input_kind="text")
    running.client.ingest("docs", ["one", "two"])
    again = restarted_with_another_fingerprint(running, "docs", text_embedder)
    try:
        with pytest.raises(grpc.RpcError) as e:
            again.client.ingest("docs", ["three"])
        assert _code(e) == grpc.StatusCode.FAILED_PRECONDITION
        assert "all-MiniLM-L6-v2" in e.value.details()
        assert again.client.get_collection("docs").point_count == 2
    finally:
        again.stop()


def test_vector_wire_forms(running) -> None:
    """`values` and packed `f32` both work; both at once or a torn f32 is rejected by index."""
    c = running.client
    c.create_collection("v", input_kind="vector", vector_dim=3)
    as_values = pb.Item(id="a", vector=pb.Vector(values=[1.0, 2.0, 3.0]))
    as_f32 = pb.Item(id="b", vector=pb.Vector(f32=np.asarray([1, 2, 3], "<f4").tobytes()))
    c.ingest("v", [as_values, as_f32])
    a = c.get_point("v", id="a", with_vector=True).vector.values
    b = c.get_point("v", id="b", with_vector=True).vector.values
    assert list(a) == pytest.approx(list(b)) and len(a) == 3
    both = pb.Item(vector=pb.Vector(values=[1.0, 2.0, 3.0], f32=np.zeros(3, "<f4").tobytes()))
    torn = pb.Item(vector=pb.Vector(f32=b"\x00" * 10))
    for bad, needle in ((both, "both"), (torn, "10 bytes")):
        with pytest.raises(grpc.RpcError) as e:
            c.ingest("v", [as_values, bad])
        assert _code(e) == grpc.StatusCode.INVALID_ARGUMENT
        assert "item 1" in e.value.details() and needle in e.value.details()
    assert c.get_collection("v").point_count == 2


def test_model_versions_stable_ids_and_rollback(running) -> None:
    c = running.client
    c.create_collection("blobs", input_kind="vector", vector_dim=8)
    rng = np.random.default_rng(11)
    centers = rng.normal(size=(5, 8)) * 6
    x = np.concatenate([ctr + rng.normal(size=(120, 8)) for ctr in centers])
    c.ingest("blobs", [{"id": f"p{i}", "vector": v} for i, v in enumerate(x[:300])])
    c.ingest("blobs", [{"id": f"p{i + 300}", "vector": v} for i, v in enumerate(x[300:])])
    first = c.cluster("blobs", k=5, seed=0)
    before = {p.external_id: p.assignment.cluster_id
              for cl in c.list_clusters("blobs").clusters for p in c.iter_cluster_members("blobs", cl.cluster_id)}
    second = c.cluster("blobs", k=5, seed=99)  # another seed: same clusters, ids must persist
    after = {p.external_id: p.assignment.cluster_id
             for cl in c.list_clusters("blobs").clusters for p in c.iter_cluster_members("blobs", cl.cluster_id)}
    assert sum(before[i] == after[i] for i in before) / len(before) >= 0.99
    models = c.list_models("blobs")
    assert [m.version for m in models] == [first.model_version, second.model_version]
    assert [m.served for m in models] == [False, True]
    m2 = c.get_model("blobs")
    assert m2.version == second.model_version and m2.k == 5
    assert sorted(m2.metrics["matching"]["persisted"]) == sorted(m2.cluster_ids)
    assert m2.metrics["silhouette"] > 0.5 and m2.metrics["davies_bouldin"] < 1.0
    assert sum(m2.metrics["sizes_full"]) == 600 and m2.params["seed"] == 99

    run = c.wait_for_run("blobs", c.rollback_model("blobs", first.model_version).run_id)
    assert run.state == pb.RUN_STATE_SUCCEEDED and run.model_version == first.model_version
    col = c.get_collection("blobs")
    assert col.served_model_version == first.model_version
    versions = {p.assignment.model_version
                for cl in c.list_clusters("blobs").clusters for p in c.iter_cluster_members("blobs", cl.cluster_id)}
    assert versions == {first.model_version}
    for bad, code in ((first.model_version, grpc.StatusCode.FAILED_PRECONDITION), (42, grpc.StatusCode.NOT_FOUND)):
        with pytest.raises(grpc.RpcError) as e:
            c.rollback_model("blobs", bad)
        assert _code(e) == code
    with pytest.raises(grpc.RpcError) as e:
        c.get_model("blobs", 42)
    assert _code(e) == grpc.StatusCode.NOT_FOUND


def test_anomaly_settings_are_validated_and_applied(running) -> None:
    c = running.client
    for kwargs, needle in (({"anomaly_scorer": "magic"}, "magic"), ({"threshold_mode": "vibes"}, "vibes"),
                           ({"threshold_mode": "absolute"}, "anomaly_threshold"),
                           ({"anomaly_threshold": -1.0}, "-1.0"), ({"contamination": 0.0}, "0.0")):
        with pytest.raises(grpc.RpcError) as e:
            c.create_collection("bad", input_kind="vector", vector_dim=4, **kwargs)
        assert _code(e) == grpc.StatusCode.INVALID_ARGUMENT and needle in e.value.details(), kwargs
    assert c.list_collections() == []
    c.create_collection("v", input_kind="vector", vector_dim=4, distance="euclid")
    rng = np.random.default_rng(5)
    bulk = rng.normal(size=(400, 4))
    ring = np.array([20.0, 20.0, 20.0, 20.0]) + 0.05 * rng.normal(size=(12, 4))  # a rare, tight group
    c.ingest_many("v", [{"id": f"b{i}", "vector": v} for i, v in enumerate(bulk)] +
             [{"id": f"r{i}", "vector": v} for i, v in enumerate(ring)])
    assert c.get_collection("v").settings.anomaly_scorer == "ensemble"  # the default
    updated = c.update_collection("v", anomaly_scorer="cblof", threshold_mode="absolute", anomaly_threshold=4.0)
    assert updated.settings.threshold_mode == "absolute" and updated.settings.anomaly_scorer == "cblof"
    c.cluster("v", k=4, seed=0)
    model = c.get_model("v")
    assert model.params["threshold_mode"] == "absolute" and model.params["anomaly_scorer"] == "cblof"
    flagged = {p.external_id for p in c.iter_anomalies("v")}
    assert {f"r{i}" for i in range(12)} <= flagged  # the rare group is flagged, though tight
    assert len(flagged - {f"r{i}" for i in range(12)}) < 0.05 * 400
