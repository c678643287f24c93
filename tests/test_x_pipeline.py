"""X API v2 end to end: sandbox emulator -> connector -> mappings -> dlt -> DuckDB.

Expected posts and authors are read from the emulator with plain httpx, never from the code
under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from pipelines.destination import Target
from pipelines.run import run
from sandbox.api import Sandbox, start_sandbox
from tests.conftest import table_snapshot

SEARCH = "/2/tweets/search/recent"
ARCHIVE = "/2/tweets/search/all"
SEARCH_ROUTE = "GET /2/tweets/search/recent"
MENTIONS_ROUTE = "GET /2/users/{id}/mentions"
ARCHIVE_ROUTE = "GET /2/tweets/search/all"


def _client(sb: Sandbox) -> httpx.Client:
    x = sb.emulators["x"]
    return httpx.Client(base_url=x.base_url, headers={"Authorization": f"Bearer {x.settings['bearer_token']}"},
                        timeout=30)


def _pages(c: httpx.Client, path: str, params: dict[str, Any], token_param: str) -> list[dict[str, Any]]:
    out, params = [], {**params, "max_results": 100, "expansions": "author_id", "tweet.fields": "created_at"}
    while True:
        body = c.get(path, params=params).json()
        out.append(body)
        if not body["meta"].get("next_token"):
            return out
        params[token_param] = body["meta"]["next_token"]


def vendor_posts(sb: Sandbox, since_id: str | None = None) -> tuple[dict[str, str | None], dict[str, str]]:
    """(post id -> author handle or None if X reported the author in errors, author id -> handle) of
    the brand mentions and the '@factoryline' recent search."""
    search, mentions = _bodies(sb, since_id)
    bodies = search + mentions
    users = {u["id"]: u["username"] for b in bodies for u in b.get("includes", {}).get("users", [])}
    posts = {t["id"]: users.get(t["author_id"]) for b in bodies for t in b.get("data", [])}
    return posts, users


def _bodies(sb: Sandbox, since_id: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    x = sb.emulators["x"].settings
    extra = {"since_id": since_id} if since_id else {}
    with _client(sb) as c:
        return (_pages(c, SEARCH, {"query": "@factoryline", **extra}, "next_token"),
                _pages(c, f"/2/users/{x['brand_user_id']}/mentions", extra, "pagination_token"))


def _db(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


def _run(sb: Sandbox, db: Path) -> Any:
    return run(["x"], target=Target(db_path=db), overrides={"x": sb.emulators["x"].settings})


@pytest.fixture()
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with start_sandbox(["x"], size=1500, seed=9, state_dir=tmp_path / "world", in_process=True) as sb:
        yield sb


def _loaded(con: duckdb.DuckDBPyConnection) -> dict[str, str | None]:
    return dict(con.sql("SELECT source_record_id, social_handle FROM factory.touch").fetchall())


def _check_full_load(sandbox: Sandbox, db: Path, status: Any) -> dict[str, str | None]:
    """Every post and author the emulator serves is loaded; returns the posts."""
    posts, users = vendor_posts(sandbox)
    assert None in posts.values(), "the world should have suspended authors (partial errors)"
    con = _db(db)
    assert _loaded(con) == posts
    assert set(con.sql("SELECT DISTINCT touch_type, channel, category FROM factory.touch").fetchall()) == \
        {("social_mention", "social", "marketing")}
    people = dict(con.sql("SELECT source_record_id, social_handle FROM factory.person").fetchall())
    assert people == users
    # each post with a known author points at that author's person row; metrics kept in extras
    linked = con.sql("SELECT t.social_handle, p.social_handle FROM factory.touch t "
                     "JOIN factory.person p ON p.id = t.person_id").fetchall()
    assert len(linked) == sum(h is not None for h in posts.values()) and all(a == b for a, b in linked)
    extras = con.sql("SELECT extras FROM factory.touch LIMIT 1").fetchall()[0][0]
    assert "public_metrics.like_count" in extras and "public_metrics.impression_count" in extras
    assert con.sql("SELECT count(*) FROM factory.rejects").fetchall()[0] == (0,)
    con.close()
    tweets = next(s for s in status.streams if s.stream == "tweets")
    assert tweets.records == len(posts)  # a mention that also matched the search is read once
    assert len(tweets.load_ids) == 1  # and so never splits the load
    return posts


def test_full_then_incremental_run_fetches_only_new_posts(sandbox: Sandbox, tmp_path: Path) -> None:
    db = tmp_path / "fl.duckdb"
    first = _run(sandbox, db)
    assert first.status == "success", first.as_dict()
    before = _check_full_load(sandbox, db, first)
    newest = max(before, key=int)
    sandbox.advance(25)
    sandbox.reset_stats("x")
    second = _run(sandbox, db)
    assert second.status == "success", second.as_dict()
    served = sandbox.stats("x")["routes"]
    new, _ = vendor_posts(sandbox, since_id=newest)
    assert new and set(new).isdisjoint(before)
    tweets = next(s for s in second.streams if s.stream == "tweets")
    assert tweets.records == len(new)
    # each stream (tweets, users) asked each source only for what is newer than its since_id
    search, mentions = _bodies(sandbox, newest)
    assert served[SEARCH_ROUTE]["records"] == 2 * sum(len(b.get("data", [])) for b in search)
    assert served[MENTIONS_ROUTE]["records"] == 2 * sum(len(b.get("data", [])) for b in mentions)
    assert served[MENTIONS_ROUTE]["requests"] == 2 * len(mentions)
    con = _db(db)
    everything, authors = vendor_posts(sandbox)
    assert _loaded(con) == everything
    assert dict(con.sql("SELECT source_record_id, social_handle FROM factory.person").fetchall()) == authors


def test_backfill_cut_short_resumes_to_a_clean_result(tmp_path: Path) -> None:
    """Full-archive backfill: the token is refused half-way, the pages read stay loaded, and the next
    run continues below them (not from the top) and ends with exactly the rows of a clean run, though
    its mentions timeline re-reads posts the cut-off run loaded from the search."""
    from sandbox.faults import FaultRule

    with start_sandbox(["x"], size=800, seed=4, in_process=True) as sb:
        settings = {**sb.emulators["x"].settings, "archive_start": "all", "archive_page_size": 20}
        clean = tmp_path / "clean.duckdb"
        assert run(["x"], target=Target(db_path=clean), overrides={"x": settings}).status == "success"
        db = tmp_path / "fl.duckdb"
        sb.set_faults("x", [FaultRule("expired_token", route=ARCHIVE_ROUTE, at=4)])
        first = run(["x"], target=Target(db_path=db), overrides={"x": settings})
        assert {s.stream: s.status for s in first.streams}["tweets"] == "failed"
        con = _db(db)
        partial = _loaded(con)
        con.close()
        assert len(partial) % 20 == 0 and len(partial) >= 20  # whole pages read before the refusal
        sb.set_faults("x", [])
        sb.reset_stats("x")
        second = run(["x"], target=Target(db_path=db), overrides={"x": settings})
        assert second.status == "success", second.as_dict()
        resumed = sb.stats("x")["routes"][ARCHIVE_ROUTE]
        with _client(sb) as c:  # what X holds, read with plain httpx
            archive = _pages(c, ARCHIVE, {"query": "@factoryline", "start_time": "2006-03-21T00:00:01Z"},
                             "next_token")
    total = sum(len(b.get("data", [])) for b in archive)
    # the tweets stream continued below its loaded pages (the users stream had finished its backfill)
    assert resumed["records"] == total - len(partial) and resumed["requests"] == -(-resumed["records"] // 20)
    resumed_rows, clean_rows = table_snapshot(db), table_snapshot(clean)
    assert len(clean_rows["touch"]) > total // 2 and clean_rows["person"] and not clean_rows["rejects"]
    assert not (diff := {t: (len(resumed_rows.get(t, [])), len(clean_rows.get(t, [])))
                         for t in resumed_rows.keys() | clean_rows.keys()
                         if resumed_rows.get(t) != clean_rows.get(t)}), diff  # raw and canonical tables
