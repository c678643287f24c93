"""A run that finds a stopped run's package or recovery unfinished ends without duplicate keys.

dlt copies a file twice when a run was killed between the destination's commit and dlt marking the
job done (pipelines/recover.py); tests/test_kill_phases.py and the Shopify mid-bulk kill test hit
that window only by chance, so here the states such a kill leaves are set up directly: duplicate
rows plus the recovery marker, and a committed copy whose job is back in started_jobs.
"""

from __future__ import annotations

from pathlib import Path

import dlt
import duckdb
import pyarrow as pa
import pytest

from pipelines.destination import Target, make_pipeline
from pipelines.load import _hints
from pipelines.recover import MARKER, finish_pending
from pipelines.run import run
from sandbox.api import start_sandbox


def _dupes(db: Path, table: str) -> tuple[int, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        total, distinct = con.sql(f'SELECT count(*), count(DISTINCT id) FROM factory."{table}"').fetchall()[0]
        return int(total), int(distinct)
    finally:
        con.close()


def test_unfinished_recovery_is_repaired_by_the_next_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTORYLINE_DERIVE", "0")
    target = Target(db_path=tmp_path / "fl.duckdb")
    with start_sandbox(["hubspot"], size=150, seed=3, in_process=True) as sb:
        overrides = {"hubspot": sb.emulators["hubspot"].settings}
        first = run(["hubspot"], target=target, overrides=overrides, streams=["contacts"])
        assert first.status == "success", first.as_dict()
        total, distinct = _dupes(target.db_path, "person")
        assert total == distinct > 0
        # what a run killed inside a staging copy leaves once its package is loaded again
        con = duckdb.connect(str(target.db_path))
        con.execute("INSERT INTO factory.person SELECT * FROM factory.person ORDER BY id LIMIT 7")
        con.close()
        assert _dupes(target.db_path, "person") == (total + 7, distinct)
        marker = Path(make_pipeline(target).working_dir) / MARKER
        marker.touch()

        again = run(["hubspot"], target=target, overrides=overrides, streams=["contacts"])
    assert again.status == "success", (again.errors, again.as_dict())
    assert _dupes(target.db_path, "person") == (total, distinct)
    assert not marker.exists()


def _keyed_rows(ids: range, version: int) -> pa.Table:
    return pa.table({"id": [f"k{i}" for i in ids], "v": [version] * len(ids)})


@pytest.mark.parametrize("first", ["merge into a filled table", "append into an empty table"])
def test_a_copy_committed_before_the_kill_is_not_loaded_twice(tmp_path: Path, first: str) -> None:
    """The state a kill leaves between a copy's commit and dlt moving its job to completed_jobs:
    the job file is back in started_jobs, its rows are already in the table it was copied into
    (the staging table of a merge, or the table itself for the append into an empty table), and
    the package's schema update is applied (so dlt does not empty the staging table again)."""
    target = Target(db_path=tmp_path / "fl.duckdb")
    pipeline = make_pipeline(target)
    fresh = first.startswith("append")
    hints = _hints("t", "id", "merge", fresh=fresh)
    # the first load fills t, or (append case) only sets up the dataset with another table
    pipeline.run([dlt.mark.with_hints(_keyed_rows(range(0, 6), 1), _hints("t" if not fresh else "u", "id", "merge"))],
                 table_name="t", loader_file_format="parquet")
    pipeline.extract([dlt.mark.with_hints(_keyed_rows(range(3, 10), 2), hints)], table_name="t",
                     loader_file_format="parquet")
    pipeline.normalize()
    (load_id,) = pipeline.list_normalized_load_packages()
    package = Path(pipeline.working_dir) / "load" / "normalized" / load_id
    (job,) = package.glob("new_jobs/t.*.parquet")
    # what the killed run had done: schema applied, staging emptied, the copy committed
    update = package / "schema_updates.json"
    (package / "applied_schema_updates.json").write_text(update.read_text())
    update.unlink()
    con = duckdb.connect(str(target.db_path))
    if fresh:
        con.execute(f"CREATE TABLE factory.t AS SELECT * FROM read_parquet('{job}')")
    else:
        con.execute("DELETE FROM factory_staging.t")
        con.execute(f"INSERT INTO factory_staging.t BY NAME SELECT * FROM read_parquet('{job}')")
    con.close()
    job.rename(package / "started_jobs" / job.name)

    assert finish_pending(make_pipeline(target)) == []
    con = duckdb.connect(str(target.db_path), read_only=True)
    rows = con.sql("SELECT id, v FROM factory.t ORDER BY id").fetchall()
    con.close()
    want = {f"k{i}": 1 for i in range(0, 0 if fresh else 3)} | {f"k{i}": 2 for i in range(3, 10)}
    assert rows == sorted(want.items())
