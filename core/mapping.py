"""The mapping engine: ``mappings/<vendor>/<stream>.yaml`` compiled into a fast page function.

::

    load_mapping(path)            parse + validate the YAML (MappingError names file:line + choices)
      -> MappingSpec              what the file says; .compile(system=, instance=, stream=, raw_table=)
      -> CompiledMapping          per-value functions bound once; .map_page(records, run_id=, extracted_at=)
      -> MappedPage               .rows (exactly entity.arrow_schema()) + .rejects (REJECT_SCHEMA)

A page is mapped column by column: one list comprehension per column over the page, one
``pa.array`` per column. Bad values never crash a page and never vanish: a record without an id,
or whose required column fails, becomes a ``record`` reject (not a row); a failing optional column
becomes null plus a ``field`` reject. See docs/mappings.md for the file format.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from core.entities import ENTITIES, Entity
from core.errors import MappingError
from core.lineage import keyer, row_key
from core.transforms import (
    BUILTIN_TRANSFORMS,
    TransformContext,
    TransformError,
    TransformFn,
    TransformSpec,
)

__all__ = [
    "REJECT_SCHEMA",
    "CompiledMapping",
    "FieldMapping",
    "MappedPage",
    "MappingSpec",
    "default_transform",
    "load_mapping",
]

_TS = pa.timestamp("us", tz="UTC")

REJECT_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("source_system", pa.string(), nullable=False),
    pa.field("source_instance", pa.string(), nullable=False),
    pa.field("source_object", pa.string(), nullable=False),
    pa.field("source_record_id", pa.string()),
    pa.field("raw_table", pa.string(), nullable=False),
    pa.field("raw_key", pa.string()),
    pa.field("entity", pa.string(), nullable=False),
    pa.field("mapping_file", pa.string(), nullable=False),
    pa.field("mapping_version", pa.string(), nullable=False),
    pa.field("severity", pa.string(), nullable=False),  # "record" (no row emitted) or "field" (row has null)
    pa.field("field", pa.string()),
    pa.field("reason", pa.string(), nullable=False),
    pa.field("value", pa.string()),
    pa.field("payload", pa.string()),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("extracted_at", _TS, nullable=False),
])

_TOP_KEYS = ("entity", "version_note", "source_object", "record_id", "element_id", "updated_at",
             "deleted", "deleted_at", "fields", "ignore", "explode")
#: provenance columns a mapping fills from the record, and their keys in the file
_RECORD_FIELDS = {"updated_at": "source_updated_at", "deleted": "is_deleted", "deleted_at": "deleted_at"}
_DEFAULTS: dict[str, str] = {
    str(pa.string()): "string",
    str(_TS): "timestamp",
    str(pa.decimal128(18, 4)): "decimal",
    str(pa.int64()): "integer",
    str(pa.float64()): "float",
    str(pa.bool_()): "boolean",
}
_PARENT = "parent."
#: keys of the synthetic row object in explode mode: the element and its enclosing record
_EL, _PA = "\x00element", "\x00parent"


def default_transform(column_type: pa.DataType) -> str | None:
    """The transform used when a field names no transform (and after ``coalesce``)."""
    return _DEFAULTS.get(str(column_type))


def _display_name(path: Path) -> str:
    """``.../mappings/hubspot/contacts.yaml`` -> ``mappings/hubspot/contacts.yaml`` (stable everywhere)."""
    parts = path.parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "mappings":
            return "/".join(parts[i:])
    return path.as_posix()


@dataclass(frozen=True)
class FieldMapping:
    """One mapped column, as validated from the file."""

    field: str
    #: source dot paths: one for ``path``, several for ``paths``, none for constants
    paths: tuple[str, ...]
    transform: str
    params: Mapping[str, Any]
    #: optional transform applied to the first one's result: (name, params)
    then: tuple[str, Mapping[str, Any]] | None
    line: int


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------


class _Loader:
    def __init__(self, path: Path, name: str, data: bytes, transforms: Mapping[str, TransformSpec]) -> None:
        self.path = path
        self.name = name
        self.data = data
        self.transforms = transforms
        self.constructor = SafeConstructor()

    def err(self, message: str, node: Node | None, choices: Sequence[str] | None = None) -> MappingError:
        line = node.start_mark.line + 1 if node is not None else None
        return MappingError(message, file=self.name, line=line, choices=list(choices) if choices else None)

    def value(self, node: Node) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.err(f"invalid YAML value: {problem}", node) from exc

    def items(self, node: Node, what: str) -> dict[str, tuple[Node, Node]]:
        if not isinstance(node, MappingNode):
            raise self.err(f"{what} must be a mapping (key: value lines)", node)
        out: dict[str, tuple[Node, Node]] = {}
        for k, v in node.value:
            key = self.value(k)
            if not isinstance(key, str):
                raise self.err(f"keys of {what} must be text, not {key!r}", k)
            if key in out:
                raise self.err(f"duplicate key {key!r} in {what} (first at line {out[key][0].start_mark.line + 1})", k)
            out[key] = (k, v)
        return out

    def text(self, node: Node, what: str) -> str:
        v = self.value(node)
        if not isinstance(node, ScalarNode) or not isinstance(v, str) or not v.strip():
            raise self.err(f"{what} must be non-empty text", node)
        return v.strip()

    def dot_path(self, node: Node, what: str, *, explode: bool) -> str:
        p = self.text(node, what)
        if any(not seg for seg in p.split(".")):
            raise self.err(f"{what} {p!r} is not a dot path (empty segment)", node)
        if p.startswith(_PARENT) and not explode:
            raise self.err(f"{what} is {p!r}, but 'parent.' paths only work with 'explode'", node)
        return p

    def load(self) -> MappingSpec:
        try:
            text = self.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.err(f"mapping file is not UTF-8: {exc.reason}", None) from exc
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            problem = exc.problem or exc.context or "syntax error"
            if exc.problem and exc.context and exc.context_mark is not None:
                problem += f" ({exc.context} started at line {exc.context_mark.line + 1})"
            raise MappingError(f"invalid YAML: {problem}", file=self.name, line=line) from exc
        except yaml.YAMLError as exc:
            raise MappingError(f"invalid YAML: {exc}", file=self.name) from exc
        if root is None:
            raise MappingError("mapping file is empty; it needs at least 'entity', 'record_id' and 'fields'",
                               file=self.name)
        top = self.items(root, "a mapping file")
        for key, (knode, _v) in top.items():
            if key not in _TOP_KEYS:
                raise self.err(f"unknown key {key!r}", knode, _TOP_KEYS)

        if "entity" not in top:
            raise self.err("missing 'entity': which canonical entity this file fills", root, list(ENTITIES))
        enode = top["entity"][1]
        ename = self.value(enode)
        if not isinstance(ename, str) or ename not in ENTITIES:
            raise self.err(f"unknown entity {ename!r}", enode, list(ENTITIES))
        ent = ENTITIES[ename]

        explode = None
        if "explode" in top:
            explode = self.dot_path(top["explode"][1], "'explode'", explode=False)
        if "record_id" not in top:
            raise self.err("missing 'record_id': the dot path of the vendor record id, e.g. 'record_id: id'", root)
        record_id = self.dot_path(top["record_id"][1], "'record_id'", explode=False)
        element_id = None
        if "element_id" in top:
            if explode is None:
                raise self.err("'element_id' only works with 'explode'", top["element_id"][0])
            element_id = self.dot_path(top["element_id"][1], "'element_id'", explode=False)
        source_object = self.text(top["source_object"][1], "'source_object'") if "source_object" in top else None
        version_note = None
        if "version_note" in top:
            vn = self.value(top["version_note"][1])
            version_note = None if vn is None else str(vn)

        record_fields: dict[str, FieldMapping] = {}
        for key, col_name in _RECORD_FIELDS.items():
            if key in top:
                knode, vnode = top[key]
                # record-level paths always read the enclosing record, also with 'explode'
                record_fields[key] = self.field(key, knode, vnode, ent.column(col_name).type, explode=False)

        fields: dict[str, FieldMapping] = {}
        fields_key: Node = root
        if "fields" in top:
            fields_key, fields_node = top["fields"]
            valid = ent.mappable
            for fname, (knode, vnode) in self.items(fields_node, "'fields'").items():
                if fname not in valid:
                    raise self.err(f"unknown field {fname!r} for entity {ent.name!r}", knode, valid)
                fields[fname] = self.field(fname, knode, vnode, ent.column(fname).type, explode=explode is not None)
        missing = [c.name for c in ent.columns if c.required and c.name not in fields]
        if missing:
            raise self.err(f"required field{'s' if len(missing) > 1 else ''} of entity {ent.name!r} not mapped: "
                           f"{', '.join(missing)} (records without {'them' if len(missing) > 1 else 'it'} "
                           "would all be rejected)", fields_key)

        ignore: list[str] = []
        if "ignore" in top:
            inode = top["ignore"][1]
            if not isinstance(inode, SequenceNode):
                raise self.err("'ignore' must be a list of dot paths", inode)
            ignore = [self.dot_path(n, "'ignore' entry", explode=False) for n in inode.value]

        version = hashlib.sha256(self.data).hexdigest()[:12]
        return MappingSpec(file=self.path, name=self.name, entity=ent, version=version,
                           source_object=source_object, version_note=version_note, record_id=record_id,
                           element_id=element_id, explode=explode, record_fields=record_fields,
                           field_map=fields, ignore=tuple(ignore), transforms=self.transforms)

    def transform(self, node: Node, where: str) -> TransformSpec:
        tname = self.value(node)
        spec = self.transforms.get(tname) if isinstance(tname, str) else None
        if spec is None:
            raise self.err(f"unknown transform {tname!r} {where}", node, list(self.transforms))
        if not isinstance(spec, TransformSpec):
            raise self.err(f"transform {tname!r} was registered as {type(spec).__name__}, not a TransformSpec; "
                           "fix the plugin that registers it", node)
        return spec

    def field(self, fname: str, knode: Node, vnode: Node, col_type: pa.DataType, *, explode: bool) -> FieldMapping:
        line = knode.start_mark.line + 1
        where = f"for field {fname!r}"
        if isinstance(vnode, ScalarNode):
            path = self.dot_path(vnode, f"path of field {fname!r}", explode=explode)
            tname = default_transform(col_type)
            if tname is None or tname not in self.transforms:
                raise self.err(f"field {fname!r} ({col_type}) needs an explicit transform", vnode,
                               self.valid_for(col_type))
            spec = self.transforms[tname]
            self.check_output(spec, None, fname, col_type, vnode)
            self.try_factory(spec, {}, fname, knode)
            return FieldMapping(fname, (path,), tname, {}, None, line)

        items = self.items(vnode, f"field {fname!r}")
        if "transform" in items:
            spec = self.transform(items["transform"][1], where)
        else:
            tname = default_transform(col_type)
            if tname is None or tname not in self.transforms:
                raise self.err(f"field {fname!r} ({col_type}) needs a 'transform'", vnode, self.valid_for(col_type))
            spec = self.transforms[tname]
        allowed = ["transform", "then", *spec.params]
        if spec.reads == "path":
            allowed.append("path")
        for key, (pk, _pv) in items.items():
            if key not in allowed:
                raise self.err(f"unknown parameter {key!r} for transform {spec.name!r} {where}", pk, allowed)
        for req in spec.required_params:
            if req not in items:
                raise self.err(f"missing parameter {req!r} for transform {spec.name!r} {where}", knode, allowed)
        paths: tuple[str, ...] = ()
        if spec.reads == "path":
            if "path" not in items:
                raise self.err(f"missing 'path' {where}: the dot path of the vendor value", knode, allowed)
            paths = (self.dot_path(items["path"][1], f"path of field {fname!r}", explode=explode),)
        elif spec.reads == "paths":
            pnode = items["paths"][1]
            if not isinstance(pnode, SequenceNode) or not pnode.value:
                raise self.err(f"'paths' {where} must be a non-empty list of dot paths", pnode)
            paths = tuple(self.dot_path(n, f"path of field {fname!r}", explode=explode) for n in pnode.value)
        params = {k: self.value(v) for k, (_k, v) in items.items() if k not in ("transform", "then", "path")}

        then: tuple[str, Mapping[str, Any]] | None = None
        then_spec: TransformSpec | None = None
        if "then" in items:
            tnode = items["then"][1]
            if isinstance(tnode, ScalarNode):
                then_spec = self.transform(tnode, f"in 'then' {where}")
                then_params: dict[str, Any] = {}
                tknode: Node = tnode
            else:
                titems = self.items(tnode, f"'then' {where}")
                if "transform" not in titems:
                    raise self.err(f"'then' {where} needs a 'transform'", tnode, list(self.transforms))
                then_spec = self.transform(titems["transform"][1], f"in 'then' {where}")
                tallowed = ["transform", *then_spec.params]
                for key, (pk, _pv) in titems.items():
                    if key not in tallowed:
                        raise self.err(f"unknown parameter {key!r} for transform {then_spec.name!r} in 'then' {where}",
                                       pk, tallowed)
                for req in then_spec.required_params:
                    if req not in titems:
                        raise self.err(f"missing parameter {req!r} for transform {then_spec.name!r} in 'then' {where}",
                                       tnode, tallowed)
                then_params = {k: self.value(v) for k, (_k, v) in titems.items() if k != "transform"}
                tknode = tnode
            if then_spec.reads != "path":
                raise self.err(f"transform {then_spec.name!r} cannot be used in 'then' (it reads {then_spec.reads})",
                               tknode)
            self.try_factory(then_spec, then_params, fname, tknode)
            then = (then_spec.name, then_params)
        elif spec.reads == "paths" and spec.output is None:
            dname = default_transform(col_type)
            if dname is not None and dname in self.transforms:
                then_spec = self.transforms[dname]
                then = (dname, {})
        self.check_output(spec, then_spec, fname, col_type, items.get("transform", (knode, vnode))[1])
        self.try_factory(spec, params, fname, knode)
        if spec.reads == "none" and then_spec is None and spec.output is None and "value" in params:
            try:
                pa.array([params["value"]], type=col_type)
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                raise self.err(f"constant {params['value']!r} does not fit field {fname!r} ({col_type})",
                               items["value"][1]) from None
        return FieldMapping(fname, paths, spec.name, params, then, line)

    def valid_for(self, col_type: pa.DataType) -> list[str]:
        return [n for n, s in self.transforms.items() if s.output is None or s.output.equals(col_type)]

    def check_output(self, spec: TransformSpec, then_spec: TransformSpec | None, fname: str,
                     col_type: pa.DataType, node: Node) -> None:
        last = then_spec if then_spec is not None else spec
        if last.output is not None and not last.output.equals(col_type):
            raise self.err(f"transform {last.name!r} gives {last.output}, but field {fname!r} is {col_type}",
                           node, self.valid_for(col_type))

    def try_factory(self, spec: TransformSpec, params: Mapping[str, Any], fname: str, node: Node) -> None:
        try:
            spec.factory(params, TransformContext(system="", instance="", file=self.name, field=fname))
        except Exception as exc:
            raise self.err(f"transform {spec.name!r} for field {fname!r}: {exc}", node) from exc


def load_mapping(path: Path, transforms: Mapping[str, TransformSpec] | None = None) -> MappingSpec:
    """Read and validate one mapping file. ``transforms`` defaults to every registered transform.

    Raises :class:`core.errors.MappingError` naming the file, the line and the valid choices.
    """
    path = Path(path)
    name = _display_name(path)
    if transforms is None:
        from core.plugins import get_registry
        transforms = get_registry().transforms
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MappingError(f"cannot read mapping file: {exc.strerror or exc}", file=name) from exc
    return _Loader(path, name, data, transforms).load()


class MappingSpec:
    """A validated mapping file. Compile it once per (system, instance, stream)."""

    def __init__(self, *, file: Path, name: str, entity: Entity, version: str, source_object: str | None,
                 version_note: str | None, record_id: str, element_id: str | None, explode: str | None,
                 record_fields: dict[str, FieldMapping], field_map: dict[str, FieldMapping],
                 ignore: tuple[str, ...], transforms: Mapping[str, TransformSpec]) -> None:
        self.file = file
        #: the file as shown in errors and stamped on rejects, e.g. ``mappings/hubspot/contacts.yaml``
        self.name = name
        self.entity = entity
        #: content hash of the file bytes (12 hex chars of sha256), stamped on every row
        self.version = version
        self.source_object = source_object
        self.version_note = version_note
        self.record_id = record_id
        self.element_id = element_id
        self.explode = explode
        #: ``updated_at`` / ``deleted`` / ``deleted_at`` when mapped
        self.record_fields = record_fields
        self.field_map = field_map
        self.ignore = ignore
        self.transforms = transforms

    @property
    def fields(self) -> list[tuple[str, str | list[str] | None, str, dict[str, Any]]]:
        """(canonical field, source path(s), transform name, params) per mapped column, for reports."""
        out: list[tuple[str, str | list[str] | None, str, dict[str, Any]]] = []
        for f in self.field_map.values():
            src: str | list[str] | None = f.paths[0] if len(f.paths) == 1 and "paths" not in f.params else (
                list(f.paths) if f.paths else None)
            params = dict(f.params)
            if f.then is not None:
                params["then"] = {"transform": f.then[0], **f.then[1]}
            out.append((f.field, src, f.transform, params))
        return out

    def compile(self, *, system: str, instance: str, stream: str, raw_table: str) -> CompiledMapping:
        return CompiledMapping(self, system=system, instance=instance, stream=stream, raw_table=raw_table)

    def __repr__(self) -> str:
        return f"MappingSpec({self.name!r}, entity={self.entity.name!r}, version={self.version!r})"


# ---------------------------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------------------------

Getter = Callable[[Any], Any]


def _getter(segments: Sequence[str]) -> Getter:
    """Fast accessor for a dot path: dict keys and list indexes; anything missing gives None."""
    if not any(s.isdigit() for s in segments):
        if len(segments) == 1:
            (a,) = segments

            def get1(r: Any) -> Any:
                try:
                    return r.get(a)
                except AttributeError:
                    return None
            return get1
        if len(segments) == 2:
            a, b = segments

            def get2(r: Any) -> Any:
                try:
                    return r.get(a).get(b)
                except AttributeError:
                    return None
            return get2
    steps = [(s, int(s) if s.isdigit() else None) for s in segments]

    def get(r: Any) -> Any:
        cur = r
        for key, idx in steps:
            if isinstance(cur, dict):
                cur = cur.get(key)
            elif idx is not None and isinstance(cur, list):
                cur = cur[idx] if idx < len(cur) else None
            else:
                return None
        return cur
    return get


def _segments(path: str, explode: bool) -> list[str]:
    segs = path.split(".")
    if not explode:
        return segs
    if path.startswith(_PARENT):
        return [_PA, *segs[1:]]
    return [_EL, *segs]


def _path_getter(path: str, explode: bool) -> Getter:
    return _getter(_segments(path, explode))


def _chain(first: TransformFn, then: TransformFn) -> TransformFn:
    def fn(v: Any) -> Any:
        return then(first(v))
    return fn


def _type_check(col_type: pa.DataType) -> Callable[[Any], bool]:
    if pa.types.is_string(col_type):
        return lambda v: isinstance(v, str)
    if pa.types.is_timestamp(col_type):
        return lambda v: isinstance(v, datetime)
    if pa.types.is_boolean(col_type):
        return lambda v: isinstance(v, bool)
    if pa.types.is_integer(col_type):
        return lambda v: isinstance(v, int) and not isinstance(v, bool)
    return lambda v: True


@dataclass
class _Column:
    name: str
    type: pa.DataType
    required: bool
    get: Getter
    fn: TransformFn
    transform: str
    path_text: str
    #: simple paths (dict keys only): the page is walked once per distinct ``prefix`` and the
    #: column reads ``key`` from each object of that list; else ``get`` reads each row
    prefix: tuple[str, ...] | None = None
    key: str | None = None
    #: name in reject rows: the canonical column, or updated_at / deleted / deleted_at
    label: str = ""
    #: ``reads="paths"`` over simple paths: (prefix, key) per path, read like ``prefix``/``key``
    multi: tuple[tuple[tuple[str, ...], str], ...] | None = None
    #: the built-in ``string`` transform on a simple path: vendor text goes to Arrow as is
    plain_text: bool = False


def _build_tree(paths: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Prefix tree of consumed paths: ``True`` marks a fully consumed subtree."""
    tree: dict[str, Any] = {}
    for segs in paths:
        node = tree
        for i, s in enumerate(segs):
            if node.get(s) is True:
                break
            if i == len(segs) - 1:
                node[s] = True
            else:
                node = node.setdefault(s, {})
    return tree


