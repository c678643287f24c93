"""``factoryline explain``: a conversion, its stitched people, the touches credited under each model,
each traced to the raw vendor record and load it came from; on constructed journeys and on a
sandbox run of three vendors, checked against the sandbox's own journeys."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from core.plugins import get_registry
from pipelines.cli import app
from pipelines.derive import derive
from pipelines.destination import Target
from pipelines.explain import explain
from pipelines.run import RunStatus, run
from pipelines.trace import TraceError
from sandbox.api import start_sandbox
from sandbox.journeys import Journeys
from sandbox.world import World
from tests.conftest import cli
from tests.test_attribution import Canon, build_world


@pytest.fixture(scope="module")
def constructed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Target, Canon, dict[str, Any]]:
    target = Target(db_path=tmp_path_factory.mktemp("explain") / "fl.duckdb")
    c, ids = build_world()
    c.load(target)
    derive(target)
    return target, c, ids


def test_explain_order_traces_every_credited_touch(constructed: tuple[Target, Canon, dict[str, Any]]) -> None:
    target, c, ids = constructed
    e = explain(target, "order", "5001")  # the vendor's order id
    assert e.row["id"] == ids["o1"]
    assert set(e.credits) == set(get_registry().attribution_models)
    for rows in e.credits.values():
        assert [r["touch_id"] for r in rows] == ids["o1_touches"]
        assert math.isclose(sum(r["credit"] for r in rows), 1.0)
    # Ann's person records of three systems, stitched by email
    people = {(m["source_system"], m["source_record_id"]) for ms in e.people.values() for m in ms}
    assert people == {("hubspot", "101"), ("salesforce", "003A"), ("shopify", "9001")}
    raw = {r["raw_key"]: orjson.loads(r["payload"]) for rs in c.raw.values() for r in rs}
    con = duckdb.connect(str(target.db_path), read_only=True)
    loads = {r[0] for r in con.sql("SELECT load_id FROM factory._dlt_loads").fetchall()}
    con.close()
    assert {t.row["source_system"] for t in e.touches.values()} == {"hubspot", "salesforce", "x"}
    for tid, t in e.touches.items():
        assert t.row["id"] == tid
        assert t.raw is not None and t.raw["payload"] == raw[t.row["raw_key"]]
        assert t.raw["payload"]["id"] == t.row["source_record_id"]
        assert t.load is not None and t.load["load_id"] == t.row["_dlt_load_id"] in loads


def test_explain_cli_and_errors(constructed: tuple[Target, Canon, dict[str, Any]]) -> None:
    target, _c, ids = constructed
    result = CliRunner().invoke(app, ["explain", "opportunity", "D1", "--db", str(target.db_path)])
    assert result.exit_code == 0, result.output
    for model in get_registry().attribution_models:
        assert model in result.output
    for tid in ids["op1_touches"]:
        assert tid in result.output
    assert "hubspot__activities" in result.output and "salesforce__activities" in result.output
    missing = CliRunner().invoke(app, ["explain", "order", "no-such-order", "--db", str(target.db_path)])
    assert missing.exit_code == 1
    with pytest.raises(TraceError, match="opportunity or order"):
        explain(target, "person", "101")
    # a lost opportunity explains itself with no credit
    lost = explain(target, "opportunity", "D2")
    assert lost.credits == {} and lost.row["id"] == ids["op_lost"]


# -- the sandbox: shop orders and two email systems -------------------------------------------

VENDORS = ["shopify", "marketo", "mailchimp", "hubspot"]
STREAMS = ["customers", "orders", "leads", "activities", "members", "email_activity", "contacts"]
SIZE, SEED = 300, 5


@pytest.fixture(scope="module")
def sandbox_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Target, RunStatus, Journeys]]:
    tmp = tmp_path_factory.mktemp("explain_sandbox")
    target = Target(db_path=tmp / "fl.duckdb")
    with start_sandbox(VENDORS, size=SIZE, seed=SEED, state_dir=tmp / "world", in_process=True) as sb:
        overrides = {n: {"instance": "sandbox", **e.settings} for n, e in sb.emulators.items()}
        status = run(VENDORS, target=target, overrides=overrides, streams=STREAMS)
    assert status.status == "success", status.as_dict()
    assert status.load_ids.get("derive"), "the run derives identity, lifecycle and attribution at its end"
    yield target, status, Journeys(World.open(seed=SEED, size=SIZE, state_dir=tmp / "world"))


def test_sandbox_mql_events_match_the_world(sandbox_run: tuple[Target, RunStatus, Journeys]) -> None:
    """HubSpot contacts' MQL entries: the MQL stage date, else (score at the threshold) the last change."""
    from core.definitions import load_definitions

    target, _status, journeys = sandbox_run
    world = journeys.world
    version = load_definitions().stage_term("mql").definition_version
    con = duckdb.connect(str(target.db_path), read_only=True)
    contacts = [r[0] for r in con.sql("SELECT source_record_id FROM factory.person "
                                      "WHERE source_system = 'hubspot'").fetchall()]
    got = dict(con.sql("SELECT p.source_record_id, e.occurred_at FROM factory.lifecycle_event e JOIN factory.person p "
                       f"ON p.id = e.person_id WHERE p.source_system = 'hubspot' AND e.definition_version = '{version}'"
                       ).fetchall())
    con.close()
    assert contacts
    expected = {}
    for rid in contacts:
        p = world.person(int(rid) - 1000)
        if "marketingqualifiedlead" in p.stage_dates:
            expected[rid] = p.stage_dates["marketingqualifiedlead"]
        elif p.lead_score >= 70:
            expected[rid] = p.modified_ms
    assert expected and {k: int(v.timestamp() * 1000) for k, v in got.items()} == expected


