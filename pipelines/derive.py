"""Derived tables: identity graph, lifecycle events and attribution credits, computed in the destination.

::

    derive(target, run_id=)        after a run's loads (pipelines/run.py), or `factoryline derive`
      identity   -> identity_link    SQL: links by email / social handle / vendor cross-references,
                                     connected components by label propagation (unified id =
                                     smallest member person id)
      lifecycle  -> lifecycle_event  SQL: each stage term's rule clauses, first entry per person
                                     record and definition version (old versions' rows are kept)
      attribution-> attribution_credit  SQL selects every conversion's touches in the window,
                                     ordered; Python streams them one conversion at a time through
                                     the registered models

Nothing holds a whole table in Python: the SQL runs in the destination (DuckDB, PostgreSQL), results
are fetched in batches of ``BATCH`` rows into local parquet files, and dlt loads those files like
any other table (identity and credits replace the previous derivation; lifecycle events merge, so
every definition version ever derived stays queryable).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from core.attribution import AttributionModel, Conversion, TouchPoint, credit
from core.definitions import Clause, Condition, Definitions, load_definitions
from core.entities import ENTITIES
from core.plugins import get_registry
from pipelines.destination import Target, duckdb_memory_limit, load_package, make_pipeline

__all__ = ["BATCH", "DeriveResult", "derive"]

log = logging.getLogger("factoryline.derive")

BATCH = 10_000
SOURCE_NAME = "factoryline_derived"
#: label propagation stops after this many rounds (each round at least halves every path by pointer jumping)
MAX_ROUNDS = 64


@dataclass
class DeriveResult:
    run_id: str
    definitions_version: str
    rows: dict[str, int] = field(default_factory=dict)
    load_ids: list[str] = field(default_factory=list)
    #: inputs that were not there (a vendor not loaded yet): the clauses reading them were skipped
    skipped: list[str] = field(default_factory=list)
    rounds: int = 0


class _Db:
    """SQL in the destination's dialect, over one sql_client session (temp tables live in it)."""

    def __init__(self, client: Any, dialect: str, dataset: str) -> None:
        self.client = client
        self.dialect = dialect
        self.tables = {str(r[0]).lower(): str(r[0]) for r in client.execute_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", dataset) or []}

    def has(self, table: str) -> bool:
        return table.lower() in self.tables

    def q(self, table: str) -> str:
        return str(self.client.make_qualified_table_name(self.tables.get(table.lower(), table)))

    def exec(self, sql: str) -> None:
        self.client.execute_sql(sql)

    def scalar(self, sql: str) -> Any:
        rows = self.client.execute_sql(sql)
        return rows[0][0] if rows else None

    def batches(self, sql: str) -> Iterator[pa.Table]:
        """The result of ``sql`` in Arrow tables of at most ``BATCH`` rows."""
        if self.dialect == "duckdb":  # DuckDB streams Arrow record batches natively
            for batch in self.client.native_connection.sql(sql).to_arrow_reader(BATCH):
                yield pa.Table.from_batches([batch])
            return
        with self.client.execute_query(sql) as cur:
            cols = [d[0] for d in cur.description]
            for chunk in cur.iter_fetch(BATCH):
                yield pa.table({c: [r[i] for r in chunk] for i, c in enumerate(cols)})

    def drop(self, *names: str) -> None:
        for n in names:
            self.exec(f"DROP TABLE IF EXISTS {n}")

    # -- dialect ------------------------------------------------------------------------------

    def json(self, col: str, path: str) -> str:
        parts = path.split(".")
        if self.dialect == "postgres":
            return f"({col}::jsonb #>> '{{{','.join(parts)}}}')"
        return "json_extract_string({}, '$.{}')".format(col, ".".join('"' + p.replace("'", "''") + '"' for p in parts))

    def ts(self, expr: str) -> str:
        """Text to a UTC timestamp: ISO 8601 or a date, or epoch milliseconds."""
        if self.dialect == "postgres":
            return (f"(CASE WHEN {expr} ~ '^[0-9]{{12,14}}$' THEN to_timestamp(({expr})::bigint / 1000.0) "
                    f"WHEN {expr} ~ '^[0-9]{{4}}-' THEN ({expr})::timestamptz END)")
        return (f"(CASE WHEN regexp_full_match({expr}, '[0-9]{{12,14}}') THEN make_timestamp(({expr})::BIGINT * 1000)"
                f"::TIMESTAMPTZ ELSE TRY_CAST({expr} AS TIMESTAMPTZ) END)")

    def num(self, expr: str) -> str:
        if self.dialect == "postgres":
            return f"(CASE WHEN {expr} ~ '^-?[0-9.]+$' THEN ({expr})::double precision END)"
        return f"TRY_CAST({expr} AS DOUBLE)"

    def split(self, expr: str, sep: str) -> str:
        if self.dialect == "postgres":
            return f"unnest(string_to_array({expr}, {lit(sep)}))"
        return f"unnest(string_split({expr}, {lit(sep)}))"

    def days_before(self, expr: str, days: int) -> str:
        return f"({expr} - INTERVAL '{int(days)} days')"


def lit(v: Any) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int | float):
        return repr(float(v))
    return "'" + str(v).replace("'", "''") + "'"


