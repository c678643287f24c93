"""The Shopify connector against the sandbox's GraphQL Admin API emulator, over real HTTP.

What the shop holds is read by the test itself with plain httpx (``ID`` sort, its own queries),
never through the connector; faults and rate limits are the emulator's own (fault rules,
``rate_limits=True``). Nothing of the connector is patched.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from connectors.shopify import connector_spec
from connectors.shopify.helpers import ShopifyConnector
from core.connector import ConnectorConfig, Page, RunContext
from core.errors import TerminalVendorError
from core.http import RetryPolicy
from core.mapping import load_mapping
from sandbox import FaultRule, Sandbox, start_sandbox
from tests.conftest import scrubbing_vcr

GQL = "/admin/api/2025-01/graphql.json"
CASSETTE = Path(__file__).resolve().parents[1] / "cassettes" / "shopify" / "small_run.yaml"
#: far enough ahead that every record of a fresh sandbox falls inside the window
LATER = datetime(2030, 1, 1, tzinfo=UTC)
ORDERS = """query($after: String) { orders(first: 20, after: $after) {
  nodes { id updatedAt lineItems(first: 10) { nodes { id } } } pageInfo { hasNextPage endCursor } } }"""
CUSTOMERS = """query($after: String) { customers(first: 250, after: $after) {
  nodes { id updatedAt } pageInfo { hasNextPage endCursor } } }"""


def gql(sb: Sandbox, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    s = sb.emulators["shopify"]
    r = httpx.post(s.base_url + GQL, json={"query": query, "variables": variables or {}},
                   headers={"X-Shopify-Access-Token": s.settings["access_token"]}, timeout=30)
    body: dict[str, Any] = r.json()
    return body


def shop(sb: Sandbox, kind: str) -> dict[str, dict[str, Any]]:
    """id -> node of every order (with line item ids) or customer the emulator holds."""
    out: dict[str, dict[str, Any]] = {}
    after = None
    while True:
        conn = gql(sb, ORDERS if kind == "orders" else CUSTOMERS, {"after": after})["data"][kind]
        out.update({n["id"]: n for n in conn["nodes"]})
        if not conn["pageInfo"]["hasNextPage"]:
            return out
        after = conn["pageInfo"]["endCursor"]


def line_ids(nodes: Any) -> dict[str, list[str]]:
    return {o["id"]: sorted(li["id"] for li in o["lineItems"]["nodes"]) for o in nodes}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox(["shopify"], size=400, seed=11, in_process=True) as sandbox:
        yield sandbox


@pytest.fixture
def faults(sb: Sandbox) -> Iterator[Sandbox]:
    yield sb
    sb.set_faults("shopify", [])


def connector(sb: Sandbox | None, *, waits: list[float] | None = None, base_url: str | None = None,
              token: str | None = None, **values: Any) -> ShopifyConnector:
    settings = dict(sb.emulators["shopify"].settings) if sb is not None else {}
    if base_url:
        settings["base_url"] = base_url
    if token:
        settings["access_token"] = token
    cfg = ConnectorConfig("shopify", "test", {**settings, "bulk_poll_seconds": 0.01, **values},
                          frozenset({"access_token"}))
    sleep = waits.append if waits is not None else (lambda s: None)
    return ShopifyConnector(cfg, policy=RetryPolicy(sleep=sleep, rng=random.Random(1)))


def extract(conn: ShopifyConnector, stream: str, state: dict[str, Any] | None = None, *,
            started_at: datetime = LATER, full_refresh: bool = False) -> list[Page]:
    ctx = RunContext(run_id="r1", started_at=started_at, full_refresh=full_refresh)
    return list(conn.extract(connector_spec().stream(stream), state or {}, ctx))


def records(pages: list[Page]) -> list[dict[str, Any]]:
    return [r for p in pages for r in p.records]


# ---------------------------------------------------------------------------------------------


def test_plugin_registers_connector_and_transforms() -> None:
    from core.plugins import build_registry, get_plugin_manager

    reg = build_registry(get_plugin_manager())
    spec = reg.connector("shopify")
    assert [s.name for s in spec.streams] == ["customers", "orders"]
    orders = spec.stream("orders")
    assert orders.incremental and orders.cursor_field == "updatedAt"
    assert orders.mappings == ("orders.yaml", "order_lines.yaml")
    assert {"shopify_utm", "shopify_is_set"} <= set(reg.transforms)
    assert next(s for s in spec.settings if s.name == "access_token").secret


def test_every_query_the_connector_sends_is_valid_graphql_admin_api() -> None:
    """Each operation (and each bulk query) against the Admin API schema subset of the emulator,
    whose names are Shopify's: a misspelt field or argument fails here, not at a shop."""
    from graphql import parse, validate

    from connectors.shopify import settings as S
    from connectors.shopify.graphql import SCHEMA
    from connectors.shopify.helpers import _Window

    conn = connector(None, base_url="http://127.0.0.1:9", token="shpat_x")
    queries = [S.CONNECTION_QUERY.format(name=n, fields=S.node_fields(n)) for n in S.STREAMS]
    queries += [S.ORDER_LINES_QUERY, S.PROBE_QUERY, S.BULK_RUN_MUTATION, S.BULK_STATUS_QUERY, S.CURRENT_BULK_QUERY,
                S.BULK_CANCEL_MUTATION]
    queries += [conn._bulk_query(n, _Window("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")) for n in S.STREAMS]
    for q in queries:
        assert validate(SCHEMA, parse(q)) == [], q


