"""One factoryline run: every selected connector through dlt into one destination.

A run has an id, a start time that bounds every incremental window, one load per connector, and a
status that says which streams finished. A run that did not finish every stream is never reported
as a success: ``status`` is ``partial`` (or ``failed`` when nothing finished) and the CLI exits
non-zero.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import secrets
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dlt

from core.connector import ConnectorSpec, RunContext
from core.errors import FactorylineError
from core.mapping import load_mapping
from core.plugins import PluginWarning, get_registry
from pipelines.config import resolve_config
from pipelines.destination import (
    DUCKDB_MEMORY_LIMIT,
    Target,
    duckdb_session,
    load_package,
    make_pipeline,
    run_lock,
    tables_with_rows,
)
from pipelines.load import AppendedKeys, Package, ProgressFn, StreamLoad, StreamResult
from pipelines.recover import finish_pending

__all__ = ["EXIT_CODES", "RunStatus", "new_run_id", "run"]

log = logging.getLogger("factoryline.run")

#: exit codes of ``factoryline run``: success, nothing finished, usage/config error, some streams unfinished
EXIT_CODES = {"success": 0, "failed": 1, "error": 2, "partial": 3}


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: UTC start time plus random suffix."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


@dataclass
class RunStatus:
    run_id: str
    started_at: datetime
    target: str
    finished_at: datetime | None = None
    streams: list[StreamResult] = field(default_factory=list)
    #: connector -> the dlt loads (one per chunk of each stream) this run made
    load_ids: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        done = [s for s in self.streams if s.status == "success"]
        if self.streams and len(done) == len(self.streams) and not self.errors:
            return "success"
        if done or any(s.status == "partial" for s in self.streams):
            return "partial"
        return "failed"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "status": self.status, "target": self.target,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "load_ids": self.load_ids, "errors": self.errors,
            "streams": [s.as_dict() for s in self.streams],
        }


def _package_source(loads: Sequence[StreamLoad]) -> Callable[[], list[Any]]:
    # dlt derives configuration from a source function's parameters: this one must have none
    def source() -> list[Any]:
        return [load.resource() for load in loads]
    return source


def _next_package(loads: Sequence[StreamLoad], filled: frozenset[str] | None = None,
                  appended: AppendedKeys | None = None) -> list[StreamLoad]:
    """The streams that fill the next load package, each given the same fresh :class:`Package`.

    A stream paused mid-way (its package was full) goes alone, so it resumes before any other
    stream starts; so does a "replace" stream, because dlt empties the table of a replace
    resource that ran without data, which a stream left out of a full package would be;
    otherwise every unfinished stream, in order, until the package is full.
    """
    for ld in loads:
        ld.in_package = False
    pending = [ld for ld in loads if not ld.done]
    paused = [ld for ld in pending if ld.started is not None]
    whole = [ld for ld in pending if ld.whole]
    group = paused[:1] or whole[:1] or pending
    package = Package(filled=filled, appended=appended)
    for ld in group:
        ld.package = package
    return group


def _fail(status: RunStatus, connector: str, results: Any, exc: Exception) -> None:
    message = str(exc) if isinstance(exc, FactorylineError) else f"{type(exc).__name__}: {exc}"
    if "Out of Memory" in message:
        message += (" -- DuckDB hit its memory limit: raise FACTORYLINE_DUCKDB_MEMORY_LIMIT (default "
                    f"{DUCKDB_MEMORY_LIMIT}) and run again; the pending load is finished first, nothing is lost")
    log.error("connector %s: %s", connector, message)
    status.errors.append(f"{connector}: {message}")
    for r in results:
        if r.status in ("pending", "success"):
            r.status = "failed"
            r.error = r.error or message


def _source_name(spec: ConnectorSpec, instance: str) -> str:
    # state and schema are per connector instance: two HubSpot portals never share a cursor
    if instance == "default":
        return spec.name
    return f"{spec.name}_{re.sub(r'[^a-z0-9]+', '_', instance.lower()).strip('_')}"


def _mapping_rows(specs: Sequence[ConnectorSpec]) -> list[dict[str, Any]]:
    rows = []
    transforms = get_registry().transforms
    for spec in specs:
        for stream in spec.streams:
            for name in stream.mappings:
                assert spec.mappings_dir is not None
                path = spec.mappings_dir / name
                m = load_mapping(path, transforms)
                rows.append({"mapping_version": m.version, "connector": spec.name, "stream": stream.name,
                             "file": f"{spec.name}/{name}", "entity": m.entity.name,
                             "content": path.read_text(encoding="utf-8")})
    return rows


def _record_run(pipeline: Any, status: RunStatus, specs: Sequence[ConnectorSpec]) -> None:
    """Run metadata: what ran, how it ended, and every mapping version it used (old ones stay)."""
    run_row = {k: v for k, v in status.as_dict().items() if k != "streams"}
    run_row["load_ids"] = ",".join(f"{k}={v}" for k, ids in status.load_ids.items() for v in ids)
    run_row["errors"] = "\n".join(status.errors) or None
    stream_rows = [{"run_id": status.run_id, "key": f"{status.run_id}/{s.connector}/{s.stream}", **s.as_dict(),
                    "rows": ",".join(f"{k}={v}" for k, v in s.rows.items()), "load_ids": ",".join(s.load_ids)}
                   for s in status.streams]
    load_rows = [{"load_id": lid, "run_id": status.run_id, "connector": s.connector, "stream": s.stream}
                 for s in status.streams for lid in s.load_ids]

    profile_rows = [{"key": f"{status.run_id}/{s.connector}/{s.stream}/{r['path']}", "run_id": status.run_id,
                     "connector": s.connector, "stream": s.stream, **r}
                    for s in status.streams for r in s.profile.rows()]

    @dlt.source(name="factoryline_meta", max_table_nesting=0)
    def meta() -> Any:
        def text() -> Any:  # a fresh dict each time: dlt writes the column name into it
            return {"data_type": "text", "nullable": True}
        yield dlt.resource([run_row], name="runs", write_disposition="merge", primary_key="run_id",
                           columns={"errors": text(), "load_ids": text(),
                                    "finished_at": {"data_type": "timestamp", "nullable": True}})
        yield dlt.resource(stream_rows, name="run_streams", write_disposition="merge", primary_key="key",
                           columns={"load_ids": text(), "error": text(), "rows": text()})
        yield dlt.resource(load_rows, name="run_loads", write_disposition="merge", primary_key="load_id",
                           columns={"load_id": text(), "run_id": text(), "connector": text(), "stream": text()})
        yield dlt.resource(profile_rows, name="field_profiles", write_disposition="merge", primary_key="key",
                           columns={"types": text()})
        yield dlt.resource(_mapping_rows(specs), name="mapping_versions", write_disposition="merge",
                           primary_key=["mapping_version", "file"])

    pipeline.run(meta())


def run(connectors: Sequence[str] | None = None, *, target: Target | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None, streams: Sequence[str] | None = None,
        full_refresh: bool = False, progress: ProgressFn | None = None,
        started_at: datetime | None = None) -> RunStatus:
    """Run ``connectors`` (default: every registered one) into ``target``.

    ``overrides`` gives per-connector settings that win over dlt's providers (the sandbox uses it).
    Never raises for a vendor or plugin failure: the status says what happened.
    """
    target = target or Target()
    with run_lock(target), _collector_tuned(), duckdb_session(target) as connection:
        return _run(connectors, target, overrides, streams, full_refresh, progress, started_at, connection)


#: the cyclic collector's first threshold during a run (CPython's default is 700 allocations)
GC_THRESHOLD = 20_000


@contextlib.contextmanager
def _collector_tuned() -> Iterator[None]:
    """Fewer cyclic collections while a run holds pages of parsed records.

    A page of vendor JSON is thousands of dicts and lists that live until it is mapped, so the
    default threshold ran ~2,150 young and 17 full collections per 100k HubSpot contacts, each full
    one walking every object of dlt, pyarrow and the SDKs: 2.3-3 s of a ~23 s run's CPU, against
    0.2-0.3 s at 20,000 (gc.callbacks timings, bench/bench_pipeline.py --child, peak RSS unchanged).
    Reference cycles are still collected; the caller's thresholds come back when the run ends.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], GC_THRESHOLD), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _run(connectors: Sequence[str] | None, target: Target, overrides: Mapping[str, Mapping[str, Any]] | None,
         streams: Sequence[str] | None, full_refresh: bool, progress: ProgressFn | None,
         started_at: datetime | None, connection: Any = None) -> RunStatus:
    registry = get_registry()
    names = list(connectors) if connectors else sorted(registry.connectors)
    started = started_at or datetime.now(UTC)
    status = RunStatus(run_id=new_run_id(started), started_at=started, target=target.describe())
    specs: list[ConnectorSpec] = []
    pipeline = make_pipeline(target, connection)
    filled: frozenset[str] | None = None
    appended = AppendedKeys()
    try:
        finish_pending(pipeline)
    except Exception as exc:  # the pending package is tried again by the first load below
        status.errors.append(f"finishing the stopped run's load failed: {type(exc).__name__}: {exc}")
    try:
        # what pipeline.run does before every package, once: state and schemas from the destination
        # when this working folder has none (a new machine, a deleted folder)
        pipeline.sync_destination()
    except Exception as exc:
        status.errors.append(f"reading the pipeline state from the destination failed: {type(exc).__name__}: {exc}")
    for name in names:
        try:
            spec = registry.connector(name)
        except FactorylineError as exc:
            status.errors.append(str(exc))
            continue
        specs.append(spec)
        selected = [s for s in spec.streams if not streams or s.name in streams]
        results = {s.name: StreamResult(spec.name, s.name) for s in selected}
        status.streams.extend(results.values())
        connector = None
        try:
            config = resolve_config(spec, (overrides or {}).get(name))
            connector = spec.factory(config)
        except Exception as exc:
            _fail(status, name, results.values(), exc)
            continue
        ctx = RunContext(run_id=status.run_id, started_at=started, full_refresh=full_refresh)
        source_name = _source_name(spec, config.instance)
        loads = [StreamLoad(spec, stream, config, connector, ctx, results[stream.name], progress)
                 for stream in selected]
        try:
            # a package left by a failed load is loaded with the next one: what it fills is not known yet
            if filled is None and not pipeline.has_pending_data:
                filled = tables_with_rows(pipeline)
            while group := _next_package(loads, filled, appended):
                source = dlt.source(_package_source(group), name=source_name, max_table_nesting=0)()
                try:
                    info = load_package(pipeline, source, group[0].package.extracted)
                except Exception as exc:
                    # this package did not reach the destination: its streams did not finish
                    _fail(status, name, [ld.result for ld in loads if ld.in_package or not ld.done], exc)
                    filled = None  # which tables it reached is unknown: ask the destination again
                    appended = AppendedKeys()
                    break
                if filled is not None:
                    # tables appended into stay open to appends with new keys; the others now merge
                    package = group[0].package
                    appended.commit(package)
                    filled = filled | (package.written - package.appending)
                status.load_ids.setdefault(name, []).extend(info.loads_ids)
                for ld in group:
                    if ld.in_package:
                        ld.result.load_ids.extend(info.loads_ids)
        finally:
            for ld in loads:
                ld.close()
            connector.close()
    _derive(target, pipeline, status)
    status.finished_at = datetime.now(UTC)
    try:
        _record_run(pipeline, status, specs)
    except Exception as exc:
        status.errors.append(f"recording the run failed: {type(exc).__name__}: {exc}")
    _announce(status)
    return status


