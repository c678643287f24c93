"""The Shopify GraphQL Admin API emulator over real HTTP (plain httpx), checked against the journeys."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import yaml

from sandbox import FaultRule, Sandbox, start_sandbox
from sandbox.journeys import Journeys
from sandbox.world import World, format_ms, parse_time
from tests.conftest import VENDOR_REFERENCE

SIZE = 400
SPEC = "connectors.shopify.emulator:emulator_spec"
REST_OPENAPI = VENDOR_REFERENCE / "shopify" / "shopify_admin_rest_2021-10.openapi.yml"
GQL = "/admin/api/2025-01/graphql.json"
ROUTE = "POST /admin/api/{version}/graphql.json"

ORDER_FIELDS = """
  id name email createdAt updatedAt cancelledAt test displayFinancialStatus
  totalPriceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
  currentTotalPriceSet { shopMoney { amount currencyCode } }
  customer { id email firstName lastName }
  lineItems(first: 10) { nodes { id sku title quantity originalUnitPriceSet { shopMoney { amount currencyCode } } } }
  customerJourneySummary { firstVisit { landingPage referrerUrl utmParameters { source medium campaign } } }
  tags
"""
ORDERS_PAGE = """query Orders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    edges { cursor node { ...O } }
    pageInfo { hasNextPage endCursor }
  }
}
fragment O on Order { """ + ORDER_FIELDS + "}"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox([SPEC], size=SIZE, seed=7, in_process=True) as sandbox:
        yield sandbox


@pytest.fixture
def faults(sb: Sandbox) -> Iterator[Sandbox]:
    yield sb
    sb.set_faults("shopify", [])


def http(sandbox: Sandbox, token: str | None = None, timeout: float = 10) -> httpx.Client:
    s = sandbox.emulators["shopify"]
    return httpx.Client(base_url=s.base_url, timeout=timeout,
                        headers={"X-Shopify-Access-Token": token or s.settings["access_token"]})


def gql(c: httpx.Client, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    r = c.post(GQL, json={"query": query, "variables": variables or {}})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def journeys_of(sandbox: Sandbox) -> Journeys:
    clock = sandbox.clock()
    return Journeys(World(seed=clock["seed"], size=clock["size"], ticks=[parse_time(t) for t in clock["ticks"]]))


def expected_orders(j: Journeys, since_ms: int = 0) -> dict[str, Any]:
    """Order name -> journeys Order, for orders updated at or after ``since_ms``."""
    out = {}
    for p in j.people_with_orders_since(since_ms):
        for o in j.orders(p):
            if o.updated_ms >= since_ms:
                out[o.number] = o
    return out


def all_orders(c: httpx.Client, query: str | None = None, first: int = 10) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        body = gql(c, ORDERS_PAGE, {"first": first, "after": after, "query": query})
        assert "errors" not in body, body
        conn = body["data"]["orders"]
        nodes.extend(e["node"] for e in conn["edges"])
        if not conn["pageInfo"]["hasNextPage"]:
            return nodes
        after = conn["pageInfo"]["endCursor"]
        assert after == conn["edges"][-1]["cursor"]


def cents(amount: str) -> int:
    return round(float(amount) * 100)


def test_emulator_spec_loads_by_reference() -> None:
    from connectors.shopify.emulator import emulator_spec

    assert emulator_spec().name == "shopify"


# -- connections ------------------------------------------------------------------------------------


def test_orders_page_to_the_end_with_every_line_item(sb: Sandbox) -> None:
    expected = expected_orders(journeys_of(sb))
    assert len(expected) > 50  # several pages
    with http(sb) as c:
        nodes = all_orders(c)
    assert len(nodes) == len({n["id"] for n in nodes}) == len(expected)
    stamps = [n["updatedAt"] for n in nodes]
    assert stamps == sorted(stamps)  # sortKey: UPDATED_AT
    for node in nodes:
        o = expected[node["name"]]
        assert node["email"] == o.email and node["test"] is o.test
        assert (node["cancelledAt"] is None) == (o.cancelled_ms is None)
        assert [(li["sku"], li["quantity"]) for li in node["lineItems"]["nodes"]] == [
            (line.sku, line.quantity) for line in o.lines]
        total = sum(line.quantity * line.unit_price_cents for line in o.lines)
        assert cents(node["totalPriceSet"]["presentmentMoney"]["amount"]) == total
        assert node["totalPriceSet"]["presentmentMoney"]["currencyCode"] == o.currency
        assert node["totalPriceSet"]["shopMoney"]["currencyCode"] == "USD"
        assert node["id"].startswith("gid://shopify/Order/")
        visit = node["customerJourneySummary"]["firstVisit"]
        assert visit["landingPage"].endswith(o.landing_site)
        utm = visit["utmParameters"]
        assert (utm or {}).get("campaign") == o.utm_campaign
        if node["customer"] is not None:
            assert node["customer"]["id"].startswith("gid://shopify/Customer/")


def test_customers_agree_with_their_orders(sb: Sandbox) -> None:
    j = journeys_of(sb)
    query = """query($after: String) { customers(first: 20, after: $after) {
        nodes { id email firstName numberOfOrders amountSpent { amount currencyCode }
                orders(first: 10) { nodes { name customer { id } } } }
        pageInfo { hasNextPage endCursor } } }"""
    customers: list[dict[str, Any]] = []
    with http(sb) as c:
        after = None
        while True:
            conn = gql(c, query, {"after": after})["data"]["customers"]
            customers.extend(conn["nodes"])
            if not conn["pageInfo"]["hasNextPage"]:
                break
            after = conn["pageInfo"]["endCursor"]
    buyers = {p for p in j.people_with_orders_since(0) if not j.is_guest_buyer(p)}
    assert len(customers) == len(buyers) > 0
    for cust in customers:
        assert isinstance(cust["numberOfOrders"], str)  # UnsignedInt64
        assert all(o["customer"]["id"] == cust["id"] for o in cust["orders"]["nodes"])
        assert int(cust["numberOfOrders"]) <= len(cust["orders"]["nodes"])
        assert cust["amountSpent"]["currencyCode"] == "USD"


def test_updated_at_filter_after_advance() -> None:
    with start_sandbox([SPEC], size=SIZE, seed=7, in_process=True) as sb, http(sb) as c:
        tick0 = sb.clock()["ticks"][0]
        assert all_orders(c, f"updated_at:>'{tick0}'") == []
        for k in range(1, 11):  # Shopify's timestamps are whole seconds: ticks a minute apart
            sb.advance(at=format_ms(parse_time(tick0) + k * 60_000))
        expected = expected_orders(journeys_of(sb), parse_time(tick0) + 1)
        assert expected, "ten ticks change some orders"
        changed = all_orders(c, f"updated_at:>'{tick0}'", first=3)
        assert {n["name"] for n in changed} == set(expected)
        assert all(parse_time(n["updatedAt"]) > parse_time(tick0) for n in changed)


def test_reverse_last_before_and_single_node(sb: Sandbox) -> None:
    with http(sb) as c:
        forward = gql(c, "{ orders(first: 5, sortKey: CREATED_AT) { edges { cursor node { id createdAt } } } }")
        edges = forward["data"]["orders"]["edges"]
        back = gql(c, "query($b: String) { orders(last: 2, before: $b, sortKey: CREATED_AT) { nodes { id } "
                      "pageInfo { hasPreviousPage } } }", {"b": edges[4]["cursor"]})["data"]["orders"]
        assert [n["id"] for n in back["nodes"]] == [e["node"]["id"] for e in edges[2:4]]
        assert back["pageInfo"]["hasPreviousPage"] is True
        rev = gql(c, "{ orders(first: 5, sortKey: CREATED_AT, reverse: true) { nodes { createdAt } } }")
        stamps = [n["createdAt"] for n in rev["data"]["orders"]["nodes"]]
        assert stamps == sorted(stamps, reverse=True) and stamps[0] >= edges[-1]["node"]["createdAt"]
        one = gql(c, "query($id: ID!) { order(id: $id) { id name } }", {"id": edges[0]["node"]["id"]})
        assert one["data"]["order"]["id"] == edges[0]["node"]["id"]
        assert gql(c, '{ order(id: "gid://shopify/Order/1") { id } }')["data"]["order"] is None


# -- GraphQL semantics ---------------------------------------------------------------------------------


def test_aliases_fragments_and_field_selection(sb: Sandbox) -> None:
    with http(sb) as c:
        body = gql(c, """query Two($n: Int!) {
            recent: orders(first: $n, reverse: true) { nodes { ...Small } }
            oldest: orders(first: 1) { nodes { ... on Order { number: name } } } }
            fragment Small on Order { id total: totalPriceSet { shopMoney { amount } } }""", {"n": 2})
    assert set(body["data"]) == {"recent", "oldest"}
    assert all(set(n) == {"id", "total"} for n in body["data"]["recent"]["nodes"])
    assert set(body["data"]["oldest"]["nodes"][0]) == {"number"}


def test_graphql_errors_in_shopify_shape(sb: Sandbox) -> None:
    with http(sb) as c:
        unknown = gql(c, "{ orders(first: 1) { nodes { id landingSiteRef } } }")
        assert "data" not in unknown
        assert unknown["errors"][0]["message"] == "Field 'landingSiteRef' doesn't exist on type 'Order'"
        assert unknown["errors"][0]["extensions"] == {"code": "undefinedField", "typeName": "Order",
                                                     "fieldName": "landingSiteRef"}
        arg = gql(c, "{ orders(first: 1, since: 3) { nodes { id } } }")
        assert arg["errors"][0]["extensions"]["code"] == "argumentNotAccepted"
        no_first = gql(c, "{ orders { nodes { id } } }")
        assert no_first["errors"][0]["message"] == "you must provide one of first or last"
        assert no_first["data"] is None
        syntax = gql(c, "{ orders(first: 1) { nodes { id }")
        assert syntax["errors"][0]["locations"]
        r = httpx.post(sb.emulators["shopify"].base_url + GQL, json={"query": "{ shop { name } }"},
                       headers={"X-Shopify-Access-Token": "shpat_wrong"})
        assert r.status_code == 401
        assert r.json() == {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}


def test_cost_extension_and_max_cost(sb: Sandbox) -> None:
    with http(sb) as c:
        body = gql(c, "{ orders(first: 10) { nodes { id totalPriceSet { shopMoney { amount } } "
                      "lineItems(first: 5) { nodes { id } } } } }")
        cost = body["extensions"]["cost"]
        assert cost["requestedQueryCost"] == 2 + 10 * (1 + 2 + (2 + 5))
        assert 0 < cost["actualQueryCost"] <= cost["requestedQueryCost"]
        assert cost["throttleStatus"]["maximumAvailable"] == 2000
        assert cost["throttleStatus"]["restoreRate"] == 100
        assert 0 < cost["throttleStatus"]["currentlyAvailable"] <= 2000
        big = gql(c, "{ orders(first: 250) { nodes { id lineItems(first: 250) { nodes { id } } } } }")
        assert "data" not in big and big["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"


def test_throttled_when_the_bucket_is_empty() -> None:
    query = "{ orders(first: 200) { nodes { id totalPriceSet { shopMoney { amount } } } } }"
    with start_sandbox([SPEC], size=1000, seed=7, in_process=True, rate_limits=True) as sb, http(sb) as c:
        bodies = [gql(c, query) for _ in range(8)]
    throttled = [b for b in bodies if "errors" in b]
    assert throttled, [b["extensions"]["cost"] for b in bodies]
    t = throttled[0]
    assert "data" not in t and t["errors"] == [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]
    cost = t["extensions"]["cost"]
    assert cost["throttleStatus"]["currentlyAvailable"] < cost["requestedQueryCost"]
    assert bodies[0]["data"]["orders"]["nodes"]


# -- bulk operations -----------------------------------------------------------------------------------


def test_bulk_operation_streams_jsonl_with_parent_ids() -> None:
    inner = "{ orders { edges { node { id name lineItems { edges { node { id sku quantity } } } } } } }"
    with start_sandbox([SPEC], size=SIZE, seed=7, in_process=True) as sb, http(sb) as c:
        expected = expected_orders(journeys_of(sb))
        run = gql(c, "mutation($q: String!) { bulkOperationRunQuery(query: $q) { bulkOperation { id status } "
                     "userErrors { field message } } }", {"q": inner})["data"]["bulkOperationRunQuery"]
        assert run["userErrors"] == [] and run["bulkOperation"]["status"] == "CREATED"
        busy = gql(c, "mutation($q: String!) { bulkOperationRunQuery(query: $q) { userErrors { code } } }",
                   {"q": inner})
        assert busy["data"]["bulkOperationRunQuery"]["userErrors"][0]["code"] == "OPERATION_IN_PROGRESS"
        seen = []
        op: dict[str, Any] = {}
        for _ in range(5):
            op = gql(c, "{ currentBulkOperation { id status objectCount rootObjectCount url } }")[
                "data"]["currentBulkOperation"]
            seen.append(op["status"])
            if op["status"] == "COMPLETED":
                break
        assert seen == ["RUNNING", "COMPLETED"] and op["id"] == run["bulkOperation"]["id"]
        with httpx.stream("GET", op["url"]) as r:
            assert r.status_code == 200 and r.headers["transfer-encoding"] == "chunked"
            rows = [orjson.loads(line) for line in r.iter_lines() if line]
        assert httpx.get(re.sub(r"Expires=\d+", "Expires=1000", op["url"])).status_code == 403  # expired link
    parents = {row["id"]: row for row in rows if "__parentId" not in row}
    children = [row for row in rows if "__parentId" in row]
    assert len(rows) == int(op["objectCount"]) and len(parents) == int(op["rootObjectCount"]) == len(expected)
    assert {row["name"] for row in parents.values()} == set(expected)
    for row in children:
        assert row["id"].startswith("gid://shopify/LineItem/") and row["__parentId"] in parents
    by_order: dict[str, list[str]] = {}
    for row in children:
        by_order.setdefault(parents[row["__parentId"]]["name"], []).append(row["sku"])
    assert all(by_order.get(name, []) == [line.sku for line in o.lines] for name, o in expected.items())


def test_bulk_query_validation(sb: Sandbox) -> None:
    with http(sb) as c:
        def run(q: str) -> list[dict[str, Any]]:
            body = gql(c, "mutation($q: String!) { bulkOperationRunQuery(query: $q) { userErrors { field message } } }",
                       {"q": q})
            errors: list[dict[str, Any]] = body["data"]["bulkOperationRunQuery"]["userErrors"]
            return errors

        assert "doesn't exist" in run("{ orders { nodes { nope } } }")[0]["message"]
        assert "must select the 'id' field" in run("{ orders { nodes { name lineItems { nodes { sku } } } } }")[0][
            "message"]
        assert run("{ shop { name } }")[0]["field"] == ["query"]


# -- REST OpenAPI mapping ------------------------------------------------------------------------------


def test_rest_openapi_has_the_fields_the_graphql_ones_map_to() -> None:
    """The REST schema (2021-10) names the same concepts: check the mapping documented in
    connectors/shopify/graphql.py against it, with types."""
    spec = yaml.safe_load(REST_OPENAPI.read_text())["components"]["schemas"]
    order, customer, line = spec["Order"]["properties"], spec["Customer"]["properties"], spec["LineItem"]["properties"]
    rest_types = [
        (order, "id", "integer"), (order, "name", "string"), (order, "email", "string"), (order, "test", "boolean"),
        (order, "created_at", "string"), (order, "updated_at", "string"), (order, "cancelled_at", "string"),
        (order, "landing_site", "string"), (order, "referring_site", "string"), (order, "tags", "string"),
        (order, "financial_status", "string"), (order, "total_price", "string"), (order, "currency", "string"),
        (customer, "id", "integer"), (customer, "email", "string"), (customer, "first_name", "string"),
        (customer, "last_name", "string"), (customer, "orders_count", "integer"),
        (customer, "total_spent", "string"), (line, "sku", "string"), (line, "title", "string"),
        (line, "quantity", "integer"), (line, "price", "string"),
    ]
    for props, name, typ in rest_types:
        assert props[name]["type"] == typ, name
    for name in ("customer", "total_price_set", "current_total_price_set"):
        assert "$ref" in order[name]
    from connectors.shopify.graphql import SCHEMA

    gql_order = SCHEMA.get_type("Order").fields  # type: ignore[union-attr]
    for name in ("id", "legacyResourceId", "name", "email", "test", "createdAt", "updatedAt", "cancelledAt", "tags",
                 "displayFinancialStatus", "totalPriceSet", "currentTotalPriceSet", "customer", "lineItems",
                 "customerJourneySummary", "currencyCode"):
        assert name in gql_order


# -- faults ----------------------------------------------------------------------------------------------


def test_fault_kinds(faults: Sandbox) -> None:
    q = "{ orders(first: 5) { nodes { id createdAt updatedAt } } }"
    faults.set_faults("shopify", [FaultRule("rate_limit", route=ROUTE, at=1, retry_after=2),
                                  FaultRule("server_error", route=ROUTE, at=2, status=502),
                                  FaultRule("expired_token", route=ROUTE, at=3),
                                  FaultRule("missing_id", route=ROUTE, at=4),
                                  FaultRule("bad_timestamp", route=ROUTE, at=5)])
    with http(faults) as c:
        r = c.post(GQL, json={"query": q})
        assert r.status_code == 429 and r.headers["retry-after"] == "2"
        assert r.json()["errors"][0]["extensions"]["code"] == "THROTTLED"
        r = c.post(GQL, json={"query": q})
        assert r.status_code == 502 and r.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        assert c.post(GQL, json={"query": q}).status_code == 401
        nodes = c.post(GQL, json={"query": q}).json()["data"]["orders"]["nodes"]
        assert sum("id" not in n for n in nodes) == 1
        nodes = c.post(GQL, json={"query": q}).json()["data"]["orders"]["nodes"]
        assert sum(n["updatedAt"].startswith("2026-02-31") for n in nodes) == 1
        assert c.post(GQL, json={"query": q}).status_code == 200
    faults.set_faults("shopify", [FaultRule("truncate", route=ROUTE, at=1), FaultRule("drop", route=ROUTE, at=2),
                                  FaultRule("timeout", route=ROUTE, at=3, delay=2)])
    with http(faults, timeout=0.5) as c:
        r = c.post(GQL, json={"query": q})
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.text)
        with pytest.raises(httpx.TransportError):
            c.post(GQL, json={"query": q})
        with pytest.raises(httpx.TimeoutException):
            c.post(GQL, json={"query": q})
    assert faults.stats("shopify")["routes"][ROUTE]["statuses"]["429"] == 1


# -- listing without an index: ids follow the person index ---------------------------------------------

ID_PAGE = """query($first: Int, $last: Int, $after: String, $before: String, $reverse: Boolean, $query: String) {
  orders(first: $first, last: $last, after: $after, before: $before, reverse: $reverse, query: $query) {
    edges { cursor node { id updatedAt } } pageInfo { hasNextPage hasPreviousPage endCursor } } }"""


def _ids(conn: dict[str, Any]) -> list[int]:
    return [int(e["node"]["id"].rpartition("/")[2]) for e in conn["edges"]]


def test_id_sort_pages_forward_backward_and_reversed_like_the_journeys(sb: Sandbox) -> None:
    j = journeys_of(sb)
    expected = sorted(5_000_000_000 + o.idx for o in expected_orders(j).values())
    got: list[int] = []
    after = None
    with http(sb) as c:
        while True:
            conn = gql(c, ID_PAGE, {"first": 40, "after": after})["data"]["orders"]
            got += _ids(conn)
            if not conn["pageInfo"]["hasNextPage"]:
                break
            after = conn["pageInfo"]["endCursor"]
        assert got == expected
        first = gql(c, ID_PAGE, {"first": 10})["data"]["orders"]
        back = gql(c, ID_PAGE, {"last": 3, "before": first["edges"][9]["cursor"]})["data"]["orders"]
        assert _ids(back) == expected[6:9] and back["pageInfo"]["hasPreviousPage"] is True
        assert back["pageInfo"]["hasNextPage"] is True
        rev = gql(c, ID_PAGE, {"first": 5, "reverse": True})["data"]["orders"]
        assert _ids(rev) == expected[::-1][:5]
        rev2 = gql(c, ID_PAGE, {"first": 5, "reverse": True, "after": rev["pageInfo"]["endCursor"]})
        assert _ids(rev2["data"]["orders"]) == expected[::-1][5:10]
        tail = gql(c, ID_PAGE, {"last": 4})["data"]["orders"]
        assert _ids(tail) == expected[-4:] and tail["pageInfo"]["hasNextPage"] is False


def test_a_million_people_answer_at_once_and_since_queries_scan_only_the_changed() -> None:
    started = time.perf_counter()
    with start_sandbox([SPEC], size=1_000_000, seed=7, in_process=True) as big, http(big) as c:
        first = gql(c, ID_PAGE, {"first": 50})["data"]["orders"]
        elapsed = time.perf_counter() - started
        # generous bounds (a shared, noisy machine): they only catch O(population) work, which at a
        # million people takes minutes
        assert len(_ids(first)) == 50 and _ids(first) == sorted(_ids(first)) and elapsed < 30
        tick0 = big.clock()["ticks"][0]
        big.advance(at=format_ms(parse_time(tick0) + 60_000))
        since = parse_time(tick0) + 1
        j = journeys_of(big)
        expected: list[int] = []
        for p in j.people_with_orders_since(since):
            expected += [5_000_000_000 + o.idx for o in j.orders(p) if o.updated_ms >= since]
            if len(expected) >= 20:
                break
        started = time.perf_counter()
        changed = gql(c, ID_PAGE, {"first": 20, "query": f"updated_at:>'{tick0}'"})["data"]["orders"]
        by_time = gql(c, ORDERS_PAGE, {"first": 20, "query": f"updated_at:>'{tick0}'"})["data"]["orders"]
        assert time.perf_counter() - started < 30
        stamps = [e["node"]["updatedAt"] for e in by_time["edges"]]
        assert stamps and stamps == sorted(stamps) and all(parse_time(s) > parse_time(tick0) for s in stamps)
    assert _ids(changed) == expected[:20]
    assert all(parse_time(e["node"]["updatedAt"]) > parse_time(tick0) for e in changed["edges"])
