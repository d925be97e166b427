"""Synthetic card-transaction streams with two planted behaviours (for profile tests, bench, demo).

Half of the users shop at night (local hour 0-4) with large amounts at a few online merchants;
the other half in the daytime (9-18 h) with small amounts at groceries and cafés. Each user's
events are spread over ``days`` days ending at a fixed reference time. Seeded: the same arguments
give the same stream.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np

__all__ = ["planted_profile_stream", "loyalty_profile_stream", "PROFILE_SCHEMA_FIELDS", "REFERENCE_TS"]

REFERENCE_TS = datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()
DAY = 86_400.0
PROFILE_SCHEMA_FIELDS: list[dict[str, Any]] = [
    {"name": "user", "type": "categorical"},
    {"name": "amount", "type": "numeric", "log": True},
    {"name": "merchant", "type": "categorical", "buckets": 16},
    {"name": "ts", "type": "timestamp"},
]
_NIGHT_MERCHANTS = ["electronics-online", "crypto-exchange", "luxury-goods"]
_DAY_MERCHANTS = ["grocery", "cafe", "bakery", "pharmacy", "bookshop"]


def planted_profile_stream(n_users: int = 60, events_per_user: int = 20, *, days: float = 20.0,
                           seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Events (dicts with ``user``, ``amount``, ``merchant``, ``ts`` as RFC 3339) in time order,
    and each user's planted behaviour (1 = night-time high amounts, 0 = daytime small purchases)."""
    rng = np.random.default_rng(seed)
    events: list[dict[str, Any]] = []
    behaviour: dict[str, int] = {}
    for u in range(n_users):
        user = f"user-{u:04d}"
        night = u % 2
        behaviour[user] = night
        for _ in range(events_per_user):
            day = REFERENCE_TS - DAY * float(rng.integers(0, int(days)))
            hour = float(rng.uniform(0, 4)) if night else float(rng.uniform(9, 18))
            amount = float(rng.lognormal(6.0, 0.4)) if night else float(rng.lognormal(2.5, 0.5))
            merchant = str(rng.choice(_NIGHT_MERCHANTS if night else _DAY_MERCHANTS))
            ts = datetime.fromtimestamp(day + hour * 3600, tz=timezone.utc).isoformat().replace("+00:00", "Z")
            events.append({"user": user, "amount": round(amount, 2), "merchant": merchant, "ts": ts})
    events.sort(key=lambda e: e["ts"])
    return events, behaviour


def loyalty_profile_stream(n_users: int = 60, events_per_user: int = 20, *, days: float = 20.0,
                           seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """A stream whose two behaviours show only in aggregate, never in a single event.

    *Loyal* users (1) always pay the same merchant (their own pick of five) similar amounts;
    *explorers* (0) pay any of the five merchants, amounts spread widely. Any single event of
    either could come from the other, so clustering events cannot tell the users apart; their
    profiles (merchant shares, amount spread) can.
    """
    rng = np.random.default_rng(seed)
    merchants = _DAY_MERCHANTS
    events: list[dict[str, Any]] = []
    behaviour: dict[str, int] = {}
    for u in range(n_users):
        user = f"user-{u:04d}"
        loyal = u % 2
        behaviour[user] = loyal
        favourite = str(rng.choice(merchants))
        typical = float(rng.lognormal(3.0, 0.8))
        for _ in range(events_per_user):
            day = REFERENCE_TS - DAY * float(rng.integers(0, int(days)))
            hour = float(rng.uniform(8, 20))
            merchant = favourite if loyal else str(rng.choice(merchants))
            amount = typical * float(rng.lognormal(0.0, 0.1)) if loyal else float(rng.lognormal(3.0, 0.8))
            ts = datetime.fromtimestamp(day + hour * 3600, tz=timezone.utc).isoformat().replace("+00:00", "Z")
            events.append({"user": user, "amount": round(amount, 2), "merchant": merchant, "ts": ts})
    events.sort(key=lambda e: e["ts"])
    return events, behaviour
