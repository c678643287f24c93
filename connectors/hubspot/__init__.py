"""HubSpot connector: CRM objects (contacts, companies, deals, line items, engagements) incremental
with v4 association edges; owners and deal pipelines; marketing email events, form submissions and
marketing emails.

Hook implementations live here; HTTP and pagination in :mod:`connectors.hubspot.helpers`,
endpoint constants in :mod:`connectors.hubspot.settings`. Raw records are HubSpot's own, with one
enrichment documented in helpers: ``record["associations"]`` holds the v4 association items.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from connectors.hubspot import settings as S
from core.connector import Connector, ConnectorConfig, ConnectorSpec, Setting, SideTable, StreamSpec
from core.hookspecs import hookimpl

__all__ = ["connector_spec", "register_connectors", "register_emulators", "register_transforms"]

ASSOCIATIONS_TABLE = SideTable("associations", ("from_type", "from_id", "to_type", "to_id", "type_id"))


def _mappings_dir() -> Path:
    return Path(str(files("mappings") / "hubspot"))


def _factory(config: ConnectorConfig) -> Connector:
    from connectors.hubspot.helpers import HubSpotConnector

    return HubSpotConnector(config)


def _stream(name: str, entity: str, mapping: str | None) -> StreamSpec:
    return StreamSpec(
        name=name, primary_key="id", write_disposition="merge", cursor_field="updatedAt", incremental=True,
        mappings=(mapping,) if mapping else (),
        side_tables=(ASSOCIATIONS_TABLE,) if S.ASSOCIATIONS[name] else (),
        description=f"HubSpot CRM {name} (all properties, custom included) -> {entity}")


_ENGAGEMENT_TOUCH = {"calls": "call", "emails": "sales_email", "meetings": "meeting", "notes": "note",
                     "tasks": "task"}


def connector_spec() -> ConnectorSpec:
    return ConnectorSpec(
        name="hubspot",
        system="hubspot",
        streams=(
            _stream("contacts", "person", "contacts.yaml"),
            _stream("companies", "account", "companies.yaml"),
            _stream("deals", "opportunity", "deals.yaml"),
            _stream("line_items", "raw only (deal products)", None),
            *(_stream(e, f"touch ({t}, sales activity)", f"{e}.yaml") for e, t in _ENGAGEMENT_TOUCH.items()),
            StreamSpec(name="owners", primary_key="id", write_disposition="replace",
                       description="HubSpot owners (users who own records), active and archived; raw only"),
            StreamSpec(name="deal_pipelines", primary_key="id", write_disposition="replace",
                       description="Deal pipelines with their stages (isClosed, probability); raw only, "
                                   "and each deal carries its stage's classification"),
            StreamSpec(name="email_events", primary_key="id", write_disposition="merge", cursor_field="created",
                       incremental=True, mappings=("email_events.yaml",),
                       description="Marketing email events (legacy v1: SENT, DELIVERED, OPEN, CLICK, BOUNCE, "
                                   "UNSUBSCRIBE, ...) -> touch"),
            StreamSpec(name="form_submissions", primary_key="conversionId", write_disposition="merge",
                       cursor_field="submittedAt", incremental=True, mappings=("form_submissions.yaml",),
                       description="Form submissions of every form -> touch (form_submission)"),
            StreamSpec(name="marketing_emails", primary_key="id", write_disposition="merge",
                       mappings=("marketing_emails.yaml",),
                       description="Marketing emails (one per email campaign) -> campaign"),
        ),
        factory=_factory,
        settings=(
            Setting("access_token", secret=True, required=True,
                    description="private-app or OAuth access token (scopes crm.objects.*.read, crm.schemas.*.read)"),
            Setting("base_url", default=S.DEFAULT_BASE_URL, description="API base URL (the sandbox sets its own)"),
            Setting("instance", default="default", description="portal name or id, stamped on every row"),
            Setting("page_size", default=S.DEFAULT_PAGE_SIZE, description="records per list page (max 100)"),
            Setting("lookback_seconds", default=S.DEFAULT_LOOKBACK_SECONDS,
                    description="incremental runs re-read changes this far before the stored cursor"),
            Setting("properties_url_budget", default=S.DEFAULT_PROPERTIES_URL_BUDGET,
                    description="max characters of properties in a list URL; beyond it, batch/read is used"),
            Setting("association_batch", default=S.ASSOCIATION_BATCH_LIMIT,
                    description="records per yielded page, each costing one v4 associations call (max 1000)"),
            Setting("pace", default=True,
                    description="stay below the X-HubSpot-RateLimit-* limits the responses report"),
            Setting("search_requests_per_second", default=S.DEFAULT_SEARCH_REQUESTS_PER_SECOND,
                    description="pace of search requests (HubSpot allows about 5/s); 0 disables"),
            Setting("requests_per_ten_seconds", default=S.DEFAULT_REQUESTS_PER_TEN_SECONDS,
                    description="request budget until the first X-HubSpot-RateLimit-* headers arrive "
                                "(HubSpot publishes 100 for Free/Starter, 190 for Professional/Enterprise)"),
            Setting("daily_reserve", default=0,
                    description="stop (run partial) when X-HubSpot-RateLimit-Daily-Remaining falls to this "
                                "many requests, leaving them to other integrations"),
            Setting("association_refresh_seconds", default=86_400,
                    description="incremental runs re-read every record's associations when the last full "
                                "read is older than this (associations change without touching the record)"),
        ),
        mappings_dir=_mappings_dir(),
        description="HubSpot CRM v3/v4 through hubspot-api-client",
    )


@hookimpl
def register_connectors(register: Callable[..., None]) -> None:
    """Register the HubSpot connector."""
    register(connector_spec())


@hookimpl
def register_transforms(register: Callable[..., None]) -> None:
    """Register hubspot_primary_association."""
    from connectors.hubspot.transforms import HUBSPOT_TRANSFORMS

    for spec in HUBSPOT_TRANSFORMS:
        register(spec)


@hookimpl
def register_emulators(register: Callable[..., None]) -> None:
    """Register the local HubSpot emulator (skipped quietly when the sandbox is not installed)."""
    try:
        from connectors.hubspot.emulator import emulator_spec
    except ImportError:
        return
    register(emulator_spec())