_DUMP_OPTS = orjson.OPT_NON_STR_KEYS


Walker = Callable[[dict[Any, Any], str, dict[str, Any]], None]


def _walker(node: dict[str, Any]) -> Walker:
    """Flatten the leaves of a dict not consumed by ``node`` into ``out`` (dot-joined keys).

    Vendor records of one stream share a few shapes (key tuples), so the work per shape (which
    keys to keep, their dotted names) is planned once and replayed with C-level itemgetter/zip.
    """
    full = frozenset(k for k, v in node.items() if v is True)
    subs: dict[str, Walker] = {k: _walker(v) for k, v in node.items() if v is not True}
    plans: dict[tuple[str, tuple[Any, ...]], _Plan] = {}

    def plan(prefix: str, shape: tuple[Any, ...]) -> _Plan:
        kept = [k for k in shape if k not in full and k not in subs]
        get: Callable[[dict[Any, Any]], tuple[Any, ...]]
        if len(kept) > 1:
            get = itemgetter(*kept)
        elif kept:
            (only,) = kept

            def get_one(o: dict[Any, Any]) -> tuple[Any, ...]:
                return (o[only],)
            get = get_one
        else:
            def get_none(o: dict[Any, Any]) -> tuple[Any, ...]:
                return ()
            get = get_none
        names = tuple(f"{prefix}{k}" for k in kept)
        nested = tuple((k, f"{prefix}{k}", subs[k]) for k in shape if k in subs)
        return get, names, nested

    def walk(obj: dict[Any, Any], prefix: str, out: dict[str, Any]) -> None:
        key = (prefix, tuple(obj))
        found = plans.get(key)
        if found is None:
            if len(plans) > 1024:
                plans.clear()
            found = plans[key] = plan(prefix, key[1])
        get, names, nested = found
        values = get(obj)
        if dict in map(type, values):  # nested objects nobody maps: flatten them too
            for name, v in zip(names, values, strict=False):
                if v.__class__ is dict and v:
                    _plain(v, f"{name}.", out)
                else:
                    out[name] = v
        else:
            out.update(zip(names, values, strict=False))
        for k, name, sub in nested:
            v = obj[k]
            if v.__class__ is dict and v:
                sub(v, f"{name}.", out)
            else:
                out[name] = v
    return walk


