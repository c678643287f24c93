"""Journeys over the sandbox world: deterministic, consistent with the CRM, O(touches) per person."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import sys
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.journeys import (
    CAMPAIGN_KINDS,
    CHANNELS,
    TOUCH_KINDS,
    Campaign,
    Journeys,
    Order,
    OrderLine,
    Touch,
    journey_stats,
)
from sandbox.world import DAY_MS, World, parse_time

T0 = parse_time("2026-01-01T00:00:00Z")
HOUR = 3_600_000
TICKS = [T0 + k * HOUR for k in range(4)]
SIZE = 2000


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, size=SIZE, ticks=TICKS)


@pytest.fixture(scope="module")
def j(world: World) -> Journeys:
    return Journeys(world)


def test_records_are_frozen_slotted_dataclasses(j: Journeys) -> None:
    for cls in (Campaign, Touch, Order, OrderLine):
        assert dataclasses.is_dataclass(cls) and hasattr(cls, "__slots__")
    touch = j.touches(5)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        touch.kind = "call"  # type: ignore[misc]


def test_same_seed_same_journeys_other_seed_other_journeys(j: Journeys) -> None:
    again = Journeys(World(seed=7, size=SIZE, ticks=TICKS))
    other = Journeys(World(seed=8, size=SIZE, ticks=TICKS))
    sample = range(0, SIZE, 37)
    assert [j.touches(i) for i in sample] == [again.touches(i) for i in sample]
    assert [j.orders(i) for i in sample] == [again.orders(i) for i in sample]
    assert [j.campaign(c) for c in range(j.campaign_count())] == [
        again.campaign(c) for c in range(again.campaign_count())]
    assert [j.touches(i) for i in sample] != [other.touches(i) for i in sample]


def test_campaigns_cover_every_system_and_slugs_round_trip(world: World, j: Journeys) -> None:
    assert j.campaign_count() == max(5, SIZE // 100)
    small = Journeys(World(seed=7, size=300, ticks=TICKS))
    assert small.campaign_count() == 5
    for jj in (j, small):
        campaigns = [jj.campaign(c) for c in range(jj.campaign_count())]
        assert {c.system for c in campaigns} == {"hubspot", "marketo", "mailchimp", "salesforce"}
        for c in campaigns:
            assert c.kind in CAMPAIGN_KINDS and c.channel in CHANNELS
            assert c.created_ms < c.start_ms < c.end_ms
            assert c.actual_cost >= 0 and c.budget > 0
            assert c.status in ("planned", "in_progress", "completed", "aborted")
            assert jj.campaign_by_slug(jj.campaign_slug(c.idx)) == c.idx
    assert j.campaign_by_slug("summer-sale") is None
    with pytest.raises(IndexError):
        j.campaign(j.campaign_count())


def test_touches_are_ordered_and_in_the_vocabulary(world: World, j: Journeys) -> None:
    for i in range(0, SIZE, 7):
        touches = j.touches(i)
        assert [x.seq for x in touches] == list(range(len(touches)))
        assert [x.at_ms for x in touches] == sorted(x.at_ms for x in touches)
        for x in touches:
            assert x.person_idx == i and x.kind in TOUCH_KINDS
            assert x.system in ("hubspot", "marketo", "mailchimp", "x", "salesforce")
            if x.campaign_idx is not None:
                c = j.campaign(x.campaign_idx)
                assert c.start_ms <= x.at_ms <= c.end_ms, "a touch's campaign is running at the time"
            if x.kind == "social_mention":
                assert x.system == "x" and j.social_handle(i) is not None
            if x.kind in ("call", "meeting"):
                assert x.system == "salesforce"


def test_touch_events_are_the_touches_as_tuples_and_touches_are_plain_records(world: World, j: Journeys) -> None:
    for t in (0, len(TICKS) - 1):
        for i in range(0, SIZE, 7):
            p = world.person(i, t)
            touches = j._touches(p, t)
            evs = j._touch_events(p, t)
            assert [(x.at_ms, x.kind, x.campaign_idx, x.system, x.url) for x in touches] == evs
            # built like any Touch: same type, equal and hashed alike, frozen
            assert all(type(x) is Touch for x in touches)
            again = [Touch(i, n, kind, at, c, system, url) for n, (at, kind, c, system, url) in enumerate(evs)]
            assert touches == again and list(map(hash, touches)) == list(map(hash, again))
            assert list(map(repr, touches)) == list(map(repr, again))
            # orders find their campaigns the same from given touches as from the events
            orders = j._orders(p, t)
            assert orders == j._orders(p, t, touches)
            assert all(type(o) is Order for o in orders)
    with pytest.raises(dataclasses.FrozenInstanceError):
        j.orders(next(i for i in range(SIZE) if j.orders(i)))[0].email = "x"  # type: ignore[misc]
    made = Touch(person_idx=1, seq=2, kind="call", at_ms=3, campaign_idx=None, system="salesforce", url=None)
    assert type(made) is Touch and made == Touch(1, 2, "call", 3, None, "salesforce", None)
    assert dataclasses.replace(made, seq=9) == Touch(1, 9, "call", 3, None, "salesforce", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.seq = 5  # type: ignore[misc]


def test_journeys_agree_with_the_crm(world: World, j: Journeys) -> None:
    for i in range(SIZE):
        p = world.person(i)
        touches = j.touches(i)
        assert touches[0].at_ms == p.created_ms, "the first touch is the person's creation"
        at = {x.at_ms for x in touches}
        for stage, date in p.stage_dates.items():
            assert date in at, f"person {i}: a touch marks entering {stage}"
        if "lead" in p.stage_dates:
            lead = p.stage_dates["lead"]
            assert any(x.kind == "form_submission" and x.at_ms <= lead for x in touches)
        if {"opportunity", "customer"} & p.stage_dates.keys():
            assert any(x.kind in ("call", "meeting") and x.system == "salesforce" for x in touches)
        if p.email is None:
            assert not any(x.kind.startswith("email_") for x in touches)
        orders = j.orders(i)
        guest = j.is_guest_buyer(i)
        assert not guest or not any(p.stage_dates.get(s, T0) < T0 for s in ("customer", "evangelist"))
        assert not orders or "customer" in p.stage_dates or guest
        for o in orders:
            assert o.person_idx == i and o.created_ms <= o.updated_ms
            assert o.cancelled_ms is None or o.created_ms <= o.cancelled_ms <= o.updated_ms
            if not guest:
                assert o.created_ms >= p.stage_dates["customer"], "orders follow the customer date"
            assert o.lines and o.number == f"#{1001 + o.idx}"


def test_utm_campaigns_name_the_last_campaign_touch_before_the_order(j: Journeys) -> None:
    named = 0
    for i in range(SIZE):
        touches = j.touches(i)
        for o in j.orders(i):
            if o.utm_campaign is None:
                assert o.utm_source is None and o.utm_medium is None
                continue
            assert f"utm_campaign={o.utm_campaign}" in (o.landing_site or "")
            c = j.campaign_by_slug(o.utm_campaign)
            if c is None:
                continue
            last = [x.campaign_idx for x in touches if x.at_ms <= o.created_ms and x.campaign_idx is not None]
            assert last[-1] == c
            named += 1
    assert named > 100


def test_order_ids_are_global_and_unique(j: Journeys) -> None:
    ids = [o.idx for i in range(SIZE) for o in j.orders(i)]
    assert len(ids) == len(set(ids)) > 100


def test_a_tick_adds_one_touch_per_changed_person_and_nothing_else(world: World, j: Journeys) -> None:
    for t in range(1, len(TICKS)):
        residue = world.people.change_res[t]
        changed = []
        for i in range(SIZE):
            before, after = j.touches(i, t - 1), j.touches(i, t)
            assert after[: len(before)] == before, "earlier touches (and their seq) never change"
            new = after[len(before):]
            if i % 100 == residue:
                assert len(new) == 1 and new[0].at_ms == TICKS[t]
                changed.append(i)
            else:
                assert new == []
        assert list(j.people_touched_since(TICKS[t], t)) == changed
    since_1 = list(j.people_touched_since(TICKS[1]))
    brute = [i for i in range(SIZE) if any(x.at_ms >= TICKS[1] for x in j.touches(i))]
    assert since_1 == brute
    for before_t0 in (0, T0 - 40 * DAY_MS, T0 - 300 * DAY_MS):
        for t in (0, 3):
            assert list(j.people_touched_since(before_t0, t)) == [
                i for i in range(SIZE) if j.touches(i, t)[-1].at_ms >= before_t0]


def test_people_with_orders_since_matches_a_scan(j: Journeys) -> None:
    for since, t in ((TICKS[1], 3), (TICKS[3], 3), (T0 - 30 * DAY_MS, 3), (T0 - 200 * DAY_MS, 2), (TICKS[2], 2)):
        brute = [i for i in range(SIZE) if any(o.updated_ms >= since for o in j.orders(i, t))]
        assert list(j.people_with_orders_since(since, t)) == brute
    assert list(j.people_with_orders_since(TICKS[1])), "ticks add orders and updates"


def test_grown_people_get_their_touches_at_creation() -> None:
    world = World(seed=5, size=400, ticks=TICKS[:2], grow=True)
    jj = Journeys(world)
    new = range(world.people.base_count, world.people.count(1))
    assert len(new) == 2
    for i in new:
        p = world.person(i)
        assert {x.at_ms for x in jj.touches(i)} == {TICKS[1]} == {p.created_ms}
        assert all(o.created_ms == TICKS[1] for o in jj.orders(i))
    touched = list(jj.people_touched_since(TICKS[1]))
    assert set(new) <= set(touched)
    assert all(i in new or i % 100 == world.people.change_res[1] for i in touched)


@contextlib.contextmanager
def _calls(*fns: Any) -> Iterator[collections.Counter[str]]:
    """Counts the calls of ``fns`` made inside the block (observed with a profile hook, not patched)."""
    codes = {fn.__code__: fn.__name__ for fn in fns}
    seen: collections.Counter[str] = collections.Counter()

    def hook(frame: Any, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code in codes:
            seen[codes[frame.f_code]] += 1
    sys.setprofile(hook)
    try:
        yield seen
    finally:
        sys.setprofile(None)


def test_a_journey_in_a_million_people_costs_its_touches() -> None:
    """Work per person, not per population: the calls made and the memory held, not the time taken
    (bench/bench_journeys.py measures the CPU)."""
    world = World(seed=7, size=1_000_000, ticks=TICKS)
    jj = Journeys(world)
    tracemalloc.start()
    with _calls(Journeys._base_events, World.person) as seen:
        for i in range(999_950, 1_000_000):
            jj.touches(i)
            jj.orders(i)
        jj.campaign(jj.campaign_count() - 1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000
    # each of the 50 people's journey is built at most once per call (touches, orders), nobody else's
    assert 0 < seen["_base_events"] <= 100 and seen["person"] <= 200, seen
    with _calls(Journeys._base_events, World.person) as seen:
        touched = sum(1 for _ in jj.people_touched_since(TICKS[3]))
        assert touched == 10_000
        assert sum(1 for _ in jj.people_touched_since(0)) == 1_000_000  # everyone, without a journey each
    assert seen["_base_events"] == 0 and seen["person"] <= 10_000, seen


def test_every_vendor_has_data(j: Journeys) -> None:
    stats = journey_stats(j)
    for name in ("hubspot", "marketo", "mailchimp", "salesforce"):
        assert stats[f"people_in_{name}"][0] > 0
    assert stats["people_on_x"][0] > 0 and stats["people_in_shop"][0] > 0


#: docs/journeys.md quotes these (seed 7, size 2000, ticks T0 + 0..3 hours, at tick 3)
DOCUMENTED = {
    "touches_per_person": (34248, 2000),
    "touches_without_campaign": (9758, 34248),
    "touches_at_ticks": (60, 34248),
    "campaign_members_hubspot": (2670, 2000),
    "campaign_members_marketo": (1594, 2000),
    "campaign_members_mailchimp": (915, 2000),
    "campaign_members_salesforce": (824, 2000),
    "people_in_hubspot": (2000, 2000),
    "people_in_marketo": (1227, 2000),
    "people_in_mailchimp": (479, 2000),
    "people_in_salesforce": (1100, 2000),
    "people_on_x": (464, 2000),
    "people_in_shop": (426, 2000),
    "people_with_handle": (697, 2000),
    "handles_known_to_crm": (484, 697),
    "x_authors_known_to_crm": (316, 464),
    "opportunities_with_sales_touch": (461, 461),
    "orders_per_buyer": (655, 426),
    "orders_with_prior_touch": (655, 655),
    "orders_with_prior_campaign_touch": (650, 655),
    "orders_with_utm_campaign": (284, 655),
    "orders_with_unknown_utm_campaign": (19, 655),
    "orders_test": (13, 655),
    "orders_cancelled": (29, 655),
    "orders_with_refund_line": (11, 655),
    "orders_by_guests": (168, 655),
    "orders_email_unknown_to_crm": (73, 655),
    "orders_email_is_the_persons_crm_email": (582, 655),
    "orders_email_case_or_space_variant": (47, 655),
}


def test_documented_fractions(j: Journeys) -> None:
    assert journey_stats(j) == DOCUMENTED


def test_base_mentions_by_time_match_the_touches_and_urls_carry_tweet_ids(j: Journeys) -> None:
    from sandbox.journeys import tweet_id

    w = j.world
    every: set[tuple[int, int]] = set()
    for p in range(w.people.base_count):
        for x in j.touches(p, 0):
            if x.kind == "social_mention":
                every.add((x.at_ms, p))
                handle = j.social_handle(p)
                assert x.url == f"https://x.com/{handle}/status/{tweet_id(x.at_ms, p)}"
    assert len(every) > 100
    assert set(j.base_mentions_between(0, w.ticks[0])) == every
    hi = w.ticks[0] - 10 * DAY_MS
    lo = hi - 20 * DAY_MS
    window = j.base_mentions_between(lo, hi)
    assert sorted(window) == sorted(m for m in every if lo <= m[0] <= hi) and window
    assert all(tweet_id(a, p) < tweet_id(b, q) for (a, p), (b, q) in zip(sorted(every), sorted(every)[1:], strict=False)
               if a < b)
