"""The Salesforce emulator's full scans of CampaignMember, Task and Event walk the journeys once per tick
and share what they found: the people a Task/Event walk visited are not walked again for
CampaignMember, the people digest comes from the same pass when nothing built it before, and a
window bounded below reuses the tick's full walk when there is one. None of that may change an
answer: fresh servers over the same world, asked in different orders, answer alike.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from sandbox import start_sandbox
from sandbox.world import format_ms
from tests.conftest import soql_read

SPEC = "connectors.salesforce.emulator:emulator_spec"
T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z
HOUR = 3_600_000
DAY = 86_400_000
TICKS = 3


def _dt(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def _queries(obj: str) -> dict[str, str]:
    upper = _dt(T0 + (TICKS + 1) * HOUR)
    cols = "Id, IsDeleted, SystemModstamp, CreatedDate"
    order = " ORDER BY SystemModstamp ASC, Id ASC"
    return {
        "count": f"SELECT COUNT() FROM {obj} WHERE SystemModstamp < {upper}",
        "full": f"SELECT {cols} FROM {obj} WHERE SystemModstamp < {upper}{order}",
        # no ORDER BY: the records in index (Id) order, as a bulk job gives them
        "plain": f"SELECT Id, SystemModstamp FROM {obj} WHERE SystemModstamp < {upper}",
        # a lower bound among the base touches, and one after tick 0 (the incremental window)
        "early": f"SELECT {cols} FROM {obj} WHERE SystemModstamp >= {_dt(T0 - 40 * DAY)} "
                 f"AND SystemModstamp < {upper}{order}",
        "late": f"SELECT {cols} FROM {obj} WHERE SystemModstamp >= {_dt(T0 + HOUR // 2)} "
                f"AND SystemModstamp < {upper}{order}",
    }


def _answers(state: Path, steps: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """A fresh server over the world in ``state``, asked ``(object, query)`` in the order given."""
    out: dict[tuple[str, str], Any] = {}
    with start_sandbox([SPEC], size=1500, seed=5, grow=True, state_dir=state, in_process=True) as sb:
        st = sb.emulators["salesforce"].settings
        with httpx.Client(base_url=st["plain_url"], headers={"Authorization": f"Bearer {st['session_id']}"},
                          timeout=120) as c:
            for obj, name in steps:
                out[(obj, name)] = soql_read(c, _queries(obj)[name], "queryAll")
    return out


def test_scan_order_does_not_change_answers(tmp_path: Path) -> None:
    (tmp_path / "world.json").write_text(json.dumps({"seed": 5, "size": 1500, "grow": True, "ticks": [
        format_ms(T0 + k * HOUR) for k in range(TICKS + 1)]}))
    objs = ("Task", "Event", "CampaignMember")
    names = ("count", "full", "plain", "early", "late")
    orders = [
        # bounded windows first (the incremental walk), then the full scans
        [(o, n) for o in objs for n in ("late", "early", "count", "full", "plain")],
        # Task and Event first (the sales people), then CampaignMember (the other leads)
        [(o, n) for o in objs for n in names],
        # CampaignMember first: one walk of every lead gives the three objects
        [(o, n) for o in reversed(objs) for n in names],
        # the people digest built before (Lead), so the walk does not build it
        [("Lead", "count"), *[(o, n) for o in ("Event", "CampaignMember", "Task") for n in names]],
    ]
    found = [_answers(tmp_path, steps) for steps in orders]
    first = found[0]
    assert all(first[(o, "count")][0] > 0 for o in objs)
    assert all(first[(o, "late")][0] < first[(o, "early")][0] < first[(o, "full")][0] for o in objs)
    assert all([r["Id"] for r in first[(o, "plain")][1]] == sorted(r["Id"] for r in first[(o, "full")][1])
               for o in objs)
    for other in found[1:]:
        for key in first:
            if key in other:
                assert other[key] == first[key], key
