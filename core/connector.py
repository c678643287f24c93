"""What a connector plugin registers and what it yields.

A connector owns one vendor: endpoints, auth, pagination, cursors, deletes and rate-limit
signals. It yields :class:`Page` objects of vendor-native records and never renames fields;
mapping vendor fields onto canonical entities is the job of ``mappings/<vendor>/<stream>.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

__all__ = [
    "Connector",
    "ConnectorConfig",
    "ConnectorSpec",
    "Page",
    "RunContext",
    "Setting",
    "SideTable",
    "StreamSpec",
]

WriteDisposition = Literal["merge", "append", "replace"]


@dataclass(frozen=True)
class SideTable:
    """A raw table a stream fills besides its own, e.g. association edges.

    Loaded as ``<vendor>__<name>`` and merged on a hash of ``key_fields``.
    """

    name: str
    key_fields: tuple[str, ...]


@dataclass(frozen=True)
class StreamSpec:
    """One vendor object the connector extracts (HubSpot contacts, Salesforce Lead, ...)."""

    name: str
    #: vendor field holding the record id (dot path allowed, e.g. ``properties.hs_object_id``)
    primary_key: str
    write_disposition: WriteDisposition = "merge"
    #: vendor field the incremental cursor reads; required when ``incremental`` is true
    cursor_field: str | None = None
    incremental: bool = False
    #: mapping file names under the connector's mapping folder; one stream may feed several entities
    mappings: tuple[str, ...] = ()
    side_tables: tuple[SideTable, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Setting:
    """A configuration value the connector needs, resolved from dlt config/secrets or env vars.

    ``sources.<connector>.<name>`` in ``.dlt/config.toml`` / ``.dlt/secrets.toml``, or the
    environment variable ``SOURCES__<CONNECTOR>__<NAME>``.
    """

    name: str
    secret: bool = False
    required: bool = False
    default: Any = None
    description: str = ""


@dataclass(frozen=True)
class ConnectorConfig:
    """Resolved settings for one connector instance. ``repr`` never shows secret values."""

    connector: str
    instance: str
    values: Mapping[str, Any]
    secret_names: frozenset[str] = frozenset()

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def secrets(self) -> list[str]:
        """The secret values, so logs and errors can mask them."""
        return [str(v) for k, v in self.values.items() if k in self.secret_names and v]

    def __repr__(self) -> str:
        shown = {k: ("***" if k in self.secret_names and v else v) for k, v in self.values.items()}
        return f"ConnectorConfig(connector={self.connector!r}, instance={self.instance!r}, values={shown!r})"


@dataclass
class Page:
    """A page of vendor-native records, exactly as the vendor sent them (parsed JSON).

    ``state`` is the stream state to store once this page is loaded; it is committed with the
    data it describes, so a run killed mid-stream never advances a cursor past unloaded rows.
    """

    records: list[dict[str, Any]]
    state: dict[str, Any] | None = None
    side_records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: the HTTP requests this page cost (for request budgets and the run status)
    requests: int = 1


@dataclass
class RunContext:
    """What a connector knows about the run it is part of."""

    run_id: str
    #: upper bound of every incremental window, fixed when the run started
    started_at: datetime
    full_refresh: bool = False
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


class Connector(Protocol):
    """A live connector instance for one vendor account."""

    def extract(self, stream: StreamSpec, state: Mapping[str, Any], ctx: RunContext) -> Iterator[Page]:
        """Yield pages of raw records for ``stream``, starting from ``state`` (empty on first run)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True)
class ConnectorSpec:
    """What a plugin hands to ``register`` in its ``register_connectors`` hook."""

    name: str
    #: canonical ``source_system`` value stamped on every row (e.g. ``hubspot``)
    system: str
    streams: tuple[StreamSpec, ...]
    factory: Callable[[ConnectorConfig], Connector]
    settings: tuple[Setting, ...] = ()
    #: folder holding ``<stream>.yaml`` mapping files
    mappings_dir: Path | None = None
    description: str = ""
    #: filled in by core: the plugin (module or distribution) that registered it
    plugin: str = ""

    def stream(self, name: str) -> StreamSpec:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(name)
