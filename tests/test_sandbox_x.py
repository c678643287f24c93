"""The X API v2 emulator over real HTTP (plain httpx), checked against the journeys and X's OpenAPI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from sandbox import FaultRule, Sandbox, start_sandbox
from sandbox.journeys import Journeys
from sandbox.world import World, format_ms, parse_time
from tests.conftest import VENDOR_REFERENCE

SIZE = 600
SPEC = "connectors.x.emulator:emulator_spec"
OPENAPI = VENDOR_REFERENCE / "x" / "x_api_v2_openapi_2.159.json"
BRAND_ID = "1100000000000000001"
SEARCH = "/2/tweets/search/recent"
ARCHIVE = "/2/tweets/search/all"
MENTIONS = f"/2/users/{BRAND_ID}/mentions"
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox([SPEC], size=SIZE, seed=7, in_process=True) as sandbox:
        yield sandbox


@pytest.fixture
def faults(sb: Sandbox) -> Iterator[Sandbox]:
    yield sb
    sb.set_faults("x", [])


def http(sandbox: Sandbox, token: str | None = None, timeout: float = 10) -> httpx.Client:
    x = sandbox.emulators["x"]
    return httpx.Client(base_url=x.base_url, timeout=timeout,
                        headers={"Authorization": f"Bearer {token or x.settings['bearer_token']}"})


def journeys_of(sandbox: Sandbox) -> Journeys:
    clock = sandbox.clock()
    return Journeys(World(seed=clock["seed"], size=clock["size"], ticks=[parse_time(t) for t in clock["ticks"]],
                          grow=clock.get("grow", False)))


def expected_mentions(j: Journeys, since_ms: int = 0) -> set[tuple[str | None, str]]:
    """(author handle, created_at) of every brand mention from the journeys, at or after ``since_ms``."""
    out: set[tuple[str | None, str]] = set()
    for p in range(j.world.people.count(j.world.tick)):
        handle = j.social_handle(p)
        if handle is None:
            continue
        for touch in j.touches(p):
            if touch.kind == "social_mention" and touch.at_ms >= since_ms:
                out.add((handle, format_ms(touch.at_ms - touch.at_ms % 1000)))
    return out


def page_all(client: httpx.Client, path: str, params: dict[str, Any], token_param: str) -> list[dict[str, Any]]:
    bodies = []
    params = dict(params)
    while True:
        r = client.get(path, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        bodies.append(body)
        token = body["meta"].get("next_token")
        if not token:
            return bodies
        params[token_param] = token


def handles_of(bodies: list[dict[str, Any]], j: Journeys) -> set[tuple[str | None, str]]:
    """(handle, created_at) of the tweets served, the handle from the author id (users may be
    suspended and then missing from includes)."""
    users = {u["id"]: u["username"] for b in bodies for u in b.get("includes", {}).get("users", [])}
    out = set()
    for body in bodies:
        for tweet in body.get("data", []):
            handle = users.get(tweet["author_id"])
            if handle is None:  # suspended: reported in errors, resolve through the journeys
                assert any(e["resource_id"] == tweet["author_id"] for e in body["errors"])
                handle = j.social_handle(int(tweet["author_id"]) - 1_400_000_000_000)
            out.add((handle, tweet["created_at"]))
    return out


# -- schema -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return json.loads(OPENAPI.read_text())


def validate(openapi: dict[str, Any], schema_name: str, body: Any) -> None:
    """Validate against a component schema, resolving its $refs inside the OpenAPI document."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": openapi["components"]}
    jsonschema.Draft7Validator(schema).validate(body)


def test_emulator_spec_loads_by_reference() -> None:
    from connectors.x.emulator import emulator_spec

    assert emulator_spec().name == "x"


