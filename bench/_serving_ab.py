"""Shared parts of the bench_*_serving.py A/B benchmarks: a sandbox server per source tree (on a
fixed clock when asked), its CPU seconds from /proc, rounds alternated over the trees, and the
result table. Each script keeps its vendor's readers and command line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start(tree: Path, vendor: str, size: int, seed: int, ticks: int | None,
          state: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """``python -m sandbox serve`` for ``vendor`` from ``tree``; the process and its ready entry
    (``settings``, ``base_url``, ...). ``ticks`` not None: a fixed clock (tick 0 at 2026-01-01,
    one tick a day) in ``state``, so every run serves the same bodies; None: a new world, now."""
    tree = tree.resolve()  # cwd and PYTHONPATH both name the tree, whatever the caller's cwd
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "sandbox", "serve", "--size", str(size), "--seed", str(seed), "--vendor", vendor,
           "--ready-json", "--watch-stdin"]
    if ticks is not None:
        state.mkdir(parents=True, exist_ok=True)
        at = [f"2026-01-{d + 1:02d}T00:00:00.000Z" for d in range(ticks + 1)]
        (state / "world.json").write_text(json.dumps({"seed": seed, "size": size, "grow": False, "ticks": at}))
        cmd += ["--state-dir", str(state)]
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            info: dict[str, Any] = json.loads(line)[vendor]
            return proc, info
    stop(proc)
    raise RuntimeError(f"sandbox from {tree} did not start")


def stop(proc: subprocess.Popen[str]) -> None:
    """Close the server's stdin (``--watch-stdin`` exits on it); kill it after 10 s."""
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Row:
    """One read of one tree in one round."""

    round: int
    tree: str
    records: int
    cpu: float  # the server's CPU seconds during the read
    wall: float
    digest: str  # the first 16 hex digits, or "-" without --hash
    rss_mb: float = 0.0  # the server's peak RSS (when measured)


#: a read: the server's ready entry and the digest to feed (None without --hash) -> records read
Reader = Callable[[dict[str, Any], Any], int]


def run_rounds(vendor: str, trees: list[Path], rounds: int, size: int, seed: int, ticks: int | None,
               hashed: bool, read: Reader, rss: bool = False) -> list[Row]:
    """``rounds`` rounds, each serving from every tree in turn (alternated, so a shared machine's
    load falls on all of them alike) and timing one ``read`` against it."""
    rows: list[Row] = []
    tmp = tempfile.mkdtemp(prefix=f"bench-{vendor}-")
    for r in range(rounds):
        for tree in trees:
            proc, info = start(tree, vendor, size, seed, ticks, Path(tmp) / f"state{r}-{len(rows)}")
            try:
                before = cpu_seconds(proc.pid)
                wall = time.perf_counter()
                digest = hashlib.sha256() if hashed else None
                n = read(info, digest)
                wall = time.perf_counter() - wall
                cpu = cpu_seconds(proc.pid) - before
                peak = peak_rss_mb(proc.pid) if rss else 0.0
            finally:
                stop(proc)
            rows.append(Row(r, str(tree), n, cpu, wall, digest.hexdigest()[:16] if digest else "-", peak))
    return rows


def print_table(rows: list[Row], script: str, unit: str = "records", rss: bool = False) -> None:
    """The rows (CPU per 100,000 ``unit``), then the command line that reproduces them."""
    extra = f" {'peak RSS':>9}" if rss else ""
    print(f"{'round':>5} {'tree':<28} {unit:>8} {'server cpu s':>12} {'cpu s/100k':>10} {'wall s':>7}{extra}  digest")
    for row in rows:
        extra = f" {row.rss_mb:>6.0f} MB" if rss else ""
        print(f"{row.round:>5} {row.tree[-28:]:<28} {row.records:>8} {row.cpu:>12.2f} "
              f"{row.cpu / max(row.records, 1) * 100_000:>10.2f} {row.wall:>7.1f}{extra}  {row.digest}")
    print(f"reproduce: /work/venv/bin/python bench/{Path(script).name} " + " ".join(sys.argv[1:]))
