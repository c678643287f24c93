"""Serving throughput of the HubSpot emulator: contacts/s through plain httpx, and peak RSS.

    /work/venv/bin/python bench/bench_sandbox.py --size 100000 [--in-process] [--properties all]

Pages ``GET /crm/v3/objects/contacts?limit=100&properties=<all 36>`` to the end on kept-alive
connections (``--connections 2`` splits the id range in two windows read in parallel, so the
client's parsing overlaps the server's work). The server runs in its own process unless
``--in-process``. Prints contacts/s, the server's peak RSS and this client's.
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.hubspot.emulator import _PROP_NAMES
from sandbox import start_sandbox


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--properties", choices=("all", "default"), default="all")
    parser.add_argument("--connections", type=int, default=1,
                        help="parallel keep-alive connections, each paging its own id window")
    parser.add_argument("--advance", type=int, default=3, help="ticks to advance first (so changes replay)")
    args = parser.parse_args()
    with start_sandbox(["hubspot"], size=args.size, seed=args.seed, in_process=args.in_process) as sb:
        if args.advance:
            sb.advance(args.advance)
        hs = sb.emulators["hubspot"]
        props = ",".join(_PROP_NAMES["contacts"]) if args.properties == "all" else ""
        headers = {"Authorization": f"Bearer {hs.settings['access_token']}"}
        first_id, n = 1000, args.size  # contact ids are 1000 + index
        bounds = [first_id + n * k // args.connections for k in range(args.connections + 1)]
        counts = [0] * args.connections

        def read_window(k: int) -> None:
            """Page contacts with ids in [bounds[k], bounds[k+1]) through the list cursor."""
            after: str | None = str(bounds[k]) if k else None
            with httpx.Client(base_url=hs.base_url, headers=headers, timeout=60) as client:
                while True:
                    params = {"limit": "100", "archived": "false"}
                    if props:
                        params["properties"] = props
                    if after:
                        params["after"] = after
                    resp = client.get("/crm/v3/objects/contacts", params=params)
                    resp.raise_for_status()
                    body = orjson.loads(resp.content)
                    counts[k] += sum(1 for r in body["results"] if int(r["id"]) < bounds[k + 1])
                    nxt = body.get("paging", {}).get("next")
                    if not nxt or int(nxt["after"]) >= bounds[k + 1]:
                        break
                    after = nxt["after"]

        sb.reset_stats("hubspot")
        cpu_before = sb.stats("hubspot")["cpu_seconds"]
        started = time.perf_counter()
        threads = [threading.Thread(target=read_window, args=(k,)) for k in range(args.connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        seen = sum(counts)
        stats = sb.stats("hubspot")
    client_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"contacts served: {seen} in {elapsed:.2f}s = {seen / elapsed:,.0f} contacts/s "
          f"({'in-process' if args.in_process else 'server process'}, {args.properties} properties, "
          f"{args.connections} connection(s), {stats['requests']} requests)")
    print(f"peak RSS: server {stats['peak_rss_mb']:.0f} MB, client {client_rss:.0f} MB")
    if not args.in_process:
        cpu = stats["cpu_seconds"] - cpu_before
        print(f"server CPU: {cpu:.2f}s = {cpu / seen * 1e6:.1f} us/contact, i.e. {seen / cpu:,.0f} contacts/s "
              "per fully available core (independent of other load on the machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
