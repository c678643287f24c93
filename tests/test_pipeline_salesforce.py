"""Salesforce end to end: sandbox emulator -> connector -> mappings -> dlt -> DuckDB.

The expected figures come from the emulator itself, read through simple-salesforce, never from
the code under test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests
from simple_salesforce import Salesforce

from pipelines.destination import Target
from pipelines.run import run
from sandbox.api import Sandbox, start_sandbox
from tests.conftest import cli, table_snapshot

#: stream -> (object, entity)
MAPPED = {"lead": ("Lead", "person"), "contact": ("Contact", "person"), "account": ("Account", "account"),
          "opportunity": ("Opportunity", "opportunity"), "campaign": ("Campaign", "campaign"),
          "campaign_member": ("CampaignMember", "campaign_membership"), "task": ("Task", "touch"),
          "event": ("Event", "touch")}
#: what a resumed or killed-and-restarted Lead run must leave exactly as a clean run does
SNAPSHOT = ("person", "salesforce__lead")
ENTITIES = ("person", "account", "opportunity", "campaign", "campaign_membership", "touch")


def _client(sb: Sandbox) -> Any:
    st = sb.emulators["salesforce"].settings
    s = requests.Session()
    s.trust_env = False
    s.verify = st["ca_bundle"]
    return Salesforce(instance_url=st["instance_url"], session_id=st["session_id"], version="59.0", session=s)


def _vendor(sb: Sandbox, obj: str) -> dict[str, tuple[str, bool]]:
    """Id -> (SystemModstamp, IsDeleted) of every row the emulator holds, deleted ones included."""
    out = _client(sb).query_all(f"SELECT Id, SystemModstamp, IsDeleted FROM {obj}", include_deleted=True)
    return {r["Id"]: (r["SystemModstamp"], r["IsDeleted"]) for r in out["records"]}


def _db(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


def _run(sb: Sandbox, db: Path, streams: tuple[str, ...], **settings: Any) -> Any:
    # every stream costs its own dlt load (~1.5 s here): tests name the streams they need
    over = {**sb.emulators["salesforce"].settings, "page_size": 200, **settings}
    return run(["salesforce"], target=Target(db_path=db), overrides={"salesforce": over}, streams=list(streams))


def _api_requests(sb: Sandbox) -> int:
    routes = sb.stats("salesforce")["routes"]
    return sum(v["requests"] for k, v in routes.items() if "/_sandbox/" not in k)


def _env(sb: Sandbox, **extra: Any) -> dict[str, str]:
    settings = {**sb.emulators["salesforce"].settings, "page_size": 200, **extra}
    return {"FACTORYLINE_DERIVE": "0", **{f"SOURCES__SALESFORCE__{k.upper()}": str(v) for k, v in settings.items()}}


@pytest.fixture(autouse=True)
def _no_derive(monkeypatch: pytest.MonkeyPatch) -> None:
    """Derivation (identity, lifecycle, attribution) costs seconds a run and is tested on its own."""
    monkeypatch.setenv("FACTORYLINE_DERIVE", "0")


@pytest.fixture()
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with start_sandbox(["salesforce"], size=800, seed=3, state_dir=tmp_path / "world", rate_limits=True,
                       in_process=True) as sb:
        yield sb


def test_full_then_incremental_run(sandbox: Sandbox, tmp_path: Path) -> None:
    db = tmp_path / "fl.duckdb"
    sandbox.reset_stats("salesforce")
    first = _run(sandbox, db, tuple(MAPPED))
    assert first.status == "success", first.as_dict()
    # the connector reports exactly the requests the emulator served, and none was refused
    assert sum(s.requests for s in first.streams) == _api_requests(sandbox)
    statuses = {code for r in sandbox.stats("salesforce")["routes"].values() for code in r["statuses"]}
    assert statuses <= {"200", "201", "204", 200, 201, 204}, statuses
    con = _db(db)
    for stream, (obj, entity) in MAPPED.items():
        held = _vendor(sandbox, obj)
        rows = dict(con.sql(f"SELECT source_record_id, is_deleted FROM factory.{entity} "
                            f"WHERE source_object = '{stream}'").fetchall())
        assert set(rows) == set(held), stream
        assert {i for i, d in rows.items() if d} == {i for i, (_, d) in held.items() if d}, stream
        raw = con.sql(f"SELECT count(*) FROM factory.salesforce__{stream}").fetchall()[0]
        assert raw == (len(held),)
    assert con.sql("SELECT count(*) FROM factory.rejects WHERE severity = 'record'").fetchall() == [(0,)]
    # references resolve to loaded rows
    for table, col, target in (("person", "account_id", "account"), ("opportunity", "account_id", "account"),
                               ("campaign_membership", "person_id", "person"),
                               ("campaign_membership", "campaign_id", "campaign"), ("touch", "person_id", "person")):
        linked, dangling = con.sql(
            f"SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM factory.{target} t "
            f"WHERE t.id = x.{col})) FROM factory.{table} x WHERE x.{col} IS NOT NULL").fetchall()[0]
        assert linked > 0 and dangling == 0, (table, col)
    touch_types = {r[0] for r in con.sql("SELECT DISTINCT touch_type FROM factory.touch").fetchall()}
    assert touch_types == {"call", "meeting"}
    con.close()

    again = {s: MAPPED[s] for s in ("lead", "contact")}
    old = {s: _vendor(sandbox, o) for s, (o, _) in again.items()}
    time.sleep(0.01)
    sandbox.advance()
    new = {s: _vendor(sandbox, o) for s, (o, _) in again.items()}
    changed = {s: {i for i, v in new[s].items() if old[s].get(i) != v} for s in again}
    assert changed["lead"], "the tick changed no lead"
    sandbox.reset_stats("salesforce")
    second = _run(sandbox, db, tuple(again))
    assert second.status == "success", second.as_dict()
    # every object's describe (If-Modified-Since: 304) and first page in composite calls of at most
    # 5 queries each: 10 objects -> 2 API calls for the whole run, far below 2% of a full run's requests
    assert _api_requests(sandbox) == sum(s.requests for s in second.streams) == 2
    assert set(sandbox.stats("salesforce")["routes"]) == {"POST /services/data/vXX.X/composite"}
    con = _db(db)
    for stream, (_, entity) in again.items():
        rows = {r[0]: r[1] for r in con.sql(f"SELECT source_record_id, run_id FROM factory.{entity} "
                                            f"WHERE source_object = '{stream}'").fetchall()}
        assert {i for i, r in rows.items() if r == second.run_id} == changed[stream], stream
        assert set(rows) == set(new[stream]), stream  # a converted lead adds a contact, nothing duplicates
    con.close()


def test_interrupted_bulk_job_is_resumed_and_ends_like_a_clean_run(sandbox: Sandbox, tmp_path: Path) -> None:
    from sandbox.api import FaultRule

    bulk = {"bulk_threshold": 100, "bulk_result_records": 100}
    clean = tmp_path / "clean.duckdb"
    assert _run(sandbox, clean, ("lead",), **bulk).status == "success"

    # the third results request of the lead job fails for good (a session that cannot be renewed)
    settings = {k: v for k, v in sandbox.emulators["salesforce"].settings.items()
                if k not in ("refresh_token", "username", "password")}
    sandbox.set_faults("salesforce", [FaultRule("expired_token", route="GET /services/data/vXX.X/jobs/query/{id}/results",
                                                at=3)])
    sandbox.reset_stats("salesforce")
    db = tmp_path / "stopped.duckdb"
    stopped = run(["salesforce"], target=Target(db_path=db), streams=["lead"],
                  overrides={"salesforce": {**settings, "page_size": 200, **bulk}})
    sandbox.set_faults("salesforce", [])
    lead = next(s for s in stopped.streams if s.stream == "lead")
    assert stopped.status == "failed" and lead.status == "failed", stopped.as_dict()
    assert lead.records == 200  # two results requests of 100 were loaded before the failure
    assert sandbox.stats("salesforce")["routes"]["POST /services/data/vXX.X/jobs/query"]["requests"] == 1

    sandbox.reset_stats("salesforce")
    again = _run(sandbox, db, ("lead",), **bulk)
    assert again.status == "success", again.as_dict()
    routes = sandbox.stats("salesforce")["routes"]
    lead = next(s for s in again.streams if s.stream == "lead")
    # the job was resumed, not created again
    assert "POST /services/data/vXX.X/jobs/query" not in routes
    assert lead.records == len(_vendor(sandbox, "Lead")) - 200
    assert table_snapshot(db, SNAPSHOT) == table_snapshot(clean, SNAPSHOT)


def test_quota_share_reached_mid_run_is_partial_keeps_data_and_resumes(tmp_path: Path) -> None:
    with start_sandbox(["salesforce"], size=1200, seed=3, state_dir=tmp_path / "world", rate_limits=True,
                       in_process=True) as sb:
        limits = _client(sb).limits()["DailyApiRequests"]
        used = limits["Max"] - limits["Remaining"]
        # describe, count and three query pages fit; the sixth request would pass the share
        share = (used + 4.5) / limits["Max"]
        db = tmp_path / "q.duckdb"
        done = cli("run", "salesforce", "--no-sandbox", "--stream", "lead", "--stream", "contact", "--db", str(db),
                   cwd=tmp_path, env=_env(sb, quota_share=share))
        assert done.returncode == 3, done.stderr
        status = json.loads(done.stdout.strip().splitlines()[-1])
        assert status["status"] == "partial"
        by_stream = {s["stream"]: s for s in status["streams"]}
        assert by_stream["lead"]["status"] == by_stream["contact"]["status"] == "partial"
        assert "quota" in by_stream["lead"]["error"]
        assert sb.emulators["salesforce"].settings["session_id"] not in done.stdout + done.stderr
        con = _db(db)
        assert con.sql("SELECT count(*) FROM factory.person").fetchall() == [(600,)]  # three lead pages kept
        assert con.sql("SELECT count(*) FROM factory.run_streams WHERE status = 'partial'").fetchall() == [(2,)]
        con.close()

        again = _run(sb, db, ("lead",))
        assert again.status == "success", again.as_dict()
        leads = _vendor(sb, "Lead")
        # the cursor stood exactly at the loaded data: the rest, nothing twice, nothing skipped
        assert again.streams[0].records == len(leads) - 600
        con = _db(db)
        got = {r[0] for r in con.sql("SELECT source_record_id FROM factory.person "
                                     "WHERE source_object = 'lead'").fetchall()}
        con.close()
        assert got == set(leads)


@pytest.mark.slow
def test_run_killed_mid_bulk_job_then_restarted_ends_like_a_clean_run(sandbox: Sandbox, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    bulk = {"bulk_threshold": 100, "bulk_result_records": 100}
    clean = tmp_path / "clean.duckdb"
    assert _run(sandbox, clean, ("lead",), **bulk).status == "success"

    killed = tmp_path / "killed.duckdb"
    results = "GET /services/data/vXX.X/jobs/query/{id}/results"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "FACTORYLINE_"))}
    # one load package per 100 records, so pages of the job are committed before the kill
    env.update({**_env(sandbox, **bulk), "FACTORYLINE_CHUNK_RECORDS": "100", "PYTHONPATH": str(ROOT)})
    sandbox.reset_stats("salesforce")
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "salesforce", "--no-sandbox",
                             "--stream", "lead", "--db", str(killed)], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        # the kill point is observed: the job's third results request has been served
        while sandbox.stats("salesforce")["routes"].get(results, {}).get("requests", 0) < 3:
            assert proc.poll() is None, "the run ended before the kill point"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    again = _run(sandbox, killed, ("lead",), **bulk)
    assert again.status == "success", again.as_dict()
    assert table_snapshot(killed, SNAPSHOT) == table_snapshot(clean, SNAPSHOT)
