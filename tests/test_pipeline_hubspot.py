"""HubSpot CRM end to end: sandbox emulator -> connector -> mappings -> dlt -> DuckDB.

The expected figures come from the emulator itself, read through the real hubspot-api-client,
never from the code under test.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from pipelines.destination import Target
from pipelines.run import GC_THRESHOLD, run
from sandbox.api import Sandbox, start_sandbox
from tests.conftest import cli

OBJECTS = {"contacts": "person", "companies": "account", "deals": "opportunity"}
#: what the kill/restart test runs: CRM objects, an engagement and the incremental marketing stream
PROVENANCE = ("source_system", "source_instance", "source_object", "source_record_id", "source_updated_at",
              "is_deleted", "extracted_at", "run_id", "mapping_version", "raw_table", "raw_key", "_dlt_load_id")


def _vendor_ids(sb: Sandbox, obj: str, archived: bool = False) -> dict[str, str]:
    """id -> updatedAt of every record the emulator holds, read with the real SDK."""
    from hubspot import HubSpot

    hs = sb.emulators["hubspot"]
    client = HubSpot(access_token=hs.settings["access_token"], host=hs.base_url)
    api = getattr(client.crm, obj).basic_api
    out: dict[str, str] = {}
    after = None
    while True:
        resp = api.get_page(limit=100, after=after, archived=archived, _preload_content=False)
        body = orjson.loads(resp.data)
        out.update({r["id"]: r["updatedAt"] for r in body["results"]})
        after = (body.get("paging") or {}).get("next", {}).get("after")
        if not after:
            return out


def _db(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


@pytest.fixture()
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with start_sandbox(["hubspot"], size=400, seed=3, state_dir=tmp_path / "world") as sb:
        yield sb


def _run(sb: Sandbox, db: Path, **kw: Any) -> Any:
    kw.setdefault("streams", list(OBJECTS))  # the other streams have their own tests below
    return run(["hubspot"], target=Target(db_path=db), overrides={"hubspot": sb.emulators["hubspot"].settings}, **kw)


def test_full_run_loads_every_vendor_record_with_provenance(sandbox: Sandbox, tmp_path: Path) -> None:
    db = tmp_path / "fl.duckdb"
    # the run collects cycles less often (pipelines.run._collector_tuned) and gives the thresholds back
    thresholds: set[int] = set()
    before = gc.get_threshold()

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            thresholds.add(gc.get_threshold()[0])
    gc.callbacks.append(watch)
    try:
        status = _run(sandbox, db)
    finally:
        gc.callbacks.remove(watch)
    assert max(thresholds) == GC_THRESHOLD > before[0]
    assert gc.get_threshold() == before
    assert status.status == "success", status.as_dict()
    con = _db(db)
    for obj, entity in OBJECTS.items():
        live, archived = _vendor_ids(sandbox, obj), _vendor_ids(sandbox, obj, archived=True)
        rows = dict(con.sql(f"SELECT source_record_id, is_deleted FROM factory.{entity}").fetchall())
        record_rejects = con.sql(f"SELECT count(*) FROM factory.rejects WHERE severity = 'record' "
                                 f"AND source_object = '{obj}'").fetchall()[0]
        assert record_rejects == (0,)
        assert set(rows) == set(live) | set(archived), obj
        assert {k for k, deleted in rows.items() if deleted} == set(archived), obj
        nulls = " OR ".join(f"{c} IS NULL" for c in PROVENANCE)
        assert con.sql(f"SELECT count(*) FROM factory.{entity} WHERE {nulls}").fetchall()[0] == (0,), entity
        raw = con.sql(f"SELECT count(*) FROM factory.hubspot__{obj}").fetchall()[0]
        assert raw == (len(rows),)
    # person.account_id points at a loaded account (the v4 association, primary label)
    dangling = con.sql("SELECT count(*) FROM factory.person p WHERE p.account_id IS NOT NULL AND NOT EXISTS "
                       "(SELECT 1 FROM factory.account a WHERE a.id = p.account_id)").fetchall()[0]
    linked = con.sql("SELECT count(*) FROM factory.person WHERE account_id IS NOT NULL").fetchall()[0]
    assert dangling == (0,) and linked is not None and linked[0] > 0
    edges = con.sql("SELECT count(*) FROM factory.hubspot__associations").fetchall()[0]
    assert edges is not None and edges[0] > 0
    # the JSON text columns are stored with ZSTD (cheaper to load, smaller), the others as DuckDB picks
    storage = dict(con.sql("SELECT column_name, list(DISTINCT compression) FROM pragma_storage_info('factory.person') "
                           "WHERE compression <> 'Constant' GROUP BY ALL").fetchall())
    assert storage["extras"] == ["ZSTD"]
    assert "ZSTD" not in storage["email"]
    raw_storage = con.sql("SELECT DISTINCT compression FROM pragma_storage_info('factory.hubspot__contacts') "
                          "WHERE column_name = 'payload' AND compression <> 'Constant'").fetchall()
    assert raw_storage == [("ZSTD",)]


def test_second_run_fetches_only_changes_and_never_duplicates(sandbox: Sandbox, tmp_path: Path) -> None:
    db = tmp_path / "fl.duckdb"
    assert _run(sandbox, db).status == "success"
    before = {e: _db(db).sql(f"SELECT count(*) FROM factory.{e}").fetchall()[0] for e in OBJECTS.values()}
    old = _vendor_ids(sandbox, "contacts")
    time.sleep(0.01)
    sandbox.advance(1)
    new = _vendor_ids(sandbox, "contacts")
    changed = {i for i, ts in new.items() if old.get(i) != ts}
    newly_archived = set(_vendor_ids(sandbox, "contacts", archived=True))
    assert changed, "the sandbox tick changed nothing"

    second = _run(sandbox, db)
    assert second.status == "success", second.as_dict()
    contacts = next(s for s in second.streams if s.stream == "contacts")
    # only what changed was fetched: updates through search, archivals through the archived listing
    assert contacts.records == len(changed) + len(newly_archived)
    con = _db(db)
    after = {e: con.sql(f"SELECT count(*) FROM factory.{e}").fetchall()[0] for e in OBJECTS.values()}
    assert after == before
    updated = {r[0] for r in con.sql("SELECT source_record_id FROM factory.person WHERE run_id = ?",
                                     params=[second.run_id]).fetchall()}
    assert changed <= updated


def test_trace_prints_raw_record_load_and_run(sandbox: Sandbox, tmp_path: Path) -> None:
    db = tmp_path / "fl.duckdb"
    status = _run(sandbox, db)
    con = _db(db)
    rid, key = con.sql("SELECT source_record_id, id FROM factory.person "
                       "WHERE email IS NOT NULL ORDER BY source_record_id LIMIT 1").fetchall()[0]
    con.close()
    for lookup in (rid, key):
        shown = cli("trace", "person", lookup, "--db", str(db), cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "raw vendor record" in shown.stdout and '"properties"' in shown.stdout
        assert any(lid in shown.stdout for lid in status.load_ids["hubspot"]) and status.run_id in shown.stdout
        assert "hubspot/contacts.yaml" in shown.stdout
    missing = cli("trace", "person", "no-such-id", "--db", str(db), cwd=tmp_path)
    assert missing.returncode == 1 and "no person row" in missing.stderr


def test_demo_twice_with_every_default(tmp_path: Path) -> None:
    """As a new user runs it: `factoryline demo` in an empty folder, twice."""
    first = cli("demo", "--size", "300", cwd=tmp_path)
    assert first.returncode == 0, first.stderr + first.stdout
    db = tmp_path / "factoryline.duckdb"
    counts = [_db(db).sql(f"SELECT count(*) FROM factory.{e} WHERE source_system = 'hubspot'").fetchall()[0][0]
              for e in OBJECTS.values()]
    assert all(counts), counts
    _assert_every_vendor_in_one_vocabulary(db)
    second = cli("demo", "--size", "300", cwd=tmp_path)
    assert second.returncode == 0, second.stderr + second.stdout
    con = _db(db)
    # the demo loads every vendor: other vendors' worlds may grow, HubSpot's does not
    assert [con.sql(f"SELECT count(*) FROM factory.{e} WHERE source_system = 'hubspot'").fetchall()[0][0]
            for e in OBJECTS.values()] == counts
    fetched = dict(con.sql("SELECT stream, records FROM factory.run_streams WHERE run_id = "
                           "(SELECT max(run_id) FROM factory.runs)").fetchall())
    # the world moved one tick: ~1% changed and ~0.1% archived, nothing else was fetched again
    for obj, count in zip(OBJECTS, counts, strict=True):
        assert fetched[obj] <= 0.02 * count + 2, (obj, fetched, counts)
    assert fetched["contacts"] > 0, fetched
    assert "Tables now in" in second.stdout and "person" in second.stdout


def _assert_every_vendor_in_one_vocabulary(db: Path) -> None:
    """The demo's touch table holds every activity vendor's touches in one vocabulary; the order
    table holds Shopify's orders and their lines; touches known only by address earn credit."""
    from core.vocabulary import CHANNELS, TOUCH_TYPES

    con = _db(db)
    try:
        def values(sql: str) -> set[Any]:
            return {r[0] for r in con.sql(sql).fetchall()}

        assert {"hubspot", "marketo", "mailchimp", "x", "salesforce"} <= values(
            "SELECT DISTINCT source_system FROM factory.touch")
        assert values("SELECT DISTINCT touch_type FROM factory.touch") <= set(TOUCH_TYPES)
        assert values("SELECT DISTINCT channel FROM factory.touch") <= set(CHANNELS)
        # the same click is a click from every email vendor
        assert {"hubspot", "marketo", "mailchimp"} <= values(
            "SELECT DISTINCT source_system FROM factory.touch WHERE touch_type = 'click'")
        assert values('SELECT DISTINCT source_system FROM factory."order"') == {"shopify"}
        lines, orphans = con.sql('SELECT count(*), count(*) FILTER (WHERE o.id IS NULL) FROM factory.order_line l '
                                 'LEFT JOIN factory."order" o ON o.id = l.order_id').fetchall()[0]
        assert lines > 0 and orphans == 0
        # HubSpot names no contact on email events and form submissions: they earn credit through
        # the address they carry (identity.touch_emails in mappings/definitions.yaml)
        assert {"email_events", "form_submissions"} <= values(
            "SELECT DISTINCT t.source_object FROM factory.attribution_credit a JOIN factory.touch t "
            "ON t.id = a.touch_id WHERE t.source_system = 'hubspot'")
    finally:
        con.close()


