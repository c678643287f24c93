"""Every connector against its sandbox emulator: records/s and peak RSS, beside dlt's defaults.

    python bench/bench_connectors.py --size 100000                    # every vendor
    python bench/bench_connectors.py --size 100000 --vendor marketo --vendor x
    python bench/bench_connectors.py --size 20000 --only factoryline  # skip the dlt comparison
    python bench/bench_connectors.py --size 100000 --vendor hubspot --stream contacts --rate-limits

With ``--rate-limits`` the emulators enforce the vendors' published limits and the connectors pace
themselves as they would against the vendor; the table then shows requests/s and, where the vendor
publishes a request rate, its share of that rate.

For each vendor one sandbox world of ``--size`` people is served (in a child process, one core),
and each variant runs in its own child process so its peak RSS is its own:
  factoryline   a first full run of every stream: raw + canonical + rejects + provenance
  dlt-default   the same connector's pages, records handed to dlt one by one with its defaults
                (merge on the stream's key when it is a top-level field, else append)

The factoryline variant also derives identity, lifecycle and attribution at the end of the run;
dlt-default loads the raw records only. The machine is shared and noisy: compare the ratio of the
same run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
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

#: settings that turn off client-side pacing to the vendors' published limits: the sandbox runs
#: without limits here, and every variant reads with the same settings
UNPACED: dict[str, dict[str, str]] = {
    "hubspot": {"pace": "false", "search_requests_per_second": "0"},
}

#: settings every variant reads with, limits or not: X backfills its history through full-archive
#: search (recent search alone holds 7 days, far from 100,000 posts)
HISTORY: dict[str, dict[str, str]] = {"x": {"archive_start": "all"}}


#: published request rates (requests/s) the emulators enforce with --rate-limits
ALLOWED_RPS: dict[str, float] = {
    "hubspot": 190 / 10,   # X-HubSpot-RateLimit: 190 requests per 10 s (Professional/Enterprise apps)
    "marketo": 100 / 20,   # 100 calls per 20 s
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dlt_default(vendor: str, settings: dict[str, Any], workdir: Path,
                 streams: list[str] | None) -> tuple[int, int]:
    import dlt

    from core.connector import RunContext
    from core.plugins import get_registry
    from pipelines.config import resolve_config

    spec = get_registry().connector(vendor)
    connector = spec.factory(resolve_config(spec, settings))
    ctx = RunContext(run_id="bench", started_at=datetime.now(UTC))
    counts = {"records": 0, "requests": 0}

    def resource_for(stream: Any) -> Any:
        # merge on the stream's key when dlt can name it (a top-level field), else append
        hints: dict[str, Any] = ({"write_disposition": "merge", "primary_key": stream.primary_key}
                                 if "." not in stream.primary_key else {"write_disposition": "append"})

        @dlt.resource(name=stream.name, **hints)
        def records() -> Any:
            for page in connector.extract(stream, {}, ctx):
                counts["records"] += len(page.records)
                counts["requests"] += page.requests
                yield from page.records
        return records

    pipeline = dlt.pipeline(f"bench_dlt_{vendor}", pipelines_dir=str(workdir / "dlt"),
                            destination=dlt.destinations.duckdb(str(workdir / "dlt.duckdb")), dataset_name="bench")
    try:
        pipeline.run([resource_for(s) for s in spec.streams if not streams or s.name in streams])
    finally:
        connector.close()
    return counts["records"], counts["requests"]


def child(variant: str, vendor: str, settings: dict[str, Any], workdir: Path,
          streams: list[str] | None) -> dict[str, Any]:
    start = time.perf_counter()
    if variant == "factoryline":
        from pipelines.destination import Target
        from pipelines.run import run

        status = run([vendor], target=Target(db_path=workdir / "fl.duckdb"), overrides={vendor: settings},
                     streams=streams)
        if status.status != "success":
            raise SystemExit(f"{vendor} run ended {status.status}: {status.errors}")
        records = sum(s.records for s in status.streams)
        requests = sum(s.requests for s in status.streams)
        # the streams' own time: reading and mapping, without the loads and the derivation
        extracting = sum(s.seconds for s in status.streams)
    else:
        records, requests = _dlt_default(vendor, settings, workdir, streams)
        extracting = 0.0
    seconds = time.perf_counter() - start
    return {"variant": variant, "vendor": vendor, "records": records, "requests": requests, "seconds": seconds,
            "extracting": extracting,
            "rps": records / seconds if seconds else 0.0, "peak_rss_mb": _peak_rss_mb()}


def _run_child(variant: str, vendor: str, settings: dict[str, Any], workdir: Path,
               streams: list[str] | None) -> dict[str, Any] | None:
    workdir.mkdir(parents=True)
    proc = subprocess.run([sys.executable, __file__, "--child", variant, "--vendor", vendor,
                           "--settings", json.dumps(settings), "--workdir", str(workdir),
                           *[a for s in streams or () for a in ("--stream", s)]],
                          capture_output=True, text=True, cwd=workdir)
    if proc.returncode != 0:
        print(f"{vendor}/{variant} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000, help="people in the sandbox world")
    ap.add_argument("--vendor", action="append", help="only these vendors (default: every connector)")
    ap.add_argument("--only", action="append", help="only these variants (factoryline, dlt-default)")
    ap.add_argument("--stream", action="append", help="only these streams")
    ap.add_argument("--rate-limits", action="store_true", help="emulators enforce the published limits")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--settings", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.vendor[0], json.loads(args.settings), Path(args.workdir),
                               args.stream)))
        return

    from core.plugins import get_registry
    from sandbox.api import start_sandbox

    registry = get_registry()
    vendors = args.vendor or sorted(n for n in registry.connectors if n in registry.emulators)
    variants = args.only or ["factoryline", "dlt-default"]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for vendor in vendors:
            with start_sandbox([vendor], size=args.size, seed=11, rate_limits=args.rate_limits) as sb:
                settings = {**sb.emulators[vendor].settings, **HISTORY.get(vendor, {}),
                            **({} if args.rate_limits else UNPACED.get(vendor, {}))}
                for v in variants:
                    r = _run_child(v, vendor, settings, Path(tmp) / vendor / v, args.stream)
                    if r:
                        rows.append(r)
    cmd = (f"python bench/bench_connectors.py --size {args.size}" + "".join(f" --vendor {v}" for v in args.vendor or ())
           + "".join(f" --stream {s}" for s in args.stream or ()) + (" --rate-limits" if args.rate_limits else ""))
    print(f"\nFirst full run of each connector against its sandbox emulator, world of {args.size:,} people ({cmd})")
    print(f"{'vendor':<10} {'variant':<12} {'records':>10} {'requests':>9} {'seconds':>8} {'records/s':>10} "
          f"{'reading s':>9} {'requests/s':>11} {'of allowed':>10} {'peak RSS MB':>12} {'speed vs dlt':>13} "
          f"{'RSS vs dlt':>11}")
    by = {(r["vendor"], r["variant"]): r for r in rows}
    for r in rows:
        base = by.get((r["vendor"], "dlt-default"))
        speed = f"{r['rps'] / base['rps']:.1f}x" if base and r is not base and base["rps"] else "-"
        rss = f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}x" if base and r is not base else "-"
        # dlt-default interleaves the streams' generators, so a connector's per-page request counts
        # (deltas of one counter) overlap there: requests are the factoryline variant's only
        if r["variant"] != "factoryline":
            r["requests"] = 0
        # the request rate while the streams read (the loads in between send no requests)
        req_s = r["requests"] / r["extracting"] if r.get("extracting") else 0.0
        allowed = ALLOWED_RPS.get(r["vendor"]) if args.rate_limits else None
        share = f"{req_s / allowed:.0%}" if allowed else "-"
        print(f"{r['vendor']:<10} {r['variant']:<12} {r['records']:>10,} {r['requests']:>9,} {r['seconds']:>8.1f} "
              f"{r['rps']:>10,.0f} {r.get('extracting', 0.0):>9.1f} {req_s:>11.1f} {share:>10} "
              f"{r['peak_rss_mb']:>12,.0f} {speed:>13} {rss:>11}")


if __name__ == "__main__":
    main()
