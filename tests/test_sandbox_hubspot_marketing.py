"""HubSpot marketing endpoints of the emulator (email events, forms, submissions, marketing emails,
merged contacts) against the journeys they serve, over real HTTP."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId

from sandbox import Sandbox, start_sandbox
from sandbox.journeys import Journeys
from sandbox.world import World, parse_time

SIZE = 2000
KINDS = {"email_send": "SENT", "email_delivered": "DELIVERED", "email_open": "OPEN", "email_click": "CLICK",
         "email_bounce": "BOUNCE", "unsubscribe": "UNSUBSCRIBE"}
RATE_HEADERS = ("X-HubSpot-RateLimit-Daily", "X-HubSpot-RateLimit-Daily-Remaining",
                "X-HubSpot-RateLimit-Interval-Milliseconds", "X-HubSpot-RateLimit-Max",
                "X-HubSpot-RateLimit-Remaining")


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox(["hubspot"], size=SIZE, seed=7) as sandbox:
        yield sandbox


@pytest.fixture
def fresh() -> Iterator[Sandbox]:
    with start_sandbox(["hubspot"], size=SIZE, seed=7, in_process=True) as sandbox:
        yield sandbox


def http(sandbox: Sandbox) -> httpx.Client:
    hs = sandbox.emulators["hubspot"]
    return httpx.Client(base_url=hs.base_url, headers={"Authorization": f"Bearer {hs.settings['access_token']}"},
                        timeout=30)


def journeys_of(sandbox: Sandbox) -> Journeys:
    clock = sandbox.clock()
    return Journeys(World(seed=clock["seed"], size=clock["size"], ticks=[parse_time(t) for t in clock["ticks"]]))


def all_events(c: httpx.Client, limit: int = 1000, **params: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    offset: str | None = None
    for _ in range(1000):
        r = c.get("/email/public/v1/events", params={"limit": limit, **params, **({"offset": offset} if offset else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["events"]) <= limit
        events.extend(body["events"])
        if not body["hasMore"]:
            return events
        offset = body["offset"]
    raise AssertionError("events never ended")


def expected_events(j: Journeys, since: int | None = None, until: int | None = None
                    ) -> list[tuple[int, str, int | None, str | None, str | None]]:
    out = []
    world = j.world
    for idx in range(world.people.count(world.tick)):
        email = world.person(idx).email
        recipient = email.strip().lower() if email else None
        for x in j.touches(idx):
            if x.system == "hubspot" and x.kind in KINDS and (since is None or x.at_ms >= since) \
                    and (until is None or x.at_ms <= until):
                out.append((x.at_ms, KINDS[x.kind], x.campaign_idx, recipient, x.url if x.kind == "email_click"
                            else None))
    return sorted(out, key=repr)


def as_tuples(events: list[dict[str, Any]], campaign_ids: dict[str, int]) -> list[tuple[Any, ...]]:
    out = []
    for e in events:
        cid = e["emailCampaignId"]
        out.append((e["created"], e["type"], None if cid is None else campaign_ids[str(cid)], e["recipient"],
                    e.get("url")))
    return sorted(out, key=repr)


def marketing_emails(c: httpx.Client) -> list[dict[str, Any]]:
    emails: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        r = c.get("/marketing/v3/emails", params={"limit": 1, **({"after": after} if after else {})})
        assert r.status_code == 200, r.text
        emails.extend(r.json()["results"])
        after = r.json().get("paging", {}).get("next", {}).get("after")
        if after is None:
            return emails


def campaign_ids_of(c: httpx.Client, j: Journeys) -> dict[str, int]:
    """emailCampaignId -> journeys campaign index, from the marketing emails (matched by name)."""
    names = {j.campaign(i).name: i for i in range(j.campaign_count())}
    return {cid: names[m["name"]] for m in marketing_emails(c) for cid in m["allEmailCampaignIds"]}


def test_email_events_paged_to_the_end_are_the_journeys_hubspot_email_touches(sb: Sandbox) -> None:
    j = journeys_of(sb)
    with http(sb) as c:
        emails = marketing_emails(c)
        hubspot_email_campaigns = [i for i in range(j.campaign_count())
                                   if j.campaign(i).system == "hubspot" and j.campaign(i).kind == "email"]
        assert sorted(m["name"] for m in emails) == sorted(j.campaign(i).name for i in hubspot_email_campaigns)
        assert len(emails) == 2  # 20 campaigns: slots 0 and 10
        ids = campaign_ids_of(c, j)
        events = all_events(c, limit=700)
        expected = expected_events(j)
        assert len(expected) > 1000
        assert as_tuples(events, ids) == expected
        assert len({e["id"] for e in events}) == len(events)
        by_id = {e["id"]: e for e in events}
        for e in events:
            assert e["portalId"] and e["appId"]
            sent = by_id[e["sentBy"]["id"]]
            assert sent["created"] == e["sentBy"]["created"] <= e["created"]
            assert sent["recipient"] == e["recipient"]
            assert sent["type"] == "SENT" or sent is e  # no earlier send: the event refers to itself
        assert sum(1 for e in events if by_id[e["sentBy"]["id"]]["type"] == "SENT") > 0.95 * len(events)

        clicks = all_events(c, eventType="CLICK")
        assert clicks and {e["type"] for e in clicks} == {"CLICK"}
        assert all(urlsplit(e["url"]).netloc == "www.factoryline.example" for e in clicks)
        assert len(clicks) == sum(1 for x in expected if x[1] == "CLICK")
        assert c.get("/email/public/v1/events", params={"eventType": "NOPE"}).status_code == 400


def test_events_since_a_tick_are_that_ticks_events(fresh: Sandbox) -> None:
    with http(fresh) as c:
        before = all_events(c)
        for _ in range(3):
            fresh.advance()
        j = journeys_of(fresh)
        ids = campaign_ids_of(c, j)
        ticks = j.world.ticks
        seen = 0
        for k in (1, 2, 3):
            got = all_events(c, limit=2, startTimestamp=ticks[k], endTimestamp=ticks[k])
            want = expected_events(j, ticks[k], ticks[k])
            assert as_tuples(got, ids) == want
            assert all(e["created"] == ticks[k] for e in got)
            seen += len(got)
        assert seen > 0
        last = all_events(c, startTimestamp=ticks[3])
        assert as_tuples(last, ids) == expected_events(j, ticks[3])
        since_first = all_events(c, startTimestamp=ticks[1])
        assert len(since_first) == seen
        # nothing before tick 0 changed: the whole feed grew by exactly the ticks' events
        assert len(all_events(c)) == len(before) + seen


def test_forms_and_submissions_page_to_the_journeys_form_touches(sb: Sandbox) -> None:
    j = journeys_of(sb)
    world = j.world
    want: dict[str, Counter[tuple[int, str | None]]] = {}
    for idx in range(world.people.count(world.tick)):
        for x in j.touches(idx):
            if x.kind == "form_submission" and x.system == "hubspot":
                want.setdefault(urlsplit(x.url or "").path, Counter())[(x.at_ms, x.url)] += 1
    with http(sb) as c:
        r = c.get("/marketing/v3/forms/")
        assert r.status_code == 200
        forms = r.json()["results"]
        assert all(f["id"] and f["name"] and f["guid"] == f["id"] for f in forms)
        assert len({f["id"] for f in forms}) == len(forms)
        total = 0
        paths_seen = set()
        for n, form in enumerate(forms):
            got: Counter[tuple[int, str | None]] = Counter()
            after: str | None = None
            pages = 0
            while True:
                limit = 7 if n == 0 else 50
                r = c.get(f"/form-integrations/v1/submissions/forms/{form['id']}",
                          params={"limit": limit, **({"after": after} if after else {})})
                assert r.status_code == 200, r.text
                body = r.json()
                assert len(body["results"]) <= limit
                pages += 1
                for s in body["results"]:
                    got[(s["submittedAt"], s["pageUrl"])] += 1
                    assert s["conversionId"] and {v["name"] for v in s["values"]} >= {"firstname", "lastname"}
                after = body.get("paging", {}).get("next", {}).get("after")
                if after is None:
                    break
            path = {urlsplit(u or "").path for _, u in got}
            assert len(path) <= 1
            if got:
                paths_seen |= path
                assert got == want[path.pop()]
            total += sum(got.values())
        assert paths_seen == set(want)
        assert total == sum(sum(v.values()) for v in want.values()) > 500
        assert c.get("/form-integrations/v1/submissions/forms/" + forms[0]["id"],
                     params={"limit": 51}).status_code == 400
        assert c.get("/form-integrations/v1/submissions/forms/not-a-form").status_code == 404


def test_merged_contacts(sb: Sandbox) -> None:
    hs = sb.emulators["hubspot"]
    with http(sb) as c:
        listed: dict[str, dict[str, Any]] = {}
        after: str | None = None
        while True:
            r = c.get("/crm/v3/objects/contacts", params={"limit": 100, "properties": "hs_merged_object_ids",
                                                          **({"after": after} if after else {})})
            body = r.json()
            listed.update({rec["id"]: rec for rec in body["results"]})
            after = body.get("paging", {}).get("next", {}).get("after")
            if after is None:
                break
        merged = {m: sid for sid, rec in listed.items()
                  for m in (rec["properties"]["hs_merged_object_ids"] or "").split(";") if m}
        survivors = set(merged.values())
        assert 0.005 * SIZE <= len(survivors) <= 0.05 * SIZE
        assert any(sum(1 for s in merged.values() if s == sid) == 2 for sid in survivors)
        assert not set(merged) & set(listed)  # merged-away ids are absent from lists
        m, survivor = sorted(merged.items())[0]
        r = c.get(f"/crm/v3/objects/contacts/{m}", params={"properties": "email"})
        assert r.status_code == 301
        assert r.headers["Location"].endswith(f"/crm/v3/objects/contacts/{survivor}?properties=email")
        for h in RATE_HEADERS:
            assert h in r.headers
        followed = c.get(f"/crm/v3/objects/contacts/{m}", follow_redirects=True)
        assert followed.status_code == 200 and followed.json()["id"] == survivor
        search = c.post("/crm/v3/objects/contacts/search", json={"filterGroups": [{"filters": [
            {"propertyName": "hs_object_id", "operator": "EQ", "value": m}]}]})
        assert search.json()["total"] == 0
        batch = c.post("/crm/v3/objects/contacts/batch/read", json={"inputs": [{"id": m}, {"id": survivor}]})
        assert batch.status_code == 207
        assert [x["id"] for x in batch.json()["results"]] == [survivor]
        assert batch.json()["errors"][0]["context"]["ids"] == [m]
    sdk = HubSpot(access_token=hs.settings["access_token"], host=hs.base_url)
    api = sdk.crm.contacts.basic_api
    assert api.get_by_id(m).id == survivor  # the SDK follows the redirect to the survivor
    res = sdk.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(inputs=[{"id": m}], properties=[]))
    assert res.results == []


@pytest.mark.parametrize("path", ["/email/public/v1/events", "/marketing/v3/forms/", "/marketing/v3/emails"])
def test_rate_limit_headers_and_auth_on_marketing_routes(sb: Sandbox, path: str) -> None:
    with http(sb) as c:
        r = c.get(path, params={"limit": 1})
        assert r.status_code == 200
        for h in RATE_HEADERS:
            assert h in r.headers
        assert int(r.headers["X-HubSpot-RateLimit-Max"]) == 190
    anon = httpx.get(sb.emulators["hubspot"].base_url + path)
    assert anon.status_code == 401
    templates = {"/email/public/v1/events": "GET /email/public/v1/events",
                 "/marketing/v3/forms/": "GET /marketing/v3/forms", "/marketing/v3/emails": "GET /marketing/v3/emails"}
    assert templates[path] in sb.stats("hubspot")["routes"]
