"""The sandbox world: deterministic, O(page) to generate, and ticks that change ~1% of records."""

from __future__ import annotations

import dataclasses
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandbox.world import DAY_MS, LIFECYCLE_STAGES, YEAR_MS, Person, World, format_ms, parse_time

T0 = parse_time("2026-01-01T00:00:00Z")
T1 = T0 + 3_600_000
T2 = T1 + 3_600_000


def test_format_and_parse_time_round_trip() -> None:
    ms = parse_time("2026-03-04T05:06:07.089Z")
    assert format_ms(ms) == "2026-03-04T05:06:07.089Z"
    assert parse_time(str(ms)) == ms
    assert parse_time(datetime(2026, 3, 4, 5, 6, 7, 89_000, tzinfo=UTC)) == ms


def test_same_seed_same_world_other_seed_other_world() -> None:
    a, b = World(seed=7, size=500, ticks=[T0, T1]), World(seed=7, size=500, ticks=[T0, T1])
    other = World(seed=8, size=500, ticks=[T0, T1])
    sample = range(0, 500, 7)
    assert [a.person(i) for i in sample] == [b.person(i) for i in sample]
    assert [a.company(j) for j in range(0, 100, 3)] == [b.company(j) for j in range(0, 100, 3)]
    assert [a.deal(d) for d in range(0, 125, 5)] == [b.deal(d) for d in range(0, 125, 5)]
    assert [a.person(i).email for i in sample] != [other.person(i).email for i in sample]


def test_people_are_plain_records_with_every_field_set() -> None:
    world = World(seed=7, size=500, ticks=[T0, T1], grow=True)
    for i in range(0, world.people.count(1), 3):
        p = world.person(i)
        assert type(p) is Person
        # every field is set (an unset slot raises here) and the record equals one built by Person(...)
        values = {f.name: getattr(p, f.name) for f in dataclasses.fields(Person)}
        assert Person(**values) == p and repr(Person(**values)) == repr(p)


def test_a_page_of_a_million_people_costs_a_page() -> None:
    started = time.perf_counter()
    world = World(seed=7, size=1_000_000, ticks=[T0, T1, T2])
    tracemalloc.start()
    page = [world.person(i) for i in range(999_900, 1_000_000)]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len({p.idx for p in page}) == 100
    assert peak < 2_000_000  # bytes: nothing proportional to the population
    assert time.perf_counter() - started < 1.0
    with pytest.raises(IndexError):
        world.person(1_000_000)


def test_base_population_dates_and_journeys_are_consistent() -> None:
    world = World(seed=3, size=2000, ticks=[T0])
    people = [world.person(i) for i in range(2000)]
    created = [p.created_ms for p in people]
    assert created == sorted(created), "ids increase with creation time"
    order = {s: n for n, s in enumerate(LIFECYCLE_STAGES)}
    for p in people:
        assert T0 - YEAR_MS - DAY_MS <= p.created_ms <= p.modified_ms <= T0 - DAY_MS
        stages = list(p.stage_dates)
        assert stages[-1] == p.lifecycle_stage
        assert [order[s] for s in stages] == sorted(order[s] for s in stages)
        dates = list(p.stage_dates.values())
        assert dates == sorted(dates) and dates[0] >= p.created_ms and dates[-1] <= p.modified_ms
    stages_seen = {p.lifecycle_stage for p in people}
    assert {"subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
            "customer"} <= stages_seen


def test_dirty_data_rates() -> None:
    world = World(seed=11, size=5000, ticks=[T0])
    people = [world.person(i) for i in range(5000)]
    emails = [p.email for p in people]
    missing = sum(e is None for e in emails) / 5000
    padded = sum(e is not None and e != e.strip() for e in emails) / 5000
    mixed = sum(e is not None and e != e.lower() for e in emails) / 5000
    normalised = [e.strip().lower() for e in emails if e]
    duplicates = len(normalised) - len(set(normalised))
    assert 0.02 <= missing <= 0.04
    assert 0.01 <= padded <= 0.03
    assert 0.02 <= mixed <= 0.06
    assert 50 <= duplicates <= 150  # ~2% share an earlier person's address
    assert 0.08 <= sum(p.phone is None for p in people) / 5000 <= 0.12
    assert {"USA", "US", "UK"} & {p.country for p in people}


