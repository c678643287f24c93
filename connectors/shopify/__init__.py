"""Shopify GraphQL Admin API connector: orders with line items, and customers.

Hook implementations live here; HTTP, cost-based pacing, connections and bulk operations in
:mod:`connectors.shopify.helpers`, queries and constants in :mod:`connectors.shopify.settings`, the
sandbox emulator in :mod:`connectors.shopify.emulator`. Raw records are Shopify's own nodes; an
order's ``lineItems.nodes`` holds every line item whichever path read it.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from connectors.shopify import settings as S
from core.connector import Connector, ConnectorConfig, ConnectorSpec, Setting, StreamSpec
from core.hookspecs import hookimpl

__all__ = ["connector_spec", "register_connectors", "register_emulators", "register_transforms"]


def _mappings_dir() -> Path:
    return Path(str(files("mappings") / "shopify"))


def _factory(config: ConnectorConfig) -> Connector:
    from connectors.shopify.helpers import ShopifyConnector

    return ShopifyConnector(config)


def connector_spec() -> ConnectorSpec:
    return ConnectorSpec(
        name="shopify",
        system="shopify",
        streams=(
            StreamSpec("customers", primary_key="id", cursor_field="updatedAt", incremental=True,
                       mappings=("customers.yaml",), description="Shopify customers -> person"),
            StreamSpec("orders", primary_key="id", cursor_field="updatedAt", incremental=True,
                       mappings=("orders.yaml", "order_lines.yaml"),
                       description="Shopify orders -> order, their line items -> order_line"),
        ),
        factory=_factory,
        settings=(
            Setting("access_token", secret=True, required=True,
                    description="Admin API access token (scopes read_orders, read_all_orders, read_customers)"),
            Setting("shop", description="the shop's myshopify domain, e.g. acme.myshopify.com"),
            Setting("base_url", description="API base URL; default https://{shop} (the sandbox sets its own)"),
            Setting("api_version", default=S.API_VERSION, description="Admin API version"),
            Setting("instance", default="default", description="shop name, stamped on every row"),
            Setting("page_size", default=S.DEFAULT_PAGE_SIZE,
                    description="records per connection page (max 250; lowered to stay under 1,000 cost points)"),
            Setting("line_items_page", default=S.LINE_ITEMS_PAGE,
                    description="line items read with each order; an order with more costs extra order(id:) queries"),
            Setting("pace", default=True,
                    description="wait for the cost bucket (extensions.cost.throttleStatus) instead of being THROTTLED"),
            Setting("bulk", default=True,
                    description="backfill through bulk operations (first run, full refresh, long windows)"),
            Setting("bulk_window_days", default=S.DEFAULT_BULK_WINDOW_DAYS,
                    description="an incremental window longer than this is read by a bulk operation"),
            Setting("bulk_page_records", default=S.DEFAULT_BULK_PAGE_RECORDS,
                    description="records per page read from a bulk result file"),
            Setting("bulk_poll_seconds", default=S.DEFAULT_BULK_POLL_SECONDS,
                    description="first wait between bulk operation status polls (grows to bulk_poll_max_seconds)"),
            Setting("bulk_poll_max_seconds", default=S.DEFAULT_BULK_POLL_MAX_SECONDS,
                    description="longest wait between bulk operation status polls"),
            Setting("bulk_timeout_seconds", default=S.DEFAULT_BULK_TIMEOUT_SECONDS,
                    description="give up waiting for a bulk operation after this long (the next run resumes it)"),
        ),
        mappings_dir=_mappings_dir(),
        description="Shopify GraphQL Admin API through httpx (connections, cost pacing, bulk operations)",
    )


@hookimpl
def register_connectors(register: Callable[..., None]) -> None:
    """Register the Shopify connector."""
    register(connector_spec())


@hookimpl
def register_transforms(register: Callable[..., None]) -> None:
    """Register shopify_utm."""
    from connectors.shopify.transforms import SHOPIFY_TRANSFORMS

    for spec in SHOPIFY_TRANSFORMS:
        register(spec)


@hookimpl
def register_emulators(register: Callable[..., None]) -> None:
    """Register the local Shopify emulator (skipped quietly when the sandbox is not installed)."""
    try:
        from connectors.shopify.emulator import emulator_spec
    except ImportError:
        return
    register(emulator_spec())
