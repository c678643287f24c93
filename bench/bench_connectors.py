"""Every connector against its sandbox emulator: records/s and peak RSS, beside dlt's defaults.

    python bench/bench_connectors.py --size 100000                    # every vendor
    python bench/bench_connectors.py --size 100000 --vendor marketo --vendor x
    python bench/bench_connectors.py --size 20000 --only factoryline  # skip the dlt comparison
    python bench/bench_connectors.py --size 100000 --vendor hubspot --stream contacts --rate-limits

    python bench/bench_connectors.py --size 100000 --vendor hubspot --stream contacts --rate-limits --rerun

With ``--rate-limits`` the emulators enforce the vendors' published limits and the connectors pace
themselves as they would against the vendor; the table then shows, where the vendor publishes a
request rate, the share of it the run used.

Requests are counted by the emulator (429s included; ``429s`` counts those). ``requesting s`` is
the time the run was sending requests: from the first request the emulator served to the last,
both seen by polling the emulator's stats every 0.2 s from this process (so +-0.2 s). The dlt loads
between chunks and after the last page send no request: the load after the last page is outside
that span, one between chunks (streams of more than 100,000 records) inside it. ``requests/s``
is requests / requesting s: the rate the limits are about. A rolling window allows its whole
limit at once, so over a span of a few windows the share of the published rate can pass 100%
(HubSpot: 190 at the start, then 190 per 10 s).

``--rerun`` (factoryline only): after the first run the sandbox clock advances one tick (about 1%
of the records change) and the same destination runs again (incremental); it prints both runs'
requests and their ratio.

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
from dataclasses import dataclass
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


#: seconds between two looks at the emulator's request count
POLL_SECONDS = 0.2


@dataclass
class _Requests:
    """What the emulator served during one child run, seen by polling its stats."""

    total: int = 0
    rate_limited: int = 0
    first_at: float | None = None  # first poll that saw a request
    first_count: int = 0
    last_at: float | None = None  # last poll that saw the count grow
    last_count: int = 0

    def see(self, stats: dict[str, Any], now: float) -> None:
        total = int(stats["requests"])
        self.rate_limited = sum(int(r["statuses"].get("429", 0)) for r in stats["routes"].values())
        if total and self.first_at is None:
            self.first_at, self.first_count = now, total
        if total > self.total:
            self.last_at, self.last_count = now, total
        self.total = total

    @property
    def seconds(self) -> float:
        return self.last_at - self.first_at if self.first_at is not None and self.last_at is not None else 0.0

    @property
    def per_second(self) -> float:
        # both ends sampled the same way: requests between the two polls over the time between them
        return (self.last_count - self.first_count) / self.seconds if self.seconds else 0.0


def _run_child(variant: str, vendor: str, settings: dict[str, Any], workdir: Path,
               streams: list[str] | None, sb: Any) -> dict[str, Any] | None:
    workdir.mkdir(parents=True, exist_ok=True)
    sb.reset_stats(vendor)
    seen = _Requests()
    proc = subprocess.Popen([sys.executable, __file__, "--child", variant, "--vendor", vendor,
                             "--settings", json.dumps(settings), "--workdir", str(workdir),
                             *[a for s in streams or () for a in ("--stream", s)]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=workdir)
    while True:
        try:
            out, err = proc.communicate(timeout=POLL_SECONDS)
            break
        except subprocess.TimeoutExpired:
            seen.see(sb.stats(vendor), time.perf_counter())
    seen.see(sb.stats(vendor), time.perf_counter())
    if proc.returncode != 0:
        print(f"{vendor}/{variant} failed:\n{err[-2000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result.update(served=seen.total, rate_limited=seen.rate_limited, requesting=seen.seconds,
                  req_s=seen.per_second)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000, help="people in the sandbox world")
    ap.add_argument("--vendor", action="append", help="only these vendors (default: every connector)")
    ap.add_argument("--only", action="append", help="only these variants (factoryline, dlt-default)")
    ap.add_argument("--stream", action="append", help="only these streams")
    ap.add_argument("--rate-limits", action="store_true", help="emulators enforce the published limits")
    ap.add_argument("--rerun", action="store_true",
                    help="advance the sandbox one tick and run factoryline again (incremental); print both "
                         "runs' requests")
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
    reruns: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for vendor in vendors:
            with start_sandbox([vendor], size=args.size, seed=11, rate_limits=args.rate_limits) as sb:
                settings = {**sb.emulators[vendor].settings, **HISTORY.get(vendor, {}),
                            **({} if args.rate_limits else UNPACED.get(vendor, {}))}
                for v in variants:
                    r = _run_child(v, vendor, settings, Path(tmp) / vendor / v, args.stream, sb)
                    if r:
                        rows.append(r)
                    if r and args.rerun and v == "factoryline":
                        sb.advance(1)
                        again = _run_child(v, vendor, settings, Path(tmp) / vendor / v, args.stream, sb)
                        if again:
                            reruns.append((vendor, r, again))
    cmd = (f"python bench/bench_connectors.py --size {args.size}" + "".join(f" --vendor {v}" for v in args.vendor or ())
           + "".join(f" --stream {s}" for s in args.stream or ()) + (" --rate-limits" if args.rate_limits else "")
           + (" --rerun" if args.rerun else ""))
    print(f"\nFirst full run of each connector against its sandbox emulator, world of {args.size:,} people ({cmd})")
    print(f"{'vendor':<10} {'variant':<12} {'records':>10} {'requests':>9} {'429s':>5} {'seconds':>8} "
          f"{'records/s':>10} {'requesting s':>12} {'requests/s':>11} {'of allowed':>10} {'peak RSS MB':>12} "
          f"{'speed vs dlt':>13} {'RSS vs dlt':>11}")
    by = {(r["vendor"], r["variant"]): r for r in rows}
    for r in rows:
        base = by.get((r["vendor"], "dlt-default"))
        speed = f"{r['rps'] / base['rps']:.1f}x" if base and r is not base and base["rps"] else "-"
        rss = f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}x" if base and r is not base else "-"
        # requests as the emulator counted them, over the time it saw them come (see the docstring)
        req_s = r["req_s"]
        allowed = ALLOWED_RPS.get(r["vendor"]) if args.rate_limits else None
        share = f"{req_s / allowed:.0%}" if allowed else "-"
        print(f"{r['vendor']:<10} {r['variant']:<12} {r['records']:>10,} {r['served']:>9,} {r['rate_limited']:>5,} "
              f"{r['seconds']:>8.1f} {r['rps']:>10,.0f} {r['requesting']:>12.1f} {req_s:>11.1f} {share:>10} "
              f"{r['peak_rss_mb']:>12,.0f} {speed:>13} {rss:>11}")
    for vendor, first, again in reruns:
        ratio = again["served"] / first["served"] if first["served"] else 0.0
        print(f"\n{vendor} re-run after one sandbox tick: {again['served']:,} requests ({again['rate_limited']} 429s), "
              f"{again['records']:,} records, {again['seconds']:.1f} s; full run {first['served']:,} requests: "
              f"{ratio:.2%} of the full run's requests")


if __name__ == "__main__":
    main()
