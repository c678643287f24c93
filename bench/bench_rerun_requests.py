"""Salesforce: API requests of a full run against a re-run after one sandbox tick (issue #4).

    python bench/bench_rerun_requests.py --size 100000
    python bench/bench_rerun_requests.py --size 100000 --no-composite   # one request per describe/page

Every Salesforce object is read through the connector (no dlt: requests are what is measured),
first in full, then again after the sandbox advances one tick (~1% of records change, ~0.1% are
deleted). Requests are counted by the emulator (``/_sandbox/stats``), per route. The emulator runs
in a child process; the connector with its default settings (page_size 2000, bulk_threshold 50000,
lookback 300 s). Done-when: the re-run makes at most 2% of the full run's requests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _run(sb: Any, states: dict[str, dict[str, Any]], composite: bool) -> tuple[dict[str, int], dict[str, int], float]:
    from connectors.salesforce import connector_spec
    from connectors.salesforce.helpers import SalesforceConnector
    from core.connector import ConnectorConfig, RunContext

    settings = {**sb.emulators["salesforce"].settings, "composite": str(composite).lower()}
    conn = SalesforceConnector(ConnectorConfig("salesforce", "bench", settings, frozenset()))
    ctx = RunContext("bench", datetime.now(UTC))
    sb.reset_stats("salesforce")
    records: dict[str, int] = {}
    t0 = time.perf_counter()
    try:
        for stream in connector_spec(extra=()).streams:
            n = 0
            for page in conn.extract(stream, states.get(stream.name, {}), ctx):
                n += len(page.records)
                if page.state is not None:
                    states[stream.name] = page.state
            records[stream.name] = n
    finally:
        conn.close()
    seconds = time.perf_counter() - t0
    routes = {k: v["requests"] for k, v in sb.stats("salesforce")["routes"].items() if "/_sandbox/" not in k}
    return records, routes, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="people in the sandbox world")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-composite", action="store_true", help="connector setting composite=false")
    args = parser.parse_args()

    from sandbox import start_sandbox

    composite = not args.no_composite
    with start_sandbox(["salesforce"], size=args.size, seed=args.seed) as sb:
        states: dict[str, dict[str, Any]] = {}
        full_records, full_routes, full_s = _run(sb, states, composite)
        time.sleep(0.01)
        sb.advance()
        re_records, re_routes, re_s = _run(sb, states, composite)
    full_req, re_req = sum(full_routes.values()), sum(re_routes.values())
    total = sum(full_records.values())
    changed = sum(re_records.values())
    out = {
        "size": args.size, "composite": composite,
        "full_run": {"requests": full_req, "records": total, "seconds": round(full_s, 1), "routes": full_routes},
        "rerun": {"requests": re_req, "records": changed, "seconds": round(re_s, 2), "routes": re_routes,
                  "records_by_stream": re_records},
        "changed_share": round(changed / total, 5) if total else None,
        "request_ratio": round(re_req / full_req, 4) if full_req else None,
    }
    print(json.dumps(out, indent=2))
    print(f"full run {full_req} requests for {total} records; re-run {re_req} requests for {changed} changed "
          f"records ({out['changed_share']:.2%} of them): ratio {out['request_ratio']:.2%} (done-when: <= 2%)")


if __name__ == "__main__":
    main()