def test_bulk_and_connections_read_every_order_with_every_line(sb: Sandbox) -> None:
    truth = shop(sb, "orders")
    bulk_pages = extract(connector(sb, bulk_page_records=40), "orders")
    # line_items_page=1: orders with more lines are completed by order(id:) queries
    paged_pages = extract(connector(sb, bulk=False, line_items_page=1, page_size=30), "orders")
    assert bulk_pages[0].state is not None and "bulk_id" in bulk_pages[0].state
    assert paged_pages[0].state is not None and "after" in paged_pages[0].state
    expected = line_ids(truth.values())
    assert any(len(v) > 1 for v in expected.values())
    for pages in (bulk_pages, paged_pages):
        got = records(pages)
        assert len(got) == len(truth)
        assert line_ids(got) == expected
        assert pages[-1].state == {"cursor": "2030-01-01T00:00:00Z"}
        assert all(len(p.records) <= 40 for p in pages)
    by_id = {r["id"]: r for r in records(bulk_pages)}
    assert by_id == {r["id"]: r for r in records(paged_pages)}  # one record shape, whichever path


def test_bulk_result_is_jsonl_with_parent_ids_streamed_into_orders(sb: Sandbox) -> None:
    pages = extract(connector(sb, bulk_page_records=25), "orders")
    assert pages[0].state is not None
    op = gql(sb, "query($id: ID!) { bulkOperation(id: $id) { status url objectCount rootObjectCount } }",
             {"id": pages[0].state["bulk_id"]})["data"]["bulkOperation"]
    assert op["status"] == "COMPLETED"
    lines = [orjson.loads(x) for x in httpx.get(op["url"], timeout=30).content.splitlines() if x]
    children = [x for x in lines if "__parentId" in x]
    roots = [x for x in lines if "__parentId" not in x]
    assert children and len(lines) == int(op["objectCount"]) and len(roots) == int(op["rootObjectCount"])
    got = records(pages)
    assert [r["id"] for r in got] == [r["id"] for r in roots]
    attached = {c["id"]: c["__parentId"] for c in children}
    assert {li["id"]: r["id"] for r in got for li in r["lineItems"]["nodes"]} == attached
    assert all("__parentId" not in li for r in got for li in r["lineItems"]["nodes"])
    # the committed line offsets fall on root boundaries: resuming there re-reads whole orders
    for page in pages[:-2]:
        assert page.state is not None
        assert "__parentId" not in lines[page.state["bulk_line"]]


