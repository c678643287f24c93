"""Salesforce-specific mapping transforms, registered through ``register_transforms``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from core.lineage import keyer
from core.transforms import TransformContext, TransformError, TransformFn, TransformSpec

__all__ = ["KEY_PREFIXES", "SALESFORCE_TRANSFORMS"]

#: standard key prefixes (the first three characters of every record id) -> the object's stream
KEY_PREFIXES: dict[str, str] = {
    "001": "account", "003": "contact", "005": "user", "006": "opportunity", "00Q": "lead",
    "701": "campaign", "00v": "campaign_member", "00T": "task", "00U": "event", "00K": "opportunity_contact_role",
}


def _polymorphic_ref(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    allowed = params.get("objects")
    if allowed is not None and (not isinstance(allowed, list) or not all(isinstance(o, str) for o in allowed)):
        raise ValueError("'objects' must be a list of stream names, e.g. [lead, contact]")
    extra = params.get("prefixes") or {}
    if not isinstance(extra, Mapping):
        raise ValueError("'prefixes' must map key prefixes to stream names, e.g. {a01: project__c}")
    ignore_others = bool(params.get("ignore_others", False))
    table = {**KEY_PREFIXES, **{str(k): str(v) for k, v in extra.items()}}
    keys = {obj: keyer(ctx.system, ctx.instance, obj) for obj in set(table.values())}

    def fn(v: Any) -> str | None:
        if v is None or v == "":
            return None
        if not isinstance(v, str) or len(v) not in (15, 18):
            raise TransformError("expected a 15- or 18-character Salesforce id")
        obj = table.get(v[:3])
        if obj is None or (allowed is not None and obj not in allowed):
            if ignore_others:  # e.g. WhatId naming an Account where a campaign is wanted
                return None
            raise TransformError(f"id prefix {v[:3]!r} is not one of the expected objects")
        return keys[obj](v)

    return fn


SALESFORCE_TRANSFORMS: tuple[TransformSpec, ...] = (
    TransformSpec(
        "salesforce_ref", _polymorphic_ref,
        {"objects": "streams the id may point to (default: any known)",
         "prefixes": "extra key prefix -> stream name (custom objects)",
         "ignore_others": "true: an id of another object gives null instead of a field reject"},
        output=pa.string(),
        description="Canonical id of the record a polymorphic Salesforce reference (WhoId, WhatId) points "
                    "to: the object is read from the id's key prefix (00Q lead, 003 contact, ...)."),
)