def test_responses_validate_against_the_openapi(sb: Sandbox, openapi: dict[str, Any]) -> None:
    tweet_props = set(openapi["components"]["schemas"]["Tweet"]["properties"])
    user_props = set(openapi["components"]["schemas"]["User"]["properties"])
    params: dict[str, Any] = {"max_results": 100, "expansions": "author_id",
                              "tweet.fields": "created_at,author_id,public_metrics,lang,conversation_id,entities",
                              "user.fields": "created_at,public_metrics,description,location,verified"}
    with http(sb) as c:
        mentions = c.get(MENTIONS, params=params).json()
        search = c.get(SEARCH, params={**params, "query": "@factoryline -is:retweet"}).json()
        validate(openapi, "Get2UsersIdMentionsResponse", mentions)
        validate(openapi, "Get2TweetsSearchRecentResponse", search)
        for body in (mentions, search):
            assert body["data"], "needs tweets to check"
            for tweet in body["data"]:
                assert set(tweet) <= tweet_props
                assert tweet["created_at"].endswith(".000Z")
                assert set(tweet["public_metrics"]) >= {"retweet_count", "reply_count", "like_count",
                                                        "quote_count", "impression_count"}
            for user in body["includes"]["users"]:
                assert set(user) <= user_props
        validate(openapi, "Get2UsersByUsernameUsernameResponse", c.get("/2/users/by/username/factoryline").json())
        for problem in (c.get(SEARCH).json(), httpx.get(sb.emulators["x"].base_url + SEARCH,
                                                        params={"query": "a"}).json()):
            validate(openapi, "Problem", problem)


def test_tweets_default_fields_and_snowflake_ids(sb: Sandbox) -> None:
    with http(sb) as c:
        body = c.get(MENTIONS, params={"max_results": 20}).json()
    tweets = body["data"]
    assert all(set(t) == {"id", "text", "edit_history_tweet_ids"} for t in tweets)
    ids = [int(t["id"]) for t in tweets]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)  # newest first, unique
    assert body["meta"]["newest_id"] == tweets[0]["id"] and body["meta"]["oldest_id"] == tweets[-1]["id"]
    assert body["meta"]["result_count"] == 20 and "next_token" in body["meta"]
    assert all("@factoryline" in t["text"] for t in tweets)


# -- paging equals the journeys ----------------------------------------------------------------------


def test_search_pages_with_next_token_to_exactly_the_recent_mentions() -> None:
    with start_sandbox([SPEC], size=2000, seed=7, in_process=True) as sb, http(sb) as c:
        j = journeys_of(sb)
        start = int(time.time() * 1000) - 6 * DAY_MS
        expected = expected_mentions(j, start)
        assert len(expected) > 10  # more than one page
        params = {"query": "@factoryline -is:retweet", "max_results": 10, "expansions": "author_id",
                  "tweet.fields": "created_at,author_id", "start_time": format_ms(start)}
        bodies = page_all(c, SEARCH, params, "next_token")
    assert len(bodies) == (len(expected) + 9) // 10
    assert sum(b["meta"]["result_count"] for b in bodies) == len(expected)
    assert handles_of(bodies, j) == expected


def test_search_window_is_seven_days(sb: Sandbox) -> None:
    with http(sb) as c:
        r = c.get(SEARCH, params={"query": "factoryline",
                                  "start_time": format_ms(int(time.time() * 1000) - 8 * DAY_MS)})
    assert r.status_code == 400
    assert r.json()["type"] == "https://api.twitter.com/2/problems/invalid-request"
    assert "start_time" in r.json()["errors"][0]["message"]


# -- full-archive search ------------------------------------------------------------------------------


