"""Shopify GraphQL Admin API: the sandbox emulator of orders and customers (the connector comes later)."""

from __future__ import annotations

from collections.abc import Callable

from core.hookspecs import hookimpl

__all__ = ["register_emulators"]


@hookimpl
def register_emulators(register: Callable[..., None]) -> None:
    """Register the local Shopify emulator (skipped quietly when the sandbox is not installed)."""
    try:
        from connectors.shopify.emulator import emulator_spec
    except ImportError:
        return
    register(emulator_spec())
