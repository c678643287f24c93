"""Shopify-specific mapping transforms, registered through ``register_transforms``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa

from core.transforms import TransformContext, TransformError, TransformFn, TransformSpec

__all__ = ["SHOPIFY_TRANSFORMS", "url_param"]


def url_param(url: Any, name: str) -> str | None:
    """The first value of query parameter ``name`` in ``url`` (``None`` when absent)."""
    if url is None or url == "":
        return None
    if not isinstance(url, str):
        raise TransformError(f"expected a URL, got {type(url).__name__}")
    values = parse_qs(urlsplit(url).query).get(name)
    return values[0] if values else None


def _utm(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    """First non-empty value of ``paths``; a value at one of ``url_paths`` is read as a URL and its
    ``param`` query parameter is taken (the landing page of a visit without parsed UTM fields)."""
    paths, urls, name = params["paths"], params.get("url_paths") or [], params["param"]
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise ValueError("'paths' must be a list of dot paths (the parsed UTM fields, then the URLs)")
    if not isinstance(urls, list) or not set(urls) <= set(paths):
        raise ValueError("'url_paths' must list the entries of 'paths' that hold URLs")
    if not isinstance(name, str) or not name:
        raise ValueError("'param' must be a query parameter name, e.g. utm_source")
    is_url = [p in urls for p in paths]

    def fn(values: Any) -> str | None:
        if values is None:
            return None
        for value, url in zip(values, is_url, strict=True):
            got = url_param(value, name) if url else value
            if got not in (None, ""):
                return str(got)
        return None

    return fn


def _is_set(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    """True when the value is present (``cancelledAt`` set -> cancelled), false when null or empty."""
    def fn(value: Any) -> bool:
        return value not in (None, "")

    return fn


SHOPIFY_TRANSFORMS: tuple[TransformSpec, ...] = (
    TransformSpec("shopify_is_set", _is_set, {}, output=pa.bool_(),
                  description="True when the value is present, false when null or empty (e.g. cancelledAt)."),
    TransformSpec(
        "shopify_utm", _utm,
        {"paths": "dot paths tried in order", "url_paths": "which of them hold URLs to read `param` from",
         "param": "query parameter of the URL entries (utm_source, utm_medium, utm_campaign)"},
        required_params=("paths", "param"), output=pa.string(), reads="paths",
        description="A UTM value: the journey's parsed utmParameters, else the query parameter of the "
                    "landing page URL."),
)