def test_search_all_validates_against_the_openapi(sb: Sandbox, openapi: dict[str, Any]) -> None:
    tweet_props = set(openapi["components"]["schemas"]["Tweet"]["properties"])
    params: dict[str, Any] = {"query": "@factoryline", "max_results": 500, "start_time": "2006-03-21T00:00:01Z",
                              "expansions": "author_id", "tweet.fields": "created_at,author_id,public_metrics,lang,entities",
                              "user.fields": "created_at,public_metrics,description,location,verified"}
    with http(sb) as c:
        r = c.get(ARCHIVE, params=params)
        body = r.json()
        validate(openapi, "Get2TweetsSearchAllResponse", body)
        assert r.headers["x-rate-limit-limit"] == "300"  # its own window, not recent search's 450
        assert body["meta"]["result_count"] == len(body["data"]) > 100  # past recent search's 100
        assert all(set(t) <= tweet_props for t in body["data"]) and body["includes"]["users"]
        # X's validation: page size 10..500, start on or after 2006-03-21, end 10 s before the request
        now = int(time.time() * 1000)
        bad: dict[str, Any]
        for bad in ({"max_results": 501}, {"max_results": 9}, {"start_time": "2006-03-20T00:00:00Z"},
                    {"end_time": format_ms(now)}, {"start_time": format_ms(now - DAY_MS),
                                                   "end_time": format_ms(now - 2 * DAY_MS)},
                    {"sort_order": "oldest"}, {"query": "x" * 1025}):
            refused = c.get(ARCHIVE, params={"query": "@factoryline", **bad})
            assert refused.status_code == 400, bad
            validate(openapi, "Problem", refused.json())
            assert refused.json()["type"] == "https://api.twitter.com/2/problems/invalid-request"


def test_search_all_pages_to_exactly_the_whole_history(sb: Sandbox) -> None:
    j = journeys_of(sb)
    everything = expected_mentions(j)
    now = int(time.time() * 1000)
    month = expected_mentions(j, now - 30 * DAY_MS)
    assert len(everything) > len(month) + 100  # most of the history is older than any recent window
    with http(sb) as c:
        bodies = page_all(c, ARCHIVE, {"query": "@factoryline", "max_results": 100, "expansions": "author_id",
                                       "tweet.fields": "created_at", "start_time": "2006-03-21T00:00:01Z"},
                          "next_token")
        ids = [int(t["id"]) for b in bodies for t in b.get("data", [])]
        # without start_time X searches the last 30 days
        default = page_all(c, ARCHIVE, {"query": "@factoryline", "max_results": 500, "expansions": "author_id",
                                        "tweet.fields": "created_at"}, "next_token")
        # a range: start inclusive, end exclusive, both honoured over the whole history
        lo, hi = now - 200 * DAY_MS, now - 100 * DAY_MS
        ranged = page_all(c, ARCHIVE, {"query": "@factoryline", "max_results": 10, "expansions": "author_id",
                                       "tweet.fields": "created_at", "start_time": format_ms(lo),
                                       "end_time": format_ms(hi)}, "next_token")
    assert handles_of(bodies, j) == everything and len(ids) == len(everything)
    assert ids == sorted(ids, reverse=True) and len(bodies) == (len(everything) + 99) // 100
    assert handles_of(default, j) == month
    assert handles_of(ranged, j) == expected_mentions(j, lo) - expected_mentions(j, hi) and len(ranged) > 1


def test_search_all_rate_limits() -> None:
    """Published: 300 per 15 minutes and 1 per second, enforced with rate_limits=True; without them the
    window headers count down but never reach 0 (a client that honours them never waits)."""
    with start_sandbox([SPEC], size=100, seed=7, in_process=True, rate_limits=True) as sb, http(sb) as c:
        first = c.get(ARCHIVE, params={"query": "@factoryline"})
        second = c.get(ARCHIVE, params={"query": "@factoryline"})
        assert first.status_code == 200 and second.status_code == 429
        assert second.json()["title"] == "Too Many Requests"
        assert time.time() < int(second.headers["x-rate-limit-reset"]) <= time.time() + 2  # the next second
        assert int(second.headers["x-rate-limit-remaining"]) == 299  # the window still has requests
        time.sleep(max(0.0, int(second.headers["x-rate-limit-reset"]) - time.time()) + 0.05)
        assert c.get(ARCHIVE, params={"query": "@factoryline"}).status_code == 200
    with start_sandbox([SPEC], size=100, seed=7, in_process=True) as sb, \
            http(sb, sb.emulators["x"].settings["user_access_token"]) as c:
        remaining = [int(c.get("/2/users/me").headers["x-rate-limit-remaining"]) for _ in range(80)]
        archive = [c.get(ARCHIVE, params={"query": "@factoryline"}).status_code for _ in range(3)]
    assert min(remaining) >= 1 and remaining[:3] == [74, 73, 72]  # /users/me: 75 per window
    assert archive == [200, 200, 200]


