"""DuckDB's load of the JSON text columns (raw ``payload``, canonical ``extras``): its default
compression against ZSTD on those columns (``pipelines/destination.py`` ``COMPRESSION_HINT``).

    /work/venv/bin/python bench/bench_duckdb_compression.py --n 100000 --rounds 3

One factoryline run loads ``--n`` HubSpot contacts from the sandbox; its ``hubspot__contacts``,
``person`` and ``hubspot__associations`` tables are written to parquet the way dlt hands them to
DuckDB (uncompressed, 5,000-row groups). Then, alternating the two variants for ``--rounds`` rounds,
each table is created in a fresh DuckDB file (the 160 MB pool and settings of a run) and loaded with
``INSERT ... BY NAME SELECT * FROM read_parquet(...)``, as dlt's copy job does, then checkpointed.
Prints the process CPU (DuckDB's threads included) and wall time of the loads, the file size, and
the CPU of a full scan of the JSON columns (``LIKE`` over every payload and extras). The machine is
shared: compare the two variants within one run (the last lines are medians and ratios).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TABLES = ("hubspot__contacts", "person", "hubspot__associations")
JSON_TEXT = {"payload", "extras"}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def export(n: int, workdir: Path) -> None:
    """One factoryline run of ``n`` contacts, its tables written to ``workdir/<table>.parquet``."""
    import duckdb

    from pipelines.destination import Target
    from pipelines.run import run
    from sandbox.api import start_sandbox

    os.environ.setdefault("FACTORYLINE_DERIVE", "0")
    db = workdir / "run.duckdb"
    with start_sandbox(["hubspot"], size=n, seed=11) as sb:
        settings = {**sb.emulators["hubspot"].settings, "pace": "false", "search_requests_per_second": "0"}
        status = run(["hubspot"], target=Target(db_path=db), overrides={"hubspot": settings}, streams=["contacts"])
    assert status.status == "success", status.as_dict()
    con = duckdb.connect(str(db), read_only=True)
    for t in TABLES:
        con.execute(f"COPY factory.{t} TO '{workdir / t}.parquet' "
                    "(FORMAT parquet, COMPRESSION uncompressed, ROW_GROUP_SIZE 5000)")
    con.close()


def load(workdir: Path, variant: str) -> dict[str, float]:
    import duckdb

    path = workdir / f"{variant}.duckdb"
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path), config={"memory_limit": "160MB", "preserve_insertion_order": False})
    cpu, wall = _cpu(), time.perf_counter()
    for t in TABLES:
        src = f"read_parquet('{workdir / t}.parquet')"
        cols = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
        defs = ", ".join(f'"{name}" {typ}' + (" USING COMPRESSION zstd" if variant == "zstd" and name in JSON_TEXT
                                              else "") for name, typ, *_ in cols)
        con.execute(f"CREATE TABLE {t} ({defs})")
        con.execute(f"INSERT INTO {t} BY NAME SELECT * FROM {src}")
        con.execute("CHECKPOINT")
    out = {"load_cpu": _cpu() - cpu, "load_wall": time.perf_counter() - wall}
    cpu = _cpu()
    con.execute("SELECT count(*) FROM hubspot__contacts WHERE payload LIKE '%\"archived\":true%'").fetchall()
    con.execute("SELECT count(*) FROM person WHERE extras LIKE '%hs_email_domain%'").fetchall()
    out["scan_cpu"] = _cpu() - cpu
    con.close()
    out["mb"] = path.stat().st_size / 1e6
    path.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="contacts in the sandbox world")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    variants = ("default", "zstd")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        export(args.n, workdir)
        rows: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        print(f"{'round':>5} {'variant':<8} {'load CPU s':>10} {'load wall s':>11} {'file MB':>8} {'scan CPU s':>10}")
        for r in range(args.rounds):
            for v in variants if r % 2 == 0 else variants[::-1]:
                m = load(workdir, v)
                rows[v].append(m)
                print(f"{r:>5} {v:<8} {m['load_cpu']:>10.2f} {m['load_wall']:>11.2f} {m['mb']:>8.1f} {m['scan_cpu']:>10.2f}")
    med = {v: {k: statistics.median(x[k] for x in rows[v]) for k in rows[v][0]} for v in variants}
    for v in variants:
        m = med[v]
        print(f"{'med':>5} {v:<8} {m['load_cpu']:>10.2f} {m['load_wall']:>11.2f} {m['mb']:>8.1f} {m['scan_cpu']:>10.2f}")
    d, z = med["default"], med["zstd"]
    print(f"zstd vs default: load CPU {d['load_cpu'] / z['load_cpu']:.2f}x less, file {d['mb'] / z['mb']:.2f}x smaller, "
          f"scan CPU {z['scan_cpu'] / d['scan_cpu']:.2f}x of default")
    print(f"reproduce: /work/venv/bin/python bench/bench_duckdb_compression.py --n {args.n} --rounds {args.rounds}")


if __name__ == "__main__":
    main()
