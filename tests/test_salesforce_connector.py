"""The Salesforce connector against the sandbox emulator (real HTTPS) and a recorded cassette.

Expected values come from the emulator, read with simple-salesforce directly (a client of the
test's own), never from the connector under test.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Generator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from simple_salesforce import Salesforce

from connectors.salesforce import connector_spec, extra_objects
from connectors.salesforce import settings as S
from connectors.salesforce.emulator import custom_value
from connectors.salesforce.helpers import SalesforceConnector
from connectors.salesforce.objects import Field
from core.connector import ConnectorConfig, Page, RunContext, StreamSpec
from core.errors import TerminalVendorError
from core.mapping import load_mapping
from core.plugins import get_registry
from sandbox import FaultRule, Sandbox, start_sandbox
from tests.conftest import scrubbing_vcr

ROOT = Path(__file__).resolve().parents[1]
MAPPINGS = ROOT / "mappings" / "salesforce"
CASSETTE = ROOT / "cassettes" / "salesforce" / "small_full_run.yaml"
SECRETS = frozenset({"session_id", "client_secret", "refresh_token", "password", "security_token"})
SPEC = connector_spec(extra=())
V = "59.0"


def _stream(name: str) -> StreamSpec:
    return SPEC.stream(name)


def _config(settings: dict[str, Any], **over: Any) -> ConnectorConfig:
    values = {**settings, "page_size": 200, "lookback_seconds": 0, **over}
    return ConnectorConfig("salesforce", "sandbox", values, SECRETS)


def _connector(sb: Sandbox, **over: Any) -> SalesforceConnector:
    return SalesforceConnector(_config(sb.emulators["salesforce"].settings, **over))


def _run(conn: SalesforceConnector, stream: str, state: dict[str, Any] | None = None,
         started_at: datetime | None = None) -> list[Page]:
    ctx = RunContext("test", started_at or datetime.now(UTC))
    return list(conn.extract(_stream(stream), state or {}, ctx))


def _records(pages: list[Page]) -> list[dict[str, Any]]:
    return [r for p in pages for r in p.records]


def _client(sb: Sandbox) -> Any:
    st = sb.emulators["salesforce"].settings
    s = requests.Session()
    s.trust_env = False
    s.verify = st["ca_bundle"]
    return Salesforce(instance_url=st["instance_url"], session_id=st["session_id"], version=V, session=s)


def _vendor_rows(sb: Sandbox, obj: str, where: str = "") -> dict[str, dict[str, Any]]:
    """Every row (deleted ones included) of ``obj`` with every selectable field, via simple-salesforce."""
    sf = _client(sb)
    fields = [f["name"] for f in getattr(sf, obj).describe()["fields"] if f["type"] not in ("address", "location")]
    out = sf.query_all(f"SELECT {', '.join(fields)} FROM {obj}{where}", include_deleted=True)
    return {r["Id"]: json.loads(json.dumps(r)) for r in out["records"]}


def _api_requests(sb: Sandbox) -> dict[str, int]:
    routes = sb.stats("salesforce")["routes"]
    return {k: v["requests"] for k, v in routes.items() if "/_sandbox/" not in k}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """A world at tick 0 shared by read-only tests."""
    with start_sandbox(["salesforce"], size=600, seed=7, in_process=True) as sandbox:
        yield sandbox


@pytest.fixture
def fresh() -> Iterator[Sandbox]:
    """A world this test may advance or change."""
    with start_sandbox(["salesforce"], size=1500, seed=5, in_process=True) as sandbox:
        yield sandbox


def test_plugin_registers_connector_streams_and_transform(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = get_registry()
    spec = registry.connector("salesforce")
    names = {s.name for s in spec.streams}
    assert {"lead", "contact", "account", "opportunity", "opportunity_contact_role", "campaign",
            "campaign_member", "task", "event", "user"} <= names
    assert all(s.primary_key == "Id" and s.cursor_field == "SystemModstamp" for s in spec.streams)
    assert "salesforce_ref" in registry.transforms
    monkeypatch.setenv("SOURCES__SALESFORCE__EXTRA_OBJECTS", "Project__c, Lead, bad name")
    assert extra_objects() == ("Project__c",)
    assert "project__c" in {s.name for s in connector_spec().streams}


def test_full_sync_equals_what_the_emulator_holds(sb: Sandbox) -> None:
    conn = _connector(sb)
    try:
        for stream, obj in (("lead", "Lead"), ("contact", "Contact"), ("account", "Account"),
                            ("campaign_member", "CampaignMember"), ("task", "Task")):
            pages = _run(conn, stream)
            got = {r["Id"]: r for r in _records(pages)}
            assert len(got) == len(_records(pages)), f"{stream}: an id was read twice"
            expected = _vendor_rows(sb, obj)
            assert got == expected, stream
            assert all(len(p.records) <= 200 for p in pages)
            assert pages[-1].state is not None and pages[-1].state["cursor"]
        # compound parents are left out, their components kept
        lead = _records(_run(conn, "lead"))[0]
        assert "City" in lead and "Address" not in lead
    finally:
        conn.close()


def test_incremental_fetches_only_changes_and_marks_deletes(fresh: Sandbox) -> None:
    conn = _connector(fresh)
    try:
        first = _run(conn, "lead")
        before = {r["Id"]: r for r in _records(first)}
        time.sleep(0.01)
        for _ in range(3):
            fresh.advance()
        after = _vendor_rows(fresh, "Lead")
        changed = {i for i, r in after.items() if before.get(i) != r}
        deleted = {i for i, r in after.items() if r["IsDeleted"]}
        assert changed and deleted, "the sandbox ticks changed or deleted nothing"
        fresh.reset_stats("salesforce")
        second = _run(conn, "lead", first[-1].state)
    finally:
        conn.close()
    got = {r["Id"]: r for r in _records(second)}
    assert set(got) == changed
    assert all(got[i] == after[i] for i in changed)
    assert {i for i, r in got.items() if r["IsDeleted"]} == deleted
    # describe + one queryAll page, as the emulator counted them, and as the pages report them
    assert sum(_api_requests(fresh).values()) == sum(p.requests for p in second) == 2
    # deleted rows become is_deleted through the mapping
    mapped = load_mapping(MAPPINGS / "lead.yaml").compile(
        system="salesforce", instance="t", stream="lead", raw_table="salesforce__lead").map_page(
        _records(second), run_id="r", extracted_at=datetime.now(UTC))
    flags = dict(zip(mapped.rows.column("source_record_id").to_pylist(),
                     mapped.rows.column("is_deleted").to_pylist(), strict=True))
    assert {i for i, d in flags.items() if d} == deleted


def _all_streams(sb: Sandbox, states: dict[str, dict[str, Any]], started_at: datetime,
                 **over: Any) -> dict[str, list[dict[str, Any]]]:
    """One run of every stream through one connector (as a pipeline run does); updates ``states``."""
    conn = _connector(sb, **over)
    ctx = RunContext("run", started_at)
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        for stream in SPEC.streams:
            pages = list(conn.extract(stream, states.get(stream.name, {}), ctx))
            out[stream.name] = _records(pages)
            states[stream.name] = cast(dict[str, Any], [p.state for p in pages if p.state is not None][-1])
    finally:
        conn.close()
    return out


@pytest.fixture
def small() -> Iterator[Sandbox]:
    """A small world this test may advance or change (every object, each run: keep it cheap)."""
    with start_sandbox(["salesforce"], size=600, seed=5, in_process=True) as sandbox:
        yield sandbox


def test_rerun_sends_describes_and_first_pages_as_composite_requests(small: Sandbox) -> None:
    """Issue #4: a re-run after one tick costs two composite calls (10 objects, 5 queries per call)
    plus what a describe change forces, loads exactly the changed rows, sees a new custom field,
    and reads what the one-request-per-call path reads."""
    fresh = small
    objects = {S.stream_name(o): o for o in S.DEFAULT_OBJECTS}
    states: dict[str, dict[str, Any]] = {}
    first = _all_streams(fresh, states, datetime.now(UTC))
    before = {stream: {r["Id"]: r for r in rows} for stream, rows in first.items()}
    # a describe change between runs: Contact's describe answers 200 with the field, not 304
    _client(fresh).restful("tooling/sobjects/CustomField", method="POST",
                           json={"FullName": "Contact.Twitter_Handle__c", "Metadata": {"type": "Text"}})
    time.sleep(0.01)
    fresh.advance()
    fresh.reset_stats("salesforce")
    upper = datetime.now(UTC)
    kept = json.loads(json.dumps(states))
    second = _all_streams(fresh, states, upper)
    used = _api_requests(fresh)
    # 10 describes + 10 first pages = 20 subrequests, 10 of them queries: 2 calls; Contact's query
    # is sent again with the new field (the prefetched one selected the old list); nothing else
    assert used == {"POST /services/data/vXX.X/composite": 2, "GET /services/data/vXX.X/{query}": 1}
    changed_total = 0
    for stream, obj in objects.items():
        after = _vendor_rows(fresh, obj)
        if obj == "Contact":  # the new field changes no SystemModstamp: compare without it
            changed = {i for i, r in after.items()
                       if before[stream].get(i, {}).get("SystemModstamp") != r["SystemModstamp"]}
        else:
            changed = {i for i, r in after.items() if before[stream].get(i) != r}
        got = {r["Id"]: r for r in second[stream]}
        assert set(got) == changed, stream
        assert all(got[i] == after[i] for i in changed), stream
        changed_total += len(changed)
    assert changed_total > 0, "the tick changed nothing"
    assert second["contact"] and all("Twitter_Handle__c" in r for r in second["contact"])
    assert "Twitter_Handle__c" in [f[0] for f in states["contact"]["fields"]]
    # the same run without composite requests reads the same records and ends in the same cursors
    fresh.reset_stats("salesforce")
    plain_states = json.loads(json.dumps(kept))
    plain = _all_streams(fresh, plain_states, upper, composite="false")
    assert plain == second
    assert {k: v["cursor"] for k, v in plain_states.items()} == {k: v["cursor"] for k, v in states.items()}
    assert "POST /services/data/vXX.X/composite" not in _api_requests(fresh)
    assert _api_requests(fresh)["GET /services/data/vXX.X/sobjects/{Object}/describe"] == len(objects)


def test_composite_reads_further_pages_ahead_five_query_more_per_call(sb: Sandbox) -> None:
    """Windows of several pages: their next pages come in composite calls of 5 query-more subrequests."""
    objects = {S.stream_name(o): o for o in S.DEFAULT_OBJECTS}
    states: dict[str, dict[str, Any]] = {}
    _all_streams(sb, states, datetime.now(UTC))
    # every stored cursor (and the catalog's) moved back to 2000: the incremental window holds all rows
    epoch = "2000-01-01T00:00:00Z"
    for st in states.values():
        st["cursor"] = epoch
        for entry in st["catalog"].values():
            entry["cursor"] = epoch
    expected = {stream: _vendor_rows(sb, obj) for stream, obj in objects.items()}
    sb.reset_stats("salesforce")
    got = _all_streams(sb, states, datetime.now(UTC))
    assert {s: {r["Id"]: r for r in rows} for s, rows in got.items()} == expected
    # 10 first pages in 2 calls; then rounds of at most 5 next pages, one per object still paging
    left = [math.ceil(len(rows) / 200) - 1 for rows in expected.values()]
    rounds = 0
    while any(left):
        for i in [i for i, n in enumerate(left) if n][:5]:
            left[i] -= 1
        rounds += 1
    assert rounds >= 2
    assert _api_requests(sb) == {"POST /services/data/vXX.X/composite": 2 + rounds}


def test_resume_inside_one_timestamp_loses_nothing(fresh: Sandbox) -> None:
    """A run stopped with its position in the middle of records sharing one SystemModstamp."""
    fresh.advance()  # ~1% of the leads now share one SystemModstamp
    conn = _connector(fresh)
    # both runs read up to the same bound: a later start would also bring what changed just before it
    # (on a slow machine the two starts were far enough apart for that: 15 more records)
    started = datetime.now(UTC)
    try:
        clean = _records(_run(conn, "lead", started_at=started))
        stamps = [r["SystemModstamp"] for r in clean]
        k = next(i for i in range(1, len(clean) - 1) if stamps[i - 1] == stamps[i] == stamps[i + 1])
        # what a run stopped after the page ending with record k has committed
        stopped = {"position": [clean[k]["SystemModstamp"], clean[k]["Id"]]}
        fresh.reset_stats("salesforce")
        rest = _records(_run(conn, "lead", stopped, started_at=started))
    finally:
        conn.close()
    assert [r["Id"] for r in rest] == [r["Id"] for r in clean[k + 1:]]
    assert stamps[k] == rest[0]["SystemModstamp"]  # the same timestamp continued, by Id
    assert "GET /services/data/vXX.X/{query}" in _api_requests(fresh)


def test_custom_field_lands_in_extras_then_in_a_column_with_one_mapping_line(fresh: Sandbox,
                                                                              tmp_path: Path) -> None:
    sf = _client(fresh)
    sf.restful("tooling/sobjects/CustomField", method="POST",
               json={"FullName": "Lead.Twitter_Handle__c", "Metadata": {"type": "Text", "label": "Twitter"}})
    conn = _connector(fresh)
    try:
        records = _records(_run(conn, "lead"))
    finally:
        conn.close()
    expected = {r["Id"]: r["Twitter_Handle__c"] for r in _vendor_rows(fresh, "Lead").values()}
    assert expected == {r["Id"]: custom_value(Field("Twitter_Handle__c", "string"), r["Id"]) for r in records}

    def mapped(folder: Path) -> Any:
        return load_mapping(folder / "lead.yaml").compile(
            system="salesforce", instance="t", stream="lead", raw_table="salesforce__lead").map_page(
            records, run_id="r", extracted_at=datetime.now(UTC)).rows

    rows = mapped(MAPPINGS)
    extras = [json.loads(x) for x in rows.column("extras").to_pylist()]
    ids = rows.column("source_record_id").to_pylist()
    assert {i: e["Twitter_Handle__c"] for i, e in zip(ids, extras, strict=True)} == expected
    assert set(rows.column("social_handle").to_pylist()) == {None}

    copy = tmp_path / "salesforce"
    shutil.copytree(MAPPINGS, copy)
    text = (copy / "lead.yaml").read_text()
    (copy / "lead.yaml").write_text(text.replace("fields:\n", "fields:\n  social_handle: Twitter_Handle__c\n", 1))
    rows = mapped(copy)
    assert dict(zip(rows.column("source_record_id").to_pylist(), rows.column("social_handle").to_pylist(),
                    strict=True)) == expected
    assert all("Twitter_Handle__c" not in json.loads(x) for x in rows.column("extras").to_pylist())


def test_bulk_api_above_threshold_gives_the_same_records_as_rest(sb: Sandbox) -> None:
    rest = _connector(sb, bulk_threshold=0)
    bulk = _connector(sb, bulk_threshold=50, bulk_result_records=150)
    try:
        by_rest = _records(_run(rest, "lead"))
        sb.reset_stats("salesforce")
        pages = _run(bulk, "lead")
    finally:
        rest.close()
        bulk.close()
    used = _api_requests(sb)
    assert used.get("POST /services/data/vXX.X/jobs/query") == 1
    assert used.get("GET /services/data/vXX.X/jobs/query/{id}/results", 0) >= 2  # paged by Sforce-Locator
    assert "GET /services/data/vXX.X/query/{locator}" not in used
    by_bulk = _records(pages)
    assert sorted(by_bulk, key=lambda r: r["Id"]) == sorted(by_rest, key=lambda r: r["Id"])
    assert max(len(p.records) for p in pages) <= 200
    assert pages[-1].state is not None and "bulk" not in pages[-1].state


def test_stopped_bulk_run_resumes_the_same_job(sb: Sandbox) -> None:
    conn = _connector(sb, bulk_threshold=50, bulk_result_records=150)
    try:
        clean = {r["Id"]: r for r in _records(_run(conn, "lead"))}
        sb.reset_stats("salesforce")
        pages = cast(Generator[Page, None, None], conn.extract(_stream("lead"), {}, RunContext("a", datetime.now(UTC))))
        taken = [next(pages)]
        while not (taken[-1].state or {}).get("bulk", {}).get("locator"):
            taken.append(next(pages))  # stop once a results locator has been committed
        pages.close()
        state = taken[-1].state
        assert state is not None
        job = state["bulk"]["job"]
        rest = _run(conn, "lead", state)
    finally:
        conn.close()
    used = _api_requests(sb)
    assert used["POST /services/data/vXX.X/jobs/query"] == 1  # no second job: the first one resumed
    assert job.startswith("750")
    got = {r["Id"]: r for r in _records(taken) + _records(rest)}
    assert got == clean
    # the resumed run did not read again the results before the stored locator
    assert len(_records(rest)) < len(clean)


def test_session_expiry_refreshes_the_token_and_retries(fresh: Sandbox) -> None:
    settings = fresh.emulators["salesforce"].settings
    expected = _vendor_rows(fresh, "Account")
    fresh.set_faults("salesforce", [FaultRule("expired_token", route="/services/data/v59.0/queryAll", at=1)])
    conn = _connector(fresh)
    try:
        got = {r["Id"]: r for r in _records(_run(conn, "account"))}
        assert conn.api.refreshes == 1
    finally:
        conn.close()
        fresh.set_faults("salesforce", [])
    assert got == expected
    # a session that is no longer valid at all, with a refresh token: a new one is fetched
    conn = _connector(fresh, session_id="00Dexpired!AQ0AQnotvalid")
    try:
        assert {r["Id"] for r in _records(_run(conn, "account"))} == set(expected)
        assert conn.api.refreshes == 1
    finally:
        conn.close()
    # without refresh credentials it is terminal, and no secret shows in the error
    bare = {k: v for k, v in settings.items() if k not in ("refresh_token", "username", "password")}
    conn = SalesforceConnector(_config(bare, session_id="00Dexpired!AQ0AQnotvalid"))
    try:
        with pytest.raises(TerminalVendorError) as err:
            _run(conn, "account")
    finally:
        conn.close()
    assert "INVALID_SESSION_ID" in str(err.value) and "00Dexpired!AQ0AQnotvalid" not in str(err.value)


def test_hard_deletes_are_reconciled_through_the_deleted_endpoint(tmp_path: Path) -> None:
    """Deletes outside the incremental window (e.g. a record deleted, purged, before the cursor)."""
    now = datetime.now(UTC).replace(microsecond=0)
    state_dir = tmp_path / "world"
    state_dir.mkdir()
    (state_dir / "world.json").write_text(json.dumps({"seed": 11, "size": 1000, "grow": False,
                                                      "ticks": [(now - timedelta(hours=2)).isoformat()]}))
    with start_sandbox(["salesforce"], size=1000, seed=11, state_dir=state_dir, in_process=True) as sb:
        for k in range(12, 0, -1):
            sb.advance(at=(now - timedelta(minutes=10 + k)).isoformat())
        sf = _client(sb)
        start, end = now - timedelta(days=1), now
        expected = {r["id"] for r in sf.Lead.deleted(start, end)["deletedRecords"]}
        assert expected, "no deletes in the window"
        conn = _connector(sb, reconcile_deletes_hours=0)
        try:
            # a stored cursor of "now": the incremental window itself holds none of these deletes
            pages = _run(conn, "lead", {"cursor": now.isoformat(), "deletes_checked_at": start.isoformat()},
                         started_at=now)
        finally:
            conn.close()
        assert "GET /services/data/vXX.X/sobjects/{Object}/deleted" in _api_requests(sb)
    got = {r["Id"] for r in _records(pages) if r["IsDeleted"]}
    assert got == expected
    assert pages[-1].state is not None and pages[-1].state["deletes_checked_at"].startswith(now.date().isoformat())


def test_formula_fields_are_refreshed_by_a_periodic_full_read(fresh: Sandbox) -> None:
    _client(fresh).restful("tooling/sobjects/CustomField", method="POST", json={
        "FullName": "Account.Score__c", "Metadata": {"type": "Number", "formula": "NumberOfEmployees * 2"}})
    accounts = _vendor_rows(fresh, "Account")
    conn = _connector(fresh, formula_refresh_hours=1)
    t0 = datetime.now(UTC)
    try:
        first = _run(conn, "account", started_at=t0)
        state = first[-1].state
        assert len(_records(first)) == len(accounts)
        # nothing changed: within the hour only changes are read, after it everything again
        assert _records(_run(conn, "account", state, started_at=t0 + timedelta(minutes=30))) == []
        again = _run(conn, "account", state, started_at=t0 + timedelta(hours=2))
        assert {r["Id"]: r for r in _records(again)} == accounts
        # an object without formula fields stays incremental
        contacts = _run(conn, "contact", started_at=t0)
        assert _records(_run(conn, "contact", contacts[-1].state, started_at=t0 + timedelta(hours=2))) == []
    finally:
        conn.close()


def test_transient_faults_are_retried_on_rest_and_bulk_paths(fresh: Sandbox) -> None:
    from core.http import RetryPolicy

    expected = _vendor_rows(fresh, "Lead")
    results = "GET /services/data/vXX.X/jobs/query/{id}/results"
    fresh.set_faults("salesforce", [
        FaultRule("server_error", route="GET /services/data/vXX.X/{query}", at=1),
        FaultRule("drop", route="GET /services/data/vXX.X/query/{locator}", at=2),
        FaultRule("truncate", route="GET /services/data/vXX.X/query/{locator}", at=4),
        FaultRule("truncate", route=results, at=2),
        FaultRule("drop", route=results, at=4),
    ])
    fast = RetryPolicy(backoff_base=0.01, backoff_max=0.05)
    try:
        for over in ({"bulk_threshold": 0}, {"bulk_threshold": 50, "bulk_result_records": 300}):
            conn = SalesforceConnector(_config(fresh.emulators["salesforce"].settings, **over), policy=fast)
            try:
                got = {r["Id"]: r for r in _records(_run(conn, "lead"))}
            finally:
                conn.close()
            assert got == expected, over
        routes = fresh.stats("salesforce")["routes"]
        assert any(str(code).startswith("5") for code in routes["GET /services/data/vXX.X/{query}"]["statuses"])
        # every fault fired: each one cost one more request than the pages need
        pages = -(-len(expected) // 200)
        assert routes["GET /services/data/vXX.X/query/{locator}"]["requests"] == pages - 1 + 2
        assert routes[results]["requests"] == -(-len(expected) // 300) + 2
    finally:
        fresh.set_faults("salesforce", [])


def test_malformed_records_become_rejects_not_crashes(sb: Sandbox) -> None:
    sb.set_faults("salesforce", [FaultRule("missing_id", route="GET /services/data/vXX.X/{query}", at=1),
                                 FaultRule("bad_timestamp", route="GET /services/data/vXX.X/query/{locator}",
                                           at=1)])
    conn = _connector(sb, bulk_threshold=0)
    try:
        records = _records(_run(conn, "lead"))
    finally:
        conn.close()
        sb.set_faults("salesforce", [])
    assert len(records) == len(_vendor_rows(sb, "Lead"))  # nothing dropped on the way
    mapped = load_mapping(MAPPINGS / "lead.yaml").compile(
        system="salesforce", instance="t", stream="lead", raw_table="salesforce__lead").map_page(
        records, run_id="r", extracted_at=datetime.now(UTC))
    reasons = mapped.rejects.column("reason").to_pylist()
    assert mapped.rows.num_rows == len(records) - 1 and any("id" in r.lower() for r in reasons)
    assert mapped.rejects.num_rows >= 2  # the record without an id, and the unparseable timestamp


# ---------------------------------------------------------------------------------------------
# Cassette: record once (FACTORYLINE_RECORD_CASSETTES=1), replay from the file alone
# ---------------------------------------------------------------------------------------------

CASSETTE_STARTED = datetime(2030, 1, 1, tzinfo=UTC)


def _vcr(record_mode: str, secrets: list[str]) -> Any:
    return scrubbing_vcr(record_mode, secrets, match_on=("method", "path", "query", "body"))


def _cassette_run(instance_url: str, token: str, ca_bundle: str | None) -> list[Page]:
    values = {"instance_url": instance_url, "session_id": token, "page_size": 200, "bulk_threshold": 0}
    if ca_bundle:
        values["ca_bundle"] = ca_bundle
    conn = SalesforceConnector(ConnectorConfig("salesforce", "replay", values, SECRETS))
    try:
        return _run(conn, "account", started_at=CASSETTE_STARTED)
    finally:
        conn.close()


@pytest.mark.skipif(not os.environ.get("FACTORYLINE_RECORD_CASSETTES"),
                    reason="set FACTORYLINE_RECORD_CASSETTES=1 to re-record cassettes/salesforce/")
def test_record_cassette() -> None:
    with start_sandbox(["salesforce"], size=1200, seed=3, in_process=True) as sb:
        st = sb.emulators["salesforce"].settings
        CASSETTE.parent.mkdir(parents=True, exist_ok=True)
        CASSETTE.unlink(missing_ok=True)
        secrets = [st[k] for k in ("session_id", "client_secret", "refresh_token", "password", "security_token")]
        with _vcr("all", secrets).use_cassette(str(CASSETTE)):
            pages = _cassette_run(st["instance_url"], st["session_id"], st["ca_bundle"])
    assert len(_records(pages)) == 240


def test_cassette_holds_no_secret() -> None:
    from connectors.salesforce.emulator import CLIENT_SECRET, REFRESH_TOKEN, SESSION_ID

    text = CASSETTE.read_text()
    assert SESSION_ID not in text and REFRESH_TOKEN not in text and CLIENT_SECRET not in text
    assert "Bearer" not in text and "authorization" not in text.lower()


def test_replay_from_cassette_alone() -> None:
    # nothing listens on port 9: every answer must come from the cassette
    with _vcr("none", []).use_cassette(str(CASSETTE)) as cassette:
        pages = _cassette_run("https://127.0.0.1:9", "replay-token", None)
        assert cassette.all_played
    records = _records(pages)
    assert len(records) == 240 and len({r["Id"] for r in records}) == 240
    assert [len(p.records) for p in pages if p.records] == [200, 40]
    assert all(r["attributes"]["type"] == "Account" and r["Id"].startswith("001") for r in records)
    stamps = [(r["SystemModstamp"], r["Id"]) for r in records]
    assert stamps == sorted(stamps)  # ORDER BY SystemModstamp, Id
    state = pages[-1].state
    assert state is not None
    assert {k: state.pop(k) for k in ("cursor", "full_read_at", "deletes_checked_at")} == dict.fromkeys(
        ("cursor", "full_read_at", "deletes_checked_at"), "2030-01-01T00:00:00Z")
    # the field list and describe time (If-Modified-Since next run), and every object's catalog entry
    # (one composite described all ten objects)
    assert set(state) == {"fields", "described_at", "catalog"}
    assert set(state["catalog"]) == set(S.DEFAULT_OBJECTS)


# ---------------------------------------------------------------------------------------------
# Responses shaped like the real API's (the vendor reference fixtures), replayed with vcrpy
# ---------------------------------------------------------------------------------------------


def _fixture_cassette(path: Path, answers: list[tuple[str, str, Any]]) -> None:
    """A cassette answering (method, path) in order with the given fixture bodies."""
    import yaml

    interactions = [{"request": {"body": None, "headers": {}, "method": method,
                                 "uri": f"https://127.0.0.1:9{where}"},
                     "response": {"body": {"string": json.dumps(body)},
                                  "headers": {"Content-Type": ["application/json;charset=UTF-8"],
                                              "Sforce-Limit-Info": ["api-usage=18/5000"]},
                                  "status": {"code": 200, "message": "OK"}}}
                    for method, where, body in answers]
    path.write_text(yaml.safe_dump({"interactions": interactions, "version": 1}))


def _reference(name: str) -> Any:
    from tests.conftest import VENDOR_REFERENCE

    path = VENDOR_REFERENCE / "salesforce" / name
    if not path.exists():
        pytest.skip(f"vendor reference fixture {path} not found")
    return json.loads(path.read_text())


def test_connector_accepts_the_reference_response_shapes(tmp_path: Path) -> None:
    import vcr

    describe = _reference("sobject_sobject_describe_success_response.json")
    first = _reference("sobject_query_paginated_first_page_response.json")
    last = _reference("sobject_query_paginated_last_page_response.json")
    empty = _reference("sobject_query_empty_response.json")
    deleted = _reference("sobject_get_deleted_success_response.json")
    base = "/services/data/v59.0"
    cassette = tmp_path / "reference.yaml"
    _fixture_cassette(cassette, [
        ("GET", f"{base}/sobjects/Whizbang/describe", describe),
        ("GET", f"{base}/queryAll/", first),
        ("GET", first["nextRecordsUrl"], last),
        # an incremental run: nothing changed, but the deleted endpoint names a purged record
        ("GET", f"{base}/sobjects/Whizbang/describe", describe),
        ("GET", f"{base}/queryAll/", empty),
        ("GET", f"{base}/sobjects/Whizbang/deleted/", deleted),
        ("GET", f"{base}/queryAll/", empty),
    ])
    spec = connector_spec(extra=("Whizbang",))
    conn = SalesforceConnector(ConnectorConfig("salesforce", "ref", {
        "instance_url": "https://127.0.0.1:9", "session_id": "ref-token", "bulk_threshold": 0,
        "reconcile_deletes_hours": 0, "extra_objects": "Whizbang", "composite": "false"}, SECRETS))
    stream = spec.stream("whizbang")
    sent: list[str] = []
    conn.api.session.hooks["response"].append(lambda r, *args, **kwargs: sent.append(r.request.url))
    my = vcr.VCR(record_mode="none", match_on=["method", "path"])
    try:
        with my.use_cassette(str(cassette)) as played:
            full = list(conn.extract(stream, {}, RunContext("a", datetime(2024, 1, 1, tzinfo=UTC))))
            state = full[-1].state
            assert state is not None
            incremental = list(conn.extract(stream, state, RunContext("b", datetime(2024, 1, 2, tzinfo=UTC))))
            assert played.all_played
            soql = next(u for u in sent if "/queryAll/" in u)
    finally:
        conn.close()
    # the first page, then the page behind nextRecordsUrl, records untouched
    assert [r["Text_Label"] for r in _records(full)] == ["First Page", "Last Page"]
    # every describe field is selected but the ones a query cannot return
    names = {f["name"] for f in describe["fields"] if f["type"] not in ("address", "location", "base64")}
    assert all(n in requests.utils.unquote(soql).replace("+", " ") for n in names)
    # a record purged from the recycle bin arrives as a delete with its deletion time
    gone = _records(incremental)
    assert [(r["Id"], r["IsDeleted"], r["SystemModstamp"]) for r in gone] == [
        (d["id"], True, d["deletedDate"]) for d in deleted["deletedRecords"]]
    assert conn.api.usage == (18, 5000)  # read from Sforce-Limit-Info
