"""In-process CPU of ``World.person`` and of the journeys (events, touches, orders), and a digest of
everything they produce, to compare source trees.

    git archive <rev> | tar -x -C /tmp/jw_old     # an older tree, to compare in the same run:
    /work/venv/bin/python bench/bench_journeys.py --rounds 5 --tree /tmp/jw_old --tree .
    /work/venv/bin/python bench/bench_journeys.py --hash --tree /tmp/jw_old --tree .

Timing: each round runs one child process per ``--tree`` in turn (``PYTHONPATH`` = the tree) on a
world of ``--size`` people (seed 7, tick 0 on 2026-01-01 then 3 hourly ticks, served at tick 3),
over ``--sample`` people (pages of 100 consecutive people spread over the population), and prints the process CPU
(``time.process_time``) per 100,000 people of: ``World.person``; ``Journeys._base_events``;
``Journeys._tick_events``; ``Journeys._touches`` (base events sorted, tick events, Touch records);
``Journeys._orders`` (with touches built inside when a buyer needs them). The machine is shared:
compare trees within one run, over several rounds (the table's last lines are medians).

``--hash``: a SHA-256 per tree over the ``repr`` of every person (every field, at the served tick
and at tick 0), its ``_base_events`` (in the order built), ``_tick_events``, touches and orders, for
every person ``0 .. count - 1`` of worlds of ``--hash-sizes`` people, seeds 5, 7 and 11, at tick 0,
after 3 ticks and after 3 ticks of a growing world; plus every campaign, company and deal, each
person's email system, handle, shop email and guest flag, the base mentions of 12 windows and
(at 1,000 people) ``people_touched_since`` and ``people_with_orders_since``. The same digest from
two trees means identical results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR_MS = 3_600_000
PARTS = ("person", "base_events", "tick_events", "touches", "orders")


def _load(tree: Path) -> tuple[type, type]:
    sys.path.insert(0, str(tree))
    import sandbox.journeys
    import sandbox.world

    here = Path(sandbox.world.__file__).resolve()
    assert here.is_relative_to(tree.resolve()), f"imported {here}, not from {tree}"
    return sandbox.world.World, sandbox.journeys.Journeys


def worker_bench(tree: Path, size: int, sample: int) -> dict[str, float]:
    World, Journeys = _load(tree)
    w = World(seed=7, size=size, ticks=[T0 + k * HOUR_MS for k in range(4)])
    j = Journeys(w)
    t = w.tick
    # pages of 100 consecutive people (as emulators serve them) spread over the population
    pages = max(1, sample // 100)
    stride = max(100, w.people.count(t) // pages // 100 * 100)
    idxs = [i for b in range(0, w.people.count(t), stride) for i in range(b, min(b + 100, w.people.count(t)))]
    scale = 100_000 / len(idxs)
    out: dict[str, float] = {}
    c = time.process_time()
    people = [w.person(i) for i in idxs]
    out["person"] = (time.process_time() - c) * scale
    c = time.process_time()
    for p in people:
        j._base_events(p)
    out["base_events"] = (time.process_time() - c) * scale
    c = time.process_time()
    for p in people:
        j._tick_events(p, t)
    out["tick_events"] = (time.process_time() - c) * scale
    c = time.process_time()
    for p in people:
        j._touches(p, t)
    out["touches"] = (time.process_time() - c) * scale
    c = time.process_time()
    for p in people:
        j._orders(p, t)
    out["orders"] = (time.process_time() - c) * scale
    return out


def worker_hash(tree: Path, sizes: list[int], seeds: list[int]) -> str:
    World, Journeys = _load(tree)
    digest = hashlib.sha256()

    def put(x: object) -> None:
        digest.update(repr(x).encode())
        digest.update(b"\n")

    for size in sizes:
        for seed in seeds:
            for ticks, grow in ((0, False), (3, False), (3, True)):
                w = World(seed=seed, size=size, ticks=[T0 + k * HOUR_MS for k in range(ticks + 1)], grow=grow)
                j = Journeys(w)
                t = w.tick
                put((size, seed, ticks, grow, w.people.count(t)))
                put([j.campaign(c) for c in range(j.campaign_count())])
                put([j.campaign_slug(c) for c in range(j.campaign_count())])
                put([w.company(c) for c in range(w.companies.count(t))])
                put([w.deal(d) for d in range(w.deals.count(t))])
                for i in range(w.people.count(t)):
                    p = w.person(i)
                    put(p)
                    if t:
                        put(w.person(i, 0) if i < w.people.base_count else None)
                    put(j._base_events(p))
                    put(j._tick_events(p, t))
                    touches = j._touches(p, t)
                    put(touches)
                    put(j._orders(p, t, touches))
                    put((j.email_system(i), j.social_handle(i), j.crm_knows_handle(i), j.shop_email(i, p),
                         j.shop_email(i, p, guest=True), j.is_guest_buyer(i)))
                span = w.ticks[0] - 400 * 86_400_000
                for n in range(12):
                    lo = span + n * 37 * 86_400_000
                    put(sorted(j.base_mentions_between(lo, lo + 9 * 86_400_000)))
                if size <= 1000:
                    for since in (w.ticks[0] - 200 * 86_400_000, w.ticks[0] - 86_400_000, w.ticks[-1]):
                        put(list(j.people_touched_since(since)))
                        put(list(j.people_with_orders_since(since)))
                    put([j._last_touch_ms(i, t) for i in range(w.people.count(t))])
    return digest.hexdigest()


def _run(tree: Path, args: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--tree", str(tree), *args]
    return subprocess.run(cmd, env=env, cwd=tree, check=True, capture_output=True, text=True).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--sample", type=int, default=20_000, help="people timed per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hash", action="store_true", help="digest of everything built (not timed)")
    ap.add_argument("--hash-sizes", default="1000,100000")
    ap.add_argument("--seeds", default="5,7,11")
    ap.add_argument("--tree", action="append", type=Path, help="source tree (repeatable)")
    ap.add_argument("--worker", choices=("bench", "hash"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    trees = args.tree or [ROOT]
    sizes = [int(s) for s in args.hash_sizes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.worker == "bench":
        print(json.dumps(worker_bench(trees[0], args.size, args.sample)))
        return
    if args.worker == "hash":
        print(worker_hash(trees[0], sizes, seeds))
        return
    if args.hash:
        for tree in trees:
            started = time.perf_counter()
            dig = _run(tree, ["--worker", "hash", "--hash-sizes", args.hash_sizes, "--seeds", args.seeds]).strip()
            print(f"{str(tree)[-28:]:<28} sizes {args.hash_sizes} seeds {args.seeds}: {dig} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        return
    results: dict[Path, list[dict[str, float]]] = {tree: [] for tree in trees}
    print(f"{'round':>5} {'tree':<28} " + " ".join(f"{p:>12}" for p in PARTS) + "   (CPU s per 100k people)")
    for r in range(args.rounds):
        for tree in trees:
            row = json.loads(_run(tree, ["--worker", "bench", "--size", str(args.size), "--sample",
                                         str(args.sample)]))
            results[tree].append(row)
            print(f"{r:>5} {str(tree)[-28:]:<28} " + " ".join(f"{row[p]:>12.3f}" for p in PARTS), flush=True)
    for tree in trees:
        print(f"{'med':>5} {str(tree)[-28:]:<28} "
              + " ".join(f"{statistics.median(x[p] for x in results[tree]):>12.3f}" for p in PARTS))
    print("reproduce: /work/venv/bin/python bench/bench_journeys.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
