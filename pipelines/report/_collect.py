"""Gather the field-mapping report's figures: mapping files from the registry, numbers from SQL.

Everything is aggregated in the destination (``count``, ``GROUP BY``, ``LIMIT``): no query pulls a
whole table into Python, so the report runs the same on a few rows or millions. Every query goes
through dlt's ``sql_client`` with portable SQL, so DuckDB and PostgreSQL both work.
"""

from __future__ import annotations

import importlib.util
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from core.connector import ConnectorSpec, StreamSpec
from core.entities import ENTITIES
from core.errors import FactorylineError
from core.lineage import raw_table_name
from core.mapping import MappingSpec, load_mapping
from core.plugins import get_registry
from pipelines.destination import Target, make_pipeline
from pipelines.report._mask import PERSONAL_FIELDS, mask_value, scrub_text

__all__ = ["build_report"]

#: record-level mapping keys -> the provenance column they fill
_RECORD_FIELDS = {"updated_at": "source_updated_at", "deleted": "is_deleted", "deleted_at": "deleted_at"}
SAMPLES = 3
UNMAPPED_SAMPLED = 15
REJECT_GROUPS = 200
REJECT_EXAMPLES = 3
REJECT_GROUPS_WITH_EXAMPLES = 60


@dataclass
class _Stream:
    connector: str
    system: str
    stream: StreamSpec
    raw_table: str
    mappings: list[MappingSpec] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.connector}/{self.stream.name}"


def _plain(v: Any) -> Any:
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec="seconds")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    return v


