"""Server CPU per contact of the HubSpot emulator for the connector's contacts read.

    /work/venv/bin/python bench/bench_hubspot_serving.py --size 100000 [--rounds 3] [--mode connector|raw]
    git archive <rev> | tar -x -C /tmp/fl_old     # an older tree, to compare in the same run:
    /work/venv/bin/python bench/bench_hubspot_serving.py --rounds 3 --tree /tmp/fl_old --tree .
    /work/venv/bin/python bench/bench_hubspot_serving.py --size 20000 --mode raw --hash --ticks 3 [--wide]

Each round starts ``python -m sandbox serve --vendor hubspot --size N --seed 11`` from each
``--tree`` in turn (default: this checkout), reads the contacts stream once and reports the server
process's CPU seconds (utime + stime from /proc) spent on that read, per 100,000 contacts. The
machine is shared: compare trees within one run, over several rounds.

``--mode connector`` drives the real HubSpot connector (as bench_pipeline's ``_pages``: list pages
with every property, archived ones too, one v4 association batch to companies per 1000 records).
``--mode raw`` sends the same requests with a plain keep-alive httpx client (less client CPU
competing on a small machine). ``--hash`` prints a SHA-256 over every response's status, headers
and body, with the time-dependent and random parts masked (batches' ``startedAt`` /
``completedAt``, errors' ``correlationId``, the ``Date`` header); with ``--ticks K`` the clock is
fixed (tick 0 on 2026-01-01, K daily ticks of changes and archivals), so the same digest from two
trees means byte-identical responses. ``--wide`` also reads every other object type, their
associations, search, batch and single reads (for identity, not timing).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from _serving_ab import print_table, run_rounds  # bench/, on sys.path as the script's directory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_TIMES = re.compile(rb'"(startedAt|completedAt|correlationId)":"[^"]*"')
#: query parameters as httpx takes them (a list: ``properties`` repeats)
_Params = list[tuple[str, str | int | float | bool | None]]


def read_connector(settings: dict[str, Any]) -> int:
    from core.connector import RunContext
    from core.plugins import get_registry
    from pipelines.config import resolve_config

    spec = get_registry().connector("hubspot")
    connector = spec.factory(resolve_config(spec, {**settings, "pace": "false", "search_requests_per_second": "0"}))
    ctx = RunContext(run_id="bench", started_at=datetime.now(UTC))
    n = 0
    try:
        for page in connector.extract(spec.stream("contacts"), {}, ctx):
            n += len(page.records)
    finally:
        connector.close()
    return n


def read_raw(settings: dict[str, Any], digest: Any | None) -> int:
    """The connector's requests for a full contacts read, with a plain client."""
    base = settings["base_url"]
    headers = {"authorization": f"Bearer {settings['access_token']}"}
    n = 0

    def seen(resp: httpx.Response) -> None:
        if digest is None:
            return
        digest.update(str(resp.status_code).encode())
        for k, v in sorted(resp.headers.items()):
            if k.lower() not in ("date",):
                digest.update(f"{k}:{v}\n".encode())
        digest.update(_TIMES.sub(rb'"\1":""', resp.content))

    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        resp = client.get("/crm/v3/properties/contacts", params={"archived": "false"})
        seen(resp)
        props = [p["name"] for p in resp.json()["results"]]
        for archived in ("false", "true"):
            after: str | None = None
            group: list[str] = []
            while True:
                params: _Params = [("limit", 100), *(("properties", p) for p in props), ("archived", archived)]
                if after:
                    params.append(("after", after))
                resp = client.get("/crm/v3/objects/contacts", params=params)
                seen(resp)
                body = resp.json()
                ids = [r["id"] for r in body["results"]]
                n += len(ids)
                if archived == "false":
                    group.extend(ids)
                after = ((body.get("paging") or {}).get("next") or {}).get("after")
                if group and (len(group) >= 1000 or not after):
                    resp = client.post("/crm/v4/associations/contacts/companies/batch/read",
                                       json={"inputs": [{"id": x} for x in group]})
                    seen(resp)
                    group = []
                if not after:
                    break
    return n


#: --wide: every CRM object's list and v4 associations, plus search, batch read and single reads
_WIDE_ASSOC = {"contacts": ("companies", "deals"), "companies": ("contacts", "deals"),
               "deals": ("contacts", "companies", "line_items"), "line_items": ("deals",),
               "calls": ("contacts", "companies", "deals"), "emails": ("contacts",), "meetings": ("deals",),
               "notes": ("companies", "contacts"), "tasks": ("contacts", "companies", "deals")}