def _multi_vendor_orders(target: Target) -> list[tuple[str, str]]:
    con = duckdb.connect(str(target.db_path), read_only=True)
    try:
        return con.sql(
            "SELECT o.order_number, o.id FROM factory.attribution_credit c JOIN factory.\"order\" o "
            "ON o.id = c.conversion_id WHERE c.model = 'linear' GROUP BY o.order_number, o.id "
            "HAVING count(DISTINCT c.source_system) >= 2 ORDER BY o.order_number").fetchall()
    finally:
        con.close()


def test_sandbox_order_explained_with_touches_of_two_vendors_from_the_journeys(
        sandbox_run: tuple[Target, RunStatus, Journeys]) -> None:
    target, status, journeys = sandbox_run
    orders = _multi_vendor_orders(target)
    assert orders, "some order must have credited touches of both Marketo and Mailchimp people"
    for number, order_id in orders[:3]:
        e = explain(target, "order", number)
        assert e.row["id"] == order_id
        idx = int(number.lstrip("#")) - 1001
        order = next(o for o in journeys.orders(idx // 64) if o.idx == idx)
        ordered_ms = order.created_ms
        # vendors keep whole seconds (Mailchimp): compare at that precision
        journey = {(t.system, t.at_ms // 1000) for t in journeys.touches(order.person_idx)}
        assert {t.row["source_system"] for t in e.touches.values()} >= {"marketo", "mailchimp"}
        for model, rows in e.credits.items():
            assert math.isclose(sum(r["credit"] for r in rows), 1.0, abs_tol=1e-9), model
        for t in e.touches.values():
            at_ms = int(t.row["occurred_at"].timestamp() * 1000)
            # every credited touch is a touch of this buyer in the generated journey, inside the window
            assert (t.row["source_system"], at_ms // 1000) in journey
            assert ordered_ms - timedelta(days=90).total_seconds() * 1000 < at_ms <= ordered_ms
            # ... traced to its raw vendor record, loaded by this run's load of that vendor
            assert t.raw is not None and t.raw["raw_key"] == t.row["raw_key"]
            assert t.row["_dlt_load_id"] in status.load_ids[t.row["source_system"]]
            assert t.run is not None and t.run["run_id"] == status.run_id
        # the stitched people are the buyer's records in the shop and both email systems
        emails = {m["email"] for ms in e.people.values() for m in ms if m.get("email")}
        assert journeys.shop_email(order.person_idx).strip().lower() in emails


def test_sandbox_credits_only_touches_of_the_buyer(sandbox_run: tuple[Target, RunStatus, Journeys]) -> None:
    target, _status, journeys = sandbox_run
    con = duckdb.connect(str(target.db_path), read_only=True)
    rows = con.sql("SELECT o.order_number, c.source_system, c.touch_occurred_at, c.model, c.credit "
                   "FROM factory.attribution_credit c JOIN factory.\"order\" o ON o.id = c.conversion_id").fetchall()
    con.close()
    assert rows
    sums: dict[tuple[str, str], float] = {}
    cache: dict[int, set[tuple[str, int]]] = {}
    for number, system, at, model, share in rows:
        person = (int(number.lstrip("#")) - 1001) // 64
        if person not in cache:
            cache[person] = {(t.system, t.at_ms // 1000) for t in journeys.touches(person)}
        assert (system, int(at.timestamp())) in cache[person], (number, system, at)
        sums[(number, model)] = sums.get((number, model), 0.0) + share
    assert all(math.isclose(s, 1.0, abs_tol=1e-9) for s in sums.values())


def test_a_failing_derivation_makes_the_run_partial_and_keeps_the_loads(acme_site: Path, tmp_path: Path) -> None:
    # definitions naming a model no plugin registered: the loads finish, the derivation fails, and
    # the run says so (exit 3, error in the status), never a silent success
    broken = tmp_path / "definitions.yaml"
    text = (Path(__file__).resolve().parents[1] / "mappings" / "definitions.yaml").read_text(encoding="utf-8")
    broken.write_text(text.replace("w_shaped: {milestone", "v_shaped: {milestone"), encoding="utf-8")
    db = tmp_path / "acme.duckdb"
    done = cli("run", "acme", "--db", str(db), cwd=tmp_path,
               env={"PYTHONPATH": str(acme_site), "SOURCES__ACME__API_KEY": "k-123456",
                    "FACTORYLINE_DEFINITIONS": str(broken)})
    status = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 3 and status["status"] == "partial", done.stderr
    assert any(e.startswith("derive: ") and "v_shaped" in e and "definitions.yaml" in e for e in status["errors"])
    assert all(s["status"] == "success" for s in status["streams"])
    con = duckdb.connect(str(db), read_only=True)
    assert con.sql("SELECT count(*) FROM factory.person").fetchall()[0][0] > 0
    con.close()


def _expected_shares(model: str, at: list[Any], converted_at: Any, params: dict[str, Any]) -> list[float] | None:
    """Each model's shares, written out independently of core/attribution.py (touches in time order)."""
    n = len(at)
    if model == "first_touch":
        return [1.0] + [0.0] * (n - 1)
    if model == "last_touch":
        return [0.0] * (n - 1) + [1.0]
    if model == "linear":
        return [1.0 / n] * n
    if model == "position_based":
        first, last = params.get("first", 0.4), params.get("last", 0.4)
        if n <= 2:
            return [1.0] if n == 1 else [first / (first + last), last / (first + last)]
        return [first] + [(1.0 - first - last) / (n - 2)] * (n - 2) + [last]
    if model == "time_decay":
        half_life_s = params.get("half_life_days", 7) * 86400.0
        weights = [0.5 ** ((converted_at - t).total_seconds() / half_life_s) for t in at]
        return [w / sum(weights) for w in weights]
    return None  # w_shaped depends on lead creation: checked by its milestones below


def test_sandbox_orders_get_each_models_exact_credits(sandbox_run: tuple[Target, RunStatus, Journeys]) -> None:
    """Orders of the sandbox world with one, two and many touches: every model's credit per touch."""
    target, _status, _journeys = sandbox_run
    con = duckdb.connect(str(target.db_path), read_only=True)
    rows = con.sql("SELECT conversion_id, model, model_params, touch_id, touch_occurred_at, converted_at, credit "
                   "FROM factory.attribution_credit WHERE conversion_type = 'order'").fetchall()
    con.close()
    by: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for r in rows:
        by.setdefault((r[0], r[1]), []).append(r)
    touches = {cid: len(rs) for (cid, model), rs in by.items() if model == "linear"}
    cases = {size: next((cid for cid, n in sorted(touches.items()) if (n if n < 3 else 3) == size), None)
             for size in (1, 2, 3)}
    assert cases[1] and cases[3], f"the sandbox world gives orders with one and with many touches: {touches}"
    for size, cid in cases.items():
        if cid is None:
            continue
        for model in ("first_touch", "last_touch", "linear", "position_based", "time_decay", "w_shaped"):
            credited = sorted(by[(cid, model)], key=lambda r: (r[4], r[3]))  # time, then touch id
            at = [r[4] for r in credited]
            params = orjson.loads(credited[0][2] or "{}")
            got = [r[6] for r in credited]
            assert math.isclose(sum(got), 1.0, abs_tol=1e-9), (model, size)
            want = _expected_shares(model, at, credited[0][5], params)
            if want is None:  # w_shaped: the first touch and (for an order) the last hold a milestone each
                milestone = params.get("milestone", 0.3)
                assert got[0] >= milestone - 1e-9 and got[-1] >= milestone - 1e-9, (model, size, got)
                continue
            assert all(math.isclose(g, w, abs_tol=1e-9) for g, w in zip(got, want, strict=True)), (model, size, got, want)
