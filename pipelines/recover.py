"""Finishing a killed run's load package without duplicate rows.

dlt marks a load job done only after the destination committed it. A run killed between the two
(the COPY of a file into a merge table's staging table committed, the job not yet marked) makes
the next run copy the same file again; the staging table then holds each of those keys twice, and
an upsert MERGE inserts both copies into the final table (dlt-hub/dlt#3023 reports the same).
So before a run extracts anything it finishes any package a killed run left, then keeps one row
per primary key in every merge table. A marker file in dlt's working folder stays until that
clean-up has committed, so a run killed during the clean-up repeats it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MARKER = "factoryline_recovering"

#: destinations whose rows can be told apart without a key: DuckDB's rowid, PostgreSQL's ctid
_ROW_ID = {"duckdb": "rowid", "postgres": "ctid"}


def finish_pending(pipeline: Any) -> list[str]:
    """Load what a killed run left, then drop duplicate keys; returns the tables repaired."""
    marker = Path(pipeline.working_dir) / MARKER
    if not pipeline.has_pending_data and not marker.exists():
        return []
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    if pipeline.has_pending_data:
        log.warning("finishing the load package a stopped run left before extracting anything")
        pipeline.normalize()
        pipeline.load()
    repaired = deduplicate(pipeline)
    marker.unlink()
    return repaired


def _merge_tables(pipeline: Any) -> list[tuple[str, list[str]]]:
    out = []
    for schema in pipeline.schemas.values():
        for table in schema.data_tables():
            if table.get("write_disposition") != "merge":
                continue
            keys = [c for c, col in (table.get("columns") or {}).items() if col.get("primary_key")]
            if keys:
                out.append((str(table["name"]), keys))
    return out


def deduplicate(pipeline: Any) -> list[str]:
    """Keep one row per primary key (the newest load's) in every merge table of the pipeline."""
    row_id = _ROW_ID.get(pipeline.destination.destination_name)
    if row_id is None:
        log.warning("cannot check %s for duplicate keys after a stopped run", pipeline.destination.destination_name)
        return []
    repaired = []
    with pipeline.sql_client() as client:
        existing = {r[0] for r in client.execute_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", client.dataset_name)}
        for name, keys in _merge_tables(pipeline):
            if name not in existing:
                continue
            table = client.make_qualified_table_name(name)
            pk = ", ".join(client.escape_column_name(k) for k in keys)
            dupes = client.execute_sql(f"SELECT count(*) - count(DISTINCT ({pk})) FROM {table}")[0][0]
            if not dupes:
                continue
            client.execute_sql(
                f"DELETE FROM {table} WHERE {row_id} IN (SELECT {row_id} FROM (SELECT {row_id}, row_number() OVER "
                f"(PARTITION BY {pk} ORDER BY _dlt_load_id DESC) AS n FROM {table}) AS ranked WHERE n > 1)")
            log.warning("removed %s duplicate rows from %s left by a stopped run's load", dupes, name)
            repaired.append(name)
    return repaired
