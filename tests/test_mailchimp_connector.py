"""Mailchimp connector against the sandbox emulator: faults, the connection limit, malformed
records, vocabulary, and a scrubbed cassette replayed without any server."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from connectors.mailchimp import connector_spec
from connectors.mailchimp.emulator import API_KEY
from connectors.mailchimp.helpers import MailchimpConnector
from core.connector import ConnectorConfig, Page, RunContext
from core.errors import RateLimitedError, TerminalVendorError
from core.http import RetryPolicy, classify_response
from core.mapping import load_mapping
from core.vocabulary import CATEGORIES, CHANNELS, TOUCH_TYPES
from sandbox.api import Sandbox, start_sandbox
from sandbox.faults import FaultRule
from tests.conftest import scrubbing_vcr

ROOT = Path(__file__).resolve().parents[1]
CASSETTE = ROOT / "cassettes" / "mailchimp" / "small_run.yaml"
MEMBERS_ROUTE = "GET /3.0/lists/{list_id}/members"
ACTIVITY_ROUTE = "GET /3.0/reports/{campaign_id}/email-activity"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox(["mailchimp"], size=1500, seed=5, in_process=True) as sandbox:
        yield sandbox


def _config(settings: dict[str, Any], **values: Any) -> ConnectorConfig:
    return ConnectorConfig("mailchimp", "sandbox", {**settings, **values}, frozenset({"api_key"}))


def _connector(sb: Sandbox, waits: list[float] | None = None, headers: dict[str, str] | None = None,
               **values: Any) -> MailchimpConnector:
    policy = RetryPolicy(sleep=waits.append) if waits is not None else RetryPolicy(sleep=lambda s: None)
    return MailchimpConnector(_config(sb.emulators["mailchimp"].settings, **values), policy=policy, headers=headers)


def _extract(conn: MailchimpConnector, stream: str, state: dict[str, Any] | None = None) -> list[Page]:
    try:
        return list(conn.extract(connector_spec().stream(stream), state or {}, RunContext("r", datetime.now(UTC))))
    finally:
        conn.close()


def _records(pages: list[Page]) -> list[dict[str, Any]]:
    return [r for p in pages for r in p.records]


def _member_total(sb: Sandbox) -> int:
    s = sb.emulators["mailchimp"].settings
    r = httpx.get(f"{s['api_root']}/lists/{s['list_id']}/members", params={"count": 1},
                  auth=("anystring", s["api_key"]))
    return int(r.json()["total_items"])


# -- registration and vocabulary ------------------------------------------------------------------


def test_registered_streams_and_mappings_use_the_vocabulary() -> None:
    from core.plugins import get_registry

    spec = get_registry().connector("mailchimp")
    assert [s.name for s in spec.streams] == ["lists", "campaigns", "members", "email_activity"]
    assert spec.mappings_dir is not None
    for stream in spec.streams:
        for name in stream.mappings:
            load_mapping(spec.mappings_dir / name)  # raises MappingError if invalid
    touch = yaml.safe_load((spec.mappings_dir / "email_activity.yaml").read_text())
    fields = touch["fields"]
    assert set(fields["touch_type"]["table"].values()) | {fields["touch_type"]["default"]} <= set(TOUCH_TYPES)
    assert fields["touch_type"]["table"] == {"open": "email_open", "click": "click", "bounce": "bounce"}
    assert fields["channel"]["value"] in CHANNELS and fields["category"]["value"] in CATEGORIES
    campaign = yaml.safe_load((spec.mappings_dir / "campaigns.yaml").read_text())
    assert campaign["fields"]["channel"]["value"] in CHANNELS


# -- state: only the last page of a list or campaign moves its cursor ------------------------------


def test_state_moves_only_with_the_last_page(sb: Sandbox) -> None:
    pages = _extract(_connector(sb, page_size=100), "members", {"lists": {}})
    assert len(pages) >= 3 and len(_records(pages)) == _member_total(sb)
    list_id = sb.emulators["mailchimp"].settings["list_id"]
    assert all(p.state == {"lists": {}} for p in pages[:-1])
    assert pages[-1].state is not None and list_id in pages[-1].state["lists"]
    assert sum(p.requests for p in pages) >= len(pages)


# -- the vendor's errors and throttling --------------------------------------------------------------


def test_429_problem_json_is_retried_after_retry_after(sb: Sandbox) -> None:
    sb.set_faults("mailchimp", [FaultRule("rate_limit", route=MEMBERS_ROUTE, at=2, retry_after=2)])
    sb.reset_stats("mailchimp")
    waits: list[float] = []
    try:
        pages = _extract(_connector(sb, waits, page_size=100, concurrency=1), "members")
    finally:
        sb.set_faults("mailchimp", [])
    assert waits == [2.0]
    statuses = sb.stats("mailchimp")["routes"][MEMBERS_ROUTE]["statuses"]
    assert statuses.get("429") == 1
    ids = [r["id"] for r in _records(pages)]
    assert len(ids) == len(set(ids)) and len(ids) >= _member_total(sb)


def test_connection_limit_429_without_retry_after_waits_and_is_transient() -> None:
    body = {"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": "Too Many Requests",
            "status": 429, "detail": "You have exceeded the limit of 10 simultaneous connections.", "instance": "x"}
    err = classify_response("mailchimp", 429, {"content-type": "application/problem+json"}, body)
    assert isinstance(err, RateLimitedError) and err.retry_after == 1.0 and "10 simultaneous" in str(err)


def test_server_error_is_retried(sb: Sandbox) -> None:
    sb.set_faults("mailchimp", [FaultRule("server_error", route=ACTIVITY_ROUTE, at=1)])
    waits: list[float] = []
    try:
        pages = _extract(_connector(sb, waits), "email_activity")
    finally:
        sb.set_faults("mailchimp", [])
    assert len(waits) == 1 and _records(pages)


def test_refused_key_is_terminal_and_never_shown(sb: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    sb.set_faults("mailchimp", [FaultRule("expired_token", route=MEMBERS_ROUTE, at=1)])
    try:
        with pytest.raises(TerminalVendorError) as info:
            _extract(_connector(sb), "members")
    finally:
        sb.set_faults("mailchimp", [])
    text = str(info.value)
    assert info.value.status == 401 and "sources.mailchimp.api_key" in text
    assert API_KEY not in text and API_KEY not in caplog.text


def test_never_more_than_ten_connections(sb: Sandbox) -> None:
    """Each request is held 600 ms by the emulator; a concurrency of 50 asked for is capped at 10,
    so the 11th-connection 429 never happens."""
    s = sb.emulators["mailchimp"].settings
    delay = {"X-Sandbox-Delay-Ms": "600"}

    def raw(_: int) -> int:
        return httpx.get(f"{s['api_root']}/ping", auth=("anystring", s["api_key"]),
                         headers={"X-Sandbox-Delay-Ms": "2000"}, timeout=20).status_code

    with concurrent.futures.ThreadPoolExecutor(14) as pool:  # control: 14 at once do hit the limit
        assert 429 in list(pool.map(raw, range(14)))
    sb.reset_stats("mailchimp")
    conn = _connector(sb, headers=delay, page_size=20, concurrency=50)
    assert conn.concurrency == 10
    pages = _extract(conn, "members")
    statuses = sb.stats("mailchimp")["routes"][MEMBERS_ROUTE]["statuses"]
    assert set(statuses) == {"200"} and statuses["200"] >= 15
    assert len({r["id"] for r in _records(pages)}) == _member_total(sb)


# -- malformed records become rejects ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing_id", "bad_timestamp"])
def test_malformed_activity_becomes_rejects(sb: Sandbox, kind: str) -> None:
    sb.set_faults("mailchimp", [FaultRule(kind, route=ACTIVITY_ROUTE, at=1)])  # type: ignore[arg-type]
    try:
        pages = _extract(_connector(sb), "email_activity")
    finally:
        sb.set_faults("mailchimp", [])
    spec = connector_spec()
    assert spec.mappings_dir is not None
    cm = load_mapping(spec.mappings_dir / "email_activity.yaml").compile(
        system="mailchimp", instance="sandbox", stream="email_activity", raw_table="mailchimp__email_activity")
    items = rows = 0
    reasons = []
    for page in pages:
        mapped = cm.map_page(page.records, run_id="r", extracted_at=datetime.now(UTC))
        items += sum(len(r.get("activity") or []) for r in page.records)
        rows += mapped.rows.num_rows
        reasons += [(x["severity"], x["field"], x["reason"]) for x in mapped.rejects.to_pylist()]
    assert reasons, "the malformed record did not become a reject"
    record_level = [r for r in reasons if r[0] == "record"]
    if kind == "missing_id":  # the whole record (all its activity items) is rejected, nothing else
        assert len(record_level) == 1 and "id" in record_level[0][2]
        broken = [r for p in pages for r in p.records if not r.get("email_id")]
        assert len(broken) == 1 and rows == items - len(broken[0]["activity"])
    else:  # each item whose timestamp does not parse is rejected (occurred_at is required)
        assert record_level and all(r[1] == "occurred_at" for r in record_level)
        assert rows + len(record_level) == items


# -- cassette: recorded from the sandbox, replayed from the file alone ------------------------------


def _vcr(record_mode: str) -> Any:
    return scrubbing_vcr(record_mode, [API_KEY])


def _cassette_run(api_root: str, key: str, list_id: str) -> dict[str, list[Page]]:
    config = ConnectorConfig("mailchimp", "cassette", {"api_root": api_root, "api_key": key, "list_id": list_id,
                                                       "page_size": 25, "concurrency": 1}, frozenset({"api_key"}))
    out = {}
    for stream in ("campaigns", "members", "email_activity"):
        conn = MailchimpConnector(config, policy=RetryPolicy(max_attempts=1))
        out[stream] = _extract(conn, stream)
    return out


@pytest.mark.skipif(not os.environ.get("FACTORYLINE_RECORD_CASSETTES"),
                    reason="set FACTORYLINE_RECORD_CASSETTES=1 to re-record cassettes/mailchimp/")
def test_record_cassette() -> None:
    with start_sandbox(["mailchimp"], size=120, seed=7, in_process=True) as sandbox:
        s = sandbox.emulators["mailchimp"].settings
        CASSETTE.parent.mkdir(parents=True, exist_ok=True)
        CASSETTE.unlink(missing_ok=True)
        with _vcr("all").use_cassette(str(CASSETTE)):
            pages = _cassette_run(s["api_root"], s["api_key"], s["list_id"])
    assert _records(pages["members"]) and _records(pages["email_activity"])


def test_cassette_holds_no_secret() -> None:
    text = CASSETTE.read_text()
    assert API_KEY not in text and API_KEY.split("-")[0] not in text
    assert "authorization" not in text.lower() and "basic " not in text.lower()


def test_replay_from_cassette_alone() -> None:
    list_id = next(part for part in _cassette_uris() if "/lists/" in part).split("/lists/")[1].split("/")[0]
    # nothing listens on port 9: every answer must come from the cassette
    with _vcr("none").use_cassette(str(CASSETTE)) as cassette:
        pages = _cassette_run("http://127.0.0.1:9/3.0", "replay-ignores-the-key-us21", list_id)
        assert cassette.all_played
    members = _records(pages["members"])
    assert members and len({m["id"] for m in members}) == len(members)
    assert len(pages["members"]) >= 2  # count/offset paging was replayed
    emails = _records(pages["email_activity"])
    assert emails and all(e["_key"] == f"{e['campaign_id']}/{e['email_id']}" for e in emails)
    campaigns = {c["id"] for c in _records(pages["campaigns"])}
    assert {e["campaign_id"] for e in emails} <= campaigns
    assert pages["members"][-1].state is not None and list_id in pages["members"][-1].state["lists"]


def _cassette_uris() -> list[str]:
    return [i["request"]["uri"] for i in yaml.safe_load(CASSETTE.read_text())["interactions"]]
