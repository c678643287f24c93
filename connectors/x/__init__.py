"""X (Twitter) API v2: the sandbox emulator of brand mentions (the connector comes later)."""

from __future__ import annotations

from collections.abc import Callable

from core.hookspecs import hookimpl

__all__ = ["register_emulators"]


@hookimpl
def register_emulators(register: Callable[..., None]) -> None:
    """Register the local X emulator (skipped quietly when the sandbox is not installed)."""
    try:
        from connectors.x.emulator import emulator_spec
    except ImportError:
        return
    register(emulator_spec())