def _derive(target: Target, pipeline: Any, status: RunStatus) -> None:
    """Identity, lifecycle and attribution over what is loaded now (FACTORYLINE_DERIVE=0 skips it).

    A failure here is a run error (status partial or failed), never swallowed; the loads stay."""
    if os.environ.get("FACTORYLINE_DERIVE", "1") == "0" or not status.streams:
        return
    from pipelines.derive import derive

    try:
        result = derive(target, run_id=status.run_id, pipeline=pipeline)
    except Exception as exc:
        log.error("derive failed: %s", exc, exc_info=not isinstance(exc, FactorylineError))
        status.errors.append(f"derive: {exc}" if isinstance(exc, FactorylineError)
                             else f"derive: {type(exc).__name__}: {exc}")
        return
    if result.load_ids:
        status.load_ids["derive"] = result.load_ids


def _announce(status: RunStatus) -> None:
    """Call every plugin's run_finished; a failing hook warns and never changes the run's outcome."""
    pm = get_registry().plugin_manager
    if pm is None:
        return
    for impl in pm.hook.run_finished.get_hookimpls():
        try:
            impl.function(status=status.as_dict())
        except Exception as exc:
            warnings.warn(f"factoryline plugin {impl.plugin_name!r} failed in run_finished: "
                          f"{type(exc).__name__}: {exc}", PluginWarning, stacklevel=2)


def table_counts(target: Target, tables: Sequence[str]) -> dict[str, int]:
    """Row counts of ``tables`` in the target dataset (missing tables are left out)."""
    pipeline = make_pipeline(target)
    out: dict[str, int] = {}
    with pipeline.sql_client() as client:
        for t in tables:
            try:
                rows = client.execute_sql(f"SELECT count(*) FROM {client.make_qualified_table_name(t)}")
            except Exception:
                continue
            out[t] = int(rows[0][0]) if rows else 0
    return out

