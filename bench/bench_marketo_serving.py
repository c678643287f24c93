"""Server CPU per activity of the Marketo emulator, and a digest of its answers for identity checks.

    /work/venv/bin/python bench/bench_marketo_serving.py --size 100000 [--records 100000] [--rounds 3]
    git archive <rev> | tar -x -C /tmp/fl_old     # an older tree, to compare in the same run:
    /work/venv/bin/python bench/bench_marketo_serving.py --rounds 3 --tree /tmp/fl_old --tree .
    /work/venv/bin/python bench/bench_marketo_serving.py --size 20000 --hash --ticks 3 --tree /tmp/fl_old --tree .

Each round starts ``python -m sandbox serve --vendor marketo --size N --seed 7`` from each
``--tree`` in turn (default: this checkout) on a fixed clock (tick 0 on 2026-01-01, then
``--ticks`` daily ticks), reads activities the way bench_sandbox.py does (a paging token from
2000-01-01, then ``activities.json`` with 10 types and ``batchSize=300`` until ``--records`` or the
end) and reports the server process's CPU seconds (utime + stime from /proc) spent on that read,
per 100,000 activities. The machine is shared: compare trees within one run, over several rounds.

``--hash`` instead reads every endpoint the connector uses (identity, describe, activity types,
paging tokens, activities in both of the connector's type groups from 2000-01-01 and from tick 0,
deleted leads, leads by id (GET and POST ``_method=GET``) and by email, single leads, programs,
one program, program members with every filter and leads by program) and prints a SHA-256 over
every answer's status, headers and body with the random or wall-clock parts masked
(``requestId``, ``access_token``, ``expires_in``, the ``Date`` header): the same digest from two
trees means byte-identical answers.
"""

from __future__ import annotations

import argparse
import contextlib
import re
from pathlib import Path
from typing import Any

import httpx
import orjson
from _serving_ab import print_table, run_rounds  # bench/, on sys.path as the script's directory

ROOT = Path(__file__).resolve().parents[1]
_MASK = re.compile(rb'"(requestId|access_token)":"[^"]*"|"expires_in":\d+')
TYPES = "1,2,6,7,8,9,10,11,12,104"
#: the connector's activity type groups (every type id, at most 10 per request)
GROUPS = ("1,2,6,7,8,9,10,11,12,13", "34,37,46,104")


def _client(settings: dict[str, Any], digest: Any | None = None) -> httpx.Client:
    client = httpx.Client(base_url=settings["base_url"], timeout=600)
    auth = client.get("/identity/oauth/token", params={"grant_type": "client_credentials",
                                                       "client_id": settings["client_id"],
                                                       "client_secret": settings["client_secret"]})
    if digest is not None:
        _seen(digest, auth)
    client.headers["Authorization"] = f"Bearer {auth.json()['access_token']}"
    return client


def _seen(digest: Any, resp: httpx.Response) -> Any:
    digest.update(str(resp.status_code).encode())
    for k, v in sorted(resp.headers.items()):
        if k.lower() != "date":
            digest.update(f"{k}:{v}\n".encode())
    digest.update(_MASK.sub(rb'"\1":""', resp.content))
    return orjson.loads(resp.content)


def read_activities(settings: dict[str, Any], records: int) -> int:
    """bench_sandbox.py's Marketo reader: activities of 10 types from 2000-01-01."""
    n = 0
    with contextlib.closing(_client(settings)) as c:
        token = c.get("/rest/v1/activities/pagingtoken.json",
                      params={"sinceDatetime": "2000-01-01T00:00:00Z"}).json()["nextPageToken"]
        while n < records:
            body = orjson.loads(c.get("/rest/v1/activities.json", params={
                "nextPageToken": token, "activityTypeIds": TYPES, "batchSize": "300"}).content)
            if not body["success"]:
                raise RuntimeError(body["errors"])
            n += len(body.get("result", []))
            token = body["nextPageToken"]
            if not body["moreResult"]:
                break
    return n


