"""X API v2 connector against the sandbox emulator: rate limits, partial errors, vendor errors,
malformed posts, vocabulary, and a scrubbed cassette whose responses validate against X's OpenAPI."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from connectors.x import connector_spec
from connectors.x.emulator import ACCESS_TOKEN, USER_ACCESS_TOKEN
from connectors.x.helpers import XConnector
from core.connector import ConnectorConfig, Page, RunContext
from core.errors import ConfigurationError, TerminalVendorError
from core.http import RetryPolicy
from core.mapping import load_mapping
from core.vocabulary import CATEGORIES, CHANNELS, TOUCH_TYPES
from sandbox.api import Sandbox, start_sandbox
from sandbox.faults import FaultRule
from tests.conftest import scrubbing_vcr

ROOT = Path(__file__).resolve().parents[1]
CASSETTE = ROOT / "cassettes" / "x" / "small_run.yaml"
SEARCH_ROUTE = "GET /2/tweets/search/recent"
ARCHIVE_ROUTE = "GET /2/tweets/search/all"
MENTIONS_ROUTE = "GET /2/users/{id}/mentions"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox(["x"], size=800, seed=4, in_process=True) as sandbox:
        yield sandbox


def _connector(settings: dict[str, Any], waits: list[float] | None = None, **values: Any) -> XConnector:
    policy = RetryPolicy(sleep=waits.append if waits is not None else (lambda s: None),
                         retry_after_cap=901, max_elapsed=3000)
    return XConnector(ConnectorConfig("x", "sandbox", {**settings, **values}, frozenset({"bearer_token"})),
                      policy=policy)


def _extract(conn: XConnector, stream: str, state: dict[str, Any] | None = None,
             ctx: RunContext | None = None) -> list[Page]:
    try:
        return list(conn.extract(connector_spec().stream(stream), state or {}, ctx or RunContext("r", datetime.now(UTC))))
    finally:
        conn.close()


def _records(pages: list[Page]) -> list[dict[str, Any]]:
    return [r for p in pages for r in p.records]


# -- registration and vocabulary ------------------------------------------------------------------


def test_registered_streams_and_mappings_use_the_vocabulary() -> None:
    from core.plugins import get_registry

    spec = get_registry().connector("x")
    assert [s.name for s in spec.streams] == ["tweets", "users"]
    assert spec.mappings_dir is not None
    for stream in spec.streams:
        for name in stream.mappings:
            load_mapping(spec.mappings_dir / name)
    fields = yaml.safe_load((spec.mappings_dir / "tweets.yaml").read_text())["fields"]
    assert fields["touch_type"]["value"] == "social_mention" and "social_mention" in TOUCH_TYPES
    assert fields["channel"]["value"] == "social" and "social" in CHANNELS
    assert fields["category"]["value"] in CATEGORIES


# -- since_id per source, state with the last page of each source ---------------------------------


def test_since_id_per_source_and_only_new_posts_after_advance() -> None:
    with start_sandbox(["x"], size=800, seed=4, in_process=True) as sandbox:
        settings = dict(sandbox.emulators["x"].settings, queries="@factoryline;;@factoryline -is:retweet")
        first = _extract(_connector(settings, page_size=20), "tweets")
        state = first[-1].state
        assert state is not None and set(state["since_ids"]) == {"search:@factoryline",
                                                                 "search:@factoryline -is:retweet", "mentions"}
        # a source's since_id is stored only with its last page: mentions pages (those after the page
        # that stores the last query's since_id) before it do not carry it
        searched = next(i for i, p in enumerate(first)
                        if p.state is not None and "search:@factoryline -is:retweet" in p.state["since_ids"])
        mention_pages = first[searched + 1:]
        assert len(mention_pages) >= 2 and all(p.state is not None and "mentions" not in p.state["since_ids"]
                                               for p in mention_pages[:-1])
        seen = {r["id"] for r in _records(first)}
        assert len(seen) == len(_records(first))
        sandbox.advance(25)
        sandbox.reset_stats("x")
        second = _extract(_connector(settings, page_size=20), "tweets", state)
        new = {r["id"] for r in _records(second)}
        assert new and new.isdisjoint(seen)
        assert all(int(i) > int(state["since_ids"]["mentions"]) for i in new)
        served = sandbox.stats("x")["routes"]
        assert served[MENTIONS_ROUTE]["records"] + served[SEARCH_ROUTE]["records"] >= len(new)
        assert served[MENTIONS_ROUTE]["records"] < len(seen)


# -- backfill through full-archive search, then recent search by since_id ---------------------------


def _archive_ids(sb: Sandbox, query: str, end_time: str) -> set[str]:
    """Every post full-archive search holds for ``query`` up to ``end_time`` (plain httpx)."""
    x = sb.emulators["x"]
    ids: set[str] = set()
    params: dict[str, Any] = {"query": query, "max_results": 500, "start_time": "2006-03-21T00:00:01Z",
                              "end_time": end_time}
    with httpx.Client(base_url=x.base_url, headers={"Authorization": f"Bearer {x.settings['bearer_token']}"}) as c:
        while True:
            body = c.get("/2/tweets/search/all", params=params).json()
            ids.update(t["id"] for t in body.get("data", []))
            if not body["meta"].get("next_token"):
                return ids
            params["next_token"] = body["meta"]["next_token"]


def test_backfill_reads_the_history_then_recent_search_by_since_id() -> None:
    key = "search:@factoryline"
    with start_sandbox(["x"], size=800, seed=4, in_process=True) as sandbox:
        settings = dict(sandbox.emulators["x"].settings, archive_start="all", archive_page_size=20)
        first = _extract(_connector(settings, mentions=False), "tweets")
        state = first[-1].state
        assert state is not None and state["backfills"][key]["done"]
        end_time = state["backfills"][key]["end_time"]
        served = sandbox.stats("x")["routes"]
        expected = _archive_ids(sandbox, "@factoryline", end_time)
        got = [r["id"] for r in _records(first)]
        assert sorted(got) == sorted(expected) and len(got) > 100  # the whole history, each post once
        assert SEARCH_ROUTE not in served  # the backfill replaces the first run's recent search
        assert served[ARCHIVE_ROUTE]["requests"] == (len(expected) + 19) // 20
        assert state["since_ids"][key] == max(expected, key=int)
        # progress is stored with every page: each page continues below the last one's oldest post
        for page in first[:-1]:
            assert page.state is not None and key not in page.state["since_ids"]
            progress = page.state["backfills"][key]
            assert progress["until_id"] == min((r["id"] for r in page.records), key=int)
            assert progress["newest_id"] == state["since_ids"][key] and progress["end_time"] == end_time
        sandbox.advance(25)
        sandbox.reset_stats("x")
        second = _extract(_connector(settings, mentions=False), "tweets", state)
        new = {r["id"] for r in _records(second)}
        assert new and new.isdisjoint(got) and all(int(i) > int(state["since_ids"][key]) for i in new)
        served = sandbox.stats("x")["routes"]
        assert ARCHIVE_ROUTE not in served and served[SEARCH_ROUTE]["records"] == len(new)


def test_backfill_requests_its_range_and_resumes_from_the_stored_progress() -> None:
    asked: list[httpx.URL] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        asked.append(request.url)
        return httpx.Response(200, json={"meta": {"result_count": 0}})

    def extract(state: dict[str, Any], **values: Any) -> dict[str, Any]:
        conn = XConnector(ConnectorConfig("x", "t", {"bearer_token": "tok-123456", "base_url": "http://x.test",
                                                     "mentions": False, "queries": "a", **values},
                                          frozenset({"bearer_token"})),
                          policy=RetryPolicy(sleep=lambda s: None), transport=httpx.MockTransport(vendor))
        pages = _extract(conn, "tweets", state, RunContext("r", datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)))
        assert pages[-1].state is not None
        return pages[-1].state

    done = extract({}, archive_start="2024-01-01")
    first = asked.pop()
    assert first.path == "/2/tweets/search/all" and first.params["max_results"] == "500"
    assert (first.params["start_time"], first.params["end_time"]) == ("2024-01-01T00:00:00Z", "2026-05-01T11:59:30Z")
    assert done["backfills"]["search:a"]["done"] and "search:a" not in done["since_ids"]  # nothing found
    # a killed backfill resumes with its own range below its last loaded page, even if switched off since
    progress = {"start": "2024-01-01T00:00:00Z", "end_time": "2026-04-01T00:00:00Z", "newest_id": "900",
                "until_id": "500"}
    after = extract({"since_ids": {}, "backfills": {"search:a": progress}})
    resumed = asked.pop()
    assert resumed.path == "/2/tweets/search/all" and resumed.params["until_id"] == "500"
    assert resumed.params["end_time"] == "2026-04-01T00:00:00Z" and after["since_ids"] == {"search:a": "900"}
    extract(after, archive_start="all")  # done: recent search by since_id
    assert asked.pop().path == "/2/tweets/search/recent" and not asked
    with pytest.raises(ConfigurationError):
        extract({}, archive_start="last spring")


def test_full_archive_pace_follows_x(sb: Sandbox) -> None:
    """1 request/s on full-archive search only when asked (pace) or after X answered 429."""
    def archive_waits(**values: Any) -> list[float]:
        waits: list[float] = []
        conn = _connector(dict(sb.emulators["x"].settings, archive_start="all", archive_page_size=50),
                          waits, mentions=False, **values)
        pages = _extract(conn, "tweets")
        assert len(pages) >= 3
        return waits

    assert archive_waits() == []  # the sandbox enforces no limits: no waiting
    paced = archive_waits(pace=True)
    assert len(paced) >= 2 and all(0 < w <= 1.05 for w in paced)
    sb.set_faults("x", [FaultRule("rate_limit", route=ARCHIVE_ROUTE, at=1, retry_after=1)])
    try:
        after_429 = archive_waits()
    finally:
        sb.set_faults("x", [])
    assert len(after_429) >= 3 and all(w <= 2 for w in after_429)  # the 429's reset, then 1/s


# -- throttling: x-rate-limit-* ---------------------------------------------------------------------


def test_429_waits_for_x_rate_limit_reset_once(sb: Sandbox) -> None:
    sb.set_faults("x", [FaultRule("rate_limit", route=MENTIONS_ROUTE, at=2, retry_after=40)])
    sb.reset_stats("x")
    waits: list[float] = []
    try:
        pages = _extract(_connector(sb.emulators["x"].settings, waits, page_size=50), "tweets")
    finally:
        sb.set_faults("x", [])
    assert len(waits) == 1 and 35 <= waits[0] <= 41  # until the reset X announced, not a backoff
    statuses = sb.stats("x")["routes"][MENTIONS_ROUTE]["statuses"]
    assert statuses.get("429") == 1  # no storm
    assert len(_records(pages)) > 50


def test_exhausted_window_in_a_200_waits_for_its_reset_before_the_next_request() -> None:
    reset = int(time.time()) + 120
    seen: list[str] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        first = "pagination_token" not in request.url.params
        body: dict[str, Any] = {"data": [{"id": "2" if first else "1", "text": "@factoryline hi",
                                          "author_id": "7", "created_at": "2026-01-01T00:00:00.000Z"}],
                                "includes": {"users": [{"id": "7", "name": "A", "username": "a"}]},
                                "meta": {"result_count": 1, "newest_id": "2" if first else "1"}}
        if first:
            body["meta"]["next_token"] = "b1"
        return httpx.Response(200, json=body, headers={"x-rate-limit-limit": "450",
                                                       "x-rate-limit-remaining": "0" if first else "449",
                                                       "x-rate-limit-reset": str(reset)})

    waits: list[float] = []
    conn = XConnector(ConnectorConfig("x", "t", {"bearer_token": "tok-123456", "base_url": "http://x.test",
                                                 "brand_user_id": "1", "queries": []}, frozenset({"bearer_token"})),
                      policy=RetryPolicy(sleep=waits.append), transport=httpx.MockTransport(vendor))
    pages = _extract(conn, "tweets")
    assert [r["id"] for r in _records(pages)] == ["2", "1"] and len(seen) == 2
    assert len(waits) == 1 and 100 < waits[0] <= 120


# -- partial errors, vendor errors, malformed posts ---------------------------------------------------


def test_partial_errors_are_counted_and_posts_kept(sb: Sandbox) -> None:
    ctx = RunContext("r", datetime.now(UTC))
    pages = _extract(_connector(sb.emulators["x"].settings, queries=""), "tweets", ctx=ctx)
    orphans = [r for r in _records(pages) if r["author"] is None]
    assert orphans and ctx.counters["tweets.partial_errors"] >= len({r["author_id"] for r in orphans})
    users = _extract(_connector(sb.emulators["x"].settings, queries=""), "users")
    assert {u["id"] for u in _records(users)}.isdisjoint({r["author_id"] for r in orphans})


def test_server_error_is_retried_and_refused_token_is_terminal(sb: Sandbox,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    settings = sb.emulators["x"].settings
    sb.set_faults("x", [FaultRule("server_error", route=MENTIONS_ROUTE, at=1)])
    waits: list[float] = []
    try:
        assert _records(_extract(_connector(settings, waits, queries=""), "tweets"))
    finally:
        sb.set_faults("x", [])
    assert len(waits) == 1
    with pytest.raises(TerminalVendorError) as info:
        _extract(_connector(settings, bearer_token="wrong-token-abcdef"), "tweets")
    assert info.value.status == 401 and "sources.x.bearer_token" in str(info.value)
    assert "wrong-token-abcdef" not in str(info.value) and "wrong-token-abcdef" not in caplog.text


@pytest.mark.parametrize("kind", ["missing_id", "bad_timestamp"])
def test_malformed_post_becomes_a_reject(sb: Sandbox, kind: str) -> None:
    sb.set_faults("x", [FaultRule(kind, route=MENTIONS_ROUTE, at=1)])  # type: ignore[arg-type]
    try:
        pages = _extract(_connector(sb.emulators["x"].settings, queries=""), "tweets")
    finally:
        sb.set_faults("x", [])
    spec = connector_spec()
    assert spec.mappings_dir is not None
    cm = load_mapping(spec.mappings_dir / "tweets.yaml").compile(system="x", instance="sandbox", stream="tweets",
                                                                 raw_table="x__tweets")
    rows, rejects = 0, []
    for page in pages:
        mapped = cm.map_page(page.records, run_id="r", extracted_at=datetime.now(UTC))
        rows += mapped.rows.num_rows
        rejects += mapped.rejects.to_pylist()
    assert len(rejects) == 1 and rejects[0]["severity"] == "record"
    assert rows + 1 == len(_records(pages))  # nothing else lost
    if kind == "bad_timestamp":
        assert rejects[0]["field"] == "occurred_at"


# -- cassette: recorded from the sandbox, validated against X's OpenAPI, replayed alone -------------


def _vcr(record_mode: str) -> Any:
    return scrubbing_vcr(record_mode, [ACCESS_TOKEN, USER_ACCESS_TOKEN])


def _cassette_run(base_url: str, token: str) -> dict[str, list[Page]]:
    settings = {"base_url": base_url, "bearer_token": token, "brand_username": "factoryline", "page_size": 10}
    return {s: _extract(_connector(settings), s) for s in ("tweets", "users")}


@pytest.mark.skipif(not os.environ.get("FACTORYLINE_RECORD_CASSETTES"),
                    reason="set FACTORYLINE_RECORD_CASSETTES=1 to re-record cassettes/x/")
def test_record_cassette() -> None:
    with start_sandbox(["x"], size=300, seed=7, in_process=True) as sandbox:
        x = sandbox.emulators["x"]
        CASSETTE.parent.mkdir(parents=True, exist_ok=True)
        CASSETTE.unlink(missing_ok=True)
        with _vcr("all").use_cassette(str(CASSETTE)):
            pages = _cassette_run(x.base_url, x.settings["bearer_token"])
    assert _records(pages["tweets"]) and _records(pages["users"])


def test_cassette_holds_no_secret() -> None:
    text = CASSETTE.read_text()
    assert ACCESS_TOKEN not in text and USER_ACCESS_TOKEN not in text
    assert "authorization" not in text.lower() and "bearer" not in text.lower()


def test_what_the_connector_received_validates_against_the_openapi(vendor_reference: Path) -> None:
    openapi = json.loads((vendor_reference / "x" / "x_api_v2_openapi_2.159.json").read_text())
    schemas = {"/2/tweets/search/recent": "Get2TweetsSearchRecentResponse",
               "/mentions": "Get2UsersIdMentionsResponse", "/2/users/by/username/": "Get2UsersByUsernameUsernameResponse"}
    checked = 0
    for interaction in yaml.safe_load(CASSETTE.read_text())["interactions"]:
        path = httpx.URL(interaction["request"]["uri"]).path
        name = next(v for k, v in schemas.items() if k in path)
        body = json.loads(interaction["response"]["body"]["string"])
        schema = {"$ref": f"#/components/schemas/{name}", "components": openapi["components"]}
        jsonschema.Draft7Validator(schema).validate(body)
        checked += 1
    assert checked >= 4


def test_replay_from_cassette_alone() -> None:
    # nothing listens on port 9: every answer must come from the cassette
    with _vcr("none").use_cassette(str(CASSETTE)) as cassette:
        pages = _cassette_run("http://127.0.0.1:9", "replay-ignores-the-token")
        assert cassette.all_played
    tweets = _records(pages["tweets"])
    assert tweets and len({t["id"] for t in tweets}) == len(tweets)
    assert len(pages["tweets"]) >= 3  # next_token / pagination_token paging was replayed
    assert all(t["author"] is None or t["author"]["id"] == t["author_id"] for t in tweets)
    handles = {u["id"]: u["username"] for u in _records(pages["users"])}
    assert handles and all(t["author"]["username"] == handles[t["author_id"]] for t in tweets if t["author"])
    state = pages["tweets"][-1].state
    assert state is not None and set(state["since_ids"]) == {"search:@factoryline", "mentions"}


def test_search_since_id_older_than_seven_days_is_not_sent() -> None:
    """X refuses a recent-search since_id older than its 7-day window (400): after a long pause the
    connector searches the whole window instead; the mentions timeline keeps its since_id."""
    asked: list[httpx.URL] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        asked.append(request.url)
        return httpx.Response(200, json={"meta": {"result_count": 0}})

    def snowflake(days_ago: float) -> str:
        return str(int((time.time() - days_ago * 86_400) * 1000 - 1288834974657) << 22)

    conn = XConnector(ConnectorConfig("x", "t", {"bearer_token": "tok-123456", "base_url": "http://x.test",
                                                 "brand_user_id": "1", "queries": "a;;b"}, frozenset({"bearer_token"})),
                      policy=RetryPolicy(sleep=lambda s: None), transport=httpx.MockTransport(vendor))
    old, fresh = snowflake(9), snowflake(2)
    _extract(conn, "tweets", {"since_ids": {"search:a": old, "search:b": fresh, "mentions": old}})
    sent = {u.params.get("query") or "mentions": u.params.get("since_id") for u in asked}
    assert sent == {"a": None, "b": fresh, "mentions": old}
