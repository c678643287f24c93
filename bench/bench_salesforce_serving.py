"""Server memory and first-answer latency of the Salesforce emulator on the connector's own query shapes.

    /work/venv/bin/python bench/bench_salesforce_serving.py [--sizes 100000,1000000] [--object Lead[,Task,...]]
        [--records 20000] [--seed 7] [--advance 3]

``bench_sandbox.py --vendor salesforce`` reads ``SELECT ... FROM Lead`` (no WHERE, no ORDER BY);
the connector's first run of an object sends, over the window ``SystemModstamp < upper``:
``SELECT COUNT()``, then ``SELECT <all fields> ... ORDER BY SystemModstamp ASC, Id ASC`` (REST,
paged with ``nextRecordsUrl``) or, above its bulk threshold, a Bulk API 2.0 job over the same
window (CSV results paged with ``maxRecords``). For each size a fresh server process starts and
each shape runs once, in that order; a row per shape gives its first answer's latency (the whole
scan happens there), the records read (up to ``--records``), the server's CPU seconds for the
shape and its peak RSS so far. The first shape pays the scan of the object; the others, at the
same tick, reuse what it learned (the per-tick people stamps). Several objects (``--object
Lead,CampaignMember,Task,Event``, the connector's order) are read in a row from the same server:
later ones reuse what earlier scans learned (the people digest, the journeys walked).

``--hashes SIZE --ticks N`` instead prints a hash of every answer (status, headers, body; the
instance URL, Date and the bulk job's wall-clock times masked) to every query shape the connector
sends, on every object, in a world of SIZE people with N ticks an hour apart from a fixed time:
run it in two trees (``git archive <commit> | tar -x -C /tmp/old``) and diff the outputs to prove
a change keeps the answers byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox import start_sandbox
from sandbox.world import format_ms

T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z
HOUR = 3_600_000
OBJECTS = ("Account", "Campaign", "CampaignMember", "Contact", "Event", "Lead", "Opportunity",
           "OpportunityContactRole", "Task", "User")


def _shapes(c: httpx.Client, base: str, obj: str, upper: str, records: int) -> Iterator[tuple[str, float, int]]:
    """(shape, first answer seconds, records read), each once it has run."""
    names = [f["name"] for f in c.get(f"{base}/sobjects/{obj}/describe").json()["fields"] if f["type"] != "address"]
    window = f" WHERE SystemModstamp < {upper}"

    started = time.perf_counter()
    r = c.get(f"{base}/query", params={"q": f"SELECT COUNT() FROM {obj}{window}"})
    r.raise_for_status()
    yield "COUNT() window", time.perf_counter() - started, int(r.json()["totalSize"])

    started = time.perf_counter()
    r = c.get(f"{base}/query", params={"q": f"SELECT {', '.join(names)} FROM {obj}{window} "
                                            "ORDER BY SystemModstamp ASC, Id ASC"})
    first = time.perf_counter() - started
    n = 0
    while True:
        r.raise_for_status()
        body = orjson.loads(r.content)
        n += len(body["records"])
        if n >= records or body.get("done", True):
            break
        r = c.get(body["nextRecordsUrl"])
    yield "REST ORDER BY stamp", first, n

    started = time.perf_counter()
    job = c.post(f"{base}/jobs/query", json={"operation": "query",
                                             "query": f"SELECT {', '.join(names)} FROM {obj}{window}"}).json()
    while c.get(f"{base}/jobs/query/{job['id']}").json()["state"] != "JobComplete":
        pass
    r = c.get(f"{base}/jobs/query/{job['id']}/results", params={"maxRecords": str(records)})
    r.raise_for_status()
    yield "bulk job + results", time.perf_counter() - started, int(r.headers["sforce-numberofrecords"])


def _soql_dt(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def _hash(body: bytes, *parts: Any) -> str:
    body = re.sub(rb"https://[^/\"]+", b"https://HOST", body)  # the TLS front's port
    return hashlib.sha256(repr(parts).encode() + body).hexdigest()[:16]


def hashes(size: int, ticks: int) -> dict[str, str]:
    """Shape name -> hash of its answer (see the module docstring)."""
    state = Path(tempfile.mkdtemp())
    (state / "world.json").write_text(json.dumps({"seed": 7, "size": size, "grow": False, "ticks": [
        format_ms(T0 + k * HOUR) for k in range(ticks + 1)]}))
    out: dict[str, str] = {}

    def rec(name: str, r: httpx.Response) -> Any:
        body = r.content
        data = r.json() if r.headers.get("content-type", "").startswith("application/json") and body else None
        if isinstance(data, dict):
            body = orjson.dumps({k: v for k, v in data.items() if k not in ("createdDate", "systemModstamp")},
                                option=orjson.OPT_SORT_KEYS)
        heads = sorted((k, v) for k, v in r.headers.items() if k.lower() not in ("date", "content-length", "server"))
        out[name] = _hash(body, r.status_code, heads)
        return data

    with start_sandbox(["salesforce"], size=size, seed=7, state_dir=state, in_process=True) as sb:
        st = sb.emulators["salesforce"].settings
        base = f"/services/data/v{st['api_version']}"
        upper = _soql_dt(T0 + (ticks + 1) * HOUR)
        lower = _soql_dt(T0 + HOUR // 2) if ticks else _soql_dt(T0 - 120 * 86_400_000)
        windows = (f" WHERE SystemModstamp < {upper}", f" WHERE SystemModstamp >= {lower} AND SystemModstamp < {upper}")
        order = " ORDER BY SystemModstamp ASC, Id ASC"
        with httpx.Client(base_url=st["plain_url"], timeout=600,
                          headers={"Authorization": f"Bearer {st['session_id']}"}) as c:
            rec("global", c.get(f"{base}/sobjects"))
            for o in OBJECTS:
                names = [f["name"] for f in rec(f"{o}/describe", c.get(f"{base}/sobjects/{o}/describe"))["fields"]
                         if f["type"] != "address"]
                cols = ", ".join(names)

                def query(tag: str, soql: str, kind: str = "query", batch: int | None = None, o: str = o) -> Any:
                    hdr = {"Sforce-Query-Options": f"batchSize={batch}"} if batch else {}
                    body, n = rec(f"{o}/{tag}/0", c.get(f"{base}/{kind}", params={"q": soql}, headers=hdr)), 1
                    first = body
                    while isinstance(body, dict) and not body.get("done", True):
                        body, n = rec(f"{o}/{tag}/{n}", c.get(body["nextRecordsUrl"])), n + 1
                    return first

                for w in (*windows, ""):
                    query(f"count{w}", f"SELECT COUNT() FROM {o}{w}")
                    query(f"rest{w}", f"SELECT {cols} FROM {o}{w}{order}")
                recs = query("stamps", f"SELECT Id, SystemModstamp FROM {o}{windows[0]}{order}").get("records") or []
                if recs:  # the connector's resume after an interrupted timestamp
                    mid = recs[len(recs) // 2]
                    lit = mid["SystemModstamp"][:19] + "Z"
                    query("resume1", f"SELECT {cols} FROM {o} WHERE SystemModstamp = {lit} AND Id > '{mid['Id']}' "
                                     f"AND SystemModstamp < {upper}{order}")
                    query("resume2", f"SELECT {cols} FROM {o} WHERE SystemModstamp > {lit} AND SystemModstamp < "
                                     f"{upper}{order}")
                    query("idin", f"SELECT {cols} FROM {o} WHERE Id IN ('{recs[0]['Id']}', '{mid['Id']}')")
                query("byid", f"SELECT {cols} FROM {o} ORDER BY Id ASC", batch=500)
                query("plain", f"SELECT {cols} FROM {o}")
                query("all", f"SELECT {cols} FROM {o}{windows[0]} ORDER BY SystemModstamp DESC, Id DESC", "queryAll")
                query("deleted", f"SELECT Id, IsDeleted FROM {o} WHERE IsDeleted = true", "queryAll")
                if "Name" in names:
                    query("rows", f"SELECT Id, Name FROM {o} ORDER BY Name DESC NULLS LAST, Id ASC LIMIT 3000 OFFSET 5")
                query("limit", f"SELECT Id FROM {o} ORDER BY SystemModstamp DESC LIMIT 2500 OFFSET 7")
                query("countlimit", f"SELECT COUNT() FROM {o}{windows[0]} LIMIT 10")
                for w in windows:
                    job = rec(f"{o}/job{w}", c.post(f"{base}/jobs/query", json={
                        "operation": "query", "query": f"SELECT {cols} FROM {o}{w}"}))
                    for k in range(3):
                        rec(f"{o}/jobget{w}/{k}", c.get(f"{base}/jobs/query/{job['id']}"))
                    locator, k = "", 0
                    while True:
                        params = {"maxRecords": "3000", **({"locator": locator} if locator else {})}
                        r = c.get(f"{base}/jobs/query/{job['id']}/results", params=params)
                        rec(f"{o}/jobresults{w}/{k}", r)
                        locator, k = r.headers.get("sforce-locator", "null"), k + 1
                        if locator == "null" or r.status_code != 200:
                            break
                subs = [{"method": "GET", "url": f"{base}/sobjects/{o}/describe", "referenceId": "d"},
                        {"method": "GET", "url": f"{base}/query?" + str(httpx.QueryParams(
                            {"q": f"SELECT {cols} FROM {o}{windows[0]}{order}"})), "referenceId": "q"}]
                body = rec(f"{o}/composite", c.post(f"{base}/composite", json={"compositeRequest": subs}))
                nxt = body["compositeResponse"][1]["body"].get("nextRecordsUrl")
                if nxt:
                    rec(f"{o}/composite-more", c.post(f"{base}/composite", json={
                        "compositeRequest": [{"method": "GET", "url": nxt, "referenceId": "m"}]}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--object", default="Lead")
    parser.add_argument("--records", type=int, default=20_000, help="records read per shape")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--advance", type=int, default=3)
    parser.add_argument("--hashes", type=int, metavar="SIZE", help="print the answers' hashes instead")
    parser.add_argument("--ticks", type=int, default=0, help="with --hashes: ticks after the first")
    args = parser.parse_args()
    if args.hashes:
        found = hashes(args.hashes, args.ticks)
        for name, h in found.items():
            print(h, name)
        print(hashlib.sha256(repr(sorted(found.items())).encode()).hexdigest()[:16], f"all {len(found)} answers")
        return
    print(f"{'size':>9} {'object':<15} {'shape':<22} {'first answer':>12} {'records':>9} {'server CPU':>10} "
          f"{'peak RSS':>9}")
    for size in (int(s) for s in args.sizes.split(",")):
        with start_sandbox(["salesforce"], size=size, seed=args.seed) as sb:
            if args.advance:
                sb.advance(args.advance)
            st = sb.emulators["salesforce"].settings
            upper = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
            with httpx.Client(base_url=st["plain_url"], timeout=600,
                              headers={"Authorization": f"Bearer {st['session_id']}"}) as c:
                base = f"/services/data/v{st['api_version']}"
                cpu = sb.stats("salesforce")["cpu_seconds"]
                for obj in args.object.split(","):
                    for shape, seconds, n in _shapes(c, base, obj, upper, args.records):
                        stats = sb.stats("salesforce")
                        print(f"{size:>9,} {obj:<15} {shape:<22} {seconds * 1000:>10.0f}ms {n:>9,} "
                              f"{stats['cpu_seconds'] - cpu:>9.1f}s {stats['peak_rss_mb']:>6.0f} MB", flush=True)
                        cpu = stats["cpu_seconds"]
    print(f"\n(reproduce: /work/venv/bin/python bench/bench_salesforce_serving.py --sizes {args.sizes} "
          f"--object {args.object} --records {args.records} --seed {args.seed} --advance {args.advance})")


if __name__ == "__main__":
    main()
