"""The Salesforce emulator over real HTTPS, driven by simple-salesforce (and plain requests).

Response shapes are compared with the restforce fixtures in the shared vendor reference: every key
a fixture has must be present with a value of the same JSON type.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)

from connectors.salesforce.emulator import emulator_spec
from sandbox import FaultRule, Sandbox, start_sandbox
from sandbox.faults import FAULT_KINDS
from tests.conftest import VENDOR_REFERENCE

SPEC = "connectors.salesforce.emulator:emulator_spec"
SIZE = 2800  # ~2,200 leads: more than one 2,000-record query page
FIXTURES = VENDOR_REFERENCE / "salesforce"
V = "59.0"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """A fresh world at tick 0, served from a child process (the default)."""
    with start_sandbox([SPEC], size=SIZE, seed=7) as sandbox:
        yield sandbox


@pytest.fixture
def fresh() -> Iterator[Sandbox]:
    """A small world this test may advance, served from threads of this process."""
    with start_sandbox([SPEC], size=400, seed=11, in_process=True) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def past(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A world created two hours ago (a kept clock, as ``state_dir`` allows) with 30 ticks a minute
    apart ending ten minutes ago: changes and deletions lie in whole past minutes."""
    state = tmp_path_factory.mktemp("salesforce-world")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    (state / "world.json").write_text(json.dumps({"seed": 11, "size": 1000, "grow": False,
                                                  "ticks": [(now - dt.timedelta(hours=2)).isoformat()]}))
    with start_sandbox([SPEC], size=1000, seed=11, state_dir=state, in_process=True) as sandbox:
        for k in range(30, 0, -1):
            sandbox.advance(at=(now - dt.timedelta(minutes=10 + k)).isoformat())
        yield sandbox


@pytest.fixture
def faults(sb: Sandbox) -> Iterator[Sandbox]:
    yield sb
    sb.set_faults("salesforce", [])


def settings(sandbox: Sandbox) -> dict[str, str]:
    return sandbox.emulators["salesforce"].settings


def session(sandbox: Sandbox) -> requests.Session:
    """A requests session trusting the emulator's certificate (and ignoring REQUESTS_CA_BUNDLE)."""
    s = requests.Session()
    s.trust_env = False
    s.verify = settings(sandbox)["ca_bundle"]
    return s


def client(sandbox: Sandbox, token: str | None = None) -> Any:
    """simple-salesforce over the emulator's TLS (``Any``: its attribute-per-object API is dynamic)."""
    st = settings(sandbox)
    return Salesforce(instance_url=st["instance_url"], session_id=token or st["session_id"], version=V,
                      session=session(sandbox))


def get(sandbox: Sandbox, path: str, token: str | None = None, **params: Any) -> requests.Response:
    st = settings(sandbox)
    return session(sandbox).get(st["instance_url"] + path, params=params or None, timeout=10,
                                headers={"Authorization": f"Bearer {token or st['session_id']}"})


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, dict):
        return "object"
    return "array" if isinstance(v, list) else "string" if isinstance(v, str) else type(v).__name__


