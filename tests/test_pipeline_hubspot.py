"""HubSpot CRM end to end: sandbox emulator -> connector -> mappings -> dlt -> DuckDB.

The expected figures come from the emulator itself, read through the real hubspot-api-client,
never from the code under test.
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
import orjson
import pytest

from pipelines.destination import Target
from pipelines.run import run
from sandbox.api import Sandbox, start_sandbox
from tests.conftest import ROOT, cli

OBJECTS = {"contacts": "person", "companies": "account", "deals": "opportunity"}
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
    return run(["hubspot"], target=Target(db_path=db), overrides={"hubspot": sb.emulators["hubspot"].settings}, **kw)


def test_full_run_loads_every_vendor_record_with_provenance(sandbox: Sandbox, tmp_path: Path) -> None:
    db = tmp_path / "fl.duckdb"
    status = _run(sandbox, db)
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


def _canonical_snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    skip = {"run_id", "extracted_at", "_dlt_load_id", "_dlt_id"}
    con = _db(db)
    out = {}
    for table in (*OBJECTS.values(), "hubspot__associations"):
        cols = [c[0] for c in con.sql(f"DESCRIBE factory.{table}").fetchall() if c[0] not in skip]
        out[table] = con.sql(f"SELECT {', '.join(cols)} FROM factory.{table} ORDER BY ALL").fetchall()
    con.close()
    return out


@pytest.mark.slow
def test_killed_run_restarted_ends_like_a_clean_run(tmp_path: Path) -> None:
    with start_sandbox(["hubspot"], size=6000, seed=5, state_dir=tmp_path / "world") as sb:
        settings = sb.emulators["hubspot"].settings
        env = {f"SOURCES__HUBSPOT__{k.upper()}": str(v) for k, v in settings.items()}
        clean = tmp_path / "clean.duckdb"
        done = cli("run", "hubspot", "--no-sandbox", "--db", str(clean), cwd=tmp_path, env=dict(env))
        assert done.returncode == 0, done.stderr
        killed = tmp_path / "killed.duckdb"
        for delay in (0.8, 2.0, 3.5):  # during extract, around normalize/load, after
            proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "hubspot", "--no-sandbox",
                                     "--db", str(killed)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL,
                                    env={**os.environ, "PYTHONPATH": str(ROOT), **env})
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        again = cli("run", "hubspot", "--no-sandbox", "--db", str(killed), cwd=tmp_path, env=dict(env))
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout.strip().splitlines()[-1])["status"] == "success"
    assert _canonical_snapshot(killed) == _canonical_snapshot(clean)


def test_demo_twice_with_every_default(tmp_path: Path) -> None:
    """As a new user runs it: `factoryline demo` in an empty folder, twice."""
    first = cli("demo", "--size", "300", cwd=tmp_path)
    assert first.returncode == 0, first.stderr + first.stdout
    db = tmp_path / "factoryline.duckdb"
    counts = [_db(db).sql(f"SELECT count(*) FROM factory.{e}").fetchall()[0][0] for e in OBJECTS.values()]
    assert all(counts), counts
    second = cli("demo", "--size", "300", cwd=tmp_path)
    assert second.returncode == 0, second.stderr + second.stdout
    con = _db(db)
    assert [con.sql(f"SELECT count(*) FROM factory.{e}").fetchall()[0][0] for e in OBJECTS.values()] == counts
    fetched = dict(con.sql("SELECT stream, records FROM factory.run_streams WHERE run_id = "
                           "(SELECT max(run_id) FROM factory.runs)").fetchall())
    # the world moved one tick: ~1% changed and ~0.1% archived, nothing else was fetched again
    for obj, count in zip(OBJECTS, counts, strict=True):
        assert fetched[obj] <= 0.02 * count + 2, (obj, fetched, counts)
    assert fetched["contacts"] > 0, fetched
    assert "Tables now in" in second.stdout and "person" in second.stdout


def test_a_stream_that_cannot_finish_makes_the_run_partial_and_keeps_the_rest(tmp_path: Path) -> None:
    from sandbox.api import FaultRule

    expired = FaultRule(kind="expired_token", route="/crm/v3/objects/companies", rate=1.0)
    with start_sandbox(["hubspot"], size=300, seed=3, state_dir=tmp_path / "world", faults=[expired]) as sb:
        env = {f"SOURCES__HUBSPOT__{k.upper()}": str(v) for k, v in sb.emulators["hubspot"].settings.items()}
        db = tmp_path / "p.duckdb"
        done = cli("run", "hubspot", "--no-sandbox", "--db", str(db), cwd=tmp_path, env=dict(env))
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
        again = cli("run", "hubspot", "--no-sandbox", "--db", str(db), cwd=tmp_path, env=dict(env))
        assert again.returncode == 0, again.stderr
        companies = next(s for s in json.loads(again.stdout.strip().splitlines()[-1])["streams"]
                         if s["stream"] == "companies")
        assert companies["records"] == len(_vendor_ids(sb, "companies")) + len(_vendor_ids(sb, "companies", True))