def test_companies_and_deals_link_both_ways() -> None:
    world = World(seed=7, size=1000, ticks=[T0])
    assert world.companies.count(0) == 200 and world.deals.count(0) == 250
    for d in range(250):
        c = world.contact_of_deal(d)
        assert d in world.deals_of_person(c)
        deal = world.deal(d)
        assert deal.company_idx == world.company_of(c)
        if world.person(c).lifecycle_stage == "customer":
            assert deal.stage == "closedwon"
    for j in range(200):
        assert all(world.company_of(i) == j for i in world.people_of_company(j))
    assert 0.8 <= sum(world.company_of(i) is not None for i in range(1000)) / 1000 <= 0.95


def test_a_tick_changes_one_percent_and_archives_a_tenth_of_that() -> None:
    size = 20_000
    world = World(seed=7, size=size, ticks=[T0])
    world.advance(at=T1)
    space = world.people
    modified = {i for i in range(size) if world.modified_ms(space, i, 1) == T1}
    archived = {i for i in range(size) if world.is_archived(space, i, 1)}
    assert 0.009 * size <= len(modified - archived) <= 0.011 * size
    assert 0.0005 * size <= len(archived) <= 0.0015 * size
    assert archived <= modified
    # enumerable without a scan: the candidates are a small superset
    candidates = set(world.changed_since(space, T1, 1))
    assert modified <= candidates and len(candidates) < 0.02 * size
    # state at a tick = base + changes of ticks <= t
    unchanged = next(i for i in range(size) if i not in modified)
    assert world.person(unchanged, 1) == world.person(unchanged, 0)
    changed = next(iter(modified - archived))
    before, after = world.person(changed, 0), world.person(changed, 1)
    assert after.modified_ms == T1 and before.modified_ms < T0
    assert after.created_ms == before.created_ms and after.email == before.email
    assert world.person(changed, 0) == before, "tick 0 state does not move when the clock advances"


def test_ticks_change_different_records_and_stages_only_advance() -> None:
    world = World(seed=7, size=5000, ticks=[T0, T1, T2])
    order = {s: n for n, s in enumerate(LIFECYCLE_STAGES)}
    changed1 = {i for i in range(5000) if world.modified_ms(world.people, i, 2) == T1}
    changed2 = {i for i in range(5000) if world.modified_ms(world.people, i, 2) == T2}
    assert changed1 and changed2 and changed1 != changed2
    for i in changed2:
        before, after = world.person(i, 0), world.person(i, 2)
        if before.lifecycle_stage != "other":
            assert order[after.lifecycle_stage] >= order[before.lifecycle_stage]
        if after.lifecycle_stage != before.lifecycle_stage:
            assert after.stage_dates[after.lifecycle_stage] in (T1, T2)


def test_tick_times_must_increase() -> None:
    world = World(seed=7, size=100, ticks=[T0])
    with pytest.raises(ValueError, match="not after"):
        world.advance(at=T0)


def test_growing_world_creates_records_at_the_tick() -> None:
    world = World(seed=7, size=2000, ticks=[T0], grow=True)
    world.advance(at=T1)
    assert world.people.count(1) == 2010 and world.people.count(0) == 2000
    newcomer = world.person(2005)
    assert newcomer.created_ms == newcomer.modified_ms == T1
    assert 2005 in set(world.changed_since(world.people, T1, 1))
    with pytest.raises(IndexError):
        world.person(2005, 0)


def test_clock_persists_in_the_state_dir(tmp_path: Path) -> None:
    world = World.open(seed=5, size=300, state_dir=tmp_path, created_at=T0)
    world.advance(at=T1)
    again = World.open(seed=5, size=300, state_dir=tmp_path)
    assert again.ticks == [T0, T1] and again.tick == 1
    assert again.person(42) == world.person(42)
    assert World.open(seed=6, size=300, state_dir=tmp_path).ticks != [T0, T1]
