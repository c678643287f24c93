"""The HubSpot connector over real HTTP (hubspot-api-client as transport).

Two servers: the sandbox's HubSpot emulator (``sandbox.api.start_sandbox``) when it is available,
and ``FakeHubSpot`` below — a small in-memory HubSpot that speaks the documented wire format and
lets a test shape the data exactly (10,500 records sharing one timestamp, a 414 on long URLs,
scripted 429/401 answers) and count requests server-side. The connector is driven only through
its public API (spec factory, ``extract``); nothing of it is patched.
"""

from __future__ import annotations

import os
import random
import re
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from connectors.hubspot import connector_spec
from connectors.hubspot.helpers import HubSpotConnector
from core.connector import ConnectorConfig, Page, RunContext
from core.errors import TerminalVendorError
from core.http import RetryPolicy
from tests.conftest import scrubbing_vcr

TOKEN = "pat-na1-test-0000-1111-2222-333344445555"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CASSETTE = Path(__file__).resolve().parents[1] / "cassettes" / "hubspot" / "small_full_run.yaml"
STANDARD = ["email", "firstname", "lastname", "lifecyclestage", "createdate", "lastmodifieddate", "hs_object_id"]
CUSTOM = ["favourite_colour", "acme_tier"]


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


# ---------------------------------------------------------------------------------------------
# A small in-memory HubSpot
# ---------------------------------------------------------------------------------------------


