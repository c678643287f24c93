"""Finishing a killed run's load package without duplicate rows.

dlt marks a load job done only after the destination committed it. A run killed between the two
(the COPY of a file into a merge table's staging table committed, the job not yet marked) makes
the next run copy the same file again; the staging table then holds each of those keys twice, and
an upsert MERGE inserts both copies into the final table (dlt-hub/dlt#3023 reports the same).
So before a run extracts anything it finishes any package a killed run left: first it takes back
the rows of every copy job the kill left started (they may have committed), then loads the package,
then keeps one row per primary key in every table kept that way. A marker file in dlt's working
folder stays until that clean-up has committed, so a run killed during the clean-up repeats it.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from pipelines.destination import dataset_tables
from pipelines.load import UPSERT_HINT

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
        withdraw_started_copies(pipeline)
        pipeline.load()
    repaired = deduplicate(pipeline)
    marker.unlink()
    return repaired


def _keyed(table: Any) -> list[str]:
    """The primary key of a table kept at one row per key (merged, or appended while empty)."""
    # a first load into an empty table appends (pipelines/load.py): its keys are still unique
    if table.get("write_disposition") != "merge" and not table.get(UPSERT_HINT):
        return []
    return [c for c, col in (table.get("columns") or {}).items() if col.get("primary_key")]


def _merge_tables(pipeline: Any) -> list[tuple[str, list[str]]]:
    return [(str(t["name"]), keys) for schema in pipeline.schemas.values()
            for t in schema.data_tables() if (keys := _keyed(t))]


def withdraw_started_copies(pipeline: Any) -> int:
    """Take back what a killed run's unfinished copy jobs may already have committed.

    dlt runs a started job again; if its copy had committed, the rows would arrive twice: in a
    merge table's staging table (the MERGE then fails: "cannot affect the same target row more
    than once") or in an empty table that was being appended to. Keys are unique within a package
    and that table holds only this package's rows, so removing the job file's keys removes exactly
    its earlier copy. Returns the rows removed.
    """
    removed = 0
    for load_id in pipeline.list_normalized_load_packages():
        info = pipeline.get_load_package_info(load_id)
        for job in info.jobs.get("started_jobs", []):
            table = info.schema.tables.get(job.job_file_info.table_name)
            keys = _keyed(table) if table and job.job_file_info.file_format == "parquet" else []
            if len(keys) == 1:
                removed += _withdraw(pipeline, table, keys[0], job.file_path)
    return removed


def _withdraw(pipeline: Any, table: Any, key: str, file_path: str) -> int:
    import pyarrow.parquet as pq

    values = pq.read_table(file_path, columns=[key]).column(key).to_pylist()
    with pipeline.sql_client() as client:
        staging = table.get("write_disposition") == "merge"
        with client.with_staging_dataset() if staging else nullcontext(client) as c:
            if not values or table["name"] not in dataset_tables(c):
                return 0
            name, col = c.make_qualified_table_name(table["name"]), c.escape_column_name(key)
            before = c.execute_sql(f"SELECT count(*) FROM {name}")[0][0]
            for i in range(0, len(values), 50_000):
                c.execute_sql(f"DELETE FROM {name} WHERE {col} IN (SELECT unnest(%s))", values[i: i + 50_000])
            gone = int(before - c.execute_sql(f"SELECT count(*) FROM {name}")[0][0])
    if gone:
        log.warning("took back %s rows of %s that a stopped run's copy had committed", gone, table["name"])
    return gone


def deduplicate(pipeline: Any) -> list[str]:
    """Keep one row per primary key (the newest load's) in every merge table of the pipeline."""
    row_id = _ROW_ID.get(pipeline.destination.destination_name)
    if row_id is None:
        log.warning("cannot check %s for duplicate keys after a stopped run", pipeline.destination.destination_name)
        return []
    repaired = []
    with pipeline.sql_client() as client:
        existing = set(dataset_tables(client))
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
