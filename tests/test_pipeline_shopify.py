"""Shopify end to end: sandbox emulator -> connector -> mappings -> dlt -> DuckDB.

The expected figures come from the emulator itself, read through its GraphQL API with plain httpx
(``ID`` sort, a different query from the connector's), never from the code under test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from pipelines.destination import Target
from pipelines.run import run
from sandbox.api import Sandbox, start_sandbox
from tests.conftest import ROOT, cli, table_snapshot

#: what a killed-and-restarted run must leave exactly as a clean run does
SNAPSHOT = ("order", "order_line", "person", "shopify__orders", "shopify__customers")
GQL = "/admin/api/2025-01/graphql.json"
ORDERS = """query($after: String) { orders(first: 10, after: $after) {
  nodes { id updatedAt test cancelledAt displayFinancialStatus customer { id }
          totalPriceSet { shopMoney { amount currencyCode } }
          customerJourneySummary { firstVisit { landingPage referrerUrl utmParameters { source medium campaign } } }
          lineItems(first: 10) { nodes { id sku quantity } } }
  pageInfo { hasNextPage endCursor } } }"""
CUSTOMERS = """query($after: String) { customers(first: 250, after: $after) {
  nodes { id updatedAt email } pageInfo { hasNextPage endCursor } } }"""


def shop_nodes(sb: Sandbox, kind: str) -> dict[str, dict[str, Any]]:
    """id -> node of every order or customer the emulator holds, read over HTTP."""
    s = sb.emulators["shopify"]
    out: dict[str, dict[str, Any]] = {}
    after = None
    with httpx.Client(base_url=s.base_url, headers={"X-Shopify-Access-Token": s.settings["access_token"]},
                      timeout=30) as c:
        while True:
            body = c.post(GQL, json={"query": ORDERS if kind == "orders" else CUSTOMERS,
                                     "variables": {"after": after}}).json()
            conn = body["data"][kind]
            out.update({n["id"]: n for n in conn["nodes"]})
            if not conn["pageInfo"]["hasNextPage"]:
                return out
            after = conn["pageInfo"]["endCursor"]


def _db(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


@pytest.fixture()
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with start_sandbox(["shopify"], size=400, seed=3, state_dir=tmp_path / "world", in_process=True) as sb:
        yield sb


def _run(sb: Sandbox, db: Path, **settings: Any) -> Any:
    return run(["shopify"], target=Target(db_path=db),
               overrides={"shopify": {**sb.emulators["shopify"].settings, **settings}})


def test_full_run_then_an_increment_of_only_the_changes(sandbox: Sandbox, tmp_path: Path) -> None:
    db = tmp_path / "fl.duckdb"
    status = _run(sandbox, db)
    assert status.status == "success", status.as_dict()
    orders, customers = shop_nodes(sandbox, "orders"), shop_nodes(sandbox, "customers")
    lines = {li["id"]: (oid, li) for oid, o in orders.items() for li in o["lineItems"]["nodes"]}
    assert len(orders) > 50 and len(lines) > len(orders)
    con = _db(db)
    assert con.sql("SELECT count(*) FROM factory.rejects WHERE severity = 'record'").fetchall() == [(0,)]
    rows = {r[0]: r[1:] for r in con.sql(
        "SELECT source_record_id, is_cancelled, is_test, financial_status, total_amount, currency, person_id, "
        "utm_source, utm_medium, utm_campaign, landing_site, referring_site FROM factory.order").fetchall()}
    assert set(rows) == set(orders)
    people = dict(con.sql("SELECT source_record_id, id FROM factory.person").fetchall())
    assert set(people) == set(customers)
    emails = dict(con.sql("SELECT source_record_id, email FROM factory.person").fetchall())
    dirty = 0
    for cid, node in customers.items():
        raw = node["email"]
        dirty += raw is not None and raw != raw.strip().lower()
        # normalised (trimmed, lower-cased), or null with a field reject when it is no address at all
        assert emails[cid] in ((raw or "").strip().lower() or None, None), cid
        if emails[cid] is None and raw:
            assert con.sql("SELECT count(*) FROM factory.rejects WHERE source_record_id = ? AND field = 'email'",
                           params=[cid]).fetchall() == [(1,)]
    assert dirty, "the world has mixed-case or padded emails"
    for oid, node in orders.items():
        cancelled, test, financial, total, currency, person_id, src, med, camp, landing, ref = rows[oid]
        assert cancelled is (node["cancelledAt"] is not None) and test is node["test"], oid
        assert financial == node["displayFinancialStatus"]
        assert str(total) == f"{float(node['totalPriceSet']['shopMoney']['amount']):.4f}"
        assert currency == node["totalPriceSet"]["shopMoney"]["currencyCode"]
        assert person_id == (people[node["customer"]["id"]] if node["customer"] else None)
        visit = (node["customerJourneySummary"] or {}).get("firstVisit") or {}
        utm = visit.get("utmParameters") or {}
        assert (src, med, camp) == (utm.get("source"), utm.get("medium"), utm.get("campaign")), oid
        assert (landing, ref) == (visit.get("landingPage"), visit.get("referrerUrl"))
    # the world has cancelled, test and UTM-tagged orders, and the flags and fields say so
    assert any(r[0] for r in rows.values()) and any(r[1] for r in rows.values())
    assert any(r[6] for r in rows.values()) and not all(r[6] for r in rows.values())
    order_ids = dict(con.sql("SELECT source_record_id, id FROM factory.order").fetchall())
    got = {r[0]: r[1:] for r in con.sql(
        "SELECT source_record_id, order_id, sku, quantity FROM factory.order_line").fetchall()}
    assert set(got) == {f"{oid}/{lid}" for lid, (oid, _) in lines.items()}
    for lid, (oid, li) in lines.items():
        assert got[f"{oid}/{lid}"] == (order_ids[oid], li["sku"], li["quantity"])
    con.close()
    _second_run_fetches_only_changes(sandbox, db, orders, customers)


def _second_run_fetches_only_changes(sandbox: Sandbox, db: Path, orders: dict[str, dict[str, Any]],
                                     customers: dict[str, dict[str, Any]]) -> None:
    before = {k: {i: n["updatedAt"] for i, n in nodes.items()}
              for k, nodes in (("orders", orders), ("customers", customers))}
    counts = {e: _db(db).sql(f"SELECT count(*) FROM factory.{e}").fetchall()[0][0] for e in ("order", "person")}
    sandbox.advance(3)
    time.sleep(1.1)  # the run reads whole seconds before its start: let the tick's second pass
    after = {k: {i: n["updatedAt"] for i, n in shop_nodes(sandbox, k).items()} for k in ("orders", "customers")}
    changed = {k: {i for i, ts in after[k].items() if before[k].get(i) != ts} for k in after}
    assert changed["orders"], "the ticks changed no order"

    second = _run(sandbox, db)
    assert second.status == "success", second.as_dict()
    fetched = {s.stream: s.records for s in second.streams}
    assert fetched == {"orders": len(changed["orders"]), "customers": len(changed["customers"])}
    con = _db(db)
    reloaded = {r[0] for r in con.sql("SELECT source_record_id FROM factory.order WHERE run_id = ?",
                                      params=[second.run_id]).fetchall()}
    assert reloaded == changed["orders"]
    assert con.sql("SELECT count(*) FROM factory.order").fetchall()[0][0] == counts["order"] + len(
        set(after["orders"]) - set(before["orders"]))
    assert con.sql("SELECT count(*) FROM factory.person").fetchall()[0][0] == counts["person"] + len(
        set(after["customers"]) - set(before["customers"]))
    con.close()


def _current_bulk(sb: Sandbox) -> dict[str, Any]:
    s = sb.emulators["shopify"]
    body = httpx.post(s.base_url + GQL, json={"query": "{ currentBulkOperation { id status query } }"},
                      headers={"X-Shopify-Access-Token": s.settings["access_token"]}, timeout=30).json()
    return dict(body["data"]["currentBulkOperation"] or {})


@pytest.mark.slow
def test_killed_mid_bulk_restarted_ends_like_a_clean_run(tmp_path: Path) -> None:
    with start_sandbox(["shopify"], size=2000, seed=5, state_dir=tmp_path / "world") as sb:
        env = {f"SOURCES__SHOPIFY__{k.upper()}": str(v) for k, v in sb.emulators["shopify"].settings.items()}
        # small pages and chunks: many commits, so the kill lands between two of them
        env.update(SOURCES__SHOPIFY__BULK_PAGE_RECORDS="50", FACTORYLINE_CHUNK_RECORDS="150")
        clean = tmp_path / "clean.duckdb"
        done = cli("run", "shopify", "--no-sandbox", "--db", str(clean), cwd=tmp_path, env=dict(env))
        assert done.returncode == 0, done.stderr
        streams = {s["stream"]: s for s in json.loads(done.stdout.strip().splitlines()[-1])["streams"]}
        clean_op = _current_bulk(sb)["id"]
        killed = tmp_path / "killed.duckdb"
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "shopify", "--no-sandbox",
                                 "--db", str(killed)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT), **env})
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            op = _current_bulk(sb)
            if op["id"] != clean_op and op["status"] == "COMPLETED" and "orders" in op["query"]:
                break
            time.sleep(0.2)
        # the orders result is ready: the run is reading and loading it; kill it halfway through
        time.sleep(streams["orders"]["seconds"] / 2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        again = cli("run", "shopify", "--no-sandbox", "--db", str(killed), cwd=tmp_path, env=dict(env))
        assert again.returncode == 0, again.stderr
        status = json.loads(again.stdout.strip().splitlines()[-1])
        assert status["status"] == "success"
        resumed = {s["stream"]: s["records"] for s in status["streams"]}
        # the restart continued from the committed bulk position instead of reading everything again
        assert resumed["orders"] < streams["orders"]["records"], (resumed, streams)
    assert table_snapshot(killed, SNAPSHOT, skip={"mapping_version"}) == table_snapshot(clean, SNAPSHOT, skip={"mapping_version"})
