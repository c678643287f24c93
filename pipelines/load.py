"""Turn a connector's pages into dlt tables: raw, canonical, rejects and side tables.

One dlt source per connector, one resource per stream. Each resource reads pages from the
connector, maps them through the stream's compiled mappings, and yields Arrow tables marked for
their destination table, all under the one load id of the connector's run. Pages are gathered
into batches of ``BATCH_ROWS`` rows before they reach dlt so the parquet files get sensible row
groups; nothing holds more than a batch per table.

Stream state goes into dlt's resource state after each page. dlt commits that state inside the
same load package as the data, so a run killed at any point and started again either finishes the
pending package (data + state) or redoes the work from the last committed state: never a cursor
ahead of its data.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dlt
import orjson
import pyarrow as pa

from core.connector import Connector, ConnectorConfig, ConnectorSpec, Page, RunContext, StreamSpec
from core.entities import ENTITIES
from core.errors import FactorylineError, QuotaExhaustedError
from core.lineage import raw_table_name, row_key
from core.mapping import CompiledMapping, load_mapping
from core.plugins import get_registry
from pipelines.profile import FieldProfile

__all__ = ["RAW_SCHEMA", "StreamResult", "connector_source", "dotted"]

log = logging.getLogger("factoryline.load")

BATCH_ROWS = 20_000
PREFETCH_PAGES = 4
TS = pa.timestamp("us", tz="UTC")

RAW_SCHEMA = pa.schema([
    pa.field("raw_key", pa.string(), nullable=False),
    pa.field("source_instance", pa.string(), nullable=False),
    pa.field("record_id", pa.string(), nullable=False),
    pa.field("cursor_value", pa.string()),
    pa.field("extracted_at", TS, nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("payload", pa.string(), nullable=False),
])

ProgressFn = Callable[[str, str, int], None]


def dotted(path: str) -> Callable[[dict[str, Any]], Any]:
    """A getter for a dot path (``properties.hs_object_id``)."""
    parts = path.split(".")
    if len(parts) == 1:
        key = parts[0]
        return lambda rec: rec.get(key)

    def get(rec: dict[str, Any]) -> Any:
        cur: Any = rec
        for p in parts:
            if isinstance(cur, dict):
                cur = cur.get(p)
            elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
                cur = cur[int(p)]
            else:
                return None
        return cur
    return get


@dataclass
class StreamResult:
    """How one stream of one connector ended; one row of the run status."""

    connector: str
    stream: str
    status: str = "pending"  # success | partial | failed | skipped
    records: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    rejects: int = 0
    requests: int = 0
    error: str | None = None
    seconds: float = 0.0
    profile: FieldProfile = field(default_factory=FieldProfile)

    def as_dict(self) -> dict[str, Any]:
        return {"connector": self.connector, "stream": self.stream, "status": self.status,
                "records": self.records, "rows": self.rows, "rejects": self.rejects,
                "requests": self.requests, "seconds": round(self.seconds, 3), "error": self.error}


class _Batcher:
    """Collects Arrow tables per destination table; hands out one concatenated table per batch."""

    def __init__(self) -> None:
        self.parts: dict[str, list[pa.Table]] = {}
        self.rows: dict[str, int] = {}
        self.hints: dict[str, Any] = {}
        #: tables seen only empty so far: still created, so `rejects` exists even in a clean run
        self.empty: dict[str, pa.Table] = {}
        self.sent: set[str] = set()

    def add(self, table_name: str, table: pa.Table, hints: Any) -> pa.Table | None:
        self.hints[table_name] = hints
        if table.num_rows == 0:
            self.empty.setdefault(table_name, table)
            return None
        self.parts.setdefault(table_name, []).append(table)
        self.rows[table_name] = self.rows.get(table_name, 0) + table.num_rows
        if self.rows[table_name] >= BATCH_ROWS:
            return self.take(table_name)
        return None

    def take(self, table_name: str) -> pa.Table:
        parts = self.parts.pop(table_name)
        self.rows.pop(table_name)
        self.sent.add(table_name)
        return pa.concat_tables(parts, promote_options="default") if len(parts) > 1 else parts[0]

    def drain(self) -> Iterator[tuple[str, pa.Table]]:
        for name in list(self.parts):
            yield name, self.take(name)
        for name, table in self.empty.items():
            if name not in self.sent:
                yield name, table


def _hints(table_name: str, primary_key: str, disposition: str, columns: dict[str, Any] | None = None) -> Any:
    return dlt.mark.make_hints(table_name=table_name, primary_key=primary_key,
                               write_disposition=disposition, columns=columns)  # type: ignore[arg-type]


def _entity_columns(entity_name: str) -> dict[str, Any]:
    ent = ENTITIES[entity_name]
    return {c.name: {"name": c.name, "nullable": not c.required and c.name != "id"} for c in ent.all_columns}


class _StreamLoader:
    """Everything needed to turn one stream's pages into tables."""

    def __init__(self, spec: ConnectorSpec, stream: StreamSpec, config: ConnectorConfig,
                 mappings: Sequence[CompiledMapping], ctx: RunContext) -> None:
        self.spec = spec
        self.stream = stream
        self.instance = config.instance
        self.mappings = mappings
        self.ctx = ctx
        self.raw_table = raw_table_name(spec.system, stream.name)
        self.get_id = dotted(stream.primary_key)
        self.get_cursor = dotted(stream.cursor_field) if stream.cursor_field else None
        self.raw_hints = _hints(self.raw_table, "raw_key", stream.write_disposition,
                                {"raw_key": {"name": "raw_key", "nullable": False}})
        self.entity_hints = {m.entity.name: _hints(m.entity.name, "id", "merge", _entity_columns(m.entity.name))
                             for m in mappings}
        self.reject_hints = _hints("rejects", "id", "merge")
        self.side_hints = {s.name: _hints(raw_table_name(spec.system, s.name), "edge_key", "merge")
                           for s in stream.side_tables}
        self.side_keys = {s.name: s.key_fields for s in stream.side_tables}

    def raw(self, records: list[dict[str, Any]], extracted_at: datetime) -> pa.Table:
        sys, inst, obj = self.spec.system, self.instance, self.stream.name
        keep = [(str(i), r) for r in records if (i := self.get_id(r)) not in (None, "")]
        get_cursor = self.get_cursor
        n = len(keep)
        return pa.Table.from_arrays([
            pa.array([row_key(sys, inst, obj, i) for i, _ in keep], pa.string()),
            pa.array([inst] * n, pa.string()),
            pa.array([i for i, _ in keep], pa.string()),
            pa.array([None if get_cursor is None or (c := get_cursor(r)) is None else str(c) for _, r in keep],
                     pa.string()),
            pa.array([extracted_at] * n, TS),
            pa.array([self.ctx.run_id] * n, pa.string()),
            pa.array([orjson.dumps(r).decode() for _, r in keep], pa.string()),
        ], schema=RAW_SCHEMA)

    def side(self, name: str, records: list[dict[str, Any]], extracted_at: datetime) -> pa.Table:
        keys = self.side_keys[name]
        table = pa.Table.from_pylist(records)
        edge_keys = [row_key(self.spec.system, self.instance, name, "|".join(str(r.get(k)) for k in keys))
                     for r in records]
        n = len(records)
        table = table.append_column("edge_key", pa.array(edge_keys, pa.string()))
        table = table.append_column("source_instance", pa.array([self.instance] * n, pa.string()))
        table = table.append_column("extracted_at", pa.array([extracted_at] * n, TS))
        return table.append_column("run_id", pa.array([self.ctx.run_id] * n, pa.string()))

    def page_tables(self, page: Page, result: StreamResult) -> Iterator[tuple[str, pa.Table, Any]]:
        extracted_at = datetime.now(tz=self.ctx.started_at.tzinfo)
        records = page.records
        yield self.raw_table, self.raw(records, extracted_at), self.raw_hints
        for m in self.mappings:
            mapped = m.map_page(records, run_id=self.ctx.run_id, extracted_at=extracted_at)
            name = m.entity.name
            result.rows[name] = result.rows.get(name, 0) + mapped.rows.num_rows
            result.rejects += mapped.rejects.num_rows
            yield name, mapped.rows, self.entity_hints[name]
            yield "rejects", mapped.rejects, self.reject_hints
        for name, side_records in page.side_records.items():
            if side_records and name in self.side_hints:
                yield raw_table_name(self.spec.system, name), self.side(name, side_records, extracted_at), \
                    self.side_hints[name]


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


