"""The mapping engine: validation with file:line and choices, rows, provenance, extras, rejects."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pluggy
import pyarrow as pa
import pytest

import core.transforms
from core import hookspecs, plugins
from core.entities import PROVENANCE, entity
from core.errors import MappingError
from core.lineage import row_key
from core.mapping import REJECT_SCHEMA, CompiledMapping, MappedPage, load_mapping
from core.transforms import TransformContext, TransformError, TransformSpec

FIXTURES = Path(__file__).parent / "fixtures" / "mappings"
RUN = "run-1"
AT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _transforms(*extra: object) -> dict[str, TransformSpec]:
    pm = pluggy.PluginManager("factoryline")
    pm.add_hookspecs(hookspecs)
    pm.register(core.transforms, name="core_transforms")
    for i, plugin in enumerate(extra):
        pm.register(plugin, name=f"test_plugin_{i}")
    pm.check_pending()
    return plugins.build_registry(pm).transforms


TRANSFORMS = _transforms()


def compiled(name: str, stream: str = "contacts", transforms: Mapping[str, TransformSpec] | None = None
             ) -> CompiledMapping:
    spec = load_mapping(FIXTURES / "valid" / name, transforms or TRANSFORMS)
    return spec.compile(system="hubspot", instance="portal-1", stream=stream, raw_table=f"hubspot__{stream}")


def mapped(cm: CompiledMapping, records: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], MappedPage]:
    page = cm.map_page(records, run_id=RUN, extracted_at=AT)
    assert page.rows.schema.equals(cm.entity.arrow_schema(), check_metadata=True)
    assert page.rejects.schema.equals(REJECT_SCHEMA)
    return page.rows.to_pylist(), page.rejects.to_pylist(), page


def contact(i: int = 1, **props: Any) -> dict[str, Any]:
    p = {"email": f" Person{i}@Example.COM ", "firstname": f"Ann{i}", "lastname": "Lee", "lifecyclestage": "lead",
         "company": None, "associatedcompanyname": "Acme", "hs_object_id": str(i), "favourite_colour": "blue",
         "internal": "x"}
    p.update(props)
    return {"id": str(i), "properties": p, "createdAt": "2024-01-02T03:04:05.123Z",
            "updatedAt": "2024-05-01T00:00:00Z", "archived": False,
            "associations": {"companies": [{"toObjectId": 77}]}, "url": "https://x.test/c/1",
            "meta": {"source": {"kind": "import", "ids": [1, 2]}, "empty": {}}}


# --- validation -----------------------------------------------------------------------------------

CORE_TRANSFORMS = ("boolean, coalesce, constant, decimal, email, enum, float, integer, json, ref, string, "
                   "timestamp")
PERSON_FIELDS = ("account_id, city, company_name, country, created_at, email, first_name, job_title, last_name, "
                 "lead_source, lead_status, lifecycle_stage, owner_id, phone, region, social_handle")

INVALID = [
    ("bad_syntax.yaml", 5, "invalid YAML: expected ',' or '}', but got ':' (while parsing a flow mapping started "
                           "at line 4)"),
    ("unknown_entity.yaml", 2, "unknown entity 'persn' (valid choices: account, attribution_credit, campaign, "
                               "campaign_membership, identity_link, lifecycle_event, opportunity, order, order_line, "
                               "person, touch)"),
    ("unknown_field.yaml", 5, f"unknown field 'emial_address' for entity 'person' (valid choices: {PERSON_FIELDS})"),
    ("unknown_transform.yaml", 9, f"unknown transform 'timestap' for field 'created_at' (valid choices: "
                                  f"{CORE_TRANSFORMS})"),
    ("unknown_then.yaml", 7, f"unknown transform 'timestmp' in 'then' for field 'created_at' (valid choices: "
                             f"{CORE_TRANSFORMS})"),
    ("unknown_param.yaml", 8, "unknown parameter 'defualt' for transform 'enum' for field 'lifecycle_stage' "
                              "(valid choices: case_insensitive, default, path, table, then, transform)"),
    ("missing_param.yaml", 5, "missing parameter 'table' for transform 'enum' for field 'lifecycle_stage' "
                              "(valid choices: case_insensitive, default, path, table, then, transform)"),
    ("missing_path.yaml", 4, "missing 'path' for field 'created_at': the dot path of the vendor value "
                             "(valid choices: path, then, transform, unit)"),
    ("missing_record_id.yaml", 1, "missing 'record_id': the dot path of the vendor record id, e.g. 'record_id: id'"),
    ("required_not_mapped.yaml", 3, "required field of entity 'account' not mapped: name (records without it "
                                    "would all be rejected)"),
    ("wrong_type.yaml", 5, "transform 'string' gives string, but field 'created_at' is timestamp[us, tz=UTC] "
                           "(valid choices: coalesce, constant, timestamp)"),
    ("duplicate_key.yaml", 6, "duplicate key 'email' in 'fields' (first at line 4)"),
    ("unknown_top_key.yaml", 3, "unknown key 'feilds' (valid choices: deleted, deleted_at, element_id, entity, "
                                "explode, fields, ignore, record_id, source_object, updated_at, version_note)"),
    ("bad_param_value.yaml", 4, "transform 'enum' for field 'lifecycle_stage': 'table' must be a non-empty "
                                "mapping of vendor value -> canonical value"),
    ("parent_without_explode.yaml", 4, "path of field 'email' is 'parent.properties.email', but 'parent.' paths "
                                       "only work with 'explode'"),
    ("bad_constant.yaml", 5, "constant 'many' does not fit field 'employees' (int64)"),
]


@pytest.mark.parametrize(("name", "line", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_mapping_names_file_line_and_choices(name: str, line: int, message: str) -> None:
    with pytest.raises(MappingError) as exc:
        load_mapping(FIXTURES / "invalid" / name, TRANSFORMS)
    assert str(exc.value) == f"mappings/invalid/{name}:{line}: {message}"
    assert exc.value.file == f"mappings/invalid/{name}"
    assert exc.value.line == line
    if "(valid choices: " in message:
        assert exc.value.choices == message.split("(valid choices: ")[1].rstrip(")").split(", ")


def test_empty_and_missing_files() -> None:
    with pytest.raises(MappingError) as exc:
        load_mapping(FIXTURES / "invalid" / "empty.yaml", TRANSFORMS)
    assert str(exc.value) == ("mappings/invalid/empty.yaml: mapping file is empty; it needs at least 'entity', "
                              "'record_id' and 'fields'")
    with pytest.raises(MappingError, match=r"^mappings/invalid/nope\.yaml: cannot read mapping file"):
        load_mapping(FIXTURES / "invalid" / "nope.yaml", TRANSFORMS)


def test_spec_describes_the_file() -> None:
    path = FIXTURES / "valid" / "contacts.yaml"
    spec = load_mapping(path, TRANSFORMS)
    assert spec.entity is entity("person")
    assert spec.version == hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert (spec.source_object, spec.version_note, spec.file) == ("contacts", "test fixture", path)
    fields = {f[0]: f[1:] for f in spec.fields}
    assert fields["email"] == ("properties.email", "email", {})
    assert fields["first_name"] == ("properties.firstname", "string", {})
    assert fields["company_name"] == (["properties.company", "properties.associatedcompanyname"], "coalesce",
                                      {"paths": ["properties.company", "properties.associatedcompanyname"],
                                       "then": {"transform": "string"}})
    assert fields["lead_source"] == (None, "constant", {"value": "email"})
    assert fields["lifecycle_stage"][2]["default"] == "other"


# --- rows, provenance, extras -------------------------------------------------------------------------

def test_maps_a_page_to_canonical_rows() -> None:
    cm = compiled("contacts.yaml")
    rows, rejects, _ = mapped(cm, [contact(1), contact(2, lifecyclestage="marketingqualifiedlead", company="Co")])
    assert rejects == []
    r1, r2 = rows
    assert r1["email"] == "person1@example.com"
    assert (r1["first_name"], r1["last_name"], r1["lifecycle_stage"], r1["company_name"]) == ("Ann1", "Lee", "lead", "Acme")
    assert (r2["lifecycle_stage"], r2["company_name"]) == ("mql", "Co")
    assert r1["created_at"] == datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    assert r1["account_id"] == row_key("hubspot", "portal-1", "companies", "77")
    assert r1["lead_source"] == "email"
    assert r1["phone"] is None and r1["city"] is None  # unmapped columns are present and null


def test_every_row_carries_provenance() -> None:
    path = FIXTURES / "valid" / "contacts.yaml"
    cm = compiled("contacts.yaml", stream="contacts_v3")
    archived = contact(2)
    archived.update(archived=True, archivedAt="2024-05-02T00:00:00Z")
    rows, _, page = mapped(cm, [contact(1), archived])
    version = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    r = rows[0]
    assert r["id"] == row_key("hubspot", "portal-1", "contacts", "1")  # source_object from the file
    assert r["raw_key"] == row_key("hubspot", "portal-1", "contacts_v3", "1")  # stream passed at compile time
    assert (r["source_system"], r["source_instance"], r["source_object"], r["source_record_id"]) == (
        "hubspot", "portal-1", "contacts", "1")
    assert (r["run_id"], r["mapping_version"], r["raw_table"], r["extracted_at"]) == (
        RUN, version, "hubspot__contacts_v3", AT)
    assert r["source_updated_at"] == datetime(2024, 5, 1, tzinfo=UTC)
    assert (r["is_deleted"], r["deleted_at"]) == (False, None)
    assert (rows[1]["is_deleted"], rows[1]["deleted_at"]) == (True, datetime(2024, 5, 2, tzinfo=UTC))
    for col in PROVENANCE:
        if col.required:
            assert page.rows.column(col.name).null_count == 0, col.name


def test_source_object_defaults_to_stream_and_is_deleted_to_false() -> None:
    cm = compiled("accounts.yaml", stream="companies")
    rows, _, _ = mapped(cm, [{"id": 5, "properties": {"name": "Acme"}}])
    assert rows[0]["source_object"] == "companies"
    assert rows[0]["id"] == rows[0]["raw_key"] == row_key("hubspot", "portal-1", "companies", "5")
    assert rows[0]["source_record_id"] == "5"  # integer ids become text
    assert rows[0]["is_deleted"] is False


def test_extras_keep_every_unmapped_leaf() -> None:
    cm = compiled("contacts.yaml")
    rows, _, _ = mapped(cm, [contact(1)])
    extras = orjson.loads(rows[0]["extras"])
    assert extras == {
        "properties.favourite_colour": "blue",
        # a list the mapping only reads one element of is kept whole
        "associations.companies": [{"toObjectId": 77}],
        "url": "https://x.test/c/1",
        "meta.source.kind": "import",
        "meta.source.ids": [1, 2],
        "meta.empty": {},
    }
    # mapped, id, updated_at, deleted and ignored paths are not in extras; mapped nulls are not either
    for gone in ("id", "updatedAt", "archived", "properties.email", "properties.company", "properties.hs_object_id"):
        assert gone not in extras


def test_typed_columns_and_shorthand_uses_the_column_default_transform() -> None:
    cm = compiled("accounts.yaml", stream="companies")
    rows, rejects, _ = mapped(cm, [{"id": "1", "properties": {"name": "Acme", "numberofemployees": "250",
                                                                "annualrevenue": "1234.5",
                                                                "createdate": "1704164645000"}}])
    assert rejects == []
    assert (rows[0]["employees"], rows[0]["annual_revenue"]) == (250, Decimal("1234.5000"))
    assert rows[0]["created_at"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)  # shorthand on a timestamp column


def test_text_columns_convert_numbers_and_treat_empty_as_null() -> None:
    cm = compiled("contacts.yaml")
    rows, rejects, _ = mapped(cm, [contact(1, firstname=12), contact(2, firstname=""), contact(3, firstname=True),
                                   contact(4, firstname={"given": "Ann"})])
    assert [r["first_name"] for r in rows] == ["12", None, "true", None]
    assert [(r["source_record_id"], r["field"], r["value"]) for r in rejects] == [("4", "first_name", '{"given":"Ann"}')]


def test_ids_are_stable_across_calls_and_compiles() -> None:
    records = [contact(1), contact(2), {"properties": {}}, contact(3, email="broken")]
    a = compiled("contacts.yaml").map_page(records, run_id="r1", extracted_at=AT)
    b = compiled("contacts.yaml").map_page(records, run_id="r2", extracted_at=datetime.now(UTC))
    assert a.rows.column("id").to_pylist() == b.rows.column("id").to_pylist()
    assert a.rows.column("raw_key").to_pylist() == b.rows.column("raw_key").to_pylist()
    assert a.rejects.column("id").to_pylist() == b.rejects.column("id").to_pylist()
    assert len(set(a.rejects.column("id").to_pylist())) == a.rejects.num_rows == 2


def test_empty_page() -> None:
    rows, rejects, page = mapped(compiled("contacts.yaml"), [])
    assert rows == rejects == []
    assert page.rows.num_rows == 0


# --- rejects ----------------------------------------------------------------------------------------

def test_record_without_id_is_rejected_with_its_payload() -> None:
    cm = compiled("contacts.yaml")
    no_id = {"properties": {"email": "a@b.com"}}
    bad_id = {"id": {"nested": 1}, "properties": {}}
    rows, rejects, _ = mapped(cm, [no_id, contact(1), bad_id, ["not", "a", "record"]])
    assert [r["source_record_id"] for r in rows] == ["1"]
    assert [(r["severity"], r["field"], r["reason"], r["value"]) for r in rejects] == [
        ("record", "record_id", "record has no id at 'id'", None),
        ("record", "record_id", "record id at 'id' must be text or an integer", '{"nested":1}'),
        ("record", None, "record is not a JSON object but list", '["not","a","record"]'),
    ]
    assert orjson.loads(rejects[0]["payload"]) == no_id
    assert orjson.loads(rejects[1]["payload"]) == bad_id
    r = rejects[0]
    assert (r["source_system"], r["source_instance"], r["source_object"], r["raw_table"], r["entity"]) == (
        "hubspot", "portal-1", "contacts", "hubspot__contacts", "person")
    assert (r["mapping_file"], r["run_id"], r["extracted_at"], r["raw_key"]) == (
        "mappings/valid/contacts.yaml", RUN, AT, None)
    assert r["mapping_version"] == cm.version
    payload_hash = hashlib.blake2b(orjson.dumps(no_id), digest_size=16).hexdigest()
    assert r["id"] == row_key(f"payload:{payload_hash}", "mappings/valid/contacts.yaml", "record_id", r["reason"])


def test_unparseable_required_timestamp_rejects_the_record() -> None:
    cm = compiled("touches.yaml", stream="email_events")
    good = {"id": "e1", "type": "open", "created": 1704164645000, "recipientId": "c9", "link": None}
    bad = {"id": "e2", "type": "CLICK", "created": "last tuesday", "contactId": "c1"}
    empty = {"id": "e3", "type": "SENT"}
    rows, rejects, _ = mapped(cm, [good, bad, empty])
    assert [r["source_record_id"] for r in rows] == ["e1"]
    assert rows[0]["touch_type"] == "email_open"  # case_insensitive
    assert rows[0]["person_id"] == row_key("hubspot", "portal-1", "contacts", "c9")  # coalesce then ref
    assert rows[0]["occurred_at"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert [(r["source_record_id"], r["severity"], r["field"], r["reason"], r["value"]) for r in rejects] == [
        ("e2", "record", "occurred_at", "not an ISO 8601 timestamp or epoch ms: last tuesday", "last tuesday"),
        ("e3", "record", "occurred_at", "required field 'occurred_at' is empty (path 'created')", None),
    ]
    assert orjson.loads(rejects[0]["payload"]) == bad
    assert rejects[0]["raw_key"] == row_key("hubspot", "portal-1", "email_events", "e2")


def test_bad_optional_values_become_null_plus_a_field_reject() -> None:
    cm = compiled("accounts.yaml", stream="companies")
    rec = {"id": "1", "properties": {"name": "Acme", "numberofemployees": "lots", "annualrevenue": {"v": 1},
                                     "createdate": "2024-02-30"}}
    rows, rejects, _ = mapped(cm, [rec])
    assert len(rows) == 1
    assert (rows[0]["name"], rows[0]["employees"], rows[0]["annual_revenue"], rows[0]["created_at"]) == (
        "Acme", None, None, None)
    assert [(r["severity"], r["field"], r["reason"], r["value"]) for r in rejects] == [
        ("field", "employees", "not an integer: lots", "lots"),
        ("field", "annual_revenue", "expected a number, got an object", '{"v":1}'),
        ("field", "created_at", "not a valid date: 2024-02-30", "2024-02-30"),
    ]
    assert all(orjson.loads(r["payload"]) == rec for r in rejects)
    assert all(r["source_record_id"] == "1" for r in rejects)


def test_required_text_column_empty_rejects_record() -> None:
    cm = compiled("accounts.yaml", stream="companies")
    rows, rejects, _ = mapped(cm, [{"id": "1", "properties": {"name": ""}}, {"id": "2", "properties": {"name": "B"}}])
    assert [r["name"] for r in rows] == ["B"]
    assert [(r["severity"], r["field"], r["reason"]) for r in rejects] == [
        ("record", "name", "required field 'name' is empty (path 'properties.name')")]


def test_enum_default_emits_row_and_a_field_note() -> None:
    rows, rejects, _ = mapped(compiled("contacts.yaml"), [contact(1, lifecyclestage="partner")])
    assert rows[0]["lifecycle_stage"] == "other"
    assert [(r["severity"], r["field"], r["reason"], r["value"]) for r in rejects] == [
        ("field", "lifecycle_stage", "value not in enum table, used default 'other': partner", "partner")]


def test_bad_email_and_bad_deleted_flag_are_field_rejects() -> None:
    rec = contact(1, email="not-an-email")
    rec["archived"] = "perhaps"
    rows, rejects, _ = mapped(compiled("contacts.yaml"), [rec])
    assert (rows[0]["email"], rows[0]["is_deleted"]) == (None, False)
    assert [(r["field"], r["reason"]) for r in rejects] == [
        ("email", "not an email address: not-an-email"),
        ("deleted", "not a boolean (true/false, 1/0, yes/no): perhaps")]


# --- explode -----------------------------------------------------------------------------------------

def test_explode_one_row_per_element_keyed_by_element_id() -> None:
    cm = compiled("order_lines.yaml", stream="orders")
    order = {"id": "o1", "updatedAt": "2024-03-01T00:00:00Z", "note": "gift",
             "lineItems": {"nodes": [
                 {"id": "L1", "sku": "A", "title": "Apple", "quantity": 2, "price": {"amount": "1.50"}, "tax": 0},
                 {"id": "L2", "sku": "B", "title": "Bread", "quantity": "x", "price": {"amount": "3"}},
                 {"sku": "C"},
             ]}}
    rows, rejects, _ = mapped(cm, [order, {"id": "o2", "lineItems": {"nodes": []}}, {"id": "o3"}])
    assert [r["source_record_id"] for r in rows] == ["o1/L1", "o1/L2"]
    r = rows[0]
    assert r["id"] == row_key("hubspot", "portal-1", "order_lines", "o1/L1")
    assert r["raw_key"] == row_key("hubspot", "portal-1", "orders", "o1")  # points at the raw order
    assert r["order_id"] == row_key("hubspot", "portal-1", "orders", "o1")
    assert (r["sku"], r["product_name"], r["quantity"], r["unit_price"]) == ("A", "Apple", 2, Decimal("1.5000"))
    assert r["source_updated_at"] == datetime(2024, 3, 1, tzinfo=UTC)  # record-level path reads the order
    assert orjson.loads(r["extras"]) == {"tax": 0}  # extras of the element
    assert rows[1]["quantity"] is None
    assert [(r["source_record_id"], r["severity"], r["field"], r["reason"]) for r in rejects] == [
        ("o1/2", "record", "element_id", "element 2 has no usable id at 'id'"),
        ("o1/L2", "field", "quantity", "not an integer: x"),
    ]
    assert orjson.loads(rejects[0]["payload"]) == order


def test_explode_by_index_and_non_list() -> None:
    cm = compiled("order_lines_by_index.yaml", stream="orders")
    rows, rejects, _ = mapped(cm, [{"id": "o1", "lines": [{"sku": "A"}, {"sku": "B"}]},
                                   {"id": "o2", "lines": {"sku": "C"}}])
    assert [(r["source_record_id"], r["sku"]) for r in rows] == [("o1/0", "A"), ("o1/1", "B")]
    assert rows[1]["id"] == row_key("hubspot", "portal-1", "orders", "o1/1")
    assert [(r["severity"], r["reason"]) for r in rejects] == [("record", "'explode' path 'lines' is not a list")]


def test_explode_elements_that_are_not_objects() -> None:
    cm = compiled("order_lines_by_index.yaml", stream="orders")
    rows, rejects, _ = mapped(cm, [{"id": "o1", "lines": ["A", {"sku": "B"}]}])
    assert [(r["source_record_id"], r["sku"]) for r in rows] == [("o1/0", None), ("o1/1", "B")]
    assert orjson.loads(rows[0]["extras"]) == {"_value": "A"}  # kept, not dropped
    assert rejects == []


# --- plugins ------------------------------------------------------------------------------------------

def _reverse(params: Mapping[str, Any], ctx: TransformContext) -> Callable[[Any], Any]:
    def fn(v: Any) -> Any:
        if v is None:
            return None
        if not isinstance(v, str):
            raise TransformError(f"cannot reverse {type(v).__name__}")
        return v[::-1]
    return fn


def _shout(params: Mapping[str, Any], ctx: TransformContext) -> Callable[[Any], Any]:
    suffix = params["suffix"]
    return lambda v: None if v is None else f"{v.upper()}{suffix} ({ctx.system}/{ctx.field})"


def _anything(params: Mapping[str, Any], ctx: TransformContext) -> Callable[[Any], Any]:
    def fn(v: Any) -> Any:
        if v == "boom":
            raise RuntimeError("plugin bug")
        return v
    return fn


class NamePlugin:
    """A third-party plugin: registers transforms through the factoryline hook."""

    @hookspecs.hookimpl
    def register_transforms(self, register: Callable[..., None]) -> None:
        register(TransformSpec("reverse", _reverse, {}, output=pa.string(), description="Reverse text."))
        register(TransformSpec("shout", _shout, {"suffix": "appended"}, required_params=("suffix",)))
        register(TransformSpec("anything", _anything, {}))


def test_transform_registered_by_a_plugin() -> None:
    transforms = _transforms(NamePlugin())
    assert {"reverse", "shout", "anything", "timestamp"} <= set(transforms)
    cm = compiled("plugin.yaml", stream="people", transforms=transforms)
    rows, rejects, _ = mapped(cm, [{"id": "1", "name": "anna", "city": "Rome"},
                                   {"id": "2", "name": 42, "city": 7},
                                   {"id": "3", "name": "bo", "city": "boom"}])
    assert [(r["first_name"], r["last_name"], r["city"]) for r in rows] == [
        ("anna", "ANNA! (hubspot/last_name)", "Rome"), (None, None, None), ("ob", "BO! (hubspot/last_name)", None)]
    assert [(r["source_record_id"], r["field"], r["reason"]) for r in rejects] == [
        ("2", "first_name", "cannot reverse int"),
        ("2", "last_name", "transform 'shout' failed: AttributeError: 'int' object has no attribute 'upper'"),
        ("2", "city", "transform 'anything' gave int, field needs string"),
        ("3", "city", "transform 'anything' failed: RuntimeError: plugin bug"),
    ]


def test_plugin_transform_unknown_without_the_plugin() -> None:
    with pytest.raises(MappingError) as exc:
        load_mapping(FIXTURES / "valid" / "plugin.yaml", TRANSFORMS)
    assert str(exc.value).startswith("mappings/valid/plugin.yaml:4: unknown transform 'reverse' for field "
                                     "'first_name' (valid choices: boolean, coalesce,")


def test_default_transforms_come_from_the_plugin_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTORYLINE_PLUGINS", "no_such_plugin")  # core transforms only
    plugins.reset()
    try:
        spec = load_mapping(FIXTURES / "valid" / "contacts.yaml")
        assert set(spec.transforms) >= {"timestamp", "ref", "enum"}
        with pytest.raises(MappingError, match="unknown transform 'reverse'"):
            load_mapping(FIXTURES / "valid" / "plugin.yaml")
    finally:
        plugins.reset()
