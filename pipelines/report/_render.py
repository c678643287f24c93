"""Render the report data as one self-contained HTML page and as Markdown.

The HTML has no external resource at all (no CDN, no font, no image): inline CSS, a little inline
vanilla JS for sorting (click a header) and filtering (the text box above each table), and an
``@media print`` block so it prints cleanly. Without JS the page still shows every figure.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SECTIONS", "render_html", "render_markdown"]


@dataclass(frozen=True)
class Col:
    key: str
    label: str
    kind: str = "text"  # text | num | pct | conf | samples | examples | code | bool | stream
    #: for ``stream``: the second key, shown as ``<key>/<key2>``
    key2: str = ""


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    nav: str
    data_key: str
    intro: str
    columns: tuple[Col, ...]
    empty: str


_STREAM = Col("connector", "Stream", "stream", "stream")
#: sections where no row is good news (shown in green)
_GOOD_WHEN_EMPTY = frozenset({"unfilled", "required", "unmapped", "rejects", "drift"})

SECTIONS: tuple[Section, ...] = (
    Section("streams", "Streams and their last run", "Streams", "streams",
            "Each vendor object factoryline reads, the canonical entity it fills, the mapping file "
            "(with its version) and how the latest run of that stream ended.",
            (Col("connector", "Vendor"), Col("stream", "Object"), Col("entities", "Fills"),
             Col("mapping_files", "Mapping file @ version", "code"), Col("runs", "Runs", "num"),
             Col("last_run", "Latest run", "code"), Col("last_status", "Status"),
             Col("last_records", "Records read", "num"), Col("last_rejects", "Rejects", "num"),
             Col("mapping_errors", "Mapping problems")),
            "No stream has run into this destination yet: run `factoryline run` first."),
    Section("coverage", "Field coverage: how vendor fields land in the shared vocabulary", "Coverage", "coverage",
            "One line per canonical field a stream fills. Fill rate: share of loaded rows that have a "
            "value. Conformance: share of the vendor's values that converted cleanly (the rest were "
            "rejected, see Rejects). Samples are masked where they are personal data.",
            (_STREAM, Col("entity", "Entity"),
             Col("canonical_field", "Canonical field", "field"), Col("source_field", "Vendor field", "code"),
             Col("transform", "Conversion"), Col("fill_rate", "Fill rate", "pct"),
             Col("filled", "Filled / rows", "ratio", "rows"),
             Col("conformance", "Conformance", "conf"), Col("field_rejects", "Rejected", "num"),
             Col("samples", "Samples (masked)", "samples")),
            "No mapped field has been loaded yet."),
    Section("unfilled", "Canonical fields no vendor fills", "Unfilled fields", "unfilled_fields",
            "Fields of the shared vocabulary that no stream maps, or that are mapped but empty in every "
            "loaded row. Reports that rely on them will show blanks.",
            (Col("entity", "Entity"), Col("canonical_field", "Canonical field", "field"),
             Col("status", "Status"), Col("mapped_by", "Mapped by"), Col("description", "Meaning")),
            "Every canonical field of the entities in use is filled by at least one vendor."),
    Section("required", "Required fields a stream leaves empty", "Required gaps", "required_gaps",
            "Required fields must be filled, or the record is not loaded at all. A line here means rows "
            "are missing from the canonical tables.",
            (_STREAM, Col("entity", "Entity"),
             Col("canonical_field", "Required field"), Col("problem", "Problem"),
             Col("fill_rate", "Fill rate", "pct"), Col("records_rejected", "Records not loaded", "num")),
            "Every required field is filled in every loaded row, and no record was dropped for lack of one."),
    Section("unmapped", "Vendor fields not mapped yet: candidates", "Unmapped fields", "unmapped",
            "Fields the vendor sent in the latest run that no mapping uses, the most often filled first. "
            "They are kept (in the extras column), not lost; a well-filled one may be worth mapping.",
            (_STREAM, Col("vendor_field", "Vendor field", "code"),
             Col("fill_rate", "Fill rate", "pct"), Col("filled", "Filled", "num"), Col("records", "Records", "num"),
             Col("types", "Types"), Col("samples", "Samples (masked)", "samples")),
            "Every vendor field seen in the latest run is mapped or deliberately ignored."),
    Section("rejects", "Rejects by reason", "Rejects", "rejects",
            "Values or records that could not be converted. 'field': the row was loaded with that field "
            "blank. 'record': the record was not loaded. Each example says how to look it up.",
            (Col("source_system", "Stream", "stream", "source_object"), Col("entity", "Entity"),
             Col("severity", "Kind"), Col("field", "Field"), Col("reason", "Reason"), Col("count", "Count", "num"),
             Col("in_latest_run", "In latest run", "bool"),
             Col("examples", "Examples (masked) and how to trace them", "examples")),
            "No rejects: every value converted cleanly."),
    Section("drift", "Drift since the previous run", "Drift", "drift",
            "What changed in the vendor's data between the two most recent runs of each stream: fields that "
            "appeared, disappeared, or now arrive with another type. Changes often mean a vendor-side "
            "configuration change that a mapping should follow.",
            (_STREAM, Col("vendor_field", "Vendor field", "code"),
             Col("change", "Change"), Col("certainty", "Certainty"), Col("types_before", "Type before"),
             Col("types_after", "Type after"),
             Col("fill_before", "Fill before", "pct"), Col("fill_after", "Fill after", "pct"),
             Col("previous_run", "Previous run", "code"), Col("latest_run", "Latest run", "code")),
            "No drift: the vendors sent the same fields with the same types in the last two runs."),
    Section("drift_compared", "Runs compared for drift", "Runs compared", "drift_compared",
            "Which two runs were compared for each stream.",
            (_STREAM, Col("previous_run", "Previous run", "code"),
             Col("latest_run", "Latest run", "code"), Col("changes", "Changes", "num"), Col("note", "Note")),
            "Nothing to compare yet."),
    Section("definitions", "Definitions in force", "Definitions", "definitions.terms",
            "The agreed meaning of terms such as lead or conversion ratio, with the version in force.",
            (Col("term", "Term"), Col("version", "Version", "code"), Col("owner", "Owner"),
             Col("definition", "Definition")),
            "No definitions yet."),
    Section("tables", "Tables: when each was last loaded", "Tables", "tables",
            "Every table in the destination, its size, and the load and run that last wrote to it.",
            (Col("table", "Table", "code"), Col("rows", "Rows", "num"), Col("loaded_at", "Last loaded (UTC)"),
             Col("run_id", "By run", "code"), Col("last_load_id", "Load id", "code"), Col("schema", "Source")),
            "No tables yet."),
)


def _get(data: dict[str, Any], dotted: str) -> Any:
    cur: Any = data
    for p in dotted.split("."):
        cur = cur.get(p) if isinstance(cur, dict) else None
    return cur


def _example_text(e: Any) -> str:
    if isinstance(e, dict):
        value = e.get("value")
        head = f"{value!s}" if value is not None else "(no value)"
        return f"{head} — {e.get('trace')}"
    return str(e)


def _pct(v: Any) -> str:
    return "" if v is None else f"{float(v) * 100:.1f}%"


def _plain_cell(row: dict[str, Any], col: Col) -> str:
    v = row.get(col.key)
    if col.kind == "stream":
        return f"{v}/{row.get(col.key2)}"
    if col.kind == "field":
        return f"{v} (required)" if row.get("required") else str(v)
    if col.kind == "ratio":
        return f"{v} / {row.get(col.key2)}"
    if v is None:
        return ""
    if col.kind in ("pct", "conf"):
        return _pct(v)
    if col.kind == "bool":
        return "yes" if v else "no"
    if col.kind in ("samples", "examples"):
        return "; ".join(_example_text(x) for x in v) if isinstance(v, list) else str(v)
    return str(v)


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

_CSS = """
:root{--ink:#1d2733;--muted:#5b6877;--line:#d9dee4;--bg:#f6f7f9;--card:#fff;--accent:#2456a6;
--good:#1f8a4c;--warn:#b7791f;--bad:#c0392b;--goodbg:#e3f4ea;--warnbg:#fcf1dc;--badbg:#fbe4e1}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);
background:var(--bg)}
header{background:#17324f;color:#fff;padding:18px 28px 14px}
header h1{margin:0 0 4px;font-size:22px;font-weight:600}
header .meta{color:#c9d6e6;font-size:13px}
nav{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);padding:6px 28px;
display:flex;flex-wrap:wrap;gap:4px 14px;font-size:13px}
nav a{color:var(--accent);text-decoration:none;white-space:nowrap}
nav a:hover{text-decoration:underline}
main{max-width:1440px;margin:0 auto;padding:16px 28px 40px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;margin:4px 0 18px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card .v{font-size:22px;font-weight:600}
.card .l{color:var(--muted);font-size:12px}
.card.bad .v{color:var(--bad)}.card.warn .v{color:var(--warn)}.card.good .v{color:var(--good)}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 16px;margin:0 0 18px}
section h2{margin:0 0 4px;font-size:17px}
section p.intro{margin:0 0 10px;color:var(--muted);max-width:980px}
.tools{display:flex;align-items:center;gap:12px;margin:0 0 8px}
.tools input{width:280px;max-width:60%;padding:5px 9px;border:1px solid var(--line);border-radius:6px;font:inherit}
.tools .count{color:var(--muted);font-size:12px}
.scroll{overflow-x:auto;max-height:70vh;overflow-y:auto;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 9px;border-bottom:1px solid #eceff2;text-align:left;vertical-align:top}
thead th{position:sticky;top:0;background:#eef1f5;font-weight:600;cursor:pointer;user-select:none;
white-space:nowrap;border-bottom:1px solid var(--line)}
thead th:hover{background:#e2e8f0}
thead th[aria-sort=ascending]::after{content:" \\25B2";font-size:10px}
thead th[aria-sort=descending]::after{content:" \\25BC";font-size:10px}
tbody tr:nth-child(even){background:#fafbfc}
tbody tr:hover{background:#f1f5fb}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;white-space:nowrap}
td.stream,td.field{white-space:nowrap;font-weight:500}
.bar{display:inline-block;width:64px;height:8px;border-radius:4px;background:#e6e9ed;margin-right:6px;
vertical-align:middle;overflow:hidden}
.bar i{display:block;height:100%}
.good i{background:var(--good)}.warn i{background:var(--warn)}.bad i{background:var(--bad)}
td.pct{white-space:nowrap;font-variant-numeric:tabular-nums}
.pill{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;white-space:nowrap}
.pill.good{background:var(--goodbg);color:var(--good)}.pill.warn{background:var(--warnbg);color:var(--warn)}
.pill.bad{background:var(--badbg);color:var(--bad)}.pill.muted{background:#eef1f5;color:var(--muted)}
td.samples ul,td.examples ul{margin:0;padding:0;list-style:none}
td.samples{min-width:200px}
td.samples li{display:inline-block;max-width:180px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;
vertical-align:top;margin:1px 4px 1px 0;padding:0 6px;border-radius:4px;background:#eef1f5;
font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;color:#34404d}
td.examples{min-width:360px}
td.examples li{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;color:#34404d;
overflow-wrap:anywhere;padding:1px 0}
td.examples li+li{border-top:1px dotted var(--line)}
p.empty{color:var(--good);margin:6px 0}
.note{color:var(--muted);font-size:13px}
footer{color:var(--muted);font-size:12px;text-align:center;padding:0 0 24px}
@media (max-width:900px){main,header,nav{padding-left:12px;padding-right:12px}}
@media print{
 @page{size:A4 landscape;margin:12mm}
 body{background:#fff;font-size:10pt}
 header{background:#fff;color:#000;padding:0 0 6px;border-bottom:2px solid #000}
 header .meta{color:#333}
 nav,.tools{display:none}
 main{max-width:none;padding:0}
 .cards{grid-template-columns:repeat(7,1fr)}
 section,.card{border:none;padding:0;box-shadow:none}
 section{margin:10px 0 14px;break-inside:auto}
 h2{break-after:avoid}
 .scroll{overflow:visible;max-height:none;border:none}
 thead{display:table-header-group}
 thead th{position:static;background:#eee !important;-webkit-print-color-adjust:exact;print-color-adjust:exact}
 tr{break-inside:avoid}
 table{font-size:8.5pt}
 .bar,.pill,td.samples li{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 td.samples li{max-width:none;white-space:normal}
 td.code{white-space:normal;overflow-wrap:anywhere}
 tbody tr:hover{background:none}
}
"""

_JS = """
(function(){
  function val(td){var v=td.getAttribute('data-v');return v===null?td.textContent.trim():v;}
  function sortBy(table,idx,th){
    var tb=table.tBodies[0];if(!tb)return;
    var asc=th.getAttribute('aria-sort')!=='ascending';
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(c){c.removeAttribute('aria-sort');});
    th.setAttribute('aria-sort',asc?'ascending':'descending');
    var rows=Array.prototype.slice.call(tb.rows);
    rows.sort(function(a,b){
      var x=val(a.cells[idx]),y=val(b.cells[idx]);var nx=parseFloat(x),ny=parseFloat(y);
      var r=(x!==''&&y!==''&&!isNaN(nx)&&!isNaN(ny)&&isFinite(x)&&isFinite(y))?nx-ny:
        (x===''?1:(y===''?-1:x.localeCompare(y,undefined,{numeric:true,sensitivity:'base'})));
      return asc?r:-r;});
    rows.forEach(function(r){tb.appendChild(r);});
  }
  function filter(table,box,count){
    var q=box.value.toLowerCase().trim(),n=0,rows=table.tBodies[0]?table.tBodies[0].rows:[];
    Array.prototype.forEach.call(rows,function(r){
      var hit=!q||r.textContent.toLowerCase().indexOf(q)>=0;r.style.display=hit?'':'none';if(hit)n++;});
    count.textContent='Showing '+n+' of '+rows.length+' rows';
  }
  var q=new URLSearchParams(location.search).get('q')||'';
  document.querySelectorAll('table.data').forEach(function(table){
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
      th.title='Click to sort';th.addEventListener('click',function(){sortBy(table,i,th);});});
    var tools=document.getElementById('tools-'+table.id);if(!tools)return;
    var box=tools.querySelector('input'),count=tools.querySelector('.count');
    box.addEventListener('input',function(){filter(table,box,count);});
    if(q)box.value=q;
    filter(table,box,count);
  });
  document.body.setAttribute('data-js','ready');
})();
"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _grade(v: float, kind: str) -> str:
    if kind == "conf":
        return "good" if v >= 0.99 else "warn" if v >= 0.95 else "bad"
    return "good" if v >= 0.9 else "warn" if v >= 0.5 else "bad"


def _td(row: dict[str, Any], col: Col) -> str:
    v = row.get(col.key)
    if col.kind == "conf":
        if v is None:
            return '<td class="pct" data-v="">\u2013</td>'
        g = _grade(float(v), col.kind)
        return f'<td class="num" data-v="{float(v):.6f}"><span class="pill {g}">{_e(_pct(v))}</span></td>'
    if col.kind == "field":
        req = ' <span class="pill warn">required</span>' if row.get("required") else ""
        return f'<td class="field" data-v="{_e(v)}">{_e(v)}{req}</td>'
    if col.kind == "ratio":
        return f'<td class="num" data-v="{_e(v)}">{_e(f"{v:,}" if isinstance(v, int) else v)} / ' \
               f'{_e(f"{row.get(col.key2):,}" if isinstance(row.get(col.key2), int) else row.get(col.key2))}</td>'
    if col.kind == "pct":
        if v is None:
            return '<td class="pct" data-v="">\u2013</td>'
        g = _grade(float(v), col.kind)
        return (f'<td class="pct {g}" data-v="{float(v):.6f}"><span class="bar {g}"><i style="width:'
                f'{max(0.0, min(1.0, float(v))) * 100:.1f}%"></i></span>{_e(_pct(v))}</td>')
    if col.kind == "num":
        return f'<td class="num" data-v="{_e(v)}">{_e(f"{v:,}" if isinstance(v, int) else v)}</td>'
    if col.kind == "stream":
        text = f"{v}/{row.get(col.key2)}"
        return f'<td class="stream">{_e(text)}</td>'
    if col.kind == "bool":
        if not v:
            return '<td data-v="0"></td>' if col.key == "required" else '<td data-v="0">no</td>'
        label = "required" if col.key == "required" else "yes"
        return f'<td data-v="1"><span class="pill {"bad" if col.key == "in_latest_run" else "warn"}">{label}</span></td>'
    if col.kind in ("samples", "examples"):
        items = [_example_text(x) for x in (v if isinstance(v, list) else [])]
        lis = "".join(f'<li title="{_e(t)}">{_e(t)}</li>' for t in items)
        return f'<td class="{col.kind}"><ul>{lis}</ul></td>' if lis else "<td></td>"
    if col.kind == "code":
        return f'<td class="code">{_e(v)}</td>'
    if col.key in ("change", "status", "problem", "severity", "last_status") and v is not None:
        tone = {"removed": "bad", "type changed": "warn", "added": "good", "success": "good", "failed": "bad",
                "partial": "warn", "record": "bad", "field": "warn",
                "mapped, but empty in every loaded row": "warn"}.get(str(v), "muted")
        return f'<td data-v="{_e(v)}"><span class="pill {tone}">{_e(v)}</span></td>'
    return f"<td>{_e(v)}</td>"


def _table(section: Section, rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        tone = "empty" if section.id in _GOOD_WHEN_EMPTY else "note"
        return f'<p class="{tone}">{_e(section.empty)}</p>'
    tid = f"t-{section.id}"
    head = "".join(f'<th scope="col">{_e(c.label)}</th>' for c in section.columns)
    body = "\n".join("<tr>" + "".join(_td(r, c) for c in section.columns) + "</tr>" for r in rows)
    return (f'<div class="tools" id="tools-{tid}"><input type="search" placeholder="Filter rows…" '
            f'aria-label="Filter {_e(section.title)}"><span class="count">{len(rows)} rows</span></div>'
            f'<div class="scroll"><table class="data" id="{tid}"><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table></div>")


def _cards(s: dict[str, Any]) -> str:
    fill = s.get("average_fill_rate")
    items = [
        (str(s.get("streams", 0)), "streams loaded", ""),
        (str(s.get("mapped_fields", 0)), "mapped fields", ""),
        (_pct(fill) or "\u2013", "average fill rate", _grade(fill, "pct") if fill is not None else ""),
        (f"{s.get('rejects', 0):,}", f"rejects ({s.get('reject_reasons', 0)} reasons)",
         "bad" if s.get("rejects") else "good"),
        (str(s.get("drift_changes", 0)), "drift changes", "warn" if s.get("drift_changes") else "good"),
        (str(s.get("unmapped_candidates", 0)), "unmapped vendor fields", ""),
        (str(s.get("required_field_problems", 0)), "required-field problems",
         "bad" if s.get("required_field_problems") else "good"),
    ]
    return '<div class="cards">' + "".join(
        f'<div class="card {cls}"><div class="v">{_e(v)}</div><div class="l">{_e(label)}</div></div>'
        for v, label, cls in items) + "</div>"


def render_html(report: dict[str, Any]) -> str:
    s = report.get("summary", {})
    latest = s.get("latest_run") or {}
    run_line = (f"latest run {latest.get('run_id')} ({latest.get('status')}, finished {latest.get('finished_at')})"
                if latest else "no run recorded yet")
    nav = "".join(f'<a href="#{sec.id}">{_e(sec.nav)}</a>' for sec in SECTIONS)
    parts = []
    for sec in SECTIONS:
        rows = _get(report, sec.data_key) or []
        extra = ""
        if sec.id == "definitions":
            d = report.get("definitions") or {}
            extra = f'<p class="note">{_e("Source: " + d["source"]) if d.get("source") else ""}' \
                    f'{_e(" " + d["note"]) if d.get("note") and d.get("source") else ""}</p>'
        if sec.id == "streams" and (report.get("streams_never_run") or report.get("streams_not_installed")):
            extra = ""
            if report.get("streams_never_run"):
                extra += (f'<p class="note">Installed but never run into this destination: '
                          f'{_e(", ".join(report["streams_never_run"]))}</p>')
            if report.get("streams_not_installed"):
                extra += (f'<p class="note">Loaded earlier, connector no longer installed: '
                          f'{_e(", ".join(report["streams_not_installed"]))}</p>')
        parts.append(f'<section id="{sec.id}"><h2>{_e(sec.title)}</h2><p class="intro">{_e(sec.intro)}</p>'
                     f"{extra}{_table(sec, rows)}</section>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(report.get("title", "Field-mapping report"))}</title>
<style>{_CSS}</style></head>
<body data-js="off">
<header><h1>{_e(report.get("title", "Field-mapping report"))}</h1>
<div class="meta">Generated {_e(report.get("generated_at"))} UTC · {_e(report.get("target"))} · {_e(run_line)}</div>
</header>
<nav aria-label="Sections">{nav}</nav>
<main>
{_cards(s)}
{"".join(parts)}
</main>
<footer>factoryline field-mapping report · same figures in report.json, report.md and the report_* tables ·
sort: click a column header · filter: type in the box above a table</footer>
<script>{_JS}</script>
</body></html>
"""


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def _md(v: str) -> str:
    return v.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(report: dict[str, Any]) -> str:
    s = report.get("summary", {})
    latest = s.get("latest_run") or {}
    lines = [f"# {report.get('title', 'Field-mapping report')}", "",
             f"Generated {report.get('generated_at')} UTC from {report.get('target')}.",
             f"Latest run: {latest.get('run_id')} ({latest.get('status')})." if latest else "No run recorded yet.",
             "",
             f"- streams loaded: {s.get('streams', 0)}", f"- mapped fields: {s.get('mapped_fields', 0)}",
             "- average fill rate: " + (_pct(s.get("average_fill_rate")) or "\u2013"),
             f"- rejects: {s.get('rejects', 0)} ({s.get('reject_reasons', 0)} reasons)",
             f"- drift changes: {s.get('drift_changes', 0)}",
             f"- unmapped vendor fields: {s.get('unmapped_candidates', 0)}",
             f"- required-field problems: {s.get('required_field_problems', 0)}", ""]
    for sec in SECTIONS:
        rows = _get(report, sec.data_key) or []
        lines += [f"## {sec.title}", "", sec.intro, ""]
        if sec.id == "definitions" and (report.get("definitions") or {}).get("source"):
            lines += [f"Source: {report['definitions']['source']}", ""]
        if sec.id == "streams" and report.get("streams_never_run"):
            lines += [f"Installed but never run into this destination: {', '.join(report['streams_never_run'])}", ""]
        if not rows:
            lines += [sec.empty, ""]
            continue
        lines.append("| " + " | ".join(_md(c.label) for c in sec.columns) + " |")
        lines.append("|" + "|".join("---:" if c.kind in ("num", "pct", "conf") else "---" for c in sec.columns) + "|")
        for r in rows:
            lines.append("| " + " | ".join(_md(_plain_cell(r, c)) for c in sec.columns) + " |")
        lines.append("")
    return "\n".join(lines)
