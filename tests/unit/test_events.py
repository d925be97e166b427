"""Unit tests of the event schema, parsing, featurizer, profiles and InferSchema (no store, no model)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import numpy as np
import pytest

from embcluster.data import load_lending_club_events
from embcluster.embed.events import (
    EventFeaturizer,
    EventSchema,
    FieldSpec,
    check_schema,
    cyclic_time,
    infer_schema,
    parse_events,
    parse_timestamp,
)
from embcluster.embed.profiles import merge_profile, profile_dim
from embcluster.errors import InvalidArgument

SCHEMA = EventSchema(fields=[
    FieldSpec("amount", "numeric", log=True, required=True),
    FieldSpec("mcc", "categorical", buckets=4),
    FieldSpec("ts", "timestamp"),
])


def _fit(events, schema=SCHEMA):
    parsed = parse_events(schema, events)
    return EventFeaturizer(schema).fit([{"event": e} for e in parsed], version=1, provisional=False), parsed


def test_bad_input_names_item_and_field() -> None:
    good = {"amount": 1.0}
    cases = [
        ({"amount": "12"}, "item 1 field 'amount': numeric field expects a number"),
        ({"amount": math.inf}, "item 1 field 'amount': value inf is not finite"),
        ({"amount": 1e308}, r"item 1 field 'amount': value 1e\+308 is beyond"),
        ({"mcc": "x"}, "item 1 field 'amount': required field is missing"),
        ({"amount": 1.0, "ts": "last tuesday"}, "item 1 field 'ts': cannot parse timestamp 'last tuesday'"),
        ({"amount": 1.0, "mcc": ["a"]}, "item 1 field 'mcc': categorical field expects a string"),
        ({"amount": 1.0, "other": math.nan}, "item 1 field 'other': value nan is not finite"),
    ]
    for bad, message in cases:
        with pytest.raises(InvalidArgument, match=message.replace("(", r"\(")):
            parse_events(SCHEMA, [good, bad])


def test_timestamps_parse_from_rfc3339_epoch_and_datetime() -> None:
    ts = datetime(2026, 3, 2, 15, 30, tzinfo=timezone.utc).timestamp()  # a Monday
    assert parse_timestamp("2026-03-02T15:30:00Z") == ts
    assert parse_timestamp("2026-03-02T16:30:00+01:00") == ts
    assert parse_timestamp("2026-03-02T15:30:00") == ts  # no offset = UTC
    assert parse_timestamp(ts) == ts and parse_timestamp(str(int(ts))) == ts
    assert parse_timestamp(datetime(2026, 3, 2, 15, 30)) == ts
    assert parse_timestamp("soon") is None and parse_timestamp(True) is None
    hour_sin, hour_cos, dow_sin, dow_cos = cyclic_time(np.array([ts]))[0]
    assert math.isclose(math.atan2(hour_sin, hour_cos) % (2 * math.pi), 2 * math.pi * 15.5 / 24, rel_tol=1e-9)
    assert math.isclose(math.atan2(dow_sin, dow_cos) % (2 * math.pi), 2 * math.pi * (0 + 15.5 / 24) / 7, rel_tol=1e-9)


def test_numeric_robust_scaling_log_and_clip() -> None:
    events = [{"amount": a} for a in (10.0, 20.0, 30.0, 40.0, 50.0, 1e9)]
    feat, parsed = _fit(events)
    st = feat.state["fields"]["amount"]
    logs = np.log1p([10, 20, 30, 40, 50, 1e9])
    assert math.isclose(st["median"], float(np.median(logs)))
    x = feat.transform([{"event": e} for e in parsed])
    amount = x[:, 0]
    assert amount[5] == pytest.approx(5.0)  # clipped at the default 5 IQRs
    assert np.all(np.diff(amount) > 0)  # monotone in the raw amount
    assert x.shape == (6, feat.dim) == (6, 1 + 5 + 5)


def test_categorical_onehot_hashed_and_unknown_bucket() -> None:
    feat, _ = _fit([{"amount": 1.0, "mcc": m} for m in ("a", "b", "b", "c")])
    assert feat.state["fields"]["mcc"]["mode"] == "onehot"
    x = feat.transform([{"event": {"amount": 1.0, "mcc": v}} for v in ("b", "a", "never-seen", "c")])
    block = x[:, 1:6]
    assert block[0].tolist() == [1, 0, 0, 0, 0]  # most frequent first
    assert block[1].tolist() == [0, 1, 0, 0, 0]
    assert block[2].tolist() == [0, 0, 0, 0, 1]  # the unknown bucket, not an error
    assert block[3].tolist() == [0, 0, 1, 0, 0]
    many, _ = _fit([{"amount": 1.0, "mcc": f"m{i}"} for i in range(40)])
    assert many.state["fields"]["mcc"]["mode"] == "hashed"
    y = many.transform([{"event": {"amount": 1.0, "mcc": v}} for v in ("m3", "m3", "zzz")])[:, 1:6]
    assert np.array_equal(y[0], y[1]) and y[0, :4].sum() == 1 and y[0, 4] == 0
    assert y[2].tolist() == [0, 0, 0, 0, 1]


def test_json_round_trip_transforms_identically() -> None:
    rows = load_lending_club_events(limit=300)
    schema, _ = infer_schema([r["event"] for r in rows])
    feat, parsed = _fit([r["event"] for r in rows], schema)
    data = json.loads(json.dumps(feat.to_json()))
    assert data["schema_version"] == 1 and data["kind"] == "event" and data["version"] == 1
    again = EventFeaturizer.from_json(data)
    records = [{"event": e} for e in parsed]
    assert np.array_equal(feat.transform(records), again.transform(records))
    with pytest.raises(ValueError, match="schema_version"):
        EventFeaturizer.from_json({**data, "schema_version": 99})


def test_infer_schema_types_on_real_and_synthetic_samples() -> None:
    rows = load_lending_club_events(limit=500)
    schema, notes = infer_schema([r["event"] for r in rows])
    types = {f.name: (f.type, f.log) for f in schema.fields}
    assert types["term"] == ("categorical", False) and types["sub_grade"][0] == "categorical"
    assert types["annual_inc"] == ("numeric", True)  # heavy right tail -> log
    assert types["int_rate"] == ("numeric", False)
    assert len(notes) == len(rows[0]["event"])
    samples = [{"when": f"2026-01-{d:02d}T10:00:00Z", "epoch_ts": 1.7e9 + d, "note": f"customer called about order {d} twice",
                "tx_id": f"tx{d}", "flag": d % 2 == 0} for d in range(1, 29)]
    schema, notes = infer_schema(samples, entity_key="")
    types = {f.name: f.type for f in schema.fields}
    assert types == {"when": "timestamp", "epoch_ts": "timestamp", "note": "text", "flag": "categorical"}
    assert any(n.startswith("tx_id: skipped") for n in notes)  # unique identifiers are not features


def test_check_schema_refuses_bad_schemas() -> None:
    with pytest.raises(InvalidArgument, match="at least one field"):
        check_schema(EventSchema())
    with pytest.raises(InvalidArgument, match="'x': type must be one of"):
        check_schema(EventSchema(fields=[FieldSpec("x", "blob")]))
    with pytest.raises(InvalidArgument, match="'x' is defined twice"):
        check_schema(EventSchema(fields=[FieldSpec("x", "numeric"), FieldSpec("x", "text")]))
    with pytest.raises(InvalidArgument, match="weight must be in"):
        check_schema(EventSchema(fields=[FieldSpec("x", "numeric", weight=0)]))
    with pytest.raises(InvalidArgument, match="entity_key 'u' must name a categorical field"):
        check_schema(EventSchema(fields=[FieldSpec("x", "numeric"), FieldSpec("t", "timestamp")], entity_key="u"))
    with pytest.raises(InvalidArgument, match="needs a timestamp field"):
        check_schema(EventSchema(fields=[FieldSpec("u", "categorical")], entity_key="u"))


def test_profile_window_dedupe_and_aggregates() -> None:
    schema = check_schema(EventSchema(fields=[FieldSpec("user", "categorical"), FieldSpec("amount", "numeric"),
                                              FieldSpec("ts", "timestamp")], entity_key="user", window_days=2,
                                      max_profile_events=3))
    day = 86_400.0
    ev = [{"user": "u", "amount": float(i), "ts": 1.7e9 + i * day / 2, "_id": f"e{i}"} for i in range(4)]
    src = merge_profile(schema, None, "u", ev[:2])
    assert src["profile"]["count"] == 2 and src["profile"]["numeric"]["amount"]["sum"] == 1.0
    src = merge_profile(schema, src, "u", [{**ev[1], "amount": 10.0}] + ev[2:])  # e1 re-sent: replaced
    assert [e["_id"] for e in src["events"]] == ["e1", "e2", "e3"]  # max 3 events, e1 replaced not duplicated
    assert src["events"][0]["amount"] == 10.0
    late = {"user": "u", "amount": 5.0, "ts": 1.7e9 + 10 * day, "_id": "e9"}
    src = merge_profile(schema, src, "u", [late])
    assert [e["_id"] for e in src["events"]] == ["e9"]  # the window drops events 2+ days older than the newest
    assert sum(src["profile"]["hours"]) == 1 and len(src["profile"]["weekdays"]) == 7
    feat = EventFeaturizer(schema).fit([src], version=1, provisional=True)
    assert feat.kind == "profile" and feat.dim == profile_dim(schema, 0) == 1 + 2 + 5
    assert feat.transform([src]).shape == (1, feat.dim)


def test_hashed_buckets_are_the_same_in_every_process() -> None:
    """Hashed slots must not depend on Python's per-process salted hash()."""
    import subprocess
    import sys

    code = ("from embcluster.embed.events import hash_slot; "
            "print([hash_slot(v, 32) for v in ('m1', 'merchant 7', 'zz')])")
    outs = set()
    for seed in ("1", "2"):
        env = {**__import__("os").environ, "PYTHONHASHSEED": seed}
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outs.add(run.stdout.strip())
    from embcluster.embed.events import hash_slot

    assert outs == {str([hash_slot(v, 32) for v in ("m1", "merchant 7", "zz")])}


def test_infer_schema_keeps_an_all_distinct_entity_key() -> None:
    samples = [{"user": f"u{i}", "ts": "2026-01-01T00:00:00Z", "amount": float(i)} for i in range(30)]
    schema, notes = infer_schema(samples, entity_key="user")
    key = schema.field("user")
    assert key is not None and key.type == "categorical" and key.required
    assert check_schema(schema).entity_key == "user"
    assert any(n.startswith("user: categorical") for n in notes)
    plain, _ = infer_schema(samples)  # without entity_key an all-distinct id is still skipped
    assert plain.field("user") is None
