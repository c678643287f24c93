"""The Marketo connector against the sandbox emulator (real HTTP) and from a recorded cassette.

Expected values are read from the emulator through its REST API with plain httpx, never from
the connector under test.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from connectors.marketo import connector_spec
from connectors.marketo.emulator import CLIENT_ID, CLIENT_SECRET, LEAD_OFFSET, TOKEN_TTL_ENV
from connectors.marketo.helpers import MarketoConnector
from core.connector import ConnectorConfig, Page, RunContext
from core.errors import QuotaExhaustedError
from core.http import RetryPolicy
from core.vocabulary import CHANNELS, TOUCH_TYPES
from sandbox import FaultRule, Sandbox, start_sandbox
from tests.conftest import ROOT, VENDOR_REFERENCE, scrubbing_vcr

REF = "connectors.marketo.emulator:emulator_spec"
SIZE = 200
CASSETTE = ROOT / "cassettes" / "marketo" / "small_run.yaml"
MAPPINGS = ROOT / "mappings" / "marketo"
SECRET_SETTINGS = ("client_id", "client_secret")


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox([REF], size=SIZE, seed=11, in_process=True) as sandbox:
        yield sandbox


@pytest.fixture
def faults(sb: Sandbox) -> Iterator[Sandbox]:
    yield sb
    sb.set_faults("marketo", [])


def _connector(settings: dict[str, Any], policy: RetryPolicy | None = None, **extra: Any) -> MarketoConnector:
    values = {**settings, "rate_limit_wait": 0.05, **extra}
    return MarketoConnector(ConnectorConfig("marketo", "sandbox", values, frozenset(SECRET_SETTINGS)),
                            policy=policy)


def _ctx() -> RunContext:
    return RunContext(run_id="test", started_at=datetime.now(UTC))


def _pages(conn: MarketoConnector, stream: str, state: dict[str, Any] | None = None) -> list[Page]:
    return list(conn.extract(connector_spec().stream(stream), state or {}, _ctx()))


def _records(pages: list[Page]) -> list[dict[str, Any]]:
    return [r for p in pages for r in p.records]


# -- reading the emulator independently --------------------------------------------------------


def _client(sandbox: Sandbox) -> httpx.Client:
    mk = sandbox.emulators["marketo"]
    token = httpx.get(f"{mk.base_url}/identity/oauth/token", params={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).json()
    return httpx.Client(base_url=mk.base_url, headers={"Authorization": f"Bearer {token['access_token']}"})


def vendor_leads(sandbox: Sandbox, size: int) -> dict[int, dict[str, Any]]:
    """Every live lead, by asking for every possible id (the connector never scans id ranges)."""
    out: dict[int, dict[str, Any]] = {}
    with _client(sandbox) as c:
        fields = ",".join(f["rest"]["name"] for f in c.get("/rest/v1/leads/describe.json").json()["result"])
        for lo in range(LEAD_OFFSET, LEAD_OFFSET + size, 300):
            ids = ",".join(str(i) for i in range(lo, min(lo + 300, LEAD_OFFSET + size)))
            body = c.get("/rest/v1/leads.json", params={"filterType": "id", "filterValues": ids, "fields": fields}).json()
            assert body["success"], body
            out.update({r["id"]: r for r in body.get("result") or []})
    return out


def vendor_activities(sandbox: Sandbox, since: str = "2000-01-01T00:00:00Z") -> dict[str, dict[str, Any]]:
    """Every activity of every type since ``since``, by marketoGUID."""
    out: dict[str, dict[str, Any]] = {}
    with _client(sandbox) as c:
        types = sorted(t["id"] for t in c.get("/rest/v1/activities/types.json").json()["result"])
        for i in range(0, len(types), 10):
            token = c.get("/rest/v1/activities/pagingtoken.json", params={"sinceDatetime": since}).json()[
                "nextPageToken"]
            while True:
                body = c.get("/rest/v1/activities.json", params={
                    "nextPageToken": token, "activityTypeIds": ",".join(map(str, types[i:i + 10])),
                    "batchSize": 300}).json()
                assert body["success"], body
                out.update({a["marketoGUID"]: a for a in body.get("result") or []})
                token = body["nextPageToken"]
                if not body.get("moreResult"):
                    break
    return out


# -- registration and mappings ------------------------------------------------------------------


def test_plugin_registers_connector_streams_and_mappings() -> None:
    from core.plugins import get_registry

    spec = get_registry().connector("marketo")
    assert {s.name for s in spec.streams} == {"activity_types", "leads", "activities", "programs",
                                              "program_members"}
    entities = {s.name: yaml.safe_load((MAPPINGS / m).read_text())["entity"]
                for s in spec.streams for m in s.mappings}
    assert entities == {"leads": "person", "activities": "touch", "programs": "campaign",
                        "program_members": "campaign_membership"}
    assert {s.name for s in spec.settings if s.secret} == set(SECRET_SETTINGS)


def test_every_activity_type_the_vendor_serves_maps_into_the_vocabulary(sb: Sandbox) -> None:
    doc = yaml.safe_load((MAPPINGS / "activities.yaml").read_text())
    touch_types, channels = doc["fields"]["touch_type"]["table"], doc["fields"]["channel"]["table"]
    assert set(touch_types.values()) <= set(TOUCH_TYPES) and set(channels.values()) <= set(CHANNELS)
    with _client(sb) as c:
        served = {t["id"]: t["name"] for t in c.get("/rest/v1/activities/types.json").json()["result"]}
    # every type the instance has is named explicitly: no activity falls to the default by accident
    assert set(served) <= set(touch_types) and set(served) <= set(channels)
    by_name = {served[i]: touch_types[i] for i in served}
    assert by_name["Send Email"] == "email_send" and by_name["Email Delivered"] == "email_delivered"
    assert by_name["Open Email"] == "email_open" and by_name["Click Email"] == "click"
    assert by_name["Email Bounced"] == "bounce" and by_name["Unsubscribe Email"] == "unsubscribe"
    assert by_name["Fill Out Form"] == "form_submission" and by_name["Visit Webpage"] == "page_view"
    assert by_name["Change Status in Progression"] == "program_status_change"
    assert touch_types[3] == "click" and channels[3] == "web"  # Click Link on a web page
    assert by_name["New Lead"] == "other"


# -- extraction --------------------------------------------------------------------------------


def test_full_extract_matches_the_emulator_and_resumes_from_its_tokens(sb: Sandbox) -> None:
    conn = _connector(sb.emulators["marketo"].settings)
    try:
        leads = _pages(conn, "leads")
        activities = _pages(conn, "activities")
        types = _pages(conn, "activity_types")
    finally:
        conn.close()
    expected = vendor_leads(sb, SIZE)
    got = {r["id"]: r for r in _records(leads)}
    assert got == expected  # every live lead with every described field, custom ones included
    assert {"factoryLifecycleStage", "factoryPreferredChannel"} <= set(next(iter(got.values())))
    acts = _records(activities)
    assert {a["marketoGUID"] for a in acts} == set(vendor_activities(sb))
    names = {t["id"]: t["name"] for t in _records(types)}
    assert all(a["activityTypeName"] == names[a["activityTypeId"]] for a in acts)
    # email activities name their program by the "<program>.<email>" asset name
    emails = [a for a in acts if a["activityTypeId"] == 6 and a.get("programId")]
    names_of = {pid: _program_name(sb, pid) for pid in {a["programId"] for a in emails}}
    assert emails and all(a["primaryAttributeValue"].startswith(f"{names_of[a['programId']]}.") for a in emails)
    # each page carries the token to resume from; the last one continues after what was read
    assert all(p.state and "tokens" in p.state for p in activities)
    conn = _connector(sb.emulators["marketo"].settings)
    try:
        again = _pages(conn, "activities", activities[-1].state)
        leads_again = _pages(conn, "leads", leads[-1].state)
    finally:
        conn.close()
    assert _records(again) == [] and _records(leads_again) == []


def _program_name(sb: Sandbox, program_id: int) -> str:
    with _client(sb) as c:
        return str(c.get(f"/rest/asset/v1/program/{program_id}.json").json()["result"][0]["name"])


def test_program_members_carry_status_success_and_a_key(sb: Sandbox) -> None:
    conn = _connector(sb.emulators["marketo"].settings)
    try:
        members = _records(_pages(conn, "program_members"))
        programs = _records(_pages(conn, "programs"))
    finally:
        conn.close()
    expected: set[tuple[int, int, str, bool]] = set()
    with _client(sb) as c:
        for p in programs:
            token = None
            while True:
                body = c.get(f"/rest/v1/programs/{p['id']}/members.json",
                             params={"batchSize": 300, **({"nextPageToken": token} if token else {})}).json()
                expected |= {(m["programId"], m["leadId"], m["statusName"], m["reachedSuccess"])
                             for m in body.get("result") or []}
                token = body.get("nextPageToken")
                if not body.get("moreResult"):
                    break
    assert {(m["programId"], m["leadId"], m["statusName"], m["reachedSuccess"]) for m in members} == expected
    assert all(m["memberKey"] == f"{m['programId']}:{m['leadId']}" for m in members)
    assert len({m["memberKey"] for m in members}) == len(members)
    assert any(m["reachedSuccess"] for m in members) and not all(m["reachedSuccess"] for m in members)


def test_long_field_list_is_sent_as_post_with_method_get(sb: Sandbox) -> None:
    sb.reset_stats("marketo")
    conn = _connector(sb.emulators["marketo"].settings, url_budget=300)
    try:
        leads = _records(_pages(conn, "leads"))
    finally:
        conn.close()
    routes = sb.stats("marketo")["routes"]
    assert routes["POST /rest/v1/leads.json"]["requests"] > 0
    assert "GET /rest/v1/leads.json" not in routes
    assert {r["id"]: r for r in leads} == vendor_leads(sb, SIZE)


# -- auth and throttling -----------------------------------------------------------------------


def test_expired_token_602_is_refreshed_and_the_request_resent(faults: Sandbox) -> None:
    sb = faults
    expected = set(vendor_activities(sb))
    sb.set_faults("marketo", [FaultRule("expired_token", route="/rest/v1/activities.json", at=2),
                              FaultRule("expired_token", route="/rest/v1/leads.json", at=1)])
    sb.reset_stats("marketo")
    conn = _connector(sb.emulators["marketo"].settings)
    try:
        acts = _records(_pages(conn, "activities"))
        leads = _records(_pages(conn, "leads"))
    finally:
        conn.close()
    # one token at the start, one more after each 602
    assert sb.stats("marketo")["routes"]["GET /identity/oauth/token"]["requests"] == 3
    assert conn.api.token_requests == 3
    assert {a["marketoGUID"] for a in acts} == expected
    assert {r["id"] for r in leads} == set(vendor_leads(sb, SIZE))


def test_token_near_expiry_is_renewed_before_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_TTL_ENV, "1")
    with start_sandbox([REF], size=60, seed=11, in_process=True) as sandbox:
        conn = _connector(sandbox.emulators["marketo"].settings, batch_size=20)
        try:
            pages = conn.extract(connector_spec().stream("activities"), {}, _ctx())
            got = []
            for n, page in enumerate(pages):
                got.extend(page.records)
                if n < 3:
                    time.sleep(1.1)  # let the one-second token run out between pages
        finally:
            conn.close()
        assert {a["marketoGUID"] for a in got} == set(vendor_activities(sandbox))
        assert sandbox.stats("marketo")["routes"]["GET /identity/oauth/token"]["requests"] >= 4


def test_606_rate_limit_waits_and_succeeds(faults: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    sb = faults
    expected = set(vendor_activities(sb))
    sb.set_faults("marketo", [FaultRule("rate_limit", route="/rest/v1/activities.json", at=2, times=2)])
    sb.reset_stats("marketo")
    waits: list[float] = []
    conn = _connector(sb.emulators["marketo"].settings, policy=RetryPolicy(sleep=waits.append), rate_limit_wait=7)
    with caplog.at_level(logging.WARNING, logger="factoryline.http"):
        try:
            acts = _records(_pages(conn, "activities"))
        finally:
            conn.close()
    assert {a["marketoGUID"] for a in acts} == expected
    assert waits == [7, 7]  # the configured 606 pause, not a guess
    assert "606" in caplog.text


def test_615_concurrency_limit_backs_off_and_succeeds(faults: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    sb = faults
    expected = set(vendor_activities(sb))
    mk = sb.emulators["marketo"]
    with _client(sb) as c:
        headers = dict(c.headers)

    def hold() -> None:  # ten slow requests in flight: Marketo's concurrency limit is ten
        httpx.get(f"{mk.base_url}/rest/v1/activities/types.json",
                  headers={**headers, "X-Sandbox-Delay-Ms": "2500"}, timeout=30)

    holders = [threading.Thread(target=hold) for _ in range(10)]
    for t in holders:
        t.start()
    with _client(sb) as c:  # wait until the ten are in flight: Marketo then answers 615
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            body = c.get("/rest/v1/activities/types.json").json()
            if not body["success"] and body["errors"][0]["code"] == "615":
                break
        else:
            pytest.fail("the ten slow requests were not in flight in time")
    conn = _connector(mk.settings, policy=RetryPolicy(max_attempts=30, backoff_base=0.2, backoff_max=0.5))
    with caplog.at_level(logging.WARNING, logger="factoryline.http"):
        try:
            acts = _records(_pages(conn, "activities"))
        finally:
            conn.close()
    for t in holders:
        t.join()
    assert "615" in caplog.text
    assert {a["marketoGUID"] for a in acts} == expected


def test_607_daily_quota_raises_quota_exhausted_after_the_pages_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTORYLINE_SANDBOX_MARKETO_DAILY_QUOTA", "8")
    with start_sandbox([REF], size=SIZE, seed=11, in_process=True, rate_limits=True) as sandbox:
        conn = _connector(sandbox.emulators["marketo"].settings, batch_size=30)
        got: list[Page] = []
        try:
            with pytest.raises(QuotaExhaustedError) as err:
                for page in conn.extract(connector_spec().stream("activities"), {}, _ctx()):
                    got.append(page)
        finally:
            conn.close()
    assert err.value.code == "607" and CLIENT_SECRET not in str(err.value)
    assert got and _records(got), "pages read before the quota ran out are handed over"


# -- what the connector receives is Marketo's documented shape ----------------------------------


def _validator(definition: str, spec: str, *, empty: bool = False) -> jsonschema.protocols.Validator:
    doc = json.loads((VENDOR_REFERENCE / "marketo" / spec).read_text())
    definitions = copy.deepcopy(doc["definitions"])
    if empty:  # Marketo leaves `result` out of an empty answer (the Swagger lists it as required)
        top = definitions[definition]
        top["required"] = [r for r in top.get("required", []) if r != "result"]
    # Swagger types Attribute.value as an object; Marketo sends scalars (its own examples do)
    if "Attribute" in definitions:
        definitions["Attribute"]["properties"]["value"] = {}
    return jsonschema.Draft4Validator({"$ref": f"#/definitions/{definition}", "definitions": definitions})


def _schema_for(path: str, method: str) -> tuple[str, str] | None:
    for spec in ("swagger-mapi.json", "swagger-identity.json"):
        doc = json.loads((VENDOR_REFERENCE / "marketo" / spec).read_text())
        for template, ops in doc["paths"].items():
            pattern = "^" + "".join("[^/]+" if part.startswith("{") else part
                                    for part in template.replace("{", "\0{").replace("}", "}\0").split("\0")) + "$"
            if re.match(pattern, path) and method in ops:
                ref = ops[method]["responses"]["200"]["schema"].get("$ref")
                if ref:
                    return ref.rsplit("/", 1)[1], spec
    return None


def _check_like_program_fixture(body: dict[str, Any]) -> None:
    """Programs have every field, with the same JSON types, of Marketo's documented example."""
    doc = json.loads((VENDOR_REFERENCE / "marketo" / "fixtures" / "program_response.json").read_text())
    example = doc["responses"][0]["result"][0]
    assert body["success"] is True and {"requestId", "errors", "warnings"} <= set(body)
    for program in body.get("result") or []:
        for key, value in example.items():
            assert key in program, key
            assert type(program[key]) is type(value), (key, program[key], value)


