"""First-request latency and server RSS of the X and Shopify emulators at growing populations.

    /work/venv/bin/python bench/bench_sandbox_social_shop.py [--sizes 100000,1000000] [--vendor x|shopify|both]

Each (vendor, size) starts its own server process (so the RSS is that emulator's alone), times the
first request right after the server answers, then a few more pages, and prints the server's peak
RSS. Listing should be a pure function of the person index: the first request must not wait for
an index of the population, and the RSS must not grow with the population.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox import start_sandbox
from sandbox.world import format_ms, parse_time

ORDERS = "{ orders(first: 50%s) { edges { cursor node { id name createdAt email } } " \
         "pageInfo { hasNextPage endCursor } } }"


def _x(base_url: str, settings: dict[str, str]) -> list[float]:
    """Seconds of: the first recent search, then 4 more search pages, mentions, a username lookup."""
    times: list[float] = []
    headers = {"Authorization": f"Bearer {settings['bearer_token']}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as c:
        params: dict[str, Any] = {"query": "@factoryline", "max_results": 100, "expansions": "author_id",
                                  "tweet.fields": "created_at"}
        for _ in range(5):
            started = time.perf_counter()
            r = c.get("/2/tweets/search/recent", params=params)
            times.append(time.perf_counter() - started)
            r.raise_for_status()
            token = r.json()["meta"].get("next_token")
            if not token:
                break
            params["next_token"] = token
        started = time.perf_counter()
        body = c.get(f"/2/users/{settings['brand_user_id']}/mentions", params={"max_results": 100}).json()
        times.append(time.perf_counter() - started)
        assert body["meta"]["result_count"] > 0, body
        started = time.perf_counter()
        c.get("/2/users/by/username/nobody_12").raise_for_status()
        times.append(time.perf_counter() - started)
    return times


def _shopify(base_url: str, settings: dict[str, str], since: str | None) -> list[float]:
    """Seconds of: the first orders page, then 4 more pages, then (after ticks) an incremental
    ``updated_at:>`` page by id and by UPDATED_AT."""
    times: list[float] = []
    headers = {"X-Shopify-Access-Token": settings["access_token"]}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as c:
        after = ""
        for _ in range(5):
            started = time.perf_counter()
            r = c.post("/admin/api/2025-01/graphql.json", json={"query": ORDERS % after})
            times.append(time.perf_counter() - started)
            r.raise_for_status()
            page = r.json()["data"]["orders"]["pageInfo"]
            if not page["hasNextPage"]:
                break
            after = f', after: "{page["endCursor"]}"'
        if since is not None:
            for sort in ("", ", sortKey: UPDATED_AT"):
                started = time.perf_counter()
                r = c.post("/admin/api/2025-01/graphql.json",
                           json={"query": ORDERS % f', query: "updated_at:>\'{since}\'"{sort}'})
                times.append(time.perf_counter() - started)
                r.raise_for_status()
                assert "errors" not in r.json(), r.text
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--vendor", choices=("x", "shopify", "both"), default="both")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--advance", type=int, default=3, help="ticks (a minute apart) to advance first")
    args = parser.parse_args()
    vendors = ("x", "shopify") if args.vendor == "both" else (args.vendor,)
    for vendor in vendors:
        for size in (int(s) for s in args.sizes.split(",")):
            started = time.perf_counter()
            with start_sandbox([vendor], size=size, seed=args.seed) as sb:
                tick0 = parse_time(sb.clock()["ticks"][0])
                for k in range(1, args.advance + 1):  # a minute apart: Shopify's stamps are whole seconds
                    sb.advance(at=format_ms(tick0 + k * 60_000))
                ready = time.perf_counter() - started
                emu = sb.emulators[vendor]
                since = sb.clock()["ticks"][0] if args.advance else None
                times = (_x(emu.base_url, emu.settings) if vendor == "x"
                         else _shopify(emu.base_url, emu.settings, since))
                stats = sb.stats(vendor)
            print(f"{vendor:8} {size:>9,} people: ready {ready:5.2f}s, first request {times[0] * 1000:7.1f} ms, "
                  f"next {' '.join(f'{t * 1000:.0f}' for t in times[1:])} ms, "
                  f"server peak RSS {stats['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
