"""Plugin manager factory and the registry of what plugins registered.

Built-in connectors go through exactly the path third-party ones do: every plugin is a module
named by an entry point in the ``factoryline`` group (factoryline's own are declared in its
pyproject.toml). ``FACTORYLINE_PLUGINS=hubspot,acme`` loads only the named plugins. A plugin that
fails to import or whose hook raises is reported with its name as a warning; the rest keep working.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy

from core import hookspecs
from core.connector import ConnectorSpec
from core.errors import RegistrationError

__all__ = ["PluginWarning", "Registry", "get_plugin_manager", "get_registry", "reset"]

ENTRY_POINT_GROUP = "factoryline"
#: Loaded even when factoryline runs from a source tree that was never pip-installed. When the
#: distribution is installed, these are the same modules its entry points name (loaded once).
BUILTIN_PLUGINS: dict[str, str] = {
    "hubspot": "connectors.hubspot",
    "salesforce": "connectors.salesforce",
    "marketo": "connectors.marketo",
    "mailchimp": "connectors.mailchimp",
    "x": "connectors.x",
    "shopify": "connectors.shopify",
}
#: Core's own hook implementations (the named transforms); loaded whatever FACTORYLINE_PLUGINS says.
CORE_PLUGINS: dict[str, str] = {"core_transforms": "core.transforms", "core_attribution": "core.attribution"}

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class PluginWarning(UserWarning):
    """A plugin could not be loaded or its hook failed; the others keep working."""


def _allowed() -> set[str] | None:
    raw = os.environ.get("FACTORYLINE_PLUGINS", "").strip()
    if not raw:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def get_plugin_manager() -> pluggy.PluginManager:
    """A new plugin manager with every allowed plugin loaded (built-ins, then entry points)."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    allowed = _allowed()
    for name, module in CORE_PLUGINS.items():
        pm.register(importlib.import_module(module), name=name)
    candidates: list[tuple[str, Callable[[], ModuleType]]] = []
    for name, module in BUILTIN_PLUGINS.items():
        candidates.append((name, functools.partial(importlib.import_module, module)))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        candidates.append((ep.name, ep.load))
    seen_modules: set[str] = set()
    for name, load in candidates:
        if allowed is not None and name not in allowed:
            continue
        try:
            plugin = load()
        except Exception as exc:  # a broken plugin must not take the CLI down
            warnings.warn(f"factoryline plugin {name!r} failed to load and was skipped: "
                          f"{type(exc).__name__}: {exc}", PluginWarning, stacklevel=2)
            continue
        module_name = getattr(plugin, "__name__", repr(plugin))
        if module_name in seen_modules:
            continue
        seen_modules.add(module_name)
        if pm.get_plugin(name) is not None:
            warnings.warn(f"two factoryline plugins are named {name!r}; {module_name} was skipped",
                          PluginWarning, stacklevel=2)
            continue
        pm.register(plugin, name=name)
    pm.check_pending()
    return pm


@dataclass
class Registry:
    """Everything the loaded plugins registered, validated."""

    connectors: dict[str, ConnectorSpec] = field(default_factory=dict)
    transforms: dict[str, Any] = field(default_factory=dict)
    attribution_models: dict[str, Any] = field(default_factory=dict)
    #: plugin name -> module/distribution, for ``factoryline connectors``
    plugins: dict[str, str] = field(default_factory=dict)
    #: registrations core refused (outside strict mode), with the reason
    refused: list[str] = field(default_factory=list)
    #: the plugin manager the registry was built from, for the run lifecycle hooks
    plugin_manager: pluggy.PluginManager | None = None
    strict: bool = False
    _emulators: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def emulators(self) -> dict[str, Any]:
        """Sandbox emulators, collected on first use: importing them (generated worlds, GraphQL)
        took about 1.2 s that a run against the real vendors never needs."""
        if self._emulators is None:
            self._emulators = {}
            if self.plugin_manager is not None:
                store = self._emulators
                _collect(self.plugin_manager, "register_emulators",
                         lambda p: _named_register("emulator", p, store), self, self.strict)
        return self._emulators

    def connector(self, name: str) -> ConnectorSpec:
        try:
            return self.connectors[name]
        except KeyError:
            valid = ", ".join(sorted(self.connectors)) or "none installed"
            raise RegistrationError(f"no connector named {name!r} (installed: {valid})") from None


