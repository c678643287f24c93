"""Masking personal data before it reaches a report.

Two layers: :func:`mask_value` masks one sample by what it is (the canonical field, the vendor
path's name, or the value's shape), and :func:`scrub_text` is the safety net every string of every
output goes through, so no raw email address can reach report.html/.json/.md whatever its path.
"""

from __future__ import annotations

import re

__all__ = ["PERSONAL_FIELDS", "mask_email", "mask_value", "scrub_text"]

#: an email address anywhere in a text (deliberately broad: ``ann@@example.com`` counts too)
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+'\-]+@+[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_EMAIL_SHAPE = re.compile(r"^\s*\S+@\S+\s*$")
_PHONE_SHAPE = re.compile(r"^\s*[+(]?\d[\d\s().\-/]{5,}\d\s*$")
_NOT_PHONE = re.compile(r"^\s*-?\d+(\.\d+)?\s*$|^\d{4}-\d{2}-\d{2}")
_HANDLE_SHAPE = re.compile(r"^\s*@[A-Za-z0-9_.]{2,}\s*$")

#: canonical fields that hold personal data, and how to mask them
PERSONAL_FIELDS: dict[str, str] = {
    "email": "email", "first_name": "name", "last_name": "name", "phone": "phone",
    "social_handle": "handle",
}
#: vendor path words that mark personal data when the field is not mapped
_NAME_HINTS: tuple[tuple[str, str], ...] = (
    ("mail", "email"), ("phone", "phone"), ("mobile", "phone"), ("fax", "phone"),
    ("firstname", "name"), ("first_name", "name"), ("lastname", "name"), ("last_name", "name"),
    ("fullname", "name"), ("full_name", "name"), ("given", "name"), ("surname", "name"),
    ("family", "name"), ("handle", "handle"), ("twitter", "handle"), ("screen_name", "handle"),
    ("address", "name"), ("street", "name"), ("ip", "name"), ("birth", "name"),
)


def mask_email(addr: str) -> str:
    """``ada.lovelace@example.co.uk`` -> ``a***@e***.uk``."""
    local, _, domain = addr.strip().rpartition("@")
    local = local.rstrip("@")
    tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
    return f"{local[:1] or '*'}***@{domain[:1] or '*'}***" + (f".{tld}" if tld else "")


def _mask_name(v: str) -> str:
    return " ".join(f"{w[:1]}***" for w in v.split()) or "***"


def _mask_phone(v: str) -> str:
    digits = sum(c.isdigit() for c in v)
    seen = 0
    out = []
    for c in v:
        if c.isdigit():
            seen += 1
            out.append(c if seen > digits - 2 else "*")
        else:
            out.append(c)
    return "".join(out)


def _mask_handle(v: str) -> str:
    v = v.strip()
    at = "@" if v.startswith("@") else ""
    return f"{at}{v.lstrip('@')[:1]}***"


_KINDS = {"email": lambda v: scrub_text(v) if EMAIL_RE.search(v) else _mask_name(v),
          "name": _mask_name, "phone": _mask_phone, "handle": _mask_handle}


def _kind_for_path(path: str) -> str | None:
    leaf = path.lower().rsplit(".", 1)[-1]
    for word, kind in _NAME_HINTS:
        if word == "ip":
            if leaf in ("ip", "ip_address", "ipaddress") or leaf.endswith("_ip"):
                return kind
        elif word in leaf:
            return kind
    return None


def mask_value(value: str | None, *, field: str | None = None, path: str | None = None) -> str | None:
    """Mask one sample value.

    ``field`` is the canonical field it fills (``email``, ``first_name``...): its meaning decides.
    Otherwise ``path`` (a vendor field's name) and then the value's shape decide (email, phone
    with separators or a leading +, @handle). Values that are not personal come back unchanged,
    except that any email inside is masked.
    """
    if value is None:
        return None
    v = str(value)
    if field is not None:
        kind = PERSONAL_FIELDS.get(field)
    else:
        kind = _kind_for_path(path) if path else None
        if kind is None:
            kind = _shape(v)
    if kind is not None:
        return _KINDS[kind](v)
    if len(v) > 80:
        v = v[:77] + "..."
    return scrub_text(v)


def _shape(v: str) -> str | None:
    if _EMAIL_SHAPE.match(v):
        return "email"
    if (_PHONE_SHAPE.match(v) and not _NOT_PHONE.match(v) and sum(c.isdigit() for c in v) >= 7
            and (v.lstrip()[:1] in "+(" or any(c in v for c in " -/"))):
        return "phone"
    if _HANDLE_SHAPE.match(v):
        return "handle"
    return None


def scrub_text(text: str) -> str:
    """Every email address in ``text`` masked; everything else unchanged."""
    return EMAIL_RE.sub(lambda m: mask_email(m.group(0)), text)