class _Db:
    """A thin, read-only view of the dataset through dlt's sql_client."""

    def __init__(self, client: Any, dialect: str) -> None:
        self.client = client
        self.dialect = dialect
        rows = self.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                         client.dataset_name)
        self.tables: set[str] = {r["table_name"] for r in rows}
        self._columns: dict[str, set[str]] = {}

    def q(self, table: str) -> str:
        return str(self.client.make_qualified_table_name(table))

    def c(self, column: str) -> str:
        return str(self.client.escape_column_name(column))

    def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with self.client.execute_query(sql, *args) as cur:
            cols = [d[0] for d in cur.description]
            return [{k: _plain(v) for k, v in zip(cols, r, strict=True)} for r in cur.fetchall()]

    def columns(self, table: str) -> set[str]:
        if table not in self._columns:
            rows = self.rows("SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                             "AND table_name = %s", self.client.dataset_name, table)
            self._columns[table] = {r["column_name"] for r in rows}
        return self._columns[table]

    def json_text(self, column: str, path: Sequence[str]) -> tuple[str, Any] | None:
        """SQL for the text at ``path`` inside a JSON text column, and its bound parameter."""
        if self.dialect in ("duckdb", "motherduck"):
            jp = "$." + ".".join('"' + p.replace('"', '\\"') + '"' for p in path)
            return f"json_extract_string({self.c(column)}, %s)", jp
        if self.dialect == "postgres":
            return f"(CAST({self.c(column)} AS jsonb) #>> %s)", list(path)
        return None


# ---------------------------------------------------------------------------------------------


def _streams_run(db: _Db) -> dict[tuple[str, str], dict[str, Any]]:
    """(connector, stream) -> runs count, latest run and how it ended, for streams that ever ran."""
    if "run_streams" not in db.tables:
        return {}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in db.rows(f"SELECT connector, stream, count(*) AS runs, max(run_id) AS last_run "
                     f"FROM {db.q('run_streams')} GROUP BY connector, stream"):
        out[(r["connector"], r["stream"])] = r
    keys = [f"{r['last_run']}/{c}/{s}" for (c, s), r in out.items()]
    if keys:
        marks = ", ".join(["%s"] * len(keys))
        for r in db.rows(f"SELECT connector, stream, status, records, rejects, error FROM {db.q('run_streams')} "
                         f"WHERE {db.c('key')} IN ({marks})", *keys):
            out[(r["connector"], r["stream"])].update(
                last_status=r["status"], last_records=r["records"], last_rejects=r["rejects"],
                last_error=r["error"])
    return out


def _streams(ran: dict[tuple[str, str], dict[str, Any]]) -> tuple[list[_Stream], list[str], list[str]]:
    registry = get_registry()
    streams: list[_Stream] = []
    not_run: list[str] = []
    not_installed = sorted({f"{c}/{s}" for c, s in ran if c not in registry.connectors})
    for name, spec in sorted(registry.connectors.items()):
        for s in spec.streams:
            if (name, s.name) not in ran:
                not_run.append(f"{name}/{s.name}")
                continue
            streams.append(_load_stream(spec, s, registry.transforms))
    return streams, not_run, not_installed


def _load_stream(spec: ConnectorSpec, s: StreamSpec, transforms: Any) -> _Stream:
    st = _Stream(spec.name, spec.system, s, raw_table_name(spec.system, s.name))
    for name in s.mappings:
        if spec.mappings_dir is None:
            continue
        try:
            st.mappings.append(load_mapping(spec.mappings_dir / name, transforms))
        except FactorylineError as exc:
            st.errors.append(str(exc))
    return st


def _source(paths: Any) -> str:
    if paths is None:
        return "(constant)"
    if isinstance(paths, list):
        return " | ".join(paths)
    return str(paths)


def _referenced(m: MappingSpec) -> set[str]:
    """Vendor paths (record-relative) a mapping reads or deliberately ignores."""
    out: set[str] = {m.record_id, *m.ignore}
    prefix = f"{m.explode}." if m.explode else ""
    if m.explode:
        out.add(m.explode)
    for f in m.field_map.values():
        for p in f.paths:
            out.add(p[len("parent."):] if p.startswith("parent.") else prefix + p)
    for f in m.record_fields.values():
        out.update(f.paths)
    if m.element_id:
        out.add(prefix + m.element_id)
    return out


def _is_referenced(path: str, refs: Iterable[str]) -> bool:
    return any(path == r or r.startswith(path + ".") or path.startswith(r + ".") for r in refs)


# ---------------------------------------------------------------------------------------------
# Coverage: fill rate, conformance, samples per mapped field
# ---------------------------------------------------------------------------------------------


def _coverage(db: _Db, streams: list[_Stream]) -> list[dict[str, Any]]:
    by_entity: dict[str, list[tuple[_Stream, MappingSpec]]] = defaultdict(list)
    for st in streams:
        for m in st.mappings:
            by_entity[m.entity.name].append((st, m))
    out: list[dict[str, Any]] = []
    for ent_name, pairs in sorted(by_entity.items()):
        ent = ENTITIES[ent_name]
        present = ent_name in db.tables
        cols = db.columns(ent_name) if present else set()
        wanted = [c.name for c in ent.columns] + list(_RECORD_FIELDS.values())
        counted = [c for c in wanted if c in cols]
        fills: dict[tuple[str, str], dict[str, Any]] = {}
        versions: dict[tuple[str, str], list[str]] = defaultdict(list)
        if present and {"source_system", "source_object"} <= cols:
            t = db.q(ent_name)
            sel = ", ".join(f"count({db.c(c)}) AS {db.c('f_' + c)}" for c in counted)
            for r in db.rows(f"SELECT source_system, source_object, count(*) AS n{', ' + sel if sel else ''} "
                             f"FROM {t} GROUP BY source_system, source_object"):
                fills[(r["source_system"], r["source_object"])] = r
            for r in db.rows(f"SELECT source_system, source_object, mapping_version, count(*) AS n FROM {t} "
                             "GROUP BY source_system, source_object, mapping_version"):
                versions[(r["source_system"], r["source_object"])].append(r["mapping_version"])
        rejects = _field_rejects(db, ent_name, counted) if present else {}
        for st, m in pairs:
            sobj = m.source_object or st.stream.name
            fill = fills.get((st.system, sobj), {})
            n = int(fill.get("n") or 0)
            entries: list[tuple[str, str, Any, str, str]] = []
            for fname, src, transform, params in m.fields:
                then = params.get("then")
                tname = transform + (f" -> {then['transform']}" if isinstance(then, dict) else "")
                entries.append((fname, fname, src, tname, "field"))
            for key, f in m.record_fields.items():
                entries.append((_RECORD_FIELDS[key], key, f.paths[0] if f.paths else None, f.transform, "record"))
            stale = sorted(v for v in versions.get((st.system, sobj), []) if v != m.version)
            for column, reject_field, src, tname, kind in entries:
                filled = int(fill.get(f"f_{column}") or 0)
                rj = rejects.get((st.system, sobj, reject_field), (0, 0))
                rej_null, rej_kept = rj[0] - rj[1], rj[1]
                source_values = filled + rej_null
                conformance = (filled - rej_kept) / source_values if source_values else None
                out.append({
                    "connector": st.connector, "stream": st.stream.name, "entity": ent_name,
                    "mapping_file": m.name, "mapping_version": m.version,
                    "older_versions_in_rows": ",".join(stale) or None,
                    "canonical_field": column, "kind": kind,
                    "required": ent.column(column).required,
                    "source_field": _source(src), "transform": tname,
                    "rows": n, "filled": filled, "fill_rate": round(filled / n, 4) if n else None,
                    "field_rejects": rj[0], "conformance": round(conformance, 4) if conformance is not None else None,
                    "samples": _samples(db, ent_name, column, st.system, sobj) if filled and present else [],
                })
    return out


def _field_rejects(db: _Db, ent_name: str, columns: Sequence[str]) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(system, object, field) -> (field rejects on the current rows, those whose row still has a value).

    Only rejects from the run that last wrote the row count: a value fixed at the vendor since then
    no longer lowers conformance.
    """
    if "rejects" not in db.tables or not columns:
        return {}
    key_for = {"source_updated_at": "updated_at", "is_deleted": "deleted", "deleted_at": "deleted_at"}
    cases = " ".join(f"WHEN '{key_for.get(c, c)}' THEN CAST(e.{db.c(c)} AS VARCHAR)" for c in columns)
    sql = (f"SELECT r.source_system, r.source_object, r.{db.c('field')} AS fld, count(*) AS n, "
           f"count(CASE r.{db.c('field')} {cases} END) AS kept "
           f"FROM {db.q('rejects')} r JOIN {db.q(ent_name)} e ON e.raw_key = r.raw_key "
           "AND e.source_record_id = r.source_record_id AND e.run_id = r.run_id "
           "AND e.source_system = r.source_system AND e.source_object = r.source_object "
           "WHERE r.severity = 'field' AND r.entity = %s GROUP BY r.source_system, r.source_object, r."
           + db.c("field"))
    return {(r["source_system"], r["source_object"], r["fld"]): (int(r["n"]), int(r["kept"]))
            for r in db.rows(sql, ent_name)}


def _samples(db: _Db, table: str, column: str, system: str, sobj: str) -> list[str]:
    col = db.c(column)
    rows = db.rows(f"SELECT DISTINCT v FROM (SELECT CAST({col} AS VARCHAR) AS v FROM {db.q(table)} "
                   f"WHERE source_system = %s AND source_object = %s AND {col} IS NOT NULL LIMIT 200) s "
                   f"LIMIT {SAMPLES}", system, sobj)
    return [m for r in rows if (m := mask_value(r["v"], field=column)) is not None]


# ---------------------------------------------------------------------------------------------
# Gaps: canonical fields nobody fills, required fields a stream leaves empty
# ---------------------------------------------------------------------------------------------


def _gaps(db: _Db, coverage: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by_entity: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in coverage:
        by_entity[c["entity"]].append(c)
    unfilled: list[dict[str, Any]] = []
    required: list[dict[str, Any]] = []
    record_rejects = _required_rejects(db)
    for ent_name, rows in sorted(by_entity.items()):
        ent = ENTITIES[ent_name]
        for col in ent.columns:
            mine = [r for r in rows if r["canonical_field"] == col.name]
            if not mine:
                status = "not mapped by any stream"
            elif not any(r["filled"] for r in mine):
                status = "mapped, but empty in every loaded row"
            else:
                continue
            unfilled.append({"entity": ent_name, "canonical_field": col.name, "required": col.required,
                             "status": status, "description": col.description,
                             "mapped_by": ", ".join(f"{r['connector']}/{r['stream']}" for r in mine) or None})
        streams = sorted({(r["connector"], r["stream"], r["mapping_file"]) for r in rows})
        for connector, stream, mfile in streams:
            by_field = {r["canonical_field"]: r for r in rows
                        if (r["connector"], r["stream"], r["mapping_file"]) == (connector, stream, mfile)}
            for col in ent.columns:
                if not col.required:
                    continue
                r = by_field.get(col.name)
                dropped = record_rejects.get((mfile, col.name), 0)
                if r is None:
                    problem = "not mapped"
                elif r["rows"] and r["filled"] < r["rows"]:
                    problem = "empty in some loaded rows"
                elif not r["rows"]:
                    problem = "no rows loaded"
                elif dropped:
                    problem = "records dropped because it was empty or invalid"
                else:
                    continue
                required.append({"connector": connector, "stream": stream, "entity": ent_name,
                                 "canonical_field": col.name, "problem": problem,
                                 "fill_rate": r["fill_rate"] if r else None, "records_rejected": dropped})
    return unfilled, required


def _required_rejects(db: _Db) -> dict[tuple[str, str], int]:
    if "rejects" not in db.tables:
        return {}
    rows = db.rows(f"SELECT mapping_file, {db.c('field')} AS fld, count(*) AS n FROM {db.q('rejects')} "
                   f"WHERE severity = 'record' AND {db.c('field')} IS NOT NULL "
                   f"GROUP BY mapping_file, {db.c('field')}")
    return {(r["mapping_file"], r["fld"]): int(r["n"]) for r in rows}


# ---------------------------------------------------------------------------------------------
# Profiles: unmapped candidates and drift
# ---------------------------------------------------------------------------------------------


def _profile_runs(db: _Db) -> dict[tuple[str, str], list[str]]:
    """(connector, stream) -> the two most recent runs that profiled at least one record, newest first."""
    if "field_profiles" not in db.tables:
        return {}
    rows = db.rows(
        "SELECT connector, stream, run_id FROM (SELECT connector, stream, run_id, row_number() OVER "
        "(PARTITION BY connector, stream ORDER BY run_id DESC) AS rn FROM (SELECT DISTINCT connector, stream, "
        f"run_id FROM {db.q('field_profiles')} WHERE total > 0) d) x WHERE rn <= 2")
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in rows:
        out[(r["connector"], r["stream"])].append(r["run_id"])
    return {k: sorted(v, reverse=True) for k, v in out.items()}


def _profile(db: _Db, connector: str, stream: str, run_id: str) -> dict[str, dict[str, Any]]:
    rows = db.rows(f"SELECT {db.c('path')} AS path, filled, total, fill_rate, types FROM {db.q('field_profiles')} "
                   "WHERE connector = %s AND stream = %s AND run_id = %s", connector, stream, run_id)
    return {r["path"]: r for r in rows}


def _unmapped(db: _Db, streams: list[_Stream], runs: dict[tuple[str, str], list[str]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for st in streams:
        run_ids = runs.get((st.connector, st.stream.name))
        if not run_ids:
            continue
        refs: set[str] = {st.stream.primary_key}
        if st.stream.cursor_field:
            refs.add(st.stream.cursor_field)
        for m in st.mappings:
            refs |= _referenced(m)
        profile = _profile(db, st.connector, st.stream.name, run_ids[0])
        cands = sorted((p for p in profile.values() if not _is_referenced(p["path"], refs)),
                       key=lambda p: (-(p["fill_rate"] or 0), p["path"]))
        for i, p in enumerate(cands):
            samples: list[str] = []
            if i < UNMAPPED_SAMPLED and p["filled"] and st.raw_table in db.tables:
                samples = _raw_samples(db, st.raw_table, p["path"])
            out.append({"connector": st.connector, "stream": st.stream.name, "run_id": run_ids[0],
                        "vendor_field": p["path"], "filled": p["filled"], "records": p["total"],
                        "fill_rate": p["fill_rate"], "types": p["types"] or None, "samples": samples})
    return out


def _raw_samples(db: _Db, raw_table: str, path: str) -> list[str]:
    expr = db.json_text("payload", path.split("."))
    if expr is None:
        return []
    sql, param = expr
    rows = db.rows(f"SELECT DISTINCT v FROM (SELECT {sql} AS v FROM {db.q(raw_table)} WHERE {sql} IS NOT NULL "
                   f"LIMIT 200) s LIMIT {SAMPLES}", param, param)
    return [m for r in rows if (m := mask_value(r["v"], path=path)) is not None]


def _drift(db: _Db, streams: list[_Stream], runs: dict[tuple[str, str], list[str]]
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    changes: list[dict[str, Any]] = []
    compared: list[dict[str, Any]] = []
    for st in streams:
        run_ids = runs.get((st.connector, st.stream.name), [])
        base = {"connector": st.connector, "stream": st.stream.name}
        if len(run_ids) < 2:
            compared.append({**base, "latest_run": run_ids[0] if run_ids else None, "previous_run": None,
                             "changes": 0, "note": "only one run with records so far: nothing to compare"})
            continue
        new, old = (_profile(db, st.connector, st.stream.name, r) for r in run_ids)
        n = 0
        for path in sorted(set(new) | set(old)):
            a, b = old.get(path), new.get(path)
            a_on, b_on = bool(a and a["filled"]), bool(b and b["filled"])
            ta = set(filter(None, (a or {}).get("types", "").split(",") if a and a["types"] else []))
            tb = set(filter(None, (b or {}).get("types", "").split(",") if b and b["types"] else []))
            if b_on and not a_on:
                change = "added"
            elif a_on and not b_on:
                change = "removed"
            elif a_on and b_on and ta and tb and ta != tb:
                change = "type changed"
            else:
                continue
            n += 1
            changes.append({**base, "previous_run": run_ids[1], "latest_run": run_ids[0], "vendor_field": path,
                            "change": change, "certainty": _certainty(change, a, b, old, new),
                            "types_before": ",".join(sorted(ta)) or None,
                            "types_after": ",".join(sorted(tb)) or None,
                            "fill_before": a["fill_rate"] if a else None, "fill_after": b["fill_rate"] if b else None})
        compared.append({**base, "latest_run": run_ids[0], "previous_run": run_ids[1], "changes": n,
                         "note": "no change" if not n else f"{n} change{'s' if n > 1 else ''}"})
    return changes, compared


def _total(profile: dict[str, dict[str, Any]]) -> int:
    return max((int(p["total"] or 0) for p in profile.values()), default=0)


def _certainty(change: str, a: dict[str, Any] | None, b: dict[str, Any] | None,
               old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> str:
    """Could an added/removed field be chance? A rare field can be absent from a small (incremental) run."""
    if change == "removed" and a:
        p, n = float(a["fill_rate"] or 0), _total(new)
    elif change == "added" and b:
        p, n = float(b["fill_rate"] or 0), _total(old)
    else:
        return "clear"
    # chance that a field filled in a share p of records is absent from all n records of the other run
    return "clear" if (1 - p) ** n < 0.05 else "may be chance: rare field, small run"


# ---------------------------------------------------------------------------------------------
# Rejects
# ---------------------------------------------------------------------------------------------


def _rejects(db: _Db, target: Target, latest: dict[str, str]) -> list[dict[str, Any]]:
    if "rejects" not in db.tables:
        return []
    fld = db.c("field")
    norm = "CASE WHEN value IS NULL OR value = '' THEN reason ELSE replace(reason, value, '<value>') END"
    groups = db.rows(
        f"SELECT entity, source_system, source_object, raw_table, severity, {fld} AS fld, {norm} AS reason, "
        f"count(*) AS n, max(run_id) AS last_run FROM {db.q('rejects')} "
        f"GROUP BY entity, source_system, source_object, raw_table, severity, {fld}, {norm} "
        f"ORDER BY count(*) DESC LIMIT {REJECT_GROUPS}")
    db_opt = f" --db {target.db_path}" if target.destination == "duckdb" else ""
    out: list[dict[str, Any]] = []
    for i, g in enumerate(groups):
        examples: list[dict[str, Any]] = []
        if i < REJECT_GROUPS_WITH_EXAMPLES:
            examples = db.rows(
                f"SELECT id, value, raw_key, source_record_id FROM {db.q('rejects')} WHERE entity = %s "
                f"AND source_system = %s AND source_object = %s AND severity = %s AND {fld} IS NOT DISTINCT FROM %s "
                f"AND {norm} = %s ORDER BY run_id DESC LIMIT {REJECT_EXAMPLES}",
                g["entity"], g["source_system"], g["source_object"], g["severity"], g["fld"], g["reason"])
        shown = []
        for e in examples:
            if g["severity"] == "field" and e["source_record_id"]:
                how = f"factoryline trace {g['entity']} {e['source_record_id']}{db_opt}"
            elif e["raw_key"]:
                how = f"no row was loaded; raw record: {g['raw_table']} raw_key={e['raw_key']}"
            else:
                how = f"the record had no id; its payload is in rejects id={e['id']}"
            name = g["fld"]
            value = mask_value(e["value"], field=name) if name in PERSONAL_FIELDS else mask_value(e["value"], path=name)
            shown.append({"value": value,
                          "record_id": e["source_record_id"], "raw_table": g["raw_table"], "raw_key": e["raw_key"],
                          "trace": how})
        out.append({"entity": g["entity"], "source_system": g["source_system"], "source_object": g["source_object"],
                    "raw_table": g["raw_table"], "severity": g["severity"], "field": g["fld"],
                    "reason": scrub_text(g["reason"]), "count": int(g["n"]), "last_seen_run": g["last_run"],
                    "in_latest_run": g["last_run"] == latest.get(g["raw_table"]), "examples": shown})
    return out


# ---------------------------------------------------------------------------------------------
# Tables, runs, definitions
# ---------------------------------------------------------------------------------------------


def _tables(db: _Db) -> list[dict[str, Any]]:
    names = sorted(t for t in db.tables if not t.startswith(("_dlt", "report_")))
    info: list[dict[str, Any]] = []
    for t in names:
        has_load = "_dlt_load_id" in db.columns(t)
        r = db.rows(f"SELECT count(*) AS n{', max(_dlt_load_id) AS last_load' if has_load else ''} FROM {db.q(t)}")[0]
        info.append({"table": t, "rows": int(r["n"]), "last_load_id": r.get("last_load")})
    loads = sorted({i["last_load_id"] for i in info if i["last_load_id"]})
    by_load: dict[str, dict[str, Any]] = {}
    if loads and "_dlt_loads" in db.tables:
        marks = ", ".join(["%s"] * len(loads))
        for r in db.rows(f"SELECT load_id, schema_name, inserted_at FROM {db.q('_dlt_loads')} "
                         f"WHERE load_id IN ({marks})", *loads):
            by_load[r["load_id"]] = dict(r)
        if "run_loads" in db.tables:
            for r in db.rows(f"SELECT DISTINCT load_id, run_id FROM {db.q('run_loads')} WHERE load_id IN ({marks})",
                             *loads):
                by_load.setdefault(r["load_id"], {})["run_id"] = r["run_id"]
        if "runs" in db.tables:
            for r in db.rows(f"SELECT _dlt_load_id AS load_id, run_id FROM {db.q('runs')} "
                             f"WHERE _dlt_load_id IN ({marks})", *loads):
                by_load.setdefault(r["load_id"], {}).setdefault("run_id", r["run_id"])
    for i in info:
        ld = by_load.get(i["last_load_id"] or "", {})
        i.update(loaded_at=ld.get("inserted_at"), run_id=ld.get("run_id"), schema=ld.get("schema_name"))
    return info


def _runs(db: _Db) -> list[dict[str, Any]]:
    if "runs" not in db.tables:
        return []
    return db.rows(f"SELECT run_id, status, started_at, finished_at FROM {db.q('runs')} "
                   "ORDER BY started_at DESC LIMIT 10")


def _definitions() -> dict[str, Any]:
    # the validated glossary, with the version stamp derived rows carry; the plain YAML scan below
    # is the fallback that still shows an invalid file's terms (and why it is invalid)
    from core.definitions import load_definitions

    try:
        defs = load_definitions()
    except FactorylineError as exc:
        found = _scan_definitions()
        found["note"] = "; ".join(n for n in (str(exc), found.get("note")) if n)
        return found
    return {"source": ", ".join(defs.files), "note": None,
            "terms": [{"term": t.name, "version": t.definition_version, "owner": t.owner,
                       "definition": scrub_text(t.meaning)} for t in defs.terms.values()]}


def _scan_definitions() -> dict[str, Any]:
    spec = importlib.util.find_spec("mappings")
    roots = list(spec.submodule_search_locations or []) if spec else []
    files: list[Path] = []
    names: list[str] = []
    for root in map(Path, roots):
        found = [root / "definitions.yaml"] if (root / "definitions.yaml").is_file() else []
        if (root / "definitions").is_dir():
            found += sorted((root / "definitions").glob("*.y*ml"))
        files += found
        names += [f"mappings/{f.relative_to(root).as_posix()}" for f in found]
    if not files:
        return {"source": None, "terms": [], "note": "no definitions yet"}
    terms: list[dict[str, Any]] = []
    errors: list[str] = []
    for f in files:
        try:
            data = yaml.safe_load(f.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            errors.append(f"{f.name}: {exc}")
            continue
        terms.extend(_terms(data, f.stem))
    return {"source": ", ".join(names), "terms": terms, "note": "; ".join(errors) or None}


def _terms(data: Any, default_name: str) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        for key in ("definitions", "terms"):
            if key in data:
                return _terms(data[key], default_name)
        if any(k in data for k in ("version", "definition", "description")) and not all(
                isinstance(v, dict) for v in data.values()):
            return [_term(default_name, data)]
        return [_term(str(k), v) for k, v in data.items()]
    if isinstance(data, list):
        return [_term(str(d.get("name") or d.get("term") or d.get("id") or default_name), d) if isinstance(d, dict)
                else _term(str(d), {}) for d in data]
    return []


def _term(name: str, d: Any) -> dict[str, Any]:
    d = d if isinstance(d, dict) else {"definition": d}
    text = d.get("definition") or d.get("meaning") or d.get("description") or d.get("summary") or d.get("rule")
    return {"term": name, "version": None if d.get("version") is None else str(d.get("version")),
            "owner": None if d.get("owner") is None else str(d.get("owner")),
            "definition": scrub_text(str(text)) if text is not None else None}


# ---------------------------------------------------------------------------------------------


def build_report(target: Target) -> dict[str, Any]:
    """The whole report as plain JSON-able data (personal data already masked)."""
    if target.destination == "duckdb" and not target.db_path.exists():
        raise FactorylineError(f"no database at {target.db_path}: run `factoryline run` (or `factoryline demo`) "
                               "first, or pass --db with the file your runs load into")
    pipeline = make_pipeline(target)
    dialect = str(getattr(pipeline.destination, "destination_name", target.destination))
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        client_cm = pipeline.sql_client()
    except Exception as exc:  # no destination configured yet
        raise FactorylineError(f"cannot open {target.describe()}: {exc}") from exc
    with client_cm as client:
        db = _Db(client, dialect)
        ran = _streams_run(db)
        streams, not_run, not_installed = _streams(ran)
        coverage = _coverage(db, streams)
        unfilled, required = _gaps(db, coverage)
        runs = _profile_runs(db)
        unmapped = _unmapped(db, streams, runs)
        drift, compared = _drift(db, streams, runs)
        latest = {st.raw_table: ran[(st.connector, st.stream.name)]["last_run"] for st in streams}
        rejects = _rejects(db, target, latest)
        tables = _tables(db)
        recent_runs = _runs(db)
    stream_rows = []
    for st in streams:
        r = ran[(st.connector, st.stream.name)]
        stream_rows.append({"connector": st.connector, "stream": st.stream.name, "raw_table": st.raw_table,
                            "entities": ", ".join(m.entity.name for m in st.mappings),
                            "mapping_files": ", ".join(f"{m.name} @ {m.version}" for m in st.mappings),
                            "runs": r["runs"], "last_run": r["last_run"], "last_status": r.get("last_status"),
                            "last_records": r.get("last_records"), "last_rejects": r.get("last_rejects"),
                            "mapping_errors": "; ".join(st.errors) or None})
    fills = [c["fill_rate"] for c in coverage if c["fill_rate"] is not None and c["kind"] == "field"]
    summary = {
        "streams": len(streams), "mapped_fields": sum(1 for c in coverage if c["kind"] == "field"),
        "average_fill_rate": round(sum(fills) / len(fills), 4) if fills else None,
        "rejects": sum(r["count"] for r in rejects), "reject_reasons": len(rejects),
        "drift_changes": len(drift), "unmapped_candidates": sum(1 for u in unmapped if u["fill_rate"]),
        "canonical_fields_unfilled": len(unfilled), "required_field_problems": len(required),
        "latest_run": recent_runs[0] if recent_runs else None,
    }
    return {
        "title": "Field-mapping report", "generated_at": generated, "target": target.describe(),
        "summary": summary, "streams": stream_rows, "streams_never_run": not_run,
        "streams_not_installed": not_installed, "coverage": coverage, "unfilled_fields": unfilled,
        "required_gaps": required, "unmapped": unmapped, "rejects": rejects, "drift": drift,
        "drift_compared": compared, "definitions": _definitions(), "tables": tables, "runs": recent_runs,
    }