def _col(alias: str, name: str) -> str:
    return f'{alias}."{name}"'


def _condition(db: _Db, c: Condition, value_expr: str, is_text: bool) -> str:
    v = value_expr
    if c.op == "present":
        filled = f"({v} IS NOT NULL AND CAST({v} AS VARCHAR) <> '')" if is_text else f"({v} IS NOT NULL)"
        return filled if c.value else f"NOT {filled}"
    if c.op == "is":
        b = f"(lower(CAST({v} AS VARCHAR)) IN ('true', '1'))" if is_text else f"coalesce({v}, FALSE)"
        return b if c.value else f"NOT {b}"
    if c.op in ("gt", "gte", "lt", "lte"):
        sym = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[c.op]
        return f"({db.num(v) if is_text else v} {sym} {lit(c.value)})"
    if c.op in ("in", "not_in"):
        inner = f"{v} IN ({', '.join(lit(x) for x in c.value)})"
        return f"({inner})" if c.op == "in" else f"({v} IS NULL OR NOT {inner})"
    if c.op == "eq":
        return f"({v} = {lit(c.value)})"
    return f"({v} IS NULL OR {v} <> {lit(c.value)})"  # ne


def _clause_sql(db: _Db, clause: Clause, index: int) -> str | None:
    """One rule clause as SELECT person_id, account_id, occurred_at, evidence provenance, clause."""
    if clause.kind == "entity":
        if not db.has(clause.source):
            return None
        e = ENTITIES[clause.source]
        names = {c.name for c in e.all_columns}
        person = "e.id" if clause.source == "person" else ("e.person_id" if "person_id" in names else "NULL")
        account = ("e.id" if clause.source == "account" else
                   "e.account_id" if "account_id" in names else "NULL")
        conds = [_condition(db, c, _col("e", c.ref), str(e.column(c.ref).type) == "string") for c in clause.where]
        at = ", ".join(_col("e", a) for a in clause.at)
        return (f"SELECT {person} AS person_id, {account} AS account_id, coalesce({at}, NULL) AS occurred_at, "
                "e.source_system, e.source_instance, e.source_object, e.source_record_id, e.raw_table, e.raw_key, "
                f"e.extracted_at, {index} AS clause FROM {db.q(clause.source)} e "
                f"WHERE {' AND '.join(conds) or 'TRUE'}")
    if not db.has(clause.source) or not db.has("person"):
        return None
    conds = [_condition(db, c, db.json("r.payload", c.ref), True) for c in clause.where]
    at = ", ".join(db.ts(db.json("r.payload", a)) for a in clause.at)
    # the vendor JSON is read once, filtered and reduced to the observation before the join: a join
    # that carried the payloads would need them all in memory (out of memory at 100k contacts)
    obs = (f"SELECT r.raw_key, r.extracted_at, coalesce({at}, NULL) AS occurred_at FROM {db.q(clause.source)} r "
           f"WHERE {' AND '.join(conds) or 'TRUE'}")
    return (f"SELECT p.id AS person_id, p.account_id, r.occurred_at, p.source_system, "
            "p.source_instance, p.source_object, p.source_record_id, p.raw_table, r.raw_key, r.extracted_at, "
            f"{index} AS clause FROM ({obs}) r JOIN {db.q('person')} p "
            f"ON lower(p.raw_table) = {lit(clause.source.lower())} AND p.raw_key = r.raw_key")


