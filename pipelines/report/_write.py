"""Write the report files and load the same figures into the destination as ``report_*`` tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import orjson
import pyarrow as pa

from core.errors import FactorylineError
from pipelines.destination import Target, make_pipeline
from pipelines.report._collect import build_report
from pipelines.report._mask import scrub_text
from pipelines.report._render import _example_text, render_html, render_markdown

__all__ = ["REPORT_TABLES", "SCHEMAS", "load_report_tables", "write_mapping_report"]

#: the BI tables, and the report section each one holds
REPORT_TABLES = ("report_field_coverage", "report_canonical_gaps", "report_unmapped_fields", "report_rejects",
                 "report_drift")


def _scrubbed(v: Any) -> Any:
    """Every string of the report through the email scrubber: the last line of defence."""
    if isinstance(v, str):
        return scrub_text(v)
    if isinstance(v, list):
        return [_scrubbed(x) for x in v]
    if isinstance(v, dict):
        return {k: _scrubbed(x) for k, x in v.items()}
    return v


def write_mapping_report(target: Target, out_dir: Path, *, load_tables: bool = True) -> list[Path]:
    """Write report.html, report.json and report.md into ``out_dir``; return their paths.

    With ``load_tables`` (the default) the figures also go into the destination as the
    ``report_*`` tables (replaced on every report) for BI tools.
    """
    report = _scrubbed(build_report(target))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "report.html", out_dir / "report.json", out_dir / "report.md"]
    paths[0].write_text(render_html(report), encoding="utf-8")
    paths[1].write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    paths[2].write_text(render_markdown(report), encoding="utf-8")
    if load_tables:
        load_report_tables(target, report)
    return paths


def _text(v: Any) -> Any:
    return "; ".join(_example_text(x) for x in v) if isinstance(v, list) else v


def _rows(items: list[dict[str, Any]], generated_at: str, **extra: Any) -> list[dict[str, Any]]:
    return [{**{k: _text(v) for k, v in r.items()}, **extra, "report_generated_at": generated_at} for r in items]


def _schema(text: tuple[str, ...], **typed: pa.DataType) -> pa.Schema:
    fields = [pa.field(c, pa.string()) for c in text] + [pa.field(c, t) for c, t in typed.items()]
    return pa.schema([*fields, pa.field("report_generated_at", pa.string())])


_F, _I, _B = pa.float64(), pa.int64(), pa.bool_()
#: Arrow schemas: an empty section still creates (or empties) its table
SCHEMAS: dict[str, pa.Schema] = {
    "report_field_coverage": _schema(
        ("connector", "stream", "entity", "mapping_file", "mapping_version", "older_versions_in_rows",
         "canonical_field", "kind", "source_field", "transform", "samples"),
        required=_B, rows=_I, filled=_I, fill_rate=_F, field_rejects=_I, conformance=_F),
    "report_canonical_gaps": _schema(
        ("gap", "connector", "stream", "entity", "canonical_field", "status", "problem", "mapped_by",
         "description"), required=_B, fill_rate=_F, records_rejected=_I),
    "report_unmapped_fields": _schema(
        ("connector", "stream", "run_id", "vendor_field", "types", "samples"),
        filled=_I, records=_I, fill_rate=_F),
    "report_rejects": _schema(
        ("entity", "source_system", "source_object", "raw_table", "severity", "field", "reason", "last_seen_run",
         "examples"), count=_I, in_latest_run=_B),
    "report_drift": _schema(
        ("connector", "stream", "previous_run", "latest_run", "vendor_field", "change", "certainty",
         "types_before", "types_after"), fill_before=_F, fill_after=_F),
}


def load_report_tables(target: Target, report: dict[str, Any]) -> Any:
    """Load the report's figures into ``target`` as the ``report_*`` tables.

    ``replace``: each table is the latest report, exactly. A merge would keep lines that are no
    longer true (a field mapped since, a reject fixed at the vendor), and a BI dashboard reading
    them would show yesterday's gaps as today's. History lives in the tables the report is built
    from (``field_profiles``, ``rejects``, ``runs``), which keep every run.
    """
    at = report["generated_at"]
    data = {
        "report_field_coverage": _rows(report["coverage"], at),
        "report_canonical_gaps": _rows(report["unfilled_fields"], at, gap="unfilled canonical field")
        + _rows(report["required_gaps"], at, gap="required field empty"),
        "report_unmapped_fields": _rows(report["unmapped"], at),
        "report_rejects": _rows(report["rejects"], at),
        "report_drift": _rows(report["drift"], at),
    }

    @dlt.source(name="factoryline_report", max_table_nesting=0)
    def source() -> Any:
        for name in REPORT_TABLES:
            schema = SCHEMAS[name]
            rows = [{f.name: r.get(f.name) for f in schema} for r in data[name]]
            yield dlt.resource([pa.Table.from_pylist(rows, schema=schema)], name=name, write_disposition="replace")

    pipeline = make_pipeline(target)
    try:
        return pipeline.run(source())
    except Exception as exc:
        # A failed package would otherwise stay pending in the shared pipeline folder and be
        # retried ahead of the next connector run: drop it, the next report rebuilds everything.
        pipeline.drop_pending_packages()
        raise FactorylineError(f"the report files were written, but loading the report_* tables into "
                               f"{target.describe()} failed: {exc}") from exc
