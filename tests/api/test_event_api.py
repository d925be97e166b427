"""EVENT collections over gRPC: typed events in, InferSchema, FitFeaturizer, every read by event,
user profiles, and bad input reported as INVALID_ARGUMENT naming the item and the field."""

from __future__ import annotations

from datetime import datetime, timezone

import grpc
import pytest
from embcluster_client import make_event, make_event_schema, pb

from embcluster.api.v1.embcluster_pb2_grpc import EmbclusterStub
from embcluster.data import load_lending_club_events
from embcluster.data.synthetic_events import PROFILE_SCHEMA_FIELDS, planted_profile_stream

SCHEMA = make_event_schema([
    {"name": "amount", "type": "numeric", "log": True, "required": True},
    {"name": "merchant", "type": "categorical", "buckets": 8},
    {"name": "ts", "type": "timestamp"},
    {"name": "note", "type": "text", "weight": 0.5},
])


def _events(n: int) -> list[dict]:
    out = []
    for i in range(n):
        night = i % 3 == 0
        out.append({"id": f"tx{i}", "event": {
            "amount": 500.0 + i if night else 5.0 + i % 7,
            "merchant": "electronics" if night else ["cafe", "grocery", "bakery"][i % 3],
            "ts": datetime(2026, 10, 1 + i % 28, 2 if night else 13, i % 60, tzinfo=timezone.utc),
            "note": "online order, express shipping" if night else "coffee and a croissant",
            "channel": "web",  # not in the schema: kept under source, not featurized
        }, "metadata": {"night": night}})
    return out


def test_event_collection_end_to_end(running) -> None:  # type: ignore[no-untyped-def]
    c = running.client
    created = c.create_collection("tx", input_kind="event", distance="euclid", event_schema=SCHEMA)
    assert created.input_kind == pb.INPUT_KIND_EVENT and created.embedder == "all-MiniLM-L6-v2"
    assert created.dim == 1 + 9 + 5 + 384 and created.featurizer_version == 0
    assert [f.name for f in created.event_schema.fields] == ["amount", "merchant", "ts", "note"]
    items = _events(120)
    results = c.ingest("tx", items[:60])
    assert results[0].external_id == "tx0"
    info = c.get_collection("tx")
    assert info.featurizer_version == 1 and info.featurizer_provisional
    acks = list(c.ingest_stream("tx", [items[60:90], [{"event": {"amount": "a lot"}}], items[90:]]))
    assert [a.error_code for a in acks] == ["", "INVALID_ARGUMENT", ""]
    assert "item 0 field 'amount'" in acks[1].error_message
    run = c.fit_featurizer("tx")
    assert c.wait_for_run("tx", run.run_id).state == pb.RUN_STATE_SUCCEEDED
    info = c.get_collection("tx")
    assert (info.featurizer_version, info.featurizer_provisional, info.point_count) == (2, False, 120)
    c.cluster("tx", k=2, seed=0)
    point = c.get_point("tx", id="tx0")
    assert point.source["merchant"] == "electronics" and point.source["channel"] == "web"
    assert point.source["ts"] == datetime(2026, 10, 1, 2, 0, tzinfo=timezone.utc).timestamp()
    members = list(c.iter_cluster_members("tx", point.assignment.cluster_id))
    assert {m.metadata["night"] for m in members} == {True}  # night-time electronics cluster together
    labels = c.classify("tx", [{"event": items[3]["event"]}, make_event_item_dict(items[4]["event"])])
    assert labels[0].cluster_id == point.assignment.cluster_id != labels[1].cluster_id
    hits = c.search("tx", make_event(items[6]["event"]), limit=2)
    assert hits[0].point.external_id == "tx6"
    expl = c.explain_point("tx", id="tx0")
    assert expl.cluster_id == point.assignment.cluster_id
    # Per-field contributions over gRPC: every schema field once, shares adding up to 1.
    assert sorted(f.field for f in expl.field_contributions) == ["amount", "merchant", "note", "ts"]
    assert abs(sum(f.share for f in expl.field_contributions) - 1.0) < 1e-6
    shares = [f.share for f in expl.field_contributions]
    assert shares == sorted(shares, reverse=True)
    assert expl.anomaly_model.scorer == "ensemble" and expl.anomaly_model.grouping.k == 2
    models = c.list_models("tx")
    assert models[-1].params["featurizer_version"] == 2
    assert models[-1].anomaly.scorer == "ensemble" and [f.k for f in models[-1].anomaly.fits] == [2, 4, 8]
    assert c.get_model("tx").anomaly == models[-1].anomaly


