"""The field-mapping report for marketing operations: report.html, report.json, report.md.

``write_mapping_report(target, out_dir)`` reads the mapping files of every installed connector and
what the last runs loaded into ``target``, and writes the same figures three ways: a self-contained
HTML page (works offline), JSON for tools, Markdown for tickets. It also loads them as
``report_*`` tables into the destination for BI tools. See docs/report.md.
"""

from __future__ import annotations

from pipelines.report._collect import build_report
from pipelines.report._mask import mask_email, mask_value, scrub_text
from pipelines.report._write import write_mapping_report

__all__ = ["build_report", "mask_email", "mask_value", "scrub_text", "write_mapping_report"]
