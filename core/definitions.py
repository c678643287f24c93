"""Definitions as code: the glossary in ``mappings/definitions.yaml`` loaded and validated.

::

    load_definitions(path=None)   parse + validate (DefinitionError names file:line + choices)
      -> Definitions              .stages, .terms (name -> Term), .identity, .attribution
      Term.definition_version     "<stage>@<version>:<hash of the rule>", stamped on derived rows

Every term is defined exactly once (across every file of a ``mappings/definitions/`` folder);
a rule that names an unknown entity field, stage, touch type, vendor or term is an error that
names the file and line. The rule language is documented in docs/definitions.md; the SQL it
compiles to lives in pipelines/derive.py.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from core.entities import ENTITIES
from core.errors import MappingError
from core.vocabulary import CATEGORIES, CHANNELS, TOUCH_TYPES

__all__ = [
    "GLOSSARY",
    "AttributionConfig",
    "Clause",
    "Condition",
    "Crossref",
    "DefinitionError",
    "Definitions",
    "IdentityConfig",
    "Term",
    "TouchEmail",
    "default_path",
    "load_definitions",
]

#: the terms the glossary must define (issue 7); more may be added
GLOSSARY: tuple[str, ...] = (
    "lead", "marketing-qualified lead", "sales-qualified lead", "qualified prospect", "opportunity", "win",
    "marketing activity", "sales activity", "conversion ratio",
)
#: vendor systems whose raw tables a rule may read (raw tables are ``<system>__<stream>``)
VENDORS: tuple[str, ...] = ("hubspot", "salesforce", "marketo", "mailchimp", "x", "shopify")
OPS: dict[str, str] = {
    "eq": "equals the value", "ne": "differs from the value", "in": "is one of the values",
    "not_in": "is none of the values", "gt": "number greater than", "gte": "number at least",
    "lt": "number less than", "lte": "number at most", "present": "is (true) / is not (false) filled",
    "is": "boolean equals",
}
_TOP = ("stages", "terms", "identity", "attribution")
_TERM_KEYS = ("meaning", "owner", "version", "stage", "activity", "ratio", "rule")
_CLAUSE_KEYS = ("entity", "raw", "where", "at")
_XREF_KEYS = ("name", "raw", "where", "ref", "split", "to_raw", "confidence")
#: vocabulary-checked fields of canonical entities
_VOCAB = {"touch_type": tuple(TOUCH_TYPES), "category": CATEGORIES, "channel": tuple(CHANNELS)}


class DefinitionError(MappingError):
    """The definitions file is invalid; ``str()`` names the file, the line and the valid choices."""


@dataclass(frozen=True)
class Condition:
    #: canonical column (entity clauses) or dot path into the vendor JSON (raw clauses)
    ref: str
    op: str
    value: Any
    line: int


@dataclass(frozen=True)
class Clause:
    """One way to observe a term: rows of a canonical entity or raw vendor table matching ``where``."""

    kind: str  # "entity" | "raw"
    source: str  # entity name or raw table name
    where: tuple[Condition, ...]
    #: the time of the observation: first non-null of these columns / paths
    at: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Term:
    name: str
    meaning: str
    owner: str
    version: str
    stage: str | None
    activity: str | None
    ratio: bool
    clauses: tuple[Clause, ...]
    #: "any": the earliest observation of any clause; "first": the first clause (in file order) that observes it
    mode: str
    file: str
    line: int
    #: hash of what the term says (rule included): changes whenever the rule changes
    digest: str

    @property
    def definition_version(self) -> str:
        return f"{self.stage or self.name.replace(' ', '_')}@{self.version}:{self.digest[:8]}"

    def rule_text(self) -> str:
        """The machine rule in one line per clause, for the glossary."""
        out = []
        for c in self.clauses:
            conds = " and ".join(_cond_text(w) for w in c.where) or "always"
            out.append(f"{c.kind} {c.source} where {conds}, at {' or '.join(c.at)}")
        head = "earliest of:" if self.mode == "any" else "first clause that applies:"
        return "\n".join([head, *out]) if out else ""


def _cond_text(c: Condition) -> str:
    if c.op == "present":
        return f"{c.ref} {'is' if c.value else 'is not'} filled"
    if c.op == "is":
        return f"{c.ref} is {str(c.value).lower()}"
    value = ", ".join(c.value) if isinstance(c.value, tuple) else c.value
    return f"{c.ref} {c.op.replace('_', ' ')} {value}"


@dataclass(frozen=True)
class Crossref:
    name: str
    raw: str
    where: tuple[Condition, ...]
    ref: str
    split: str | None
    to_raw: str
    confidence: float
    line: int


@dataclass(frozen=True)
class TouchEmail:
    """Touches a vendor reports by address only: ``path`` into the touch's ``extras`` holds the email."""

    source_system: str
    source_object: str
    path: str
    line: int