def test_responses_the_connector_receives_validate_against_marketo_swagger(
        sb: Sandbox, vendor_reference: Path, tmp_path: Path) -> None:
    cassette = tmp_path / "seen.yaml"
    with _vcr("all").use_cassette(str(cassette)):
        conn = _connector(sb.emulators["marketo"].settings, batch_size=100)
        try:
            for stream in ("activity_types", "leads", "activities", "programs", "program_members"):
                _pages(conn, stream)
        finally:
            conn.close()
    checked: dict[str, int] = {}
    for item in yaml.safe_load(cassette.read_text())["interactions"]:
        path = httpx.URL(item["request"]["uri"]).path
        body = json.loads(item["response"]["body"]["string"])
        if path.startswith("/rest/asset/"):  # no Swagger for the Asset API: its documented example
            _check_like_program_fixture(body)
            checked["programs.json"] = checked.get("programs.json", 0) + 1
            continue
        found = _schema_for(path, "get")
        assert found is not None, path
        _validator(*found, empty="result" not in body and "access_token" not in body).validate(body)
        checked[path.split("/")[-1]] = checked.get(path.split("/")[-1], 0) + 1
    assert {"token", "describe2.json", "types.json", "pagingtoken.json", "activities.json", "leads.json",
            "deletedleads.json", "programs.json", "members.json"} <= set(checked), checked


