"""The anomaly feed: fan-out, no blocking, an overflowing watcher is dropped and told."""

from __future__ import annotations

from embcluster.anomaly.feed import AnomalyFeed


def test_fan_out_and_overflow() -> None:
    feed: AnomalyFeed[int] = AnomalyFeed(capacity=3)
    fast, slow = feed.subscribe("c"), feed.subscribe("c")
    other = feed.subscribe("d")
    feed.publish("c", [1, 2])
    assert [fast.get(0.1), fast.get(0.1)] == [1, 2] and fast.get(0.01) is None
    feed.publish("c", [3, 4])  # slow now holds 4 > 3: overflow
    assert slow.overflowed and not fast.overflowed
    assert feed.watchers("c") == 1 and other.get(0.01) is None
    feed.unsubscribe("c", fast)
    feed.publish("c", [5])  # nobody left: no error, no growth
    assert feed.watchers("c") == 0
