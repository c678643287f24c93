"""The Mailchimp emulator over real HTTP, driven by plain httpx and checked against the journeys."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.mailchimp.emulator import API_KEY, emulator_spec
from sandbox import FaultRule, Sandbox, start_sandbox
from sandbox.faults import FAULT_KINDS
from sandbox.journeys import Journeys
from sandbox.world import World, parse_time

REF = "connectors.mailchimp.emulator:emulator_spec"
SIZE = 600
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox([REF], size=SIZE, seed=7, in_process=True) as sandbox:
        yield sandbox


@pytest.fixture
def faults(sb: Sandbox) -> Iterator[Sandbox]:
    yield sb
    sb.set_faults("mailchimp", [])


def http(sandbox: Sandbox, **kw: Any) -> httpx.Client:
    mc = sandbox.emulators["mailchimp"]
    return httpx.Client(base_url=mc.settings["api_root"], auth=("anystring", mc.settings["api_key"]), **kw)


def world_of(sandbox: Sandbox) -> World:
    clock = sandbox.clock()
    return World(seed=clock["seed"], size=clock["size"], ticks=[parse_time(t) for t in clock["ticks"]])


def audience(world: World) -> dict[str, int]:
    """Subscriber hash -> person: people with an email whose company mails through Mailchimp (a
    pure function of the index, whether or not a send happened yet), first holder wins."""
    j = Journeys(world)
    out: dict[str, int] = {}
    for p in range(world.people.count(world.tick)):
        email = world.person(p).email
        if email and j.email_system(p) == "mailchimp":
            out.setdefault(hashlib.md5(email.strip().lower().encode()).hexdigest(), p)
    return out


def page(c: httpx.Client, path: str, key: str, count: int, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every item by offset paging, and the total_items every page reported (all equal)."""
    items: list[dict[str, Any]] = []
    totals = set()
    offset = 0
    while True:
        r = c.get(path, params={"count": count, "offset": offset, **params})
        assert r.status_code == 200, r.text
        body = r.json()
        totals.add(body["total_items"])
        items.extend(body[key])
        offset += count
        if offset >= body["total_items"]:
            break
    assert len(totals) == 1
    return items, totals.pop()


def mailchimp_campaigns(world: World) -> list[int]:
    j = Journeys(world)
    now = world.ticks[-1]
    return [c for c in range(j.campaign_count())
            if j.campaign(c).system == "mailchimp" and j.campaign(c).created_ms <= now]


