"""Cassette replay of the HubSpot streams beyond contacts: engagements, line items, owners, deal
pipelines, email events, form submissions and marketing emails.

Recorded once from the sandbox emulator (``FACTORYLINE_RECORD_CASSETTES=1``) into
cassettes/hubspot/crm_and_marketing.yaml, scrubbed of the token; replayed from the file alone.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.hubspot import connector_spec
from connectors.hubspot.helpers import HubSpotConnector
from core.connector import ConnectorConfig, Page, RunContext
from core.http import RetryPolicy
from tests.test_hubspot_connector import CASSETTE_TOKEN, TOKEN, _vcr

CASSETTE = Path(__file__).resolve().parents[1] / "cassettes" / "hubspot" / "crm_and_marketing.yaml"
STREAMS = ("line_items", "calls", "notes", "owners", "deal_pipelines", "email_events", "form_submissions",
           "marketing_emails")
#: fixed so the recorded query strings (endTimestamp) match on replay
STARTED = datetime(2031, 1, 1, tzinfo=UTC)
SIZE = 40


def _extract(base_url: str, token: str) -> dict[str, list[Page]]:
    cfg = ConnectorConfig("hubspot", "cassette", {"access_token": token, "base_url": base_url, "page_size": 20,
                                                  "association_batch": 20, "search_requests_per_second": 0},
                          frozenset({"access_token"}))
    conn = HubSpotConnector(cfg, policy=RetryPolicy(sleep=lambda s: None, rng=random.Random(1)))
    try:
        return {s: list(conn.extract(connector_spec().stream(s), {}, RunContext("c", STARTED))) for s in STREAMS}
    finally:
        conn.close()


def _summary(pages: dict[str, list[Page]]) -> dict[str, Any]:
    return {s: ([sorted(str(r.get("id") or r.get("conversionId")) for p in ps for r in p.records)],
                ps[-1].state) for s, ps in pages.items()}


@pytest.mark.skipif(not os.environ.get("FACTORYLINE_RECORD_CASSETTES"),
                    reason="set FACTORYLINE_RECORD_CASSETTES=1 to re-record cassettes/hubspot/")
def test_record_cassette() -> None:
    from sandbox.api import start_sandbox

    with start_sandbox(["hubspot"], size=SIZE, seed=21, in_process=True) as sb:
        hs = sb.emulators["hubspot"]
        live = _extract(hs.base_url, hs.settings["access_token"])
        if CASSETTE.exists():
            CASSETTE.unlink()
        with _vcr("all").use_cassette(str(CASSETTE)):
            recorded = _extract(hs.base_url, hs.settings["access_token"])
    assert _summary(recorded) == _summary(live)
    assert all(any(p.records for p in ps) for ps in recorded.values())


def test_cassette_holds_no_secret() -> None:
    text = CASSETTE.read_text()
    assert TOKEN not in text and CASSETTE_TOKEN not in text
    assert "Bearer" not in text and "authorization" not in text.lower()


def test_replay_from_cassette_alone() -> None:
    # nothing listens on port 9: every answer must come from the cassette
    with _vcr("none").use_cassette(str(CASSETTE)) as cassette:
        pages = _extract("http://127.0.0.1:9", "any-token-replay-ignores-it")
        assert cassette.all_played
    assert all(any(p.records for p in ps) for ps in pages.values())
    assert all(ps[-1].state is not None for ps in pages.values())
    calls = [r for p in pages["calls"] for r in p.records if not r["archived"]]
    assert calls and all(set(r["associations"]) == {"contacts", "companies", "deals"} for r in calls)
    events = [r for p in pages["email_events"] for r in p.records]
    assert {e["type"] for e in events} >= {"SENT", "DELIVERED"}
    assert all(r["formId"] for p in pages["form_submissions"] for r in p.records)
    # recorded answers are real emulator answers: ids in the emulator's ranges
    assert all(6_000_000_000 <= int(r["id"]) < 7_000_000_000 for r in calls)
