"""``factoryline trace``: from a canonical row back to the vendor record, load, run and mapping."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from rich.console import Console
from rich.json import JSON
from rich.table import Table

from core.entities import ENTITIES
from pipelines.destination import Target, make_pipeline

__all__ = ["Trace", "TraceError", "render_trace", "trace_rows"]


class TraceError(Exception):
    """Nothing to trace: unknown entity, no such row, or no data loaded yet."""


@dataclass
class Trace:
    entity: str
    row: dict[str, Any]
    raw: dict[str, Any] | None
    load: dict[str, Any] | None
    run: dict[str, Any] | None
    mapping: dict[str, Any] | None


def _rows(client: Any, sql: str, *args: Any) -> list[dict[str, Any]]:
    with client.execute_query(sql, *args) as cur:
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def trace_rows(target: Target, entity: str, key: str) -> list[Trace]:
    if entity not in ENTITIES:
        raise TraceError(f"unknown entity {entity!r} (valid: {', '.join(sorted(ENTITIES))})")
    pipeline = make_pipeline(target)
    out: list[Trace] = []
    with pipeline.sql_client() as client:
        q = client.make_qualified_table_name
        try:
            rows = _rows(client, f"SELECT * FROM {q(entity)} WHERE id = %s OR source_record_id = %s", key, key)
        except Exception as exc:
            raise TraceError(f"no {entity} table in {target.describe()}: run `factoryline demo` or "
                             f"`factoryline run` first ({type(exc).__name__})") from None
        for row in rows:
            raw = _first(client, f"SELECT * FROM {q(row['raw_table'])} WHERE raw_key = %s", row["raw_key"])
            if raw and isinstance(raw.get("payload"), str):
                raw["payload"] = orjson.loads(raw["payload"])
            load = _first(client, f"SELECT * FROM {q('_dlt_loads')} WHERE load_id = %s", row.get("_dlt_load_id"))
            run = _first(client, f"SELECT * FROM {q('runs')} WHERE run_id = %s", row["run_id"])
            mapping = _first(client, f"SELECT * FROM {q('mapping_versions')} WHERE mapping_version = %s",
                             row["mapping_version"])
            out.append(Trace(entity, row, raw, load, run, mapping))
    if not out:
        raise TraceError(f"no {entity} row with id or source_record_id {key!r} in {target.describe()}")
    return out


def _first(client: Any, sql: str, *args: Any) -> dict[str, Any] | None:
    try:
        rows = _rows(client, sql, *args)
    except Exception:
        return None
    return rows[0] if rows else None


def _kv(title: str, data: dict[str, Any] | None, skip: Sequence[str] = ()) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for k, v in (data or {}).items():
        if k in skip or v is None:
            continue
        table.add_row(k, str(v))
    return table


def render_trace(found: list[Trace], console: Console) -> None:
    for t in found:
        console.print(_kv(f"{t.entity} {t.row['id']}", t.row))
        if t.raw:
            console.print(f"[bold]raw vendor record[/] ({t.row['raw_table']} raw_key={t.row['raw_key']}, "
                          f"extracted {t.raw.get('extracted_at')}):")
            console.print(JSON.from_data(t.raw.get("payload")))
        else:
            console.print(f"[red]raw record {t.row['raw_key']} not found in {t.row['raw_table']}[/]")
        console.print(_kv("load", t.load))
        console.print(_kv("run", t.run))
        console.print(_kv("mapping", t.mapping, skip=("content",)))
        if t.mapping and t.mapping.get("content"):
            console.print("[bold]mapping file as used:[/]")
            console.print(t.mapping["content"], markup=False, highlight=False)
