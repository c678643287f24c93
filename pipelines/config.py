"""Resolve connector settings from dlt's config/secrets providers.

Lookup order is dlt's own: environment variables (``SOURCES__HUBSPOT__ACCESS_TOKEN``), then
``.dlt/secrets.toml`` and ``.dlt/config.toml`` in the working directory (``[sources.hubspot]``).
Explicit overrides (the sandbox, tests) win over both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dlt

from core.connector import ConnectorConfig, ConnectorSpec
from core.errors import ConfigurationError

__all__ = ["missing_required", "resolve_config"]


def _lookup(connector: str, name: str, secret: bool) -> Any:
    key = f"sources.{connector}.{name}"
    provider: Any = dlt.secrets if secret else dlt.config
    value: Any = provider.get(key)
    if value is None and not secret:
        value = dlt.secrets.get(key)
    return value


def missing_required(spec: ConnectorSpec) -> list[str]:
    """Names of required settings that no provider has a value for."""
    return [s.name for s in spec.settings if s.required and _lookup(spec.name, s.name, s.secret) in (None, "")]


def resolve_config(spec: ConnectorSpec, overrides: Mapping[str, Any] | None = None) -> ConnectorConfig:
    """Settings for ``spec``; a missing required one raises ConfigurationError saying where to set it."""
    overrides = dict(overrides or {})
    values: dict[str, Any] = {}
    for s in spec.settings:
        value = overrides[s.name] if s.name in overrides else _lookup(spec.name, s.name, s.secret)
        if value in (None, ""):
            value = s.default
        if s.required and value in (None, ""):
            env = f"SOURCES__{spec.name.upper()}__{s.name.upper()}"
            raise ConfigurationError(
                f"connector {spec.name!r} needs setting {s.name!r}: set the environment variable {env} "
                f"or add `{s.name} = \"...\"` under [sources.{spec.name}] in .dlt/"
                f"{'secrets' if s.secret else 'config'}.toml (or run `factoryline demo` to use the sandbox)")
        values[s.name] = value
    for k, v in overrides.items():
        values.setdefault(k, v)
    instance = str(values.get("instance") or "default")
    return ConnectorConfig(connector=spec.name, instance=instance, values=values,
                           secret_names=frozenset(s.name for s in spec.settings if s.secret))