def test_a_bulk_operation_already_running_is_waited_for(sb: Sandbox) -> None:
    """One bulk query per shop at a time: one left running (another app's, or a run killed before it
    committed a page) makes the connector wait for it, then run its own."""
    other = gql(sb, "mutation($q: String!) { bulkOperationRunQuery(query: $q) { bulkOperation { id } } }",
                {"q": "{ customers { edges { node { id } } } }"})["data"]["bulkOperationRunQuery"]["bulkOperation"]
    pages = extract(connector(sb), "customers")
    assert {r["id"] for r in records(pages)} == set(shop(sb, "customers"))
    assert pages[0].state is not None and pages[0].state["bulk_id"] != other["id"]
    done = gql(sb, "query($id: ID!) { bulkOperation(id: $id) { status } }", {"id": other["id"]})
    assert done["data"]["bulkOperation"]["status"] == "COMPLETED"


@pytest.mark.parametrize("stream", ["orders", "customers"])
def test_restart_from_a_committed_page_ends_like_a_clean_run(sb: Sandbox, stream: str) -> None:
    options: list[dict[str, Any]] = [{"bulk_page_records": 20}, {"bulk": False, "page_size": 20}]
    for values in options:
        clean = extract(connector(sb, **values), stream)
        assert len(clean) > 3
        cut = len(clean) // 2  # the run was killed after loading page `cut`
        state = clean[cut - 1].state
        assert state is not None
        resumed = extract(connector(sb, **values), stream, state)
        loaded = {r["id"]: r for p in clean[:cut] for r in p.records}
        rest = records(resumed)
        assert rest and not set(r["id"] for r in rest) & set(loaded), values  # nothing read twice
        loaded.update({r["id"]: r for r in rest})
        assert loaded == {r["id"]: r for r in records(clean)}, values
        assert resumed[-1].state == clean[-1].state


def test_incremental_window_reads_only_what_changed(tmp_path: Path) -> None:
    with start_sandbox(["shopify"], size=400, seed=4, in_process=True, state_dir=tmp_path / "w") as sb:
        before = {k: {i: n["updatedAt"] for i, n in shop(sb, k).items()} for k in ("orders", "customers")}
        first_upper = datetime.now(UTC) + timedelta(seconds=2)
        state = {k: extract(connector(sb), k, started_at=first_upper)[-1].state for k in before}
        for k in (1, 2, 3):  # ticks inside the next window (the first one ends at first_upper)
            sb.advance(at=(first_upper + timedelta(seconds=k)).isoformat().replace("+00:00", "Z"))
        after = {k: {i: n["updatedAt"] for i, n in shop(sb, k).items()} for k in before}
        for kind in before:
            changed = {i for i, ts in after[kind].items() if before[kind].get(i) != ts}
            pages = extract(connector(sb), kind, state[kind], started_at=first_upper + timedelta(seconds=5))
            assert {r["id"] for r in records(pages)} == changed, kind
            assert "after" in (pages[0].state or {}), "an increment reads the connection, not a bulk operation"
        assert changed


def test_throttled_and_server_errors_are_retried(faults: Sandbox) -> None:
    truth = shop(faults, "customers")
    faults.set_faults("shopify", [FaultRule(kind="rate_limit", at=2, retry_after=0.5),
                                  FaultRule(kind="server_error", at=3), FaultRule(kind="truncate", at=4)])
    waits: list[float] = []
    conn = connector(faults, waits=waits, bulk=False, page_size=10)
    got = records(extract(conn, "customers"))
    assert sorted(r["id"] for r in got) == sorted(truth)
    assert 0.5 in waits and len(waits) == 3  # Retry-After of the THROTTLED 429 honoured, each retried once


RICH = """query($n: Int!) { orders(first: $n) { nodes { id totalPriceSet { shopMoney { amount } presentmentMoney { amount } }
  lineItems(first: 5) { nodes { id originalUnitPriceSet { shopMoney { amount } } } } } } }"""


