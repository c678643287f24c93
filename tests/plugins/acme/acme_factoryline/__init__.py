"""A third-party connector: ACME CRM's people, served from memory.

It lives outside the factoryline repository's packages and registers through the
``factoryline`` entry-point group only, like any plugin a user would pip-install.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from core.connector import ConnectorConfig, ConnectorSpec, Page, RunContext, Setting, StreamSpec
from core.hookspecs import hookimpl

PEOPLE = [
    {"pid": "p1", "mail": " Ada@Example.COM ", "given": "Ada", "changed": "2026-01-02T10:00:00Z", "tier": "gold"},
    {"pid": "p2", "mail": "grace@example.com", "given": "Grace", "changed": "2026-01-03T10:00:00Z", "tier": None},
    {"pid": None, "mail": "nobody@example.com", "given": "No Id", "changed": "2026-01-04T10:00:00Z"},
    {"pid": "p3", "mail": "linus@example.com", "given": "Linus", "changed": "not a date"},
]


#: a later page repeats v2 with a newer value, as a record changed while the run pages through
VISITS = [
    [{"vid": "v1", "who": "p1", "at": "2026-02-01T09:00:00Z", "page": "/pricing"},
     {"vid": "v2", "who": "p2", "at": "2026-02-01T10:00:00Z", "page": "/docs"}],
    [{"vid": "v2", "who": "p2", "at": "2026-02-01T10:00:00Z", "page": "/docs/updated"},
     {"vid": "v3", "who": "p1", "at": "2026-02-02T11:00:00Z", "page": "/signup"}],
    [{"vid": "v4", "who": "p3", "at": "2026-02-03T12:00:00Z", "page": "/blog"}],
]


class AcmeConnector:
    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config

    def extract(self, stream: StreamSpec, state: Mapping[str, Any], ctx: RunContext) -> Iterator[Page]:
        if stream.name == "visits":
            for i, page in enumerate(VISITS, 1):
                yield Page(records=page, state={"pages": i})
            return
        yield Page(records=PEOPLE[:2], state={"pages": 1})
        yield Page(records=PEOPLE[2:], state={"pages": 2, "cursor": ctx.started_at.isoformat()})

    def close(self) -> None:
        pass


@hookimpl
def run_finished(status):  # type: ignore[no-untyped-def]
    # tests read what a scheduler-side plugin would receive
    path = os.environ.get("ACME_STATUS_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(status) + "\n")


@hookimpl
def register_connectors(register):  # type: ignore[no-untyped-def]
    register(ConnectorSpec(
        name="acme",
        system="acme",
        streams=(StreamSpec(name="people", primary_key="pid", cursor_field="changed", incremental=True,
                            mappings=("people.yaml",)),
                 StreamSpec(name="visits", primary_key="vid", mappings=("visits.yaml",))),
        factory=AcmeConnector,
        settings=(Setting("api_key", secret=True, required=True, description="ACME API key"),),
        mappings_dir=Path(__file__).parent / "mappings",
        description="ACME CRM (test plugin)",
    ))
