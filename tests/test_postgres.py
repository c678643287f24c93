"""The same pipelines load into PostgreSQL (127.0.0.1:5432, database test).

In CI the server must be there: a missing server fails the test. Elsewhere it is skipped, saying why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PG_DSN, cli


@pytest.mark.postgres
def test_third_party_connector_loads_into_postgres_twice_without_duplicates(
        acme_site: Path, tmp_path: Path, pg_dataset: str) -> None:
    import psycopg2

    env = {"PYTHONPATH": str(acme_site), "SOURCES__ACME__API_KEY": "k-abcdef",
           "DESTINATION__POSTGRES__CREDENTIALS": PG_DSN}
    for _ in range(2):
        done = cli("run", "acme", "--destination", "postgres", "--dataset", pg_dataset, cwd=tmp_path, env=dict(env))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "success"
    con = psycopg2.connect(PG_DSN)
    with con.cursor() as cur:
        cur.execute(f'SELECT source_record_id, email, run_id IS NOT NULL, _dlt_load_id IS NOT NULL '
                    f'FROM "{pg_dataset}".person ORDER BY 1')
        rows = cur.fetchall()
        cur.execute(f'SELECT count(*) FROM "{pg_dataset}".runs')
        runs = cur.fetchone()
    con.close()
    assert rows == [("p1", "ada@example.com", True, True), ("p2", "grace@example.com", True, True),
                    ("p3", "linus@example.com", True, True)]
    assert runs == (2,)