class FakeHubSpot:
    """contacts/companies/deals with properties, archive flags and v4 associations, over HTTP."""

    def __init__(self, n_contacts: int = 250, n_companies: int = 20, n_deals: int = 30, *,
                 extra_properties: int = 0, max_target: int = 16_000) -> None:
        self.objects: dict[str, dict[int, dict[str, Any]]] = {"contacts": {}, "companies": {}, "deals": {}}
        self.props: dict[str, list[str]] = {
            "contacts": STANDARD + CUSTOM + [f"custom_long_property_name_{i:04d}" for i in range(extra_properties)],
            "companies": ["name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"],
            "deals": ["dealname", "amount", "createdate", "hs_lastmodifieddate", "hs_object_id"],
        }
        self.assoc: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {}
        self.max_target = max_target
        self.hits: Counter[str] = Counter()
        self.scripted: list[tuple[str, int, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        for i in range(1, n_companies + 1):
            self.put("companies", 1000 + i, {"name": f"Co {i}", "domain": f"co{i}.example"}, T0)
        for i in range(1, n_contacts + 1):
            self.put("contacts", i, {"email": f"p{i}@example.com", "firstname": f"F{i}", "lastname": "L",
                                     "lifecyclestage": "lead", "favourite_colour": "teal", "acme_tier": str(i % 3)}, T0)
            if n_companies:
                co = 1000 + 1 + i % n_companies
                types = [{"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"}]
                self.assoc.setdefault(("contacts", "companies"), {})[i] = [{"toObjectId": co, "associationTypes": types}]
        for i in range(1, n_deals + 1):
            self.put("deals", 5000 + i, {"dealname": f"D{i}", "amount": "100"}, T0)
            self.assoc.setdefault(("deals", "contacts"), {})[5000 + i] = [
                {"toObjectId": i, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}]}]

    # -- world edits --------------------------------------------------------------------------

    def put(self, obj: str, rid: int, props: dict[str, Any], at: datetime) -> None:
        cur = self.objects[obj].get(rid)
        base = dict(cur["properties"]) if cur else {p: None for p in self.props[obj]}
        base.update(props)
        stamp = "lastmodifieddate" if obj == "contacts" else "hs_lastmodifieddate"
        base[stamp] = _iso(at)
        base["hs_object_id"] = str(rid)
        base.setdefault("createdate", _iso(at))
        if base["createdate"] is None:
            base["createdate"] = _iso(at)
        self.objects[obj][rid] = {"id": str(rid), "properties": base, "createdAt": base["createdate"],
                                  "updatedAt": _iso(at), "archived": False}

    def archive(self, obj: str, rid: int, at: datetime) -> None:
        rec = self.objects[obj][rid]
        rec.update(archived=True, archivedAt=_iso(at), updatedAt=_iso(at))

    def modified(self, obj: str, rid: int) -> int:
        rec = self.objects[obj][rid]
        return _ms(datetime.fromisoformat(rec["updatedAt"]))

    # -- HTTP ---------------------------------------------------------------------------------

    def shape(self, rec: dict[str, Any], props: list[str] | None) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if k != "properties"}
        names = props if props is not None else ["createdate", "hs_object_id", "lastmodifieddate"]
        out["properties"] = {p: rec["properties"].get(p) for p in names if p in rec["properties"]}
        return out

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], Any]:
        url = urlsplit(target)
        path, qs = url.path, parse_qs(url.query)
        template = re.sub(r"/(contacts|companies|deals)(?=/|$)", "/{type}", path)
        with self.lock:
            self.hits[f"{method} {template}"] += 1
            for i, (prefix, status, hdrs, data) in enumerate(self.scripted):
                if f"{method} {path}".startswith(prefix):
                    del self.scripted[i]
                    return status, hdrs, data
        if headers.get("authorization") != f"Bearer {TOKEN}":
            given = headers.get("authorization", "")
            return 401, {}, {"status": "error", "message": f"Authentication credentials not found: {given}",
                             "category": "INVALID_AUTHENTICATION", "correlationId": "c-1"}
        if len(target) > self.max_target:
            return 414, {}, b"URI Too Long"
        rl = {"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Remaining": "180",
              "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
        parts = path.strip("/").split("/")
        req = orjson.loads(body) if body else {}
        if parts[:3] == ["crm", "v3", "properties"]:
            return 200, rl, {"results": [{"name": p, "label": p, "type": "string"} for p in self.props[parts[3]]]}
        if parts[:3] == ["crm", "v3", "objects"] and len(parts) == 4 and method == "GET":
            obj = parts[3]
            archived = qs.get("archived", ["false"])[0] == "true"
            limit = min(int(qs.get("limit", ["10"])[0]), 100)
            after = int(qs.get("after", ["0"])[0])
            props = [p for v in qs.get("properties", []) for p in v.split(",")] or None
            rows = [r for _, r in sorted(self.objects[obj].items()) if r["archived"] == archived]
            chunk = rows[after:after + limit]
            out: dict[str, Any] = {"results": [self.shape(r, props) for r in chunk]}
            if after + limit < len(rows):
                out["paging"] = {"next": {"after": str(after + limit), "link": "..."}}
            return 200, rl, out
        if parts[:3] == ["crm", "v3", "objects"] and parts[4:] == ["batch", "read"]:
            obj = parts[3]
            archived = qs.get("archived", ["false"])[0] == "true"
            results = [self.shape(self.objects[obj][int(x["id"])], req["properties"]) for x in req["inputs"]
                       if int(x["id"]) in self.objects[obj] and self.objects[obj][int(x["id"])]["archived"] == archived]
            return 200, rl, {"status": "COMPLETE", "results": results, "startedAt": _iso(T0), "completedAt": _iso(T0)}
        if parts[:3] == ["crm", "v3", "objects"] and parts[4:] == ["search"]:
            return self.search(parts[3], req)
        if parts[:3] == ["crm", "v4", "associations"] and parts[5:] == ["batch", "read"]:
            table = self.assoc.get((parts[3], parts[4]), {})
            results = [{"from": {"id": x["id"]}, "to": table[int(x["id"])]} for x in req["inputs"]
                       if int(x["id"]) in table]
            return (207 if len(results) < len(req["inputs"]) else 200), rl, {"status": "COMPLETE", "results": results}
        return 404, {}, {"status": "error", "message": f"no route {method} {path}"}

    def search(self, obj: str, req: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        after = int(req.get("after") or 0)
        limit = min(int(req.get("limit", 10)), 200)
        if after + limit > 10_000:
            return 400, {}, {"status": "error", "category": "VALIDATION_ERROR",
                             "message": "paging past 10000 results is not allowed"}
        flt = req["filterGroups"][0]["filters"]
        stamp = "lastmodifieddate" if obj == "contacts" else "hs_lastmodifieddate"

        def ok(rid: int, rec: dict[str, Any]) -> bool:
            if rec["archived"]:
                return False
            for f in flt:
                v = rid if f["propertyName"] == "hs_object_id" else self.modified(obj, rid)
                assert f["propertyName"] in ("hs_object_id", stamp), f
                want = int(f["value"])
                if not {"GTE": v >= want, "LTE": v <= want, "GT": v > want}[f["operator"]]:
                    return False
            return True

        rows = [r for rid, r in sorted(self.objects[obj].items()) if ok(rid, r)]
        chunk = rows[after:after + limit]
        out: dict[str, Any] = {"total": len(rows), "results": [self.shape(r, req["properties"]) for r in chunk]}
        if after + limit < len(rows):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return 200, {}, out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeHubSpot

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        status, headers, out = self.fake.handle(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                                body)
        data = out if isinstance(out, bytes) else orjson.dumps(out)
        if status in (0, -1):  # scripted faults: 0 = drop the connection, -1 = cut the body short
            if status == -1:
                self.send_response(200)
                self.send_header("Content-Length", str(len(data) + 100))
                self.end_headers()
                self.wfile.write(data[:10])
                self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _serve
    do_POST = _serve


class Served:
    def __init__(self, fake: FakeHubSpot) -> None:
        self.fake = fake
        handler = type("H", (_Handler,), {"fake": fake})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake() -> Iterator[Served]:
    served = Served(FakeHubSpot())
    try:
        yield served
    finally:
        served.close()


def _connector(base_url: str, *, token: str = TOKEN, waits: list[float] | None = None,
               **values: Any) -> HubSpotConnector:
    cfg = ConnectorConfig("hubspot", "test", {"access_token": token, "base_url": base_url,
                                              "search_requests_per_second": 0, **values},
                          frozenset({"access_token"}))
    policy = RetryPolicy(sleep=(waits.append if waits is not None else (lambda s: None)), rng=random.Random(1))
    return HubSpotConnector(cfg, policy=policy)


def _run(conn: HubSpotConnector, stream: str, state: dict[str, Any] | None = None, *,
         started_at: datetime, full_refresh: bool = False) -> list[Page]:
    spec = connector_spec().stream(stream)
    ctx = RunContext(run_id="r1", started_at=started_at, full_refresh=full_refresh)
    return list(conn.extract(spec, state or {}, ctx))


def _records(pages: list[Page]) -> list[dict[str, Any]]:
    return [r for p in pages for r in p.records]


# ---------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------


def test_plugin_registers_connector_and_transform() -> None:
    from core.plugins import build_registry, get_plugin_manager

    reg = build_registry(get_plugin_manager())
    spec = reg.connector("hubspot")
    assert [s.name for s in spec.streams] == ["contacts", "companies", "deals", "line_items", "calls", "emails",
                                              "meetings", "notes", "tasks", "owners", "deal_pipelines",
                                              "email_events", "form_submissions", "marketing_emails"]
    contacts = spec.stream("contacts")
    assert contacts.incremental and contacts.primary_key == "id" and contacts.cursor_field == "updatedAt"
    assert contacts.side_tables[0].name == "associations"
    assert spec.mappings_dir is not None and (spec.mappings_dir / "deals.yaml").is_file()
    assert "hubspot_primary_association" in reg.transforms
    secret = next(s for s in spec.settings if s.name == "access_token")
    assert secret.secret and secret.required


# ---------------------------------------------------------------------------------------------
# Against FakeHubSpot
# ---------------------------------------------------------------------------------------------


def test_full_run_all_properties_associations_and_state(fake: Served) -> None:
    started = T0 + timedelta(days=1)
    fake.fake.archive("contacts", 7, T0 + timedelta(hours=1))
    pages = _run(_connector(fake.url), "contacts", started_at=started)
    recs = _records(pages)
    live = [r for r in recs if not r["archived"]]
    assert len(live) == 249 and len({r["id"] for r in live}) == 249
    assert set(live[0]["properties"]) == set(STANDARD + CUSTOM)  # custom properties discovered
    assert live[0]["associations"]["companies"][0]["associationTypes"][0]["label"] == "Primary"
    edges = [e for p in pages for e in p.side_records["associations"]]
    assert len(edges) == 249 and edges[0]["from_type"] == "contacts" and edges[0]["to_type"] == "companies"
    archived = [r for r in recs if r["archived"]]
    assert [r["id"] for r in archived] == ["7"] and archived[0]["archivedAt"] == _iso(T0 + timedelta(hours=1))
    # only the last page carries the new cursor; the others carry the previous (empty) state
    # a first run reads every record's associations: the refresh clock starts with it
    assert pages[-1].state == {"cursor": "2026-01-02T00:00:00Z", "associations_refreshed_at": "2026-01-02T00:00:00Z"}
    assert all(p.state == {} for p in pages[:-1])
    assert sum(p.requests for p in pages) == sum(fake.fake.hits.values())


def test_incremental_fetches_only_changed_records(fake: Served) -> None:
    conn = _connector(fake.url)
    first = _run(conn, "contacts", started_at=T0 + timedelta(days=1))
    state = first[-1].state
    assert state is not None
    for rid in (3, 30, 130):
        fake.fake.put("contacts", rid, {"firstname": "Changed"}, T0 + timedelta(days=1, hours=2))
    fake.fake.put("contacts", 31, {"firstname": "TooLate"}, T0 + timedelta(days=3))  # after started_at
    fake.fake.archive("contacts", 40, T0 + timedelta(days=1, hours=3))
    fake.fake.hits.clear()
    pages = _run(conn, "contacts", state, started_at=T0 + timedelta(days=2))
    recs = _records(pages)
    assert sorted(r["id"] for r in recs if not r["archived"]) == ["130", "3", "30"]
    assert all(r["properties"]["firstname"] == "Changed" for r in recs if not r["archived"])
    assert [r["id"] for r in recs if r["archived"]] == ["40"]
    assert fake.fake.hits["POST /crm/v3/objects/{type}/search"] == 1
    assert fake.fake.hits["GET /crm/v3/objects/{type}"] == 1  # the archived list only
    assert pages[-1].state == {**state, "cursor": "2026-01-03T00:00:00Z"}
    assert len(pages) == 2 and pages[0].state == state  # search page, then the archived page


def test_more_than_10000_changes_at_one_timestamp_are_all_fetched() -> None:
    served = Served(FakeHubSpot(n_contacts=10_450, n_companies=0, n_deals=0))
    try:
        # every contact changed at the same millisecond: one query cannot page past 10,000
        stamp = T0 + timedelta(days=1, hours=1)
        for rid in list(served.fake.objects["contacts"]):
            served.fake.put("contacts", rid, {}, stamp)
        pages = _run(_connector(served.url), "contacts", {"cursor": "2026-01-02T00:00:00Z"},
                     started_at=T0 + timedelta(days=2))
        ids = [r["id"] for r in _records(pages)]
        assert len(ids) == 10_450 and len(set(ids)) == 10_450
        # 50 pages in the first window (10,000), then a second query with hs_object_id > 10000
        assert served.fake.hits["POST /crm/v3/objects/{type}/search"] == 50 + 3
    finally:
        served.close()


def test_long_property_list_switches_to_batch_read() -> None:
    served = Served(FakeHubSpot(n_contacts=150, extra_properties=400, max_target=8_000))
    try:
        conn = _connector(served.url, properties_url_budget=6_000)
        recs = _records(_run(conn, "contacts", started_at=T0 + timedelta(days=1)))
        assert len(recs) == 150
        assert len(recs[0]["properties"]) == len(STANDARD) + len(CUSTOM) + 400
        assert served.fake.hits["POST /crm/v3/objects/{type}/batch/read"] == 2
        # with the budget above the URL limit the server refuses the URL: 414 is terminal
        with pytest.raises(TerminalVendorError) as ei:
            _run(_connector(served.url, properties_url_budget=100_000), "contacts", started_at=T0)
        assert ei.value.status == 414
    finally:
        served.close()


def test_429_with_retry_after_is_retried_and_run_succeeds(fake: Served) -> None:
    body = orjson.dumps({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                         "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"})
    fake.fake.scripted = [("GET /crm/v3/objects/contacts", 429, {"Retry-After": "3"}, body),
                          ("POST /crm/v4/associations", 503, {}, b"{}")]
    waits: list[float] = []
    recs = _records(_run(_connector(fake.url, waits=waits), "contacts", started_at=T0 + timedelta(days=1)))
    assert len(recs) == 250
    assert waits[0] == 3.0 and len(waits) == 2
    # 3 pages of live records + 1 (empty) archived page + the retried one
    assert fake.fake.hits["GET /crm/v3/objects/{type}"] == 3 + 1 + 1


def test_dropped_connection_and_truncated_body_are_retried(fake: Served) -> None:
    fake.fake.scripted = [("GET /crm/v3/objects/contacts", 0, {}, b""),
                          ("POST /crm/v4/associations", -1, {}, b'{"status":"COMPLETE","results":[]}')]
    waits: list[float] = []
    recs = _records(_run(_connector(fake.url, waits=waits), "contacts", started_at=T0 + timedelta(days=1)))
    assert len(recs) == 250 and all(r["associations"]["companies"] for r in recs)
    assert len(waits) == 2
    assert fake.fake.hits["GET /crm/v3/objects/{type}"] == 3 + 1 + 1
    # one v4 call for the page of 250 records, plus the retried one
    assert fake.fake.hits["POST /crm/v4/associations/{type}/{type}/batch/read"] == 1 + 1


def test_401_is_terminal_and_no_token_leaks(fake: Served, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "pat-na1-wrong-9999-8888-7777-666655554444"
    caplog.set_level("DEBUG")
    with pytest.raises(TerminalVendorError) as ei:
        _run(_connector(fake.url, token=wrong), "contacts", started_at=T0)
    assert ei.value.status == 401
    assert sum(fake.fake.hits.values()) == 1  # not retried
    assert "access_token" in str(ei.value)  # tells the user what to fix
    for text in (str(ei.value), repr(ei.value.args), repr(ei.value.context), str(ei.value.__cause__),
                 *(r.getMessage() for r in caplog.records)):
        assert wrong not in text


# ---------------------------------------------------------------------------------------------
# Against the sandbox's HubSpot emulator
# ---------------------------------------------------------------------------------------------

SANDBOX_SIZE = 2000


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Any]:
    api = pytest.importorskip("sandbox.api")
    with api.start_sandbox(["hubspot"], size=SANDBOX_SIZE, in_process=True) as sb:
        yield sb


def _sandbox_connector(sb: Any, waits: list[float] | None = None, **values: Any) -> HubSpotConnector:
    hs = sb.emulators["hubspot"]
    return _connector(hs.base_url, token=hs.settings["access_token"], waits=waits, **values)


def _now() -> datetime:
    return datetime.now(UTC)


def test_sandbox_full_then_incremental(sandbox: Any) -> None:
    import httpx

    hs = sandbox.emulators["hubspot"]
    conn = _sandbox_connector(sandbox)
    sandbox.reset_stats("hubspot")
    full = _run(conn, "contacts", started_at=_now())
    recs = _records(full)
    live = [r for r in recs if not r["archived"]]
    assert len({r["id"] for r in recs}) == len(recs)
    served = sandbox.stats("hubspot")["routes"]["GET /crm/v3/objects/{type}"]["records"]
    assert len(recs) == served and len(live) + sum(r["archived"] for r in recs) == served
    # every property the portal defines, custom ones included, is on every record
    props = httpx.get(f"{hs.base_url}/crm/v3/properties/contacts",
                      headers={"Authorization": f"Bearer {hs.settings['access_token']}"}).json()["results"]
    names = {p["name"] for p in props}
    assert any(not p.get("hubspotDefined", True) for p in props), "the emulator defines custom properties"
    assert all(set(r["properties"]) == names for r in live)
    assert all("companies" in r["associations"] for r in live)
    with_company = [r for r in live if r["associations"]["companies"]]
    assert with_company and len(with_company) >= len(live) // 2
    edges = [e for p in full for e in p.side_records["associations"]]
    assert len(edges) == sum(len(i["associationTypes"]) for r in live for i in r["associations"]["companies"])
    state = full[-1].state
    assert state is not None and all(p.state == {} for p in full[:-1])

    # second run after the world moved on: only the changed records, through search
    sandbox.advance(1)
    sandbox.reset_stats("hubspot")
    second_start = _now()
    inc = _run(conn, "contacts", state, started_at=second_start)
    got = _records(inc)
    stats = sandbox.stats("hubspot")["routes"]
    assert 0 < len(got) < len(recs) // 10
    assert stats["POST /crm/v3/objects/{type}/search"]["records"] == len([r for r in got if not r["archived"]])
    assert stats["GET /crm/v3/objects/{type}"]["records"] >= len([r for r in got if r["archived"]])
    # the same set a full re-read finds in the window (cursor - lookback, started_at]
    lower = datetime.fromisoformat(state["cursor"]) - timedelta(seconds=300)
    again = _records(_run(conn, "contacts", started_at=_now(), full_refresh=True))
    expected = {r["id"] for r in again if not r["archived"]
                and lower <= datetime.fromisoformat(r["updatedAt"]) <= second_start}
    assert {r["id"] for r in got if not r["archived"]} == expected
    assert all(r["archived"] is True and r["archivedAt"] for r in got if r["archived"])
    assert inc[-1].state == {**state, "cursor": second_start.isoformat().replace("+00:00", "Z")}


def test_sandbox_deals_have_contact_and_company_associations(sandbox: Any) -> None:
    pages = _run(_sandbox_connector(sandbox), "deals", started_at=_now())
    live = [r for r in _records(pages) if not r["archived"]]
    assert live and all(set(r["associations"]) == {"contacts", "companies"} for r in live)
    assert all(r["associations"]["contacts"] for r in live)
    types = {e["to_type"] for p in pages for e in p.side_records["associations"]}
    assert types == {"contacts", "companies"}


def test_sandbox_properties_budget_switches_to_batch_read(sandbox: Any) -> None:
    sandbox.reset_stats("hubspot")
    recs = _records(_run(_sandbox_connector(sandbox, properties_url_budget=200), "companies", started_at=_now()))
    routes = sandbox.stats("hubspot")["routes"]
    assert routes["POST /crm/v3/objects/{type}/batch/read"]["records"] == len([r for r in recs if not r["archived"]])
    assert all(len(r["properties"]) > 3 for r in recs if not r["archived"])


def test_sandbox_429_retry_after_then_success(sandbox: Any) -> None:
    from sandbox.faults import FaultRule

    sandbox.set_faults("hubspot", [FaultRule(kind="rate_limit", route="/crm/v3/objects/contacts", at=2,
                                             retry_after=2.0)])
    try:
        waits: list[float] = []
        sandbox.reset_stats("hubspot")
        recs = _records(_run(_sandbox_connector(sandbox, waits=waits), "contacts", started_at=_now()))
        statuses = sandbox.stats("hubspot")["routes"]["GET /crm/v3/objects/{type}"]["statuses"]
    finally:
        sandbox.set_faults("hubspot", [])
    assert statuses.get("429") == 1
    assert waits == [2.0]
    assert len({r["id"] for r in recs}) == len(recs) >= SANDBOX_SIZE * 0.9


#: the emulator's rolling window for the pacing test: 8 requests per 500 ms instead of 190 per 10 s,
#: so a run spans several windows in a few seconds (unpaced, the same run meets a 429 in each)
PACED_WINDOW = (8, 500)


def test_sandbox_pacing_under_enforced_limits_avoids_429s(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the emulator refusing past its rolling window, a run that needs several windows
    completes, fetches every record and meets (almost) no 429: the budget takes the window from
    the headers of the first answer and mirrors it. Counted by the emulator, not timed."""
    api = pytest.importorskip("sandbox.api")
    from connectors.hubspot.emulator import RATE_LIMIT_ENV

    monkeypatch.setenv(RATE_LIMIT_ENV, f"{PACED_WINDOW[0]}/{PACED_WINDOW[1]}")
    with api.start_sandbox(["hubspot"], size=300, seed=3, rate_limits=True, in_process=True) as sb:
        hs = sb.emulators["hubspot"]
        cfg = ConnectorConfig("hubspot", "test", {"access_token": hs.settings["access_token"],
                                                  "base_url": hs.base_url, "page_size": 10,
                                                  "association_batch": 100}, frozenset({"access_token"}))
        conn = HubSpotConnector(cfg)  # the default budget and retry policy, real sleeps
        try:
            recs = _records(_run(conn, "contacts", started_at=_now()))
        finally:
            conn.close()
        stats = sb.stats("hubspot")
    served = stats["routes"]["GET /crm/v3/objects/{type}"]
    refused = sum(r["statuses"].get("429", 0) for r in stats["routes"].values())
    assert stats["requests"] - refused > 3 * PACED_WINDOW[0]  # the run needed several windows
    assert refused <= 2  # unpaced: one per window
    assert conn.api.budget.limit == PACED_WINDOW[0] and conn.api.budget.waited > 0  # paced to the headers
    ids = {r["id"] for r in recs}
    assert len(ids) == len(recs) == served["records"] >= 270


def test_sandbox_transport_faults_and_malformed_records(sandbox: Any) -> None:
    """Dropped connection, truncated JSON and 503 are retried; a record without id is passed on."""
    from sandbox.faults import FaultRule

    sandbox.set_faults("hubspot", [
        FaultRule(kind="drop", route="GET /crm/v3/objects/{type}", at=2),
        FaultRule(kind="truncate", route="GET /crm/v3/objects/{type}", at=4),
        FaultRule(kind="server_error", route="POST /crm/v4/associations/{from}/{to}/batch/read", at=1),
        FaultRule(kind="missing_id", route="GET /crm/v3/objects/{type}", at=6),
    ])
    try:
        waits: list[float] = []
        recs = _records(_run(_sandbox_connector(sandbox, waits=waits), "contacts", started_at=_now()))
    finally:
        sandbox.set_faults("hubspot", [])
    assert len(waits) == 3
    assert len(recs) >= SANDBOX_SIZE * 0.9
    no_id = [r for r in recs if "id" not in r]
    assert len(no_id) == 1 and no_id[0]["associations"] == {"companies": []}  # the mapping rejects it


def test_sandbox_wrong_token_is_terminal_without_the_token(sandbox: Any) -> None:
    wrong = "pat-na1-not-the-sandbox-token-424242"
    conn = _connector(sandbox.emulators["hubspot"].base_url, token=wrong)
    with pytest.raises(TerminalVendorError) as ei:
        _run(conn, "contacts", started_at=_now())
    assert ei.value.status == 401
    assert wrong not in str(ei.value) and wrong not in str(ei.value.__cause__)


# ---------------------------------------------------------------------------------------------
# Cassette: record once (FACTORYLINE_RECORD_CASSETTES=1), replay from the file alone
# ---------------------------------------------------------------------------------------------

CASSETTE_CONTACTS = 30
CASSETTE_TOKEN = "sandbox-hubspot-pat-na1-0000"  # the emulator's token, scrubbed all the same


def _vcr(record_mode: str) -> Any:
    return scrubbing_vcr(record_mode, [TOKEN, CASSETTE_TOKEN], match_on=("method", "path", "query", "body"),
                         filter_query_parameters=("access_token", "hapikey"))


def _cassette_run(base_url: str, token: str) -> list[Page]:
    conn = _connector(base_url, token=token, page_size=10, association_batch=10)
    return _run(conn, "contacts", started_at=_now())


@pytest.mark.skipif(not os.environ.get("FACTORYLINE_RECORD_CASSETTES"),
                    reason="set FACTORYLINE_RECORD_CASSETTES=1 to re-record cassettes/hubspot/")
def test_record_cassette() -> None:
    """Record a small full run against the sandbox emulator into cassettes/hubspot/."""
    from sandbox.api import start_sandbox

    with start_sandbox(["hubspot"], size=CASSETTE_CONTACTS, in_process=True) as sb:
        hs = sb.emulators["hubspot"]
        CASSETTE.parent.mkdir(parents=True, exist_ok=True)
        if CASSETTE.exists():
            CASSETTE.unlink()
        with _vcr("all").use_cassette(str(CASSETTE)):
            pages = _cassette_run(hs.base_url, hs.settings["access_token"])
    assert len(_records(pages)) == CASSETTE_CONTACTS


def test_cassette_holds_no_secret() -> None:
    text = CASSETTE.read_text()
    assert TOKEN not in text and CASSETTE_TOKEN not in text
    assert "Bearer" not in text and "authorization" not in text.lower()


def test_replay_from_cassette_alone() -> None:
    # nothing listens on port 9: every answer must come from the cassette
    with _vcr("none").use_cassette(str(CASSETTE)) as cassette:
        pages = _cassette_run("http://127.0.0.1:9", "any-token-replay-ignores-it")
        assert cassette.all_played
    recs = _records(pages)
    assert len(recs) == CASSETTE_CONTACTS
    assert sorted(int(r["id"]) for r in recs) == list(range(1000, 1000 + CASSETTE_CONTACTS))
    assert len(pages) == 3 and all(len(p.records) == 10 for p in pages)
    assert all("companies" in r["associations"] for r in recs)
    assert pages[-1].state is not None and "cursor" in pages[-1].state
