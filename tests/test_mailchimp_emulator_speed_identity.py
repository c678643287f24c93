"""The Mailchimp emulator's fast paths answer what its general paths answer.

Members pages are written as JSON text and computed one ahead; the connector's partial response
(no ``_links``) is written as such, any other one is cut from the whole page. A page's members take
their statuses and counts from their base emails walked all at once (numpy), not from their
touches: every field that depends on them must be what ``Journeys.touches`` gives, for people
created before tick 0 and by later ticks, and equal a single member's read (which builds its
touches). List stats, campaign
reports, email activity and (once it is built) members' statuses and counts come from a summary of
the audience that is updated as the clock advances: after ticks it must equal the summary a fresh
emulator builds at that clock and the members read without it, and the answers that leave the
counts out (the connector's ``fields`` requests) must list the same records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.mailchimp.emulator import MailchimpEmulator
from sandbox import Sandbox, start_sandbox
from sandbox.journeys import Journeys
from sandbox.protocol import EmulatorOptions
from sandbox.world import World, format_ms, parse_time

SIZE = 3000
SENT = ("sent", "sending", "canceled")


def _client(sb: Sandbox) -> httpx.Client:
    mc = sb.emulators["mailchimp"]
    return httpx.Client(base_url=mc.settings["api_root"], auth=("test", mc.settings["api_key"]), timeout=60)


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox(["mailchimp"], size=SIZE, seed=7, in_process=True) as sandbox:
        yield sandbox


def _all(c: httpx.Client, path: str, key: str, count: int = 1000, **params: Any) -> list[Any]:
    out: list[Any] = []
    offset = 0
    while True:
        body = c.get(path, params={**params, "count": count, "offset": offset}).json()
        out.extend(body[key])
        offset += count
        if offset >= body["total_items"]:
            return out


def _members(c: httpx.Client) -> list[Any]:
    list_id = c.get("/lists", params={"fields": "lists.id"}).json()["lists"][0]["id"]  # no summary needed
    path = f"/lists/{list_id}/members"
    return _all(c, path, "members") + _all(c, path, "members", status="archived")


def _reports(c: httpx.Client) -> dict[str, Any]:
    """Every answer that needs the whole audience: the list, the campaigns, each sent campaign's
    email activity (all of it, and since the start of the last tick's day), then the members
    (from the summary's facts)."""
    campaigns = _all(c, "/campaigns", "campaigns")
    out: dict[str, Any] = {"lists": c.get("/lists").json(), "campaigns": campaigns}
    for camp in campaigns:
        if camp["status"] in SENT:
            path = f"/reports/{camp['id']}/email-activity"
            out[path] = _all(c, path, "emails", 300)
            out[path + "?since"] = _all(c, path, "emails", 300, since="2000-01-01T00:00:00+00:00")
    out["members"] = _members(c)
    return out


def test_member_pages_fast_and_general_partial_agree(sb: Sandbox) -> None:
    mc = sb.emulators["mailchimp"]
    path = f"/lists/{mc.settings['list_id']}/members"
    with _client(sb) as c:
        for exclude in ("members._links,_links", "members._links", "_links", ""):
            params = {"exclude_fields": exclude} if exclude else {}
            # an excluded path no record has: the general partial (whole page, then cut)
            general = {"exclude_fields": f"{exclude},members.no_such_field".lstrip(",")}
            for offset, count in ((0, 1000), (1000, 1000), (17, 5), (5, 0)):
                fast = c.get(path, params={**params, "count": count, "offset": offset})
                slow = c.get(path, params={**general, "count": count, "offset": offset})
                assert fast.status_code == slow.status_code == 200
                assert fast.content == slow.content
        # pages read backwards (no read-ahead hit) equal pages read forwards (prefetched)
        forwards = [c.get(path, params={"count": 250, "offset": o}).content for o in range(0, 1000, 250)]
        backwards = [c.get(path, params={"count": 250, "offset": o}).content for o in range(750, -1, -250)]
        assert forwards == backwards[::-1]


def test_fields_requests_list_what_the_full_answers_list(sb: Sandbox) -> None:
    with _client(sb) as c:
        full = _all(c, "/campaigns", "campaigns")
        short = _all(c, "/campaigns", "campaigns", fields="campaigns.id,campaigns.status,"
                                                         "campaigns.recipients.list_id,total_items")
        assert short == [{"id": x["id"], "status": x["status"], "recipients": {"list_id": x["recipients"]["list_id"]}}
                         for x in full]
        lists = c.get("/lists").json()["lists"]
        assert c.get("/lists", params={"fields": "lists.id,total_items"}).json() == \
            {"lists": [{"id": x["id"]} for x in lists], "total_items": 1}
        assert lists[0]["stats"]["member_count"] > 0
        assert any(x["report_summary"]["opens"] for x in full)


def test_summary_after_ticks_equals_a_fresh_one(tmp_path: Path) -> None:
    with start_sandbox(["mailchimp"], size=SIZE, seed=11, in_process=True) as advanced:
        with _client(advanced) as c:
            first = _reports(c)  # the summary at tick 0
            for _ in range(3):
                advanced.advance(2)
                _reports(c)  # ... updated from the previous tick's
            after = _reports(c)
        assert after["lists"]["lists"][0]["stats"] != first["lists"]["lists"][0]["stats"]
        assert after["campaigns"] != first["campaigns"]
        clock = advanced.clock()
    (tmp_path / "world.json").write_text(json.dumps({k: clock[k] for k in ("seed", "size", "grow", "ticks")}))
    with start_sandbox(["mailchimp"], size=SIZE, seed=11, in_process=True, state_dir=tmp_path) as fresh:
        assert fresh.clock()["tick"] == clock["tick"] == 6
        with _client(fresh) as c:
            members = _members(c)  # before any summary: each member from its journey
            assert members == after["members"]
            assert _reports(c) == after


def _time(ms: int) -> str:
    return format_ms(ms)[:19] + "+00:00"


@pytest.mark.parametrize("seed", [7, 23])
def test_members_pages_follow_the_journeys_after_growth_and_ticks(seed: int) -> None:
    size = 2500
    with start_sandbox(["mailchimp"], size=size, seed=seed, in_process=True, grow=True) as sandbox:
        sandbox.advance(3)
        clock = sandbox.clock()
        with _client(sandbox) as c:
            path = f"/lists/{sandbox.emulators['mailchimp'].settings['list_id']}/members"
            members = _all(c, path, "members") + _all(c, path, "members", status="archived")
            singles = [c.get(f"{path}/{m['id']}").json() for m in members[::23]]
    assert singles == members[::23]
    world = World(seed=seed, size=size, grow=True, ticks=[parse_time(t) for t in clock["ticks"]])
    j = Journeys(world)
    statuses: set[str] = set()
    kinds: set[str] = set()
    for m in members:
        p = m["web_id"] - 100_000
        person = world.person(p)
        mine = [x for x in j.touches(p) if x.system == "mailchimp"]
        kinds.update(x.kind for x in mine)
        opt_in = mine[0].at_ms if mine else person.created_ms
        sends = sum(x.kind == "email_send" for x in mine) or 1
        opens, clicks = (sum(x.kind == k for x in mine) for k in ("email_open", "email_click"))
        unsub = next((x.at_ms for x in mine if x.kind == "unsubscribe"), None)
        bounce = next((x.at_ms for x in mine if x.kind == "email_bounce"), None)
        if person.archived_ms is not None:
            status, status_ms = "archived", person.archived_ms
        elif unsub is not None:
            status, status_ms = "unsubscribed", unsub
        elif bounce is not None:
            status, status_ms = "cleaned", bounce
        else:
            status, status_ms = m["status"], opt_in
            assert status in ("subscribed", "pending", "transactional")
        statuses.add(status)
        assert (m["status"], m["timestamp_opt"], m["last_changed"], m["member_rating"], m["stats"]) == (
            status, _time(opt_in), _time(max(status_ms, opt_in, person.modified_ms)), 2 + min(3, opens + clicks),
            {"avg_open_rate": round(min(1.0, opens / sends), 2), "avg_click_rate": round(min(1.0, clicks / sends), 2)})
    assert {"subscribed", "unsubscribed", "cleaned", "archived"} <= statuses
    assert {"email_send", "email_open", "email_click", "unsubscribe", "email_bounce"} <= kinds
    assert any(m["web_id"] - 100_000 >= size for m in members)  # people the ticks created


def test_the_audience_over_several_blocks_is_the_journeys_one() -> None:
    """Membership is taken per block of 10,000 indexes with the hashes computed in numpy: the
    members listed (and archived) are the people with an address whose email system is Mailchimp,
    the first holder of a shared address, over several blocks and people the ticks created."""
    size = 23_456
    with start_sandbox(["mailchimp"], size=size, seed=11, in_process=True, grow=True) as sandbox:
        sandbox.advance(2)
        clock = sandbox.clock()
        with _client(sandbox) as c:
            path = f"/lists/{sandbox.emulators['mailchimp'].settings['list_id']}/members"
            ids = [m["web_id"] - 100_000 for m in _all(c, path, "members", fields="members.web_id,total_items")]
            archived = [m["web_id"] - 100_000
                        for m in _all(c, path, "members", status="archived", fields="members.web_id,total_items")]
    world = World(seed=11, size=size, grow=True, ticks=[parse_time(t) for t in clock["ticks"]])
    j = Journeys(world)
    owners: dict[str, int] = {}
    for p in range(world.people.count(world.tick)):
        email = world.person(p).email
        if email and j.email_system(p) == "mailchimp":
            owners.setdefault(email.strip().lower(), p)
    assert sorted(ids + archived) == sorted(owners.values())
    assert ids == sorted(ids) and max(ids) >= size and archived



@pytest.mark.parametrize(("seed", "grow", "ticks"), [(7, False, 0), (23, True, 3)])
def test_page_people_are_the_worlds_people(seed: int, grow: bool, ticks: int) -> None:
    """A members page builds only the fields of a person it reads (``_page_people``): they must be
    ``World.person``'s, for base people, people the ticks changed or archived, and grown ones."""
    fields = ("idx", "first_name", "last_name", "email", "phone", "company_idx", "stage_dates", "created_ms",
              "modified_ms", "archived_ms")
    start = parse_time("2026-01-01T00:00:00+00:00")
    world = World(seed=seed, size=SIZE, grow=grow, ticks=[start + k * 86_400_000 for k in range(ticks + 1)])
    mc = MailchimpEmulator(world, EmulatorOptions())
    try:
        for tick in range(world.tick + 1):
            idxs = list(range(world.people.count(tick)))
            lean = mc._page_people(idxs, tick)
            full = [world.person(i, tick) for i in idxs]
            assert [tuple(getattr(p, f) for f in fields) for p in lean] == \
                [tuple(getattr(p, f) for f in fields) for p in full]
            assert {p.email is None for p in lean} == {True, False}
            assert any(p.phone and p.phone.startswith("+4") for p in lean)
            assert any(p.email and p.email != p.email.strip() for p in lean)
    finally:
        mc.close()