def test_a_stream_that_cannot_finish_makes_the_run_partial_and_keeps_the_rest(tmp_path: Path) -> None:
    from sandbox.api import FaultRule

    expired = FaultRule(kind="expired_token", route="/crm/v3/objects/companies", rate=1.0)
    with start_sandbox(["hubspot"], size=300, seed=3, state_dir=tmp_path / "world", faults=[expired]) as sb:
        env = {f"SOURCES__HUBSPOT__{k.upper()}": str(v) for k, v in sb.emulators["hubspot"].settings.items()}
        db = tmp_path / "p.duckdb"
        only = [a for s in OBJECTS for a in ("--stream", s)]
        done = cli("run", "hubspot", "--no-sandbox", "--db", str(db), *only, cwd=tmp_path, env=dict(env))
        assert done.returncode == 3, done.stderr  # partial: some streams did not finish
        status = json.loads(done.stdout.strip().splitlines()[-1])
        by_stream = {s["stream"]: s for s in status["streams"]}
        assert status["status"] == "partial"
        assert by_stream["contacts"]["status"] == by_stream["deals"]["status"] == "success"
        assert by_stream["companies"]["status"] == "failed" and "401" in by_stream["companies"]["error"]
        assert env["SOURCES__HUBSPOT__ACCESS_TOKEN"] not in done.stdout + done.stderr
        con = _db(db)
        assert con.sql("SELECT count(*) FROM factory.person").fetchall()[0][0] == 300
        assert con.sql("SELECT count(*) FROM factory.run_streams WHERE status = 'failed'").fetchall() == [(1,)]
        con.close()

        # the vendor recovers: the next run reads companies from the start (its cursor never moved)
        sb.set_faults("hubspot", [])
        again = cli("run", "hubspot", "--no-sandbox", "--db", str(db), *only, cwd=tmp_path, env=dict(env))
        assert again.returncode == 0, again.stderr
        companies = next(s for s in json.loads(again.stdout.strip().splitlines()[-1])["streams"]
                         if s["stream"] == "companies")
        assert companies["records"] == len(_vendor_ids(sb, "companies")) + len(_vendor_ids(sb, "companies", True))