def test_cost_based_throttling_paces_or_retries_throttled_answers() -> None:
    with start_sandbox(["shopify"], size=300, seed=2, in_process=True, rate_limits=True) as sb:
        truth = {n["id"] for n in gql(sb, "{ customers(first: 250) { nodes { id } } }")["data"]["customers"]["nodes"]}
        s = sb.emulators["shopify"]
        settings = {**s.settings, "bulk": False, "page_size": 100}  # a page asks for 202 points

        def drain() -> None:
            """Spend the bucket (as another app would) until fewer than ~107 points are left."""
            with httpx.Client(base_url=s.base_url, headers={"X-Shopify-Access-Token": s.settings["access_token"]},
                              timeout=30) as c:
                for n in (45, 5):  # big queries first, then small ones, until each is THROTTLED
                    for _ in range(300):
                        if "errors" in c.post(GQL, json={"query": RICH, "variables": {"n": n}}).json():
                            break
                    else:
                        raise AssertionError("the bucket never ran dry")

        drain()
        # without pacing: THROTTLED answers (HTTP 200, errors[].extensions.code) are retried
        cfg = ConnectorConfig("shopify", "test", {**settings, "pace": False}, frozenset({"access_token"}))
        unpaced = ShopifyConnector(cfg, policy=RetryPolicy(max_attempts=30))
        assert {r["id"] for r in records(extract(unpaced, "customers"))} == truth
        assert unpaced.api.throttled > 0

        drain()
        # with pacing: the connector waits for the points it needs; one attempt, so a THROTTLED would fail
        cfg = ConnectorConfig("shopify", "test", settings, frozenset({"access_token"}))
        paced = ShopifyConnector(cfg, policy=RetryPolicy(max_attempts=1))
        assert {r["id"] for r in records(extract(paced, "customers"))} == truth
        assert paced.api.throttle.waits > 0 and paced.api.throttled == 0


def test_expired_token_is_terminal_and_never_shows_the_token(faults: Sandbox) -> None:
    faults.set_faults("shopify", [FaultRule(kind="expired_token", at=1)])
    token = faults.emulators["shopify"].settings["access_token"]
    with pytest.raises(TerminalVendorError) as err:
        extract(connector(faults, bulk=False), "customers")
    assert "401" in str(err.value) and token not in str(err.value) and "access_token" in str(err.value)


def test_malformed_records_become_rejects(faults: Sandbox) -> None:
    faults.set_faults("shopify", [FaultRule(kind="missing_id", at=2), FaultRule(kind="bad_timestamp", at=3)])
    pages = extract(connector(faults, bulk=False, page_size=20), "orders")
    spec = connector_spec()
    assert spec.mappings_dir is not None
    rows = rejects = 0
    reasons = []
    for name in ("orders.yaml", "order_lines.yaml"):
        cm = load_mapping(spec.mappings_dir / name).compile(system="shopify", instance="t", stream="orders",
                                                            raw_table="shopify__orders")
        for page in pages:
            mapped = cm.map_page(page.records, run_id="r", extracted_at=LATER)
            rows += mapped.rows.num_rows
            rejects += mapped.rejects.num_rows
            reasons += mapped.rejects.column("reason").to_pylist()
    assert rejects >= 2 and rows > 0
    assert any("id" in r for r in reasons) and any("timestamp" in r or "date" in r for r in reasons), reasons


