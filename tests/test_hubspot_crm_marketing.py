"""HubSpot connector: line items, engagements, owners, pipelines, marketing streams, the 10,000-result
search cap at one millisecond, rate limits, the daily quota and HubSpot's own error answers.

Everything runs against the sandbox's HubSpot emulator over real HTTP; expected figures are read
from the emulator through its API (httpx) or from the world functions it serves, never from the
connector under test.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connectors.hubspot import connector_spec
from connectors.hubspot import settings as S
from connectors.hubspot.emulator_marketing import merged_ids
from connectors.hubspot.helpers import HubSpotConnector
from core.connector import ConnectorConfig, Page, RunContext
from core.errors import QuotaExhaustedError, TerminalVendorError
from core.http import RetryPolicy
from sandbox.api import FaultRule, Sandbox, start_sandbox
from sandbox.world import World, parse_time

SIZE = 600
DERIVED = ("line_items", *S.ENGAGEMENTS)


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox(["hubspot"], size=SIZE, seed=11, in_process=True) as sandbox:
        yield sandbox


def _http(sandbox: Sandbox) -> httpx.Client:
    hs = sandbox.emulators["hubspot"]
    return httpx.Client(base_url=hs.base_url, timeout=60,
                        headers={"Authorization": f"Bearer {hs.settings['access_token']}"})


def _connector(sandbox: Sandbox, waits: list[float] | None = None, **values: Any) -> HubSpotConnector:
    hs = sandbox.emulators["hubspot"]
    cfg = ConnectorConfig("hubspot", "test", {**hs.settings, "search_requests_per_second": 0, **values},
                          frozenset({"access_token"}))
    policy = RetryPolicy(sleep=(waits.append if waits is not None else (lambda s: None)), rng=random.Random(1))
    return HubSpotConnector(cfg, policy=policy)


def _run(conn: HubSpotConnector, stream: str, state: dict[str, Any] | None = None, *,
         started_at: datetime | None = None) -> list[Page]:
    ctx = RunContext(run_id="t", started_at=started_at or datetime.now(UTC))
    return list(conn.extract(connector_spec().stream(stream), state or {}, ctx))


def _records(pages: list[Page]) -> list[dict[str, Any]]:
    return [r for p in pages for r in p.records]


def _listed(c: httpx.Client, obj: str, archived: bool = False) -> dict[str, str]:
    """id -> updatedAt of every record the emulator lists."""
    out: dict[str, str] = {}
    after: str | None = None
    while True:
        body = c.get(f"/crm/v3/objects/{obj}", params={"limit": 100, "archived": str(archived).lower(),
                                                        **({"after": after} if after else {})}).json()
        out.update({r["id"]: r["updatedAt"] for r in body["results"]})
        after = (body.get("paging") or {}).get("next", {}).get("after")
        if not after:
            return out


def _all_events(c: httpx.Client, **params: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    offset: str | None = None
    while True:
        body = c.get("/email/public/v1/events", params={"limit": 1000, **params,
                                                         **({"offset": offset} if offset else {})}).json()
        out.update({e["id"]: e for e in body["events"]})
        if not body["hasMore"]:
            return out
        offset = body["offset"]


def _all_submissions(c: httpx.Client) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for form in c.get("/marketing/v3/forms/").json()["results"]:
        after: str | None = None
        while True:
            body = c.get(f"/form-integrations/v1/submissions/forms/{form['id']}",
                         params={"limit": 50, **({"after": after} if after else {})}).json()
            out.update({r["conversionId"]: {**r, "formId": form["id"]} for r in body["results"]})
            after = (body.get("paging") or {}).get("next", {}).get("after")
            if not after:
                break
    return out


# ---------------------------------------------------------------------------------------------
# CRM: line items, engagements, owners, pipelines
# ---------------------------------------------------------------------------------------------


def test_line_items_and_engagements_full_then_only_changes(sb: Sandbox) -> None:
    conn = _connector(sb)
    with _http(sb) as c:
        states: dict[str, dict[str, Any]] = {}
        before = {obj: _listed(c, obj) for obj in DERIVED}
        for obj in DERIVED:
            pages = _run(conn, obj)
            recs = _records(pages)
            live, archived = before[obj], _listed(c, obj, archived=True)
            assert {r["id"] for r in recs if not r["archived"]} == set(live), obj
            assert {r["id"] for r in recs if r["archived"]} == set(archived), obj
            props = {p["name"] for p in c.get(f"/crm/v3/properties/{obj}").json()["results"]}
            assert all(set(r["properties"]) == props for r in recs if not r["archived"]), obj
            # associations with their HubSpot-defined type on every live record, as edges too
            targets = S.ASSOCIATIONS[obj]
            edges = [e for p in pages for e in p.side_records["associations"]]
            assert all(set(r["associations"]) == set(targets) for r in recs if not r["archived"])
            assert edges and all(e["from_type"] == obj and e["type_id"] for e in edges)
            sample = next(r for r in recs if not r["archived"])
            for to in targets:
                truth = c.post(f"/crm/v4/associations/{obj}/{to}/batch/read",
                               json={"inputs": [{"id": sample["id"]}]}).json()["results"]
                assert sample["associations"][to] == (truth[0]["to"] if truth else []), (obj, to)
            state = pages[-1].state
            assert state is not None
            states[obj] = state
        sb.advance(1)
        for obj in DERIVED:
            after = _listed(c, obj)
            changed = {i for i, ts in after.items() if before[obj].get(i) != ts}
            newly_archived = set(before[obj]) - set(after)
            got = _records(_run(conn, obj, states[obj]))
            assert changed, obj
            assert {r["id"] for r in got if not r["archived"]} == changed, obj
            assert newly_archived <= {r["id"] for r in got if r["archived"]}, obj


def test_deal_stage_classification_comes_from_the_pipelines_custom_stages_included(sb: Sandbox) -> None:
    with _http(sb) as c:
        pipelines = c.get("/crm/v3/pipelines/deals").json()["results"]
    meta = {(p["id"], s["id"]): s["metadata"] for p in pipelines for s in p["stages"]}
    deals = [r for r in _records(_run(_connector(sb), "deals")) if not r["archived"]]
    custom = [d for d in deals if d["properties"]["pipeline"] != "default"]
    assert custom, "the emulator puts some deals in a custom pipeline"
    closed = 0
    for d in deals:
        m = meta[(d["properties"]["pipeline"], d["properties"]["dealstage"])]
        stage = d["pipelineStage"]
        assert stage["isClosed"] == (m["isClosed"] == "true")
        assert stage["isWon"] == (m["isClosed"] == "true" and float(m["probability"]) == 1.0)
        closed += stage["isClosed"] and d in custom
    # custom stage ids are numbers: only their metadata says which are closed (and won)
    assert closed and all(d["properties"]["dealstage"].isdigit() for d in custom)


def test_owners_and_deal_pipelines_are_read_whole(sb: Sandbox) -> None:
    conn = _connector(sb)
    with _http(sb) as c:
        owners = c.get("/crm/v3/owners/").json()["results"]
        pipelines = c.get("/crm/v3/pipelines/deals").json()["results"]
    got = _run(conn, "owners")
    assert len(got) == 1 and sorted(r["id"] for r in got[0].records) == sorted(o["id"] for o in owners)
    got = _run(conn, "deal_pipelines")
    assert [p["id"] for p in _records(got)] == [p["id"] for p in pipelines]
    assert [len(p["stages"]) for p in _records(got)] == [len(p["stages"]) for p in pipelines]


def test_merged_contacts_are_recorded_in_raw(sb: Sandbox) -> None:
    recs = [r for r in _records(_run(_connector(sb), "contacts")) if not r["archived"]]
    clock = sb.clock()
    seed = clock["seed"]
    expected = {str(1000 + i): ";".join(str(m) for m in merged_ids(seed, i))
                for i in range(clock["size"]) if merged_ids(seed, i)}
    got = {r["id"]: r["properties"]["hs_merged_object_ids"] for r in recs if r["properties"]["hs_merged_object_ids"]}
    live = {r["id"] for r in recs}
    assert got and got == {k: v for k, v in expected.items() if k in live}


def test_associations_are_refreshed_when_the_record_did_not_change(sb: Sandbox) -> None:
    conn = _connector(sb, association_refresh_seconds=0)
    full = _run(conn, "deals")
    state = full[-1].state
    assert state is not None and state["associations_refreshed_at"] == state["cursor"]
    edges = {(e["from_id"], e["to_type"], e["to_id"], e["type_id"]) for p in full
             for e in p.side_records["associations"]}
    # nothing changes in HubSpot; the refresh still re-reads every live deal's associations
    later = datetime.now(UTC) + timedelta(seconds=1)
    again = _run(conn, "deals", state, started_at=later)
    swept = {(e["from_id"], e["to_type"], e["to_id"], e["type_id"]) for p in again
             for e in p.side_records["associations"]}
    assert swept == edges
    assert again[-1].state is not None and again[-1].state["associations_refreshed_at"] == again[-1].state["cursor"]
    # without the refresh due, an incremental run reads no associations of unchanged deals
    quiet = _run(_connector(sb, association_refresh_seconds=86_400), "deals", again[-1].state,
                 started_at=later + timedelta(seconds=1))
    reread = {r["id"] for r in _records(quiet)}  # only what changed within the lookback
    assert all(e["from_id"] in reread for p in quiet for e in p.side_records["associations"])
    assert len(reread) < len({e[0] for e in edges}) / 5


# ---------------------------------------------------------------------------------------------
# the 10,000-result search cap at one millisecond
# ---------------------------------------------------------------------------------------------


def test_12000_contacts_modified_at_the_same_millisecond_are_all_fetched() -> None:
    # a world of 1.2M people: one tick modifies exactly the 1% congruent to its residue, all at the
    # tick's millisecond (the world computes records per index: no population is built)
    size = 1_200_000
    with start_sandbox(["hubspot"], size=size, seed=3, in_process=True) as big:
        clock = big.advance(1)
        ticks = [parse_time(t) for t in clock["ticks"]]
        world = World(seed=3, size=size, ticks=ticks)
        people = world.people
        same_ms = {1000 + i for i in set(world.changed_since(people, ticks[1], 1))
                   if world.modified_ms(people, i, 1) == ticks[1] and not world.is_archived(people, i, 1)}
        assert len(same_ms) >= 11_900  # 12,000 minus those archived by the same tick
        conn = _connector(big, association_batch=1000)
        big.reset_stats("hubspot")
        pages = _run(conn, "contacts", {"cursor": clock["ticks"][0]},
                     started_at=datetime.fromtimestamp(ticks[1] / 1000, UTC) + timedelta(seconds=1))
        recs = _records(pages)
        live = [r for r in recs if not r["archived"]]
        ids = [int(r["id"]) for r in live]
        assert len(ids) == len(set(ids)) and set(ids) == same_ms
        assert {r["properties"]["lastmodifieddate"] for r in live} == {clock["ticks"][1]}
        archived = {int(r["id"]) for r in recs if r["archived"]}
        assert archived == {1000 + i for i in world.archived_indexes(people, 1)}
        # the query was split: no search asked for a page past the 10,000th result
        routes = big.stats("hubspot")["routes"]
        assert set(routes["POST /crm/v3/objects/{type}/search"]["statuses"]) == {"200"}


# ---------------------------------------------------------------------------------------------
# rate limits, quota, HubSpot's own error answers
# ---------------------------------------------------------------------------------------------


def test_enforced_rate_limits_no_429_surfaces_and_everything_arrives() -> None:
    with start_sandbox(["hubspot"], size=2000, seed=5, in_process=True, rate_limits=True) as limited:
        conn = _connector(limited, page_size=10, association_batch=100)
        limited.reset_stats("hubspot")
        recs = _records(_run(conn, "contacts"))
        stats = limited.stats("hubspot")
        with _http(limited) as c:
            expected = set(_listed(c, "contacts")) | set(_listed(c, "contacts", archived=True))
    assert {r["id"] for r in recs} == expected
    # more than the 190 requests of one 10-second window were needed ...
    assert conn.api.requests > 190
    # ... and the budget kept below the limit: the emulator refused (almost) nothing
    refused = sum(r["statuses"].get("429", 0) for r in stats["routes"].values())
    assert refused <= 2, stats["routes"]


def test_daily_quota_exhausted_mid_stream_raises_and_keeps_the_cursor(sb: Sandbox) -> None:
    # HubSpot answers the daily limit with 429 and policyName DAILY; the emulator renders it for a
    # rate_limit fault whose Retry-After is an hour or more
    daily = FaultRule(kind="rate_limit", route="/crm/v3/objects/companies", at=4, times=1_000_000,
                      retry_after=86_400)
    sb.set_faults("hubspot", [daily])
    try:
        conn = _connector(sb, page_size=20, association_batch=20)
        pages: list[Page] = []
        with pytest.raises(QuotaExhaustedError) as ei:
            for page in conn.extract(connector_spec().stream("companies"), {}, RunContext("q", datetime.now(UTC))):
                pages.append(page)
        assert ei.value.code == "DAILY"
        # the first page arrived and its state does not move the cursor
        assert pages and all(p.records for p in pages) and all(p.state == {} for p in pages)
        # a second call is refused before it is sent: the quota is known to be gone
        sb.reset_stats("hubspot")
        with pytest.raises(QuotaExhaustedError):
            conn.api.get_json("/crm/v3/owners/")
        assert sb.stats("hubspot")["requests"] == 0
    finally:
        sb.set_faults("hubspot", [])


def test_hubspot_error_answers_on_marketing_endpoints(sb: Sandbox) -> None:
    with _http(sb) as c:
        truth = _all_events(c)
    route = "/email/public/v1/events"
    sb.set_faults("hubspot", [FaultRule(kind="rate_limit", route=route, at=1, retry_after=0.5),
                              FaultRule(kind="server_error", route=route, at=2, status=502)])
    try:
        waits: list[float] = []
        got = _records(_run(_connector(sb, waits=waits), "email_events"))
        assert {e["id"] for e in got} == set(truth)
        assert 0.5 in waits  # the 429's Retry-After was obeyed
        token = sb.emulators["hubspot"].settings["access_token"]
        sb.set_faults("hubspot", [FaultRule(kind="expired_token", route="/form-integrations", at=1)])
        with pytest.raises(TerminalVendorError) as ei:
            _run(_connector(sb), "form_submissions")
        assert ei.value.status == 401 and token not in str(ei.value) and token not in repr(ei.value.__cause__)
    finally:
        sb.set_faults("hubspot", [])


# ---------------------------------------------------------------------------------------------
# marketing
# ---------------------------------------------------------------------------------------------


def test_email_events_full_then_incremental_and_resume_after_a_kill() -> None:
    with start_sandbox(["hubspot"], size=SIZE, seed=13, in_process=True) as s, _http(s) as c:
        first_start = datetime.now(UTC)
        conn = _connector(s)
        full = _run(conn, "email_events", started_at=first_start)
        truth = _all_events(c, endTimestamp=int(first_start.timestamp() * 1000))
        got = _records(full)
        assert len(got) == len({e["id"] for e in got}) and {e["id"] for e in got} == set(truth)
        assert {e["type"] for e in got} >= {"SENT", "DELIVERED", "OPEN", "CLICK"}
        state = full[-1].state
        assert state == {"cursor": first_start.isoformat().replace("+00:00", "Z")}

        # killed after the first page: the page's state holds the window and the offset to go on from
        assert len(full) > 1 and full[0].state is not None and "pending" in full[0].state
        resumed = _run(_connector(s), "email_events", full[0].state, started_at=first_start)
        assert {e["id"] for e in _records(full[:1]) + _records(resumed)} == set(truth)
        assert {e["id"] for e in _records(resumed)} == set(truth) - {e["id"] for e in _records(full[:1])}

        # the world moves on: only the window since the cursor (minus the lookback) is read
        s.advance(1)
        second_start = datetime.now(UTC)
        s.reset_stats("hubspot")
        inc = _records(_run(conn, "email_events", state, started_at=second_start))
        lower = int((first_start - timedelta(seconds=S.DEFAULT_LOOKBACK_SECONDS)).timestamp() * 1000)
        window = _all_events(c, startTimestamp=lower, endTimestamp=int(second_start.timestamp() * 1000))
        assert {e["id"] for e in inc} == set(window)
        assert len(inc) < len(got) / 5
        assert s.stats("hubspot")["routes"]["GET /email/public/v1/events"]["requests"] <= 2


def test_form_submissions_and_marketing_emails(sb: Sandbox) -> None:
    conn = _connector(sb)
    start = datetime.now(UTC)
    full = _run(conn, "form_submissions", started_at=start)
    with _http(sb) as c:
        truth = _all_submissions(c)
        emails = c.get("/marketing/v3/emails", params={"limit": 100}).json()["results"]
    got = _records(full)
    assert {r["conversionId"]: r["formId"] for r in got} == {k: v["formId"] for k, v in truth.items()}
    state = full[-1].state
    assert state is not None and state["cursor"]
    # a re-run with nothing new submitted loads nothing (the API has no time filter: it pages through)
    again = _records(_run(conn, "form_submissions", state, started_at=start + timedelta(hours=1)))
    lower = int((start - timedelta(seconds=S.DEFAULT_LOOKBACK_SECONDS)).timestamp() * 1000)
    assert {r["conversionId"] for r in again} == {k for k, v in truth.items() if v["submittedAt"] >= lower}
    campaigns = _records(_run(conn, "marketing_emails"))
    assert sorted(r["id"] for r in campaigns) == sorted(e["id"] for e in emails) and campaigns
