"""Each built-in transform with good and bad inputs, taken from the registry the hook fills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pluggy
import pytest

import core.transforms
from core import hookspecs
from core.lineage import row_key
from core.plugins import build_registry
from core.transforms import TransformContext, TransformError, TransformSpec

CTX = TransformContext(system="hubspot", instance="portal-1", file="mappings/x.yaml", field="f")


def _registry_transforms() -> dict[str, Any]:
    pm = pluggy.PluginManager("factoryline")
    pm.add_hookspecs(hookspecs)
    pm.register(core.transforms, name="core_transforms")
    return build_registry(pm).transforms


TRANSFORMS = _registry_transforms()


def fn(name: str, **params: Any) -> Any:
    return TRANSFORMS[name].factory(params, CTX)


def test_hook_registers_every_builtin_transform() -> None:
    assert sorted(TRANSFORMS) == sorted(
        ["string", "timestamp", "decimal", "integer", "float", "boolean", "email", "enum", "coalesce",
         "constant", "ref", "json"])
    assert all(isinstance(s, TransformSpec) and s.description for s in TRANSFORMS.values())


# --- timestamp ----------------------------------------------------------------------------------

TS_GOOD = [
    ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2024-01-02T03:04:05.123Z", datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)),
    ("2024-01-02T03:04:05.123456Z", datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
    ("2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2024-01-02T03:04:05.000+0000", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),  # Salesforce
    ("2024-01-01T22:04:05.000-0500", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),  # naive -> UTC
    ("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
    (1704164645000, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),  # epoch ms int
    ("1704164645000", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),  # epoch ms string (HubSpot)
    ("1704164645123", datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)),
    (datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))), datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    (None, None),
    ("", None),
]


@pytest.mark.parametrize(("raw", "expected"), TS_GOOD)
def test_timestamp_good(raw: Any, expected: datetime | None) -> None:
    out = fn("timestamp")(raw)
    assert out == expected
    if out is not None:
        assert out.utcoffset() == timedelta(0)


def test_timestamp_epoch_seconds_unit() -> None:
    assert fn("timestamp", unit="s")(1704164645) == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(("raw", "reason"), [
    ("yesterday", "not an ISO 8601 timestamp or epoch ms: yesterday"),
    ("2024-13-01", "not a valid date: 2024-13-01"),
    ("2024-01-02T25:00:00Z", "not an ISO 8601 timestamp or epoch ms: 2024-01-02T25:00:00Z"),
    (True, "expected a timestamp, got True"),
    ({"a": 1}, "expected a timestamp, got an object"),
    (10**20, "epoch ms value out of range: 100000000000000000000"),
])
def test_timestamp_bad(raw: Any, reason: str) -> None:
    with pytest.raises(TransformError) as exc:
        fn("timestamp")(raw)
    assert exc.value.reason == reason


def test_timestamp_bad_unit_param() -> None:
    with pytest.raises(ValueError, match="'unit' must be 'ms' or 's'"):
        fn("timestamp", unit="h")


# --- numbers, booleans ----------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("1234.50", Decimal("1234.5000")), (12, Decimal("12.0000")), (0.1, Decimal("0.1000")),
    ("1.23456", Decimal("1.2346")), (" -7 ", Decimal("-7.0000")), (None, None), ("", None),
])
def test_decimal_good(raw: Any, expected: Decimal | None) -> None:
    out = fn("decimal")(raw)
    assert out == expected
    if out is not None:
        assert out.as_tuple().exponent == -4


@pytest.mark.parametrize(("raw", "reason"), [
    ("12,50", "not a number: 12,50"), ("NaN", "not a finite number: NaN"), (True, "expected a number, got True"),
    ("1e20", "number too large for decimal(18,4): 1e20"), ([1], "expected a number, got a list"),
])
def test_decimal_bad(raw: Any, reason: str) -> None:
    with pytest.raises(TransformError) as exc:
        fn("decimal")(raw)
    assert exc.value.reason == reason


@pytest.mark.parametrize(("raw", "expected"), [("42", 42), (42, 42), ("42.0", 42), (3.0, 3), (" -5 ", -5), ("", None)])
def test_integer_good(raw: Any, expected: int | None) -> None:
    assert fn("integer")(raw) == expected


@pytest.mark.parametrize(("raw", "reason"), [
    ("4.5", "not an integer: 4.5"), ("abc", "not an integer: abc"), (False, "expected an integer, got False"),
    (2**63, "integer out of 64-bit range: 9223372036854775808"), (1.5, "not an integer: 1.5"),
])
def test_integer_bad(raw: Any, reason: str) -> None:
    with pytest.raises(TransformError) as exc:
        fn("integer")(raw)
    assert exc.value.reason == reason


def test_float() -> None:
    f = fn("float")
    assert (f("0.25"), f(3), f(None), f("")) == (0.25, 3.0, None, None)
    for bad, reason in [("x", "not a number: x"), ("inf", "not a finite number: inf"), (True, "expected a number, got True")]:
        with pytest.raises(TransformError) as exc:
            f(bad)
        assert exc.value.reason == reason


@pytest.mark.parametrize(("raw", "expected"), [
    (True, True), (False, False), ("true", True), ("FALSE", False), ("Yes", True), ("no", False),
    ("1", True), ("0", False), (1, True), (0, False), (None, None), ("", None),
])
def test_boolean_good(raw: Any, expected: bool | None) -> None:
    assert fn("boolean")(raw) is expected


@pytest.mark.parametrize("raw", ["maybe", 2, 1.0, [True]])
def test_boolean_bad(raw: Any) -> None:
    with pytest.raises(TransformError, match="not a boolean"):
        fn("boolean")(raw)


# --- text -----------------------------------------------------------------------------------------

def test_string() -> None:
    s = fn("string")
    assert (s("Ann"), s(""), s(None), s(12), s(True), s(1.5)) == ("Ann", None, None, "12", "true", "1.5")
    with pytest.raises(TransformError) as exc:
        s({"a": 1})
    assert exc.value.reason == "expected text, got an object; map it with transform 'json' to keep it as JSON"


@pytest.mark.parametrize(("raw", "expected"), [
    ("  Ann.Lee@Example.COM ", "ann.lee@example.com"), ("a@b.co", "a@b.co"), ("", None), (None, None),
])
def test_email_good(raw: Any, expected: str | None) -> None:
    assert fn("email")(raw) == expected


@pytest.mark.parametrize("raw", ["ann", "ann@@b.com", "a@b@c.com", "ann@localhost", "@b.com", "ann@.com",
                                 "ann@b.com.", "a nn@b.com", "ann@b.com\x00"])
def test_email_bad(raw: str) -> None:
    with pytest.raises(TransformError) as exc:
        fn("email")(raw)
    assert exc.value.reason.startswith("not an email address: ")


def test_enum() -> None:
    table = {"lead": "lead", "marketingqualifiedlead": "mql", True: "yes", 3: "three"}
    e = fn("enum", table=table)
    assert (e("lead"), e("marketingqualifiedlead"), e(True), e(3), e("3"), e(None)) == (
        "lead", "mql", "yes", "three", "three", None)
    with pytest.raises(TransformError) as exc:
        e("LEAD")
    assert exc.value.reason == "value not in enum table: LEAD"
    assert exc.value.fallback is None


def test_enum_default_and_case_insensitive() -> None:
    e = fn("enum", table={"Lead": "lead"}, default="other", case_insensitive=True)
    assert e("LEAD") == "lead"
    with pytest.raises(TransformError) as exc:
        e("partner")
    assert exc.value.fallback == "other"
    assert exc.value.reason == "value not in enum table, used default 'other': partner"


def test_enum_bad_params() -> None:
    with pytest.raises(ValueError, match="'table' must be a non-empty mapping"):
        fn("enum", table=["a"])
    with pytest.raises(ValueError, match="'case_insensitive' must be true or false"):
        fn("enum", table={"a": "b"}, case_insensitive="yes")


def test_coalesce_first_non_empty() -> None:
    c = fn("coalesce", paths=["a", "b", "c"])
    assert c([None, "", "x"]) == "x"
    assert c([None, [], {}]) is None
    assert c(["first", "second"]) == "first"
    with pytest.raises(ValueError, match="'paths' must be a non-empty list"):
        fn("coalesce", paths="a")


def test_constant() -> None:
    assert fn("constant", value="email")("ignored") == "email"
    with pytest.raises(ValueError, match="'value' must be a scalar"):
        fn("constant", value={"a": 1})


def test_ref_is_row_key_of_the_referenced_record() -> None:
    r = fn("ref", object="companies")
    assert r("9") == row_key("hubspot", "portal-1", "companies", "9")
    assert r(9) == r("9")
    assert (r(None), r("")) == (None, None)
    with pytest.raises(TransformError) as exc:
        r({"id": 9})
    assert exc.value.reason == "expected a record id, got an object"


def test_json() -> None:
    j = fn("json")
    assert j({"b": [1, 2], "a": None}) == '{"b":[1,2],"a":null}'
    assert j("x") == '"x"'
    assert j(None) is None


def test_docs_list_every_builtin_transform_and_param() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "mappings.md").read_text()
    for name, spec in TRANSFORMS.items():
        row = next((line for line in docs.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"docs/mappings.md has no row for transform {name!r}"
        for param in spec.params:
            assert f"`{param}`" in row, f"docs/mappings.md does not document {name}.{param}"
