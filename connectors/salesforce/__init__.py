"""Salesforce connector (simple-salesforce): standard sales objects plus configured extra ones.

Hook implementations live here; HTTP, SOQL windows and Bulk API 2.0 in
:mod:`connectors.salesforce.helpers`, constants in :mod:`connectors.salesforce.settings`; the
sandbox emulator in :mod:`connectors.salesforce.emulator`. Raw records are the REST query API's
own (``attributes`` + fields); Bulk API rows are converted to that shape.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from connectors.salesforce import settings as S
from core.connector import Connector, ConnectorConfig, ConnectorSpec, Setting, StreamSpec
from core.hookspecs import hookimpl

__all__ = ["connector_spec", "extra_objects", "register_connectors", "register_emulators", "register_transforms"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _mappings_dir() -> Path:
    return Path(str(files("mappings") / "salesforce"))


def _factory(config: ConnectorConfig) -> Connector:
    from connectors.salesforce.helpers import SalesforceConnector

    return SalesforceConnector(config)


def extra_objects(value: str | None = None) -> tuple[str, ...]:
    """Objects named in ``SOURCES__SALESFORCE__EXTRA_OBJECTS`` (comma-separated API names)."""
    raw = os.environ.get(S.EXTRA_OBJECTS_ENV, "") if value is None else value
    out: list[str] = []
    for name in (n.strip() for n in raw.split(",")):
        if name and _NAME.match(name) and name not in S.DEFAULT_OBJECTS and name not in out:
            out.append(name)
    return tuple(out)


def _stream(obj: str) -> StreamSpec:
    mapping = S.OBJECT_ENTITIES.get(obj, "")
    return StreamSpec(
        name=S.stream_name(obj), primary_key="Id", write_disposition="merge", cursor_field=S.CURSOR_FIELD, incremental=True,
        mappings=(mapping,) if mapping else (),
        description=f"Salesforce {obj} (all describe fields, custom included; deleted rows via queryAll)")


def connector_spec(extra: tuple[str, ...] | None = None) -> ConnectorSpec:
    objects = (*S.DEFAULT_OBJECTS, *(extra_objects() if extra is None else extra))
    return ConnectorSpec(
        name="salesforce",
        system="salesforce",
        streams=tuple(_stream(o) for o in objects),
        factory=_factory,
        settings=(
            Setting("instance_url", required=True, description="the org's URL (https://<domain>.my.salesforce.com)"),
            Setting("session_id", secret=True,
                    description="an OAuth access token; without it one is requested with the credentials below"),
            Setting("client_id", description="connected app consumer key (for token refresh)"),
            Setting("client_secret", secret=True, description="connected app consumer secret"),
            Setting("refresh_token", secret=True, description="OAuth refresh token: renews an expired session"),
            Setting("username", description="integration user (password grant, when there is no refresh token)"),
            Setting("password", secret=True, description="integration user's password"),
            Setting("security_token", secret=True, description="appended to the password when the org wants it"),
            Setting("login_url", description="OAuth host (default: instance_url)"),
            Setting("ca_bundle", description="CA bundle to verify the org's TLS certificate (the sandbox sets it)"),
            Setting("api_version", default=S.DEFAULT_API_VERSION, description="REST API version"),
            Setting("instance", default="default", description="org name, stamped on every row"),
            Setting("extra_objects", default="",
                    description=f"more objects (custom __c included), comma-separated; read from "
                                f"{S.EXTRA_OBJECTS_ENV} when the connector registers"),
            Setting("page_size", default=S.DEFAULT_PAGE_SIZE, description="records per query page (200-2000)"),
            Setting("lookback_seconds", default=S.DEFAULT_LOOKBACK_SECONDS,
                    description="incremental runs re-read changes this far before the stored cursor"),
            Setting("bulk_threshold", default=S.DEFAULT_BULK_THRESHOLD,
                    description="a window with more records is read through Bulk API 2.0 (0: never)"),
            Setting("bulk_result_records", default=S.DEFAULT_BULK_RESULT_RECORDS,
                    description="maxRecords per Bulk API results request (streamed)"),
            Setting("quota_share", default=S.DEFAULT_QUOTA_SHARE,
                    description="stop (partial run) once this share of the daily API requests is used"),
            Setting("reconcile_deletes_hours", default=S.DEFAULT_RECONCILE_DELETES_HOURS,
                    description="ask the deleted endpoint for hard deletes this often (0: every run)"),
            Setting("composite", default=True,
                    description="send the run's describes and first query pages as Composite requests (one API "
                                "call per 25 subrequests, 5 of them queries); false: one request each"),
            Setting("formula_refresh_hours", default=0,
                    description="re-read objects with formula fields in full this often (0: never)"),
        ),
        mappings_dir=_mappings_dir(),
        description="Salesforce REST + Bulk API 2.0 through simple-salesforce",
    )


@hookimpl
def register_connectors(register: Callable[..., None]) -> None:
    """Register the Salesforce connector."""
    register(connector_spec())


@hookimpl
def register_transforms(register: Callable[..., None]) -> None:
    """Register salesforce_ref (polymorphic WhoId/WhatId references)."""
    from connectors.salesforce.transforms import SALESFORCE_TRANSFORMS

    for spec in SALESFORCE_TRANSFORMS:
        register(spec)


@hookimpl
def register_emulators(register: Callable[..., None]) -> None:
    """Register the local Salesforce emulator (skipped quietly when the sandbox is not installed)."""
    try:
        from connectors.salesforce.emulator import emulator_spec
    except ImportError:
        return
    register(emulator_spec())