@dataclass(frozen=True)
class IdentityConfig:
    email_confidence: float = 0.95
    handle_confidence: float = 0.8
    crossrefs: tuple[Crossref, ...] = ()
    touch_emails: tuple[TouchEmail, ...] = ()


@dataclass(frozen=True)
class AttributionConfig:
    lookback_days: int = 90
    touch_terms: tuple[str, ...] = ("marketing activity", "sales activity")
    #: model name -> parameters overriding the model's defaults
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: line of each model's entry, for errors about models that are not registered
    model_lines: dict[str, int] = field(default_factory=dict)
    file: str = ""


@dataclass(frozen=True)
class Definitions:
    stages: tuple[str, ...]
    terms: dict[str, Term]
    identity: IdentityConfig
    attribution: AttributionConfig
    files: tuple[str, ...]
    #: content hash of every file: the ``mapping_version`` of derived rows
    version: str

    def stage_term(self, stage: str) -> Term:
        for t in self.terms.values():
            if t.stage == stage:
                return t
        raise KeyError(f"no term defines stage {stage!r} (stages: {', '.join(self.stages)})")

    def stage_terms(self) -> list[Term]:
        """Stage terms in funnel order."""
        return sorted((t for t in self.terms.values() if t.stage), key=lambda t: self.stages.index(t.stage or ""))

    def check_models(self, registered: Collection[str]) -> None:
        """Every model the attribution section configures must be registered."""
        for name, line in self.attribution.model_lines.items():
            if name not in registered:
                raise DefinitionError(f"attribution model {name!r} is not registered", file=self.attribution.file,
                                      line=line, choices=list(registered))


def default_path() -> Path:
    """``FACTORYLINE_DEFINITIONS`` if set; else ``mappings/definitions/`` when that folder exists, else
    ``mappings/definitions.yaml``."""
    if os.environ.get("FACTORYLINE_DEFINITIONS"):
        return Path(os.environ["FACTORYLINE_DEFINITIONS"])
    root = Path(__file__).resolve().parent.parent / "mappings"
    folder = root / "definitions"
    return folder if folder.is_dir() else root / "definitions.yaml"


def _display(path: Path) -> str:
    parts = path.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "mappings":
            return "/".join(parts[i:])
    return path.as_posix()


