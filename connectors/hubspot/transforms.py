"""HubSpot-specific mapping transforms, registered through ``register_transforms``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from core.lineage import row_key
from core.transforms import TransformContext, TransformError, TransformFn, TransformSpec

__all__ = ["HUBSPOT_TRANSFORMS", "primary_association"]


def _is_primary(item: Mapping[str, Any]) -> bool:
    for t in item.get("associationTypes") or ():
        if not isinstance(t, Mapping):
            continue
        if t.get("category") == "HUBSPOT_DEFINED" and (t.get("label") == "Primary" or t.get("typeId") == 1):
            return True
    return False


def primary_association(items: Any) -> Any:
    """The primary v4 association item of a list (HUBSPOT_DEFINED "Primary" / typeId 1), else the first."""
    if not items:
        return None
    if not isinstance(items, list):
        raise TransformError("expected the list of v4 association items under associations.<type>")
    for item in items:
        if isinstance(item, Mapping) and _is_primary(item):
            return item
    return items[0]


def _primary_association(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    obj = params["object"]
    if not isinstance(obj, str) or not obj:
        raise ValueError("'object' must be the HubSpot object the association points to, e.g. companies")
    system, instance = ctx.system, ctx.instance

    def fn(v: Any) -> str | None:
        item = primary_association(v)
        if item is None:
            return None
        if not isinstance(item, Mapping) or item.get("toObjectId") in (None, ""):
            raise TransformError("association item has no toObjectId")
        return row_key(system, instance, obj, str(item["toObjectId"]))

    return fn


HUBSPOT_TRANSFORMS: tuple[TransformSpec, ...] = (
    TransformSpec(
        "hubspot_primary_association", _primary_association,
        {"object": "HubSpot object the association points to (companies, contacts)"},
        required_params=("object",), output=pa.string(),
        description="Canonical id of the primary associated record (HUBSPOT_DEFINED 'Primary' or "
                    "typeId 1, else the first) from associations.<type> as the connector attaches it."),
)