_Plan = tuple[Callable[[dict[Any, Any]], tuple[Any, ...]], tuple[str, ...], tuple[tuple[Any, str, "Walker"], ...]]


_plain = _walker({})


def _extras_fn(tree: dict[str, Any]) -> Callable[[Any], str]:
    dumps = orjson.dumps
    walk = _walker(tree)

    # str, not the bytes orjson returns: measured 4x faster here once a page of them is alive
    def extras(r: Any) -> str:
        if not isinstance(r, dict):
            return dumps({"_value": r}, default=str).decode()
        out: dict[str, Any] = {}
        walk(r, "", out)
        return dumps(out, default=str).decode()
    return extras


def _show(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str, option=_DUMP_OPTS).decode()


@dataclass
class MappedPage:
    """Canonical rows (exactly ``entity.arrow_schema()``) and rejects (``REJECT_SCHEMA``)."""

    rows: pa.Table
    rejects: pa.Table


class CompiledMapping:
    """A mapping bound to one (system, instance, stream): maps pages of raw records."""

    def __init__(self, spec: MappingSpec, *, system: str, instance: str, stream: str, raw_table: str) -> None:
        self.spec = spec
        self.entity: Entity = spec.entity
        self.version: str = spec.version
        self.file: Path = spec.file
        self.system = system
        self.instance = instance
        self.stream = stream
        self.raw_table = raw_table
        self.source_object = spec.source_object or stream
        self.schema = spec.entity.arrow_schema()
        explode = spec.explode is not None
        self._explode = explode
        self._record_id = _getter(spec.record_id.split("."))
        self._explode_get = _getter(spec.explode.split(".")) if spec.explode else None
        self._element_id = _getter(spec.element_id.split(".")) if spec.element_id else None

        def bind(f: FieldMapping, col_type: pa.DataType, required: bool, column: str,
                 *, record_level: bool) -> _Column:
            ctx = TransformContext(system=system, instance=instance, file=spec.name, field=f.field)
            tspec = spec.transforms[f.transform]
            fn = tspec.factory(f.params, ctx)
            last = tspec
            if f.then is not None:
                then_spec = spec.transforms[f.then[0]]
                fn = _chain(fn, then_spec.factory(f.then[1], ctx))
                last = then_spec
            # with explode, record-level fields read the enclosing record; field paths the element
            paths = [(_PARENT + p if explode and record_level else p) for p in f.paths]
            getters = [_path_getter(p, explode) for p in paths]
            prefix: tuple[str, ...] | None = None
            key: str | None = None
            multi: tuple[tuple[tuple[str, ...], str], ...] | None = None
            get: Getter
            if tspec.reads == "none":
                def get_none(r: Any) -> Any:
                    return None
                get = get_none
            elif tspec.reads == "paths":
                def get_many(r: Any, gs: list[Getter] = getters) -> Any:
                    return tuple([g(r) for g in gs])
                get = get_many
                all_segs = [_segments(p, explode) for p in paths]
                if not any(s.isdigit() for segs in all_segs for s in segs):
                    multi = tuple((tuple(segs[:-1]), segs[-1]) for segs in all_segs)
            else:
                get = getters[0]
                segs = _segments(paths[0], explode)
                if not any(s.isdigit() for s in segs):
                    prefix, key = tuple(segs[:-1]), segs[-1]
                    get = _getter(segs[-1:])
            if last.output is None and not (tspec.reads == "none" and f.then is None):
                fn = _checked(fn, col_type, last.name)
            plain_text = key is not None and f.then is None and tspec in BUILTIN_TRANSFORMS and tspec.name == "string"
            return _Column(column, col_type, required, get, fn, f.transform, ", ".join(f.paths), prefix, key,
                           f.field, multi, plain_text)

        ent = spec.entity
        self._columns = [bind(f, ent.column(name).type, ent.column(name).required, name, record_level=False)
                         for name, f in spec.field_map.items()]
        self._record_columns = {
            key: bind(f, ent.column(_RECORD_FIELDS[key]).type, False, _RECORD_FIELDS[key], record_level=True)
            for key, f in spec.record_fields.items()}

        consumed: list[list[str]] = []
        for f in spec.field_map.values():
            for p in f.paths:
                if not p.startswith(_PARENT):
                    consumed.append(p.split("."))
        if explode:
            if spec.element_id:
                consumed.append(spec.element_id.split("."))
        else:
            consumed.append(spec.record_id.split("."))
            for f in spec.record_fields.values():
                consumed.extend(p.split(".") for p in f.paths)
        consumed.extend(p.split(".") for p in spec.ignore)
        self._extras = _extras_fn(_build_tree(consumed))
        self._same_key = self.source_object == stream and not explode
        self._row_key = keyer(system, instance, self.source_object)
        self._raw_key = keyer(system, instance, stream)
        self._empty_rejects = REJECT_SCHEMA.empty_table()
        self._all_columns = [*self._columns, *self._record_columns.values()]
        self._by_name = {c.name: c for c in self._all_columns}
        self._layout = [(f.name, f.type) for f in self.schema]
        groups: dict[str, tuple[pa.DataType, list[str]]] = {}
        for name, typ in self._layout:
            groups.setdefault(str(typ), (typ, []))[1].append(name)
        self._groups = list(groups.values())
        self._scalars = {"source_system": pa.scalar(system, type=pa.string()),
                         "source_instance": pa.scalar(instance, type=pa.string()),
                         "source_object": pa.scalar(self.source_object, type=pa.string()),
                         "mapping_version": pa.scalar(self.version, type=pa.string()),
                         "raw_table": pa.scalar(raw_table, type=pa.string()),
                         "is_deleted": pa.scalar(False, type=pa.bool_())}

    # -----------------------------------------------------------------------------------------

    def map_page(self, records: Sequence[dict[str, Any]], *, run_id: str, extracted_at: datetime) -> MappedPage:
        """Map one page of raw vendor records onto canonical rows and rejects."""
        extracted_at = extracted_at.replace(tzinfo=UTC) if extracted_at.tzinfo is None else extracted_at.astimezone(UTC)
        rj = _Rejects(self, run_id, extracted_at)

        # 1. record ids: a record without one cannot be keyed, so it is a record reject
        get_id = self._record_id
        ids: list[Any] = [get_id(r) for r in records]
        recs: Sequence[Any] = records
        if not all(i.__class__ is str and i for i in ids):
            keep_recs: list[Any] = []
            keep_ids: list[str] = []
            for r, i in zip(records, ids, strict=True):
                if not isinstance(r, dict):
                    rj.add(r, None, None, "record", None, f"record is not a JSON object but {type(r).__name__}", r)
                elif i is None or i == "":
                    rj.add(r, None, None, "record", "record_id", f"record has no id at {self.spec.record_id!r}", None)
                elif isinstance(i, str):
                    keep_recs.append(r)
                    keep_ids.append(i)
                elif isinstance(i, int) and not isinstance(i, bool):
                    keep_recs.append(r)
                    keep_ids.append(str(i))
                else:
                    rj.add(r, None, None, "record", "record_id",
                           f"record id at {self.spec.record_id!r} must be text or an integer", i)
            recs, ids = keep_recs, keep_ids
        raw_keys = list(map(self._raw_key, ids))

        # 2. rows: the records themselves, or one per element of the exploded list
        parents: Sequence[Any]
        rows: Sequence[Any]
        elements: Sequence[Any]
        if self._explode:
            rows, parents, srids, row_raw_keys, elements = self._explode_rows(recs, ids, raw_keys, rj)
            row_ids = list(map(self._row_key, srids))
        else:
            rows = parents = elements = recs
            srids = ids
            row_raw_keys = raw_keys
            row_ids = raw_keys if self._same_key else list(map(self._row_key, ids))
        n = len(rows)

        # 3. columns: a list of values per column, then one pa.array per Arrow type, sliced back
        cache: dict[tuple[str, ...], Sequence[Any]] = {(): rows}
        values: dict[str, list[Any]] = {}
        errors: dict[str, list[tuple[int, Any, str]]] = {}
        for col in self._all_columns:
            errs: list[tuple[int, Any, str]] = []
            values[col.name] = _column_values(col, rows if col.prefix is None else _base(cache, col.prefix), errs,
                                              cache)
            if errs:
                errors[col.name] = errs
        if "is_deleted" in values:
            values["is_deleted"] = [v is True for v in values["is_deleted"]]
        extras_fn = self._extras
        values["id"] = row_ids
        values["extras"] = [extras_fn(e) for e in elements]
        values["source_record_id"] = srids
        values["raw_key"] = row_raw_keys
        arrays = self._arrays(values, errors, rows, cache)

        bad: set[int] = set()
        for col in self._all_columns:
            errs = errors.get(col.name, [])
            dead: set[int] = set()
            if col.required and arrays[col.name].null_count:
                dead = {i for i, v in enumerate(arrays[col.name].is_null().to_pylist()) if v}
                bad |= dead
            for i, raw, reason in errs:
                rj.add(parents[i], srids[i], row_raw_keys[i], "record" if i in dead else "field", col.label,
                       reason, raw)
            if dead:
                failed = {i for i, _r, _x in errs}
                for i in sorted(dead - failed):
                    rj.add(parents[i], srids[i], row_raw_keys[i], "record", col.label,
                           f"required field {col.name!r} is empty (path {col.path_text!r})", None)

        # 4. provenance constants, unmapped columns as nulls
        for name in ("source_system", "source_instance", "source_object", "mapping_version", "raw_table"):
            arrays[name] = pa.repeat(self._scalars[name], n)
        arrays["run_id"] = pa.repeat(pa.scalar(run_id, type=pa.string()), n)
        arrays["extracted_at"] = pa.repeat(pa.scalar(extracted_at, type=_TS), n)
        if "is_deleted" not in arrays:
            arrays["is_deleted"] = pa.repeat(self._scalars["is_deleted"], n)
        columns = [arrays[name] if name in arrays else pa.nulls(n, typ) for name, typ in self._layout]
        table = pa.Table.from_arrays(columns, schema=self.schema)
        if bad:
            table = table.filter(pa.array([i not in bad for i in range(n)], type=pa.bool_()))
        return MappedPage(rows=table, rejects=rj.table() if rj.rows else self._empty_rejects)

    def _arrays(self, values: dict[str, list[Any]], errors: dict[str, list[tuple[int, Any, str]]],
                rows: Sequence[Any], cache: dict[tuple[str, ...], Sequence[Any]]) -> dict[str, pa.Array]:
        """Arrow arrays of the value lists: one conversion per Arrow type (pa.array has a fixed cost)."""
        arrays: dict[str, pa.Array] = {}
        for typ, names in self._groups:
            present = [name for name in names if name in values]
            if not present:
                continue
            n = len(values[present[0]])
            try:
                big = pa.array(list(chain.from_iterable(values[name] for name in present)), type=typ)
            except _ARROW_ERRORS:  # some value does not fit: convert column by column, reject the misfits
                for name in present:
                    col = self._by_name.get(name)
                    src = rows if col is None or col.prefix is None else _base(cache, col.prefix)
                    arrays[name] = _to_array(col, values[name], typ, src, errors.setdefault(name, []))
                continue
            for k, name in enumerate(present):
                arrays[name] = big.slice(k * n, n)
        return arrays

    def _explode_rows(self, recs: Sequence[Any], ids: list[str], raw_keys: list[str], rj: _Rejects
                      ) -> tuple[list[Any], list[Any], list[str], list[str], list[Any]]:
        assert self._explode_get is not None
        get_list, get_eid = self._explode_get, self._element_id
        rows: list[Any] = []
        parents: list[Any] = []
        srids: list[str] = []
        rkeys: list[str] = []
        elements: list[Any] = []
        for r, rid, rk in zip(recs, ids, raw_keys, strict=True):
            items = get_list(r)
            if items is None:
                continue
            if not isinstance(items, list):
                rj.add(r, rid, rk, "record", None, f"'explode' path {self.spec.explode!r} is not a list", items)
                continue
            for idx, el in enumerate(items):
                if get_eid is not None:
                    eid = get_eid(el)
                    if eid is None or eid == "" or isinstance(eid, dict | list | bool | float):
                        rj.add(r, f"{rid}/{idx}", rk, "record", "element_id",
                               f"element {idx} has no usable id at {self.spec.element_id!r}", eid)
                        continue
                    key = str(eid)
                else:
                    key = str(idx)
                rows.append({_EL: el, _PA: r})
                parents.append(r)
                srids.append(f"{rid}/{key}")
                rkeys.append(rk)
                elements.append(el)
        return rows, parents, srids, rkeys, elements


