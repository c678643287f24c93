"""Mailchimp Marketing API 3.0 connector: lists, members, campaigns and email activity (httpx).

Hook implementations live here; HTTP and pagination in :mod:`connectors.mailchimp.helpers`,
constants in :mod:`connectors.mailchimp.settings`, the sandbox emulator in
:mod:`connectors.mailchimp.emulator`.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from connectors.mailchimp import settings as S
from core.connector import Connector, ConnectorConfig, ConnectorSpec, Setting, StreamSpec
from core.hookspecs import hookimpl

__all__ = ["connector_spec", "register_connectors", "register_emulators"]


def _mappings_dir() -> Path:
    return Path(str(files("mappings") / "mailchimp"))


def _factory(config: ConnectorConfig) -> Connector:
    from connectors.mailchimp.helpers import MailchimpConnector

    return MailchimpConnector(config)


def connector_spec() -> ConnectorSpec:
    return ConnectorSpec(
        name="mailchimp",
        system="mailchimp",
        streams=(
            StreamSpec("lists", primary_key="id", description="Mailchimp audiences (raw only)"),
            StreamSpec("campaigns", primary_key="id", mappings=("campaigns.yaml",),
                       description="Mailchimp campaigns -> campaign (channel email)"),
            StreamSpec("members", primary_key="id", cursor_field="last_changed", incremental=True,
                       mappings=("members.yaml",),
                       description="audience members (subscriber hash ids, status kept) -> person"),
            StreamSpec("email_activity", primary_key="_key", cursor_field="activity.0.timestamp", incremental=True,
                       mappings=("email_activity.yaml",),
                       description="campaign email activity (open, click, bounce) -> touch, since each "
                                   "campaign's cursor"),
        ),
        factory=_factory,
        settings=(
            Setting("api_key", secret=True, required=True,
                    description="Mailchimp API key, with its data-centre suffix (e.g. ...-us21)"),
            Setting("api_root", description="API root URL; default https://<dc>.api.mailchimp.com/3.0"),
            Setting("base_url", description="server URL without /3.0 (the sandbox sets it)"),
            Setting("server", description="data centre (us21); default: the key's suffix"),
            Setting("list_id", description="audience id(s), comma-separated; default: every audience"),
            Setting("instance", default="default", description="account name, stamped on every row"),
            Setting("page_size", default=S.DEFAULT_PAGE_SIZE, description="records per request (max 1000)"),
            Setting("concurrency", default=S.DEFAULT_CONCURRENCY,
                    description="simultaneous connections (capped at Mailchimp's limit of 10)"),
            Setting("lookback_seconds", default=S.DEFAULT_LOOKBACK_SECONDS,
                    description="incremental runs re-read changes this far before the stored cursor"),
        ),
        mappings_dir=_mappings_dir(),
        description="Mailchimp Marketing API 3.0 through httpx",
    )


@hookimpl
def register_connectors(register: Callable[..., None]) -> None:
    """Register the Mailchimp connector."""
    register(connector_spec())


@hookimpl
def register_emulators(register: Callable[..., None]) -> None:
    """Register the local Mailchimp emulator (skipped quietly when the sandbox is not installed)."""
    try:
        from connectors.mailchimp.emulator import emulator_spec
    except ImportError:
        return
    register(emulator_spec())
