"""Serving throughput and server memory of the sandbox emulators, one vendor's main stream at a time.

    /work/venv/bin/python bench/bench_sandbox.py --vendor marketo --vendor mailchimp \\
        [--sizes 100000,1000000] [--records 100000] [--in-process] [--properties all|default]
    /work/venv/bin/python bench/bench_sandbox.py --vendor all
    /work/venv/bin/python bench/bench_sandbox.py --vendor mailchimp --connector   # + the connector's rate

For each vendor and world size a fresh server process starts (so its peak RSS is that emulator's
alone), the clock advances ``--advance`` ticks, and a client reads the vendor's main stream the
way a connector would, through plain httpx and the vendor's own paging, until ``--records``
records or the stream ends:

=========== ==============================================================================
hubspot     ``GET /crm/v3/objects/contacts?limit=100&properties=<all 36>`` with ``after`` cursors
salesforce  ``GET /services/data/v59.0/query?q=SELECT ... FROM Lead`` (every person) then ``nextRecordsUrl``
marketo     ``/rest/v1/activities/pagingtoken.json`` (2000-01-01) then ``/rest/v1/activities.json``
            (10 activity types, ``batchSize=300``) with ``nextPageToken`` until ``moreResult`` is false
mailchimp   ``GET /3.0/lists/{list_id}/members?count=1000&offset=...`` up to ``total_items``
x           ``GET /2/tweets/search/recent?query=@factoryline&max_results=100`` with ``next_token``
shopify     GraphQL ``orders(first: 250, after:)`` with ``pageInfo.endCursor``
=========== ==============================================================================

``--connections 2`` (hubspot) splits the contact id range in windows read in parallel, so the
client's parsing overlaps the server's work. Prints one table row per (vendor, size): the first
request's latency, records read, records/s, requests, the server's peak RSS and its CPU time per
record (steadier than records/s under other load, yet +-25% on a busy 2-core machine) (the emulators answer a page from a cursor over person
indexes, so the RSS should not grow with the population), then the command line to reproduce.

Serving must never be the bottleneck: each row also shows the rate at which the vendor's connector
consumes that stream and ``serve/conn``, the serving rate over it (the goal is at least 3x). With
``--connector`` the connector (the factoryline pipeline: extract, map, load, one stream: MAIN_STREAM)
reads the stream in a child process against the same emulator right after, at the first size only
(a full read; consumption barely depends on the population), and the column says ``measured``: its
records over the stream's own seconds (reading and mapping; not the process start or the loads,
which request nothing), the pace at which it asks for pages.
Without it the column holds CONNECTOR_RATES, labelled ``ref``: earlier measurements, dated with
their commands in the comment there. Shopify's connector reads orders through a bulk operation,
which the emulator writes with the same per-order code the pages use: its rate is partly the
emulator's, so its ratio flatters the emulator.

``serve/conn`` is circular once the connector waits on the server: a faster server makes the
connector read faster, and the ratio stays near 1 however fast the server gets. ``capacity/conn``
(with ``--connector``) does not depend on who waits for whom: the connector's records over the
server's CPU seconds while it read them (what one core of serving gets through, on the connector's
own requests), divided by the connector's records/s. At 3x the server was busy at most a third of
the time the connector was reading.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_connectors, for --connector

from connectors.hubspot.emulator import _PROP_NAMES
from sandbox import start_sandbox

VENDORS = ("hubspot", "salesforce", "marketo", "mailchimp", "x", "shopify")
#: the connector stream that reads what each reader below reads (--connector)
MAIN_STREAM = {"hubspot": "contacts", "salesforce": "Lead", "marketo": "activities", "mailchimp": "members",
               "x": "tweets", "shopify": "orders"}
#: the factoryline connector's records/s over each main stream (its reading pace, see --connector),
#: 2026-11-22 (issue #3), load average 1-4 on 2 shared cores, the highest of the runs (the most
#: demanding): mailchimp members and shopify orders (a bulk operation) with ``--vendor V --sizes
#: 100000 --connector``, marketo activities with ``--sizes 20000 --connector``; hubspot (contacts) and
#: salesforce (Lead) from ``python bench/bench_connectors.py --size 100000 --vendor V --only
#: factoryline``, whose records/s also count the loads and the derivation; X not measured
CONNECTOR_RATES: dict[str, float] = {"hubspot": 5_400, "salesforce": 2_212, "marketo": 8_211, "mailchimp": 4_590,
                                     "shopify": 1_151}
MARKETO_TYPES = "1,2,6,7,8,9,10,11,12,104"  # at most 10 per request
SOQL = "SELECT Id, FirstName, LastName, Email, Title, Company, Status, IsConverted, LastModifiedDate FROM Lead"
ORDERS = "{ orders(first: 250%s) { edges { cursor node { id name createdAt updatedAt email " \
         "totalPriceSet { shopMoney { amount currencyCode } } } } pageInfo { hasNextPage endCursor } } }"

#: a stream reader: (base url, settings, properties option) -> records per page, lazily
Reader = Callable[[str, dict[str, str], str], Generator[int, None, None]]


def _hubspot(base_url: str, settings: dict[str, str], properties: str,
             window: tuple[int, int] | None = None) -> Generator[int, None, None]:
    """Contacts, or those with ids in ``window`` (``--connections``: contact ids are 1000 + index)."""
    props = ",".join(_PROP_NAMES["contacts"]) if properties == "all" else ""
    headers = {"Authorization": f"Bearer {settings['access_token']}"}
    after: str | None = str(window[0]) if window and window[0] > 1000 else None
    with httpx.Client(base_url=base_url, headers=headers, timeout=300) as c:
        while True:
            params = {"limit": "100", "archived": "false"}
            if props:
                params["properties"] = props
            if after:
                params["after"] = after
            r = c.get("/crm/v3/objects/contacts", params=params)
            r.raise_for_status()
            body = orjson.loads(r.content)
            yield sum(1 for x in body["results"] if window is None or int(x["id"]) < window[1])
            nxt = body.get("paging", {}).get("next")
            if not nxt or (window is not None and int(nxt["after"]) >= window[1]):
                return
            after = nxt["after"]


def _salesforce(base_url: str, settings: dict[str, str], properties: str) -> Generator[int, None, None]:
    headers = {"Authorization": f"Bearer {settings['session_id']}"}
    version = settings["api_version"]
    with httpx.Client(base_url=settings.get("plain_url", base_url), headers=headers, timeout=300) as c:
        r = c.get(f"/services/data/v{version}/query", params={"q": SOQL})
        while True:
            r.raise_for_status()
            body = orjson.loads(r.content)
            yield len(body["records"])
            if body.get("done", True) or not body.get("nextRecordsUrl"):
                return
            r = c.get(body["nextRecordsUrl"])


def _marketo(base_url: str, settings: dict[str, str], properties: str) -> Generator[int, None, None]:
    with httpx.Client(base_url=base_url, timeout=300) as c:
        auth = c.get("/identity/oauth/token", params={"grant_type": "client_credentials",
                                                      "client_id": settings["client_id"],
                                                      "client_secret": settings["client_secret"]})
        auth.raise_for_status()
        c.headers["Authorization"] = f"Bearer {auth.json()['access_token']}"
        body = c.get("/rest/v1/activities/pagingtoken.json", params={"sinceDatetime": "2000-01-01T00:00:00Z"}).json()
        token = body["nextPageToken"]
        while True:
            r = c.get("/rest/v1/activities.json",
                      params={"nextPageToken": token, "activityTypeIds": MARKETO_TYPES, "batchSize": "300"})
            r.raise_for_status()
            body = orjson.loads(r.content)
            if not body["success"]:
                raise RuntimeError(body["errors"])
            yield len(body.get("result", []))
            token = body["nextPageToken"]
            if not body["moreResult"]:
                return


def _mailchimp(base_url: str, settings: dict[str, str], properties: str) -> Generator[int, None, None]:
    offset = 0
    path = f"/3.0/lists/{settings['list_id']}/members"
    with httpx.Client(base_url=base_url, auth=("bench", settings["api_key"]), timeout=300) as c:
        while True:
            r = c.get(path, params={"count": "1000", "offset": str(offset)})
            r.raise_for_status()
            body = orjson.loads(r.content)
            yield len(body["members"])
            offset += len(body["members"])
            if not body["members"] or offset >= body["total_items"]:
                return


def _x(base_url: str, settings: dict[str, str], properties: str) -> Generator[int, None, None]:
    headers = {"Authorization": f"Bearer {settings['bearer_token']}"}
    params: dict[str, Any] = {"query": "@factoryline", "max_results": 100, "expansions": "author_id",
                              "tweet.fields": "created_at,author_id,lang"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=300) as c:
        while True:
            r = c.get("/2/tweets/search/recent", params=params)
            r.raise_for_status()
            body = orjson.loads(r.content)
            yield len(body.get("data", []))
            nxt = body.get("meta", {}).get("next_token")
            if not nxt:
                return
            params["next_token"] = nxt


def _shopify(base_url: str, settings: dict[str, str], properties: str) -> Generator[int, None, None]:
    headers = {"X-Shopify-Access-Token": settings["access_token"]}
    after = ""
    with httpx.Client(base_url=base_url, headers=headers, timeout=300) as c:
        while True:
            r = c.post(f"/admin/api/{settings['api_version']}/graphql.json", json={"query": ORDERS % after})
            r.raise_for_status()
            body = orjson.loads(r.content)
            if "data" not in body or body["data"] is None:
                raise RuntimeError(body.get("errors"))
            orders = body["data"]["orders"]
            yield len(orders["edges"])
            if not orders["pageInfo"]["hasNextPage"]:
                return
            after = f', after: "{orders["pageInfo"]["endCursor"]}"'


READERS: dict[str, Reader] = {"hubspot": _hubspot, "salesforce": _salesforce, "marketo": _marketo,
                              "mailchimp": _mailchimp, "x": _x, "shopify": _shopify}


@dataclass
class Row:
    vendor: str
    size: int
    first_s: float
    records: int
    seconds: float
    requests: int
    rss_mb: float
    cpu_s: float
    ended: bool
    #: the connector's records/s on this stream (measured against the same emulator), or None
    connector_rps: float | None = None
    #: records the connector read per second of the server's CPU while it read them, or None
    connector_capacity: float | None = None


def run(vendor: str, size: int, args: argparse.Namespace) -> Row:
    with start_sandbox([vendor], size=size, seed=args.seed, in_process=args.in_process) as sb:
        if args.advance:
            sb.advance(args.advance)
        emu = sb.emulators[vendor]
        sb.reset_stats(vendor)
        cpu_before = sb.stats(vendor)["cpu_seconds"]
        k = args.connections if vendor == "hubspot" else 1
        bounds = [1000 + size * n // k for n in range(k + 1)]
        streams = [READERS[vendor](emu.base_url, emu.settings, args.properties) if k == 1 else
                   _hubspot(emu.base_url, emu.settings, args.properties, (bounds[n], bounds[n + 1]))
                   for n in range(k)]
        counts, ended, firsts = [0] * k, [True] * k, [0.0] * k
        started = time.perf_counter()

        def read(n: int) -> None:
            for got in streams[n]:
                if not firsts[n]:
                    firsts[n] = time.perf_counter() - started
                counts[n] += got
                if counts[n] >= args.records // k:
                    ended[n] = False
                    break
            streams[n].close()

        threads = [threading.Thread(target=read, args=(n,)) for n in range(k)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        stats = sb.stats(vendor)
        connector = capacity = None
        if args.connector and size == args.connector_size:
            cpu_then = sb.stats(vendor)["cpu_seconds"]
            measured = _connector_rps(vendor, emu.settings)
            served_cpu = sb.stats(vendor)["cpu_seconds"] - cpu_then
            if measured:
                connector, records = measured
                capacity = records / served_cpu if served_cpu > 0 and not args.in_process else None
    cpu = stats.get("cpu_seconds", 0.0) - cpu_before if not args.in_process else 0.0
    return Row(vendor, size, firsts[0], sum(counts), elapsed, stats["requests"], stats["peak_rss_mb"], cpu,
               all(ended), connector, capacity)


def _connector_rps(vendor: str, settings: dict[str, str]) -> tuple[float, int] | None:
    """The factoryline connector's records/s over the vendor's main stream against this emulator,
    and the records it read: ``bench_connectors.py --child factoryline`` (its own process; a first
    full run of that one stream), with bench_connectors' unpaced settings."""
    import json
    import subprocess
    import tempfile

    from bench_connectors import UNPACED

    stream = MAIN_STREAM[vendor]
    if vendor == "salesforce":
        from connectors.salesforce.settings import stream_name

        stream = stream_name("Lead")
    script = Path(__file__).resolve().parent / "bench_connectors.py"
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, str(script), "--child", "factoryline", "--vendor", vendor,
                               "--settings", json.dumps({**settings, **UNPACED.get(vendor, {})}),
                               "--workdir", tmp, "--stream", stream], capture_output=True, text=True, cwd=tmp)
    if proc.returncode != 0:
        print(f"{vendor} connector failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # the pace it pulls pages at: records over the stream's own time (reading and mapping; the
    # process start, the loads and the derivation after it request nothing)
    if not result.get("extracting"):
        return None
    return float(result["records"] / result["extracting"]), int(result["records"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--vendor", action="append", choices=(*VENDORS, "all"),
                        help="vendor(s) to measure (repeatable; default hubspot)")
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated world sizes")
    parser.add_argument("--size", type=int, action="append", help="a world size (repeatable; overrides --sizes)")
    parser.add_argument("--records", type=int, default=100_000, help="records to read per run (or to the end)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--properties", choices=("all", "default"), default="all", help="hubspot properties")
    parser.add_argument("--connections", type=int, default=1,
                        help="hubspot only: parallel keep-alive connections, each paging its own id window")
    parser.add_argument("--advance", type=int, default=3, help="ticks to advance first (so changes replay)")
    parser.add_argument("--connector", action="store_true",
                        help="also run the vendor's connector over the same stream and emulator (first size only)")
    args = parser.parse_args()
    vendors = list(VENDORS) if not args.vendor or "all" in args.vendor else list(dict.fromkeys(args.vendor))
    if not args.vendor:
        vendors = ["hubspot"]
    sizes = args.size or [int(s) for s in args.sizes.split(",") if s.strip()]
    args.connector_size = sizes[0]
    header = (f"{'vendor':<11} {'size':>9} {'first req':>10} {'records':>9} {'seconds':>8} {'records/s':>10} "
              f"{'requests':>8} {'server RSS':>10} {'server CPU/rec':>14} {'connector rec/s':>20} {'serve/conn':>10} "
              f"{'capacity/conn':>13}")
    print(header)
    print("-" * len(header))
    measured: dict[str, float] = {}
    for vendor in vendors:
        for size in sizes:
            r = run(vendor, size, args)
            note = "" if not r.ended else "  (stream ended)"
            rps = r.records / r.seconds if r.seconds else 0.0
            if r.connector_rps:
                measured[vendor] = r.connector_rps
            conn, label = ((measured[vendor], "measured") if vendor in measured else
                           (CONNECTOR_RATES[vendor], "ref") if vendor in CONNECTOR_RATES else (None, ""))
            conn_text = f"{conn:>10,.0f} {label:>9}" if conn else f"{'-':>20}"
            ratio = f"{rps / conn:>9.1f}x" if conn else f"{'-':>10}"
            headroom = (f"{r.connector_capacity / r.connector_rps:>12.1f}x"
                        if r.connector_capacity and r.connector_rps else f"{'-':>13}")
            print(f"{r.vendor:<11} {r.size:>9,} {r.first_s * 1000:>8.0f}ms {r.records:>9,} {r.seconds:>8.1f} "
                  f"{rps:>10,.0f} {r.requests:>8,} {r.rss_mb:>7.0f} MB "
                  f"{r.cpu_s / max(1, r.records) * 1e6:>11.1f} us {conn_text} {ratio} {headroom}{note}",
                  flush=True)
    print(f"\n({'in-process' if args.in_process else 'server process'}; reproduce: /work/venv/bin/python "
          f"bench/bench_sandbox.py {' '.join(f'--vendor {v}' for v in vendors)} "
          f"--sizes {','.join(map(str, sizes))} --records {args.records} --seed {args.seed} --advance {args.advance}"
          f"{' --in-process' if args.in_process else ''}"
          f"{f' --connections {args.connections}' if args.connections > 1 else ''}"
          f"{' --connector' if args.connector else ''})")
    if not args.connector:
        print("(connector rec/s 'ref': CONNECTOR_RATES in bench/bench_sandbox.py, dated with their commands; "
              "--connector measures it against the same emulator)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
