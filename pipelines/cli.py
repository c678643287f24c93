"""The ``factoryline`` command line.

``run`` is the scheduled job: it prints exactly one JSON status line on stdout (logs go to
stderr) and its exit code says whether every stream finished (0), some did not (3), none did (1)
or the command could not start (2).
"""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.errors import FactorylineError
from core.plugins import get_registry
from pipelines.config import missing_required
from pipelines.destination import DEFAULT_DATASET, RunLocked, Target
from pipelines.run import EXIT_CODES, RunStatus, run, table_counts

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="factoryline: marketing and sales data from vendor APIs to canonical tables, traceable.")
err = Console(stderr=True)
# piped into a log, rich would assume 80 columns and fold the tables
out = Console(width=None if sys.stdout.isatty() else 140)

DbOpt = Annotated[Path, typer.Option("--db", help="DuckDB file (embedded default destination).")]
DestOpt = Annotated[str, typer.Option("--destination", "-d", help="dlt destination: duckdb or postgres.")]
DatasetOpt = Annotated[str, typer.Option("--dataset", help="Dataset (schema) to load into.")]
CANONICAL = ("person", "account", "opportunity", "campaign", "campaign_membership", "touch", "order", "order_line",
             "identity_link", "lifecycle_event", "attribution_credit", "rejects")


def _target(destination: str, db: Path, dataset: str) -> Target:
    return Target(destination=destination, db_path=db, dataset=dataset)


def _progress_runner(status_fn: Any) -> Any:
    """Run with a live progress display on a terminal; plain otherwise (cron, Dagster logs)."""
    if not sys.stderr.isatty():
        return status_fn(None)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} records"),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        tasks: dict[tuple[str, str], Any] = {}

        def on_page(connector: str, stream: str, n: int) -> None:
            key = (connector, stream)
            if key not in tasks:
                tasks[key] = progress.add_task(f"{connector}.{stream}", total=None)
            progress.update(tasks[key], completed=n)
        return status_fn(on_page)


def _sandbox_state_dir(db: Path) -> Path:
    return db.resolve().parent / ".factoryline" / "sandbox"


def _start_sandbox(stack: ExitStack, db: Path, size: int, seed: int, advance: bool,
                   connectors: list[str] | None = None) -> Any:
    """The emulators of ``connectors`` (default: of every registered connector) over the persisted world."""
    from sandbox.api import start_sandbox
    from sandbox.world import CLOCK_FILE

    state_dir = _sandbox_state_dir(db)
    existed = (state_dir / CLOCK_FILE).exists()
    registry = get_registry()
    vendors = [n for n in (connectors or sorted(registry.connectors)) if n in registry.emulators]
    sb = stack.enter_context(start_sandbox(vendors, size=size, seed=seed, state_dir=state_dir))
    if existed and advance:
        sb.advance(1)  # the world moved on since the last run: some records changed
    return sb


def _sandbox_overrides(sb: Any) -> dict[str, dict[str, Any]]:
    # rows read from the sandbox say so in their provenance: source_instance = "sandbox"
    return {name: {"instance": "sandbox", **em.settings} for name, em in sb.emulators.items()}


def _print_status(status: RunStatus) -> None:
    sys.stdout.write(orjson.dumps(status.as_dict()).decode() + "\n")
    sys.stdout.flush()


@app.command("run")
def run_cmd(
    connectors: Annotated[list[str] | None, typer.Argument(help="Connectors to run (default: all).")] = None,
    destination: DestOpt = "duckdb",
    db: DbOpt = Path("factoryline.duckdb"),
    dataset: DatasetOpt = DEFAULT_DATASET,
    stream: Annotated[list[str] | None, typer.Option("--stream", help="Only these streams.")] = None,
    full_refresh: Annotated[bool, typer.Option(help="Ignore cursors and read everything again.")] = False,
    sandbox: Annotated[bool | None, typer.Option(
        "--sandbox/--no-sandbox",
        help="Read from the local sandbox. Default: only when no connector has credentials.")] = None,
    sandbox_size: Annotated[int, typer.Option(help="People in the sandbox world.")] = 2000,
) -> None:
    """The scheduled job: load every selected connector, print one JSON status line."""
    registry = get_registry()
    names = connectors or sorted(registry.connectors)
    try:
        specs = [registry.connector(n) for n in names]
    except FactorylineError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_CODES["error"]) from None
    if sandbox is None:
        sandbox = all(missing_required(s) for s in specs)
        if sandbox:
            err.print("[yellow]No credentials configured for any selected connector: reading from the local "
                      "sandbox.[/] Configure credentials (see README) or pass --no-sandbox.")
    with ExitStack() as stack:
        overrides = None
        if sandbox:
            sb = _start_sandbox(stack, db, sandbox_size, 7, advance=True, connectors=names)
            overrides = _sandbox_overrides(sb)
        try:
            status = _progress_runner(lambda progress: run(
                names, target=_target(destination, db, dataset), overrides=overrides, streams=stream,
                full_refresh=full_refresh, progress=progress))
        except RunLocked as exc:
            err.print(f"[red]error:[/] {exc}")
            raise typer.Exit(EXIT_CODES["error"]) from None
    _print_status(status)
    raise typer.Exit(status.exit_code)


