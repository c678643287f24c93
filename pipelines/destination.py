"""Where a run loads: the dlt pipeline for a destination and dataset.

The embedded default is one DuckDB file. PostgreSQL (or any dlt destination) is chosen by name;
its credentials come from dlt's providers (``DESTINATION__POSTGRES__CREDENTIALS``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.destinations.impl.duckdb.duck import DuckDbClient

from core.errors import FactorylineError

__all__ = ["COMPRESSION_HINT", "RunLocked", "Target", "dataset_tables", "duckdb_memory_limit", "load_package", "make_pipeline",
           "release_memory", "run_lock", "tables_with_rows"]

log = logging.getLogger(__name__)

PIPELINE_NAME = "factoryline"
DUCKDB_MEMORY_LIMIT = "160MB"
#: the end-of-run derivation's window over every person's stage observations needs more than a load
#: (100k contacts ran out of 160MB); set for its session only (FACTORYLINE_DUCKDB_DERIVE_MEMORY_LIMIT)
DUCKDB_DERIVE_MEMORY_LIMIT = "256MB"
# Not "factoryline": DuckDB names the catalog after the file (factoryline.duckdb), and a schema of the
# same name makes every qualified reference ambiguous.
DEFAULT_DATASET = "factory"

# Arrow tables reach dlt as parquet; dlt stamps each row with the load it arrived in.
os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")
# Parquet between extract and load is a local hand-off: compressing it costs CPU twice for nothing.
os.environ.setdefault("DATA_WRITER__DISABLE_COMPRESSION", "true")
# dlt's own warnings (arrow/schema hint merges) are noise for a scheduled job; FACTORYLINE_DLT_LOG_LEVEL=INFO shows them.
# Streams sharing a load package are read one after the other (dlt's default interleaves them):
# one connector, one stream at a time (pipelines/load.py Package).
os.environ.setdefault("EXTRACT__NEXT_ITEM_MODE", "fifo")
os.environ.setdefault("RUNTIME__LOG_LEVEL", os.environ.get("FACTORYLINE_DLT_LOG_LEVEL", "ERROR"))


#: column hint: the DuckDB compression of a column holding long JSON text (raw payloads, extras).
#: DuckDB's default picks a method per segment by trying them all, and on JSON it settles on
#: dictionary + FSST; ZSTD is cheaper to write and 2.7x smaller (bench/bench_duckdb_compression.py).
COMPRESSION_HINT = "x-factoryline-compression"
_COMPRESSIONS = frozenset({"zstd"})


class _DuckDbClient(DuckDbClient):
    """dlt's DuckDB client whose CREATE TABLE / ADD COLUMN honour :data:`COMPRESSION_HINT` (the way
    dlt's own adapters carry destination-specific column hints, e.g. ``x-bigquery-*``)."""

    def _get_column_def_sql(self, c: Any, table: Any = None) -> str:
        sql: str = super()._get_column_def_sql(c, table)
        method = c.get(COMPRESSION_HINT)
        if method in _COMPRESSIONS:  # a closed set: the value ends up in DDL
            sql = f"{sql} USING COMPRESSION {method}"
        return sql


class _DuckDb(dlt.destinations.duckdb):
    @property
    def client_class(self) -> type[DuckDbClient]:
        return _DuckDbClient


def _duckdb_destination(credentials: Any) -> Any:
    # named as dlt's own: config sections, and the code here that asks which destination it loads into
    return _DuckDb(credentials, destination_name="duckdb")


@dataclass(frozen=True)
class Target:
    """A destination and dataset. ``db_path`` is the DuckDB file for the embedded default."""

    destination: str = "duckdb"
    db_path: Path = Path("factoryline.duckdb")
    dataset: str = DEFAULT_DATASET
    #: dlt's working folder (pending load packages, local state); default beside the DuckDB file
    work_dir: Path | None = None
    credentials: str | None = None

    def describe(self) -> str:
        if self.destination == "duckdb":
            return f"duckdb:{self.db_path.resolve()} (dataset {self.dataset})"
        return f"{self.destination} (dataset {self.dataset})"

    def pipelines_dir(self) -> Path:
        if self.work_dir is not None:
            return self.work_dir
        if self.destination == "duckdb":
            base = self.db_path.resolve()
            return base.parent / ".factoryline" / f"{base.stem}-pipelines"
        tag = hashlib.sha1(f"{self.destination}|{self.credentials}|{self.dataset}".encode()).hexdigest()[:10]
        return Path(".factoryline") / f"{self.destination}-{tag}-pipelines"


class RunLocked(FactorylineError):
    """Another factoryline run is loading into the same destination and dataset."""


@contextmanager
def run_lock(target: Target) -> Iterator[None]:
    """One run per destination and dataset at a time (cron-safe): a second run fails at once.

    Two dlt pipelines sharing one working folder would interleave their load packages and state.
    The lock is an OS file lock, so a killed run never leaves it held.
    """
    folder = target.pipelines_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "run.lock", "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise RunLocked(f"another factoryline run ({holder}) is loading into {target.describe()}; "
                            "this run did nothing. Let it finish, or schedule runs further apart") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def duckdb_memory_limit(*, derive: bool = False) -> str:
    """DuckDB's pool for loads, or for the end-of-run derivation; checked, since it goes into SQL."""
    value = (os.environ.get("FACTORYLINE_DUCKDB_DERIVE_MEMORY_LIMIT", DUCKDB_DERIVE_MEMORY_LIMIT) if derive
             else os.environ.get("FACTORYLINE_DUCKDB_MEMORY_LIMIT", DUCKDB_MEMORY_LIMIT)).strip()
    if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", value, re.IGNORECASE):
        raise FactorylineError(f"DuckDB memory limit {value!r} is not a size like 256MB or 1GB")
    return value


