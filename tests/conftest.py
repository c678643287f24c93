"""Shared fixtures: the third-party plugin distribution, isolated dlt/working folders."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
IN_CI = bool(os.environ.get("CI"))
#: ../shared/vendor-reference beside the checkout (where CI puts it), or FACTORYLINE_VENDOR_REFERENCE
VENDOR_REFERENCE = Path(os.environ.get("FACTORYLINE_VENDOR_REFERENCE", ROOT.parent / "shared" / "vendor-reference"))


@pytest.fixture(scope="session")
def vendor_reference() -> Path:
    """The vendor specs and fixtures; missing is a failure in CI and a skip elsewhere."""
    if not VENDOR_REFERENCE.is_dir():
        if IN_CI:
            pytest.fail(f"vendor reference not found at {VENDOR_REFERENCE}: CI must have shared/ beside the clone")
        pytest.skip(f"vendor reference not found at {VENDOR_REFERENCE}")
    return VENDOR_REFERENCE


@pytest.fixture(autouse=True)
def _isolated_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test sees the plugin set its own environment selects, loaded afresh."""
    from core import plugins

    monkeypatch.delenv("FACTORYLINE_PLUGINS", raising=False)
    plugins.reset()
    yield
    plugins.reset()


# trust auth ignores the password, but dlt requires one to be set
PG_DSN = "postgresql://postgres:unused@127.0.0.1:5432/test"


@pytest.fixture()
def pg_dataset() -> Iterator[str]:
    """A fresh dataset name on the local PostgreSQL, dropped afterwards (with dlt's staging schema).

    In CI the server must be there: a missing server fails the test. Elsewhere it is skipped."""
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError:
        if IN_CI:
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432: CI must provide it")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432 (not in CI, so skipped)")
    import psycopg2

    dataset = f"fl_test_{secrets.token_hex(4)}"
    yield dataset
    con = psycopg2.connect(PG_DSN)
    con.autocommit = True
    with con.cursor() as cur:
        for suffix in ("", "_staging"):
            cur.execute(f'DROP SCHEMA IF EXISTS "{dataset}{suffix}" CASCADE')
    con.close()


@pytest.fixture(scope="session")
def acme_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/plugins/acme built and installed as its own distribution into a private folder."""
    target = tmp_path_factory.mktemp("acme-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT / "tests" / "plugins" / "acme")],
                   check=True, capture_output=True)
    return target


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the factoryline CLI in a child process, as cron or Dagster would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "FACTORYLINE_"))}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), (env or {}).pop("PYTHONPATH", "")]))
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def scrubbing_vcr(record_mode: str, hidden: Iterable[str], *, match_on: Sequence[str] = ("method", "path", "query"),
                  filter_headers: Sequence[str] = ("authorization", "cookie", "set-cookie"),
                  filter_query_parameters: Sequence[str] = ()) -> Any:
    """A vcrpy recorder that masks the ``hidden`` values in every recorded URL, request body and response body
    (and drops the credential headers and query parameters), so cassettes never hold a credential."""
    import vcr

    from core.http import Masker

    masker = Masker(list(hidden))

    def scrub_request(request: Any) -> Any:
        request.uri = masker.mask(request.uri)
        if request.body:
            body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
            request.body = masker.mask(body).encode()
        return request

    def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
        body = response.get("body", {}).get("string")
        if isinstance(body, bytes):
            response["body"]["string"] = masker.mask(body).encode()
        return response

    return vcr.VCR(record_mode=record_mode, filter_headers=list(filter_headers),
                   filter_query_parameters=list(filter_query_parameters),
                   before_record_request=scrub_request, before_record_response=scrub_response,
                   match_on=list(match_on), decode_compressed_response=True)


#: columns that differ between any two runs by design (run ids, load ids, read times)
RUN_COLUMNS = frozenset({"run_id", "extracted_at", "_dlt_load_id", "_dlt_id", "load_id", "started_at",
                         "finished_at", "seconds", "inserted_at"})
#: run bookkeeping and report tables: per run by design
META_TABLES = frozenset({"runs", "run_streams", "run_loads", "field_profiles", "mapping_versions"})


def table_snapshot(db: Path, tables: Sequence[str] | None = None, *,
                   skip: Iterable[str] = ()) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tables`` (default: every data table of the dataset) in a DuckDB file, sorted,
    without the run-specific columns: two runs that loaded the same data give equal snapshots."""
    import duckdb

    drop = RUN_COLUMNS | set(skip)
    con = duckdb.connect(str(db), read_only=True)
    try:
        if tables is None:
            names = [r[0] for r in con.sql("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'factory'").fetchall()]
            tables = sorted(t for t in names
                            if not t.startswith(("_dlt", "report_")) and t not in META_TABLES)
        out = {}
        for table in tables:
            cols = [c[0] for c in con.sql(f'DESCRIBE factory."{table}"').fetchall() if c[0] not in drop]
            out[table] = con.sql(f'SELECT {", ".join(cols)} FROM factory."{table}" ORDER BY ALL').fetchall()
        return out
    finally:
        con.close()


def soql_read(client: Any, soql: str, kind: str = "query") -> tuple[int, list[dict[str, Any]]]:
    """A Salesforce REST ``query`` / ``queryAll`` followed through every ``nextRecordsUrl`` page:
    (``totalSize``, every record) from an httpx client on the emulator."""
    r = client.get(f"/services/data/v59.0/{kind}", params={"q": soql})
    assert r.status_code == 200, r.text
    body = r.json()
    total, records = body["totalSize"], list(body["records"])
    while not body["done"]:
        body = client.get(body["nextRecordsUrl"]).json()
        records += body["records"]
    return total, records