def read_wide(settings: dict[str, Any], digest: Any, programs_read: int) -> int:
    """Every endpoint the connector uses, each answer into ``digest``; returns records read."""
    n = 0
    with contextlib.closing(_client(settings, digest)) as c:
        def get(path: str, **params: Any) -> Any:
            return _seen(digest, c.get(path, params=params))

        get("/rest/v1/leads/describe2.json")
        get("/rest/v1/leads/describe.json")
        get("/rest/v1/activities/types.json")
        fields = [f["name"] for f in get("/rest/v1/leads/describe2.json")["result"][0]["fields"]]
        lead_ids: list[int] = []
        for since in ("2000-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-02T12:00:00Z"):
            for group in GROUPS:
                token = get("/rest/v1/activities/pagingtoken.json", sinceDatetime=since)["nextPageToken"]
                while True:
                    body = get("/rest/v1/activities.json", nextPageToken=token, activityTypeIds=group,
                               batchSize=300 if since.startswith("2000") else 97)
                    rows = body.get("result") or []
                    n += len(rows)
                    lead_ids.extend(r["leadId"] for r in rows[:3])
                    token = body["nextPageToken"]
                    if not body["moreResult"]:
                        break
                get("/rest/v1/activities.json", nextPageToken=token, activityTypeIds=group)  # the last token
            token = get("/rest/v1/activities/pagingtoken.json", sinceDatetime=since)["nextPageToken"]
            while True:
                body = get("/rest/v1/activities/deletedleads.json", nextPageToken=token, batchSize=50)
                n += len(body.get("result") or [])
                token = body["nextPageToken"]
                if not body["moreResult"]:
                    break
        ids = sorted(set(lead_ids))[:600]
        if ids:  # with leadIds (the members stream's chains) and a small batch
            token = get("/rest/v1/activities/pagingtoken.json", sinceDatetime="2000-01-01T00:00:00Z")["nextPageToken"]
            for _ in range(5):
                body = get("/rest/v1/activities.json", nextPageToken=token, activityTypeIds=GROUPS[0],
                           leadIds=",".join(map(str, ids[:40])), batchSize=37)
                token = body["nextPageToken"]
        for i in range(0, len(ids), 300):
            chunk = ",".join(map(str, ids[i:i + 300]))
            n += len(get("/rest/v1/leads.json", filterType="id", filterValues=chunk,
                         fields=",".join(fields), batchSize=300).get("result") or [])
            resp = c.post("/rest/v1/leads.json", params={"_method": "GET"},
                          data={"filterType": "id", "filterValues": chunk, "fields": ",".join(fields)})
            _seen(digest, resp)
        get("/rest/v1/leads.json", filterType="id", filterValues=",".join(map(str, ids[:50])), batchSize=7)
        emails = [r["email"] for r in get("/rest/v1/leads.json", filterType="id",
                                          filterValues=",".join(map(str, ids[:30])),
                                          fields="email").get("result") or [] if r.get("email")]
        if emails:
            get("/rest/v1/leads.json", filterType="email", filterValues=",".join(emails))
        for lead in ids[:20]:
            get(f"/rest/v1/lead/{lead}.json")
            get(f"/rest/v1/lead/{lead}.json", fields="email,leadScore,updatedAt")
        programs: list[int] = []
        offset = 0
        while True:
            body = get("/rest/asset/v1/programs.json", maxReturn=200, offset=offset)
            rows = body.get("result") or []
            programs.extend(int(p["id"]) for p in rows)
            if len(rows) < 200:
                break
            offset += 200
        get("/rest/asset/v1/programs.json", earliestUpdatedAt="2025-06-01T00:00:00Z",
            latestUpdatedAt="2026-01-02T00:00:00Z", maxReturn=50)
        chosen = programs if programs_read <= 0 else programs[:programs_read] + programs[-2:]
        for pid in dict.fromkeys(chosen):
            get(f"/rest/asset/v1/program/{pid}.json")
            members: list[int] = []
            token = None
            while True:
                params: dict[str, Any] = {"batchSize": 300}
                if token:
                    params["nextPageToken"] = token
                body = get(f"/rest/v1/programs/{pid}/members.json", **params)
                rows = body.get("result") or []
                n += len(rows)
                members.extend(r["leadId"] for r in rows)
                token = body.get("nextPageToken") if body.get("moreResult") else None
                if not token:
                    break
            get(f"/rest/v1/programs/{pid}/members.json", filterType="statusName", filterValues="Clicked,Opened")
            get(f"/rest/v1/programs/{pid}/members.json", filterType="reachedSuccess", filterValues="true")
            get(f"/rest/v1/programs/{pid}/members.json", filterType="leadId",
                filterValues=",".join(map(str, members[:20] + ids[:20])))
            get(f"/rest/v1/leads/programs/{pid}.json", batchSize=50, fields="email,leadStatus")
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--records", type=int, default=100_000, help="activities to read (timing)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--ticks", type=int, default=3, help="daily ticks after tick 0 (2026-01-01)")
    ap.add_argument("--hash", action="store_true", help="digest of every endpoint's answers (not timed)")
    ap.add_argument("--programs", type=int, default=0,
                    help="with --hash: read the members of only the first N programs (and the last 2)")
    ap.add_argument("--tree", action="append", type=Path, help="source tree to serve from (repeatable)")
    args = ap.parse_args()
    trees = args.tree or [ROOT]

    def read(info: dict[str, Any], digest: Any | None) -> int:
        settings = {**info["settings"], "base_url": info["base_url"]}
        if digest is not None:
            return read_wide(settings, digest, args.programs)
        return read_activities(settings, args.records)

    rows = run_rounds("marketo", trees, args.rounds, args.size, 7, args.ticks, args.hash, read)
    print_table(rows, __file__)


if __name__ == "__main__":
    main()
