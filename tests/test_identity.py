"""Identity: person records of every system linked by email, social handle and vendor
cross-references; the unified id is the smallest member id of each connected component, so the
graph is the same on every re-run and moves deterministically when a new link arrives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from core.definitions import load_definitions
from pipelines.derive import derive
from pipelines.destination import Target
from tests.test_attribution import Canon, build_world, copy_of


def _world() -> tuple[Canon, dict[str, Any]]:
    c, ids = build_world()
    pid = {(r["source_system"], r["source_record_id"]): r["id"] for r in c.rows["person"]}
    ids["pid"] = pid
    # an X author whose handle the CRM knows (HubSpot contact 101 has social_handle ann_x)
    pid[("x", "u77")] = c.person("x", "u77", obj="users", social_handle="Ann_X")
    # HubSpot: contact 110 survived a merge of 111 and 112 (112 was never loaded)
    pid[("hubspot", "110")] = c.person("hubspot", "110", email="gus@g.io",
                                       payload={"properties": {"hs_merged_object_ids": "111;112"}})
    pid[("hubspot", "111")] = c.person("hubspot", "111", email="gus.old@g.io")
    # Salesforce: lead 00Q1 was converted into contact 003Z (different emails on the two records)
    pid[("salesforce", "00Q1")] = c.person("salesforce", "00Q1", obj="lead", email="hal@h.io",
                                           payload={"IsConverted": True, "ConvertedContactId": "003Z"})
    pid[("salesforce", "003Z")] = c.person("salesforce", "003Z", obj="contact", email="hal@work.io")
    # a lead that was not converted points nowhere
    pid[("salesforce", "00Q2")] = c.person("salesforce", "00Q2", obj="lead", email="ida@i.io",
                                           payload={"IsConverted": False, "ConvertedContactId": None})
    return c, ids


GROUPS = [
    {("hubspot", "101"), ("salesforce", "003A"), ("shopify", "9001"), ("x", "u77")},
    {("mailchimp", "m3"), ("hubspot", "103"), ("shopify", "9003")},
    {("hubspot", "110"), ("hubspot", "111")},
    {("salesforce", "00Q1"), ("salesforce", "003Z")},
]


def _links(target: Target) -> set[tuple[Any, ...]]:
    con = duckdb.connect(str(target.db_path), read_only=True)
    try:
        return set(con.sql("SELECT id, person_id, linked_person_id, rule, confidence, unified_person_id "
                           "FROM factory.identity_link").fetchall())
    finally:
        con.close()


def _unified(links: set[tuple[Any, ...]]) -> dict[str, str]:
    return {r[1]: r[5] for r in links if r[3] == "self"}


def _expected(pid: dict[tuple[str, str], str], groups: list[set[tuple[str, str]]]) -> dict[str, str]:
    out = {p: p for p in pid.values()}
    for g in groups:
        members = [pid[k] for k in g]
        for m in members:
            out[m] = min(members)
    return out


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Target, dict[str, Any]]:
    target = Target(db_path=tmp_path_factory.mktemp("identity") / "fl.duckdb")
    c, ids = _world()
    c.load(target)
    derive(target)
    return target, ids


def test_links_by_email_handle_and_crossrefs(loaded: tuple[Target, dict[str, Any]]) -> None:
    target, ids = loaded
    pid = ids["pid"]
    links = _links(target)
    assert _unified(links) == _expected(pid, GROUPS)
    pairs = {(frozenset((r[1], r[2])), r[3]): r[4] for r in links if r[3] != "self"}
    cfg = load_definitions().identity
    assert pairs[(frozenset((pid[("hubspot", "101")], pid[("x", "u77")])), "social_handle")] == cfg.handle_confidence
    assert pairs[(frozenset((pid[("hubspot", "110")], pid[("hubspot", "111")])), "hubspot_merged_contact")] == 1.0
    assert pairs[(frozenset((pid[("salesforce", "00Q1")], pid[("salesforce", "003Z")])),
                  "salesforce_converted_lead")] == 1.0
    # " Ann@Acme.io " is the same address once trimmed and lower-cased
    ann = {pid[("hubspot", "101")], pid[("salesforce", "003A")], pid[("shopify", "9001")]}
    email_pairs = {p for (p, rule), conf in pairs.items() if rule == "email" and conf == cfg.email_confidence}
    assert all(p <= ann for p in email_pairs if p & ann) and len([p for p in email_pairs if p & ann]) == 2
    # nothing links the unconverted lead
    assert not any(pid[("salesforce", "00Q2")] in p for p, _ in pairs)


def test_rerun_is_identical_and_a_new_link_moves_the_graph_deterministically(
        loaded: tuple[Target, dict[str, Any]], tmp_path: Path) -> None:
    target, ids = copy_of(loaded[0], tmp_path), loaded[1]
    pid = dict(ids["pid"])
    first = _links(target)
    derive(target)
    assert _links(target) == first
    # a Marketo lead with Bob's email and Ann's handle joins Bob's and Ann's components
    more = Canon()
    pid[("marketo", "777")] = more.person("marketo", "777", obj="leads", email="bob@beta.io", social_handle="@ann_x")
    more.load(target)
    derive(target)
    after = _links(target)
    groups = [GROUPS[0] | {("hubspot", "102"), ("marketo", "777")}, *GROUPS[1:]]
    assert _unified(after) == _expected(pid, groups)
    unified = _unified(after)
    assert all(unified[r[1]] == unified[r[2]] for r in first)  # what was linked stays linked