def test_mentions_page_to_the_end_and_report_suspended_authors(sb: Sandbox) -> None:
    j = journeys_of(sb)
    expected = expected_mentions(j)
    assert 30 < len(expected) <= 800
    with http(sb) as c:
        bodies = page_all(c, MENTIONS, {"max_results": 25, "expansions": "author_id", "tweet.fields": "created_at"},
                          "pagination_token")
    assert handles_of(bodies, j) == expected
    errors = [e for b in bodies for e in b.get("errors", [])]
    assert errors, "some authors are suspended"
    for e in errors:
        assert e["type"] == "https://api.twitter.com/2/problems/resource-not-found" and e["resource_type"] == "user"


def test_query_operators(sb: Sandbox) -> None:
    j = journeys_of(sb)
    with http(sb) as c:
        every = page_all(c, SEARCH, {"query": "@factoryline", "max_results": 100, "expansions": "author_id",
                                     "tweet.fields": "created_at"},
                         "next_token")
        handle = next(iter(handles_of(every, j)))[0]
        mine = c.get(SEARCH, params={"query": f"from:{handle} @factoryline", "expansions": "author_id"}).json()
        assert mine["meta"]["result_count"] >= 1
        assert {u["username"] for u in mine["includes"]["users"]} == {handle}
        assert c.get(SEARCH, params={"query": "@factoryline is:retweet"}).json() == {"meta": {"result_count": 0}}
        assert c.get(SEARCH, params={"query": "foo:bar"}).status_code == 400
        assert c.get(SEARCH, params={"query": "x", "max_results": 5}).status_code == 400


def test_since_id_after_advance_returns_only_new_mentions() -> None:
    with start_sandbox([SPEC], size=SIZE, seed=7, in_process=True) as sb, http(sb) as c:
        before = c.get(MENTIONS, params={"max_results": 5}).json()["meta"]["newest_id"]
        old = expected_mentions(journeys_of(sb))
        sb.advance(ticks=25)
        new = expected_mentions(journeys_of(sb)) - old
        assert new, "25 ticks bring new mentions"
        params = {"query": "@factoryline", "since_id": before, "max_results": 10, "expansions": "author_id",
                  "tweet.fields": "created_at"}
        bodies = page_all(c, SEARCH, params, "next_token")
        assert handles_of(bodies, journeys_of(sb)) == new
        timeline = page_all(c, MENTIONS, {"since_id": before, "expansions": "author_id", "tweet.fields": "created_at"},
                            "pagination_token")
        assert handles_of(timeline, journeys_of(sb)) == new


# -- users, auth, rate limits ---------------------------------------------------------------------------