def _check_connector(spec: ConnectorSpec, plugin: str, registry: Registry) -> ConnectorSpec:
    if not isinstance(spec, ConnectorSpec):
        raise RegistrationError(f"plugin {plugin!r} registered {spec!r}, expected a ConnectorSpec")
    if not _NAME.match(spec.name):
        raise RegistrationError(f"plugin {plugin!r}: connector name {spec.name!r} must match {_NAME.pattern}")
    if spec.name in registry.connectors:
        other = registry.connectors[spec.name].plugin
        raise RegistrationError(f"plugin {plugin!r}: connector {spec.name!r} is already registered by {other!r}")
    names: set[str] = set()
    for s in spec.streams:
        where = f"plugin {plugin!r}, connector {spec.name!r}, stream {s.name!r}"
        if not _NAME.match(s.name):
            raise RegistrationError(f"{where}: stream name must match {_NAME.pattern}")
        if s.name in names:
            raise RegistrationError(f"{where}: stream registered twice")
        names.add(s.name)
        if s.write_disposition == "merge" and not s.primary_key:
            raise RegistrationError(f"{where}: write_disposition 'merge' needs a primary_key, "
                                    "or every update would duplicate the row")
        if s.incremental and not s.cursor_field:
            raise RegistrationError(f"{where}: incremental stream needs a cursor_field")
        for m in s.mappings:
            if spec.mappings_dir is None or not (spec.mappings_dir / m).is_file():
                raise RegistrationError(f"{where}: mapping file {m!r} not found in {spec.mappings_dir}")
    return replace(spec, plugin=plugin)


def _named_register(kind: str, plugin: str, store: dict[str, Any]) -> Callable[[Any], None]:
    def register(spec: Any) -> None:
        name = getattr(spec, "name", None)
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistrationError(f"plugin {plugin!r}: {kind} name {name!r} must match {_NAME.pattern}")
        if name in store:
            raise RegistrationError(f"plugin {plugin!r}: {kind} {name!r} is already registered")
        store[name] = spec
    return register


def _collect(pm: pluggy.PluginManager, hook_name: str, make_register: Callable[[str], Callable[..., None]],
             registry: Registry, strict: bool) -> None:
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():  # registration order
        plugin = impl.plugin_name
        register = make_register(plugin)
        if not strict:
            register = _refusing_warns(register, registry)
        try:
            impl.function(register)
        except RegistrationError:
            raise
        except Exception as exc:
            warnings.warn(f"factoryline plugin {plugin!r} failed in {hook_name}: {type(exc).__name__}: {exc}",
                          PluginWarning, stacklevel=2)


def _refusing_warns(register: Callable[..., None], registry: Registry) -> Callable[..., None]:
    """Outside strict mode a refused registration is reported and skipped; the rest still load."""
    def guarded(spec: Any) -> None:
        try:
            register(spec)
        except RegistrationError as exc:
            registry.refused.append(str(exc))
            warnings.warn(f"refused: {exc}", PluginWarning, stacklevel=2)
    return guarded


def build_registry(pm: pluggy.PluginManager, *, strict: bool = False) -> Registry:
    """Collect and validate every registration. ``strict`` raises the first RegistrationError."""
    registry = Registry(plugin_manager=pm, strict=strict)
    for name, plugin in pm.list_name_plugin():
        registry.plugins[name] = getattr(plugin, "__name__", repr(plugin))

    def connector_register(plugin: str) -> Callable[..., None]:
        def register(spec: ConnectorSpec) -> None:
            checked = _check_connector(spec, plugin, registry)
            registry.connectors[checked.name] = checked
        return register

    _collect(pm, "register_connectors", connector_register, registry, strict)
    _collect(pm, "register_transforms", lambda p: _named_register("transform", p, registry.transforms),
             registry, strict)
    _collect(pm, "register_attribution_models",
             lambda p: _named_register("attribution model", p, registry.attribution_models), registry, strict)
    return registry


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The registry of the plugins allowed in this process, loaded once."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry(get_plugin_manager())
    return _REGISTRY


def reset() -> None:
    """Forget the loaded registry (tests change FACTORYLINE_PLUGINS between cases)."""
    global _REGISTRY
    _REGISTRY = None