def test_order_mapping_reads_utm_from_the_journey_or_the_landing_page_query() -> None:
    """Real Shopify leaves ``utmParameters`` null on many visits whose landing URL carries the tags."""
    spec = connector_spec()
    assert spec.mappings_dir is not None
    cm = load_mapping(spec.mappings_dir / "orders.yaml").compile(system="shopify", instance="t", stream="orders",
                                                                raw_table="shopify__orders")
    landing = "https://shop.example/p?utm_source=news&utm_medium=email&utm_campaign=spring"

    def order(oid: str, utm: dict[str, Any] | None, cancelled: str | None) -> dict[str, Any]:
        return {"id": oid, "name": "#1", "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-02T00:00:00Z",
                "cancelledAt": cancelled, "test": False, "totalPriceSet": {"shopMoney": {"amount": "1.5",
                                                                                         "currencyCode": "USD"}},
                "customerJourneySummary": {"firstVisit": {"landingPage": landing, "referrerUrl": None,
                                                          "utmParameters": utm}}}

    page = cm.map_page([order("a", None, None), order("b", {"source": "ads", "medium": None, "campaign": None},
                                                      "2026-01-03T00:00:00Z")], run_id="r", extracted_at=LATER)
    rows = {r["source_record_id"]: r for r in page.rows.to_pylist()}
    assert (rows["a"]["utm_source"], rows["a"]["utm_medium"], rows["a"]["utm_campaign"]) == ("news", "email", "spring")
    # a parsed value wins; a missing one still comes from the URL
    assert (rows["b"]["utm_source"], rows["b"]["utm_medium"]) == ("ads", "email")
    assert rows["a"]["is_cancelled"] is False and rows["b"]["is_cancelled"] is True
    assert page.rejects.num_rows == 0


# ---------------------------------------------------------------------------------------------
# Cassette: record once (FACTORYLINE_RECORD_CASSETTES=1), replay from the file alone
# ---------------------------------------------------------------------------------------------

CASSETTE_TOKEN = "shpat_sandbox0000000000000000000000000"


def _vcr(record_mode: str) -> Any:
    return scrubbing_vcr(record_mode, [CASSETTE_TOKEN], match_on=("method", "path", "query", "body"),
                         filter_headers=("x-shopify-access-token", "cookie", "set-cookie"))


def _cassette_run(base_url: str, token: str) -> dict[str, list[Page]]:
    out = {}
    runs: list[tuple[str, dict[str, Any]]] = [("customers", {"bulk": False, "page_size": 3}),
                                              ("orders", {"bulk_page_records": 10})]
    for stream, values in runs:
        conn = connector(None, base_url=base_url, token=token, **values)
        out[stream] = extract(conn, stream)
        conn.close()
    return out


@pytest.mark.skipif(not os.environ.get("FACTORYLINE_RECORD_CASSETTES"),
                    reason="set FACTORYLINE_RECORD_CASSETTES=1 to re-record cassettes/shopify/")
def test_record_cassette() -> None:
    with start_sandbox(["shopify"], size=60, seed=1, in_process=True) as sb:
        s = sb.emulators["shopify"]
        assert s.settings["access_token"] == CASSETTE_TOKEN
        CASSETTE.parent.mkdir(parents=True, exist_ok=True)
        if CASSETTE.exists():
            CASSETTE.unlink()
        with _vcr("all").use_cassette(str(CASSETTE)):
            pages = _cassette_run(s.base_url, CASSETTE_TOKEN)
        assert {k: len(records(v)) for k, v in pages.items()} == {k: len(shop(sb, k)) for k in pages}


def test_cassette_holds_no_secret() -> None:
    text = CASSETTE.read_text()
    assert CASSETTE_TOKEN not in text and "shpat_" not in text
    assert "x-shopify-access-token" not in text.lower()


def test_replay_from_cassette_alone() -> None:
    # nothing listens on port 9: every answer must come from the cassette
    with _vcr("none").use_cassette(str(CASSETTE)) as cassette:
        pages = _cassette_run("http://127.0.0.1:9", "shpat_replay_ignores_it")
        assert cassette.all_played
    customers, orders = records(pages["customers"]), records(pages["orders"])
    assert customers and orders and len(pages["customers"]) > 2
    assert all(r["id"].startswith("gid://shopify/Customer/") for r in customers)
    assert all(li["id"].startswith("gid://shopify/LineItem/") for r in orders for li in r["lineItems"]["nodes"])
    assert pages["orders"][0].state is not None and "bulk_id" in pages["orders"][0].state
    assert pages["orders"][-1].state == pages["customers"][-1].state == {"cursor": "2030-01-01T00:00:00Z"}
