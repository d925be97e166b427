"""EVENT cluster summaries name the fields that set a cluster apart (embcluster.insight.event_summary)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from scipy.stats import ks_2samp

from embcluster.data.synthetic_events import PROFILE_SCHEMA_FIELDS, planted_profile_stream
from embcluster.embed.event_schema import parse_events
from embcluster.embed.events import EventSchema, FieldSpec
from embcluster.embed.profiles import merge_profile
from embcluster.insight.event_summary import event_table, event_text, field_findings, fields_of

FIELDS = {"amount": "numeric", "noise": "numeric", "country": "categorical", "channel": "categorical",
          "ts": "timestamp"}
MIDNIGHT = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()  # a Monday


def two_groups(n: int = 400, seed: int = 0) -> tuple[list[dict], np.ndarray]:
    """Group 1 differs from group 0 in amount only; noise, country, channel and time are drawn alike."""
    rng = np.random.default_rng(seed)
    events, labels = [], []
    for g in (0, 1):
        for _ in range(n):
            events.append({"event": {
                "amount": float(rng.lognormal(3.0 if g == 0 else 5.0, 0.4)),
                "noise": float(rng.normal(0, 1)),
                "country": str(rng.choice(["DE", "FR", "BR", "US", "JP"])),
                "channel": str(rng.choice(["web", "app"])),
                "ts": MIDNIGHT + float(rng.uniform(0, 7 * 86400)),
            }})
            labels.append(g)
    return events, np.asarray(labels)


def test_the_truly_separating_numeric_field_is_named_and_no_noise_field():
    events, labels = two_groups()
    table = event_table(events, FIELDS)
    found = field_findings(table, labels)
    for g, word in ((0, "amount low"), (1, "amount high")):
        assert found[g], g
        top = found[g][0]
        assert top.field == "amount" and top.text == word and top.score > 0.9
        assert {f.field for f in found[g]} == {"amount"}, [f.text for f in found[g]]  # noise, country, ts: nothing
    assert found[1][0].median > found[1][0].overall_median > found[0][0].median
    assert found[1][0].effect > 0 > found[0][0].effect
    amounts = np.asarray([e["event"]["amount"] for e in events])
    assert found[1][0].score == pytest.approx(ks_2samp(amounts[labels == 1], amounts[labels == 0]).statistic)


def test_a_separating_category_and_hour_band_are_named_with_their_lift():
    rng = np.random.default_rng(3)
    events, labels = [], []
    for g in (0, 1):
        for _ in range(300):
            hour = rng.integers(0, 6) if g == 1 else rng.integers(8, 20)
            events.append({"event": {
                "amount": float(rng.normal(50, 10)), "noise": float(rng.normal()),
                "country": "BR" if g == 1 and rng.random() < 0.8 else str(rng.choice(["DE", "FR", "US"])),
                "channel": str(rng.choice(["web", "app"])),
                "ts": MIDNIGHT + float(rng.integers(0, 7)) * 86400 + hour * 3600 + float(rng.uniform(0, 3599)),
            }})
            labels.append(g)
    table = event_table(events, FIELDS)
    found = field_findings(table, np.asarray(labels))
    texts = [f.text for f in found[1]]
    assert "ts hour 0–5" in texts and "country=BR" in texts, texts
    br = next(f for f in found[1] if f.text == "country=BR")
    assert br.lift is not None and br.lift > 1.5 and br.share is not None and br.share > 0.7
    assert not any(f.field in ("amount", "noise", "channel", "ts weekday") for f in found[1]), texts


def test_a_narrow_middle_band_is_described_by_its_range_and_an_extreme_one_by_its_direction():
    rng = np.random.default_rng(5)
    ages = np.concatenate([rng.integers(18, 80, 600), rng.integers(40, 46, 200), rng.integers(18, 22, 200)])
    labels = np.asarray([0] * 600 + [1] * 200 + [2] * 200)
    table = event_table([{"event": {"age": float(a)}} for a in ages], {"age": "numeric"})
    found = field_findings(table, labels)
    assert found[1][0].text == "age 40–45" and found[1][0].low == 40 and found[1][0].high == 45
    assert found[2][0].text == "age low"


def test_profiles_of_the_planted_stream_name_night_hours_and_high_amounts():
    schema = EventSchema(fields=[FieldSpec(**f) for f in PROFILE_SCHEMA_FIELDS], entity_key="user")
    events, behaviour = planted_profile_stream(n_users=80, events_per_user=15, seed=2)
    parsed = parse_events(schema, events)
    by_user: dict[str, list[dict]] = {}
    for ev in parsed:
        by_user.setdefault(ev["user"], []).append(ev)
    users = sorted(by_user)
    sources = [merge_profile(schema, None, u, by_user[u]) for u in users]
    labels = np.asarray([behaviour[u] for u in users])
    fields = fields_of(schema)
    assert "user" not in fields
    table = event_table(sources, fields)
    found = field_findings(table, labels)
    night = [f.text for f in found[1]]
    assert "amount mean high" in night and "ts hour 0–5" in night, night
    assert event_text(sources[0], fields).startswith(f"entity={users[0]}, events=15")


def test_missing_fields_and_single_cluster_give_no_findings_and_event_text_is_readable():
    table = event_table([{"event": {"amount": 3.0}}, {"event": {}}, None, {"event": {"amount": "n/a"}}], FIELDS)
    assert [c.name for c in table.columns] == ["amount"]
    assert table.values["amount"][0] == 3.0 and np.isnan(table.values["amount"][1:]).all()
    assert field_findings(table, np.zeros(4, dtype=int)) == {0: []}
    text = event_text({"event": {"amount": 12.5, "country": "BR", "ts": MIDNIGHT + 3600}}, FIELDS)
    assert text == "amount=12.5, country=BR, ts=2026-03-02 01:00"
