"""The HubSpot emulator's fast paths answer what its general paths answer.

The v4 association batch from contacts to companies (the one every contacts page of the connector
costs) has its own loop; the single-record v4 read goes through the general one. Both must give the
same companies, the same association types and the same "no association" cases, including archived
companies (which appear only after the world has advanced).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox import Sandbox, start_sandbox

SIZE = 300


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with start_sandbox(["hubspot"], size=SIZE, seed=7, in_process=True) as sb:
        settings = sb.emulators["hubspot"].settings
        with httpx.Client(base_url=settings["base_url"], timeout=30,
                          headers={"authorization": f"Bearer {settings['access_token']}"}) as c:
            _advance_until_a_company_is_archived(sb, c)
            yield c


def _advance_until_a_company_is_archived(sb: Sandbox, c: httpx.Client) -> None:
    for _ in range(200):
        if c.get("/crm/v3/objects/companies", params={"archived": "true", "limit": 1}).json()["results"]:
            return
        sb.advance(5)
    raise AssertionError("no company archived after 1000 ticks")


def test_contact_company_batch_equals_single_reads(client: httpx.Client) -> None:
    ids = [str(1000 + i) for i in range(SIZE)] + ["999", "abc", str(1000 + SIZE)]
    resp = client.post("/crm/v4/associations/contacts/companies/batch/read", json={"inputs": [{"id": x} for x in ids]})
    assert resp.status_code == 207
    body = resp.json()
    batch = {r["from"]["id"]: r["to"] for r in body["results"]}
    missing = {e["context"]["fromObjectId"][0] for e in body["errors"]}
    assert body["numErrors"] == len(missing) and not missing & batch.keys()
    assert {"999", "abc", str(1000 + SIZE)} <= missing
    archived = {str(r["id"]) for r in client.get("/crm/v3/objects/companies",
                                                 params={"archived": "true", "limit": 100}).json()["results"]}
    labelled = skipped_archived = 0
    for x in ids[:SIZE]:
        single = client.get(f"/crm/v4/objects/contacts/{x}/associations/companies")
        assert single.status_code == 200
        rows = single.json()["results"]
        if not rows:
            assert x in missing
            contact = client.get(f"/crm/v3/objects/contacts/{x}", params={"properties": "associatedcompanyid"})
            if contact.status_code == 404:  # an archived contact
                contact = client.get(f"/crm/v3/objects/contacts/{x}",
                                     params={"properties": "associatedcompanyid", "archived": "true"})
            skipped_archived += contact.json()["properties"]["associatedcompanyid"] in archived
            continue
        assert batch[x] == rows
        labelled += any(t["label"] == "Decision maker" for t in rows[0]["associationTypes"])
    assert labelled > 0  # the user-defined label (~1 contact in 8) went through both paths
    assert skipped_archived > 0  # a contact of an archived company has no association in either
