"""Lifecycle events: stage entries from vendor evidence, stamped with the definition version; a
changed definition (the MQL score threshold) derives new events under a new version while the old
version's events stay queryable."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from core.definitions import load_definitions
from pipelines.derive import conversion_ratio, derive
from pipelines.destination import Target
from tests.test_attribution import Canon, day

DEFINITIONS = Path(__file__).resolve().parents[1] / "mappings" / "definitions.yaml"


def _iso(d: datetime) -> str:
    return d.isoformat().replace("+00:00", "Z")


def _world() -> tuple[Canon, dict[str, str]]:
    c = Canon()
    ids = {}

    def contact(rid: str, score: int, stage: str = "lead", **dates: datetime) -> None:
        props = {"factory_lead_score": str(score), "lastmodifieddate": _iso(day(-5)),
                 **{f"hs_lifecyclestage_{k}_date": _iso(v) for k, v in dates.items()}}
        ids[rid] = c.person("hubspot", rid, email=f"{rid}@x.io", lifecycle_stage=stage, created_at=day(-365),
                            payload={"properties": props})

    contact("301", 50)                                   # lead by stage only (no date): created_at
    contact("302", 75, lead=day(-90))                    # MQL by score at 70, not at 90
    contact("303", 95, lead=day(-80))                    # MQL by score either way
    contact("304", 95, "mql", lead=day(-60), marketingqualifiedlead=day(-40))  # MQL date wins
    contact("305", 10, "subscriber")                     # never a lead
    # the same human in Marketo (score above the threshold) stitched by email to 305
    ids["m305"] = c.person("marketo", "m305", obj="leads", email="305@x.io",
                           payload={"leadScore": 88, "createdAt": _iso(day(-20)), "updatedAt": _iso(day(-3))})
    acct = c.account("hubspot", "A9", "Nine")
    ids["opp"] = c.opportunity("hubspot", "D9", account_id=acct, person_id=ids["302"], is_won=True, is_closed=True,
                               created_at=day(-30), close_date=day(-2))
    ids["acct"] = acct
    return c, ids


def _events(target: Target, stage: str) -> dict[str, dict[str, tuple[Any, ...]]]:
    """definition_version -> person_id (or account) -> (occurred_at, raw_table, raw_key, unified id)."""
    con = duckdb.connect(str(target.db_path), read_only=True)
    try:
        out: dict[str, dict[str, tuple[Any, ...]]] = {}
        for v, p, a, at, raw_table, raw_key, u in con.sql(
                "SELECT definition_version, person_id, account_id, occurred_at, raw_table, raw_key, unified_person_id "
                f"FROM factory.lifecycle_event WHERE stage = '{stage}'").fetchall():
            out.setdefault(v, {})[p or f"account:{a}"] = (at, raw_table, raw_key, u)
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Target, dict[str, str], Canon]:
    target = Target(db_path=tmp_path_factory.mktemp("lifecycle") / "fl.duckdb")
    c, ids = _world()
    c.load(target)
    derive(target)
    return target, ids, c


def test_stage_entries_with_time_evidence_and_version(loaded: tuple[Target, dict[str, str], Canon]) -> None:
    target, ids, c = loaded
    defs = load_definitions()
    raw_key = {r["id"]: r["raw_key"] for r in c.rows["person"]}
    lead = _events(target, "lead")
    assert list(lead) == [defs.stage_term("lead").definition_version]
    # 'first:' rule: a vendor's stage date beats the record's creation; creation only without a date
    got = {p: e[0] for p, e in next(iter(lead.values())).items()}
    assert got == {ids["301"]: day(-365), ids["302"]: day(-90), ids["303"]: day(-80), ids["304"]: day(-60),
                   ids["m305"]: day(-20)}
    mql = _events(target, "mql")[defs.stage_term("mql").definition_version]
    assert {p: e[0] for p, e in mql.items()} == {ids["302"]: day(-5), ids["303"]: day(-5), ids["304"]: day(-40),
                                                ids["m305"]: day(-3)}
    for p, (_at, raw_table, key, unified) in mql.items():
        assert key == raw_key[p] and raw_table in ("hubspot__contacts", "marketo__leads")
        assert unified == (min(ids["305"], ids["m305"]) if p == ids["m305"] else p)
    won = _events(target, "won")[defs.stage_term("won").definition_version]
    assert {p: e[0] for p, e in won.items()} == {ids["302"]: day(-2)}
    opp = _events(target, "opportunity")[defs.stage_term("opportunity").definition_version]
    assert {p: e[0] for p, e in opp.items()} == {ids["302"]: day(-30)}


def test_changing_the_mql_threshold_stamps_a_new_version_and_keeps_the_old(
        loaded: tuple[Target, dict[str, str], Canon], tmp_path: Path) -> None:
    from tests.test_attribution import copy_of

    target, ids = copy_of(loaded[0], tmp_path), loaded[1]
    old_version = load_definitions().stage_term("mql").definition_version
    text = DEFINITIONS.read_text(encoding="utf-8")
    mql_block = text[text.index("  marketing-qualified lead:"):text.index("  sales-qualified lead:")]
    assert mql_block.count("gte: 70") == 2
    changed = tmp_path / "definitions.yaml"
    changed.write_text(text.replace(mql_block, mql_block.replace("gte: 70", "gte: 90").replace(
        "version: 1", "version: 2")), encoding="utf-8")
    new_defs = load_definitions(changed)
    new_version = new_defs.stage_term("mql").definition_version
    assert new_version.startswith("mql@2:") and new_version != old_version
    # every other term is untouched: same versions
    assert new_defs.stage_term("lead").definition_version == load_definitions().stage_term("lead").definition_version
    derive(target, definitions=changed)
    mql = _events(target, "mql")
    assert set(mql) == {old_version, new_version}
    assert set(mql[new_version]) == {ids["303"], ids["304"]}  # 75 and 88 are below 90 now
    assert set(mql[old_version]) == {ids["302"], ids["303"], ids["304"], ids["m305"]}  # still queryable
    # the conversion ratio reads the version in force
    r = conversion_ratio(target, "lead", "mql", definitions=new_defs)
    assert (r["entered"], r["converted"], r["to_version"]) == (5, 2, new_version)
    r = conversion_ratio(target, "lead", "mql")
    # people who entered lead: 301, 302, 303, 304, 305(+m305); all but 301 reached MQL at 70
    assert (r["entered"], r["converted"]) == (5, 4)


def test_an_entry_never_moves_later_on_a_rerun(loaded: tuple[Target, dict[str, str], Canon], tmp_path: Path) -> None:
    """A score-based MQL is observed at the record's last change; a later change must not move it."""
    from tests.test_attribution import copy_of

    target, ids = copy_of(loaded[0], tmp_path), loaded[1]
    version = load_definitions().stage_term("mql").definition_version
    before = _events(target, "mql")[version][ids["303"]][0]
    later, earlier = Canon(), Canon()
    later.person("hubspot", "303", email="303@x.io", lifecycle_stage="lead", created_at=day(-365),
                 payload={"properties": {"factory_lead_score": "96", "lastmodifieddate": _iso(day(-1)),
                                         "hs_lifecyclestage_lead_date": _iso(day(-80))}})
    later.load(target)
    derive(target)
    assert _events(target, "mql")[version][ids["303"]][0] == before == day(-5)
    earlier.person("hubspot", "303", email="303@x.io", lifecycle_stage="lead", created_at=day(-365),
                   payload={"properties": {"factory_lead_score": "96", "lastmodifieddate": _iso(day(-8)),
                                           "hs_lifecyclestage_lead_date": _iso(day(-80))}})
    earlier.load(target)
    derive(target)
    assert _events(target, "mql")[version][ids["303"]][0] == day(-8)
