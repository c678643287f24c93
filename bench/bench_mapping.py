"""Mapping throughput: 100,000 HubSpot-shaped contacts (30 string properties, ~15 mapped), 100 per page.

    /work/venv/bin/python bench/bench_mapping.py [N]

Prints records/s for ``CompiledMapping.map_page`` alone (records already parsed), best/median/worst
of 5 passes (the machine is shared; the best pass is the least disturbed one).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.mapping import load_mapping  # noqa: E402
from core.transforms import BUILTIN_TRANSFORMS  # noqa: E402

MAPPING = """\
entity: person
source_object: contacts
record_id: id
updated_at: {path: updatedAt, transform: timestamp}
deleted: {path: archived, transform: boolean}
deleted_at: {path: archivedAt, transform: timestamp}
fields:
  email: {path: properties.email, transform: email}
  first_name: properties.firstname
  last_name: properties.lastname
  phone: properties.phone
  job_title: properties.jobtitle
  company_name: {transform: coalesce, paths: [properties.company, properties.associatedcompanyname]}
  owner_id: properties.hubspot_owner_id
  lifecycle_stage:
    path: properties.lifecyclestage
    transform: enum
    table: {subscriber: subscriber, lead: lead, marketingqualifiedlead: mql, salesqualifiedlead: sql,
            opportunity: opportunity, customer: customer, evangelist: evangelist, other: other}
    default: other
  lead_status: properties.hs_lead_status
  lead_source: properties.hs_analytics_source
  city: properties.city
  region: properties.state
  country: properties.country
  created_at: {path: properties.createdate, transform: timestamp}
  account_id: {path: properties.associatedcompanyid, transform: ref, object: companies}
ignore: [properties.hs_object_id]
"""

REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
STAGES = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer"]


def contact(i: int) -> dict:
    props = {
        "email": f"  Person{i}@Example{i % 97}.com ",
        "firstname": f"First{i}", "lastname": f"Last{i}", "phone": f"+1 555 {i:07d}",
        "jobtitle": "Marketing Manager", "company": "" if i % 3 else f"Company {i % 500}",
        "associatedcompanyname": f"Acme {i % 500}", "hubspot_owner_id": str(1000 + i % 20),
        "lifecyclestage": STAGES[i % len(STAGES)], "hs_lead_status": "OPEN",
        "hs_analytics_source": "ORGANIC_SEARCH", "city": "Berlin", "state": "BE", "country": "DE",
        "createdate": "2024-03-01T10:11:12.345Z", "associatedcompanyid": str(5000 + i % 500),
        "hs_object_id": str(i), "lastmodifieddate": "2024-05-01T10:11:12.345Z",
    }
    for k in range(30 - len(props)):
        props[f"custom_prop_{k}"] = f"value {k} {i}" if k % 4 else None
    return {"id": str(i), "properties": props, "createdAt": "2024-03-01T10:11:12.345Z",
            "updatedAt": "2024-05-01T10:11:12.345Z", "archived": False}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    records = [contact(i) for i in range(n)]
    pages = [records[i:i + 100] for i in range(0, n, 100)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "contacts.yaml"
        path.write_text(MAPPING)
        spec = load_mapping(path, {t.name: t for t in BUILTIN_TRANSFORMS})
    compiled = spec.compile(system="hubspot", instance="bench", stream="contacts", raw_table="hubspot__contacts")
    now = datetime.now(UTC)
    compiled.map_page(pages[0], run_id="warmup", extracted_at=now)
    times = []
    for _ in range(REPEAT):
        rows = rejects = 0
        t0 = time.perf_counter()
        for page in pages:
            out = compiled.map_page(page, run_id="bench", extracted_at=now)
            rows += out.rows.num_rows
            rejects += out.rejects.num_rows
        times.append(time.perf_counter() - t0)
    rates = sorted(n / t for t in times)
    print(f"mapped {n:,} records x {REPEAT} passes ({rows:,} rows, {rejects:,} rejects, {len(spec.fields)} "
          f"mapped fields, page size 100): best {rates[-1]:,.0f} records/s, "
          f"median {rates[len(rates) // 2]:,.0f} records/s, worst {rates[0]:,.0f} records/s")

if __name__ == "__main__":
    main()
