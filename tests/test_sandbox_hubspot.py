"""The HubSpot emulator over real HTTP, driven by the real hubspot-api-client (and plain httpx)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.companies import ApiException as CompaniesApiException
from hubspot.crm.contacts import ApiException, PublicObjectSearchRequest
from hubspot.crm.deals import ApiException as DealsApiException
from urllib3.util.retry import Retry

from connectors.hubspot.emulator import emulator_spec
from sandbox import FaultRule, Sandbox, start_sandbox
from sandbox.api import load_emulators

SIZE = 300
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """A fresh world at tick 0, served from a child process (the default)."""
    with start_sandbox(["hubspot"], size=SIZE, seed=7) as sandbox:
        yield sandbox


@pytest.fixture
def fresh() -> Iterator[Sandbox]:
    """A world this test may advance, served from threads of this process."""
    with start_sandbox(["hubspot"], size=SIZE, seed=7, in_process=True) as sandbox:
        yield sandbox


@pytest.fixture
def faults(sb: Sandbox) -> Iterator[Sandbox]:
    yield sb
    sb.set_faults("hubspot", [])


def client(sandbox: Sandbox, token: str | None = None, *, sdk_retries: bool = False) -> HubSpot:
    """The real SDK. urllib3 (under it) retries dropped connections, and 429/503 answers that carry
    Retry-After, by default; tests that must see the fault itself turn that off."""
    hs = sandbox.emulators["hubspot"]
    retry = None if sdk_retries else Retry(total=0, respect_retry_after_header=False)
    return HubSpot(access_token=token or hs.settings["access_token"], host=hs.base_url, retry=retry)


def raw(response: Any) -> Any:
    return orjson.loads(response.data)


def http(sandbox: Sandbox) -> httpx.Client:
    hs = sandbox.emulators["hubspot"]
    return httpx.Client(base_url=hs.base_url, headers={"Authorization": f"Bearer {hs.settings['access_token']}"})


# -- registration ---------------------------------------------------------------------------------


def test_emulator_spec_is_registered_like_a_plugin() -> None:
    spec = emulator_spec()
    assert spec.name == "hubspot"
    assert load_emulators()["hubspot"].name == "hubspot"


# -- list, get, batch read ----------------------------------------------------------------------------


def test_list_pages_to_the_end_with_exactly_n_distinct_contacts(sb: Sandbox) -> None:
    api = client(sb).crm.contacts.basic_api
    ids: list[str] = []
    after = None
    while True:
        page = raw(api.get_page(limit=100, after=after, properties=["email", "lifecyclestage"],
                                _preload_content=False))
        ids += [r["id"] for r in page["results"]]
        assert all(set(r["properties"]) == {"email", "lifecyclestage", "hs_object_id", "createdate",
                                            "lastmodifieddate"} for r in page["results"])
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
    assert len(ids) == SIZE == len(set(ids))


def test_records_deserialize_into_sdk_models_with_hubspot_shapes(sb: Sandbox) -> None:
    page = client(sb).crm.contacts.basic_api.get_page(limit=5)
    first = page.results[0]
    assert first.id == "1000" and first.archived is False
    assert set(first.properties) == {"createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
                                     "lastname"}
    assert first.updated_at >= first.created_at
    assert page.paging.next.after == "1005"
    body = raw(client(sb).crm.contacts.basic_api.get_page(limit=1, properties=["hs_lifecyclestage_lead_date",
                                                                                 "factory_lead_score"],
                                                          _preload_content=False))
    rec = body["results"][0]
    assert rec["createdAt"].endswith("Z") and len(rec["createdAt"]) == 24
    assert all(v is None or isinstance(v, str) for v in rec["properties"].values())
    headers = http(sb).get("/crm/v3/objects/contacts").headers
    for name in ("Daily", "Daily-Remaining", "Interval-Milliseconds", "Max", "Remaining"):
        assert f"X-HubSpot-RateLimit-{name}" in headers


def test_batch_read_and_get_by_id(sb: Sandbox) -> None:
    from hubspot.crm.companies import BatchReadInputSimplePublicObjectId, SimplePublicObjectId

    api = client(sb).crm.companies.batch_api
    res = api.read(BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id="2000000001"), SimplePublicObjectId(id="2000000002")],
        properties=["name", "domain", "numberofemployees"], properties_with_history=[]))
    assert [r.id for r in res.results] == ["2000000001", "2000000002"]
    assert res.results[0].properties["domain"]
    with http(sb) as h:
        partial = h.post("/crm/v3/objects/contacts/batch/read", json={"inputs": [{"id": "1001"}, {"id": "99"}]})
        assert partial.status_code == 207 and partial.json()["errors"][0]["context"]["ids"] == ["99"]
    deal = client(sb).crm.deals.basic_api.get_by_id("3000000003", properties=["dealstage", "amount"])
    assert deal.properties["dealstage"] in {"appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
                                            "decisionmakerboughtin", "contractsent", "closedwon", "closedlost"}


# -- search --------------------------------------------------------------------------------------------


def search(sandbox: Sandbox, kind: str = "contacts", **body: Any) -> dict[str, Any]:
    with http(sandbox) as h:
        resp = h.post(f"/crm/v3/objects/{kind}/search", json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_search_filters_and_sorts(sb: Sandbox) -> None:
    api = client(sb).crm.contacts.search_api
    res = api.do_search(PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "hs_object_id", "operator": "BETWEEN", "value": "1010",
                                     "highValue": "1019"}]}],
        sorts=[{"propertyName": "hs_object_id", "direction": "DESCENDING"}], limit=5, properties=["email"]))
    assert res.total == 10 and [r.id for r in res.results] == ["1019", "1018", "1017", "1016", "1015"]
    assert res.paging.next.after == "5"
    beyond = search(sb, filterGroups=[{"filters": [{"propertyName": "hs_object_id", "operator": "GT",
                                                    "value": str(1000 + SIZE - 3)}]}], sorts=["hs_object_id"])
    assert beyond["total"] == 2 and "paging" not in beyond
    ins = search(sb, filterGroups=[{"filters": [{"propertyName": "hs_object_id", "operator": "IN",
                                                 "values": ["1003", "1007", "5"]}]}])
    assert [r["id"] for r in ins["results"]] == ["1003", "1007"]
    with_email = search(sb, filterGroups=[{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}],
                        limit=1)["total"]
    assert 0.9 * SIZE < with_email < SIZE
    either = search(sb, filterGroups=[{"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": "1001"}]},
                                      {"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": "1002"}]}])
    assert either["total"] == 2
    first = either["results"][0]["properties"]["email"]
    if first:  # EQ on a string ignores case and padding, as HubSpot's does
        again = search(sb, filterGroups=[{"filters": [{"propertyName": "email", "operator": "EQ",
                                                       "value": first.strip().upper()}]}])
        assert "1001" in [r["id"] for r in again["results"]]
    by_date = search(sb, sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}], limit=200,
                     properties=["lastmodifieddate"])
    stamps = [r["properties"]["lastmodifieddate"] for r in by_date["results"]]
    assert stamps == sorted(stamps) and by_date["total"] == SIZE
    deals = search(sb, "deals", filterGroups=[{"filters": [{"propertyName": "hs_lastmodifieddate",
                                                            "operator": "GTE", "value": "0"}]}])
    assert deals["total"] == SIZE // 4


def test_search_refuses_paging_past_ten_thousand(sb: Sandbox) -> None:
    api = client(sb).crm.contacts.search_api
    with pytest.raises(ApiException) as err:
        api.do_search(PublicObjectSearchRequest(limit=100, after="10000"))
    assert err.value.status == 400
    assert orjson.loads(err.value.body)["category"] == "VALIDATION_ERROR"


def test_advance_changes_about_one_percent_found_by_search_gte(fresh: Sandbox) -> None:
    before = int(time.time() * 1000)
    clock = fresh.advance(1)
    assert clock["tick"] == 1
    res = search(fresh, filterGroups=[{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE",
                                                    "value": str(before)}]}],
                 sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}], limit=100,
                 properties=["lastmodifieddate", "lifecyclestage"])
    assert 1 <= res["total"] <= 0.02 * SIZE
    assert all(r["properties"]["lastmodifieddate"] == clock["ticks"][1] for r in res["results"])
    ids = {int(r["id"]) for r in res["results"]}
    assert len({i % 100 for i in ids}) == 1, "one residue class changes per tick"
    assert all(r["updatedAt"] == clock["ticks"][1] for r in res["results"])
    # companies use hs_lastmodifieddate
    companies = search(fresh, "companies", filterGroups=[{"filters": [
        {"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": clock["ticks"][0]}]}])
    assert companies["total"] <= 2


def test_search_by_modified_date_is_proportional_to_changes_not_population() -> None:
    with start_sandbox(["hubspot"], size=1_000_000, in_process=True) as big:
        before = big.clock()["ticks"][0]
        big.advance(1)
        started = time.perf_counter()
        res = search(big, filterGroups=[{"filters": [{"propertyName": "lastmodifieddate", "operator": "GT",
                                                      "value": before}]}],
                     sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}], limit=200)
        assert time.perf_counter() - started < 3.0  # a scan of 1,000,000 people would take far longer
        assert 9_000 <= res["total"] <= 11_000
        last = search(big, filterGroups=[{"filters": [{"propertyName": "hs_object_id", "operator": "GTE",
                                                       "value": "999000"}]}], limit=5)
        assert last["total"] >= 1900 and last["results"][0]["id"] == "999000"


def test_archived_records_leave_the_list_and_appear_with_archived_true(fresh: Sandbox) -> None:
    fresh.advance(3)
    api = client(fresh).crm.contacts.basic_api
    archived = raw(api.get_page(limit=100, archived=True, _preload_content=False))["results"]
    assert archived and all(r["archived"] and r["archivedAt"] for r in archived)
    live = []
    after = None
    while True:
        page = raw(api.get_page(limit=100, after=after, _preload_content=False))
        live += [r["id"] for r in page["results"]]
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
    assert len(live) + len(archived) == SIZE
    assert not {r["id"] for r in archived} & set(live)


# -- associations, properties, pipelines ------------------------------------------------------------------


def test_v4_associations_carry_labels(sb: Sandbox) -> None:
    hs = client(sb)
    res = hs.crm.associations.v4.batch_api.get_page(
        "contacts", "companies", BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": "1003"},
                                                                                       {"id": "1011"}]))
    by_id = {r._from.id: r.to for r in res.results}
    first = by_id["1003"][0]
    types = {(t.category, t.type_id, t.label) for t in first.association_types}
    assert {("HUBSPOT_DEFINED", 1, "Primary"), ("HUBSPOT_DEFINED", 279, None)} <= types
    assert ("USER_DEFINED", 101, "Decision maker") in types
    company_id = first.to_object_id
    back = raw(hs.crm.associations.v4.basic_api.get_page("companies", str(company_id), "contacts",
                                                         _preload_content=False))
    assert 1003 in [r["toObjectId"] for r in back["results"]]
    deal = raw(hs.crm.associations.v4.basic_api.get_page("deals", "3000000000", "contacts", _preload_content=False))
    assert [t["typeId"] for t in deal["results"][0]["associationTypes"]] == [3]


def test_properties_include_custom_ones(sb: Sandbox) -> None:
    props = client(sb).crm.properties.core_api.get_all("contacts").results
    by_name = {p.name: p for p in props}
    assert len(props) >= 30
    assert by_name["email"].hubspot_defined is True
    assert by_name["factory_lead_score"].hubspot_defined is False
    assert [o.value for o in by_name["lifecyclestage"].options][:3] == ["subscriber", "lead",
                                                                       "marketingqualifiedlead"]


def test_deal_pipeline_stages(sb: Sandbox) -> None:
    pipelines = client(sb).crm.pipelines.pipelines_api.get_all("deals").results
    stages = {s.id: s.metadata for s in pipelines[0].stages}
    assert stages["closedwon"] == {"isClosed": "true", "probability": "1"}
    assert stages["closedlost"]["isClosed"] == "true" and stages["appointmentscheduled"]["isClosed"] == "false"


# -- errors ----------------------------------------------------------------------------------------------


def test_auth_errors_and_unknown_routes(sb: Sandbox) -> None:
    with pytest.raises(ApiException) as err:
        client(sb, token="wrong").crm.contacts.basic_api.get_page()
    assert err.value.status == 401
    assert orjson.loads(err.value.body)["category"] == "INVALID_AUTHENTICATION"
    with http(sb) as h:
        missing = h.get("/crm/v3/nothing/here")
        assert missing.status_code == 404 and missing.json()["status"] == "error"
        assert "correlationId" in missing.json()
        long_url = h.get("/crm/v3/objects/contacts", params={"properties": "x" * 16_000})
        assert long_url.status_code == 414


def test_rate_limits_when_enforced() -> None:
    with start_sandbox(["hubspot"], size=50, in_process=True, rate_limits=True) as limited, http(limited) as h:
        answers = [h.post("/crm/v3/objects/contacts/search", json={}) for _ in range(7)]
        refused = [a for a in answers if a.status_code == 429]
        assert len(refused) >= 2
        body = refused[0].json()
        assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "SECONDLY"
        assert refused[0].headers["Retry-After"]


# -- faults ----------------------------------------------------------------------------------------------


def test_fault_429_with_retry_after_on_the_third_request(faults: Sandbox) -> None:
    faults.set_faults("hubspot", [FaultRule("rate_limit", route="/crm/v3/objects/contacts", at=3,
                                            retry_after=2)])
    api = client(faults).crm.contacts.basic_api
    api.get_page()
    api.get_page()
    with pytest.raises(ApiException) as err:
        api.get_page()
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "2"
    body = orjson.loads(err.value.body)
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] and body["correlationId"]
    api.get_page()  # fires once
    stats = faults.stats("hubspot")["routes"]["GET /crm/v3/objects/{type}"]["statuses"]
    assert stats["429"] >= 1
    # the SDK's default urllib3 retry honours Retry-After and recovers on its own
    faults.set_faults("hubspot", [FaultRule("rate_limit", route="/crm/v3/objects/contacts", at=1, retry_after=1)])
    faults.reset_stats("hubspot")
    assert client(faults, sdk_retries=True).crm.contacts.basic_api.get_page(limit=1).results
    assert faults.stats("hubspot")["routes"]["GET /crm/v3/objects/{type}"]["statuses"] == {"429": 1, "200": 1}


def test_fault_5xx_and_expired_token(faults: Sandbox) -> None:
    faults.set_faults("hubspot", [FaultRule("server_error", route="/crm/v3/objects/deals", at=1, status=502),
                                  FaultRule("expired_token", route="/crm/v3/objects/companies", at=1)])
    hs = client(faults)
    with pytest.raises(DealsApiException) as err:
        hs.crm.deals.basic_api.get_page()
    assert err.value.status == 502
    with pytest.raises(CompaniesApiException) as err:
        hs.crm.companies.basic_api.get_page()
    assert err.value.status == 401
    assert orjson.loads(err.value.body)["category"] == "EXPIRED_AUTHENTICATION"


def test_fault_truncated_json(faults: Sandbox) -> None:
    faults.set_faults("hubspot", [FaultRule("truncate", route="POST /crm/v3/objects/{type}/search", at=1)])
    resp = client(faults).crm.contacts.search_api.do_search(PublicObjectSearchRequest(limit=10),
                                                            _preload_content=False)
    assert resp.status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(resp.data)


def test_fault_dropped_connection_and_timeout(faults: Sandbox) -> None:
    faults.set_faults("hubspot", [FaultRule("drop", route="/crm/v3/objects/contacts", at=1),
                                  FaultRule("timeout", route="/crm/v3/objects/companies", at=1, delay=3)])
    hs = client(faults)
    with pytest.raises(urllib3.exceptions.HTTPError):
        hs.crm.contacts.basic_api.get_page(limit=50)
    with pytest.raises(urllib3.exceptions.HTTPError):
        hs.crm.companies.basic_api.get_page(_request_timeout=0.5)
    assert hs.crm.contacts.basic_api.get_page(limit=1).results  # the next request is served


def test_fault_malformed_records(faults: Sandbox) -> None:
    faults.set_faults("hubspot", [FaultRule("missing_id", route="/crm/v3/objects/contacts", at=1),
                                  FaultRule("bad_timestamp", route="/crm/v3/objects/deals", at=1)])
    hs = client(faults)
    page = raw(hs.crm.contacts.basic_api.get_page(limit=20, _preload_content=False))
    assert sum("id" not in r for r in page["results"]) == 1
    deals = raw(hs.crm.deals.basic_api.get_page(limit=20, _preload_content=False))
    bad = [r for r in deals["results"] if not r["properties"]["hs_lastmodifieddate"][:4].isdigit()]
    assert len(bad) == 1


def test_fault_rate_is_reproducible_by_seed(faults: Sandbox) -> None:
    def pattern() -> list[int]:
        faults.set_faults("hubspot", [FaultRule("server_error", route="/crm/v3/pipelines", rate=0.3, seed=4)])
        with http(faults) as h:
            return [h.get("/crm/v3/pipelines/deals").status_code for _ in range(30)]

    first = pattern()
    assert first == pattern()
    assert 3 <= first.count(503) <= 18


# -- process lifecycle -------------------------------------------------------------------------------------


def test_faults_given_at_start_and_advance_to_a_chosen_time() -> None:
    rules = [FaultRule("server_error", vendor="hubspot", route="/crm/v3/objects/contacts", at=1)]
    with start_sandbox(["hubspot"], size=60, faults=rules, grow=True) as sandbox, http(sandbox) as h:
        assert h.get("/crm/v3/objects/contacts").status_code == 503
        assert h.get("/crm/v3/objects/contacts").status_code == 200
        clock = sandbox.advance(at="2099-01-01T00:00:00Z")
        assert clock["ticks"][-1] == "2099-01-01T00:00:00.000Z"
        newest = h.post("/crm/v3/objects/contacts/search", json={
            "filterGroups": [{"filters": [{"propertyName": "createdate", "operator": "GTE",
                                           "value": "2099-01-01T00:00:00Z"}]}]}).json()
        assert newest["total"] == 1 and newest["results"][0]["id"] == "1060"  # the world grew by one
        listed = h.get("/crm/v3/objects/companies", params={"associations": "contacts", "limit": 1}).json()
        assert listed["results"][0]["associations"]["contacts"]["results"][0]["type"] == "company_to_contact"


def test_state_dir_keeps_the_world_advanced_between_runs(tmp_path: Path) -> None:
    with start_sandbox(["hubspot"], size=100, state_dir=tmp_path, in_process=True) as first:
        first.advance(2)
    with start_sandbox(["hubspot"], size=100, state_dir=tmp_path, in_process=True) as second:
        assert second.clock()["tick"] == 2


def test_server_process_exits_when_its_parent_dies() -> None:
    script = ("import sys; from sandbox import start_sandbox\n"
              "sb = start_sandbox(['hubspot'], size=50)\n"
              "print(sb.emulators['hubspot'].base_url, flush=True)\n"
              "import os; os._exit(1)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=30,
                         cwd=str(ROOT))
    base_url = out.stdout.strip()
    assert base_url.startswith("http://127.0.0.1:")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base_url}/_sandbox/health", timeout=0.5)
        except httpx.TransportError:
            return
        time.sleep(0.2)
    pytest.fail("the sandbox server outlived its parent")


def test_serve_command_prints_urls_and_credentials(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "sandbox", "serve", "--size", "20", "--state-dir", str(tmp_path),
                          "--watch-stdin"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
                         cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "hubspot" in out.stdout and "http://127.0.0.1:" in out.stdout
    assert "SOURCES__HUBSPOT__ACCESS_TOKEN=sandbox-" in out.stdout
    assert (tmp_path / "world.json").is_file()


def test_stop_frees_the_port() -> None:
    sandbox = start_sandbox(["hubspot"], size=50)
    url = sandbox.emulators["hubspot"].base_url
    assert httpx.get(f"{url}/_sandbox/health").json()["ok"] is True
    sandbox.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/_sandbox/health", timeout=1)

