"""Marketo Engage (REST) connector: leads, activity types, activities, programs, program members.

Hook implementations live here; auth, HTTP and paging in :mod:`connectors.marketo.helpers`,
paths and limits in :mod:`connectors.marketo.settings`, the sandbox emulator in
:mod:`connectors.marketo.emulator`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import pyarrow as pa

from connectors.marketo import settings as S
from core.connector import Connector, ConnectorConfig, ConnectorSpec, Setting, StreamSpec
from core.hookspecs import hookimpl
from core.transforms import TransformContext, TransformError, TransformSpec

__all__ = ["connector_spec", "register_connectors", "register_emulators", "register_transforms"]


def _mappings_dir() -> Path:
    return Path(str(files("mappings") / "marketo"))


def _factory(config: ConnectorConfig) -> Connector:
    from connectors.marketo.helpers import MarketoConnector

    return MarketoConnector(config)


def connector_spec() -> ConnectorSpec:
    return ConnectorSpec(
        name="marketo",
        system="marketo",
        streams=(
            StreamSpec("activity_types", primary_key="id", write_disposition="merge",
                       description="Marketo activity types (raw only: names and attributes of each type id)"),
            StreamSpec("leads", primary_key="id", cursor_field="updatedAt", incremental=True,
                       mappings=("leads.yaml",),
                       description="Leads with every described field; changes found through the activity log"),
            StreamSpec("programs", primary_key="id", cursor_field="updatedAt", incremental=True,
                       mappings=("programs.yaml",), description="Programs (Asset API) -> campaign"),
            StreamSpec("activities", primary_key="marketoGUID", cursor_field="activityDate", incremental=True,
                       mappings=("activities.yaml",),
                       description="Every activity type through paging tokens -> touch"),
            StreamSpec("program_members", primary_key="memberKey", write_disposition="merge",
                       mappings=("program_members.yaml",),
                       description="Program members with status and success -> campaign_membership"),
        ),
        factory=_factory,
        settings=(
            Setting("client_id", secret=True, required=True, description="LaunchPoint API-only user client id"),
            Setting("client_secret", secret=True, required=True, description="its client secret"),
            Setting("identity_url", required=True, description="https://<munchkin>.mktorest.com/identity"),
            Setting("endpoint", required=True, description="https://<munchkin>.mktorest.com/rest"),
            Setting("munchkin_id", description="instance id (informational)"),
            Setting("instance", default="default", description="instance name, stamped on every row"),
            Setting("batch_size", default=S.MAX_BATCH, description="records per page (max 300)"),
            Setting("since", default=S.DEFAULT_SINCE,
                    description="where the first run's activity paging tokens start (ISO 8601)"),
            Setting("lookback_seconds", default=300,
                    description="programs and members: re-read changes this far before the last run"),
            Setting("rate_limit_wait", default=S.RATE_WINDOW_SECONDS,
                    description="seconds to wait after a 606 (rate limit: 100 calls / 20 s)"),
            Setting("requests_per_20s", default=0,
                    description="pace requests below this many per 20 s (0: only back off on 606)"),
            Setting("url_budget", default=S.URL_BUDGET,
                    description="longest GET URL; longer lead queries are sent as POST with _method=GET"),
        ),
        mappings_dir=_mappings_dir(),
        description="Marketo Engage REST through httpx",
    )


def _marketo_datetime(params: Mapping[str, Any], ctx: TransformContext) -> Callable[[Any], datetime | None]:
    """REST ``2026-01-02T03:04:05Z`` and the Asset API's ``2026-01-02T03:04:05Z+0000``."""

    def fn(v: Any) -> datetime | None:
        if v is None or v == "":
            return None
        if not isinstance(v, str):
            raise TransformError(f"expected a Marketo datetime, got {type(v).__name__}")
        text = v[:-5] if v.endswith("Z+0000") else v
        try:
            d = datetime.fromisoformat(text)
        except ValueError:
            raise TransformError(f"not a Marketo datetime: {v[:60]!r}") from None
        return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)

    return fn


@hookimpl
def register_connectors(register: Callable[..., None]) -> None:
    """Register the Marketo connector."""
    register(connector_spec())


@hookimpl
def register_transforms(register: Callable[..., None]) -> None:
    """Register marketo_datetime."""
    register(TransformSpec("marketo_datetime", _marketo_datetime, {}, output=pa.timestamp("us", tz="UTC"),
                           description="Marketo REST and Asset API datetimes (…Z and …Z+0000) to UTC."))


@hookimpl
def register_emulators(register: Callable[..., None]) -> None:
    """Register the local Marketo emulator (skipped quietly when the sandbox is not installed)."""
    try:
        from connectors.marketo.emulator import emulator_spec
    except ImportError:
        return
    register(emulator_spec())
