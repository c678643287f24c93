"""``python -m sandbox serve --size N --seed S --state-dir D``: run the emulators in the foreground."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sandbox.api import serve_forever
from sandbox.faults import FaultRule


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve vendor emulators on 127.0.0.1 until interrupted")
    serve.add_argument("--vendor", action="append", dest="vendors",
                       help="emulator to start (repeatable; default: all registered)")
    serve.add_argument("--size", type=int, default=2000, help="people in the world (default 2000)")
    serve.add_argument("--seed", type=int, default=7)
    serve.add_argument("--state-dir", type=Path, default=None,
                       help="folder keeping the world's clock, so the next run sees it advanced")
    serve.add_argument("--port-base", type=int, default=0,
                       help="first port; emulators get consecutive ports in name order (default: any free)")
    serve.add_argument("--rate-limits", action="store_true", help="enforce the vendors' published rate limits")
    serve.add_argument("--faults", default="", help='JSON list of fault rules, e.g. \'[{"kind":"rate_limit","at":3}]\'')
    serve.add_argument("--grow", action="store_true", help="each tick also creates 0.5%% new records")
    serve.add_argument("--ready-json", action="store_true", help="print one JSON line describing the emulators")
    serve.add_argument("--watch-stdin", action="store_true", help="exit when standard input closes")
    args = parser.parse_args(argv)
    faults = [FaultRule.from_json(r) for r in json.loads(args.faults)] if args.faults else []
    serve_forever(args.vendors, size=args.size, seed=args.seed, state_dir=args.state_dir,
                  rate_limits=args.rate_limits, faults=faults, port_base=args.port_base,
                  ready_json=args.ready_json, watch_stdin=args.watch_stdin, grow=args.grow)
    return 0


if __name__ == "__main__":
    sys.exit(main())
