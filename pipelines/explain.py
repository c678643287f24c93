"""``factoryline explain opportunity|order KEY``: a conversion, who it was stitched to, and the touches
that earned its credit under each model, each traced to its raw vendor record and load."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from pipelines.destination import Target, make_pipeline
from pipelines.trace import Trace, TraceError, trace_rows

__all__ = ["CONVERSIONS", "Explanation", "explain", "render_explanation"]

CONVERSIONS = ("opportunity", "order")


@dataclass
class Explanation:
    kind: str
    row: dict[str, Any]
    #: canonical account row of an opportunity
    account: dict[str, Any] | None
    #: person records stitched into the converting people: unified id -> member person rows
    people: dict[str, list[dict[str, Any]]]
    #: model -> credit rows (attribution_credit) in touch order
    credits: dict[str, list[dict[str, Any]]]
    #: touch id -> its trace (touch row, raw vendor record, load, run, mapping)
    touches: dict[str, Trace] = field(default_factory=dict)


def _rows(client: Any, sql: str, *args: Any) -> list[dict[str, Any]]:
    with client.execute_query(sql, *args) as cur:
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _in(values: Sequence[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values) or "NULL"


def explain(target: Target, kind: str, key: str) -> Explanation:
    """Everything attribution knows about one won opportunity or order (canonical id or vendor id)."""
    if kind not in CONVERSIONS:
        raise TraceError(f"explain works on {' or '.join(CONVERSIONS)}, not {kind!r}")
    pipeline = make_pipeline(target)
    with pipeline.sql_client() as client:
        q = client.make_qualified_table_name
        extra = " OR order_number = %s" if kind == "order" else ""
        args = (key, key, key) if kind == "order" else (key, key)
        try:
            found = _rows(client, f"SELECT * FROM {q(kind)} WHERE id = %s OR source_record_id = %s{extra} "
                                  "ORDER BY id", *args)
        except Exception as exc:
            raise TraceError(f"no {kind} table in {target.describe()}: run `factoryline run` first "
                             f"({type(exc).__name__})") from None
        if not found:
            raise TraceError(f"no {kind} with id or vendor id {key!r} in {target.describe()}")
        if len(found) > 1:
            raise TraceError(f"{key!r} names {len(found)} {kind} rows (several vendor instances): pass one "
                             f"canonical id: {', '.join(r['id'] for r in found)}")
        row = found[0]
        try:
            credits = _rows(client, f"SELECT * FROM {q('attribution_credit')} WHERE conversion_id = %s "
                                    "ORDER BY model, position", row["id"])
        except Exception:
            credits = []
        account = None
        if row.get("account_id"):
            acc = _rows(client, f"SELECT * FROM {q('account')} WHERE id = %s", row["account_id"])
            account = acc[0] if acc else None
        direct = [row["person_id"]] if row.get("person_id") else []
        unified = {c["unified_person_id"] for c in credits if c.get("unified_person_id")}
        people: dict[str, list[dict[str, Any]]] = {}
        try:
            if direct:
                unified |= {r["unified_person_id"] for r in _rows(
                    client, f"SELECT unified_person_id FROM {q('identity_link')} WHERE rule = 'self' "
                            f"AND person_id IN ({_in(direct)})")}
            if unified:
                for r in _rows(client, f"SELECT l.unified_person_id, p.id, p.email, p.social_handle, p.source_system, "
                                       f"p.source_object, p.source_record_id FROM {q('identity_link')} l "
                                       f"JOIN {q('person')} p ON p.id = l.person_id WHERE l.rule = 'self' AND "
                                       f"l.unified_person_id IN ({_in(sorted(unified))}) ORDER BY 1, 2"):
                    people.setdefault(r.pop("unified_person_id"), []).append(r)
        except Exception:
            pass  # no identity derived yet: the explanation still lists the credits
    by_model: dict[str, list[dict[str, Any]]] = {}
    for c in credits:
        by_model.setdefault(c["model"], []).append(c)
    touches = {}
    for tid in dict.fromkeys(c["touch_id"] for c in credits):
        touches[tid] = trace_rows(target, "touch", tid)[0]
    return Explanation(kind, row, account, people, by_model, touches)


def render_explanation(e: Explanation, console: Console) -> None:
    r = e.row
    amount = r.get("amount") if e.kind == "opportunity" else r.get("total_amount")
    when = r.get("close_date") if e.kind == "opportunity" else r.get("ordered_at")
    console.print(f"[bold]{e.kind} {r['id']}[/] ({r['source_system']} {r['source_object']} {r['source_record_id']}): "
                  f"{r.get('name') or r.get('order_number') or ''} {amount or ''} {r.get('currency') or ''}, "
                  f"converted {when}")
    if e.account:
        console.print(f"account {e.account['id']}: {e.account.get('name')} ({e.account['source_system']} "
                      f"{e.account['source_record_id']})")
    people = Table(title="stitched people (identity)", title_justify="left")
    for col in ("unified person", "person", "system", "object", "vendor id", "email", "handle"):
        people.add_column(col)
    for uid, members in e.people.items():
        for m in members:
            people.add_row(uid, m["id"], m["source_system"], m["source_object"], m["source_record_id"],
                           m.get("email") or "", m.get("social_handle") or "")
    console.print(people)
    if not e.credits:
        console.print("[yellow]no attribution credit: no touches of the stitched people inside the lookback "
                      "window (or `factoryline derive` has not run)[/]")
        return
    first = next(iter(e.credits.values()))[0]
    console.print(f"lookback {first['lookback_days']} days, derived by run {first['run_id']}")
    for model, rows in sorted(e.credits.items()):
        t = Table(title=f"{model} {rows[0]['model_params']}", title_justify="left")
        for col in ("#", "touch", "type", "system", "occurred", "share"):
            t.add_column(col, justify="right" if col in ("#", "share") else "left")
        for c in rows:
            t.add_row(str(c["position"]), c["touch_id"], c.get("touch_type") or "", c["source_system"],
                      str(c.get("touch_occurred_at")), f"{c['credit']:.4f}")
        console.print(t)
    console.print("[bold]where each credited touch came from[/]")
    for tid, tr in e.touches.items():
        load = tr.load or {}
        console.print(f"touch {tid}: {tr.row.get('touch_type')} at {tr.row.get('occurred_at')} <- raw "
                      f"{tr.row['raw_table']} raw_key={tr.row['raw_key']} (vendor id {tr.row['source_record_id']}), "
                      f"load {tr.row.get('_dlt_load_id')} ({load.get('schema_name', '?')}), run {tr.row['run_id']}")
        if tr.raw is not None:
            console.print("  " + orjson.dumps(tr.raw.get("payload")).decode()[:400], markup=False, highlight=False)
        else:
            console.print("  [red]raw record not found[/]")
