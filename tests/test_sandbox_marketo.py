"""The Marketo emulator over real HTTP, driven by plain httpx and checked against the journeys and
Marketo's official Swagger definitions."""

from __future__ import annotations

import concurrent.futures
import copy
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from connectors.marketo.emulator import (
    CLIENT_ID,
    CLIENT_SECRET,
    LEAD_OFFSET,
    PROGRAM_OFFSET,
    TOKEN_TTL_ENV,
    emulator_spec,
)
from sandbox import FaultRule, Sandbox, start_sandbox
from sandbox.journeys import Journeys
from sandbox.world import World, parse_time
from tests.conftest import VENDOR_REFERENCE

REF = "connectors.marketo.emulator:emulator_spec"
SIZE = 300
REFERENCE = VENDOR_REFERENCE / "marketo"
EMAIL_TYPES = "6,7,8,9,10,11"
ALL_TYPES = "1,2,6,7,8,9,10,11,12,104"  # at most 10 per request, like Marketo
_TOUCH_TYPE = {"page_view": 1, "form_submission": 2, "email_send": 6, "email_delivered": 7, "email_bounce": 8,
               "unsubscribe": 9, "email_open": 10, "email_click": 11, "webinar_attended": 104}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox([REF], size=SIZE, seed=7, in_process=True) as sandbox:
        yield sandbox


@pytest.fixture
def faults(sb: Sandbox) -> Iterator[Sandbox]:
    yield sb
    sb.set_faults("marketo", [])


