"""Marketo end to end: sandbox emulator -> connector -> mappings -> dlt -> DuckDB.

Expected figures come from the emulator, read through its REST API with plain httpx
(tests/test_marketo_connector.py helpers), never from the code under test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from connectors.marketo.emulator import CLIENT_ID, CLIENT_SECRET
from core.vocabulary import CHANNELS, TOUCH_TYPES
from pipelines.destination import Target
from pipelines.run import EXIT_CODES, run
from sandbox.api import FaultRule, Sandbox, start_sandbox
from tests.conftest import ROOT, cli, table_snapshot
from tests.test_marketo_connector import _client, vendor_activities, vendor_leads

REF = "connectors.marketo.emulator:emulator_spec"
SIZE = 400
ENTITIES = ("person", "touch", "campaign", "campaign_membership")
PROVENANCE = ("source_system", "source_instance", "source_object", "source_record_id", "is_deleted",
              "extracted_at", "run_id", "mapping_version", "raw_table", "raw_key", "_dlt_load_id")


@pytest.fixture()
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with start_sandbox([REF], size=SIZE, seed=3, state_dir=tmp_path / "world", in_process=True) as sb:
        yield sb


def _run(sb: Sandbox, db: Path, **kw: Any) -> Any:
    return run(["marketo"], target=Target(db_path=db), overrides={"marketo": sb.emulators["marketo"].settings}, **kw)


def _db(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


def _env(sb: Sandbox, **extra: str) -> dict[str, str]:
    settings = {**sb.emulators["marketo"].settings, **extra}
    return {f"SOURCES__MARKETO__{k.upper()}": str(v) for k, v in settings.items()}


def vendor_programs(sb: Sandbox) -> dict[int, dict[str, Any]]:
    with _client(sb) as c:
        body = c.get("/rest/asset/v1/programs.json", params={"maxReturn": 200}).json()
    return {p["id"]: p for p in body.get("result") or []}


def vendor_members(sb: Sandbox) -> dict[str, dict[str, Any]]:
    """``<programId>:<leadId>`` -> member, for every program."""
    out: dict[str, dict[str, Any]] = {}
    with _client(sb) as c:
        for pid in vendor_programs(sb):
            token = None
            while True:
                body = c.get(f"/rest/v1/programs/{pid}/members.json",
                             params={"batchSize": 300, **({"nextPageToken": token} if token else {})}).json()
                out.update({f"{m['programId']}:{m['leadId']}": m for m in body.get("result") or []})
                token = body.get("nextPageToken")
                if not body.get("moreResult"):
                    break
    return out


def vendor_deleted(sb: Sandbox) -> set[int]:
    with _client(sb) as c:
        token = c.get("/rest/v1/activities/pagingtoken.json", params={"sinceDatetime": "2000-01-01"}).json()[
            "nextPageToken"]
        body = c.get("/rest/v1/activities/deletedleads.json", params={"nextPageToken": token}).json()
    return {a["leadId"] for a in body.get("result") or []}


def test_full_run_loads_what_the_emulator_holds(sandbox: Sandbox, tmp_path: Path) -> None:
    db = tmp_path / "fl.duckdb"
    status = _run(sandbox, db)
    assert status.status == "success", status.as_dict()
    con = _db(db)
    leads = vendor_leads(sandbox, SIZE)
    people = {int(r[0]): r[1:] for r in con.sql(
        "SELECT source_record_id, email, last_name, is_deleted, source_updated_at FROM factory.person").fetchall()}
    assert {k for k, v in people.items() if not v[2]} == set(leads)
    assert {k for k, v in people.items() if v[2]} == vendor_deleted(sandbox)
    for lead_id, lead in leads.items():
        email, last, _, updated = people[lead_id]
        assert email == (lead["email"].strip().lower() if lead["email"] else None)
        assert last == lead["lastName"] and updated.strftime("%Y-%m-%dT%H:%M:%SZ") == lead["updatedAt"]
    acts = vendor_activities(sandbox)
    touches = {r[0]: r[1:] for r in con.sql(
        "SELECT source_record_id, touch_type, channel, person_id, campaign_id FROM factory.touch").fetchall()}
    assert set(touches) == set(acts)
    assert {t[0] for t in touches.values()} <= set(TOUCH_TYPES) and {t[1] for t in touches.values()} <= set(CHANNELS)
    # the vendor's own types land on the shared vocabulary
    by_type = {(acts[g]["activityTypeId"], t[0]) for g, t in touches.items()}
    assert {(6, "email_send"), (10, "email_open"), (11, "click"), (12, "other")} <= by_type
    assert len({t for t, _ in by_type}) == len(by_type), "one touch type per Marketo activity type"
    others = con.sql("SELECT extras FROM factory.touch WHERE touch_type = 'other' LIMIT 5").fetchall()
    assert others and all("activityTypeName" in json.loads(e[0]) for e in others)  # the Marketo type is kept
    # references resolve to loaded rows (a program activity may name a program the vendor does not list)
    programs = vendor_programs(sandbox)
    unknown_program = sum(1 for a in acts.values()
                          if a["activityTypeId"] == 104 and a["primaryAttributeValueId"] not in programs)
    for column, table, expected in (("person_id", "person", 0), ("campaign_id", "campaign", unknown_program)):
        dangling = con.sql(f"SELECT count(*) FROM factory.touch t WHERE t.{column} IS NOT NULL AND NOT EXISTS "
                           f"(SELECT 1 FROM factory.{table} x WHERE x.id = t.{column})").fetchall()[0][0]
        assert dangling == expected, column
    assert con.sql("SELECT count(campaign_id) FROM factory.touch").fetchall()[0][0] > unknown_program
    campaigns = dict(con.sql("SELECT source_record_id, name FROM factory.campaign").fetchall())
    assert campaigns == {str(k): v["name"] for k, v in programs.items()}
    members = vendor_members(sandbox)
    loaded = {r[0]: r[1:] for r in con.sql(
        "SELECT source_record_id, status, responded FROM factory.campaign_membership").fetchall()}
    assert loaded == {k: (m["statusName"], m["reachedSuccess"]) for k, m in members.items()}
    for entity in ENTITIES:
        nulls = " OR ".join(f"{c} IS NULL" for c in PROVENANCE)
        assert con.sql(f"SELECT count(*) FROM factory.{entity} WHERE {nulls}").fetchall()[0] == (0,), entity
    assert con.sql("SELECT count(*) FROM factory.rejects").fetchall()[0] == (0,)
    assert con.sql("SELECT count(*) FROM factory.marketo__activity_types").fetchall()[0][0] >= 10
    # no credential reached any table (raw, canonical, runs)
    token = httpx.get(f"{sandbox.emulators['marketo'].base_url}/identity/oauth/token", params={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).json()[
        "access_token"]
    for (table,) in con.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'factory'"
                            ).fetchall():
        text = str(con.sql(f"SELECT * FROM factory.{table}").fetchall())
        assert CLIENT_SECRET not in text and CLIENT_ID not in text and token not in text, table


def test_incremental_run_fetches_only_changes(sandbox: Sandbox, tmp_path: Path) -> None:
    db = tmp_path / "fl.duckdb"
    streams = ["leads", "activities", "program_members"]
    assert _run(sandbox, db, streams=streams).status == "success"
    before_leads = vendor_leads(sandbox, SIZE)
    before_acts = set(vendor_activities(sandbox))
    before_members = vendor_members(sandbox)
    sandbox.advance(1)
    after_leads = vendor_leads(sandbox, SIZE)
    new_acts = set(vendor_activities(sandbox)) - before_acts
    gone = set(before_leads) - set(after_leads)
    # a change is a lead whose field values changed (updatedAt aside) or that is new
    changed = {i for i, r in after_leads.items()
               if {k: v for k, v in (before_leads.get(i) or {}).items() if k != "updatedAt"}
               != {k: v for k, v in r.items() if k != "updatedAt"}}
    assert changed and new_acts, "the sandbox tick changed nothing"
    members = vendor_members(sandbox)
    # seq is the position in the answer page, not a property of the membership
    changed_members = {k for k, m in members.items()
                       if {**before_members.get(k, {}), "seq": 0} != {**m, "seq": 0}}

    sandbox.reset_stats("marketo")
    second = _run(sandbox, db, streams=streams)
    assert second.status == "success", second.as_dict()
    con = _db(db)
    rows = {s: set(r[0] for r in con.sql(f"SELECT source_record_id FROM factory.{s} WHERE run_id = ?",
                                          params=[second.run_id]).fetchall())
            for s in ("person", "touch", "campaign_membership")}
    assert {int(i) for i in rows["person"]} == changed | gone
    assert rows["touch"] == new_acts
    assert changed_members <= rows["campaign_membership"]
    by_stream = {s.stream: s for s in second.streams}
    assert by_stream["leads"].records == len(changed | gone)
    assert by_stream["activities"].records == len(new_acts)
    assert by_stream["program_members"].records < len(members) / 2
    routes = sandbox.stats("marketo")["routes"]
    assert routes["GET /rest/v1/leads.json"]["records"] == len(changed)
    # the tables now hold what the vendor holds: live leads as they are now, deleted ones flagged
    people = {int(r[0]): r[1:] for r in con.sql(
        "SELECT source_record_id, is_deleted, last_name, job_title, lead_status FROM factory.person").fetchall()}
    assert {k for k, v in people.items() if not v[0]} == set(after_leads)
    assert {k for k, v in people.items() if v[0]} == vendor_deleted(sandbox)
    assert all(people[i][1:] == (r["lastName"], r["title"], r["leadStatus"]) for i, r in after_leads.items())


def test_malformed_activities_become_rejects_with_reasons(sandbox: Sandbox, tmp_path: Path) -> None:
    expected = set(vendor_activities(sandbox))
    sandbox.set_faults("marketo", [FaultRule("bad_timestamp", route="/rest/v1/activities.json", at=1),
                                   FaultRule("missing_id", route="/rest/v1/activities.json", at=2)])
    db = tmp_path / "fl.duckdb"
    status = _run(sandbox, db, streams=["activities"])
    assert status.status == "success", status.as_dict()
    con = _db(db)
    rejects = con.sql("SELECT source_record_id, field, reason, payload FROM factory.rejects "
                      "WHERE source_object = 'activities' AND severity = 'record'").fetchall()
    assert len(rejects) == 2, rejects
    bad_time = next(r for r in rejects if r[0])
    assert bad_time[1] == "occurred_at" and "timestamp" in bad_time[2] and bad_time[0] in expected
    no_id = next(r for r in rejects if not r[0])
    assert "id" in no_id[2] and "leadId" in json.loads(no_id[3])
    touches = {r[0] for r in con.sql("SELECT source_record_id FROM factory.touch").fetchall()}
    assert len(touches) == len(expected) - 2 and touches < expected


def test_daily_quota_607_ends_partial_exit_3_and_keeps_loaded_data(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "q.duckdb"
    streams = ["leads"]
    monkeypatch.setenv("FACTORYLINE_SANDBOX_MARKETO_DAILY_QUOTA", "8")
    with start_sandbox([REF], size=300, seed=3, state_dir=tmp_path / "world", rate_limits=True,
                       in_process=True) as sb:
        settings = {**sb.emulators["marketo"].settings, "batch_size": 50}
        status = run(["marketo"], target=Target(db_path=db), overrides={"marketo": settings}, streams=streams)
        assert status.status == "partial" and EXIT_CODES[status.status] == 3, status.as_dict()
        leads = next(s for s in status.streams if s.stream == "leads")
        assert leads.status == "partial" and leads.error and "607" in leads.error
        assert CLIENT_SECRET not in str(status.as_dict())
        con = _db(db)
        kept = con.sql("SELECT count(*) FROM factory.person").fetchall()[0][0]
        con.close()
        assert kept > 0
    monkeypatch.delenv("FACTORYLINE_SANDBOX_MARKETO_DAILY_QUOTA")
    # a new day: the next run resumes where the loaded pages ended and completes the set
    with start_sandbox([REF], size=300, seed=3, state_dir=tmp_path / "world", in_process=True) as sb:
        expected = set(vendor_leads(sb, 300))
        assert kept < len(expected)
        again = run(["marketo"], target=Target(db_path=db), overrides={"marketo": sb.emulators["marketo"].settings},
                    streams=streams)
        assert again.status == "success", again.as_dict()
        con = _db(db)
        live = {int(r[0]) for r in con.sql("SELECT source_record_id FROM factory.person WHERE NOT is_deleted")
                .fetchall()}
        assert live == expected


@pytest.mark.slow
def test_killed_run_restarted_ends_like_a_clean_run(tmp_path: Path) -> None:
    streams = ("activities",)
    with start_sandbox([REF], size=400, seed=5, state_dir=tmp_path / "world") as sb:
        env = _env(sb, batch_size="50")
        clean = tmp_path / "clean.duckdb"
        settings = {**sb.emulators["marketo"].settings, "batch_size": 50}
        assert run(["marketo"], target=Target(db_path=clean), overrides={"marketo": settings},
                   streams=list(streams)).status == "success"
        killed = tmp_path / "killed.duckdb"
        args = [sys.executable, "-m", "pipelines.cli", "run", "marketo", "--no-sandbox", "--db", str(killed),
                *(a for s in streams for a in ("--stream", s))]
        sb.reset_stats("marketo")
        # small chunks: state is committed every few pages, so the kill lands between commits
        env["FACTORYLINE_CHUNK_RECORDS"] = "1000"
        proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": str(ROOT), **env})
        # kill in the middle of the stream (some chunks and their tokens committed, more to come)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            routes = sb.stats("marketo")["routes"]
            if routes.get("GET /rest/v1/activities.json", {}).get("requests", 0) >= 25:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        again = cli("run", "marketo", "--no-sandbox", "--db", str(killed),
                    *(a for s in streams for a in ("--stream", s)), cwd=tmp_path, env=dict(env))
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout.strip().splitlines()[-1])["status"] == "success"
    assert table_snapshot(killed, ("touch",)) == table_snapshot(clean, ("touch",))
