"""Server CPU per order of the Shopify emulator: connection pages and the bulk operation.

    /work/venv/bin/python bench/bench_shopify_serving.py --size 100000 [--records 100000] [--mode pages|bulk]
    git archive <rev> | tar -x -C /tmp/fl_old     # an older tree, to compare in the same run:
    /work/venv/bin/python bench/bench_shopify_serving.py --rounds 3 --tree /tmp/fl_old --tree .
    /work/venv/bin/python bench/bench_shopify_serving.py --size 20000 --mode all --hash --ticks 3

Each round starts ``python -m sandbox serve --vendor shopify --size N --seed 7`` from each
``--tree`` in turn (default: this checkout), reads orders once and reports the server process's
CPU seconds (utime + stime from /proc) spent on that read, per 100,000 orders. The machine is
shared: compare trees within one run, over several rounds.

``--mode pages`` reads what ``bench_sandbox.py --vendor shopify`` reads: ``orders(first: 250,
after:)`` with ``edges { cursor node {...} }``, up to ``--records`` orders. ``--mode bulk`` runs
the connector's bulk operation over every order (``settings.BULK_STREAM_FIELDS``: line items as
``__parentId`` rows): the mutation, status polls until COMPLETED, then the JSONL download; its
orders are the file's root rows. ``--mode connector`` pages the connector's own query
(``settings.CONNECTION_QUERY``: ``sortKey: UPDATED_AT``, 25 orders a page, line items inline),
which builds the per-tick index of buyers on its first page. ``--mode all`` (with ``--hash``) does
all three and more (customers, other sort keys, single orders; for identity, not timing).

``--hash`` prints a SHA-256 over every response's status, headers and body, with the parts that
depend on the wall clock or chance masked (``X-Request-Id``, ``Date``, the bulk operation's
``createdAt`` / ``completedAt`` and its download ``url``, the status polls before the one that
sees it COMPLETED); with ``--ticks K`` the clock is fixed
(tick 0 on 2026-01-01, K daily ticks), so the same digest from two trees means byte-identical
responses and bulk files.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from _serving_ab import print_table, run_rounds  # bench/, on sys.path as the script's directory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.shopify import settings as S  # noqa: E402

_MASK = re.compile(rb'"(createdAt|completedAt|url)":"[^"]*"')
PAGE_QUERY = ("query($after: String) { orders(first: 250, after: $after) { edges { cursor node { id name createdAt "
              "updatedAt email totalPriceSet { shopMoney { amount currencyCode } } } } "
              "pageInfo { hasNextPage endCursor } } }")


class _Client:
    def __init__(self, settings: dict[str, Any], digest: Any | None) -> None:
        self.http = httpx.Client(headers={"X-Shopify-Access-Token": settings["access_token"]}, timeout=300)
        self.url = settings["graphql_url"]
        self.digest = digest

    def seen(self, resp: httpx.Response) -> None:
        if self.digest is None:
            return
        self.digest.update(str(resp.status_code).encode())
        for k, v in sorted(resp.headers.items()):
            if k.lower() not in ("date", "x-request-id"):
                self.digest.update(f"{k}:{v}\n".encode())
        self.digest.update(_MASK.sub(rb'"\1":""', resp.content))

    def post(self, query: str, variables: dict[str, Any] | None = None, seen: bool = True) -> Any:
        resp = self.http.post(self.url, json={"query": query, "variables": variables or {}})
        if seen:
            self.seen(resp)
        resp.raise_for_status()
        body = orjson.loads(resp.content)
        if not body.get("data"):
            raise RuntimeError(body.get("errors"))
        return body["data"]

    def connection(self, query: str, name: str, variables: dict[str, Any], limit: int) -> int:
        """Nodes read following ``endCursor`` (through ``$after``), up to ``limit``."""
        n = 0
        variables = dict(variables)
        while n < limit:
            conn = self.post(query, variables)[name]
            n += len(conn.get("nodes") or conn.get("edges") or ())
            if not conn["pageInfo"]["hasNextPage"]:
                break
            variables["after"] = conn["pageInfo"]["endCursor"]
        return n

    def bulk(self, stream: str, query_filter: str = "") -> int:
        """A bulk operation over ``stream`` as the connector runs it: its root rows."""
        args = f"(query: {json.dumps(query_filter)})" if query_filter else ""
        query = f"{{ {stream}{args} {{ edges {{ node {{ {S.BULK_STREAM_FIELDS[stream]} }} }} }} }}"
        op = self.post(S.BULK_RUN_MUTATION, {"query": query})["bulkOperationRunQuery"]["bulkOperation"]
        while True:  # how many polls see RUNNING depends on the machine: only the last one is digested
            status = self.post(S.BULK_STATUS_QUERY, {"id": op["id"]}, seen=False)["bulkOperation"]
            if status["status"] == "COMPLETED":
                self.post(S.BULK_STATUS_QUERY, {"id": op["id"]})
                break
            if status["status"] not in ("CREATED", "RUNNING"):
                raise RuntimeError(status)
            time.sleep(0.05)
        if not status["url"]:
            return 0
        roots = 0
        with self.http.stream("GET", status["url"]) as resp:
            resp.raise_for_status()
            for line in resp.iter_lines():
                if self.digest is not None:
                    self.digest.update(line.encode() + b"\n")
                roots += '"__parentId"' not in line
        return roots


def read(settings: dict[str, Any], mode: str, records: int, digest: Any | None) -> int:
    c = _Client(settings, digest)
    try:
        if mode == "pages":
            return c.connection(PAGE_QUERY, "orders", {}, records)
        if mode == "bulk":
            return c.bulk("orders")
        orders_query = S.CONNECTION_QUERY.format(name="orders", fields=S.node_fields("orders"))
        if mode == "connector":
            return c.connection(orders_query, "orders", {"first": 25, "query": None}, records)
        return read_all(c, orders_query, records)
    finally:
        c.http.close()


def read_all(c: _Client, orders_query: str, records: int) -> int:
    """Every path the connector and the tests use (identity checks, not timing)."""
    n = c.connection(PAGE_QUERY, "orders", {}, records)
    n += c.bulk("orders") + c.bulk("customers")
    n += c.bulk("orders", "updated_at:>'2026-01-01T12:00:00Z'")
    since = "updated_at:>'2026-01-01T12:00:00Z'"
    n += c.connection(orders_query, "orders", {"first": 25, "query": None}, records)
    n += c.connection(orders_query, "orders", {"first": 25, "query": since}, records)
    customers_query = S.CONNECTION_QUERY.format(name="customers", fields=S.node_fields("customers"))
    n += c.connection(customers_query, "customers", {"first": 100, "query": None}, records)
    n += c.connection(customers_query, "customers", {"first": 100, "query": since}, records)
    full = S.node_fields("orders")
    for sort in ("ID", "CREATED_AT", "TOTAL_PRICE", "CUSTOMER_NAME"):
        for reverse in ("false", "true"):
            q = (f"query($after: String) {{ orders(first: 20, after: $after, sortKey: {sort}, reverse: {reverse}, "
                 f"query: \"status:any -test:true\") {{ edges {{ cursor node {{ {full} }} }} "
                 "pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }")
            n += c.connection(q, "orders", {}, 80)
    last = c.post("{ orders(last: 20) { nodes { id } pageInfo { startCursor } } }")["orders"]
    c.post("query($b: String) { orders(last: 20, before: $b) { nodes { id lineItems(last: 2) { edges { cursor "
           "node { id sku } } } } pageInfo { hasNextPage hasPreviousPage } } }", {"b": last["pageInfo"]["startCursor"]})
    for node in c.post("{ orders(first: 30) { nodes { id customer { id } } } }")["orders"]["nodes"]:
        c.post(S.ORDER_LINES_QUERY, {"id": node["id"]})
        if node["customer"]:
            c.post("query($id: ID!) { customer(id: $id) { id email amountSpent { amount } numberOfOrders "
                   "orders(first: 5, reverse: true) { edges { cursor node { id customerJourneySummary { "
                   "customerOrderIndex firstVisit { id source occurredAt } } } } } } }", {"id": node["customer"]["id"]})
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--records", type=int, default=100_000, help="orders to read (pages, connector)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--mode", choices=("pages", "bulk", "connector", "all"), default="pages")
    ap.add_argument("--hash", action="store_true", help="digest of every response and bulk file")
    ap.add_argument("--ticks", type=int, default=-1,
                    help="serve a fixed clock with this many ticks after tick 0 (default: a new world, now)")
    ap.add_argument("--tree", action="append", type=Path, help="source tree to serve from (repeatable)")
    args = ap.parse_args()
    trees = args.tree or [ROOT]

    def read_info(info: dict[str, Any], digest: Any | None) -> int:
        return read(info["settings"], args.mode, args.records, digest)

    rows = run_rounds("shopify", trees, args.rounds, args.size, 7, args.ticks if args.ticks >= 0 else None,
                      args.hash, read_info)
    print_table(rows, __file__, unit="orders")


if __name__ == "__main__":
    main()