@app.command()
def demo(
    db: DbOpt = Path("factoryline.duckdb"),
    size: Annotated[int, typer.Option(help="People in the sandbox world.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the sandbox world.")] = 7,
) -> None:
    """Start the sandbox, run every connector into DuckDB, show what was loaded and where."""
    target = _target("duckdb", db, DEFAULT_DATASET)
    with ExitStack() as stack:
        sb = _start_sandbox(stack, db, size, seed, advance=True)
        err.print(f"sandbox: {', '.join(f'{n} at {e.base_url}' for n, e in sb.emulators.items())}")
        names = [n for n in sorted(get_registry().connectors) if n in sb.emulators]
        overrides = _sandbox_overrides(sb)
        status = _progress_runner(lambda progress: run(names, target=target, overrides=overrides,
                                                       progress=progress))
    table = Table(title=f"run {status.run_id}: {status.status}")
    for col in ("connector", "stream", "status", "fetched", "rows", "rejects", "requests", "seconds"):
        table.add_column(col, justify="right" if col in ("fetched", "rejects", "requests", "seconds") else "left")
    for s in status.streams:
        table.add_row(s.connector, s.stream, s.status, f"{s.records:,}",
                      ", ".join(f"{k} {v:,}" for k, v in s.rows.items()), f"{s.rejects:,}", str(s.requests),
                      f"{s.seconds:.1f}")
    out.print(table)
    for e in status.errors:
        err.print(f"[red]{e}[/]")
    counts = table_counts(target, CANONICAL)
    out.print("Tables now in " + target.describe() + ": "
              + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    out.print("Trace any row back to its vendor record:  factoryline trace person <id or vendor record id>")
    out.print("Trace an order or a win back to the touches that earned it:  factoryline explain order <order number>")
    raise typer.Exit(status.exit_code)


@app.command()
def connectors() -> None:
    """List installed connectors: built-in and third-party, their streams and settings."""
    registry = get_registry()
    table = Table(title="factoryline connectors")
    for col in ("name", "plugin", "origin", "streams", "settings"):
        table.add_column(col)
    for name, spec in sorted(registry.connectors.items()):
        module = registry.plugins.get(spec.plugin, spec.plugin)
        origin = "built-in" if module.startswith("connectors.") else "third-party"
        missing = set(missing_required(spec))
        settings = ", ".join(f"{s.name}{' (missing)' if s.name in missing else ''}" for s in spec.settings)
        table.add_row(name, module, origin, ", ".join(s.name for s in spec.streams), settings)
    Console(width=200).print(table)
    for reason in registry.refused:
        err.print(f"[red]refused:[/] {reason}")


@app.command()
def trace(
    entity: Annotated[str, typer.Argument(help="Canonical entity, e.g. person, account, opportunity.")],
    key: Annotated[str, typer.Argument(help="Canonical id, or the vendor's record id.")],
    destination: DestOpt = "duckdb",
    db: DbOpt = Path("factoryline.duckdb"),
    dataset: DatasetOpt = DEFAULT_DATASET,
) -> None:
    """Show a canonical row, the raw vendor record it came from, its load, run and mapping."""
    from pipelines.trace import TraceError, render_trace, trace_rows

    try:
        found = trace_rows(_target(destination, db, dataset), entity, key)
    except TraceError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    render_trace(found, out)


@app.command()
def definitions(
    ratio: Annotated[tuple[str, str] | None, typer.Option(
        help="Conversion ratio between two stages, e.g. --ratio mql sql (needs a derived database).")] = None,
    since: Annotated[str | None, typer.Option(help="Period start (ISO date), for --ratio.")] = None,
    until: Annotated[str | None, typer.Option(help="Period end, exclusive (ISO date), for --ratio.")] = None,
    destination: DestOpt = "duckdb",
    db: DbOpt = Path("factoryline.duckdb"),
    dataset: DatasetOpt = DEFAULT_DATASET,
) -> None:
    """Print the glossary (mappings/definitions.yaml): each term's meaning, rule, owner and version."""
    from core.definitions import load_definitions

    try:
        defs = load_definitions()
    except FactorylineError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if ratio is not None:
        from pipelines.derive import conversion_ratio

        try:
            r = conversion_ratio(_target(destination, db, dataset), ratio[0], ratio[1], since=since, until=until,
                                 definitions=defs)
        except (FactorylineError, KeyError) as exc:
            err.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from None
        out.print(f"{ratio[0]} -> {ratio[1]} ({r['from_version']} -> {r['to_version']}), period "
                  f"{since or 'start'} .. {until or 'now'}: {r['converted']:,} of {r['entered']:,} = "
                  f"{r['ratio']:.1%}" if r["ratio"] is not None else f"no one entered {ratio[0]} in the period")
        return
    out.print(f"[bold]factoryline glossary[/] ({', '.join(defs.files)}, {defs.version})\n")
    for t in defs.terms.values():
        out.print(f"[bold]{t.name}[/]  version {t.definition_version}, owner {t.owner}", soft_wrap=True)
        out.print(f"  {t.meaning}", soft_wrap=True, markup=False)
        for line in t.rule_text().splitlines():
            out.print(f"    {line}", soft_wrap=True, markup=False, highlight=False)
        out.print()
    out.print(f"funnel stages: {' -> '.join(defs.stages)}; attribution lookback {defs.attribution.lookback_days} "
              f"days over {', '.join(defs.attribution.touch_terms)}")


@app.command()
def derive(
    destination: DestOpt = "duckdb",
    db: DbOpt = Path("factoryline.duckdb"),
    dataset: DatasetOpt = DEFAULT_DATASET,
) -> None:
    """Recompute identity links, lifecycle events and attribution credits (every run does this at its end)."""
    from pipelines.derive import derive as run_derive

    target = _target(destination, db, dataset)
    try:
        from pipelines.destination import run_lock

        with run_lock(target):
            result = run_derive(target)
    except (FactorylineError, RunLocked) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    out.print(f"derived ({result.definitions_version}, run {result.run_id}): "
              + ", ".join(f"{k} {v:,}" for k, v in result.rows.items()))
    for s in result.skipped:
        err.print(f"skipped: {s}")


@app.command()
def explain(
    kind: Annotated[str, typer.Argument(help="opportunity or order.")],
    key: Annotated[str, typer.Argument(help="Canonical id, vendor record id or order number.")],
    destination: DestOpt = "duckdb",
    db: DbOpt = Path("factoryline.duckdb"),
    dataset: DatasetOpt = DEFAULT_DATASET,
) -> None:
    """A won opportunity or an order: its stitched people, the touches credited under each model, and
    the raw vendor record and load of each touch."""
    from pipelines.explain import explain as run_explain
    from pipelines.explain import render_explanation
    from pipelines.trace import TraceError

    try:
        found = run_explain(_target(destination, db, dataset), kind, key)
    except TraceError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    render_explanation(found, out)


report_app = typer.Typer(no_args_is_help=True, help="Reports for marketing operations.")
app.add_typer(report_app, name="report")


@report_app.command("mapping")
def report_mapping(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for report.html, report.json, report.md.")] = Path("report"),
    destination: DestOpt = "duckdb",
    db: DbOpt = Path("factoryline.duckdb"),
    dataset: DatasetOpt = DEFAULT_DATASET,
) -> None:
    """Field-mapping report: how each vendor's fields land in the canonical vocabulary, and how well."""
    from pipelines.report import write_mapping_report

    try:
        paths = write_mapping_report(_target(destination, db, dataset), out_dir)
    except FactorylineError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    for p in paths:
        out.print(f"wrote {p}")


@app.command("sandbox")
def sandbox_cmd(
    size: Annotated[int, typer.Option(help="People in the world.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the world.")] = 7,
    state_dir: Annotated[Path, typer.Option(help="Where the world's clock is kept.")] = Path(".factoryline/sandbox"),
    rate_limits: Annotated[bool, typer.Option(help="Enforce the vendors' published rate limits.")] = False,
) -> None:
    """Run the vendor emulators in the foreground and print their URLs and credentials."""
    from sandbox.api import serve_forever

    serve_forever(size=size, seed=seed, state_dir=state_dir, rate_limits=rate_limits)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
