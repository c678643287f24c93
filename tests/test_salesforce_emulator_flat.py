"""The Salesforce emulator answers queries on Id / IsDeleted / SystemModstamp from its records' stamps,
without building rows; every other query builds rows. Both must give the same answers.

Over real HTTP: each query the connector sends is asked twice, once as sent (the stamps) and once
with a condition or sort key that changes nothing but makes the emulator build every row
(``CreatedDate`` is not a stamp), on every object, at tick 0 and after ticks that change, archive
and add records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox import Sandbox, start_sandbox
from sandbox.world import format_ms
from tests.conftest import soql_read

SPEC = "connectors.salesforce.emulator:emulator_spec"
T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z
HOUR = 3_600_000
OBJECTS = ("Account", "Campaign", "CampaignMember", "Contact", "Event", "Lead", "Opportunity",
           "OpportunityContactRole", "Task", "User")
#: true of every record: turns a query into one that builds rows, without changing its answer
ROWS = "CreatedDate < 2100-01-01T00:00:00Z"


def _dt(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


@pytest.fixture(scope="module", params=[0, 4], ids=["tick0", "tick4"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, int]]:
    ticks: int = request.param
    state: Path = tmp_path_factory.mktemp("sf-flat")
    (state / "world.json").write_text(json.dumps({"seed": 5, "size": 1500, "grow": True, "ticks": [
        format_ms(T0 + k * HOUR) for k in range(ticks + 1)]}))
    with start_sandbox([SPEC], size=1500, seed=5, grow=True, state_dir=state, in_process=True) as sb:
        yield sb, ticks


@pytest.mark.parametrize("obj", OBJECTS)
def test_stamps_answer_as_rows(world: tuple[Sandbox, int], obj: str) -> None:
    sb, ticks = world
    st = sb.emulators["salesforce"].settings
    upper = _dt(T0 + (ticks + 1) * HOUR)
    lower = _dt(T0 + HOUR // 2) if ticks else _dt(T0 - 90 * 86_400_000)
    with httpx.Client(base_url=st["plain_url"], headers={"Authorization": f"Bearer {st['session_id']}"},
                      timeout=120) as c:
        names = [f["name"] for f in c.get(f"/services/data/v59.0/sobjects/{obj}/describe").json()["fields"]
                 if f["type"] != "address"]
        cols = ", ".join(names)
        order = " ORDER BY SystemModstamp ASC, Id ASC"
        for window in (f"SystemModstamp < {upper}", f"SystemModstamp >= {lower} AND SystemModstamp < {upper}"):
            assert soql_read(c, f"SELECT COUNT() FROM {obj} WHERE {window}") == \
                soql_read(c, f"SELECT COUNT() FROM {obj} WHERE {window} AND {ROWS}")
            stamps = soql_read(c, f"SELECT {cols} FROM {obj} WHERE {window}{order}")
            assert stamps == soql_read(c, f"SELECT {cols} FROM {obj} WHERE {window}{order}, CreatedDate ASC")
            assert stamps[0] == len(stamps[1])
            for kind in ("query", "queryAll"):
                assert soql_read(c, f"SELECT {cols} FROM {obj} WHERE {window}", kind) == \
                    soql_read(c, f"SELECT {cols} FROM {obj} WHERE {window} AND {ROWS}", kind)
        _, records = stamps
        if records:  # the connector's resume: the rest of one timestamp, then everything after it
            mid = records[len(records) // 2]
            lit = mid["SystemModstamp"][:19] + "Z"
            for where in (f"SystemModstamp = {lit} AND Id > '{mid['Id']}' AND SystemModstamp < {upper}",
                          f"SystemModstamp > {lit} AND SystemModstamp < {upper}",
                          f"Id IN ('{records[0]['Id']}', '{mid['Id']}') OR IsDeleted = true",
                          # ids match on their first 15 characters, case-sensitive, of this object only
                          f"Id IN ('{records[0]['Id']}', '{mid['Id'][:15]}AAA', '{mid['Id'].lower()}', "
                          f"'001{mid['Id'][3:]}', 'x') AND SystemModstamp < {upper}",
                          f"Id = '{mid['Id'][:15]}'"):
                assert soql_read(c, f"SELECT {cols} FROM {obj} WHERE {where}{order}") == \
                    soql_read(c, f"SELECT {cols} FROM {obj} WHERE {where}{order}, CreatedDate ASC")
        for shape in (" ORDER BY Id ASC", " ORDER BY SystemModstamp DESC, Id DESC LIMIT 700 OFFSET 3", ""):
            rows_shape = shape.replace(" LIMIT", ", CreatedDate ASC LIMIT") if "LIMIT" in shape else \
                (f"{shape}, CreatedDate ASC" if shape else f" WHERE {ROWS}")
            assert soql_read(c, f"SELECT {cols} FROM {obj}{shape}", "queryAll") == \
                soql_read(c, f"SELECT {cols} FROM {obj}{rows_shape}", "queryAll")


def test_stamps_follow_the_clock() -> None:
    """A full read at one tick, then ticks later (the stamps of the people update from the changes)."""
    with start_sandbox([SPEC], size=1200, seed=3, grow=True, in_process=True) as sb:
        st = sb.emulators["salesforce"].settings
        with httpx.Client(base_url=st["plain_url"], headers={"Authorization": f"Bearer {st['session_id']}"},
                          timeout=120) as c:
            for step in (0, 1, 3):
                if step:
                    sb.advance(step)
                for obj in ("Lead", "Contact", "OpportunityContactRole", "CampaignMember"):
                    soql = f"SELECT Id, IsDeleted, SystemModstamp FROM {obj} ORDER BY SystemModstamp ASC, Id ASC"
                    stamps = soql_read(c, soql, "queryAll")
                    assert stamps == soql_read(c, f"{soql}, CreatedDate ASC", "queryAll")
                    assert stamps[0] > 0
