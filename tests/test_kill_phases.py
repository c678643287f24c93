"""A run killed inside each phase of a load, then started again, ends with a clean run's data.

The kill points are observed, not guessed from delays: the test watches dlt's working folder of
the run (``<db>/../.factoryline/<db>-pipelines/factoryline``) and sends SIGKILL the moment the
phase it aims at is under way, e.g. while a load package's staging copies are done and its MERGE
has not finished. Small chunks (FACTORYLINE_CHUNK_RECORDS) make every stream several packages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox.api import start_sandbox
from tests.conftest import ROOT, cli, table_snapshot

Probe = Callable[[Path], bool]


def _any(folder: Path, pattern: str) -> bool:
    try:
        return any(True for _ in folder.glob(pattern))
    except FileNotFoundError:  # the run moved or removed a folder while it was being listed
        return False


#: phase -> what in dlt's working folder shows that the phase is under way
PHASES: dict[str, Probe] = {
    # pages are being written into an extract package that is not complete yet
    "extract": lambda p: _any(p, "normalize/*/*/new_jobs/*.parquet") and not _any(p, "normalize/extracted/*"),
    # a package is being normalized into a load package
    "normalize": lambda p: _any(p, "load/new/*/new_jobs/*"),
    # a copy job runs while an earlier package is loaded (in a first run: an append into a table
    # that package filled)
    "later package's copy": lambda p: _any(p, "load/loaded/*") and _any(p, "load/normalized/*/started_jobs/*.parquet"),
    # staging copies of a package are done, its merge jobs are not
    "between staging and merge": lambda p: _any(p, "load/normalized/*/completed_jobs/*.parquet")
    and _any(p, "load/normalized/*/new_jobs/*.sql"),
    # a merge into a destination table is running
    "merge": lambda p: _any(p, "load/normalized/*/started_jobs/*.sql"),
}
#: CRM objects with association edges, and email events (offset-paged windows): every phase is
#: crossed several times (contacts alone make 3 packages of 500)
STREAMS = ("--stream", "contacts", "--stream", "deals", "--stream", "email_events")


def _kill_during(phase: str, db: Path, cwd: Path, env: dict[str, str], *extra: str, timeout: float = 120) -> bool:
    """Start a run and SIGKILL it while ``phase`` is under way; False if the run ended first."""
    work = db.resolve().parent / ".factoryline" / f"{db.stem}-pipelines" / "factoryline"
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "hubspot", "--no-sandbox",
                             "--db", str(db), *STREAMS, *extra], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    probe, deadline = PHASES[phase], time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if work.exists() and probe(work):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.001)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_killed_inside_every_phase_then_restarted_equals_a_clean_run(tmp_path: Path) -> None:
    with start_sandbox(["hubspot"], size=1200, seed=5, state_dir=tmp_path / "world") as sb:
        settings = {**sb.emulators["hubspot"].settings, "pace": "false"}
        env = {f"SOURCES__HUBSPOT__{k.upper()}": str(v) for k, v in settings.items()}
        env |= {"FACTORYLINE_CHUNK_RECORDS": "500"}
        clean = tmp_path / "clean.duckdb"
        done = cli("run", "hubspot", "--no-sandbox", "--db", str(clean), *STREAMS, cwd=tmp_path, env=dict(env))
        assert done.returncode == 0, done.stderr

        killed = tmp_path / "killed.duckdb"
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        for phase in [p for p in PHASES if p != "later package's copy"]:
            # Each kill lands in a run that first finishes what the previous one left. A merge of a
            # small package is over in milliseconds; a full refresh merges every package into a
            # filled table, which gives the later attempts a longer window.
            hit = any(_kill_during(phase, killed, tmp_path, full_env, *(["--full-refresh"] if attempt else []))
                      for attempt in range(4))
            assert hit, f"no run was seen inside the {phase} phase"
        again = cli("run", "hubspot", "--no-sandbox", "--db", str(killed), *STREAMS, cwd=tmp_path, env=dict(env))
        assert again.returncode == 0, again.stderr
        # a first run appends every package into the tables its earlier packages filled: killed while
        # such a copy runs (each attempt on a new destination, so that it is a first run)
        firsts = [tmp_path / f"first{n}.duckdb" for n in range(4)]
        first = next((db for db in firsts if _kill_during("later package's copy", db, tmp_path, full_env)), None)
        assert first is not None, "no first run was seen copying a later package"
        again = cli("run", "hubspot", "--no-sandbox", "--db", str(first), *STREAMS, cwd=tmp_path, env=dict(env))
        assert again.returncode == 0, again.stderr
    assert not (diff := _difference(table_snapshot(killed), table_snapshot(clean))), diff
    assert not (diff := _difference(table_snapshot(first), table_snapshot(clean))), diff


def _difference(got: dict[str, list[tuple[Any, ...]]], want: dict[str, list[tuple[Any, ...]]]) -> str:
    """Where two snapshots differ: per table the row counts and the first differing values."""
    out = []
    for table in sorted(set(got) | set(want)):
        g, w = set(got.get(table, [])), set(want.get(table, []))
        if g == w:
            continue
        extra, missing = sorted(g - w, key=str)[:1], sorted(w - g, key=str)[:1]
        cols = [f"col {i}: {str(a)[:200]!r} != {str(b)[:200]!r}" for x, y in zip(extra, missing, strict=False)
                for i, (a, b) in enumerate(zip(x, y, strict=True)) if a != b]
        out.append(f"{table}: {len(g)} rows vs {len(w)} clean; {len(g - w)} differ; " + "; ".join(cols))
    return "\n".join(out)
