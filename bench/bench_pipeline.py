"""HubSpot contacts from the sandbox into DuckDB, three ways in one run.

    python bench/bench_pipeline.py --n 100000            # the table in the closing note
    python bench/bench_pipeline.py --n 1000000 --only factoryline

Variants (each in its own child process, so peak RSS is its own; all read the same pages from the
same sandbox emulator through the same HubSpot connector):
  factoryline   raw + canonical person rows + provenance, Arrow batches, parquet (the loading
                only: the derivation a run does at its end -- identity, lifecycle, attribution --
                is switched off here unless FACTORYLINE_DERIVE=1 is set; bench_connectors.py includes it)
  dlt-default   the raw record dicts handed to dlt with its defaults for DuckDB
  dlt-tuned     the same dicts, dlt's best dict profile: whole pages as items, parquet loader,
                no compression, large buffers, 2 normalize workers

Prints records/s, peak RSS and ratios. The machine is shared and noisy: compare ratios of the
same run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pages(settings: dict[str, Any]) -> Any:
    """The raw record pages of the contacts stream, read by the real connector (first run)."""
    from core.connector import RunContext
    from core.plugins import get_registry
    from pipelines.config import resolve_config

    spec = get_registry().connector("hubspot")
    connector = spec.factory(resolve_config(spec, settings))
    ctx = RunContext(run_id="bench", started_at=datetime.now(UTC))
    try:
        yield from connector.extract(spec.stream("contacts"), {}, ctx)
    finally:
        connector.close()


def child(variant: str, settings: dict[str, Any], workdir: Path) -> dict[str, Any]:
    import dlt

    start = time.perf_counter()
    if variant == "factoryline":
        os.environ.setdefault("FACTORYLINE_DERIVE", "0")  # dlt's variants derive nothing either
        from pipelines.destination import Target
        from pipelines.run import run

        status = run(["hubspot"], target=Target(db_path=workdir / "fl.duckdb"), overrides={"hubspot": settings},
                     streams=["contacts"])
        assert status.status == "success", status.as_dict()
        records = status.streams[0].records
    else:
        if variant == "dlt-tuned":
            os.environ.update({
                "DATA_WRITER__DISABLE_COMPRESSION": "true",
                "DATA_WRITER__BUFFER_MAX_ITEMS": "50000",
                "NORMALIZE__WORKERS": "2",
                "NORMALIZE__DATA_WRITER__DISABLE_COMPRESSION": "true",
            })
        count = 0

        @dlt.resource(name="contacts", write_disposition="merge", primary_key="id")
        def contacts() -> Any:
            nonlocal count
            for page in _pages(settings):
                count += len(page.records)
                if variant == "dlt-tuned":
                    yield page.records
                else:
                    yield from page.records

        pipeline = dlt.pipeline(f"bench_{variant.replace('-', '_')}", pipelines_dir=str(workdir / "dlt"),
                                destination=dlt.destinations.duckdb(str(workdir / f"{variant}.duckdb")),
                                dataset_name="bench")
        pipeline.run(contacts(), loader_file_format="parquet" if variant == "dlt-tuned" else None)
        records = count
    seconds = time.perf_counter() - start
    return {"variant": variant, "records": records, "seconds": seconds, "rps": records / seconds,
            "peak_rss_mb": _peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="contacts in the sandbox world")
    ap.add_argument("--only", action="append", help="run only these variants")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--settings", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, json.loads(args.settings), Path(args.workdir))))
        return

    from sandbox.api import start_sandbox

    variants = args.only or ["factoryline", "dlt-default", "dlt-tuned"]
    results = []
    with start_sandbox(["hubspot"], size=args.n, seed=11) as sb, tempfile.TemporaryDirectory() as tmp:
        # The sandbox enforces no limits here; pacing to HubSpot's published 190 requests/10 s would
        # measure the vendor's quota, not the pipeline. Every variant reads with the same settings.
        settings = {**sb.emulators["hubspot"].settings, "pace": "false", "search_requests_per_second": "0"}
        for v in variants:
            workdir = Path(tmp) / v
            workdir.mkdir()
            proc = subprocess.run([sys.executable, __file__, "--child", v, "--settings", json.dumps(settings),
                                   "--workdir", str(workdir)], capture_output=True, text=True, cwd=workdir)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"variant {v} failed")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = {r["variant"]: r for r in results}
    fl = base.get("factoryline")
    print(f"\nHubSpot contacts from the sandbox -> DuckDB, N={args.n:,} (python bench/bench_pipeline.py --n {args.n})")
    print(f"{'variant':<12} {'records':>9} {'seconds':>8} {'records/s':>10} {'peak RSS MB':>12} {'factoryline x':>14}")
    for r in results:
        ratio = f"{fl['rps'] / r['rps']:.1f}x" if fl and r is not fl else "-"
        print(f"{r['variant']:<12} {r['records']:>9,} {r['seconds']:>8.1f} {r['rps']:>10,.0f} "
              f"{r['peak_rss_mb']:>12,.0f} {ratio:>14}")


if __name__ == "__main__":
    main()
