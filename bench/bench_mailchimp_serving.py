"""Server CPU per member of the Mailchimp emulator for the connector's reads, and a digest of
every answer the connector can ask for (identity across trees).

    /work/venv/bin/python bench/bench_mailchimp_serving.py --size 100000 [--rounds 3] [--mode connector|plain|run]
    git archive <rev> | tar -x -C /tmp/fl_old     # an older tree, to compare in the same run:
    /work/venv/bin/python bench/bench_mailchimp_serving.py --rounds 3 --tree /tmp/fl_old --tree .
    /work/venv/bin/python bench/bench_mailchimp_serving.py --size 20000 --hash --ticks 3 [--tree ...]

Each round starts ``python -m sandbox serve --vendor mailchimp --size N --seed 7`` from each
``--tree`` in turn (default: this checkout) on a fixed clock (tick 0 on 2026-01-01, ``--ticks``
daily ticks of changes and archivals, default 3), reads with a plain keep-alive httpx client and
reports the server process's CPU seconds (utime + stime from /proc) spent on that read, per
100,000 records, and its peak RSS. The machine is shared: compare trees within one run, over
several rounds.

``--mode connector`` sends the connector's first-run members requests (``count=1000``,
``exclude_fields=members._links,_links``, then the same with ``status=archived``); ``--mode
plain`` sends bench_sandbox's (``count=1000``, no partial response); ``--mode run`` the
connector's whole first run, stream after stream: lists, campaigns, members, email activity
(records: all of them). ``--hash`` instead reads every route the connector uses (members before
and after the audience summary exists, lists, campaigns, members first and incremental, every
sent campaign's email activity with and without ``since``) and the others (root, ping, one list,
single members by hash and address, filtered and sorted listings, partial responses, errors),
and prints a SHA-256 over every answer's status, headers and body (problem bodies' random
``instance`` masked): the same digest from two trees means byte-identical responses.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import httpx
from _serving_ab import print_table, run_rounds  # bench/, on sys.path as the script's directory

ROOT = Path(__file__).resolve().parents[1]

_RANDOM = re.compile(rb'"instance":"[^"]*"')
SEED = 7


def _client(settings: dict[str, Any]) -> httpx.Client:
    return httpx.Client(base_url=settings["api_root"], auth=("bench", settings["api_key"]), timeout=300)


def _pages(c: httpx.Client, path: str, key: str, params: dict[str, Any], seen: Any = None,
           count: int = 1000) -> int:
    """Every page of a count/offset listing; the records read."""
    n = offset = 0
    while True:
        r = c.get(path, params={**params, "count": count, "offset": offset})
        if seen is not None:
            seen(r)
        r.raise_for_status()
        body = r.json()
        n += len(body.get(key) or ())
        offset += count
        if offset >= int(body.get("total_items") or 0):
            return n


def read_members(settings: dict[str, Any], mode: str) -> int:
    path = f"/lists/{settings['list_id']}/members"
    with _client(settings) as c:
        base = {"exclude_fields": "members._links,_links"}
        if mode == "run":  # the connector's first run: lists, campaigns, members, email activity
            n = _pages(c, "/lists", "lists", {"exclude_fields": "lists._links,_links"})
            n += _pages(c, "/campaigns", "campaigns", {"exclude_fields": "campaigns._links,_links"})
            n += _pages(c, path, "members", base) + _pages(c, path, "members", {**base, "status": "archived"})
            ids: list[str] = []
            offset = 0
            while True:
                body = c.get("/campaigns", params={"fields": "campaigns.id,campaigns.status,total_items",
                                                   "count": 1000, "offset": offset}).json()
                ids.extend(x["id"] for x in body["campaigns"] if x["status"] in ("sent", "sending", "canceled"))
                offset += 1000
                if offset >= body["total_items"]:
                    break
            for cid in ids:
                n += _pages(c, f"/reports/{cid}/email-activity", "emails", {"exclude_fields": "emails._links,_links"})
            return n
        if mode == "plain":
            return _pages(c, path, "members", {})
        return _pages(c, path, "members", base) + _pages(c, path, "members", {**base, "status": "archived"})


def read_wide(settings: dict[str, Any], digest: Any) -> int:
    """Every route and the variants the connector sends, into ``digest``; the records read."""
    lid = settings["list_id"]
    members = f"/lists/{lid}/members"
    n = 0

    def seen(resp: httpx.Response) -> None:
        digest.update(resp.request.url.raw_path + f"\n{resp.status_code}\n".encode())
        for k, v in sorted(resp.headers.items()):
            if k.lower() != "date":
                digest.update(f"{k}:{v}\n".encode())
        digest.update(_RANDOM.sub(rb'"instance":""', resp.content))

    def get(c: httpx.Client, path: str, **params: Any) -> Any:
        r = c.get(path, params=params)
        seen(r)
        return r.json()

    with _client(settings) as c:
        get(c, "/")
        get(c, "/ping")
        # members before anything needs the audience summary (each member from its journey) ...
        ex = {"exclude_fields": "members._links,_links"}
        n += _pages(c, members, "members", ex, seen)
        n += _pages(c, members, "members", {**ex, "since_last_changed": "2026-01-02T00:00:00+00:00"}, seen)
        get(c, members, count=30, sort_field="last_changed", sort_dir="DESC")
        # lists: the connector's two requests, one list, partial variants
        n += _pages(c, "/lists", "lists", {"exclude_fields": "lists._links,_links"}, seen)
        n += _pages(c, "/lists", "lists", {"fields": "lists.id,total_items"}, seen)
        get(c, f"/lists/{lid}")
        get(c, f"/lists/{lid}", fields="stats.member_count,id")
        # ... and after (from the summary): the connector's first and incremental runs, the plain
        # listing, small pages
        n += _pages(c, members, "members", ex, seen)
        n += _pages(c, members, "members", {**ex, "status": "archived"}, seen)
        for since in ("2026-01-02T00:00:00+00:00", "2026-01-01T23:55:00+00:00", "2025-12-20T00:00:00+00:00"):
            n += _pages(c, members, "members", {**ex, "since_last_changed": since}, seen)
            n += _pages(c, members, "members", {**ex, "since_last_changed": since, "status": "archived"}, seen)
        n += _pages(c, members, "members", {}, seen, count=997)
        for params in ({"count": 7, "offset": 3}, {"count": 50, "offset": 120, "sort_dir": "DESC"},
                       {"count": 0}, {"count": 1000, "offset": 10**9},
                       {"count": 25, "status": "subscribed", "offset": 40},
                       {"count": 25, "status": "unsubscribed"}, {"count": 25, "status": "cleaned"},
                       {"count": 30, "sort_field": "last_changed", "sort_dir": "DESC"},
                       {"count": 30, "sort_field": "timestamp_opt"},
                       {"count": 30, "before_last_changed": "2025-06-01T00:00:00+00:00"},
                       {"count": 20, "fields": "members.id,members.email_address,total_items"},
                       {"count": 20, "exclude_fields": "members.merge_fields.FNAME,members.stats,list_id"},
                       {"count": 20, "exclude_fields": "members"},
                       {"count": 20, "exclude_fields": "members._links", "fields": "members"},
                       {"count": 1001}, {"count": -1}, {"offset": "x"}, {"sort_field": "nope"},
                       {"since_last_changed": "yesterday"}):
            get(c, members, **params)
        sample = get(c, members, count=40, offset=5)["members"]
        for m in sample[:20]:
            get(c, f"{members}/{m['id']}")
            get(c, f"{members}/{m['email_address'].upper()}")
        get(c, f"{members}/{'0' * 32}")
        get(c, f"{members}/nobody@example.com")
        get(c, "/lists/nope/members")
        # campaigns: the connector's two requests, filters, single reads
        n += _pages(c, "/campaigns", "campaigns", {"exclude_fields": "campaigns._links,_links"}, seen)
        fields = "campaigns.id,campaigns.status,campaigns.recipients.list_id,total_items"
        campaigns: list[dict[str, Any]] = []
        offset = 0
        while True:
            body = get(c, "/campaigns", fields=fields, count=1000, offset=offset)
            campaigns.extend(body["campaigns"])
            offset += 1000
            if offset >= body["total_items"]:
                break
        for params in ({"status": "sent", "count": 5}, {"since_send_time": "2025-09-01T00:00:00+00:00", "count": 9},
                       {"sort_field": "send_time", "sort_dir": "DESC", "count": 11},
                       {"before_create_time": "2025-06-01T00:00:00+00:00", "count": 8}):
            get(c, "/campaigns", **params)
        for camp in campaigns[:5]:
            get(c, f"/campaigns/{camp['id']}")
        get(c, "/campaigns/nope")
        # email activity of every sent campaign, as the connector reads it, and with a since
        ea = {"exclude_fields": "emails._links,_links"}
        for camp in campaigns:
            if camp["status"] not in ("sent", "sending", "canceled"):
                continue
            path = f"/reports/{camp['id']}/email-activity"
            n += _pages(c, path, "emails", ea, seen)
            n += _pages(c, path, "emails", {**ea, "since": "2026-01-01T12:00:00+00:00"}, seen)
        for camp in campaigns[:3]:
            get(c, f"/reports/{camp['id']}/email-activity", count=3, offset=2)
            get(c, f"/reports/{camp['id']}/email-activity", since="2025-10-01T00:00:00+00:00", count=5)
        get(c, "/reports/nope/email-activity")
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--mode", choices=("connector", "plain", "run"), default="connector")
    ap.add_argument("--hash", action="store_true", help="read every route and print a digest of the answers")
    ap.add_argument("--ticks", type=int, default=3, help="daily ticks after tick 0 (default 3)")
    ap.add_argument("--tree", action="append", type=Path, help="source tree to serve from (repeatable)")
    args = ap.parse_args()
    trees = args.tree or [ROOT]

    def read(info: dict[str, Any], digest: Any | None) -> int:
        if digest is not None:
            return read_wide(info["settings"], digest)
        return read_members(info["settings"], args.mode)

    rows = run_rounds("mailchimp", trees, args.rounds, args.size, SEED, args.ticks, args.hash, read, rss=True)
    print_table(rows, __file__, rss=True)


if __name__ == "__main__":
    main()
