"""Cluster life-cycle events derived from the matching and the sizes (embcluster.cluster.lifecycle)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embcluster.cluster.lifecycle import (
    BIRTH,
    DEATH,
    GROW,
    GROW_MIN_DELTA,
    GROW_RATIO,
    MERGE,
    SHRINK,
    SPLIT,
    ClusterEvent,
    VersionSizes,
    derive_events,
    events_from_json,
    novel_clusters,
    sizes_of,
)
from embcluster.cluster.matching import MatchReport, match_clusters
from embcluster.models import ClusterModel, ModelStore


def _kinds(events: list[ClusterEvent]) -> list[tuple[str, int, tuple[int, ...]]]:
    return [(e.kind, e.cluster_id, e.related_ids) for e in events]


def test_first_model_every_cluster_is_a_birth() -> None:
    new = VersionSizes(1, sample={1: 30, 2: 70})
    events = derive_events(MatchReport(appeared=[1, 2]), new, None)
    assert _kinds(events) == [(BIRTH, 1, ()), (BIRTH, 2, ())]
    assert [e.share_after for e in events] == [0.3, 0.7]
    assert all(e.size_before == 0 and e.model_version == 1 and e.previous_version == 0 for e in events)


def test_birth_and_death_from_the_real_matching() -> None:
    # old clusters 1, 2, 3: 3's points are gone, and a new group appears among points v1 called 1
    old = np.concatenate([np.repeat(1, 100), np.repeat(2, 100), np.repeat(1, 10)])
    new_rows = np.concatenate([np.repeat(0, 100), np.repeat(1, 100), np.repeat(2, 10)])
    ids, report, _ = match_clusters(new_rows, 3, old, np.array([1, 2, 3]), next_id=4)
    assert report.appeared == [4] and report.vanished == [3]
    before = VersionSizes(1, full={1: 100, 2: 100, 3: 50})
    after = VersionSizes(2, full={1: 100, 2: 100, 4: 50})
    events = derive_events(report, after, before)
    assert (BIRTH, 4, ()) in _kinds(events)
    assert (DEATH, 3, ()) in _kinds(events)
    death = next(e for e in events if e.kind == DEATH)
    assert (death.size_before, death.size_after, death.share_before, death.share_after) == (50, 0, 0.2, 0.0)
    assert all(e.full_pass for e in events)


def test_split_reports_the_parent_not_births_of_its_children() -> None:
    # old 1 (200 points) -> new rows 0 and 1 (100 each): row 0 keeps id 1, row 1 is new id 3
    old = np.concatenate([np.repeat(1, 200), np.repeat(2, 100)])
    new_rows = np.concatenate([np.repeat(0, 110), np.repeat(1, 90), np.repeat(2, 100)])
    ids, report, _ = match_clusters(new_rows, 3, old, np.array([1, 2]), next_id=3)
    assert report.split == {1: [1, 3]}
    events = derive_events(report, VersionSizes(2, sample={1: 110, 3: 90, 2: 100}),
                           VersionSizes(1, sample={1: 200, 2: 100}))
    assert _kinds(events) == [(SPLIT, 1, (1, 3))]
    assert (events[0].size_before, events[0].size_after) == (200, 110)
    assert not events[0].full_pass


def test_merge_reports_the_new_cluster_not_deaths_of_its_parents() -> None:
    # old 1 and 2 (100 each) merge into one new cluster; old 3 stays
    old = np.concatenate([np.repeat(1, 100), np.repeat(2, 100), np.repeat(3, 100)])
    new_rows = np.concatenate([np.repeat(0, 200), np.repeat(1, 100)])
    ids, report, _ = match_clusters(new_rows, 2, old, np.array([1, 2, 3]), next_id=4)
    merged_id = int(ids[0])
    assert report.merged == {merged_id: [1, 2]}
    after = {merged_id: 200, 3: 100}
    events = derive_events(report, VersionSizes(2, sample=after), VersionSizes(1, sample={1: 100, 2: 100, 3: 100}))
    assert _kinds(events) == [(MERGE, merged_id, (1, 2))]


def test_grow_and_shrink_fire_above_the_threshold_only() -> None:
    report = MatchReport(persisted=[1, 2, 3])
    before = VersionSizes(1, full={1: 500, 2: 300, 3: 200})
    # 2: share 0.30 -> 0.15 (halved); 1 grows from 0.50 to 0.65 (+30%); 3 stays at 0.20
    after = VersionSizes(2, full={1: 650, 2: 150, 3: 200})
    events = derive_events(report, after, before)
    assert _kinds(events) == [(GROW, 1, ()), (SHRINK, 2, ())]
    # Just inside the relative threshold: no event.
    small = 0.30 * (1 + GROW_RATIO) - 0.01
    after = VersionSizes(2, full={1: 500 - int(round((small - 0.30) * 1000)), 2: int(round(small * 1000)), 3: 200})
    assert [e for e in derive_events(report, after, before) if e.cluster_id == 2] == []


def test_a_tiny_cluster_does_not_fire_on_a_big_relative_change() -> None:
    report = MatchReport(persisted=[1, 2])
    before = VersionSizes(1, full={1: 9_990, 2: 10})
    after = VersionSizes(2, full={1: 9_970, 2: 30})  # x3, but 0.2 points of a percent
    assert 0.002 < GROW_MIN_DELTA
    assert derive_events(report, after, before) == []


def test_sample_sizes_when_either_version_lacks_the_full_pass() -> None:
    report = MatchReport(persisted=[1, 2])
    before = VersionSizes(1, sample={1: 50, 2: 50}, full=None)
    after = VersionSizes(2, sample={1: 80, 2: 20}, full={1: 500, 2: 500})
    events = derive_events(report, after, before)
    assert _kinds(events) == [(GROW, 1, ()), (SHRINK, 2, ())]
    assert not events[0].full_pass and events[0].size_after == 80


def test_rollback_target_is_the_previous_version_of_the_next_run() -> None:
    # v1 {1, 2} -> v2 {1, 3} (2 died, 3 born) -> rollback to v1 -> v3 matched against v1: 2 persists
    v1 = VersionSizes(1, full={1: 100, 2: 100})
    v2_events = derive_events(MatchReport(persisted=[1], appeared=[3], vanished=[2]),
                              VersionSizes(2, full={1: 100, 3: 100}), v1)
    assert _kinds(v2_events) == [(BIRTH, 3, ()), (DEATH, 2, ())]
    v3_events = derive_events(MatchReport(persisted=[1, 2]), VersionSizes(3, full={1: 100, 2: 100}), v1)
    assert v3_events == []  # nothing changed against the served v1: no event, and v2's are not repeated


def test_new_feature_space_reports_births_and_deaths() -> None:
    # an EVENT featurizer refit: the new fit matched nothing (every cluster appeared)
    events = derive_events({"appeared": [5, 6]}, VersionSizes(4, full={5: 10, 6: 10}),
                           VersionSizes(3, full={1: 10, 2: 10}))
    assert _kinds(events) == [(BIRTH, 5, ()), (BIRTH, 6, ()), (DEATH, 1, ()), (DEATH, 2, ())]
    assert {e.previous_version for e in events} == {3}


def test_unpopulated_clusters_are_left_out() -> None:
    sizes = sizes_of(2, [7, 8, 9], [True, False, True], {"sizes_sample": [5, 1, 4], "sizes_full": [50, 0, 40]})
    assert sizes.sample == {7: 5, 9: 4} and sizes.full == {7: 50, 9: 40}
    assert sizes_of(2, [7, 8], [True, True], {"sizes_sample": [5, 1]}).full is None


def test_events_round_trip_through_json_and_model_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    event = ClusterEvent(kind=SPLIT, cluster_id=1, related_ids=(1, 3), size_before=200, size_after=110,
                         share_before=2 / 3, share_after=0.3666666666, model_version=2, previous_version=1,
                         full_pass=True)
    back = events_from_json(json.loads(json.dumps([event.to_json()])))[0]
    assert back.related_ids == (1, 3) and back.share_before == pytest.approx(2 / 3, abs=1e-6)
    assert back.to_json() == event.to_json()
    model = ClusterModel(version=2, metric="cosine", centroids=np.eye(2, dtype=np.float32),
                         cluster_ids=np.array([1, 3]), populated=np.ones(2, bool), radius=np.ones(2),
                         large=np.ones(2, bool), scorer="distance", threshold_mode="contamination",
                         thresholds=np.full(2, np.inf), events=[event])
    store = ModelStore(tmp_path)
    store.save(model)
    assert store.load(2).events == [back]
    assert store.load_meta(2)["events"][0]["kind"] == SPLIT


def test_a_model_file_without_events_still_loads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = ClusterModel(version=1, metric="cosine", centroids=np.eye(2, dtype=np.float32),
                         cluster_ids=np.array([1, 2]), populated=np.ones(2, bool), radius=np.ones(2),
                         large=np.ones(2, bool), scorer="distance", threshold_mode="contamination",
                         thresholds=np.full(2, np.inf))
    store = ModelStore(tmp_path)
    store.save(model)
    meta = store.load_meta(1)
    assert "events" not in meta and meta["schema_version"] == 1  # as written before events existed
    assert store.load(1).events is None
    model.events = []
    store.save(model)
    assert store.load(1).events == [] and store.load_meta(1)["schema_version"] == 1


def test_new_content_filed_under_an_old_cluster_is_a_birth_not_a_split() -> None:
    # old 1 at the origin (radius 1); the new fit keeps 1 and finds 3 at distance 10, whose points
    # the old model had filed under 1: the matching calls it a split of 1
    report = MatchReport(persisted=[1, 2], appeared=[3], split={1: [1, 3]})
    old_c = {1: np.zeros(2), 2: np.array([0.0, 20.0])}
    radius = {1: 1.0, 2: 1.0}
    novel = novel_clusters(report, {1: np.zeros(2), 2: np.array([0.0, 20.0]), 3: np.array([10.0, 0.0])},
                           old_c, radius, "euclid")
    assert novel == {3}
    before = VersionSizes(1, full={1: 100, 2: 100})
    after = VersionSizes(2, full={1: 100, 2: 100, 3: 100})
    assert _kinds(derive_events(report, after, before, novel=novel)) == [(BIRTH, 3, (1,)), (SHRINK, 1, ()),
                                                                          (SHRINK, 2, ())]
    # The same matching with 3 inside 1's radius: a real split of 1.
    near = novel_clusters(report, {1: np.array([-0.5, 0.0]), 2: np.array([0.0, 20.0]), 3: np.array([0.5, 0.0])},
                          old_c, radius, "euclid")
    assert near == set()
    assert _kinds(derive_events(report, after, before, novel=near))[0] == (SPLIT, 1, (1, 3))


def test_a_real_merge_is_not_new_content() -> None:
    # old 1 and 2 (far apart) merge into new 3; both vanished: a MERGE whatever the distances
    report = MatchReport(appeared=[3], vanished=[1, 2], merged={3: [1, 2]})
    novel = novel_clusters(report, {3: np.array([5.0, 0.0])}, {1: np.zeros(2), 2: np.array([10.0, 0.0])},
                           {1: 1.0, 2: 1.0}, "euclid")
    assert novel == set()
    events = derive_events(report, VersionSizes(2, full={3: 200}), VersionSizes(1, full={1: 100, 2: 100}), novel=novel)
    assert _kinds(events) == [(MERGE, 3, (1, 2))]
    # With both parents kept and the new cluster far from each: a BIRTH of new content between them.
    between = MatchReport(persisted=[1, 2], appeared=[3], merged={3: [1, 2]})
    novel = novel_clusters(between, {1: np.zeros(2), 2: np.array([10.0, 0.0]), 3: np.array([5.0, 5.0])},
                           {1: np.zeros(2), 2: np.array([10.0, 0.0])}, {1: 1.0, 2: 1.0}, "euclid")
    assert novel == {3}
    events = derive_events(between, VersionSizes(2, full={1: 100, 2: 100, 3: 50}),
                           VersionSizes(1, full={1: 100, 2: 100}), novel=novel)
    assert _kinds(events)[0] == (BIRTH, 3, (1, 2))
