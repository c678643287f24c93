"""HubSpot CRM connector: contacts, companies and deals, incremental, with v4 association edges.

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


def _stream(name: str, entity: str, mapping: str) -> StreamSpec:
    return StreamSpec(
        name=name, primary_key="id", write_disposition="merge", cursor_field="updatedAt", incremental=True,
        mappings=(mapping,),
        side_tables=(ASSOCIATIONS_TABLE,) if S.ASSOCIATIONS[name] else (),
        description=f"HubSpot CRM {name} (all properties, custom included) -> {entity}")


def connector_spec() -> ConnectorSpec:
    return ConnectorSpec(
        name="hubspot",
        system="hubspot",
        streams=(
            _stream("contacts", "person", "contacts.yaml"),
            _stream("companies", "account", "companies.yaml"),
            _stream("deals", "opportunity", "deals.yaml"),
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