class _File:
    """Node helpers bound to one file, so every error names it and the line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = _display(path)
        self.constructor = SafeConstructor()

    def err(self, message: str, node: Node | None, choices: Sequence[str] | None = None) -> DefinitionError:
        line = node.start_mark.line + 1 if node is not None else None
        return DefinitionError(message, file=self.name, line=line, choices=list(choices) if choices else None)

    def root(self) -> Node | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DefinitionError(f"cannot read: {exc}", file=self.name) from exc
        try:
            return yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise DefinitionError(f"invalid YAML: {exc.problem or exc.context}", file=self.name,
                                  line=mark.line + 1 if mark else None) from exc

    def value(self, node: Node) -> Any:
        return self.constructor.construct_object(node, deep=True)

    def items(self, node: Node, what: str, allowed: Sequence[str] | None = None) -> dict[str, tuple[Node, Node]]:
        if not isinstance(node, MappingNode):
            raise self.err(f"{what} must be a mapping (key: value lines)", node)
        out: dict[str, tuple[Node, Node]] = {}
        for k, v in node.value:
            key = self.value(k)
            if not isinstance(key, str):
                raise self.err(f"keys of {what} must be text, not {key!r}", k)
            if key in out:
                raise self.err(f"{key!r} is defined twice in {what} (first at line {out[key][0].start_mark.line + 1})", k)
            if allowed is not None and key not in allowed:
                raise self.err(f"unknown key {key!r} in {what}", k, allowed)
            out[key] = (k, v)
        return out

    def seq(self, node: Node, what: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.err(f"{what} must be a list", node)
        return list(node.value)

    def text(self, node: Node, what: str) -> str:
        v = self.value(node)
        if not isinstance(node, ScalarNode) or v is None or isinstance(v, bool) or not str(v).strip():
            raise self.err(f"{what} must be non-empty text", node)
        return str(v).strip()

    def number(self, node: Node, what: str, lo: float | None = None, hi: float | None = None) -> float:
        v = self.value(node)
        if isinstance(v, bool) or not isinstance(v, int | float) or (lo is not None and v < lo) \
                or (hi is not None and v > hi):
            raise self.err(f"{what} must be a number{f' in {lo}..{hi}' if lo is not None else ''}, not {v!r}", node)
        return float(v)


def _dot_path(f: _File, node: Node, what: str) -> str:
    p = f.text(node, what)
    if any(not seg for seg in p.split(".")):
        raise f.err(f"{what} {p!r} is not a dot path (empty segment)", node)
    return p


def _raw_table(f: _File, node: Node, what: str) -> str:
    t = f.text(node, what)
    system, sep, stream = t.partition("__")
    if not sep or not stream:
        raise f.err(f"{what} {t!r} must name a raw table <vendor>__<stream>", node)
    if system not in VENDORS:
        raise f.err(f"{what} {t!r} names unknown vendor {system!r}", node, VENDORS)
    return t


def _conditions(f: _File, node: Node, kind: str, source: str) -> tuple[Condition, ...]:
    out = []
    for item in f.seq(node, "where"):
        keys = f.items(item, "a condition")
        ref_key = "field" if kind == "entity" else "path"
        if ref_key not in keys:
            raise f.err(f"a condition of {kind} {source!r} needs '{ref_key}'", item)
        ops = [k for k in keys if k != ref_key]
        if len(ops) != 1 or ops[0] not in OPS:
            bad = next((keys[k][0] for k in ops if k not in OPS), item)
            raise f.err(f"a condition needs exactly one operator besides '{ref_key}'", bad, list(OPS))
        op = ops[0]
        vnode = keys[op][1]
        value = f.value(vnode)
        if kind == "entity":
            ref = f.text(keys[ref_key][1], "field")
            columns = [c.name for c in ENTITIES[source].all_columns]
            if ref not in columns:
                raise f.err(f"unknown field {ref!r} of entity {source!r}", keys[ref_key][1], columns)
        else:
            ref = _dot_path(f, keys[ref_key][1], "path")
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value or any(isinstance(v, dict | list) for v in value):
                raise f.err(f"'{op}' needs a non-empty list of values", vnode)
            value = tuple(str(v) for v in value)
        elif op in ("gt", "gte", "lt", "lte"):
            value = f.number(vnode, f"'{op}'")
        elif op in ("present", "is"):
            if not isinstance(value, bool):
                raise f.err(f"'{op}' needs true or false, not {value!r}", vnode)
        elif value is None or isinstance(value, dict | list):
            raise f.err(f"'{op}' needs one value", vnode)
        else:
            value = str(value)
        if kind == "entity" and ref in _VOCAB:
            for v in value if isinstance(value, tuple) else (value,):
                if v not in _VOCAB[ref]:
                    raise f.err(f"unknown {ref} {v!r} (see core/vocabulary.py)", vnode, _VOCAB[ref])
        out.append(Condition(ref, op, value, item.start_mark.line + 1))
    return tuple(out)


def _at(f: _File, node: Node, kind: str, source: str) -> tuple[str, ...]:
    nodes = f.seq(node, "at") if isinstance(node, SequenceNode) else [node]
    out = []
    for n in nodes:
        if kind == "entity":
            ref = f.text(n, "at")
            columns = [c.name for c in ENTITIES[source].all_columns if str(c.type).startswith("timestamp")]
            if ref not in columns:
                raise f.err(f"unknown time field {ref!r} of entity {source!r}", n, columns)
        else:
            ref = _dot_path(f, n, "at")
        out.append(ref)
    if not out:
        raise f.err("'at' needs at least one field or path", node)
    return tuple(out)


def _clause(f: _File, node: Node) -> Clause:
    keys = f.items(node, "a rule clause", _CLAUSE_KEYS)
    if ("entity" in keys) == ("raw" in keys):
        raise f.err("a rule clause reads exactly one of 'entity' (canonical table) or 'raw' (vendor table)", node)
    if "at" not in keys:
        raise f.err("a rule clause needs 'at': when the observation happened", node)
    if "entity" in keys:
        kind, snode = "entity", keys["entity"][1]
        source = f.text(snode, "entity")
        if source not in ENTITIES:
            raise f.err(f"unknown entity {source!r}", snode, list(ENTITIES))
    else:
        kind, source = "raw", _raw_table(f, keys["raw"][1], "raw")
    where = _conditions(f, keys["where"][1], kind, source) if "where" in keys else ()
    return Clause(kind, source, where, _at(f, keys["at"][1], kind, source), node.start_mark.line + 1)


def _term(f: _File, name: str, knode: Node, node: Node, stages: Sequence[str]) -> Term:
    keys = f.items(node, f"term {name!r}", _TERM_KEYS)
    for req in ("meaning", "owner", "version"):
        if req not in keys:
            raise f.err(f"term {name!r} needs {req!r}", knode)
    kinds = [k for k in ("stage", "activity", "ratio") if k in keys]
    if len(kinds) != 1:
        raise f.err(f"term {name!r} needs exactly one of 'stage', 'activity' or 'ratio'", knode)
    stage = activity = None
    if "stage" in keys:
        stage = f.text(keys["stage"][1], "stage")
        if stage not in stages:
            raise f.err(f"unknown stage {stage!r}", keys["stage"][1], stages)
    if "activity" in keys:
        activity = f.text(keys["activity"][1], "activity")
        if activity not in CATEGORIES:
            raise f.err(f"unknown activity category {activity!r}", keys["activity"][1], CATEGORIES)
    clauses: tuple[Clause, ...] = ()
    mode = "any"
    if "rule" in keys:
        rule = f.items(keys["rule"][1], f"the rule of {name!r}", ("any", "first"))
        if len(rule) != 1:
            raise f.err("a rule is 'any:' (earliest observation) or 'first:' (first clause that observes) "
                        "followed by a list of clauses", keys["rule"][1])
        mode = next(iter(rule))
        clauses = tuple(_clause(f, c) for c in f.seq(rule[mode][1], mode))
        if activity and any(c.kind != "entity" or c.source != "touch" for c in clauses):
            raise f.err(f"activity term {name!r} must select touch rows (entity: touch)", keys["rule"][1])
    elif stage or activity:
        raise f.err(f"term {name!r} needs a 'rule'", knode)
    data = {k: f.value(v) for k, (_kn, v) in keys.items()}
    digest = hashlib.sha1(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return Term(name=name, meaning=" ".join(f.text(keys["meaning"][1], "meaning").split()),
                owner=f.text(keys["owner"][1], "owner"), version=f.text(keys["version"][1], "version"),
                stage=stage, activity=activity, ratio="ratio" in keys, clauses=clauses, mode=mode, file=f.name,
                line=knode.start_mark.line + 1, digest=digest)


def _identity(f: _File, node: Node) -> IdentityConfig:
    keys = f.items(node, "identity", ("email", "social_handle", "crossrefs", "touch_emails"))
    conf = {}
    for rule in ("email", "social_handle"):
        if rule in keys:
            sub = f.items(keys[rule][1], rule, ("confidence",))
            conf[rule] = f.number(sub["confidence"][1], "confidence", 0, 1) if "confidence" in sub else None
    xrefs = []
    for item in f.seq(keys["crossrefs"][1], "crossrefs") if "crossrefs" in keys else []:
        x = f.items(item, "a crossref", _XREF_KEYS)
        for req in ("name", "raw", "ref", "to_raw"):
            if req not in x:
                raise f.err(f"a crossref needs {req!r}", item)
        raw = _raw_table(f, x["raw"][1], "raw")
        xrefs.append(Crossref(
            name=f.text(x["name"][1], "name"), raw=raw,
            where=_conditions(f, x["where"][1], "raw", raw) if "where" in x else (),
            ref=_dot_path(f, x["ref"][1], "ref"),
            split=f.text(x["split"][1], "split") if "split" in x else None,
            to_raw=_raw_table(f, x["to_raw"][1], "to_raw"),
            confidence=f.number(x["confidence"][1], "confidence", 0, 1) if "confidence" in x else 1.0,
            line=item.start_mark.line + 1))
    touch_emails = []
    for item in f.seq(keys["touch_emails"][1], "touch_emails") if "touch_emails" in keys else []:
        x = f.items(item, "a touch_emails entry", ("source_system", "source_object", "path"))
        for req in ("source_system", "source_object", "path"):
            if req not in x:
                raise f.err(f"a touch_emails entry needs {req!r}", item)
        system = f.text(x["source_system"][1], "source_system")
        if system not in VENDORS:
            raise f.err(f"unknown vendor {system!r}", x["source_system"][1], VENDORS)
        touch_emails.append(TouchEmail(system, f.text(x["source_object"][1], "source_object"),
                                       _dot_path(f, x["path"][1], "path"), item.start_mark.line + 1))
    return IdentityConfig(email_confidence=conf.get("email") or 0.95,
                          handle_confidence=conf.get("social_handle") or 0.8, crossrefs=tuple(xrefs),
                          touch_emails=tuple(touch_emails))


def _attribution(f: _File, node: Node, terms: dict[str, Term], term_lines: dict[str, Node]) -> AttributionConfig:
    keys = f.items(node, "attribution", ("lookback_days", "touches", "models"))
    lookback = 90
    if "lookback_days" in keys:
        lookback = int(f.number(keys["lookback_days"][1], "lookback_days", 1, 3650))
    touch_terms: tuple[str, ...] = ("marketing activity", "sales activity")
    if "touches" in keys:
        touch_terms = tuple(f.text(n, "touches") for n in f.seq(keys["touches"][1], "touches"))
        activity_terms = [t.name for t in terms.values() if t.activity]
        for n, name in zip(keys["touches"][1].value, touch_terms, strict=True):
            if name not in activity_terms:
                raise f.err(f"unknown activity term {name!r}", n, activity_terms)
    models: dict[str, dict[str, Any]] = {}
    lines: dict[str, int] = {}
    if "models" in keys:
        for name, (kn, vn) in f.items(keys["models"][1], "models").items():
            params = f.value(vn)
            if not isinstance(params, dict):
                raise f.err(f"parameters of model {name!r} must be a mapping", vn)
            models[name] = params
            lines[name] = kn.start_mark.line + 1
    return AttributionConfig(lookback, touch_terms, models, lines, f.name)


def load_definitions(path: Path | None = None) -> Definitions:
    """Load and validate the glossary at ``path`` (a file, or a folder of ``*.yaml``)."""
    path = path or default_path()
    paths = sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
    if not paths:
        raise DefinitionError("no definitions files", file=_display(path))
    parsed: list[tuple[_File, dict[str, tuple[Node, Node]]]] = []
    for p in paths:
        f = _File(p)
        root = f.root()
        if root is None:
            raise DefinitionError("definitions file is empty; it needs 'stages' and 'terms'", file=f.name)
        parsed.append((f, f.items(root, "a definitions file", _TOP)))
    sections: dict[str, tuple[_File, Node, Node]] = {}
    for f, top in parsed:
        for key, (kn, vn) in top.items():
            if key != "terms":
                if key in sections:
                    other = sections[key]
                    raise f.err(f"{key!r} is defined twice (also in {other[0].name}:"
                                f"{other[1].start_mark.line + 1})", kn)
                sections[key] = (f, kn, vn)
    if "stages" not in sections:
        raise DefinitionError("missing 'stages': the canonical funnel stages in order", file=parsed[0][0].name)
    sf, _skn, svn = sections["stages"]
    stages = tuple(sf.text(n, "a stage") for n in sf.seq(svn, "stages"))
    for n, s in zip(svn.value, stages, strict=True):
        if stages.count(s) > 1:
            raise sf.err(f"stage {s!r} is listed twice", n)
    terms: dict[str, Term] = {}
    term_nodes: dict[str, Node] = {}
    stage_owner: dict[str, Term] = {}
    for f, top in parsed:
        if "terms" not in top:
            continue
        for name, (kn, vn) in f.items(top["terms"][1], "terms").items():
            if name in terms:
                first = terms[name]
                raise f.err(f"term {name!r} is defined twice (first at {first.file}:{first.line})", kn)
            term = _term(f, name, kn, vn, stages)
            if term.stage and term.stage in stage_owner:
                first = stage_owner[term.stage]
                raise f.err(f"stage {term.stage!r} is already defined by term {first.name!r} "
                            f"({first.file}:{first.line})", kn)
            if term.stage:
                stage_owner[term.stage] = term
            terms[name] = term
            term_nodes[name] = kn
    missing = [t for t in GLOSSARY if t not in terms]
    if missing:
        raise DefinitionError(f"the glossary misses {', '.join(repr(m) for m in missing)}", file=parsed[0][0].name)
    identity = IdentityConfig()
    if "identity" in sections:
        f, _kn, vn = sections["identity"]
        identity = _identity(f, vn)
    attribution = AttributionConfig(file=parsed[0][0].name)
    if "attribution" in sections:
        f, _kn, vn = sections["attribution"]
        attribution = _attribution(f, vn, terms, term_nodes)
    h = hashlib.sha1()
    for p in paths:
        h.update(p.read_bytes())
    return Definitions(stages=stages, terms=terms, identity=identity, attribution=attribution,
                       files=tuple(f.name for f, _ in parsed), version=f"definitions:{h.hexdigest()[:12]}")