def _duckdb_start(target: Target) -> dict[str, Any]:
    """The DuckDB settings of every factoryline connection; a deleted database file drops the dlt
    state that described it (a fresh start, not an incremental run into nothing)."""
    pipelines_dir = target.pipelines_dir()
    if not target.db_path.exists() and pipelines_dir.exists():
        shutil.rmtree(pipelines_dir)
    # DuckDB's buffer pool would otherwise grow to most of the machine's memory during merges;
    # past this limit it spills to disk, so peak memory stays flat as data grows. Without insertion
    # order DuckDB streams the inserts; MERGEs are bounded by the package's bytes
    # (pipelines/load.py CHUNK_MERGE_BYTES) and run one at a time.
    return {"memory_limit": duckdb_memory_limit(), "preserve_insertion_order": False}


def make_pipeline(target: Target, connection: Any = None) -> Any:
    """The dlt pipeline for ``target``; with ``connection`` (from :func:`duckdb_session`) every dlt
    client of the pipeline uses that one DuckDB connection."""
    dest: Any
    if target.destination == "duckdb" and connection is not None:
        dest = _duckdb_destination(connection)
    elif target.destination == "duckdb":
        dest = _duckdb_destination(DuckDbCredentials(str(target.db_path.resolve()),
                                                     global_config=_duckdb_start(target)))
    elif target.destination == "postgres":
        dest = dlt.destinations.postgres(target.credentials) if target.credentials else dlt.destinations.postgres()
    else:
        dest = target.destination
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        destination=dest,
        dataset_name=target.dataset,
        pipelines_dir=str(target.pipelines_dir()),
    )


@contextlib.contextmanager
def duckdb_session(target: Target) -> Iterator[Any]:
    """One DuckDB connection for a whole run (None for other destinations). dlt otherwise opens the
    database for each job and closes it after, and a run has dozens of small jobs (schema, state,
    the run's own tables): `bench/bench_pipeline.py --n 200 --only factoryline` 1.9 -> 1.5 s."""
    if target.destination != "duckdb":
        yield None
        return
    import duckdb

    config = _duckdb_start(target)
    target.db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(str(target.db_path.resolve()), config=config)
    try:
        yield conn
    finally:
        conn.close()


def dataset_tables(client: Any) -> list[str]:
    """The tables of ``client``'s dataset (its staging dataset inside ``with_staging_dataset``)."""
    rows = client.execute_sql("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                              client.dataset_name)
    return [str(r[0]) for r in rows or []]


def tables_with_rows(pipeline: Any) -> frozenset[str] | None:
    """The dataset's tables that hold at least one row; None when the destination cannot say."""
    try:
        with pipeline.sql_client() as client:
            names = dataset_tables(client)
            if not names:
                return frozenset()
            probes = " UNION ALL ".join(
                f"SELECT {i} FROM (SELECT 1 FROM {client.make_qualified_table_name(n)} LIMIT 1) AS t{i}"
                for i, n in enumerate(names))
            return frozenset(names[r[0]] for r in client.execute_sql(probes))
    except Exception as exc:  # every table is then merged, as if it held rows: slower, never wrong
        log.warning("could not list the destination's filled tables (%s: %s); merging into all of them",
                    type(exc).__name__, exc)
        return None


def load_package(pipeline: Any, source: Any, extracted: Callable[[], None] | None = None) -> Any:
    """dlt's run of one package in its three steps, handing freed memory back before the load: the
    destination's MERGE is the run's peak (DuckDB's pool on top of what extraction grew), and
    pyarrow's allocator and the C heap keep what the pages and tables used (~45 MB per package).
    ``extracted`` runs once the data is extracted, to drop what only the extraction needed."""
    pipeline.extract(source, loader_file_format="parquet")
    if extracted is not None:
        extracted()
    release_memory()
    pipeline.normalize()
    # DuckDB: one job at a time. Parallel MERGEs share one memory pool and ran out of it (dlt then
    # retries the job); two cores gain nothing from them (300k contacts in 50k packages: 95.6 s
    # with dlt's parallel jobs, 80.2 s one at a time with the memory handed back)
    if pipeline.destination.destination_name != "duckdb":
        return pipeline.load()
    info = pipeline.load(workers=1)
    with pipeline.sql_client() as client:
        # a connection held for the whole run (duckdb_session) keeps what it appended in memory and
        # temporary files until a checkpoint, which DuckDB does not start on its own while dlt's
        # cursors are open: 150 MB in memory and 450 MB spilled after 300k contacts
        client.execute_sql("CHECKPOINT")
    return info


def release_memory() -> None:
    """Return the memory pyarrow's pool and the C heap hold unused to the system."""
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(AttributeError, OSError):  # not glibc: nothing to trim
        ctypes.CDLL(None).malloc_trim(0)
