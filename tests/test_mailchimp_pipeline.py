"""Mailchimp end to end: sandbox emulator -> connector -> mappings -> dlt -> DuckDB.

Expected figures are read from the emulator with plain httpx (the vendor API), never from the
code under test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from pipelines.destination import Target
from pipelines.run import run
from sandbox.api import Sandbox, start_sandbox

ACTIONS = {"open": "email_open", "click": "click", "bounce": "bounce"}


def _client(sb: Sandbox) -> httpx.Client:
    s = sb.emulators["mailchimp"].settings
    return httpx.Client(base_url=s["api_root"], auth=("anystring", s["api_key"]), timeout=30)


def _all(c: httpx.Client, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        body = c.get(path, params={"count": 1000, "offset": offset, **params}).json()
        out.extend(body[key])
        offset += 1000
        if offset >= body["total_items"]:
            return out


def vendor_members(sb: Sandbox, **params: Any) -> dict[str, dict[str, Any]]:
    """Subscriber hash -> member, live and archived, as the emulator serves them."""
    list_id = sb.emulators["mailchimp"].settings["list_id"]
    with _client(sb) as c:
        live = _all(c, f"/lists/{list_id}/members", "members", **params)
        archived = _all(c, f"/lists/{list_id}/members", "members", status="archived", **params)
    return {m["id"]: m for m in live + archived}


Activity = tuple[str, str, str, str, str | None]


def vendor_activity(sb: Sandbox, **params: Any) -> Counter[Activity]:
    """(campaign id, subscriber hash, canonical touch type, timestamp, url) of every activity item,
    counted (a double open in one second is two items)."""
    out: Counter[Activity] = Counter()
    with _client(sb) as c:
        for camp in _all(c, "/campaigns", "campaigns"):
            if camp["status"] not in ("sent", "sending", "canceled"):
                continue
            for e in _all(c, f"/reports/{camp['id']}/email-activity", "emails", **params):
                out.update((camp["id"], e["email_id"], ACTIONS[a["action"]], a["timestamp"], a.get("url"))
                           for a in e["activity"])
    return out


def _db(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


def _run(sb: Sandbox, db: Path, **kw: Any) -> Any:
    return run(["mailchimp"], target=Target(db_path=db), overrides={"mailchimp": sb.emulators["mailchimp"].settings},
               **kw)


@pytest.fixture()
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with start_sandbox(["mailchimp"], size=1500, seed=11, state_dir=tmp_path / "world", in_process=True) as sb:
        yield sb


def _touches(con: duckdb.DuckDBPyConnection) -> Counter[Activity]:
    """The loaded touches as (campaign id, subscriber hash, touch type, timestamp, url), resolved
    through the canonical ids their refs point at."""
    rows = con.sql("""
        SELECT c.source_record_id, p.source_record_id, t.touch_type, t.occurred_at, t.url
        FROM factory.touch t
        JOIN factory.person p ON p.id = t.person_id
        JOIN factory.campaign c ON c.id = t.campaign_id
        WHERE t.source_system = 'mailchimp'""").fetchall()
    return Counter((c, p, tt, at.astimezone(UTC).isoformat(), url) for c, p, tt, at, url in rows)


def _check_full_load(sandbox: Sandbox, db: Path) -> None:
    """Every member (live and archived), campaign and activity item the emulator holds is loaded."""
    members = vendor_members(sandbox)
    activity = vendor_activity(sandbox)
    con = _db(db)
    people = dict(con.sql("SELECT source_record_id, lead_status FROM factory.person "
                          "WHERE source_system = 'mailchimp'").fetchall())
    assert people == {h: m["status"] for h, m in members.items()}
    deleted = {r[0] for r in con.sql("SELECT source_record_id FROM factory.person WHERE is_deleted").fetchall()}
    assert deleted == {h for h, m in members.items() if m["status"] == "archived"} != set()
    emails = dict(con.sql("SELECT source_record_id, email FROM factory.person").fetchall())
    assert all(emails[h] == m["email_address"].strip().lower() for h, m in members.items())
    with _client(sandbox) as c:
        campaigns = {x["id"]: x["settings"]["title"] for x in _all(c, "/campaigns", "campaigns")}
    assert dict(con.sql("SELECT source_record_id, name FROM factory.campaign").fetchall()) == campaigns
    assert con.sql("SELECT DISTINCT channel FROM factory.campaign").fetchall() == [("email",)]
    # every activity item is one touch whose person and campaign refs resolve to loaded rows
    assert activity and _touches(con) == activity
    assert con.sql("SELECT count(*) FROM factory.touch").fetchall()[0] == (activity.total(),)
    assert set(con.sql("SELECT DISTINCT channel, category FROM factory.touch").fetchall()) == {("email", "marketing")}
    assert {r[0] for r in con.sql("SELECT DISTINCT touch_type FROM factory.touch").fetchall()} == \
        {a[2] for a in activity}
    assert con.sql("SELECT count(*) FROM factory.rejects").fetchall()[0] == (0,)
    assert con.sql("SELECT count(*) FROM factory.mailchimp__lists").fetchall()[0] == (1,)
    con.close()


def test_full_then_incremental_run_fetches_only_changes(sandbox: Sandbox, tmp_path: Path) -> None:
    db = tmp_path / "fl.duckdb"
    sandbox.advance(10)  # some members archived (listed only with status=archived)
    first_start = datetime.now(UTC) - timedelta(seconds=1)
    first = _run(sandbox, db, started_at=first_start)
    assert first.status == "success", first.as_dict()
    _check_full_load(sandbox, db)
    sandbox.advance(40)  # enough ticks that the running campaigns get new opens and clicks
    sandbox.reset_stats("mailchimp")
    second = _run(sandbox, db)
    assert second.status == "success", second.as_dict()
    served = sandbox.stats("mailchimp")["routes"]
    # the window the second run asked for: the first run's start minus the lookback (300 s)
    since = (first_start - timedelta(seconds=300)).replace(microsecond=0).isoformat()
    changed_members = vendor_members(sandbox, since_last_changed=since)
    new_activity = vendor_activity(sandbox, since=since)
    everyone, all_activity = vendor_members(sandbox), vendor_activity(sandbox)
    assert 0 < len(changed_members) < len(everyone) and 0 < len(new_activity) < len(all_activity)
    by_stream = {s.stream: s for s in second.streams}
    assert by_stream["members"].records == len(changed_members)
    # the touches the second run wrote are exactly the activity since its window
    rewritten = _db(db).sql("SELECT count(*) FROM factory.touch WHERE run_id = ?", params=[second.run_id])
    assert rewritten.fetchall()[0] == (new_activity.total(),)
    assert served["GET /3.0/lists/{list_id}/members"]["records"] == len(changed_members)
    # nothing lost, nothing duplicated: the tables equal a full read of the emulator now
    con = _db(db)
    assert {r[0] for r in con.sql("SELECT source_record_id FROM factory.person").fetchall()} == set(everyone)
    assert _touches(con) == all_activity
    assert con.sql("SELECT count(*) FROM factory.touch").fetchall()[0] == (all_activity.total(),)
    statuses = dict(con.sql("SELECT source_record_id, lead_status FROM factory.person").fetchall())
    assert statuses == {h: m["status"] for h, m in everyone.items()}


def test_stream_cut_short_resumes_to_a_clean_result(tmp_path: Path) -> None:
    """The key is refused half-way through email activity: the run is not a success, what was read
    stays loaded, and the next run finishes the unfinished campaigns and ends like a clean run."""
    from sandbox.faults import FaultRule

    with start_sandbox(["mailchimp"], size=800, seed=11, in_process=True) as sb:
        db = tmp_path / "fl.duckdb"
        sb.set_faults("mailchimp", [FaultRule("expired_token", route="GET /3.0/reports/{campaign_id}/email-activity",
                                              at=2)])
        first = _run(sb, db)
        by_stream = {s.stream: s.status for s in first.streams}
        assert by_stream["email_activity"] == "failed" and by_stream["members"] == "success"
        con = _db(db)
        partial = _touches(con)
        con.close()
        activity = vendor_activity(sb)
        assert partial and partial < activity  # the first campaign's touches were kept
        sb.set_faults("mailchimp", [])
        second = _run(sb, db)
        assert second.status == "success", second.as_dict()
        con = _db(db)
        assert _touches(con) == activity
        assert con.sql("SELECT count(*) FROM factory.touch").fetchall()[0] == (activity.total(),)
