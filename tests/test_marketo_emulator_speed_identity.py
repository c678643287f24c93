"""The Marketo emulator's fast paths answer what its general paths answer.

Activity pages are computed one ahead and rendered from per-(type, campaign, device, link) parts
shared between leads: the same activities must come back whatever the page size, and a lead-filtered
read must give exactly that lead's part of the full read. Program members come from a scan of a
batch of programs: each program's list must be exactly the leads whose own touches make them members
(the ``leadId`` filter decides per lead, without a scan), whichever program a scan started from.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.marketo.emulator import CLIENT_ID, CLIENT_SECRET, LEAD_OFFSET
from sandbox import Sandbox, start_sandbox

SIZE = 300
GROUPS = ("1,2,6,7,8,9,10,11,12,13", "34,37,46,104")


def _client(sb: Sandbox) -> httpx.Client:
    base = sb.emulators["marketo"].base_url
    token = httpx.get(f"{base}/identity/oauth/token", params={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).json()
    return httpx.Client(base_url=base, timeout=60, headers={"authorization": f"Bearer {token['access_token']}"})


@pytest.fixture(scope="module", params=[0, 3], ids=["tick0", "tick3"])
def client(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    with start_sandbox(["marketo"], size=SIZE, seed=7, in_process=True) as sb:
        if request.param:
            sb.advance(request.param)
        with _client(sb) as c:
            yield c


def _get(c: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    resp = c.get(path, params=params)
    assert resp.status_code == 200
    body: dict[str, Any] = resp.json()
    assert body["success"], body
    return body


def _activities(c: httpx.Client, types: str, batch: int, since: str = "2000-01-01T00:00:00Z",
                lead_ids: str | None = None) -> list[dict[str, Any]]:
    token = _get(c, "/rest/v1/activities/pagingtoken.json", sinceDatetime=since)["nextPageToken"]
    out: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"nextPageToken": token, "activityTypeIds": types, "batchSize": batch}
        if lead_ids:
            params["leadIds"] = lead_ids
        body = _get(c, "/rest/v1/activities.json", **params)
        out.extend(body.get("result") or [])
        token = body["nextPageToken"]
        if not body["moreResult"]:
            return out


@pytest.mark.parametrize("types", GROUPS)
def test_activity_pages_do_not_depend_on_the_page_size(client: httpx.Client, types: str) -> None:
    full = _activities(client, types, 300)
    assert full or types == GROUPS[1]
    assert _activities(client, types, 7) == full
    assert len({a["marketoGUID"] for a in full}) == len(full)


def test_lead_filtered_activities_are_the_leads_part_of_the_full_read(client: httpx.Client) -> None:
    full = _activities(client, GROUPS[0], 300)
    leads = sorted({a["leadId"] for a in full})[::7]
    assert leads
    wanted = set(leads)
    mine = _activities(client, GROUPS[0], 50, lead_ids=",".join(map(str, leads)))
    assert mine == [a for a in full if a["leadId"] in wanted]


def _members(c: httpx.Client, pid: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token = None
    while True:
        params: dict[str, Any] = {"batchSize": 113}
        if token:
            params["nextPageToken"] = token
        body = _get(c, f"/rest/v1/programs/{pid}/members.json", **params)
        out.extend(body["result"])
        token = body.get("nextPageToken") if body.get("moreResult") else None
        if not token:
            return out


def _programs(c: httpx.Client) -> list[int]:
    return [int(p["id"]) for p in _get(c, "/rest/asset/v1/programs.json", maxReturn=200).get("result") or []]


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "seq"} for r in rows]


def test_program_members_are_the_leads_whose_touches_make_them_members(client: httpx.Client) -> None:
    programs = _programs(client)
    assert programs
    every_lead = ",".join(str(LEAD_OFFSET + i) for i in range(SIZE))
    total = 0
    for pid in reversed(programs):  # scans start from the last program: the others come from its batch
        scanned = _members(client, pid)
        by_lead = _get(client, f"/rest/v1/programs/{pid}/members.json", filterType="leadId",
                       filterValues=every_lead, batchSize=300)["result"]
        assert _plain(scanned) == _plain(by_lead)
        total += len(scanned)
    assert total


def test_program_members_do_not_depend_on_where_a_scan_started(tmp_path: Path) -> None:
    """2000 people: 20 campaigns with windows of their own (fewer are always on)."""
    size = 2000
    # one fixed clock for both sandboxes (tick 0 is otherwise the time the world opens)
    clock = {"seed": 7, "size": size, "grow": False,
             "ticks": ["2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z", "2026-01-03T00:00:00.000Z"]}
    lists: list[dict[int, list[dict[str, Any]]]] = []
    for order in (1, -1):
        state = tmp_path / f"state{order}"
        state.mkdir()
        (state / "world.json").write_text(json.dumps(clock))
        with start_sandbox(["marketo"], size=size, seed=7, state_dir=state, in_process=True) as sb, \
                _client(sb) as c:
            programs = _programs(c)[::order]
            lists.append({pid: _plain(_members(c, pid)) for pid in programs})
            if order == -1:  # each lead's own touches decide, without a scan
                for pid in programs:
                    by_lead = []
                    for i in range(0, size, 300):
                        ids = ",".join(str(LEAD_OFFSET + n) for n in range(i, min(size, i + 300)))
                        by_lead += _get(c, f"/rest/v1/programs/{pid}/members.json", filterType="leadId",
                                        filterValues=ids, batchSize=300)["result"]
                    assert _plain(by_lead) == lists[-1][pid]
    assert lists[0] == lists[1]
    assert sum(map(len, lists[0].values())) > 100
