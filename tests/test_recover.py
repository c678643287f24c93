"""A run that finds a stopped run's recovery unfinished removes the duplicate keys it left.

The duplicates come from dlt copying a file into a merge table's staging table twice when a run
was killed between the destination's commit and dlt marking the job done (pipelines/recover.py);
tests/test_kill_phases.py and the Shopify mid-bulk kill test hit that window only by chance, so
here the state such a kill leaves is set up directly: duplicate rows plus the recovery marker.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.destination import Target, make_pipeline
from pipelines.recover import MARKER
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
