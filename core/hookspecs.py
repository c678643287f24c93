"""Hook specifications: the only place factoryline declares hooks.

Discovery hooks take a ``register`` callback built by core, so core validates what plugins
register (duplicate names, merge without a primary key, incremental stream without a cursor)
and refuses it with a message that names the plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("factoryline")
hookimpl = pluggy.HookimplMarker("factoryline")


# ---------------------------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------------------------


@hookspec
def register_connectors(register: Callable[..., None]) -> None:
    """Register connectors: call ``register(spec)`` with a :class:`core.connector.ConnectorSpec`.

    :param register: validates and records one connector spec; raises ``RegistrationError``.
    """


@hookspec
def register_transforms(register: Callable[..., None]) -> None:
    """Register mapping transforms: call ``register(spec)`` with a :class:`core.transforms.TransformSpec`.

    :param register: validates and records one transform; a duplicate name is refused.
    """


@hookspec
def register_attribution_models(register: Callable[..., None]) -> None:
    """Register attribution models: call ``register(model)`` with a :class:`core.attribution.AttributionModel`.

    :param register: validates and records one model; a duplicate name is refused.
    """


@hookspec
def register_emulators(register: Callable[..., None]) -> None:
    """Register sandbox emulators: call ``register(spec)`` with a :class:`sandbox.api.EmulatorSpec`.

    :param register: validates and records one vendor emulator; a duplicate name is refused.
    """


# ---------------------------------------------------------------------------------------------
# Run lifecycle
# ---------------------------------------------------------------------------------------------


@hookspec
def run_finished(status: dict[str, Any]) -> None:
    """Called once when ``factoryline run`` ends, with the same status it prints as JSON.

    :param status: run id, overall status and per-stream outcome and counts.
    """