def shape_mismatches(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Where ``actual`` lacks a key of ``expected`` or has a value of another JSON type (``null`` in
    the fixture matches anything; every element of an array is compared with the fixture's first)."""
    if expected is None:
        return []
    if _kind(expected) != _kind(actual):
        return [f"{path}: expected {_kind(expected)}, got {_kind(actual)} ({actual!r:.60})"]
    out: list[str] = []
    if isinstance(expected, dict):
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{path}.{key}: missing")
            else:
                out += shape_mismatches(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list) and expected:
        for n, item in enumerate(actual):
            out += shape_mismatches(expected[0], item, f"{path}[{n}]")
    return out


def test_shape_comparer_catches_missing_keys_and_wrong_types() -> None:
    assert shape_mismatches({"a": 1, "b": [{"c": "x"}]}, {"a": 2.5, "b": [{"c": "y"}], "extra": 1}) == []
    assert shape_mismatches({"a": 1}, {"a": "1"}) == ["$.a: expected number, got string ('1')"]
    assert shape_mismatches({"b": [{"c": "x"}]}, {"b": [{"d": 1}]}) == ["$.b[0].c: missing"]
    assert shape_mismatches([{"errorCode": "X"}], {"errorCode": "X"}) == [
        "$: expected array, got object ({'errorCode': 'X'})"]


# -- registration, TLS, OAuth ---------------------------------------------------------------------------


def test_registered_through_the_plugin_hook() -> None:
    from connectors import salesforce

    specs: list[Any] = []
    salesforce.register_emulators(specs.append)
    assert [s.name for s in specs] == [emulator_spec().name] == ["salesforce"]


def test_serves_tls_with_its_own_certificate(sb: Sandbox) -> None:
    st = settings(sb)
    assert st["instance_url"].startswith("https://127.0.0.1:")
    assert Path(st["ca_bundle"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    plain = requests.Session()
    plain.trust_env = False  # the system store does not know the sandbox certificate
    with pytest.raises(requests.exceptions.SSLError):
        plain.get(st["instance_url"] + "/services/data/", timeout=5)
    resp = get(sb, "/services/data/")
    assert resp.status_code == 200
    assert shape_mismatches(fixture("services_data_success_response.json"), resp.json()) == []
    assert {"version": V, "url": f"/services/data/v{V}"}.items() <= next(
        v for v in resp.json() if v["version"] == V).items()


@pytest.mark.parametrize("grant", ["password", "client_credentials", "refresh_token"])
def test_oauth_grants_issue_working_tokens(sb: Sandbox, grant: str) -> None:
    st = settings(sb)
    form = {"grant_type": grant, "client_id": st["client_id"], "client_secret": st["client_secret"],
            "username": st["username"], "password": st["password"] + st["security_token"],
            "refresh_token": st["refresh_token"]}
    resp = session(sb).post(st["instance_url"] + "/services/oauth2/token", data=form, timeout=10)
    assert resp.status_code == 200
    body = resp.json()
    assert shape_mismatches(fixture("auth_success_response.json"), body) == []
    assert shape_mismatches(fixture("refresh_success_response.json"), body) == []
    assert body["token_type"] == "Bearer" and body["instance_url"] == st["instance_url"]
    assert body["issued_at"].isdigit()
    sf = client(sb, body["access_token"])
    assert sf.query("SELECT Id FROM User")["totalSize"] == 12


def test_oauth_errors_use_the_oauth_error_shape(sb: Sandbox) -> None:
    st = settings(sb)
    url = st["instance_url"] + "/services/oauth2/token"
    bad_password = session(sb).post(url, data={"grant_type": "password", "client_id": st["client_id"],
                                               "client_secret": st["client_secret"], "username": st["username"],
                                               "password": "wrong"}, timeout=10)
    assert bad_password.status_code == 400
    assert bad_password.json()["error"] == "invalid_grant"
    assert shape_mismatches(fixture("auth_error_response.json"), bad_password.json()) == []
    bad_refresh = session(sb).post(url, data={"grant_type": "refresh_token", "client_id": st["client_id"],
                                              "refresh_token": "stale"}, timeout=10)
    assert bad_refresh.json() == fixture("refresh_error_response.json")


# -- describe -----------------------------------------------------------------------------------------


def test_describe_global_lists_every_object_with_key_prefixes(sb: Sandbox) -> None:
    body = client(sb).describe()
    assert shape_mismatches(fixture("sobject_describe_sobjects_success_response.json"), body) == []
    prefixes = {o["name"]: o["keyPrefix"] for o in body["sobjects"]}
    assert prefixes == {"Lead": "00Q", "Contact": "003", "Account": "001", "Opportunity": "006",
                        "OpportunityContactRole": "00K", "Campaign": "701", "CampaignMember": "00v",
                        "Task": "00T", "Event": "00U", "User": "005"}


@pytest.mark.parametrize(("obj", "custom", "compound"), [
    ("Lead", "Region__c", "Address"), ("Contact", "Preferred_Channel__c", "MailingAddress"),
    ("Account", "Tier__c", "BillingAddress"), ("Opportunity", "Product_Line__c", None)])
def test_describe_has_custom_and_compound_fields(sb: Sandbox, obj: str, custom: str, compound: str | None) -> None:
    body = getattr(client(sb), obj).describe()
    expected = fixture("sobject_sobject_describe_success_response.json")
    expected["childRelationships"] = []  # the emulator lists none
    assert shape_mismatches(expected, body) == []
    fields = {f["name"]: f for f in body["fields"]}
    assert fields[custom]["custom"] is True and sum(f["custom"] for f in body["fields"]) == 1
    assert fields["SystemModstamp"]["type"] == "datetime" and fields["Id"]["type"] == "id"
    if compound is not None:
        assert fields[compound]["type"] == "address"
        parts = [f["name"] for f in body["fields"] if f["compoundFieldName"] == compound]
        assert len(parts) == 8 and any(p.endswith("City") for p in parts)


def test_unknown_object_is_not_found_in_salesforce_shape(sb: Sandbox) -> None:
    resp = get(sb, f"/services/data/v{V}/sobjects/Whizbang/describe")
    assert resp.status_code == 404
    assert resp.json() == fixture("sobject_sobject_describe_error_response.json")
    with pytest.raises(SalesforceResourceNotFound):
        client(sb).Whizbang.describe()


# -- query --------------------------------------------------------------------------------------------


def _record_shape(name: str) -> Any:
    """A query fixture with its records reduced to what every SObject record has (``attributes``)."""
    body = fixture(name)
    body["records"] = [{"attributes": r["attributes"]} for r in body["records"]]
    return body


def test_query_all_iter_pages_through_more_than_2000_records(sb: Sandbox) -> None:
    sf = client(sb)
    first = get(sb, f"/services/data/v{V}/query", q="SELECT Id, Email, Region__c, SystemModstamp FROM Lead").json()
    assert first["done"] is False and len(first["records"]) == 2000 and first["totalSize"] > 2000
    assert shape_mismatches(_record_shape("sobject_query_paginated_first_page_response.json"), first) == []
    next_url = first["nextRecordsUrl"]
    assert next_url.startswith(f"/services/data/v{V}/query/01g") and next_url.endswith("-2000")
    # some clients send q= again on nextRecordsUrl: it is ignored
    last = get(sb, next_url, q="SELECT Id FROM Account").json()
    assert last["done"] is True and "nextRecordsUrl" not in last
    assert shape_mismatches(_record_shape("sobject_query_paginated_last_page_response.json"), last) == []
    assert {r["attributes"]["type"] for r in last["records"]} == {"Lead"}
    assert len(first["records"]) + len(last["records"]) == first["totalSize"]

    ids = [r["Id"] for r in sf.query_all_iter("SELECT Id, SystemModstamp FROM Lead")]
    assert len(ids) == len(set(ids)) == first["totalSize"]
    assert ids == sorted(ids)  # Id order, the default
    assert all(len(i) == 18 and i.startswith("00Q") for i in ids)
    stats = sb.stats("salesforce")["routes"]
    assert stats["GET /services/data/vXX.X/query/{locator}"]["requests"] >= 2


def test_query_records_have_salesforce_types_and_formats(sb: Sandbox) -> None:
    body = client(sb).query("SELECT Id, Name, Amount, IsClosed, IsWon, StageName, CloseDate, AccountId, "
                            "SystemModstamp, Product_Line__c FROM Opportunity WHERE IsWon = true LIMIT 5")
    assert body["totalSize"] == 5
    for r in body["records"]:
        assert r["attributes"] == {"type": "Opportunity", "url": f"/services/data/v{V}/sobjects/Opportunity/{r['Id']}"}
        assert r["IsWon"] is True and r["IsClosed"] is True and r["StageName"] == "Closed Won"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", r["SystemModstamp"])
        assert len(r["CloseDate"]) == 10
        assert r["Amount"] is None or isinstance(r["Amount"], float)
    lead = client(sb).query("SELECT Id, Address, IsConverted, ConvertedContactId FROM Lead "
                            "WHERE IsConverted = true LIMIT 1")["records"][0]
    assert lead["ConvertedContactId"].startswith("003")
    assert set(lead["Address"] or {}) <= {"city", "country", "geocodeAccuracy", "latitude", "longitude",
                                          "postalCode", "state", "street"}
    contact = client(sb).query(f"SELECT Id, Email FROM Contact WHERE Id = '{lead['ConvertedContactId']}'")
    assert contact["totalSize"] == 1
    empty = client(sb).query("SELECT Id FROM Lead WHERE SystemModstamp > 2100-01-01T00:00:00Z")
    assert shape_mismatches(fixture("sobject_query_empty_response.json"), empty) == []
    assert empty["records"] == [] and empty["done"] is True


def test_soql_subset_filters_orders_limits_and_counts(sb: Sandbox) -> None:
    sf = client(sb)
    total = sf.query("SELECT COUNT() FROM Account")
    assert total["totalSize"] == SIZE // 5 and total["records"] == []
    newest = sf.query("SELECT Id, SystemModstamp FROM Account ORDER BY SystemModstamp DESC, Id LIMIT 7")["records"]
    stamps = [r["SystemModstamp"] for r in newest]
    assert len(newest) == 7 and stamps == sorted(stamps, reverse=True)
    every = [r["SystemModstamp"] for r in sf.query_all_iter("SELECT SystemModstamp FROM Account")]
    assert stamps == sorted(every, reverse=True)[:7]
    pivot = newest[3]["Id"]
    after = sf.query(f"SELECT Id FROM Account WHERE Id > '{pivot}' AND IsDeleted = false ORDER BY Id LIMIT 3")
    assert [r["Id"] for r in after["records"]] == sorted(r["Id"] for r in after["records"])
    assert all(r["Id"] > pivot for r in after["records"])
    some = [r["Id"] for r in newest[:2]]
    either = sf.query(f"SELECT Id FROM Account WHERE Id = '{some[0]}' OR Id = '{some[1]}'")
    listed = sf.query(f"SELECT Id FROM Account WHERE Id IN ('{some[0]}', '{some[1][:15]}')")
    assert {r["Id"] for r in either["records"]} == {r["Id"] for r in listed["records"]} == set(some)
    gmail = sf.query("SELECT Email FROM Lead WHERE Email LIKE '%@GMAIL.com' LIMIT 5")["records"]
    assert gmail and all(r["Email"].lower().endswith("@gmail.com") for r in gmail)


def test_query_all_shows_deleted_rows_and_query_hides_them(past: Sandbox) -> None:
    sf = client(past)
    live = {r["Id"] for r in sf.query_all_iter("SELECT Id FROM Lead")}
    every = {r["Id"]: r["IsDeleted"] for r in sf.query_all_iter("SELECT Id, IsDeleted FROM Lead",
                                                                include_deleted=True)}
    deleted = {i for i, d in every.items() if d}
    assert deleted and live == set(every) - deleted
    assert sf.query(f"SELECT Id FROM Lead WHERE Id = '{min(deleted)}'")["totalSize"] == 0
    assert sf.query_all(f"SELECT Id FROM Lead WHERE Id = '{min(deleted)}'", include_deleted=True)["totalSize"] == 1


def test_incremental_window_returns_exactly_the_changed_records(fresh: Sandbox) -> None:
    sf = client(fresh)
    soql = "SELECT Id, Name, StageName, Amount, SystemModstamp FROM Opportunity"
    before = {r["Id"]: r for r in sf.query_all_iter(soql, include_deleted=True)}
    clock = fresh.advance()
    tick_time = clock["ticks"][-1].replace("Z", "+0000")
    after = {r["Id"]: r for r in sf.query_all_iter(soql, include_deleted=True)}
    window = (f"{soql} WHERE SystemModstamp >= {tick_time} AND SystemModstamp < 2100-01-01T00:00:00.000+0000 "
              "ORDER BY SystemModstamp, Id")
    got = list(sf.query_all_iter(window, include_deleted=True))
    assert [r["Id"] for r in got] == sorted(r["Id"] for r in got)  # one tick: one modstamp, then Id order
    assert {r["SystemModstamp"] for r in got} == {tick_time}
    changed = {i for i in after if after[i] != before.get(i)}
    assert changed and {r["Id"] for r in got} == changed
    # before the advance nothing was at or after the tick time
    assert all(r["SystemModstamp"] < tick_time for r in before.values())


def test_updated_and_deleted_endpoints(past: Sandbox) -> None:
    """getUpdated/getDeleted cover whole minutes up to now: the ticks of ``past`` lie minutes ago."""
    sf = client(past)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=50)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    updated = sf.Lead.updated(start, end)
    assert shape_mismatches(fixture("sobject_get_updated_success_response.json"), updated) == []
    stamp = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    window = sf.query_all(f"SELECT Id FROM Lead WHERE SystemModstamp >= {stamp}")["records"]
    assert updated["ids"] and set(updated["ids"]) == {r["Id"] for r in window}
    assert updated["latestDateCovered"] <= dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:00.000+0000")
    deleted = sf.Lead.deleted(start, end)
    assert shape_mismatches(fixture("sobject_get_deleted_success_response.json"), deleted) == []
    every = sf.query_all(f"SELECT Id, IsDeleted, SystemModstamp FROM Lead WHERE IsDeleted = true AND "
                         f"SystemModstamp >= {stamp}", include_deleted=True)["records"]
    assert deleted["deletedRecords"] and {d["id"] for d in deleted["deletedRecords"]} == {r["Id"] for r in every}
    assert {d["deletedDate"] for d in deleted["deletedRecords"]} <= {r["SystemModstamp"] for r in every}
    too_old = get(past, f"/services/data/v{V}/sobjects/Lead/updated/", start="2020-01-01T00:00:00+00:00",
                  end="2020-01-02T00:00:00+00:00")
    assert too_old.status_code == 400 and too_old.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_journeys_become_campaigns_members_tasks_and_events(sb: Sandbox) -> None:
    sf = client(sb)
    campaigns = sf.query_all("SELECT Id, Name, Type, Status, BudgetedCost, Channel__c FROM Campaign")["records"]
    assert campaigns and all(c["Id"].startswith("701") for c in campaigns)
    members = sf.query("SELECT Id, CampaignId, LeadId, ContactId, Status FROM CampaignMember LIMIT 50")["records"]
    assert members and {m["CampaignId"] for m in members} <= {c["Id"] for c in campaigns}
    assert all(m["LeadId"].startswith("00Q") for m in members)
    for obj, prefix in (("Task", "00T"), ("Event", "00U")):
        rows = sf.query(f"SELECT Id, WhoId, OwnerId, ActivityDate FROM {obj} LIMIT 20")["records"]
        assert rows and all(r["Id"].startswith(prefix) and r["OwnerId"].startswith("005") for r in rows)
        assert all(r["WhoId"] is None or r["WhoId"][:3] in ("00Q", "003") for r in rows)


# -- Bulk API 2.0 -------------------------------------------------------------------------------------


def test_bulk2_query_returns_csv_pages_with_locators(sb: Sandbox, tmp_path: Path) -> None:
    sf = client(sb)
    soql = "SELECT Id, Email, IsConverted, SystemModstamp FROM Lead"
    total = sf.query(soql)["totalSize"]
    pages = list(sf.bulk2.Lead.query(soql, max_records=1000, wait=0))
    assert len(pages) == math.ceil(total / 1000)
    rows = [row for page in pages for row in csv.DictReader(io.StringIO(str(page)))]
    assert len(rows) == total and len({r["Id"] for r in rows}) == total
    assert set(rows[0]) == {"Id", "Email", "IsConverted", "SystemModstamp"}
    assert {r["IsConverted"] for r in rows} == {"true", "false"}
    assert rows[0]["SystemModstamp"].endswith("Z")
    files = sf.bulk2.Lead.download(soql, path=str(tmp_path), max_records=2000, wait=0)
    assert [f["number_of_records"] for f in files] == [2000, total - 2000]
    assert files[0]["locator"] and files[-1]["locator"] == ""


def test_bulk2_job_lifecycle_over_plain_http(sb: Sandbox) -> None:
    st = settings(sb)
    s = session(sb)
    s.headers["Authorization"] = f"Bearer {st['session_id']}"
    base = f"{st['instance_url']}/services/data/v{V}/jobs/query"
    job = s.post(base, json={"operation": "queryAll", "query": "SELECT Id, Name FROM Account"}, timeout=10).json()
    assert job["state"] == "UploadComplete" and job["id"].startswith("750") and job["object"] == "Account"
    states = [s.get(f"{base}/{job['id']}", timeout=10).json()["state"] for _ in range(3)]
    assert states == ["InProgress", "JobComplete", "JobComplete"]
    first = s.get(f"{base}/{job['id']}/results", params={"maxRecords": 400}, timeout=10)
    assert first.headers["Sforce-NumberOfRecords"] == "400" and first.headers["Sforce-Locator"] != "null"
    rest = s.get(f"{base}/{job['id']}/results", params={"locator": first.headers["Sforce-Locator"]}, timeout=10)
    assert rest.headers["Sforce-Locator"] == "null"
    assert 400 + int(rest.headers["Sforce-NumberOfRecords"]) == SIZE // 5
    assert rest.text.splitlines()[0] == '"Id","Name"'
    assert s.delete(f"{base}/{job['id']}", timeout=10).status_code == 204
    gone = s.get(f"{base}/{job['id']}", timeout=10)
    assert gone.status_code == 404 and gone.json()[0]["errorCode"] == "NOT_FOUND"
    bad = s.post(base, json={"operation": "query", "query": "SELECT Id FROM"}, timeout=10)
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "MALFORMED_QUERY"


# -- errors and limits --------------------------------------------------------------------------------


def test_errors_are_json_arrays_with_salesforce_codes(sb: Sandbox) -> None:
    expired = get(sb, f"/services/data/v{V}/sobjects", token="00Dxx!not-a-session")
    assert expired.status_code == 401 and expired.json() == fixture("expired_session_response.json")
    with pytest.raises(SalesforceExpiredSession):
        client(sb, "00Dxx!not-a-session").query("SELECT Id FROM Lead")
    cases = {"SELECT Id FROM Lead WHERE": ("MALFORMED_QUERY", 400),
             "SELECT Id, Foo FROM Lead": ("INVALID_FIELD", 400),
             "SELECT Id FROM Lead WHERE SystemModstamp > '2024-01-01T00:00:00Z'": ("INVALID_FIELD", 400),
             "SELECT Id FROM Whizbang": ("INVALID_TYPE", 400)}
    for soql, (code, status) in cases.items():
        resp = get(sb, f"/services/data/v{V}/query", q=soql)
        assert resp.status_code == status, soql
        assert shape_mismatches(fixture("sobject_query_error_response.json"), resp.json()) == []
        assert resp.json()[0]["errorCode"] == code, soql
    with pytest.raises(SalesforceMalformedRequest):
        client(sb).query("SELECT Id, Foo FROM Lead")
    missing = get(sb, f"/services/data/v{V}/sobjects/Lead/00Q5g0000zzzzzzzzz")
    assert missing.status_code == 404
    assert shape_mismatches(fixture("sobject_delete_error_response.json"), missing.json()) == []


def test_sforce_limit_info_on_every_response(sb: Sandbox) -> None:
    usages = []
    for path in ("/services/data/", f"/services/data/v{V}/sobjects", f"/services/data/v{V}/nope"):
        resp = get(sb, path)
        used, _, limit = resp.headers["Sforce-Limit-Info"].removeprefix("api-usage=").partition("/")
        assert limit == "15000"
        usages.append(int(used))
    assert usages == sorted(usages) and usages[0] < usages[-1]
    sf = client(sb)
    sf.query("SELECT Id FROM User")
    assert sf.api_usage["api-usage"].total == 15000 and sf.api_usage["api-usage"].used > usages[-1]


# -- faults -------------------------------------------------------------------------------------------


def test_every_fault_kind_is_observed(faults: Sandbox) -> None:
    q = f"/services/data/v{V}/query"
    soql = "SELECT Id, SystemModstamp FROM Account LIMIT 20"
    seen: set[str] = set()

    def arm(kind: str, **kw: Any) -> None:
        faults.set_faults("salesforce", [FaultRule(kind, route=q, at=1, **kw)])  # type: ignore[arg-type]
        seen.add(kind)

    arm("rate_limit")
    resp = get(faults, q, q=soql)
    assert resp.status_code == 403 and resp.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert "Sforce-Limit-Info" in resp.headers
    arm("server_error")
    resp = get(faults, q, q=soql)
    assert resp.status_code == 503 and resp.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    arm("server_error", status=500)
    with pytest.raises(SalesforceGeneralError):
        client(faults).query(soql)
    arm("expired_token")
    with pytest.raises(SalesforceExpiredSession):
        client(faults).query(soql)
    arm("truncate")
    resp = get(faults, q, q=soql)
    with pytest.raises(requests.exceptions.JSONDecodeError):
        resp.json()
    arm("drop")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # headers and half the body
        get(faults, q, q=soql)
    arm("timeout", delay=0.3)
    with pytest.raises(requests.exceptions.ConnectionError):
        get(faults, q, q=soql)
    arm("missing_id")
    records = get(faults, q, q=soql).json()["records"]
    assert sum("Id" not in r for r in records) == 1 and len(records) == 20
    arm("bad_timestamp")
    records = get(faults, q, q=soql).json()["records"]
    assert sum(r["SystemModstamp"].startswith("2026-02-31") for r in records) == 1
    assert get(faults, q, q=soql).status_code == 200  # `at` fires once
    # record faults reach Bulk API 2.0 CSV results too
    st = settings(faults)
    s = session(faults)
    s.headers["Authorization"] = f"Bearer {st['session_id']}"
    base = f"{st['instance_url']}/services/data/v{V}/jobs/query"
    job = s.post(base, json={"operation": "query", "query": "SELECT Id, Name FROM Account"}, timeout=10).json()
    while s.get(f"{base}/{job['id']}", timeout=10).json()["state"] != "JobComplete":
        pass
    faults.set_faults("salesforce", [FaultRule("missing_id", route="/services/data/v59.0/jobs/query/", at=1)])
    rows = list(csv.DictReader(io.StringIO(s.get(f"{base}/{job['id']}/results", timeout=10).text)))
    assert len(rows) == SIZE // 5 and sum(r["Id"] == "" for r in rows) == 1
    assert seen == set(FAULT_KINDS)


# -- Composite --------------------------------------------------------------------------------------


def _composite(sandbox: Sandbox, subs: list[dict[str, Any]], **extra: Any) -> requests.Response:
    st = settings(sandbox)
    return session(sandbox).post(f"{st['instance_url']}/services/data/v{V}/composite", timeout=10,
                                 json={"allOrNone": False, "compositeRequest": subs, **extra},
                                 headers={"Authorization": f"Bearer {st['session_id']}"})


def _used(resp: requests.Response) -> int:
    return int(resp.headers["Sforce-Limit-Info"].removeprefix("api-usage=").partition("/")[0])


def test_composite_answers_like_the_direct_endpoints_for_one_api_call(fresh: Sandbox) -> None:
    base = f"/services/data/v{V}"
    since = "Wed, 3 Jul 2013 19:43:31 GMT"
    sf = client(fresh)
    direct_describe = sf.Contact.describe()
    soql = "SELECT Id, SystemModstamp FROM Lead ORDER BY Id"
    direct = sf.query_all(soql, include_deleted=True)["records"]
    assert len(direct) > 200  # more than one page of batchSize=200
    bad = "SELECT Nope FROM Contact"
    before = _used(get(fresh, f"{base}/limits"))
    fresh.reset_stats("salesforce")
    resp = _composite(fresh, [
        {"method": "GET", "url": f"{base}/sobjects/Contact/describe", "referenceId": "d1"},
        {"method": "GET", "url": f"{base}/sobjects/Lead/describe", "referenceId": "d2",
         "httpHeaders": {"If-Modified-Since": since}},
        {"method": "GET", "url": f"{base}/queryAll/?q={requests.utils.quote(soql)}", "referenceId": "q1",
         "httpHeaders": {"Sforce-Query-Options": "batchSize=200"}},
        {"method": "GET", "url": f"{base}/query/?q={requests.utils.quote(bad)}", "referenceId": "q2"},
        {"method": "GET", "url": f"{base}/sobjects/Nope__c/describe", "referenceId": "d3"},
    ])
    assert resp.status_code == 200
    assert _used(resp) == before + 1  # ONE API call for five subrequests
    assert fresh.stats("salesforce")["routes"] == {"POST /services/data/vXX.X/composite": {
        "requests": 1, "records": 200, "statuses": {"200": 1}}}
    out = {r["referenceId"]: r for r in resp.json()["compositeResponse"]}
    assert [r["referenceId"] for r in resp.json()["compositeResponse"]] == ["d1", "d2", "q1", "q2", "d3"]
    assert all(set(r) == {"body", "httpHeaders", "httpStatusCode", "referenceId"} for r in out.values())
    assert out["d1"]["httpStatusCode"] == 200 and out["d1"]["body"]["fields"] == direct_describe["fields"]
    assert out["d2"]["httpStatusCode"] == 304 and out["d2"]["body"] is None  # no custom field since 2013
    page = out["q1"]["body"]
    assert out["q1"]["httpStatusCode"] == 200 and len(page["records"]) == 200 and not page["done"]
    assert out["q2"]["httpStatusCode"] == 400 and out["q2"]["body"][0]["errorCode"] == "INVALID_FIELD"
    assert out["d3"]["httpStatusCode"] == 404 and out["d3"]["body"] == fixture(
        "sobject_sobject_describe_error_response.json")
    # nextRecordsUrl pages continue inside composites (query more is a query operation)
    records = list(page["records"])
    while not page["done"]:
        nxt = _composite(fresh, [{"method": "GET", "url": page["nextRecordsUrl"], "referenceId": "more"}])
        page = nxt.json()["compositeResponse"][0]["body"]
        records += page["records"]
    assert records == direct


def test_describe_if_modified_since_answers_304_until_a_field_is_added(fresh: Sandbox) -> None:
    base = f"/services/data/v{V}"
    st = settings(fresh)
    now = dt.datetime.now(dt.UTC)

    def describe(since: dt.datetime) -> requests.Response:
        from email.utils import format_datetime

        return session(fresh).get(f"{st['instance_url']}{base}/sobjects/Account/describe", timeout=10, headers={
            "Authorization": f"Bearer {st['session_id']}", "If-Modified-Since": format_datetime(since, usegmt=True)})

    assert describe(now - dt.timedelta(days=1)).status_code == 304
    client(fresh).restful("tooling/sobjects/CustomField", method="POST",
                          json={"FullName": "Account.Renewal_Tier__c", "Metadata": {"type": "Text"}})
    changed = describe(now - dt.timedelta(seconds=5))
    assert changed.status_code == 200 and "Renewal_Tier__c" in {f["name"] for f in changed.json()["fields"]}
    assert describe(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).status_code == 304


def test_composite_limits_and_malformed_requests_are_refused(fresh: Sandbox) -> None:
    base = f"/services/data/v{V}"
    describe = [{"method": "GET", "url": f"{base}/sobjects/Lead/describe", "referenceId": f"d{i}"} for i in range(26)]
    queries = [{"method": "GET", "url": f"{base}/query/?q=SELECT+Id+FROM+User", "referenceId": f"q{i}"}
               for i in range(6)]
    for subs, code in ((describe, "LIMIT_EXCEEDED"), (queries, "LIMIT_EXCEEDED"), ([], "INVALID_API_INPUT"),
                       ([describe[0], describe[0]], "INVALID_API_INPUT"),
                       ([{**describe[0], "httpHeaders": {"Authorization": "Bearer x"}}], "INVALID_API_INPUT")):
        resp = _composite(fresh, subs)
        assert resp.status_code == 400 and resp.json()[0]["errorCode"] == code
    assert _composite(fresh, describe[:25]).status_code == 200 and _composite(fresh, queries[:5]).status_code == 200
    halted = _composite(fresh, [queries[0], {**queries[1], "url": f"{base}/query/?q=SELECT+Nope+FROM+User"}],
                        allOrNone=True).json()["compositeResponse"]
    assert [r["body"][0]["errorCode"] for r in halted] == ["PROCESSING_HALTED", "INVALID_FIELD"]