# ---------------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------------


def _identity(db: _Db, defs: Definitions, result: DeriveResult) -> None:
    """Temp tables fl_nodes (person id, email, handle), fl_edges (a, b, rule, confidence), fl_label (id, label)."""
    cfg = defs.identity
    db.drop("fl_nodes", "fl_edges", "fl_und", "fl_label", "fl_next")
    db.exec(f"CREATE TEMP TABLE fl_nodes AS SELECT id, nullif(lower(trim(email)), '') AS email, "
            f"nullif(lower(ltrim(trim(social_handle), '@')), '') AS handle FROM {db.q('person')}")
    db.exec("CREATE TEMP TABLE fl_edges (a VARCHAR, b VARCHAR, rule VARCHAR, confidence DOUBLE PRECISION)")
    # a star per shared value (every member to the smallest id), not a clique: O(members) edges
    for col, rule, conf in (("email", "email", cfg.email_confidence), ("handle", "social_handle",
                                                                         cfg.handle_confidence)):
        db.exec(f"INSERT INTO fl_edges SELECT id, root, {lit(rule)}, {lit(conf)} FROM (SELECT id, "
                f"min(id) OVER (PARTITION BY {col}) AS root FROM fl_nodes WHERE {col} IS NOT NULL) s "
                "WHERE id <> root")
    for x in cfg.crossrefs:
        if not db.has(x.raw) or not db.has(x.to_raw):
            result.skipped.append(f"identity {x.name}: no {x.raw if not db.has(x.raw) else x.to_raw} loaded")
            continue
        ref = db.json("r.payload", x.ref)
        value = db.split(ref, x.split) if x.split else ref
        conds = [_condition(db, c, db.json("r.payload", c.ref), True) for c in x.where]
        db.exec(
            f"INSERT INTO fl_edges SELECT DISTINCT s.id, q.id, {lit(x.name)}, {lit(x.confidence)} FROM "
            f"(SELECT p.id, p.source_instance, trim({value}) AS v FROM {db.q(x.raw)} r JOIN {db.q('person')} p "
            f"ON lower(p.raw_table) = {lit(x.raw.lower())} AND p.raw_key = r.raw_key "
            f"WHERE {' AND '.join(conds) or 'TRUE'}) s JOIN {db.q('person')} q "
            f"ON lower(q.raw_table) = {lit(x.to_raw.lower())} AND q.source_instance = s.source_instance "
            "AND q.source_record_id = s.v WHERE q.id <> s.id")
    db.exec("CREATE TEMP TABLE fl_und AS SELECT a, b FROM fl_edges UNION SELECT b, a FROM fl_edges")
    db.exec("CREATE TEMP TABLE fl_label AS SELECT id, id AS label FROM fl_nodes")
    for rounds in range(1, MAX_ROUNDS + 1):
        # smallest label among neighbours, then pointer jumping (label of my label)
        db.exec("CREATE TEMP TABLE fl_next AS SELECT l.id, least(l.label, coalesce(min(n.label), l.label)) "
                "AS label FROM fl_label l LEFT JOIN fl_und e ON e.a = l.id LEFT JOIN fl_label n ON n.id = e.b "
                "GROUP BY l.id, l.label")
        db.exec("CREATE TEMP TABLE fl_jump AS SELECT x.id, least(x.label, y.label) AS label FROM fl_next x "
                "JOIN fl_next y ON y.id = x.label")
        changed = db.scalar("SELECT count(*) FROM fl_jump j JOIN fl_label l ON l.id = j.id WHERE j.label <> l.label")
        db.drop("fl_label", "fl_next")
        db.exec("ALTER TABLE fl_jump RENAME TO fl_label")
        result.rounds = rounds
        if not changed:
            break
    else:
        raise RuntimeError(f"identity graph did not converge in {MAX_ROUNDS} rounds")


