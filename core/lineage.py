"""Stable keys that tie canonical rows to raw vendor records."""

from __future__ import annotations

import hashlib

__all__ = ["raw_table_name", "row_key"]


def row_key(system: str, instance: str, obj: str, record_id: str) -> str:
    """Stable id of a record: 32 hex chars of blake2b over the four parts.

    Identical in every run and on every machine, so merges are idempotent and a canonical row
    can be found again from its vendor record.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{system}\x1f{instance}\x1f{obj}\x1f{record_id}".encode())
    return h.hexdigest()


def raw_table_name(system: str, stream: str) -> str:
    return f"{system}__{stream}"
