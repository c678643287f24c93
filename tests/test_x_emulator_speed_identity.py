"""The X emulator's shortcuts serve exactly what a fresh emulator serves.

Served tweets and users are kept for the posts a mentions timeline serves again after a search;
a page walks each id-sorted list of mentions from its token by bisect. Checked here: a mentions
timeline read after a search equals the one a fresh server answers; a corrupted record (fault
injection edits what it serves) does not leak into later answers; pages read with ``until_id``
and ``since_id`` equal the whole listing cut at those ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.x import settings as XS
from sandbox import FaultRule, Sandbox, start_sandbox
from tests.test_sandbox_x import page_all

SPEC = "connectors.x.emulator:emulator_spec"
BRAND_ID = "1100000000000000001"
MENTIONS = f"/2/users/{BRAND_ID}/mentions"
ARCHIVE = "/2/tweets/search/all"
FIELDS: dict[str, Any] = {"max_results": 100, "expansions": "author_id", "tweet.fields": XS.TWEET_FIELDS,
          "user.fields": XS.USER_FIELDS}


@pytest.fixture
def sandboxes(tmp_path: Path) -> Iterator[tuple[Sandbox, Sandbox]]:
    """Two servers of one world: a fixed clock after the wall clock (so "now" and the recent
    window are the world's), tick 0 and 3 daily ticks."""
    ticks = [f"2030-01-0{d + 1}T00:00:00.000Z" for d in range(4)]
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir()
        (d / "world.json").write_text(json.dumps({"seed": 7, "size": 3000, "grow": False, "ticks": ticks}))
    with start_sandbox([SPEC], size=3000, seed=7, in_process=True, state_dir=dirs[0]) as a, \
            start_sandbox([SPEC], size=3000, seed=7, in_process=True, state_dir=dirs[1]) as b:
        assert a.clock()["ticks"] == b.clock()["ticks"] == ticks
        yield a, b


def _client(sb: Sandbox) -> httpx.Client:
    x = sb.emulators["x"]
    return httpx.Client(base_url=x.base_url, timeout=60,
                        headers={"Authorization": f"Bearer {x.settings['bearer_token']}"})


def test_memo_and_bisect_serve_what_a_fresh_server_does(sandboxes: tuple[Sandbox, Sandbox]) -> None:
    warm, fresh = sandboxes
    with _client(warm) as c:
        search = page_all(c, XS.SEARCH_PATH, {"query": "@factoryline", **FIELDS}, "next_token")
        again = page_all(c, MENTIONS, FIELDS, "pagination_token")
        # a corrupted answer is the faults' alone: the next one is whole again
        warm.set_faults("x", [FaultRule("missing_id", route=MENTIONS, at=1),
                              FaultRule("bad_timestamp", route=MENTIONS, at=2)])
        c.get(MENTIONS, params=FIELDS)
        c.get(MENTIONS, params=FIELDS)
        warm.set_faults("x", [])
        after = page_all(c, MENTIONS, FIELDS, "pagination_token")
    with _client(fresh) as c:
        first = page_all(c, MENTIONS, FIELDS, "pagination_token")
    assert sum(len(b.get("data", ())) for b in search) > 20 and sum(len(b["data"]) for b in first) > 300
    assert again == first and after == first
    # the full-archive listing read 10 at a time (each page walks from its token), and cut at
    # since_id / until_id: the whole listing, cut at those ids
    archive = {"query": "@factoryline", **FIELDS, "start_time": "2006-03-21T00:00:01Z"}
    with _client(fresh) as c:
        everything = [t["id"] for b in page_all(c, ARCHIVE, {**archive, "max_results": 500}, "next_token")
                      for t in b["data"]]
        until, since = everything[len(everything) // 5], everything[4 * len(everything) // 5]
        small = page_all(c, ARCHIVE, {**archive, "max_results": 10}, "next_token")
        cut = page_all(c, ARCHIVE, {**archive, "max_results": 10, "until_id": until, "since_id": since}, "next_token")
    assert len(everything) > 1000
    assert [t["id"] for b in small for t in b["data"]] == everything
    assert [t["id"] for b in cut for t in b.get("data", ())] == [
        i for i in everything if int(since) < int(i) < int(until)]


def test_tweet_and_user_keep_the_asked_keys_in_their_order_and_whole_second_times() -> None:
    """A page's fields are picked from every value in the order the request names them (any subset,
    any order, one key or none), and X's timestamps are format_ms's, cut to the second."""
    import itertools

    from connectors.x.emulator import _TWEET_KEYS, _USER_KEYS, XEmulator, _iso
    from sandbox.protocol import EmulatorOptions
    from sandbox.world import World, format_ms, parse_time

    t0 = parse_time("2030-01-01T00:00:00.000Z")
    world = World(seed=7, size=3000, ticks=[t0 + d * 86_400_000 for d in range(3)])
    emu = XEmulator(world, EmulatorOptions())
    mentions = list(itertools.islice(emu.mentions(2), 40))
    assert len(mentions) == 40
    subsets = [(), ("id",), ("entities",), ("lang", "id"), tuple(reversed(_TWEET_KEYS)), _TWEET_KEYS,
               ("public_metrics", "created_at", "text")]
    for m in mentions:
        full = emu.tweet(m, 2)
        assert list(full) == list(_TWEET_KEYS)
        assert full["created_at"] == format_ms(m.at_ms - m.at_ms % 1000)
        assert full["text"][full["entities"]["mentions"][0]["start"]:].startswith("@factoryline")
        for keys in subsets:
            got = emu.tweet(m, 2, keys)
            assert list(got) == list(keys) and got == {k: full[k] for k in keys}
        user = emu.user(m.person, 2)
        assert [k for k in _USER_KEYS if k in user] == list(user)
        for keys in [("username", "id"), ("name",), ("location", "created_at", "id"), tuple(reversed(_USER_KEYS))]:
            assert emu.user(m.person, 2, keys) == {k: user[k] for k in keys if k in user}
    for ms in (0, 999, -1, -1001, 1_142_899_201_000, t0 + 123_456_789, 253_402_300_799_999, -30_610_224_000_001):
        assert _iso(ms) == format_ms(ms - ms % 1000)