def _identity_rows(db: _Db) -> str:
    return ("SELECT md5(k.person_id || '|' || k.linked_person_id || '|' || k.rule) AS id, k.person_id, "
            "k.linked_person_id, k.rule, k.confidence, l.label AS unified_person_id, p.source_system, "
            "p.source_instance, p.source_object, p.source_record_id, p.raw_table, p.raw_key, p.extracted_at "
            "FROM (SELECT a AS person_id, b AS linked_person_id, rule, max(confidence) AS confidence FROM fl_edges "
            "GROUP BY a, b, rule UNION ALL SELECT id, id, 'self', 1.0 FROM fl_nodes) k "
            f"JOIN fl_label l ON l.id = k.person_id JOIN {db.q('person')} p ON p.id = k.person_id "
            "ORDER BY k.person_id, k.linked_person_id, k.rule")


# ---------------------------------------------------------------------------------------------
# Lifecycle
# ---------------------------------------------------------------------------------------------


def _lifecycle(db: _Db, defs: Definitions, result: DeriveResult) -> None:
    """Temp table fl_events: the first entry of each person record (or account) into each stage."""
    db.drop("fl_events")
    db.exec("CREATE TEMP TABLE fl_events (id VARCHAR, term VARCHAR, stage VARCHAR, definition_version VARCHAR, "
            "person_id VARCHAR, account_id VARCHAR, unified_person_id VARCHAR, occurred_at TIMESTAMPTZ, "
            "source_system VARCHAR, source_instance VARCHAR, source_object VARCHAR, source_record_id VARCHAR, "
            "raw_table VARCHAR, raw_key VARCHAR, extracted_at TIMESTAMPTZ, clause INTEGER)")
    for term in defs.stage_terms():
        parts = []
        for i, clause in enumerate(term.clauses):
            sql = _clause_sql(db, clause, i)
            if sql is None:
                result.skipped.append(f"{term.name} clause {i + 1} ({term.file}:{clause.line}): "
                                      f"no {clause.source} loaded")
            else:
                parts.append(sql)
        if not parts:
            continue
        version = term.definition_version
        order = "u.occurred_at, u.clause, u.raw_key" if term.mode == "any" else "u.clause, u.occurred_at, u.raw_key"
        new = (f"SELECT md5({lit(version)} || '|' || s.subject) AS id, s.* FROM (SELECT u.*, row_number() OVER "
               f"(PARTITION BY u.subject ORDER BY {order}) AS rn FROM (SELECT c.*, coalesce(c.person_id, "
               f"'account:' || c.account_id) AS subject FROM ({' UNION ALL '.join(parts)}) c "
               "WHERE c.occurred_at IS NOT NULL AND (c.person_id IS NOT NULL OR c.account_id IS NOT NULL)) u) s "
               "WHERE s.rn = 1")
        # entering a stage is history: an earlier entry already derived under this version is kept
        # (a score-based MQL observed at the record's last change must not move later on every change)
        evidence = ("occurred_at", "source_system", "source_instance", "source_object", "source_record_id",
                    "raw_table", "raw_key", "extracted_at")
        if db.has("lifecycle_event"):
            join = f"LEFT JOIN {db.q('lifecycle_event')} x ON x.id = n.id"
            keep = "x.occurred_at IS NOT NULL AND x.occurred_at < n.occurred_at"
            cols = ", ".join(f"CASE WHEN {keep} THEN x.{c} ELSE n.{c} END" for c in evidence)
        else:
            join, cols = "", ", ".join(f"n.{c}" for c in evidence)
        db.exec(
            f"INSERT INTO fl_events SELECT n.id, {lit(term.name)}, {lit(term.stage)}, {lit(version)}, n.person_id, "
            f"n.account_id, CASE WHEN n.person_id IS NOT NULL THEN coalesce(l.label, n.person_id) END, {cols}, "
            f"n.clause FROM ({new}) n LEFT JOIN fl_label l ON l.id = n.person_id {join}")


# ---------------------------------------------------------------------------------------------
# Attribution
# ---------------------------------------------------------------------------------------------


