"""X API v2 connector: brand monitoring by recent search and the brand account's mentions (httpx),
optionally backfilling each search query's history through full-archive search (``archive_start``).

Hook implementations live here; HTTP and pagination in :mod:`connectors.x.helpers`, constants in
:mod:`connectors.x.settings`, the sandbox emulator in :mod:`connectors.x.emulator`.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from connectors.x import settings as S
from core.connector import Connector, ConnectorConfig, ConnectorSpec, Setting, StreamSpec
from core.hookspecs import hookimpl

__all__ = ["connector_spec", "register_connectors", "register_emulators"]


def _mappings_dir() -> Path:
    return Path(str(files("mappings") / "x"))


def _factory(config: ConnectorConfig) -> Connector:
    from connectors.x.helpers import XConnector

    return XConnector(config)


def connector_spec() -> ConnectorSpec:
    return ConnectorSpec(
        name="x",
        system="x",
        streams=(
            StreamSpec("tweets", primary_key="id", cursor_field="id", incremental=True, mappings=("tweets.yaml",),
                       description="posts matching the search queries or mentioning the brand -> touch "
                                   "(social_mention), since_id per query (first run: full-archive "
                                   "backfill per query with archive_start)"),
            StreamSpec("users", primary_key="id", cursor_field="id", incremental=True, mappings=("users.yaml",),
                       description="authors of those posts -> person with social_handle"),
        ),
        factory=_factory,
        settings=(
            Setting("bearer_token", secret=True, required=True, description="app-only OAuth 2.0 bearer token"),
            Setting("base_url", default=S.DEFAULT_BASE_URL, description="API base URL (the sandbox sets its own)"),
            Setting("queries", description="recent-search queries, one per line or separated by ';;' "
                                           "(default: '@<brand_username>')"),
            Setting("brand_username", description="the brand's account, without @ (mentions, default query)"),
            Setting("brand_user_id", description="the brand account's user id (else looked up by username)"),
            Setting("mentions", default=True, description="read the brand account's mentions timeline"),
            Setting("instance", default="default", description="account name, stamped on every row"),
            Setting("page_size", default=S.MAX_RESULTS, description="posts per request (10-100)"),
            Setting("archive_start", description="backfill: the first run of each search query reads its history "
                                                 "from this date (2024-01-01, a date-time, or 'all') to the run "
                                                 "start through full-archive search (GET /2/tweets/search/all), "
                                                 "later runs recent search by since_id. Off by default: "
                                                 "full-archive search needs Pro or Enterprise access"),
            Setting("archive_page_size", default=S.ARCHIVE_MAX_RESULTS,
                    description="posts per full-archive search request (10-500)"),
            Setting("pace", default=False, description="keep full-archive search to X's published 1 request/s "
                                                       "from the first request (else only after X answers 429)"),
        ),
        mappings_dir=_mappings_dir(),
        description="X API v2 (recent search, mentions, full-archive backfill) through httpx",
    )


@hookimpl
def register_connectors(register: Callable[..., None]) -> None:
    """Register the X connector."""
    register(connector_spec())


@hookimpl
def register_emulators(register: Callable[..., None]) -> None:
    """Register the local X emulator (skipped quietly when the sandbox is not installed)."""
    try:
        from connectors.x.emulator import emulator_spec
    except ImportError:
        return
    register(emulator_spec())