def make_event_item_dict(event: dict) -> dict:
    return {"event": event}


def test_bad_events_are_invalid_argument_naming_item_and_field(running) -> None:  # type: ignore[no-untyped-def]
    c = running.client
    c.create_collection("tx", input_kind="event", distance="euclid", event_schema=SCHEMA)
    good = {"event": {"amount": 3.0}}
    for bad, message in [
        ({"event": {"merchant": "cafe"}}, "item 1 field 'amount': required field is missing"),
        ({"event": {"amount": True}}, "item 1 field 'amount': numeric field expects a number, got bool"),
        ({"event": {"amount": 1.0, "ts": "tomorrow"}}, "item 1 field 'ts': cannot parse timestamp 'tomorrow'"),
        ({"event": {"amount": float("inf")}}, "item 1 field 'amount': value inf is not finite"),
        ({"event": {"amount": 1.0, "note": 7.0}}, "item 1 field 'note': text field expects a string"),
        ({"text": "hello"}, "item 1: this collection takes events, got text"),
    ]:
        with pytest.raises(grpc.RpcError) as e:
            c.ingest("tx", [good, bad])
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
        assert message in e.value.details()
    assert c.get_collection("tx").point_count == 0
    with pytest.raises(grpc.RpcError) as e:
        c.create_collection("nosrc", input_kind="event", event_schema=SCHEMA, store_source=False)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "store_source" in e.value.details()
    c.create_collection("texts", input_kind="text")
    with pytest.raises(grpc.RpcError) as e:
        c.fit_featurizer("texts")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_infer_schema_rpc_on_real_loans(running) -> None:  # type: ignore[no-untyped-def]
    rows = load_lending_club_events(limit=300)
    resp = running.client.infer_schema([r["event"] for r in rows])
    types = {f.name: f.type for f in resp.schema.fields}
    assert types["term"] == pb.EVENT_FIELD_TYPE_CATEGORICAL and types["int_rate"] == pb.EVENT_FIELD_TYPE_NUMERIC
    assert next(f for f in resp.schema.fields if f.name == "annual_inc").log
    assert len(resp.notes) == len(rows[0]["event"])
    created = running.client.create_collection("loans", input_kind="event", distance="euclid", event_schema=resp.schema)
    assert created.event_schema == resp.schema
    with pytest.raises(grpc.RpcError) as e:
        running.client.infer_schema([])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_profile_collection_over_grpc(running) -> None:  # type: ignore[no-untyped-def]
    c = running.client
    events, behaviour = planted_profile_stream(n_users=20, events_per_user=10, seed=5)
    c.create_collection("users", input_kind="event", distance="euclid",
                        event_schema=make_event_schema(PROFILE_SCHEMA_FIELDS, entity_key="user", window_days=30))
    for i in range(0, len(events), 100):
        c.ingest("users", [{"event": e} for e in events[i:i + 100]])
    assert c.get_collection("users").point_count == 20
    c.wait_for_run("users", c.fit_featurizer("users").run_id)
    c.cluster("users", k=2, seed=0)
    p = c.get_point("users", id="user-0001")
    assert p.source["entity"] == "user-0001" and p.source["profile"]["count"] == 10
    night = {m.external_id for m in c.iter_cluster_members("users", p.assignment.cluster_id)}
    assert night == {u for u, b in behaviour.items() if b == behaviour["user-0001"]}


def test_out_of_range_timestamp_is_invalid_argument(running) -> None:  # type: ignore[no-untyped-def]
    c = running.client
    c.create_collection("tsrange", input_kind="event", distance="euclid", event_schema=SCHEMA)
    ev = pb.Event()
    ev.fields["amount"].number_value = 1.0
    ev.fields["ts"].timestamp_value.seconds = 10**15  # past year 9999
    with pytest.raises(grpc.RpcError) as e:
        with grpc.insecure_channel(running.server.address) as channel:  # past the client's own checks
            EmbclusterStub(channel).Ingest(pb.IngestRequest(collection="tsrange", items=[pb.Item(event=ev)]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert "field 'ts': timestamp out of range" in e.value.details()