# -- cassette: record once (FACTORYLINE_RECORD_CASSETTES=1), replay from the file alone ----------


def _query_but_clock(r1: Any, r2: Any) -> None:
    # the members stream asks for a paging token since "now - lookback": a time, not data
    def strip(q: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(k, v) for k, v in q if k != "sinceDatetime" or v.startswith("2000-")]
    assert strip(r1.query) == strip(r2.query)


def _vcr(record_mode: str) -> Any:
    v = scrubbing_vcr(record_mode, [CLIENT_ID, CLIENT_SECRET], match_on=("method", "path", "query_but_clock", "body"),
                      filter_query_parameters=("access_token", "client_id", "client_secret"))
    v.register_matcher("query_but_clock", _query_but_clock)
    return v


CASSETTE_SIZE = 25


def _cassette_run(settings: dict[str, Any]) -> dict[str, list[Page]]:
    conn = _connector(settings, batch_size=40)
    try:
        return {s: _pages(conn, s) for s in ("leads", "activities", "programs", "program_members")}
    finally:
        conn.close()


@pytest.mark.skipif(not os.environ.get("FACTORYLINE_RECORD_CASSETTES"),
                    reason="set FACTORYLINE_RECORD_CASSETTES=1 to re-record cassettes/marketo/")
def test_record_cassette() -> None:
    with start_sandbox([REF], size=CASSETTE_SIZE, seed=11, in_process=True) as sandbox:
        CASSETTE.parent.mkdir(parents=True, exist_ok=True)
        if CASSETTE.exists():
            CASSETTE.unlink()
        with _vcr("all").use_cassette(str(CASSETTE)):
            pages = _cassette_run(sandbox.emulators["marketo"].settings)
        assert {r["id"] for r in _records(pages["leads"])} == set(vendor_leads(sandbox, CASSETTE_SIZE))


