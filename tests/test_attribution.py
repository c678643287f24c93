"""Attribution: exact credits for constructed journeys, for every model, through the destination.

The journeys are canonical rows of several vendors loaded through dlt exactly as connectors load
them (same tables, keys, provenance and raw tables); `derive` then computes identity, lifecycle and
credits in DuckDB. Expected shares are worked out by hand from the model definitions in
docs/definitions.md, never read back from the code.
"""

from __future__ import annotations

import math
import shutil
import types
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
import duckdb
import orjson
import pyarrow as pa
import pytest

from core.attribution import BUILTIN_MODELS, AttributionModel, Conversion, TouchPoint, credit
from core.definitions import load_definitions
from core.entities import ENTITIES
from core.hookspecs import hookimpl
from core.lineage import keyer, row_key
from core.plugins import build_registry, get_plugin_manager, get_registry
from core.vocabulary import TOUCH_TYPES
from pipelines.derive import derive
from pipelines.destination import Target, make_pipeline
from pipelines.load import RAW_SCHEMA

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
INSTANCE = "test"
MODELS = {m.name: m for m in BUILTIN_MODELS}


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


class Canon:
    """Canonical rows (with their raw vendor records) of a constructed multi-vendor world."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.raw: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def _add(self, entity: str, system: str, obj: str, rid: str, payload: dict[str, Any] | None,
             **cols: Any) -> str:
        rid = str(rid)
        raw_table = f"{system}__{obj}"
        raw_key = keyer(system, INSTANCE, obj)(rid)
        row = {"id": row_key(system, INSTANCE, obj, rid), "source_system": system, "source_instance": INSTANCE,
               "source_object": obj, "source_record_id": rid, "is_deleted": False, "extracted_at": T0,
               "run_id": "test-run", "mapping_version": "test", "raw_table": raw_table, "raw_key": raw_key, **cols}
        self.rows[entity].append(row)
        body = {"id": rid, **(payload or {}), "_cols": {k: str(v) for k, v in cols.items()}}
        self.raw[raw_table].append({"raw_key": raw_key, "source_instance": INSTANCE, "record_id": rid,
                                    "cursor_value": None, "extracted_at": T0, "run_id": "test-run",
                                    "payload": orjson.dumps(body).decode()})
        return str(row["id"])

    def person(self, system: str, rid: str, *, obj: str = "contacts", payload: dict[str, Any] | None = None,
               **cols: Any) -> str:
        cols.setdefault("created_at", day(-365))
        return self._add("person", system, obj, rid, payload, **cols)

    def account(self, system: str, rid: str, name: str) -> str:
        return self._add("account", system, "companies", rid, None, name=name)

    def touch(self, system: str, rid: str, at: datetime, touch_type: str, **cols: Any) -> str:
        tt = TOUCH_TYPES[touch_type]
        return self._add("touch", system, "activities", rid, None, occurred_at=at, touch_type=touch_type,
                         channel=tt.channel, category=tt.category, **cols)

    def opportunity(self, system: str, rid: str, **cols: Any) -> str:
        return self._add("opportunity", system, "deals", rid, None, **cols)

    def order(self, system: str, rid: str, at: datetime, **cols: Any) -> str:
        return self._add("order", system, "orders", rid, None, ordered_at=at, **cols)

    def load(self, target: Target) -> None:
        rows, raw = self.rows, self.raw

        @dlt.source(name="constructed", max_table_nesting=0)
        def source() -> Iterator[Any]:
            for entity, items in rows.items():
                schema = ENTITIES[entity].arrow_schema()
                table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in items], schema=schema)
                yield dlt.resource([table], name=entity, primary_key="id",
                                   write_disposition={"disposition": "merge", "strategy": "upsert"})
            for name, items in raw.items():
                yield dlt.resource([pa.Table.from_pylist(items, schema=RAW_SCHEMA)], name=name, primary_key="raw_key",
                                   write_disposition={"disposition": "merge", "strategy": "upsert"})
        make_pipeline(target).run(source(), loader_file_format="parquet")


def td(*ages: float, half_life: float = 7.0) -> list[float]:
    """time_decay shares by hand: weight 2^(-age/half-life), normalised."""
    w = [2 ** (-a / half_life) for a in ages]
    return [x / sum(w) for x in w]


def build_world() -> tuple[Canon, dict[str, Any]]:
    """The journeys of the docstring of each test; returns the world and the ids tests refer to."""
    c = Canon()
    ids: dict[str, Any] = {}
    # O1: Ann, three systems' person records joined by email, an X handle the CRM knows
    ann_hs = c.person("hubspot", "101", email="ann@acme.io", social_handle="ann_x", lifecycle_stage="lead",
                      created_at=day(-200))
    ann_sf = c.person("salesforce", "003A", email=" Ann@Acme.io ", created_at=day(-300))
    ann_shop = c.person("shopify", "9001", obj="customers", email="ann@acme.io")
    ids["o1"] = c.order("shopify", "5001", day(0), person_id=ann_shop, email="ann@acme.io")
    c.touch("hubspot", "h-old", day(-100), "form_submission", person_id=ann_hs)  # outside the 90-day window
    ids["o1_touches"] = [
        c.touch("hubspot", "h-1", day(-14), "form_submission", person_id=ann_hs),
        c.touch("salesforce", "s-1", day(-7), "meeting", person_id=ann_sf),
        c.touch("x", "x-1", day(0), "social_mention", social_handle="@Ann_X"),  # at the conversion: counts
    ]
    c.touch("hubspot", "h-bounce", day(-3), "bounce", person_id=ann_hs)  # not a marketing activity
    c.touch("hubspot", "h-after", day(1), "page_view", person_id=ann_hs)  # after the order
    # O2: a guest order (no shop customer) reaches Bob only through his email; one touch
    bob = c.person("hubspot", "102", email="bob@beta.io")
    ids["o2"] = c.order("shopify", "5002", day(0), email="BOB@beta.io ")
    ids["o2_touches"] = [c.touch("hubspot", "h-2", day(-30), "email_open", person_id=bob)]
    # O3: two touches from two systems linked only through identity
    cy_mc = c.person("mailchimp", "m3", obj="members", email="cy@c.io")
    cy_hs = c.person("hubspot", "103", email="cy@c.io")
    cy_shop = c.person("shopify", "9003", obj="customers", email="cy@c.io")
    ids["o3"] = c.order("shopify", "5003", day(0), person_id=cy_shop)
    ids["o3_touches"] = [c.touch("mailchimp", "m-1", day(-10), "click", person_id=cy_mc),
                         c.touch("hubspot", "h-3", day(-2), "form_submission", person_id=cy_hs)]
    # O4: two touches at the same instant: ordered by touch id
    dee = c.person("hubspot", "104", email="dee@d.io")
    ids["o4"] = c.order("shopify", "5004", day(0), person_id=dee)
    ids["o4_touches"] = sorted([c.touch("hubspot", "h-4b", day(-1), "page_view", person_id=dee),
                                c.touch("hubspot", "h-4a", day(-1), "page_view", person_id=dee)])
    # O5: a HubSpot email event names its recipient only by address (identity.touch_emails)
    gil = c.person("hubspot", "105", email="gil@g.io")
    ids["o5"] = c.order("shopify", "5007", day(0), person_id=gil)
    ids["o5_touches"] = [c.touch("hubspot", "h-5", day(-3), "click", extras='{"recipient": " Gil@G.io"}')]
    c.rows["touch"][-1]["source_object"] = "email_events"
    # test and cancelled orders, a lost opportunity: no credit
    ids["o_test"] = c.order("shopify", "5005", day(0), person_id=dee, is_test=True)
    ids["o_cancelled"] = c.order("shopify", "5006", day(0), person_id=dee, is_cancelled=True)
    # OP1: B2B, many touches of two contacts of the won opportunity's account
    acct = c.account("hubspot", "A1", "Acme")
    eve = c.person("hubspot", "201", email="eve@acme.io", account_id=acct, lifecycle_stage="sql",
                   created_at=day(-50))
    fay = c.person("hubspot", "202", email="fay@acme.io", account_id=acct, lifecycle_stage="subscriber")
    ids["op1"] = c.opportunity("hubspot", "D1", name="Acme deal", account_id=acct, person_id=eve, is_won=True,
                               is_closed=True, created_at=day(-20), close_date=day(0))
    ids["op1_touches"] = [
        c.touch("hubspot", "u1", day(-60), "page_view", person_id=fay),
        c.touch("hubspot", "u2", day(-50), "form_submission", person_id=eve),  # lead creation
        c.touch("hubspot", "u3", day(-30), "email_open", person_id=fay),
        c.touch("salesforce", "u4", day(-20), "meeting", person_id=eve),  # opportunity creation
        c.touch("salesforce", "u5", day(-5), "call", person_id=eve),
    ]
    ids["op_lost"] = c.opportunity("hubspot", "D2", account_id=acct, person_id=eve, is_won=False, is_closed=True,
                                   created_at=day(-20), close_date=day(0))
    return c, ids


# shares per conversion and model, by hand (docs/definitions.md)
EXPECTED: dict[str, dict[str, list[float]]] = {
    "o1": {"first_touch": [1, 0, 0], "last_touch": [0, 0, 1], "linear": [1 / 3] * 3,
           "position_based": [0.4, 0.2, 0.4], "time_decay": [1 / 7, 2 / 7, 4 / 7],
           # no touch at or before Ann's lead time (day -200): lead slot falls back to the first touch
           "w_shaped": [0.6, 0.1, 0.3]},
    "o2": {m: [1.0] for m in MODELS},
    "o5": {m: [1.0] for m in MODELS},
    "o3": {"first_touch": [1, 0], "last_touch": [0, 1], "linear": [0.5, 0.5], "position_based": [0.5, 0.5],
           "time_decay": td(10, 2), "w_shaped": [2 / 3, 1 / 3]},
    "o4": {"first_touch": [1, 0], "last_touch": [0, 1], "linear": [0.5, 0.5], "position_based": [0.5, 0.5],
           "time_decay": [0.5, 0.5], "w_shaped": [2 / 3, 1 / 3]},
    "op1": {"first_touch": [1, 0, 0, 0, 0], "last_touch": [0, 0, 0, 0, 1], "linear": [0.2] * 5,
            "position_based": [0.4, 0.2 / 3, 0.2 / 3, 0.2 / 3, 0.4], "time_decay": td(60, 50, 30, 20, 5),
            "w_shaped": [0.3, 0.3, 0.05, 0.3, 0.05]},
}


def _plugin_registry() -> Any:
    """The built-in models plus one registered by a plugin through register_attribution_models."""
    pm = get_plugin_manager()
    pm.register(types.SimpleNamespace(register_attribution_models=register_attribution_models), name="test_models")
    return build_registry(pm, strict=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Target, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("attribution")
    target = Target(db_path=tmp / "fl.duckdb")
    c, ids = build_world()
    c.load(target)
    result = derive(target, run_id="derive-run-1", models=_plugin_registry().attribution_models)
    assert result.rows["attribution_credit"] > 0
    return target, ids


def copy_of(target: Target, folder: Path) -> Target:
    """The same database in a new file (cheaper than loading the world again)."""
    shutil.copy(target.db_path, folder / "copy.duckdb")
    return Target(db_path=folder / "copy.duckdb")


def _credits(target: Target) -> dict[tuple[str, str], list[tuple[str, float, int, int]]]:
    con = duckdb.connect(str(target.db_path), read_only=True)
    try:
        out: dict[tuple[str, str], list[tuple[str, float, int, int]]] = defaultdict(list)
        for cid, model, tid, share, pos, n in con.sql(
                "SELECT conversion_id, model, touch_id, credit, position, touch_count FROM factory.attribution_credit "
                "ORDER BY conversion_id, model, position").fetchall():
            out[(cid, model)].append((tid, share, pos, n))
        return out
    finally:
        con.close()


@pytest.mark.parametrize("conv", sorted(EXPECTED))
def test_exact_credits_for_every_model(world: tuple[Target, dict[str, Any]], conv: str) -> None:
    target, ids = world
    got = _credits(target)
    for model, shares in EXPECTED[conv].items():
        rows = got[(ids[conv], model)]
        assert [r[0] for r in rows] == ids[f"{conv}_touches"], (conv, model)
        assert [r[1] for r in rows] == pytest.approx(shares, abs=1e-9), (conv, model)
        assert math.isclose(sum(r[1] for r in rows), 1.0, abs_tol=1e-9)
        assert {r[3] for r in rows} == {len(shares)}


def test_no_credit_for_lost_test_or_cancelled(world: tuple[Target, dict[str, Any]]) -> None:
    target, ids = world
    convs = {cid for cid, _model in _credits(target)}
    assert not convs & {ids["op_lost"], ids["o_test"], ids["o_cancelled"]}
    assert convs == {ids[k] for k in EXPECTED}


def test_every_row_carries_model_params_lookback_run_and_touch_provenance(
        world: tuple[Target, dict[str, Any]]) -> None:
    target, _ids = world
    con = duckdb.connect(str(target.db_path), read_only=True)
    rows = con.sql("SELECT model, model_params, lookback_days, run_id, raw_table, source_system, touch_id, "
                   "converted_at FROM factory.attribution_credit").fetchall()
    touches = dict(con.sql("SELECT id, raw_table FROM factory.touch").fetchall())
    con.close()
    assert {r[0] for r in rows} == set(get_registry().attribution_models) | {"second_to_last"}
    settings = load_definitions().attribution.models
    for model, params, lookback, run_id, raw_table, system, tid, converted in rows:
        configured = settings.get(model, {})
        assert orjson.loads(params) == {**(MODELS[model].defaults if model in MODELS else {}), **configured}
        assert lookback == 90 and run_id == "derive-run-1" and converted == T0
        assert raw_table == touches[tid] and raw_table.startswith(system + "__")
    assert {orjson.loads(r[1])["half_life_days"] for r in rows if r[0] == "time_decay"} == {7}


def test_lookback_window_is_configurable(world: tuple[Target, dict[str, Any]], tmp_path: Path) -> None:
    target, ids = copy_of(world[0], tmp_path), world[1]
    text = (Path(__file__).parents[1] / "mappings" / "definitions.yaml").read_text(encoding="utf-8")
    defs = tmp_path / "definitions.yaml"
    defs.write_text(text.replace("lookback_days: 90", "lookback_days: 8"), encoding="utf-8")
    derive(target, definitions=defs)
    got = _credits(target)
    # O1 keeps the touches of the last 8 days only: the meeting (day -7) and the mention (day 0)
    assert [r[0] for r in got[(ids["o1"], "linear")]] == ids["o1_touches"][1:]
    assert (ids["o2"], "linear") not in got  # its only touch is 30 days old


# -- the models as pure functions -------------------------------------------------------------


def _touches(*days: float) -> list[TouchPoint]:
    return [TouchPoint(f"t{i}", day(d)) for i, d in enumerate(days)]


def test_models_one_touch_gets_everything() -> None:
    for m in BUILTIN_MODELS:
        assert credit(m, _touches(-3), Conversion("order", "o", T0)) == [1.0], m.name
        assert credit(m, [], Conversion("order", "o", T0)) == []


def test_time_decay_half_life_is_a_parameter() -> None:
    shares = credit(MODELS["time_decay"], _touches(-2, 0), Conversion("order", "o", T0), {"half_life_days": 2})
    assert shares == pytest.approx([1 / 3, 2 / 3])


def test_w_shaped_milestones_for_an_opportunity() -> None:
    conv = Conversion("opportunity", "o", T0, lead_created_at=day(-9), opportunity_created_at=day(-4))
    shares = credit(MODELS["w_shaped"], _touches(-10, -9, -6, -4, -1), conv)
    assert shares == pytest.approx([0.3, 0.3, 0.05, 0.3, 0.05])


def test_a_model_breaking_the_contract_is_refused() -> None:
    bad = AttributionModel("bad", lambda t, c, p: [0.5] * len(t), "does not sum to 1")
    with pytest.raises(ValueError, match="summing to 1"):
        credit(bad, _touches(-1, -2, -3), Conversion("order", "o", T0))


# -- a model from a plugin --------------------------------------------------------------------


def _first_meeting(touches: Any, conversion: Any, params: Any) -> list[float]:
    return [1.0 if i == len(touches) - 2 else 0.0 for i in range(len(touches))] if len(touches) > 1 else [1.0]


@hookimpl
def register_attribution_models(register: Any) -> None:
    register(AttributionModel("second_to_last", _first_meeting, "All credit to the second-to-last touch."))


def test_plugin_model_is_registered_and_applied(world: tuple[Target, dict[str, Any]]) -> None:
    assert set(_plugin_registry().attribution_models) == set(MODELS) | {"second_to_last"}
    target, ids = world
    got = _credits(target)
    assert [r[1] for r in got[(ids["op1"], "second_to_last")]] == [0, 0, 0, 1, 0]
    assert [r[1] for r in got[(ids["o2"], "second_to_last")]] == [1]


def test_same_credits_on_postgres(pg_dataset: str, tmp_path: Path) -> None:
    import psycopg2

    from tests.conftest import PG_DSN

    target = Target(destination="postgres", dataset=pg_dataset, credentials=PG_DSN, work_dir=tmp_path / "work")
    c, ids = build_world()
    c.load(target)
    derive(target)
    with psycopg2.connect(PG_DSN) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT conversion_id, model, touch_id, credit FROM "{pg_dataset}".attribution_credit '
                    "ORDER BY conversion_id, model, position")
        got: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
        for cid, model, tid, share in cur.fetchall():
            got[(cid, model)].append((tid, share))
        cur.execute(f'SELECT count(*) FROM "{pg_dataset}".identity_link WHERE rule = \'email\'')
        assert cur.fetchone()[0] > 0
    for conv, models in EXPECTED.items():
        for model, shares in models.items():
            assert [t for t, _ in got[(ids[conv], model)]] == ids[f"{conv}_touches"], (conv, model)
            assert [s for _, s in got[(ids[conv], model)]] == pytest.approx(shares, abs=1e-9), (conv, model)