def _touch_filter(db: _Db, defs: Definitions) -> str:
    ors = []
    for name in defs.attribution.touch_terms:
        for clause in defs.terms[name].clauses:
            ands = [_condition(db, c, _col("t", c.ref), str(ENTITIES["touch"].column(c.ref).type) == "string")
                    for c in clause.where]
            ors.append("(" + (" AND ".join(ands) or "TRUE") + ")")
    return " OR ".join(ors) or "TRUE"


def _attribution_sql(db: _Db, defs: Definitions, result: DeriveResult) -> str | None:
    if not db.has("touch"):
        result.skipped.append("attribution: no touch loaded")
        return None
    convs, people = [], []
    if db.has("opportunity"):
        o = db.q("opportunity")
        won = "o.is_won AND NOT coalesce(o.is_deleted, FALSE)"
        convs.append(f"SELECT 'opportunity' AS ctype, o.id AS cid, coalesce(o.close_date, o.source_updated_at) AS cat, "
                     f"o.created_at AS opp_at FROM {o} o WHERE {won}")
        people.append(f"SELECT 'opportunity' AS ctype, o.id AS cid, coalesce(l.label, o.person_id) AS up FROM {o} o "
                      f"LEFT JOIN fl_label l ON l.id = o.person_id WHERE {won} AND o.person_id IS NOT NULL")
        people.append(f"SELECT 'opportunity' AS ctype, o.id AS cid, l.label AS up FROM {o} o JOIN {db.q('person')} p "
                      f"ON p.account_id = o.account_id JOIN fl_label l ON l.id = p.id WHERE {won}")
    else:
        result.skipped.append("attribution: no opportunity loaded")
    if db.has("order"):
        r = db.q("order")
        ok = ("NOT coalesce(r.is_test, FALSE) AND NOT coalesce(r.is_cancelled, FALSE) "
              "AND NOT coalesce(r.is_deleted, FALSE)")
        convs.append(f"SELECT 'order' AS ctype, r.id AS cid, r.ordered_at AS cat, CAST(NULL AS TIMESTAMPTZ) AS opp_at "
                     f"FROM {r} r WHERE {ok}")
        people.append(f"SELECT 'order' AS ctype, r.id AS cid, coalesce(l.label, r.person_id) AS up FROM {r} r "
                      f"LEFT JOIN fl_label l ON l.id = r.person_id WHERE {ok} AND r.person_id IS NOT NULL")
        # a guest order (no customer record) still reaches its person through the email
        people.append(f"SELECT 'order' AS ctype, r.id AS cid, l.label AS up FROM {r} r JOIN fl_nodes n "
                      f"ON n.email = lower(trim(r.email)) JOIN fl_label l ON l.id = n.id WHERE {ok}")
    else:
        result.skipped.append("attribution: no order loaded")
    if not convs:
        return None
    lookback = defs.attribution.lookback_days
    norm_handle = "nullif(lower(ltrim(trim(t.social_handle), '@')), '')"
    # touches a vendor reports by address only (identity.touch_emails) reach people through the email
    by_address = [f"WHEN t.source_system = {lit(x.source_system)} AND t.source_object = {lit(x.source_object)} "
                  f"THEN {db.json('t.extras', x.path)}" for x in defs.identity.touch_emails]
    touch_email = f"lower(trim(CASE {' '.join(by_address)} END))" if by_address else "CAST(NULL AS VARCHAR)"
    return (
        f"WITH conv AS ({' UNION ALL '.join(convs)}), "
        f"cp AS (SELECT DISTINCT ctype, cid, up FROM ({' UNION ALL '.join(people)}) x WHERE up IS NOT NULL), "
        "handles AS (SELECT n.handle, min(l.label) AS label FROM fl_nodes n JOIN fl_label l ON l.id = n.id "
        "WHERE n.handle IS NOT NULL GROUP BY n.handle), "
        "emails AS (SELECT n.email, min(l.label) AS label FROM fl_nodes n JOIN fl_label l ON l.id = n.id "
        "WHERE n.email IS NOT NULL GROUP BY n.email), "
        "t AS (SELECT t.id, t.occurred_at, t.touch_type, t.source_system, t.source_instance, t.source_object, "
        "t.source_record_id, t.raw_table, t.raw_key, t.extracted_at, "
        f"coalesce(lp.label, t.person_id, h.label, em.label) AS up FROM {db.q('touch')} t "
        "LEFT JOIN fl_label lp ON lp.id = t.person_id "
        f"LEFT JOIN handles h ON t.person_id IS NULL AND h.handle = {norm_handle} "
        f"LEFT JOIN emails em ON t.person_id IS NULL AND em.email = {touch_email} "
        f"WHERE NOT coalesce(t.is_deleted, FALSE) AND ({_touch_filter(db, defs)})), "
        "lead AS (SELECT unified_person_id AS up, min(occurred_at) AS lead_at FROM fl_events "
        "WHERE stage = 'lead' AND unified_person_id IS NOT NULL GROUP BY unified_person_id), "
        "cl AS (SELECT cp.ctype, cp.cid, min(lead.lead_at) AS lead_at FROM cp JOIN lead ON lead.up = cp.up "
        "GROUP BY cp.ctype, cp.cid) "
        "SELECT c.ctype, c.cid, c.cat, c.opp_at, cl.lead_at, t.id AS touch_id, t.occurred_at, t.touch_type, t.up, "
        "t.source_system, t.source_instance, t.source_object, t.source_record_id, t.raw_table, t.raw_key, "
        "t.extracted_at FROM conv c JOIN cp ON cp.ctype = c.ctype AND cp.cid = c.cid "
        "JOIN t ON t.up = cp.up AND t.occurred_at <= c.cat "
        f"AND t.occurred_at > {db.days_before('c.cat', lookback)} "
        "LEFT JOIN cl ON cl.ctype = c.ctype AND cl.cid = c.cid WHERE c.cat IS NOT NULL "
        "ORDER BY c.ctype, c.cid, t.occurred_at, t.id")


