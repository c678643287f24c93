"""Marketo Engage (REST): leads, activities, programs and program members; the sandbox emulator for now."""

from __future__ import annotations

from collections.abc import Callable

from core.hookspecs import hookimpl

__all__ = ["register_emulators"]


@hookimpl
def register_emulators(register: Callable[..., None]) -> None:
    """Register the local Marketo emulator (skipped quietly when the sandbox is not installed)."""
    try:
        from connectors.marketo.emulator import emulator_spec
    except ImportError:
        return
    register(emulator_spec())