def prefetched(pages: Iterator[Page], depth: int = PREFETCH_PAGES) -> Iterator[Page]:
    """Read ``pages`` on a background thread, at most ``depth`` ahead.

    The connector waits on the network while this thread maps and batches the previous pages, so
    vendor latency and mapping overlap (the GIL is released while a socket waits). Memory stays
    bounded by ``depth`` pages; an exception in the connector surfaces here, in order.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for page in pages:
                if not put(page):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failed(exc))
            return
        put(_DONE)

    thread = threading.Thread(target=work, name="factoryline-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _compile(spec: ConnectorSpec, stream: StreamSpec, instance: str) -> list[CompiledMapping]:
    transforms = get_registry().transforms
    compiled = []
    for name in stream.mappings:
        assert spec.mappings_dir is not None  # checked at registration
        mspec = load_mapping(spec.mappings_dir / name, transforms)
        compiled.append(mspec.compile(system=spec.system, instance=instance, stream=stream.name,
                                      raw_table=raw_table_name(spec.system, stream.name)))
    return compiled


def _stream_resource(spec: ConnectorSpec, stream: StreamSpec, config: ConnectorConfig, connector: Connector,
                     ctx: RunContext, result: StreamResult, progress: ProgressFn | None) -> Any:
    def pages() -> Iterator[Any]:
        started = time.perf_counter()
        state = dlt.current.resource_state()
        loader = _StreamLoader(spec, stream, config, _compile(spec, stream, config.instance), ctx)
        batcher = _Batcher()
        try:
            prior = {} if ctx.full_refresh else dict(state.get("stream") or {})
            for page in prefetched(connector.extract(stream, prior, ctx)):
                result.records += len(page.records)
                result.requests += page.requests
                result.profile.add(page.records)
                for table_name, table, hints in loader.page_tables(page, result):
                    full = batcher.add(table_name, table, hints)
                    if full is not None:
                        yield dlt.mark.with_hints(full, hints, create_table_variant=True)
                if page.state is not None:
                    state["stream"] = page.state
                if progress:
                    progress(spec.name, stream.name, result.records)
            result.status = "success"
        except QuotaExhaustedError as exc:
            result.status, result.error = "partial", str(exc)
            log.warning("%s.%s stopped: %s", spec.name, stream.name, exc)
        except FactorylineError as exc:
            result.status, result.error = "failed", str(exc)
            log.error("%s.%s failed: %s", spec.name, stream.name, exc)
        except Exception as exc:  # a bug in a plugin must not lose the other streams' data
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("%s.%s failed:\n%s", spec.name, stream.name, traceback.format_exc())
        # What was read before a failure is still loaded: its state never moved past it.
        for table_name, table in batcher.drain():
            yield dlt.mark.with_hints(table, batcher.hints[table_name], create_table_variant=True)
        result.seconds = time.perf_counter() - started

    return dlt.resource(pages, name=stream.name, write_disposition=stream.write_disposition)


def connector_source(spec: ConnectorSpec, config: ConnectorConfig, connector: Connector, ctx: RunContext,
                     streams: Sequence[StreamSpec], results: dict[str, StreamResult],
                     progress: ProgressFn | None = None, name: str | None = None) -> Any:
    """A dlt source of one resource per stream; ``results`` fills in as dlt pulls the pages.

    ``name`` (default: the connector's) names dlt's schema and the state the cursors live in.
    """
    resources = [_stream_resource(spec, s, config, connector, ctx, results[s.name], progress) for s in streams]
    return dlt.source(lambda: resources, name=name or spec.name, max_table_nesting=0)()