def _checked(fn: TransformFn, col_type: pa.DataType, name: str) -> TransformFn:
    ok = _type_check(col_type)

    def checked(v: Any) -> Any:
        out = fn(v)
        if out is not None and not ok(out):
            raise TransformError(f"transform {name!r} gave {type(out).__name__}, field needs {col_type}")
        return out
    return checked


_ARROW_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError)


def _base(cache: dict[tuple[str, ...], Sequence[Any]], prefix: tuple[str, ...]) -> Sequence[Any]:
    found = cache.get(prefix)
    if found is None:
        seg = prefix[-1]
        found = [x.get(seg) if isinstance(x, dict) else None for x in _base(cache, prefix[:-1])]
        cache[prefix] = found
    return found


_TEXT_TYPES = frozenset({str, type(None)})


def _column_values(col: _Column, rows: Sequence[Any], errs: list[tuple[int, Any, str]],
                   cache: dict[tuple[str, ...], Sequence[Any]]) -> list[Any]:
    """One column's values over the page; ``rows`` are what ``col.get`` reads (see ``_Column.prefix``)."""
    get, fn = col.get, col.fn
    if col.multi is not None:  # several simple paths: zip the C-level walks
        try:
            return list(map(fn, zip(*[map(dict.get, _base(cache, p), repeat(k)) for p, k in col.multi],
                                    strict=True)))
        except Exception:
            pass  # the slow path below reports which rows failed
    if col.plain_text:  # vendor text as is; "" (null) or non-text values take the transform path
        try:
            raw_values = list(map(dict.get, rows, repeat(col.key)))
        except TypeError:
            pass
        else:
            if "" not in raw_values and set(map(type, raw_values)) <= _TEXT_TYPES:
                return raw_values
    try:
        if col.key is not None:  # C-level walk; a non-dict row raises TypeError -> slow path
            return list(map(fn, map(dict.get, rows, repeat(col.key))))
        return [fn(get(r)) for r in rows]
    except Exception:  # the slow path: find the bad values, keep going
        values = []
        for i, r in enumerate(rows):
            raw = None
            try:
                raw = get(r)
                values.append(fn(raw))
            except TransformError as exc:
                values.append(exc.fallback)
                errs.append((i, raw, exc.reason))
            except Exception as exc:
                values.append(None)
                errs.append((i, raw, f"transform {col.transform!r} failed: {type(exc).__name__}: {exc}"))
        return values