def test_users_and_auth(sb: Sandbox) -> None:
    x = sb.emulators["x"]
    with http(sb) as c:
        brand = c.get("/2/users/by/username/factoryline", params={"user.fields": "public_metrics"}).json()["data"]
        assert brand["id"] == BRAND_ID and "followers_count" in brand["public_metrics"]
        missing = c.get("/2/users/by/username/nobody_here").json()
        assert "data" not in missing and missing["errors"][0]["title"] == "Not Found Error"
        me = c.get("/2/users/me")
        assert me.status_code == 403 and me.json()["title"] == "Unsupported Authentication"
    with http(sb, x.settings["user_access_token"]) as c:
        assert c.get("/2/users/me").json()["data"]["username"] == "factoryline"
    r = httpx.get(x.base_url + SEARCH, params={"query": "factoryline"}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json() == {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}


def test_rate_limit_headers_count_down(sb: Sandbox) -> None:
    with http(sb) as c:
        a = c.get(SEARCH, params={"query": "factoryline"}).headers
        b = c.get(SEARCH, params={"query": "factoryline"}).headers
    assert a["x-rate-limit-limit"] == "450"
    assert int(b["x-rate-limit-remaining"]) == int(a["x-rate-limit-remaining"]) - 1
    assert time.time() < int(a["x-rate-limit-reset"]) <= time.time() + 900


def test_rate_limit_enforced_with_problem_body() -> None:
    with start_sandbox([SPEC], size=100, seed=7, in_process=True, rate_limits=True) as sb:
        x = sb.emulators["x"]
        with http(sb, x.settings["user_access_token"]) as c:
            statuses = [c.get("/2/users/me").status_code for _ in range(76)]
            last = c.get("/2/users/me")
    assert statuses[:75] == [200] * 75 and statuses[75] == 429
    assert last.status_code == 429 and last.headers["x-rate-limit-remaining"] == "0"
    assert last.headers["content-type"].startswith("application/problem+json")
    assert last.json() == {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank",
                           "status": 429}


# -- faults ----------------------------------------------------------------------------------------------


def test_fault_kinds(faults: Sandbox) -> None:
    faults.set_faults("x", [FaultRule("rate_limit", route=SEARCH, at=1, retry_after=30),
                            FaultRule("server_error", route=MENTIONS, at=1),
                            FaultRule("expired_token", route="/2/users/by/username", at=1),
                            FaultRule("missing_id", route=MENTIONS, at=2),
                            FaultRule("bad_timestamp", route=MENTIONS, at=3)])
    params: dict[str, Any] = {"max_results": 10, "tweet.fields": "created_at"}
    with http(faults) as c:
        r = c.get(SEARCH, params={"query": "factoryline"})
        assert r.status_code == 429 and r.json()["title"] == "Too Many Requests"
        assert int(r.headers["x-rate-limit-reset"]) >= time.time() + 25
        r = c.get(MENTIONS, params=params)
        assert r.status_code == 503 and r.json()["title"] == "Service Unavailable"
        assert c.get("/2/users/by/username/factoryline").status_code == 401
        assert sum("id" not in t for t in c.get(MENTIONS, params=params).json()["data"]) == 1
        stamps = [t["created_at"] for t in c.get(MENTIONS, params=params).json()["data"]]
        bad = [s for s in stamps if not _parses(s)]
        assert len(bad) == 1
        assert c.get(MENTIONS, params=params).status_code == 200  # rules fired once
    faults.set_faults("x", [FaultRule("truncate", route=SEARCH, at=1), FaultRule("drop", route=MENTIONS, at=1),
                            FaultRule("timeout", route="/2/users/by/username", at=1, delay=2)])
    with http(faults, timeout=0.5) as c:
        r = c.get(SEARCH, params={"query": "factoryline"})
        assert r.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.text)
        with pytest.raises(httpx.TransportError):
            c.get(MENTIONS)
        with pytest.raises(httpx.TimeoutException):
            c.get("/2/users/by/username/factoryline")
    assert set(faults.stats("x")["routes"]) >= {"GET /2/tweets/search/recent", "GET /2/users/{id}/mentions"}


def _parses(stamp: str) -> bool:
    try:
        parse_time(stamp)
    except ValueError:
        return False
    return True


# -- pure listing, journeys alignment, scale -------------------------------------------------------------


def test_mention_touch_urls_carry_the_served_tweet_ids(sb: Sandbox) -> None:
    j = journeys_of(sb)
    urls = {}
    for p in range(j.world.people.count(j.world.tick)):
        for touch in j.touches(p):
            if touch.kind == "social_mention":
                assert touch.url is not None
                urls[touch.url.rpartition("/")[2]] = touch.url
    with http(sb) as c:
        bodies = page_all(c, MENTIONS, {"max_results": 100, "expansions": "author_id"}, "pagination_token")
    users = {u["id"]: u["username"] for b in bodies for u in b.get("includes", {}).get("users", [])}
    served = [t for b in bodies for t in b.get("data", [])]
    assert served and {t["id"] for t in served} == set(urls)
    for t in served:  # the URL names the author's handle and the tweet id the API serves
        handle = users.get(t["author_id"]) or j.social_handle(int(t["author_id"]) - 1_400_000_000_000)
        assert urls[t["id"]] == f"https://x.com/{handle}/status/{t['id']}"