def _credit_rows(db: _Db, sql: str, defs: Definitions, models: dict[str, AttributionModel],
                 run_id: str, now: datetime) -> Iterator[dict[str, list[Any]]]:
    """Stream conversion touches (ordered) and yield column batches of attribution_credit rows."""
    params = {n: {**m.defaults, **defs.attribution.models.get(n, {})} for n, m in models.items()}
    params_json = {n: orjson.dumps(p, option=orjson.OPT_SORT_KEYS).decode() for n, p in params.items()}
    lookback = defs.attribution.lookback_days
    #: query columns copied onto every credit row of the touch: (output column, query column)
    copied = (("touch_id", "touch_id"), ("touch_occurred_at", "occurred_at"), ("touch_type", "touch_type"),
              ("unified_person_id", "up"), ("source_system", "source_system"),
              ("source_instance", "source_instance"), ("source_object", "source_object"),
              ("source_record_id", "source_record_id"), ("raw_table", "raw_table"), ("raw_key", "raw_key"),
              ("extracted_at", "extracted_at"))
    names = ("id", "conversion_type", "conversion_id", "model", "model_params", "credit", "lookback_days",
             "converted_at", "position", "touch_count", "is_deleted", "run_id", "mapping_version",
             *(c for c, _ in copied))
    out: dict[str, list[Any]] = {n: [] for n in names}
    group: list[tuple[Any, ...]] = []
    ix: dict[str, int] = {}

    def flush_group() -> None:
        if not group:
            return
        g0, n = group[0], len(group)
        conv = Conversion(g0[ix["ctype"]], g0[ix["cid"]], g0[ix["cat"]], g0[ix["lead_at"]], g0[ix["opp_at"]])
        touch_ids = [r[ix["touch_id"]] for r in group]
        touches = [TouchPoint(t, r[ix["occurred_at"]]) for t, r in zip(touch_ids, group, strict=True)]
        columns = {c: [r[ix[q]] for r in group] for c, q in copied}
        columns["extracted_at"] = [x or now for x in columns["extracted_at"]]
        positions = list(range(1, n + 1))
        for name, model in models.items():
            out["credit"].extend(credit(model, touches, conv, params[name]))
            prefix = f"{conv.kind}|{conv.id}|{name}|"
            out["id"].extend(hashlib.blake2b((prefix + t).encode(), digest_size=16).hexdigest() for t in touch_ids)
            for col, value in (("conversion_type", conv.kind), ("conversion_id", conv.id), ("model", name),
                               ("model_params", params_json[name]), ("lookback_days", lookback),
                               ("converted_at", conv.converted_at), ("touch_count", n), ("is_deleted", False),
                               ("run_id", run_id), ("mapping_version", defs.version)):
                out[col].extend([value] * n)
            out["position"].extend(positions)
            for col, values in columns.items():
                out[col].extend(values)
        group.clear()

    for table in db.batches(sql):
        if not ix:
            ix.update({c: i for i, c in enumerate(table.column_names)})
        ci, ti = ix["cid"], ix["ctype"]
        for tup in zip(*(col.to_pylist() for col in table.columns), strict=True):
            if group and (group[0][ci] != tup[ci] or group[0][ti] != tup[ti]):
                flush_group()
                if len(out["id"]) >= BATCH:
                    yield out
                    out = {n: [] for n in names}
            group.append(tup)
    flush_group()
    if out["id"]:
        yield out