def _to_array(col: _Column | None, values: list[Any], typ: pa.DataType, rows: Sequence[Any],
              errs: list[tuple[int, Any, str]]) -> pa.Array:
    try:
        return pa.array(values, type=typ)
    except _ARROW_ERRORS:
        if col is None:
            raise
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            pa.array([v], type=typ)
        except _ARROW_ERRORS as exc:
            values[i] = None
            errs.append((i, col.get(rows[i]), f"value {v!r} does not fit {typ}: {exc}"))
    return pa.array(values, type=typ)


class _Rejects:
    def __init__(self, cm: CompiledMapping, run_id: str, extracted_at: datetime) -> None:
        self.cm = cm
        self.run_id = run_id
        self.extracted_at = extracted_at
        self.rows: list[tuple[Any, ...]] = []

    def add(self, record: Any, source_record_id: str | None, raw_key: str | None, severity: str,
            field: str | None, reason: str, value: Any) -> None:
        payload = orjson.dumps(record, default=str, option=_DUMP_OPTS)
        anchor = raw_key if raw_key is not None else "payload:" + hashlib.blake2b(payload, digest_size=16).hexdigest()
        if source_record_id is not None:
            anchor = f"{anchor}:{source_record_id}"
        rid = row_key(anchor, self.cm.spec.name, field or "", reason)
        self.rows.append((rid, source_record_id, raw_key, severity, field, reason, _show(value), payload.decode()))

    def table(self) -> pa.Table:
        cm, n = self.cm, len(self.rows)
        rid, srid, rkey, sev, field, reason, value, payload = zip(*self.rows, strict=True)
        data = {
            "id": rid, "source_system": [cm.system] * n, "source_instance": [cm.instance] * n,
            "source_object": [cm.source_object] * n, "source_record_id": srid, "raw_table": [cm.raw_table] * n,
            "raw_key": rkey, "entity": [cm.entity.name] * n, "mapping_file": [cm.spec.name] * n,
            "mapping_version": [cm.version] * n, "severity": sev, "field": field, "reason": reason,
            "value": value, "payload": payload, "run_id": [self.run_id] * n, "extracted_at": [self.extracted_at] * n,
        }
        return pa.Table.from_arrays([pa.array(list(data[f.name]), type=f.type) for f in REJECT_SCHEMA],
                                    schema=REJECT_SCHEMA)
