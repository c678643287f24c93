"""First-request latency and server RSS of the X and Shopify emulators at growing populations.

    /work/venv/bin/python bench/bench_sandbox_social_shop.py [--sizes 100000,1000000] [--vendor x|shopify|both]

Each (vendor, size) starts its own server process (so the RSS is that emulator's alone), times the
first request right after the server answers, then a few more pages, and prints the server's peak
RSS. Listing should be a pure function of the person index: the first request must not wait for
an index of the population, and the RSS must not grow with the population.

    /work/venv/bin/python bench/bench_sandbox_social_shop.py --serving --size 100000 --rounds 3 \
        --tree /tmp/fl_old --tree . [--hash] [--ticks 3] [--step 60] [--reader connector|bench]

``--serving`` (X) times the server's CPU per post instead, each ``--tree`` in turn per round (as
``bench_shopify_serving.py``): ``python -m sandbox serve --vendor x`` on a fixed clock (tick 0 on
2030-01-01, after the wall clock, so that "now" and the 7-day recent window are the world's;
``--ticks`` ticks ``--step`` seconds apart after it: a day, or 60 as bench_sandbox.py's), then the
pages the X connector reads (``--reader connector``: recent search of ``@factoryline`` and the brand's mentions timeline, ``max_results=100``,
``expansions=author_id``, the connector's ``tweet.fields`` and ``user.fields``, each to its last
page) or ``bench_sandbox.py``'s reader (``--reader bench``: the search only, ``tweet.fields=
created_at,author_id,lang``). ``--hash`` prints a SHA-256 over every page's status, headers
(``Date`` and ``x-rate-limit-reset``, wall-clock values, masked) and body: the same digest from two
trees means byte-identical pages.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _serving_ab import Row, cpu_seconds, print_table, stop  # bench/, the script's directory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.x import settings as XS
from sandbox import start_sandbox
from sandbox.world import format_ms, parse_time

#: the serving bench's tick 0 (2030-01-01): later than the wall clock, so "now" is the world's
FIXED_T0 = "2030-01-01T00:00:00.000Z"

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


def _start_x(tree: Path, size: int, seed: int, ticks: int, step_s: int,
             state: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """The X server from ``tree`` on the fixed clock (:data:`FIXED_T0`, ``ticks`` ticks ``step_s`` apart)."""
    tree = tree.resolve()
    state.mkdir(parents=True, exist_ok=True)
    at = [format_ms(parse_time(FIXED_T0) + d * step_s * 1000) for d in range(ticks + 1)]
    (state / "world.json").write_text(json.dumps({"seed": seed, "size": size, "grow": False, "ticks": at}))
    cmd = [sys.executable, "-m", "sandbox", "serve", "--size", str(size), "--seed", str(seed), "--vendor", "x",
           "--ready-json", "--watch-stdin", "--state-dir", str(state)]
    proc = subprocess.Popen(cmd, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            info: dict[str, Any] = json.loads(line)["x"]
            return proc, info
    stop(proc)
    raise RuntimeError(f"sandbox from {tree} did not start")


def _x_pages(info: dict[str, Any], reader: str, digest: Any | None) -> int:
    """Posts of every page ``reader`` reads (see the module's doc), fed to ``digest``."""
    settings = info["settings"]
    sources: list[tuple[str, dict[str, Any], str]]
    if reader == "bench":
        sources = [(XS.SEARCH_PATH, {"query": "@factoryline", "max_results": 100, "expansions": "author_id",
                                     "tweet.fields": "created_at,author_id,lang"}, "next_token")]
    else:
        common = {"max_results": 100, "expansions": "author_id", "tweet.fields": XS.TWEET_FIELDS,
                  "user.fields": XS.USER_FIELDS}
        sources = [(XS.SEARCH_PATH, {"query": "@factoryline", **common}, "next_token"),
                   (XS.MENTIONS_PATH.format(id=settings["brand_user_id"]), common, "pagination_token")]
    posts = 0
    headers = {"Authorization": f"Bearer {settings['bearer_token']}"}
    with httpx.Client(base_url=info["base_url"], headers=headers, timeout=300) as c:
        for path, params, token_param in sources:
            params = dict(params)
            while True:
                r = c.get(path, params=params)
                if digest is not None:
                    digest.update(str(r.status_code).encode())
                    for k, v in sorted(r.headers.items()):
                        if k.lower() not in ("date", "x-rate-limit-reset"):
                            digest.update(f"{k}:{v}\n".encode())
                    digest.update(r.content)
                r.raise_for_status()
                body = r.json()
                posts += len(body.get("data") or ())
                token = body["meta"].get("next_token")
                if not token:
                    break
                params[token_param] = token
    return posts


def _serving(args: argparse.Namespace) -> int:
    """``--serving``: X's server CPU per post, alternated over ``--tree``s (as _serving_ab.run_rounds,
    whose clock is in the past: the recent window would be empty)."""
    import hashlib
    import tempfile

    trees = args.tree or [Path(__file__).resolve().parent.parent]
    tmp = Path(tempfile.mkdtemp(prefix="bench-x-"))
    rows: list[Row] = []
    for r in range(args.rounds):
        for tree in trees:
            proc, info = _start_x(tree, args.size, args.seed, args.ticks, args.step, tmp / f"state{r}-{len(rows)}")
            try:
                before = cpu_seconds(proc.pid)
                wall = time.perf_counter()
                digest = hashlib.sha256() if args.hash else None
                n = _x_pages(info, args.reader, digest)
                wall = time.perf_counter() - wall
                cpu = cpu_seconds(proc.pid) - before
            finally:
                stop(proc)
            rows.append(Row(r, str(tree), n, cpu, wall, digest.hexdigest()[:16] if digest else "-"))
    print_table(rows, __file__, unit="posts")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--vendor", choices=("x", "shopify", "both"), default="both")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--advance", type=int, default=3, help="ticks (a minute apart) to advance first")
    parser.add_argument("--serving", action="store_true", help="X: server CPU per post over --tree (see above)")
    parser.add_argument("--size", type=int, default=100_000, help="--serving: the world's people")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--ticks", type=int, default=0, help="--serving: ticks after tick 0")
    parser.add_argument("--step", type=int, default=86_400,
                        help="--serving: seconds between ticks (bench_sandbox.py --advance: 60)")
    parser.add_argument("--hash", action="store_true", help="--serving: digest of every page")
    parser.add_argument("--reader", choices=("connector", "bench"), default="connector")
    parser.add_argument("--tree", action="append", type=Path, help="--serving: source tree (repeatable)")
    args = parser.parse_args()
    if args.serving:
        return _serving(args)
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