# ---------------------------------------------------------------------------------------------
# sales activities, pipelines and marketing: touches, campaigns, opportunities
# ---------------------------------------------------------------------------------------------

ACTIVITY_STREAMS = ["deals", "deal_pipelines", "calls", "meetings", "email_events", "marketing_emails"]
EVENT_TOUCH = {"SENT": "email_send", "DELIVERED": "email_delivered", "OPEN": "email_open", "CLICK": "click",
               "BOUNCE": "bounce", "UNSUBSCRIBE": "unsubscribe", "SPAMREPORT": "spam_report"}


def _api(sb: Sandbox, path: str, **params: Any) -> Any:
    import httpx

    hs = sb.emulators["hubspot"]
    r = httpx.get(f"{hs.base_url}{path}", params=params, timeout=60,
                  headers={"Authorization": f"Bearer {hs.settings['access_token']}"})
    assert r.status_code == 200, r.text
    return r.json()


def _events(sb: Sandbox, **params: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    offset = None
    while True:
        body = _api(sb, "/email/public/v1/events", limit=1000, **params, **({"offset": offset} if offset else {}))
        out.update({e["id"]: e for e in body["events"]})
        if not body["hasMore"]:
            return out
        offset = body["offset"]


def _listed(sb: Sandbox, obj: str, archived: bool = False) -> set[str]:
    out: set[str] = set()
    after = None
    while True:
        body = _api(sb, f"/crm/v3/objects/{obj}", limit=100, archived=str(archived).lower(),
                    **({"after": after} if after else {}))
        out.update(r["id"] for r in body["results"])
        after = (body.get("paging") or {}).get("next", {}).get("after")
        if not after:
            return out


def test_sales_activities_marketing_and_stages_end_to_end(sandbox: Sandbox, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from core.vocabulary import TOUCH_TYPES

    db = tmp_path / "fl.duckdb"
    first = _run(sandbox, db, streams=ACTIVITY_STREAMS)
    assert first.status == "success", first.as_dict()
    con = _db(db)
    # every call and meeting is a sales touch, linked to its contact
    for obj, kind in (("calls", "call"), ("meetings", "meeting")):
        live = _listed(sandbox, obj)
        ids = live | _listed(sandbox, obj, archived=True)
        rows = con.sql("SELECT source_record_id, touch_type, channel, category, person_id FROM factory.touch "
                       "WHERE source_object = ?", params=[obj]).fetchall()
        assert {r[0] for r in rows} == ids, obj
        assert {r[1:4] for r in rows} == {(kind, "sales", "sales")}
        assert all(r[4] for r in rows if r[0] in live)
    # every email event up to the run's start is a marketing touch of the vocabulary's type
    events = _events(sandbox, endTimestamp=int(first.started_at.timestamp() * 1000))
    rows = con.sql("SELECT source_record_id, touch_type, channel, category, campaign_id, extras FROM factory.touch "
                   "WHERE source_object = 'email_events'").fetchall()
    assert {r[0]: r[1] for r in rows} == {k: EVENT_TOUCH[e["type"]] for k, e in events.items()}
    assert all(r[1] in TOUCH_TYPES and r[2:4] == ("email", "marketing") for r in rows)
    # the recipient's address is kept for identity to link the event to a person
    assert all(json.loads(r[5])["recipient"] == events[r[0]]["recipient"] for r in rows[:50])
    # events of an email campaign point at its campaign row (from the marketing emails)
    campaigns = {r[0] for r in con.sql("SELECT id FROM factory.campaign").fetchall()}
    in_campaign = [r for r in rows if events[r[0]]["emailCampaignId"] is not None]
    assert campaigns and in_campaign and all(r[4] in campaigns for r in in_campaign)
    # is_closed / is_won follow the stage metadata of the deal's pipeline, custom stages included
    meta = {(p["id"], s["id"]): s["metadata"] for p in _api(sandbox, "/crm/v3/pipelines/deals")["results"]
            for s in p["stages"]}
    deals = {}
    after = None
    while True:
        body = _api(sandbox, "/crm/v3/objects/deals", limit=100, properties="pipeline,dealstage",
                    **({"after": after} if after else {}))
        deals.update({r["id"]: r["properties"] for r in body["results"]})
        after = (body.get("paging") or {}).get("next", {}).get("after")
        if not after:
            break
    opp = {r[0]: r[1:] for r in con.sql("SELECT source_record_id, pipeline, is_closed, is_won FROM "
                                        "factory.opportunity WHERE NOT is_deleted").fetchall()}
    assert set(opp) == set(deals)
    for rid, p in deals.items():
        m = meta[(p["pipeline"], p["dealstage"])]
        closed = m["isClosed"] == "true"
        assert opp[rid][1:] == (closed, closed and float(m["probability"]) == 1.0), rid
    assert any(p != "default" for p, _, _ in opp.values())
    assert con.sql("SELECT count(*) FROM factory.hubspot__deal_pipelines").fetchall()[0][0] == len(
        {p for p, _ in meta})
    con.close()

    # the world moves on: the re-run reads only what changed
    sandbox.advance(1)
    second = _run(sandbox, db, streams=ACTIVITY_STREAMS, started_at=datetime.now(UTC) + timedelta(seconds=1))
    assert second.status == "success", second.as_dict()
    by_stream = {s.stream: s for s in second.streams}
    lower = first.started_at - timedelta(seconds=300)
    window = _events(sandbox, startTimestamp=int(lower.timestamp() * 1000),
                     endTimestamp=int(second.started_at.timestamp() * 1000))
    assert by_stream["email_events"].records == len(window)
    assert 0 < by_stream["calls"].records < len(_listed(sandbox, "calls")) / 10
    con = _db(db)
    assert con.sql("SELECT count(*) FROM factory.touch WHERE source_object = 'email_events'").fetchall()[0][0] == \
        len(_events(sandbox, endTimestamp=int(second.started_at.timestamp() * 1000)))
    con.close()


def test_daily_quota_exhausted_mid_run_is_partial_keeps_data_and_the_cursor(tmp_path: Path) -> None:
    from sandbox.api import FaultRule

    # HubSpot's daily limit: 429 with policyName DAILY (a rate_limit fault with Retry-After >= 1 h)
    daily = FaultRule(kind="rate_limit", route="/crm/v3/objects/contacts", at=4, times=1_000_000,
                      retry_after=86_400)
    with start_sandbox(["hubspot"], size=600, seed=3, state_dir=tmp_path / "world", faults=[daily]) as sb:
        env = {f"SOURCES__HUBSPOT__{k.upper()}": str(v) for k, v in sb.emulators["hubspot"].settings.items()}
        env["SOURCES__HUBSPOT__ASSOCIATION_BATCH"] = "100"
        db = tmp_path / "q.duckdb"
        done = cli("run", "hubspot", "--no-sandbox", "--db", str(db), "--stream", "contacts", cwd=tmp_path,
                   env=dict(env))
        assert done.returncode == 3, done.stderr
        status = json.loads(done.stdout.strip().splitlines()[-1])
        contacts = status["streams"][0]
        assert status["status"] == "partial" and contacts["status"] == "partial"
        assert "daily" in contacts["error"].lower()
        con = _db(db)
        loaded = con.sql("SELECT count(*) FROM factory.person").fetchall()[0][0]
        con.close()
        assert 0 < loaded < 600  # what was read before the quota ran out is kept

        # the quota is back: the next run starts where the cursor stood (never moved: from the start)
        sb.set_faults("hubspot", [])
        again = _run(sb, db, streams=["contacts"])
        assert again.status == "success", again.as_dict()
        total = len(_vendor_ids(sb, "contacts")) + len(_vendor_ids(sb, "contacts", archived=True))
        assert again.streams[0].records == total
        con = _db(db)
        assert con.sql("SELECT count(*) FROM factory.person").fetchall()[0][0] == total
        con.close()