def read_wide(settings: dict[str, Any], digest: Any) -> int:
    """Every object type read like contacts (list pages with all properties, archived ones, v4
    associations per 1000 ids), contacts with a few properties and v3 associations, then search,
    batch read and single reads: the other paths the shared builders feed (identity checks only)."""
    headers = {"authorization": f"Bearer {settings['access_token']}"}
    n = 0

    def seen(resp: httpx.Response) -> Any:
        digest.update(str(resp.status_code).encode())
        for k, v in sorted(resp.headers.items()):
            if k.lower() != "date":
                digest.update(f"{k}:{v}\n".encode())
        digest.update(_TIMES.sub(rb'"\1":""', resp.content))
        return resp.json()

    with httpx.Client(base_url=settings["base_url"], headers=headers, timeout=60) as client:
        for obj, targets in _WIDE_ASSOC.items():
            props = [p["name"] for p in seen(client.get(f"/crm/v3/properties/{obj}"))["results"]]
            for archived in ("false", "true"):
                after: str | None = None
                ids: list[str] = []
                while True:
                    params: _Params = [("limit", 100), ("properties", ",".join(props)), ("archived", archived)]
                    if after:
                        params.append(("after", after))
                    body = seen(client.get(f"/crm/v3/objects/{obj}", params=params))
                    ids.extend(r["id"] for r in body["results"])
                    n += len(body["results"])
                    after = ((body.get("paging") or {}).get("next") or {}).get("after")
                    if not after:
                        break
                for to in targets:
                    for i in range(0, len(ids), 1000):
                        seen(client.post(f"/crm/v4/associations/{obj}/{to}/batch/read",
                                         json={"inputs": [{"id": x} for x in ids[i:i + 1000]]}))
            seen(client.post(f"/crm/v3/objects/{obj}/batch/read",
                             json={"inputs": [{"id": x} for x in ids[:100]] + [{"id": "12"}],
                                   "properties": props[:5]}))
            for x in ids[:3]:
                seen(client.get(f"/crm/v3/objects/{obj}/{x}", params={"properties": ",".join(props[-4:])}))
                seen(client.get(f"/crm/v4/objects/{obj}/{x}/associations/{targets[0]}"))
        after = None
        while True:
            params = [("limit", 37), ("properties", "email,lifecyclestage,hs_lifecyclestage_lead_date"),
                      ("associations", "companies,deals")]
            if after:
                params.append(("after", after))
            body = seen(client.get("/crm/v3/objects/contacts", params=params))
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
        for query in ({"filterGroups": [{"filters": [{"propertyName": "lifecyclestage", "operator": "EQ",
                                                       "value": "customer"}]}],
                       "sorts": [{"propertyName": "createdate", "direction": "DESCENDING"}],
                       "properties": ["email", "hs_lifecyclestage_customer_date"], "limit": 100},
                      {"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE",
                                                       "value": "2025-06-01T00:00:00Z"}]}], "limit": 100},
                      {"query": "gmail", "limit": 50, "after": 50}):
            seen(client.post("/crm/v3/objects/contacts/search", json=query))
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--mode", choices=("connector", "raw"), default="connector")
    ap.add_argument("--hash", action="store_true", help="digest of every response (raw mode)")
    ap.add_argument("--wide", action="store_true", help="with --hash: read every object type and more paths "
                                                         "(an identity check; its CPU is not the contacts read's)")
    ap.add_argument("--ticks", type=int, default=-1,
                    help="serve a fixed clock with this many ticks after tick 0 (default: a new world, now)")
    ap.add_argument("--tree", action="append", type=Path, help="source tree to serve from (repeatable)")
    args = ap.parse_args()
    trees = args.tree or [ROOT]

    def read(info: dict[str, Any], digest: Any | None) -> int:
        if args.wide:
            return read_wide(info["settings"], digest or hashlib.sha256())
        if args.mode == "connector":
            return read_connector(info["settings"])
        return read_raw(info["settings"], digest)

    rows = run_rounds("hubspot", trees, args.rounds, args.size, 11, args.ticks if args.ticks >= 0 else None,
                      args.hash, read)
    print_table(rows, __file__)


if __name__ == "__main__":
    main()