# ---------------------------------------------------------------------------------------------
# Writing: batches -> local parquet -> dlt
# ---------------------------------------------------------------------------------------------


class _Sink:
    """Parquet file of one output table, written batch by batch in the entity's Arrow schema."""

    def __init__(self, folder: Path, entity: str) -> None:
        self.entity = entity
        self.schema = ENTITIES[entity].arrow_schema()
        self.path = folder / f"{entity}.parquet"
        self.writer = pq.ParquetWriter(self.path, self.schema)
        self.rows = 0

    def write_columns(self, cols: dict[str, list[Any]]) -> None:
        n = len(next(iter(cols.values())))
        arrays = [pa.array(cols.get(f.name, [None] * n), f.type) for f in self.schema]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += n

    def write_query(self, db: _Db, sql: str, fixed: dict[str, Any]) -> None:
        """Copy a query's result into the file, Arrow batch by Arrow batch, in the entity's schema."""
        for table in db.batches(sql):
            n = table.num_rows
            if not n:
                continue
            arrays = []
            for f in self.schema:
                if f.name in table.column_names:
                    arrays.append(table.column(f.name).cast(f.type))
                else:
                    arrays.append(pa.array([fixed.get(f.name)] * n, f.type))
            self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
            self.rows += n

    def close(self) -> None:
        self.writer.close()


def _resource(sink: _Sink, disposition: Any) -> Any:
    ent = ENTITIES[sink.entity]
    columns: Any = {c.name: {"name": c.name, "nullable": not c.required and c.name != "id"} for c in ent.all_columns}
    path, schema = sink.path, sink.schema

    def rows() -> Iterator[pa.Table]:
        f = pq.ParquetFile(path)
        yielded = False
        for batch in f.iter_batches(batch_size=BATCH):
            yielded = True
            yield pa.Table.from_batches([batch], schema=schema)
        if not yielded:  # still create (or, for replace, empty) the table
            yield schema.empty_table()
    return dlt.resource(rows, name=sink.entity, write_disposition=disposition, primary_key="id", columns=columns)


def _derive_tables(db: _Db, defs: Definitions, models: dict[str, AttributionModel], result: DeriveResult,
                   folder: Path, fixed: dict[str, Any], now: datetime, sinks: list[tuple[_Sink, Any]]) -> None:
    """Identity, lifecycle and attribution rows into parquet sinks (appended to ``sinks``)."""
    _identity(db, defs, result)
    ident = _Sink(folder, "identity_link")
    ident.write_query(db, _identity_rows(db), fixed)
    sinks.append((ident, "replace"))
    _lifecycle(db, defs, result)
    life = _Sink(folder, "lifecycle_event")
    life.write_query(db, "SELECT id, term, stage, definition_version, person_id, account_id, "
                         "unified_person_id, occurred_at, source_system, source_instance, source_object, "
                         "source_record_id, raw_table, raw_key, extracted_at FROM fl_events ORDER BY id",
                     fixed)
    sinks.append((life, {"disposition": "merge", "strategy": "upsert"}))
    credits = _Sink(folder, "attribution_credit")
    sql = _attribution_sql(db, defs, result)
    if sql is not None:
        for cols in _credit_rows(db, sql, defs, models, result.run_id, now):
            credits.write_columns(cols)
    sinks.append((credits, "replace"))
    db.drop("fl_nodes", "fl_edges", "fl_und", "fl_label", "fl_events")