def test_event_texts_name_the_campaign_of_their_touch() -> None:
    """A post's text names the campaign of the journey touch behind it (a base mention's from its
    background draws alone, away from the stage dates; a base person's tick mention's from the
    tick events): over the whole history, after ticks that also create people."""
    with start_sandbox([SPEC], size=3000, seed=7, in_process=True, grow=True) as sandbox:
        sandbox.advance(3)
        j = journeys_of(sandbox)
        with http(sandbox, timeout=60) as c:
            bodies = page_all(c, ARCHIVE, {"query": "@factoryline", "max_results": 500,
                                           "start_time": "2006-03-21T00:00:01Z"}, "next_token")
    touches = {}
    for p in range(j.world.people.count(j.world.tick)):
        for touch in j.touches(p):
            if touch.kind == "social_mention":
                assert touch.url is not None
                touches[touch.url.rpartition("/")[2]] = touch
    events = [t for b in bodies for t in b["data"] if t["text"].startswith("Anyone else at ")]
    named = 0
    for t in events:
        campaign = touches[t["id"]].campaign_idx
        event = "the summit" if campaign is None else j.campaign(campaign).name
        named += campaign is not None
        assert t["text"].startswith(f"Anyone else at {event}? "), (t, event)
    assert len(events) > 100 and named > 20


def test_pages_resume_from_the_token_alone_and_usernames_resolve_by_index(tmp_path: Path) -> None:
    """A token is a position in the time layout: a fresh emulator (no cache) continues from it."""
    with start_sandbox([SPEC], size=SIZE, seed=7, in_process=True, state_dir=tmp_path) as sb, http(sb) as c:
        first = c.get(MENTIONS, params={"max_results": 5}).json()
        token = first["meta"]["next_token"]
        expected = c.get(MENTIONS, params={"max_results": 5, "pagination_token": token}).json()
        j = journeys_of(sb)
        holder = next(p for p in range(50) if j.social_handle(p) is not None)
        other = next(p for p in range(holder + 1, 60) if j.social_handle(p) is not None)
        found = c.get(f"/2/users/by/username/{j.social_handle(holder)}").json()
        # the right index under someone else's name is not a user
        forged = f"{j.social_handle(other)}".rpartition("_")[0] + f"_{holder}"
        missing = c.get(f"/2/users/by/username/{forged}").json()
    assert found["data"]["id"] == str(1_400_000_000_000 + holder)
    assert "data" not in missing and missing["errors"][0]["title"] == "Not Found Error"
    with start_sandbox([SPEC], size=SIZE, seed=7, in_process=True, state_dir=tmp_path) as fresh, \
            http(fresh) as c:
        again = c.get(MENTIONS, params={"max_results": 5, "pagination_token": token}).json()
    assert again["data"] == expected["data"] and again["data"][0]["id"] < first["data"][-1]["id"]


def test_first_request_on_a_million_people_is_fast_and_flat() -> None:
    started = time.perf_counter()
    with start_sandbox([SPEC], size=1_000_000, seed=7, in_process=True) as big, http(big) as c:
        x = big.emulators["x"]
        r = c.get(SEARCH, params={"query": "@factoryline", "max_results": 100, "tweet.fields": "created_at"})
        elapsed = time.perf_counter() - started
        body = r.json()
        nxt = c.get(SEARCH, params={"query": "@factoryline", "max_results": 100,
                                    "next_token": body["meta"]["next_token"]}).json()
    assert x.base_url and r.status_code == 200 and body["meta"]["result_count"] == 100
    ids = [int(t["id"]) for t in body["data"] + nxt["data"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 200  # newest first across pages
    assert elapsed < 5, f"first request took {elapsed:.2f}s: is something indexing the population?"
