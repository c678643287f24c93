"""Salesforce: the sandbox emulator (REST, SOQL, Bulk API 2.0 query over TLS); the connector comes later."""

from __future__ import annotations

from collections.abc import Callable

from core.hookspecs import hookimpl

__all__ = ["register_emulators"]


@hookimpl
def register_emulators(register: Callable[..., None]) -> None:
    """Register the local Salesforce emulator (skipped quietly when the sandbox is not installed)."""
    try:
        from connectors.salesforce.emulator import emulator_spec
    except ImportError:
        return
    register(emulator_spec())