def derive(target: Target, *, run_id: str | None = None, definitions: Definitions | Path | None = None,
           pipeline: Any = None, models: Mapping[str, AttributionModel] | None = None) -> DeriveResult:
    """Recompute identity_link, lifecycle_event and attribution_credit from what ``target`` holds.

    ``models`` defaults to every model the plugins registered; ``definitions`` to mappings/definitions.yaml.
    """
    from pipelines.run import new_run_id

    defs = definitions if isinstance(definitions, Definitions) else load_definitions(definitions)
    models = dict(sorted((models if models is not None else get_registry().attribution_models).items()))
    defs.check_models(models)
    now = datetime.now(UTC)
    result = DeriveResult(run_id=run_id or new_run_id(now), definitions_version=defs.version)
    pipeline = pipeline or make_pipeline(target)
    dialect = "postgres" if target.destination == "postgres" else "duckdb"
    target.pipelines_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="derive-", dir=target.pipelines_dir()) as tmp:
        folder = Path(tmp)
        sinks: list[tuple[_Sink, Any]] = []
        with pipeline.sql_client() as client:
            db = _Db(client, dialect, target.dataset)
            if not db.has("person"):
                result.skipped.append("everything: no person loaded yet")
                return result
            fixed = {"is_deleted": False, "run_id": result.run_id, "mapping_version": defs.version}
            if dialect == "duckdb":
                # Under the capped buffer pool, each DuckDB thread's share of a window over every
                # person's stage observations ran out of memory at 100k contacts; one thread fits,
                # in a pool larger than the loads' (the load pool alone ran out at 100k contacts)
                db.exec("SET threads = 1")
                db.exec(f"SET memory_limit = '{duckdb_memory_limit(derive=True)}'")
            try:
                _derive_tables(db, defs, models, result, folder, fixed, now, sinks)
            finally:
                if dialect == "duckdb":
                    db.exec("RESET threads")
                    db.exec(f"SET memory_limit = '{duckdb_memory_limit()}'")
        for sink, _ in sinks:
            sink.close()
            result.rows[sink.entity] = sink.rows

        @dlt.source(name=SOURCE_NAME, max_table_nesting=0)
        def derived() -> Sequence[Any]:
            return [_resource(s, d) for s, d in sinks]

        info = load_package(pipeline, derived())
        result.load_ids.extend(info.loads_ids)
    for s in result.skipped:
        log.info("derive: skipped %s", s)
    return result


def conversion_ratio(target: Target, from_stage: str, to_stage: str, *, since: str | None = None,
                     until: str | None = None, definitions: Definitions | None = None) -> dict[str, Any]:
    """The ``conversion ratio`` term: of the unified people who entered ``from_stage`` in [since, until),
    how many entered ``to_stage`` in the same period, at or after entering ``from_stage``."""
    defs = definitions or load_definitions()
    a, b = defs.stage_term(from_stage).definition_version, defs.stage_term(to_stage).definition_version
    lo = datetime.fromisoformat(since).replace(tzinfo=UTC) if since else datetime(1970, 1, 1, tzinfo=UTC)
    hi = datetime.fromisoformat(until).replace(tzinfo=UTC) if until else datetime(9999, 1, 1, tzinfo=UTC)
    pipeline = make_pipeline(target)
    with pipeline.sql_client() as client:
        t = client.make_qualified_table_name("lifecycle_event")
        entered = ("SELECT unified_person_id AS u, min(occurred_at) AS at FROM {t} WHERE definition_version = %s "
                   "AND unified_person_id IS NOT NULL AND occurred_at >= %s AND occurred_at < %s GROUP BY 1")
        rows = client.execute_sql(
            f"WITH a AS ({entered.format(t=t)}), b AS ({entered.format(t=t)}) "
            "SELECT count(*), count(b.u) FROM a LEFT JOIN b ON b.u = a.u AND b.at >= a.at", a, lo, hi, b, lo, hi)
    n, k = (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)
    return {"from_version": a, "to_version": b, "entered": n, "converted": k, "ratio": k / n if n else None}
