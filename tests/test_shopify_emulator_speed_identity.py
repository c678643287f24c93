"""The Shopify emulator's shortcuts serve exactly the journeys' orders.

A page skips the people who cannot buy from two hashes (without building them), builds a buyer's
touches only when one of its orders can carry a campaign, and the index and the changed records
read orders without their campaigns. Checked here against ``Journeys.orders`` for every person
(not only those the shortcuts pick), after ticks so that people became customers and orders
changed: the ID-sorted pages, the ``UPDATED_AT`` pages (the index), the changed orders after a
tick and the bulk operation's rows must all hold every order, with its campaign fields.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from connectors.shopify import settings as S
from sandbox import Sandbox, start_sandbox
from sandbox.journeys import Journeys
from sandbox.world import World, format_ms, parse_time

SIZE = 3000
GQL = "/admin/api/2025-01/graphql.json"
FIELDS = ("id name updatedAt email customer { id } customerJourneySummary { firstVisit { landingPage "
          "utmParameters { source medium campaign } } } lineItems(first: 5) { nodes { sku quantity } }")


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox(["shopify"], size=SIZE, seed=7, in_process=True) as sandbox:
        sandbox.advance(4)
        yield sandbox


def _client(sb: Sandbox) -> httpx.Client:
    s = sb.emulators["shopify"]
    return httpx.Client(base_url=s.base_url, timeout=60, headers={"X-Shopify-Access-Token": s.settings["access_token"]})


def _expected(sb: Sandbox, since_ms: int = 0) -> tuple[dict[str, Any], set[str]]:
    """Order name -> journeys' order for every person, and the customers' gids (not guests)."""
    clock = sb.clock()
    j = Journeys(World(seed=clock["seed"], size=clock["size"], ticks=[parse_time(t) for t in clock["ticks"]]))
    orders: dict[str, Any] = {}
    customers: set[str] = set()
    for p in range(j.world.people.count(j.world.tick)):
        mine = j.orders(p)
        orders.update((o.number, o) for o in mine if o.updated_ms >= since_ms)
        if mine and not j.is_guest_buyer(p):
            customers.add(f"gid://shopify/Customer/{7_000_000_000 + p}")
    return orders, customers


def _pages(c: httpx.Client, sort: str, query: str | None = None, first: int = 20) -> list[dict[str, Any]]:
    q = (f"query($after: String, $query: String) {{ orders(first: {first}, after: $after, query: $query, "
         f"sortKey: {sort}) {{ nodes {{ {FIELDS} }} pageInfo {{ hasNextPage endCursor }} }} }}")
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        body = c.post(GQL, json={"query": q, "variables": {"after": after, "query": query}}).json()
        assert "errors" not in body, body
        conn = body["data"]["orders"]
        nodes.extend(conn["nodes"])
        if not conn["pageInfo"]["hasNextPage"]:
            return nodes
        after = conn["pageInfo"]["endCursor"]


def _check(nodes: list[dict[str, Any]], expected: dict[str, Any], customers: set[str]) -> None:
    assert sorted(n["name"] for n in nodes) == sorted(expected)
    for node in nodes:
        o = expected[node["name"]]
        assert node["email"] == o.email
        assert (node["customer"] or {}).get("id") == (
            f"gid://shopify/Customer/{7_000_000_000 + o.person_idx}"
            if f"gid://shopify/Customer/{7_000_000_000 + o.person_idx}" in customers else None)
        visit = node["customerJourneySummary"]["firstVisit"]
        assert visit["landingPage"].endswith(o.landing_site)
        assert (visit["utmParameters"] or {}).get("campaign") == o.utm_campaign
        assert [(li["sku"], li["quantity"]) for li in node["lineItems"]["nodes"]] == [
            (line.sku, line.quantity) for line in o.lines][:5]


def test_pages_index_and_changed_orders_are_the_journeys(sb: Sandbox) -> None:
    expected, customers = _expected(sb)
    assert len(expected) > 500 and sum(o.utm_campaign is not None for o in expected.values()) > 50
    with _client(sb) as c:
        by_id = _pages(c, "ID", first=80)
        _check(by_id, expected, customers)
        assert [int(n["id"].rsplit("/", 1)[1]) for n in by_id] == sorted(
            int(n["id"].rsplit("/", 1)[1]) for n in by_id)
        by_update = _pages(c, "UPDATED_AT")  # the per-tick index
        _check(by_update, expected, customers)
        assert [n["updatedAt"] for n in by_update] == sorted(n["updatedAt"] for n in by_update)
        since = parse_time(sb.clock()["ticks"][1])
        since -= since % 1000  # Shopify keeps whole seconds
        changed, _ = _expected(sb, since)
        assert changed
        query = f"updated_at:>='{format_ms(since)}'"
        _check(_pages(c, "UPDATED_AT", query), changed, customers)  # the changed records
        _check(_pages(c, "ID", query), changed, customers)
        q = ("query($after: String) { customers(first: 250, after: $after) { nodes { id } "
             "pageInfo { hasNextPage endCursor } } }")
        got: list[str] = []
        after = None
        while True:
            conn = c.post(GQL, json={"query": q, "variables": {"after": after}}).json()["data"]["customers"]
            got.extend(n["id"] for n in conn["nodes"])
            if not conn["pageInfo"]["hasNextPage"]:
                break
            after = conn["pageInfo"]["endCursor"]
        assert sorted(got) == sorted(customers)


def test_bulk_rows_are_the_pages(sb: Sandbox) -> None:
    with _client(sb) as c:
        pages = {n["id"]: n for n in _pages(c, "ID", first=20)}
        rows = _bulk_rows(c, f"{{ orders {{ edges {{ node {{ {S.BULK_STREAM_FIELDS['orders']} }} }} }} }}")
    roots = {r["id"]: r for r in rows if "__parentId" not in r}
    assert roots.keys() == pages.keys()
    lines: dict[str, list[tuple[str, int]]] = {}
    for r in rows:
        if "__parentId" in r:
            lines.setdefault(r["__parentId"], []).append((r["sku"], r["quantity"]))
    for gid, node in pages.items():
        row = roots[gid]
        assert (row["name"], row["updatedAt"], row["email"]) == (node["name"], node["updatedAt"], node["email"])
        utm = row["customerJourneySummary"]["firstVisit"]["utmParameters"]
        assert (None if utm is None else {k: utm[k] for k in ("source", "medium", "campaign")}) == \
            node["customerJourneySummary"]["firstVisit"]["utmParameters"]
        assert lines[gid][:5] == [(li["sku"], li["quantity"]) for li in node["lineItems"]["nodes"]]


def _bulk_rows(c: httpx.Client, query: str) -> list[dict[str, Any]]:
    op = c.post(GQL, json={"query": S.BULK_RUN_MUTATION, "variables": {"query": query}}).json()
    gid = op["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"]
    for _ in range(600):
        status = c.post(GQL, json={"query": S.BULK_STATUS_QUERY, "variables": {"id": gid}}).json()
        status = status["data"]["bulkOperation"]
        if status["status"] == "COMPLETED":
            return [orjson.loads(line) for line in httpx.get(status["url"], timeout=60).content.splitlines()]
        time.sleep(0.05)
    raise AssertionError(status)


def test_an_orders_customer_is_the_customer(sb: Sandbox) -> None:
    """An order's customer builds its dates, counts and amount only when selected: every field
    is still the customer's own, in pages (both executors) and in a bulk operation's rows."""
    fields = ("id email firstName displayName createdAt updatedAt numberOfOrders amountSpent { amount currencyCode } "
              "state verifiedEmail")
    with _client(sb) as c:
        def post(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
            body = c.post(GQL, json={"query": query, "variables": variables or {}}).json()
            assert "errors" not in body, body
            return body["data"]

        pages = post(f"{{ orders(first: 60) {{ nodes {{ id customer {{ {fields} }} }} }} }}")["orders"]["nodes"]
        # a directive: graphql-core's executor instead of the fast one
        core = post(f"{{ orders(first: 60) {{ nodes {{ id customer @include(if: true) {{ {fields} }} }} }} }}")
        assert core["orders"]["nodes"] == pages
        bulk = _bulk_rows(c, f"{{ orders {{ edges {{ node {{ id customer {{ {fields} }} }} }} }} }}")
        by_id = {r["id"]: r for r in bulk}
        seen = 0
        for node in pages:
            assert by_id[node["id"]] == node
            if node["customer"] is None:
                continue
            seen += 1
            own = post(f"query($id: ID!) {{ customer(id: $id) {{ {fields} }} }}", {"id": node["customer"]["id"]})
            assert node["customer"] == own["customer"]
            assert int(own["customer"]["numberOfOrders"]) >= 1 and own["customer"]["createdAt"]
        assert seen > 20
