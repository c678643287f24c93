"""Named transforms used by mapping files (``transform: timestamp``), and core's hook that registers them.

A transform is a :class:`TransformSpec`: a factory that, given the parameters written in the
mapping file and a :class:`TransformContext`, returns a per-value function. The per-value function
returns ``None`` for null input, returns the converted value, or raises :class:`TransformError`
with a reason a person can act on. The mapping engine (:mod:`core.mapping`) turns a
``TransformError`` into a reject row, never into a crash.

Every transform treats ``None`` and ``""`` as null. Plugins register more transforms through the
``register_transforms(register)`` hook, exactly like this module does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal

import orjson
import pyarrow as pa

from core.hookspecs import hookimpl
from core.lineage import keyer

__all__ = [
    "BUILTIN_TRANSFORMS",
    "TransformContext",
    "TransformError",
    "TransformFn",
    "TransformSpec",
    "register_transforms",
]

TransformFn = Callable[[Any], Any]


class TransformError(ValueError):
    """A value the transform cannot convert. ``reason`` says why, for the reject row.

    ``fallback`` is the value the engine emits instead (default ``None``): the ``enum`` transform
    uses it for its ``default``, so an unknown value still yields a row *and* a field-level note.
    """

    def __init__(self, reason: str, *, fallback: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fallback = fallback


@dataclass(frozen=True)
class TransformContext:
    """Where a transform is used: the engine builds one per mapped field at compile time."""

    system: str
    instance: str
    file: str
    field: str


@dataclass(frozen=True)
class TransformSpec:
    """A named transform, registered by core or by a plugin."""

    name: str
    #: ``factory(params, ctx)`` -> per-value function; raise ValueError on bad params
    factory: Callable[[Mapping[str, Any], TransformContext], TransformFn]
    #: allowed parameter names -> one-line description (validation lists them)
    params: Mapping[str, str]
    required_params: tuple[str, ...] = ()
    #: Arrow type of the values the function returns; None = any (checked per value by the engine)
    output: pa.DataType | None = None
    description: str = ""
    #: what the function receives: the value at ``path`` ("path"), a tuple of the values at
    #: ``paths`` ("paths"), or nothing (``None``, "none": constants)
    reads: Literal["path", "paths", "none"] = "path"


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# string, json, constant
# ---------------------------------------------------------------------------------------------


def _to_string(v: Any) -> str | None:
    if v.__class__ is str:
        return v or None
    if v is None:
        return None
    if isinstance(v, str):
        return v or None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float | Decimal):
        return str(v)
    raise TransformError(f"expected text, got {_kind(v)}; map it with transform 'json' to keep it as JSON")


def _string(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    return _to_string


def _json(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    def fn(v: Any) -> str | None:
        if v is None:
            return None
        return orjson.dumps(v, default=str).decode()
    return fn


def _constant(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    value = params["value"]
    if isinstance(value, dict | list):
        raise ValueError("'value' must be a scalar (text, number, true/false)")
    return lambda _v: value


# ---------------------------------------------------------------------------------------------
# timestamp
# ---------------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    unit = params.get("unit", "ms")
    if unit not in ("ms", "s"):
        raise ValueError(f"'unit' must be 'ms' or 's', not {unit!r}")
    per_unit = 1000 if unit == "s" else 1
    fromiso = datetime.fromisoformat

    def from_epoch(n: int | float, raw: Any) -> datetime:
        try:
            return _EPOCH + timedelta(milliseconds=n * per_unit)
        except (OverflowError, ValueError):
            raise TransformError(f"epoch {unit} value out of range: {_show(raw)}") from None

    def fn(v: Any) -> datetime | None:
        if v.__class__ is str:
            if not v:
                return None
            if len(v) == 10 and v[4] == "-":  # date-only YYYY-MM-DD
                try:
                    return datetime(int(v[:4]), int(v[5:7]), int(v[8:10]), tzinfo=UTC)
                except ValueError:
                    raise TransformError(f"not a valid date: {_show(v)}") from None
            if v.isdigit() or (v[0] == "-" and v[1:].isdigit()):
                return from_epoch(int(v), v)
            try:
                d = fromiso(v)
            except ValueError:
                try:
                    f = float(v)
                except ValueError:
                    raise TransformError(f"not an ISO 8601 timestamp or epoch {unit}: {_show(v)}") from None
                if not math.isfinite(f):
                    raise TransformError(f"not an ISO 8601 timestamp or epoch {unit}: {_show(v)}") from None
                return from_epoch(f, v)
            tz = d.tzinfo
            if tz is None:
                return d.replace(tzinfo=UTC)
            if tz is UTC:
                return d
            try:
                return d.astimezone(UTC)
            except OverflowError:
                raise TransformError(f"timestamp out of range: {_show(v)}") from None
        if v is None:
            return None
        if isinstance(v, bool):
            raise TransformError(f"expected a timestamp, got {v!r}")
        if isinstance(v, int):
            return from_epoch(v, v)
        if isinstance(v, float):
            if not math.isfinite(v):
                raise TransformError(f"expected a timestamp, got {v!r}")
            return from_epoch(v, v)
        if isinstance(v, datetime):
            return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
        if isinstance(v, date):
            return datetime(v.year, v.month, v.day, tzinfo=UTC)
        raise TransformError(f"expected a timestamp, got {_kind(v)}")
    return fn


# ---------------------------------------------------------------------------------------------
# numbers and booleans
# ---------------------------------------------------------------------------------------------

_Q4 = Decimal("0.0001")
_DEC_LIMIT = Decimal(10) ** 14  # decimal128(18, 4): 14 digits before the point


def _decimal(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    def fn(v: Any) -> Decimal | None:
        if v is None or v == "":
            return None
        if isinstance(v, bool | dict | list):
            raise TransformError(f"expected a number, got {_kind(v) if not isinstance(v, bool) else repr(v)}")
        try:
            d = Decimal(v.strip()) if isinstance(v, str) else Decimal(repr(v) if isinstance(v, float) else v)
        except (InvalidOperation, ValueError, TypeError):
            raise TransformError(f"not a number: {_show(v)}") from None
        if not d.is_finite():
            raise TransformError(f"not a finite number: {_show(v)}")
        if abs(d) >= _DEC_LIMIT:
            raise TransformError(f"number too large for decimal(18,4): {_show(v)}")
        q = d.quantize(_Q4, rounding=ROUND_HALF_EVEN)
        if abs(q) >= _DEC_LIMIT:
            raise TransformError(f"number too large for decimal(18,4): {_show(v)}")
        return q
    return fn


_I64 = 2**63


def _integer(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    def fn(v: Any) -> int | None:
        if v.__class__ is int:
            n: int = v
        elif v is None or v == "":
            return None
        elif isinstance(v, bool):
            raise TransformError(f"expected an integer, got {v!r}")
        elif isinstance(v, str):
            s = v.strip()
            try:
                n = int(s)
            except ValueError:
                try:
                    d = Decimal(s)
                except InvalidOperation:
                    raise TransformError(f"not an integer: {_show(v)}") from None
                if not d.is_finite() or d != d.to_integral_value():
                    raise TransformError(f"not an integer: {_show(v)}") from None
                n = int(d)
        elif isinstance(v, float):
            if not v.is_integer():
                raise TransformError(f"not an integer: {v!r}")
            n = int(v)
        elif isinstance(v, int):
            n = int(v)
        else:
            raise TransformError(f"expected an integer, got {_kind(v)}")
        if not -_I64 <= n < _I64:
            raise TransformError(f"integer out of 64-bit range: {_show(v)}")
        return n
    return fn


def _float(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    def fn(v: Any) -> float | None:
        if v is None or v == "":
            return None
        if isinstance(v, bool) or not isinstance(v, str | int | float | Decimal):
            raise TransformError(f"expected a number, got {_kind(v) if not isinstance(v, bool) else repr(v)}")
        try:
            f = float(v)
        except (ValueError, OverflowError):
            raise TransformError(f"not a number: {_show(v)}") from None
        if not math.isfinite(f):
            raise TransformError(f"not a finite number: {_show(v)}")
        return f
    return fn


_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


def _boolean(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    def fn(v: Any) -> bool | None:
        if v is True or v is False:
            return bool(v)
        if v is None or v == "":
            return None
        if isinstance(v, str):
            s = v.strip().lower()
            if s in _TRUE:
                return True
            if s in _FALSE:
                return False
        elif isinstance(v, int) and v in (0, 1):
            return v == 1
        raise TransformError(f"not a boolean (true/false, 1/0, yes/no): {_show(v)}")
    return fn


# ---------------------------------------------------------------------------------------------
# email, enum, coalesce, ref
# ---------------------------------------------------------------------------------------------


def _email(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    def fn(v: Any) -> str | None:
        if v is None:
            return None
        if not isinstance(v, str):
            raise TransformError(f"expected an email address, got {_kind(v)}")
        s = v.strip().lower()
        if not s:
            return None
        local, at, domain = s.partition("@")
        if (not at or not local or "@" in domain or "." not in domain or domain[0] == "."
                or domain[-1] == "." or " " in s or not s.isprintable()):
            raise TransformError(f"not an email address: {_show(v)}")
        return s
    return fn


def _enum_key(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _enum(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    table = params["table"]
    if not isinstance(table, Mapping) or not table:
        raise ValueError("'table' must be a non-empty mapping of vendor value -> canonical value")
    fold = params.get("case_insensitive", False)
    if not isinstance(fold, bool):
        raise ValueError("'case_insensitive' must be true or false")
    lookup: dict[str, str | None] = {}
    for k, out in table.items():
        if isinstance(out, dict | list):
            raise ValueError(f"table value for {k!r} must be text, not {_kind(out)}")
        key = _enum_key(k)
        lookup[key.lower() if fold else key] = None if out is None else _enum_key(out)
    has_default = "default" in params
    default = params.get("default")
    if isinstance(default, dict | list):
        raise ValueError("'default' must be text")
    default = None if default is None else _enum_key(default)
    miss = object()

    def fn(v: Any) -> str | None:
        if v is None or v == "":
            return None
        if isinstance(v, dict | list):
            raise TransformError(f"expected a single value, got {_kind(v)}")
        key = v if v.__class__ is str else _enum_key(v)
        out = lookup.get(key.lower() if fold else key, miss)
        if out is miss:
            if has_default:
                raise TransformError(f"value not in enum table, used default {default!r}: {_show(v)}",
                                     fallback=default)
            raise TransformError(f"value not in enum table: {_show(v)}")
        return out  # type: ignore[return-value]
    return fn


def _empty(v: Any) -> bool:
    return v is None or v == "" or v == [] or v == {}


def _coalesce(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    paths = params["paths"]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise ValueError("'paths' must be a non-empty list of dot paths")

    def fn(values: Any) -> Any:
        if values is None:
            return None
        for v in values:
            if not _empty(v):
                return v
        return None
    return fn


def _ref(params: Mapping[str, Any], ctx: TransformContext) -> TransformFn:
    obj = params["object"]
    if not isinstance(obj, str) or not obj:
        raise ValueError("'object' must be the vendor object name, e.g. companies")
    key = keyer(ctx.system, ctx.instance, obj)

    def fn(v: Any) -> str | None:
        if v.__class__ is str:
            return key(v) if v else None
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float | Decimal):
            raise TransformError(f"expected a record id, got {_kind(v)}")
        return key(str(v))
    return fn


BUILTIN_TRANSFORMS: tuple[TransformSpec, ...] = (
    TransformSpec("string", _string, {}, output=pa.string(),
                  description="Text as the vendor holds it; numbers and booleans become text."),
    TransformSpec("timestamp", _timestamp,
                  {"unit": "unit of numeric values: ms (default) or s"}, output=pa.timestamp("us", tz="UTC"),
                  description="ISO 8601 (Z, +02:00, +0000, fractions), YYYY-MM-DD, or epoch ms/s; to UTC."),
    TransformSpec("decimal", _decimal, {}, output=pa.decimal128(18, 4),
                  description="Number or numeric text to decimal(18,4), rounded half-even."),
    TransformSpec("integer", _integer, {}, output=pa.int64(),
                  description="Integer or integral text (\"42\", \"42.0\") to int64."),
    TransformSpec("float", _float, {}, output=pa.float64(), description="Number or numeric text to float64."),
    TransformSpec("boolean", _boolean, {}, output=pa.bool_(),
                  description="true/false, 1/0, yes/no (any case) or a real boolean."),
    TransformSpec("email", _email, {}, output=pa.string(),
                  description="Trimmed, lower-cased email; exactly one @ and a dot in the domain."),
    TransformSpec("enum", _enum,
                  {"table": "mapping of vendor value -> canonical value",
                   "default": "canonical value for values not in the table (noted as a field reject)",
                   "case_insensitive": "match vendor values ignoring case (default false)"},
                  required_params=("table",), output=pa.string(),
                  description="Look the value up in table."),
    TransformSpec("coalesce", _coalesce,
                  {"paths": "list of dot paths; the first non-empty value wins",
                   "then": "transform applied to that value (default: the column's default transform)"},
                  required_params=("paths",), reads="paths",
                  description="First non-empty value of several paths."),
    TransformSpec("constant", _constant, {"value": "the value every row gets"},
                  required_params=("value",), reads="none", description="The same value on every row."),
    TransformSpec("ref", _ref, {"object": "vendor object of the referenced record, e.g. companies"},
                  required_params=("object",), output=pa.string(),
                  description="Canonical id of a referenced record of the same system and instance."),
    TransformSpec("json", _json, {}, output=pa.string(), description="Any value dumped as JSON text."),
)


@hookimpl
def register_transforms(register: Callable[..., None]) -> None:
    """Register core's named transforms."""
    for spec in BUILTIN_TRANSFORMS:
        register(spec)