def token(sandbox: Sandbox) -> str:
    mk = sandbox.emulators["marketo"]
    r = httpx.get(f"{mk.base_url}/identity/oauth/token",
                  params={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert r.status_code == 200
    return str(r.json()["access_token"])


def http(sandbox: Sandbox, **kw: Any) -> httpx.Client:
    mk = sandbox.emulators["marketo"]
    return httpx.Client(base_url=mk.base_url, headers={"Authorization": f"Bearer {token(sandbox)}"}, **kw)


def world_of(sandbox: Sandbox) -> World:
    clock = sandbox.clock()
    return World(seed=clock["seed"], size=clock["size"], ticks=[parse_time(t) for t in clock["ticks"]])


def expected_activities(world: World, since_ms: int, types: set[int]) -> set[tuple[int, int, int]]:
    """(leadId, activityTypeId, epoch seconds) of every Marketo activity at or after ``since_ms``."""
    j = Journeys(world)
    out = set()
    for p in range(world.people.count(world.tick)):
        mine = [x for x in j.touches(p) if x.system == "marketo"]
        if not mine:
            continue
        if 12 in types and mine[0].at_ms >= since_ms:
            out.add((LEAD_OFFSET + p, 12, mine[0].at_ms // 1000))
        for x in mine:
            type_id = _TOUCH_TYPE.get(x.kind, 46)
            if x.at_ms >= since_ms and type_id in types:
                out.add((LEAD_OFFSET + p, type_id, x.at_ms // 1000))
    return out


TRACKED = {"Lead Score": "lead_score", "Lead Status": "lead_status", "Job Title": "job_title",
           "Factory Lifecycle Stage": "lifecycle_stage"}


def expected_changes(world: World, since_ms: int) -> list[tuple[int, str, int]]:
    """(leadId, field display name, tick time) of every lead field change at or after ``since_ms``."""
    j = Journeys(world)
    out: list[tuple[int, str, int]] = []
    for p in range(world.people.count(world.tick)):
        mine = [x for x in j.touches(p) if x.system == "marketo"]
        for k in range(1, world.tick + 1):
            if not mine or world.ticks[k] < max(since_ms, mine[0].at_ms):
                continue
            old, new = world.person(p, k - 1), world.person(p, k)
            out.extend((LEAD_OFFSET + p, label, world.ticks[k] // 1000) for label, attr in TRACKED.items()
                       if getattr(old, attr) != getattr(new, attr))
    return sorted(out)


def page_all(c: httpx.Client, next_token: str, types: str, batch: int = 300,
             path: str = "") -> tuple[list[dict[str, Any]], str, int]:
    """Every activity from a paging token to the end: (activities, last token, pages)."""
    rows: list[dict[str, Any]] = []
    pages = 0
    url = f"/rest/v1/activities/{path}.json" if path else "/rest/v1/activities.json"
    while True:
        params: dict[str, str | int] = {"nextPageToken": next_token, "batchSize": batch}
        if types:
            params["activityTypeIds"] = types
        body = c.get(url, params=params).json()
        assert body["success"] is True, body
        pages += 1
        rows.extend(body.get("result", []))
        next_token = body["nextPageToken"]
        if not body["moreResult"]:
            return rows, next_token, pages


def paging_token(c: httpx.Client, since: str) -> str:
    body = c.get("/rest/v1/activities/pagingtoken.json", params={"sinceDatetime": since}).json()
    assert body["success"] is True
    return str(body["nextPageToken"])


def key(a: dict[str, Any]) -> tuple[int, int, int]:
    return a["leadId"], a["activityTypeId"], parse_time(a["activityDate"]) // 1000


# -- registration and auth --------------------------------------------------------------------------


def test_emulator_spec_and_settings(sb: Sandbox) -> None:
    assert emulator_spec().name == "marketo"
    settings = sb.emulators["marketo"].settings
    assert settings["client_id"] == CLIENT_ID and settings["endpoint"].endswith("/rest")


def test_identity_token_flow_and_invalid_tokens(sb: Sandbox) -> None:
    mk = sb.emulators["marketo"]
    bad = httpx.get(f"{mk.base_url}/identity/oauth/token",
                    params={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    r = httpx.get(f"{mk.base_url}/identity/oauth/token",
                  params={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    body = r.json()
    assert body["token_type"] == "bearer" and 0 < body["expires_in"] <= 3600 and body["scope"]
    assert token(sb) == body["access_token"]  # a live token is handed out again, like Marketo
    ok = httpx.get(f"{mk.base_url}/rest/v1/leads/describe.json", params={"access_token": body["access_token"]})
    assert ok.json()["success"] is True
    for headers, code in (({}, "600"), ({"Authorization": "Bearer not-a-token"}, "601")):
        resp = httpx.get(f"{mk.base_url}/rest/v1/leads/describe.json", headers=headers)
        assert resp.status_code == 200
        assert resp.json()["success"] is False and resp.json()["errors"][0]["code"] == code


def test_tokens_expire_after_expires_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_TTL_ENV, "0.6")
    with start_sandbox([REF], size=50, seed=7, in_process=True) as sandbox:
        first = token(sandbox)
        c = httpx.Client(base_url=sandbox.emulators["marketo"].base_url)
        describe = "/rest/v1/leads/describe.json"
        assert c.get(describe, headers={"Authorization": f"Bearer {first}"}).json()["success"] is True
        time.sleep(0.8)
        expired = c.get(describe, headers={"Authorization": f"Bearer {first}"}).json()
        assert expired["success"] is False and expired["errors"][0]["code"] == "602"
        second = token(sandbox)
        assert second != first
        assert c.get(describe, headers={"Authorization": f"Bearer {second}"}).json()["success"] is True


# -- activities -------------------------------------------------------------------------------------


def test_paging_tokens_to_the_end_return_exactly_the_journeys_activities(sb: Sandbox) -> None:
    with http(sb) as c:
        rows, _, pages = page_all(c, paging_token(c, "2000-01-01T00:00:00Z"), ALL_TYPES, batch=100)
    assert pages > 3
    assert len({a["id"] for a in rows}) == len(rows)  # no activity twice across pages
    order = [(a["leadId"], parse_time(a["activityDate"])) for a in rows]
    assert order == sorted(order)  # by lead, then date: a cursor over people, flat at any population
    world = world_of(sb)
    assert {key(a) for a in rows} == expected_activities(world, 0, {int(t) for t in ALL_TYPES.split(",")})
    assert {a["activityTypeId"] for a in rows} >= {6, 7, 10, 11, 12, 104}


def test_activity_type_filter_and_leads_of_activities(sb: Sandbox) -> None:
    with http(sb) as c:
        rows, _, _ = page_all(c, paging_token(c, "2000-01-01T00:00:00Z"), "12")
        assert rows and {a["activityTypeId"] for a in rows} == {12}
        lead_ids = [a["leadId"] for a in rows[:20]]
        leads = c.get("/rest/v1/leads.json", params={"filterType": "id", "filterValues": ",".join(map(str, lead_ids)),
                                                     "fields": "email,firstName,updatedAt,factoryPreferredChannel"})
    body = leads.json()
    assert body["success"] is True
    world = world_of(sb)
    got = {r["id"]: r for r in body["result"]}
    assert set(got) == set(lead_ids)
    for lead_id, rec in got.items():
        person = world.person(lead_id - LEAD_OFFSET)
        assert rec["email"] == person.email and rec["firstName"] == person.first_name
        assert rec["factoryPreferredChannel"] == person.preferred_channel
        assert set(rec) == {"id", "email", "firstName", "updatedAt", "factoryPreferredChannel"}


def test_since_datetime_after_advance_returns_only_new_activities() -> None:
    with start_sandbox([REF], size=SIZE, seed=7, in_process=True) as sandbox, http(sandbox) as c:
        _, resume, _ = page_all(c, paging_token(c, "2000-01-01T00:00:00Z"), EMAIL_TYPES)
        tick0 = sandbox.clock()["ticks"][-1]
        sandbox.advance(3)
        world = world_of(sandbox)
        since_ms = parse_time(tick0) + 1
        expected = expected_activities(world, since_ms, {int(t) for t in ALL_TYPES.split(",")})
        assert expected, "three ticks should bring new Marketo touches"
        new, _, _ = page_all(c, paging_token(c, sandbox.clock()["ticks"][1]), ALL_TYPES)
        assert {key(a) for a in new} == expected
        assert all(parse_time(a["activityDate"]) >= since_ms // 1000 * 1000 for a in new)  # seconds precision
        changes, _, _ = page_all(c, paging_token(c, sandbox.clock()["ticks"][1]), "13")
        assert changes and sorted((a["leadId"], a["primaryAttributeValue"], parse_time(a["activityDate"]) // 1000)
                                  for a in changes) == expected_changes(world, since_ms)
        last_score: dict[int, Any] = {}  # the last Lead Score change of a lead holds its current score
        for a in changes:
            if a["primaryAttributeValue"] == "Lead Score":
                last_score[a["leadId"]] = {x["name"]: x["value"] for x in a["attributes"]}["New Value"]
        assert last_score
        assert all(world.person(lead - LEAD_OFFSET).lead_score == v for lead, v in last_score.items())
        deleted, _, _ = page_all(c, paging_token(c, sandbox.clock()["ticks"][1]), "", path="deletedleads")
        j = Journeys(world)
        gone = {LEAD_OFFSET + p for p in range(SIZE) if world.person(p).archived_ms is not None
                and any(x.system == "marketo" for x in j.touches(p))}
        assert gone and {a["leadId"] for a in deleted} == gone and {a["activityTypeId"] for a in deleted} == {37}
        first_page = c.get("/rest/v1/activities/deletedleads.json",
                           params={"nextPageToken": paging_token(c, sandbox.clock()["ticks"][1])}).json()
        _validator(_operation_schema("/rest/v1/activities/deletedleads.json")).validate(first_page)
        lookup = c.get("/rest/v1/leads.json", params={"filterType": "id", "filterValues": ",".join(map(str, gone))})
        assert lookup.json()["result"] == []  # deleted leads are gone
        # the last token of the earlier run resumes with exactly the new activities
        resumed, _, _ = page_all(c, resume, EMAIL_TYPES)
        assert {key(a) for a in resumed} == expected_activities(world, since_ms, {6, 7, 8, 9, 10, 11})


def test_first_activity_page_of_a_million_people_indexes_nobody() -> None:
    """A page is computed from a cursor over person indexes: the first page of the whole history of
    a 1,000,000-person world does not wait for an index of who Marketo knows (minutes)."""
    world = World(seed=7, size=1_000_000)
    j = Journeys(world)
    known = [p for p in range(400) if any(x.system == "marketo" for x in j.touches(p))]
    late = next(p for p in range(999_999, 0, -1) if any(x.system == "marketo" for x in j.touches(p)))
    with start_sandbox([REF], size=1_000_000, seed=7, in_process=True) as sandbox, \
            http(sandbox, timeout=120) as c:
        started = time.perf_counter()
        body = c.get("/rest/v1/activities.json", params={
            "nextPageToken": paging_token(c, "2000-01-01T00:00:00Z"), "activityTypeIds": ALL_TYPES,
            "batchSize": 300}).json()
        first = time.perf_counter() - started
        lead = c.get(f"/rest/v1/lead/{LEAD_OFFSET + late}.json").json()
    assert first < 10, f"first page took {first:.1f}s"
    assert body["success"] and body["moreResult"] and len(body["result"]) == 300
    leads = list(dict.fromkeys(a["leadId"] - LEAD_OFFSET for a in body["result"]))
    assert leads == known[:len(leads)]  # the lowest indexes Marketo knows, in order
    assert [r["id"] for r in lead["result"]] == [LEAD_OFFSET + late]


# -- leads, describe, programs ----------------------------------------------------------------------------


def test_leads_by_email_ignore_case_and_describe_has_custom_fields(sb: Sandbox) -> None:
    with http(sb) as c:
        rows, _, _ = page_all(c, paging_token(c, "2000-01-01T00:00:00Z"), "12")
        world = world_of(sb)
        person = next(world.person(a["leadId"] - LEAD_OFFSET) for a in rows
                      if world.person(a["leadId"] - LEAD_OFFSET).email)
        assert person.email is not None
        found = c.get("/rest/v1/leads.json", params={"filterType": "email",
                                                     "filterValues": person.email.strip().upper()}).json()
        describe = c.get("/rest/v1/leads/describe.json").json()
    assert LEAD_OFFSET + person.idx in {r["id"] for r in found["result"]}
    names = {f["rest"]["name"] for f in describe["result"]}
    assert {"email", "updatedAt", "createdAt", "factoryPreferredChannel", "factoryLifecycleStage"} <= names


def test_programs_are_the_marketo_campaigns_and_members_have_status(sb: Sandbox) -> None:
    world = world_of(sb)
    j = Journeys(world)
    now = world.ticks[-1]
    expected = {PROGRAM_OFFSET + c for c in range(j.campaign_count())
                if j.campaign(c).system == "marketo" and j.campaign(c).created_ms <= now}
    with http(sb) as c:
        programs = c.get("/rest/asset/v1/programs.json", params={"maxReturn": 200}).json()
        assert {p["id"] for p in programs["result"]} == expected
        members: list[dict[str, Any]] = []
        for pid in sorted(expected):
            body = c.get(f"/rest/v1/programs/{pid}/members.json", params={"batchSize": 300}).json()
            assert body["success"] is True
            members.extend(body["result"])
        missing = c.get("/rest/v1/programs/999999/members.json").json()
    assert members and all(m["programId"] in expected for m in members)
    assert any(m["reachedSuccess"] for m in members) and {"Attended"} <= {m["statusName"] for m in members}
    for m in members[:30]:
        touches = [x for x in j.touches(m["leadId"] - LEAD_OFFSET)
                   if x.system == "marketo" and x.campaign_idx == m["programId"] - PROGRAM_OFFSET]
        assert touches
    assert missing["success"] is False


# -- errors and limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "params", "code"), [
    ("/rest/v1/activities.json", {"activityTypeIds": "6"}, "701"),
    ("/rest/v1/activities.json", {"nextPageToken": "!!!", "activityTypeIds": "6"}, "1003"),
    ("/rest/v1/activities.json", {"nextPageToken": "GE======", "activityTypeIds": "6,999"}, "1003"),
    ("/rest/v1/leads.json", {"filterType": "shoeSize", "filterValues": "1"}, "1003"),
    ("/rest/v1/leads.json", {"filterType": "id", "filterValues": "1", "batchSize": "301"}, "1003"),
    ("/rest/v1/leads.json", {"filterType": "id", "filterValues": "1", "fields": "nope"}, "1006"),
    ("/rest/v1/no/such/thing.json", {}, "610"),
])
def test_errors_are_http_200_with_success_false(sb: Sandbox, path: str, params: dict[str, str], code: str) -> None:
    with http(sb) as c:
        r = c.get(path, params=params)
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is False and body["errors"][0]["code"] == code and "result" not in body


def test_rate_limit_606_after_100_calls_in_20_seconds() -> None:
    with start_sandbox([REF], size=50, seed=7, rate_limits=True, in_process=True) as sandbox, http(sandbox) as c:
        answers = [c.get("/rest/v1/activities/types.json").json() for _ in range(101)]
    assert all(a["success"] for a in answers[:100])
    assert answers[100]["success"] is False and answers[100]["errors"][0]["code"] == "606"


def test_concurrency_limit_615(sb: Sandbox) -> None:
    mk = sb.emulators["marketo"]
    tok = token(sb)

    def call(_: int) -> dict[str, Any]:
        return httpx.get(f"{mk.base_url}/rest/v1/activities/types.json", timeout=10,
                         headers={"Authorization": f"Bearer {tok}", "X-Sandbox-Delay-Ms": "800"}).json()

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(call, range(12)))
    codes = [a["errors"][0]["code"] for a in answers if not a["success"]]
    assert "615" in codes and sum(a["success"] for a in answers) >= 10 - 1


# -- Swagger ----------------------------------------------------------------------------------------


def _validator(definition: str, spec: str = "swagger-mapi.json") -> jsonschema.protocols.Validator:
    doc = json.loads((REFERENCE / spec).read_text())
    definitions = copy.deepcopy(doc["definitions"])
    # Swagger declares Attribute.value as an object, but Marketo sends the attribute's scalar value
    # (strings, numbers, booleans), as its own documentation examples show
    if "Attribute" in definitions:
        definitions["Attribute"]["properties"]["value"] = {}
    schema = {"$ref": f"#/definitions/{definition}", "definitions": definitions}
    return jsonschema.Draft4Validator(schema)


def _operation_schema(path: str, spec: str = "swagger-mapi.json") -> str:
    doc = json.loads((REFERENCE / spec).read_text())
    return str(doc["paths"][path]["get"]["responses"]["200"]["schema"]["$ref"].rsplit("/", 1)[1])


def test_responses_validate_against_marketo_swagger(sb: Sandbox) -> None:
    mk = sb.emulators["marketo"]
    identity = httpx.get(f"{mk.base_url}/identity/oauth/token",
                         params={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                 "client_secret": CLIENT_SECRET}).json()
    _validator(_operation_schema("/identity/oauth/token", "swagger-identity.json"),
               "swagger-identity.json").validate(identity)
    with http(sb) as c:
        since = paging_token(c, "2000-01-01T00:00:00Z")
        activities = c.get("/rest/v1/activities.json",
                           params={"nextPageToken": since, "activityTypeIds": ALL_TYPES, "batchSize": 300}).json()
        lead_ids = ",".join(str(a["leadId"]) for a in activities["result"][:50])
        answers = {
            "/rest/v1/leads/describe.json": c.get("/rest/v1/leads/describe.json").json(),
            "/rest/v1/activities/types.json": c.get("/rest/v1/activities/types.json").json(),
            "/rest/v1/activities/pagingtoken.json": c.get("/rest/v1/activities/pagingtoken.json",
                                                          params={"sinceDatetime": "2026-01-01"}).json(),
            "/rest/v1/leads.json": c.get("/rest/v1/leads.json", params={
                "filterType": "id", "filterValues": lead_ids,
                "fields": ",".join(f["rest"]["name"] for f in c.get("/rest/v1/leads/describe.json").json()["result"])
            }).json(),
            "/rest/v1/programs/{programId}/members.json": c.get(
                f"/rest/v1/programs/{PROGRAM_OFFSET + 1}/members.json").json(),
            "/rest/v1/leads/programs/{programId}.json": c.get(
                f"/rest/v1/leads/programs/{PROGRAM_OFFSET + 1}.json", params={"fields": "email,leadScore"}).json(),
        }
    assert len(activities["result"]) == 300
    # Swagger's format: date-time, to the second in UTC as Marketo sends it
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    assert all(stamp.match(a["activityDate"]) for a in activities["result"])
    _validator(_operation_schema("/rest/v1/activities.json")).validate(activities)
    for path, body in answers.items():
        assert body["success"] is True, (path, body)
        _validator(_operation_schema(path)).validate(body)
    assert all(stamp.match(r["updatedAt"]) and stamp.match(r["createdAt"])
               for r in answers["/rest/v1/leads.json"]["result"])
    assert all(r["membership"]["progressionStatus"]
               for r in answers["/rest/v1/leads/programs/{programId}.json"]["result"])
    assert answers["/rest/v1/leads.json"]["result"] and answers["/rest/v1/programs/{programId}/members.json"]["result"]
    # and a failure is a valid envelope (errors of {code, message})
    _validator("ResponseOfVoid").validate(_failure(sb))  # failures carry no result, like Marketo's


def _failure(sb: Sandbox) -> Any:
    return httpx.get(f"{sb.emulators['marketo'].base_url}/rest/v1/leads.json").json()


# -- faults -----------------------------------------------------------------------------------------


def test_faults_render_marketo_answers(faults: Sandbox) -> None:
    route = "/rest/v1/activities.json"
    with http(faults, timeout=5) as c:
        since = paging_token(c, "2000-01-01T00:00:00Z")
        params: dict[str, str | int] = {"nextPageToken": since, "activityTypeIds": EMAIL_TYPES, "batchSize": 50}
        observed: dict[str, Any] = {}
        for kind in ("rate_limit", "expired_token", "server_error", "missing_id", "bad_timestamp", "truncate"):
            faults.set_faults("marketo", [FaultRule(kind, route=route, at=1)])
            observed[kind] = c.get(route, params=params)
        faults.set_faults("marketo", [FaultRule("drop", route=route, at=1),
                                      FaultRule("timeout", route="/rest/v1/leads/describe.json", at=1, delay=1)])
        with pytest.raises(httpx.TransportError):
            c.get(route, params=params)
        with pytest.raises(httpx.TransportError):
            c.get("/rest/v1/leads/describe.json", timeout=0.3)
    assert observed["rate_limit"].status_code == 200 and observed["rate_limit"].json()["errors"][0]["code"] == "606"
    assert observed["expired_token"].json()["errors"][0]["code"] == "602"
    assert observed["server_error"].status_code == 503 and observed["server_error"].json()["success"] is False
    assert any("id" not in a for a in observed["missing_id"].json()["result"])
    bad = [a["activityDate"] for a in observed["bad_timestamp"].json()["result"]]
    assert any(_unparseable(d) for d in bad)
    with pytest.raises(json.JSONDecodeError):
        json.loads(observed["truncate"].text)
    stats = faults.stats("marketo")["routes"]["GET /rest/v1/activities.json"]
    assert stats["statuses"].get("503") == 1


def _unparseable(value: str) -> bool:
    try:
        parse_time(value)
    except ValueError:
        return True
    return False


def test_program_members_are_exactly_the_live_people_with_a_touch_of_the_program() -> None:
    """Each program lists every live person with a Marketo touch of it, and nobody else: the
    emulator visits only the people whose active span or ticks meet the program's window, so a
    person outside that narrowing would go missing here."""
    with start_sandbox([REF], size=5000, seed=5, in_process=True, grow=True) as sandbox:
        sandbox.advance(6)  # ticks inside the running programs' windows: tick touches and new people
        world = World(seed=5, size=5000, grow=True, ticks=[parse_time(t) for t in sandbox.clock()["ticks"]])
        j = Journeys(world)
        expected: dict[int, set[int]] = {}
        for p in range(world.people.count(world.tick)):
            if world.person(p).archived_ms is None:
                for x in j.touches(p):
                    if x.system == "marketo" and x.campaign_idx is not None:
                        expected.setdefault(PROGRAM_OFFSET + x.campaign_idx, set()).add(LEAD_OFFSET + p)
        got: dict[int, set[int]] = {}
        with http(sandbox) as c:
            programs = c.get("/rest/asset/v1/programs.json", params={"maxReturn": 200}).json()["result"]
            for pid in (p["id"] for p in programs):
                params: dict[str, Any] = {"batchSize": 300}
                while True:
                    body = c.get(f"/rest/v1/programs/{pid}/members.json", params=params).json()
                    got.setdefault(pid, set()).update(m["leadId"] for m in body.get("result") or ())
                    if not body.get("moreResult"):
                        break
                    params["nextPageToken"] = body["nextPageToken"]
    assert {k: v for k, v in got.items() if v} == expected
    assert sum(map(len, expected.values())) > 500
    assert any(lead - LEAD_OFFSET >= world.people.base_count for v in expected.values() for lead in v)