def test_cassette_holds_no_secret() -> None:
    text = CASSETTE.read_text()
    assert CLIENT_ID not in text and CLIENT_SECRET not in text
    assert "Bearer" not in text and "authorization" not in text.lower()
    tokens = [json.loads(i["response"]["body"]["string"]).get("access_token")
              for i in yaml.safe_load(text)["interactions"] if "/identity/" in i["request"]["uri"]]
    assert tokens and all(t == "***" for t in tokens)


def test_replay_from_cassette_alone() -> None:
    # nothing listens on port 9: every answer must come from the cassette
    settings = {"base_url": "http://127.0.0.1:9", "identity_url": "http://127.0.0.1:9/identity",
                "endpoint": "http://127.0.0.1:9/rest", "client_id": "replay-id", "client_secret": "replay-secret"}
    with _vcr("none").use_cassette(str(CASSETTE)) as cassette:
        pages = _cassette_run(settings)
        assert cassette.all_played
    leads = _records(pages["leads"])
    assert leads and all(isinstance(r["id"], int) and "updatedAt" in r for r in leads)
    acts = _records(pages["activities"])
    assert acts and all("activityTypeName" in a and "attributeMap" in a for a in acts)
    assert {a["leadId"] for a in acts} >= {r["id"] for r in leads}
    members = _records(pages["program_members"])
    assert members and {m["programId"] for m in members} <= {p["id"] for p in _records(pages["programs"])}
    assert pages["activities"][-1].state and pages["leads"][-1].state