def expected_activity(world: World, c: int, since_ms: int = 0) -> set[tuple[str, str, int]]:
    """(email_id, action, epoch seconds) of campaign ``c``'s opens, clicks and bounces."""
    j = Journeys(world)
    actions = {"email_open": "open", "email_click": "click", "email_bounce": "bounce"}
    return {(h, actions[x.kind], x.at_ms // 1000) for h, p in audience(world).items() for x in j.touches(p)
            if x.system == "mailchimp" and x.campaign_idx == c and x.kind in actions and x.at_ms >= since_ms}


def activity_keys(emails: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
    return {(e["email_id"], a["action"], parse_time(a["timestamp"]) // 1000) for e in emails for a in e["activity"]}


# -- root, auth ------------------------------------------------------------------------------------


def test_spec_root_ping_and_auth(sb: Sandbox) -> None:
    assert emulator_spec().name == "mailchimp"
    mc = sb.emulators["mailchimp"]
    root = mc.settings["api_root"]
    with http(sb) as c:
        assert c.get("/ping").json() == {"health_status": "Everything's Chimpy!"}
        assert c.get("/").json()["total_subscribers"] == len(audience(world_of(sb)))
    bearer = httpx.get(f"{root}/lists", headers={"Authorization": f"Bearer {API_KEY}"})
    assert bearer.status_code == 200 and bearer.json()["total_items"] == 1
    for auth, title in ((None, "API Key Missing"), (("anystring", "0" * 32 + "-us1"), "API Key Invalid")):
        r = httpx.get(f"{root}/lists", auth=auth)
        assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
        assert set(r.json()) == PROBLEM_KEYS and r.json()["title"] == title and r.json()["status"] == 401


# -- members ---------------------------------------------------------------------------------------


def test_members_offset_paging_totals_and_ids(sb: Sandbox) -> None:
    mc = sb.emulators["mailchimp"]
    list_id = mc.settings["list_id"]
    world = world_of(sb)
    expected = audience(world)
    with http(sb) as c:
        members, total = page(c, f"/lists/{list_id}/members", "members", 37)
        big, big_total = page(c, f"/lists/{list_id}/members", "members", 1000)
        one = c.get(f"/lists/{list_id}/members/{members[0]['email_address'].upper()}").json()
    assert total == big_total == len(members) == len(expected)
    assert [m["id"] for m in members] == [m["id"] for m in big]
    assert {m["id"] for m in members} == set(expected)
    for m in members:
        person = world.person(expected[m["id"]])
        assert m["id"] == hashlib.md5(m["email_address"].lower().encode()).hexdigest()
        assert m["email_address"] == (person.email or "").strip()
        assert m["merge_fields"]["FNAME"] == person.first_name and m["merge_fields"]["LNAME"] == person.last_name
        assert m["status"] in {"subscribed", "unsubscribed", "cleaned", "pending", "transactional"}
        assert m["list_id"] == list_id and m["unique_email_id"] and m["last_changed"].endswith("+00:00")
    assert {"subscribed", "cleaned"} <= {m["status"] for m in members}
    assert one["id"] == members[0]["id"]


def test_member_and_activity_since_filters_after_advance() -> None:
    with start_sandbox([REF], size=SIZE, seed=7, in_process=True) as sandbox, http(sandbox) as c:
        list_id = sandbox.emulators["mailchimp"].settings["list_id"]
        before, _ = page(c, f"/lists/{list_id}/members", "members", 1000)
        sandbox.advance(40)  # enough ticks that the running Mailchimp campaign gets new opens and clicks
        since = sandbox.clock()["ticks"][1]
        since_ms = parse_time(since) // 1000 * 1000  # Mailchimp compares whole seconds
        changed, total = page(c, f"/lists/{list_id}/members", "members", 5, since_last_changed=since)
        everyone, _ = page(c, f"/lists/{list_id}/members", "members", 1000)
        world = world_of(sandbox)
        recent = {m["id"] for m in everyone if parse_time(m["last_changed"]) >= since_ms}
        assert 0 < total == len(changed) < len(everyone)
        assert {m["id"] for m in changed} == recent
        # the people the world changed at those ticks are among them (archived members are listed
        # only with status=archived)
        members = audience(world)
        touched = {h for h, p in members.items()
                   if world.person(p).modified_ms >= since_ms and world.person(p).archived_ms is None}
        assert touched and touched <= recent
        archived, _ = page(c, f"/lists/{list_id}/members", "members", 1000, status="archived")
        assert archived and {m["status"] for m in archived} == {"archived"}
        assert {m["id"] for m in before} <= {m["id"] for m in everyone + archived}
        new_activity = 0
        for c_idx in mailchimp_campaigns(world):
            cid = _campaign_id(c, c_idx, world)
            emails, _ = page(c, f"/reports/{cid}/email-activity", "emails", 50, since=since)
            assert activity_keys(emails) == expected_activity(world, c_idx, since_ms)
            assert all(parse_time(a["timestamp"]) >= since_ms for e in emails for a in e["activity"])
            new_activity += len(activity_keys(emails))
        assert new_activity > 0


def test_members_of_a_million_people_page_without_scanning_the_audience() -> None:
    """Membership is a pure function of the person index: a deep page and the total of a
    1,000,000-person world come from per-block counts, not from every member's journey (minutes)."""
    with start_sandbox([REF], size=1_000_000, seed=7, in_process=True) as sandbox, \
            http(sandbox, timeout=120) as c:
        path = f"/lists/{sandbox.emulators['mailchimp'].settings['list_id']}/members"
        started = time.perf_counter()
        body = c.get(path, params={"count": 5, "offset": 100_000}).json()
        first = time.perf_counter() - started
        last = c.get(path, params={"count": 5, "offset": body["total_items"] - 5}).json()
        one = c.get(f"{path}/{last['members'][-1]['email_address']}").json()
    assert first < 10, f"first page took {first:.1f}s"
    assert 230_000 < body["total_items"] == last["total_items"] < 260_000  # 25% of the 97% with an address
    world = World(seed=7, size=1_000_000)
    j = Journeys(world)
    people = [m["web_id"] - 100_000 for m in body["members"] + last["members"]]
    assert people == sorted(people) and 300_000 < people[0] < 500_000 and people[-1] > 990_000
    assert all(j.email_system(p) == "mailchimp" and world.person(p).email for p in people)
    assert one["id"] == last["members"][-1]["id"]


def _campaign_id(c: httpx.Client, idx: int, world: World) -> str:
    campaigns, _ = page(c, "/campaigns", "campaigns", 1000)
    name = Journeys(world).campaign(idx).name
    return str(next(x["id"] for x in campaigns if x["settings"]["title"] == name))


def test_partial_responses_and_sorting(sb: Sandbox) -> None:
    list_id = sb.emulators["mailchimp"].settings["list_id"]
    with http(sb) as c:
        slim = c.get(f"/lists/{list_id}/members", params={
            "count": 5, "fields": "members.id,members.merge_fields.FNAME,total_items"}).json()
        no_links = c.get(f"/lists/{list_id}/members", params={"count": 5, "exclude_fields": "members._links,_links"}).json()
        by_change = c.get(f"/lists/{list_id}/members", params={
            "count": 1000, "sort_field": "last_changed", "sort_dir": "DESC"}).json()
        bad = c.get(f"/lists/{list_id}/members", params={"sort_field": "shoe_size"})
        campaigns = c.get("/campaigns", params={"sort_field": "create_time", "sort_dir": "DESC",
                                                "exclude_fields": "campaigns._links"}).json()
    assert set(slim) == {"members", "total_items"} and slim["total_items"] > 5
    assert all(set(m) == {"id", "merge_fields"} and set(m["merge_fields"]) == {"FNAME"} for m in slim["members"])
    assert "_links" not in no_links and all("_links" not in m and "email_address" in m for m in no_links["members"])
    changed = [parse_time(m["last_changed"]) for m in by_change["members"]]
    assert changed == sorted(changed, reverse=True) and len(changed) == by_change["total_items"]
    assert bad.status_code == 400 and set(bad.json()) == PROBLEM_KEYS
    created = [parse_time(x["create_time"]) for x in campaigns["campaigns"]]
    assert created == sorted(created, reverse=True) and all("_links" not in x for x in campaigns["campaigns"])


# -- campaigns and reports -----------------------------------------------------------------------------


def test_campaigns_and_email_activity_match_the_journeys(sb: Sandbox) -> None:
    world = world_of(sb)
    j = Journeys(world)
    expected = mailchimp_campaigns(world)
    with http(sb) as c:
        campaigns, total = page(c, "/campaigns", "campaigns", 1)
        assert total == len(expected) and {x["settings"]["title"] for x in campaigns} == \
            {j.campaign(i).name for i in expected}
        sent = [x for x in campaigns if x["status"] == "sent"]
        assert sent
        later = c.get("/campaigns", params={"since_send_time": "2100-01-01T00:00:00+00:00"}).json()
        assert later["total_items"] == 0 and later["campaigns"] == []
        for x in sent:
            idx = next(i for i in expected if j.campaign(i).name == x["settings"]["title"])
            emails, n = page(c, f"/reports/{x['id']}/email-activity", "emails", 7)
            assert n == len(emails) == x["recipients"]["recipient_count"] > 0
            assert {e["campaign_id"] for e in emails} == {x["id"]}
            assert activity_keys(emails) == expected_activity(world, idx)
            assert all(a["url"].startswith("http") for e in emails for a in e["activity"] if a["action"] == "click")
            stamps = sorted(parse_time(a["timestamp"]) for e in emails for a in e["activity"])
            mid = stamps[len(stamps) // 2]
            newer, _ = page(c, f"/reports/{x['id']}/email-activity", "emails", 1000, since=str(mid))
            assert activity_keys(newer) == expected_activity(world, idx, mid) and len(newer) < len(emails)


# -- errors and limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "params", "status"), [
    ("/no/such/thing", {}, 404),
    ("/lists/0000000000/members", {}, 404),
    ("/reports/ffffffffff/email-activity", {}, 404),
    ("/campaigns", {"count": 1001}, 400),
    ("/campaigns", {"since_send_time": "yesterday"}, 400),
])
def test_errors_are_problem_json(sb: Sandbox, path: str, params: dict[str, Any], status: int) -> None:
    with http(sb) as c:
        r = c.get(path, params=params)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert set(body) == PROBLEM_KEYS and body["status"] == status and body["type"].startswith("https://")


def test_eleventh_concurrent_connection_gets_429(sb: Sandbox) -> None:
    root = sb.emulators["mailchimp"].settings["api_root"]

    def call(_: int) -> httpx.Response:
        # held 2 s: on a loaded machine the threads' requests still overlap
        return httpx.get(f"{root}/ping", auth=("anystring", API_KEY), headers={"X-Sandbox-Delay-Ms": "2000"},
                         timeout=20)

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(call, range(12)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(429) >= 1 and statuses.count(200) >= 9
    refused = next(r for r in answers if r.status_code == 429)
    assert set(refused.json()) == PROBLEM_KEYS and refused.json()["title"] == "Too Many Requests"
    assert httpx.get(f"{root}/ping", auth=("anystring", API_KEY)).status_code == 200  # the gate reopens


# -- faults ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_kind_is_observed(faults: Sandbox, kind: str) -> None:
    list_id = faults.emulators["mailchimp"].settings["list_id"]
    path = f"/lists/{list_id}/members"
    faults.set_faults("mailchimp", [FaultRule(kind, route="GET /3.0/lists/{list_id}/members", at=1,  # type: ignore[arg-type]
                                              delay=1.0, retry_after=2)])
    with http(faults, timeout=0.5) as c:
        if kind in ("timeout", "drop"):
            with pytest.raises(httpx.TransportError):
                c.get(path, params={"count": 20})
            assert c.get(path, params={"count": 20}, timeout=5).status_code == 200  # fired once
            return
        r = c.get(path, params={"count": 20})
    if kind == "rate_limit":
        assert r.status_code == 429 and r.headers["retry-after"] == "2" and set(r.json()) == PROBLEM_KEYS
    elif kind == "server_error":
        assert r.status_code == 503 and r.json()["status"] == 503
    elif kind == "expired_token":
        assert r.status_code == 401 and r.json()["title"] == "API Key Invalid"
    elif kind == "truncate":
        assert r.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.text)
    elif kind == "missing_id":
        assert any("id" not in m for m in r.json()["members"])
    else:
        bad = [m["last_changed"] for m in r.json()["members"]]
        assert any(_unparseable(v) for v in bad)


def _unparseable(value: str) -> bool:
    try:
        parse_time(value)
    except ValueError:
        return True
    return False


def test_member_fields_follow_the_persons_mailchimp_touches(sb: Sandbox) -> None:
    """Opt-in time, open and click rates and the unsubscribed / cleaned statuses of every listed
    member are those of the person's Mailchimp touches in the journeys (the emulator builds only
    those touches from the journey's events, so a divergence from ``Journeys.touches`` shows here)."""
    world = world_of(sb)
    j = Journeys(world)
    with http(sb) as c:
        members, _ = page(c, f"/lists/{sb.emulators['mailchimp'].settings['list_id']}/members", "members", 1000)
    kinds: set[str] = set()
    for m in members:
        p = m["web_id"] - 100_000
        mine = [x for x in j.touches(p) if x.system == "mailchimp"]
        kinds.update(x.kind for x in mine)
        opt_in = mine[0].at_ms if mine else world.person(p).created_ms
        sends = sum(x.kind == "email_send" for x in mine) or 1
        opens, clicks = (sum(x.kind == k for x in mine) for k in ("email_open", "email_click"))
        assert parse_time(m["timestamp_opt"]) == opt_in // 1000 * 1000
        assert m["stats"] == {"avg_open_rate": round(min(1.0, opens / sends), 2),
                              "avg_click_rate": round(min(1.0, clicks / sends), 2)}
        assert (m["status"] == "unsubscribed") == any(x.kind == "unsubscribe" for x in mine)
        if m["status"] != "unsubscribed":
            assert (m["status"] == "cleaned") == any(x.kind == "email_bounce" for x in mine)
    assert {"email_send", "email_open", "email_click", "unsubscribe", "email_bounce"} <= kinds
