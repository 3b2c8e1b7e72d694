"""`python -m bench [--only SUITE] [--runs N] [--function NAME] [--json]`: print the bench table."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench.core import DEFAULT_RUNS, Options, build_rows, format_table, suites

NOISE_NOTE = (
    "Machines are noisy: values are medians of fresh processes, targets run round-robin, and a\n"
    "function's cost reads best as its ratio to the floor measured in this same run."
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", action="append", default=[], metavar="SUITE", help="run only this suite"
    )
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="measured runs per row")
    parser.add_argument(
        "--warmup", type=int, default=1, help="uncounted runs first (they write .pyc files)"
    )
    parser.add_argument(
        "--function",
        action="append",
        default=[],
        metavar="NAME",
        help="limit per-function rows to this function (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--list", action="store_true", help="list the suites and exit")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")
    return args


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print("\n".join(suites()))
        return 0
    options = Options(
        runs=args.runs,
        warmup=args.warmup,
        only=tuple(args.only),
        functions=tuple(args.function),
    )
    started = time.perf_counter()
    try:
        rows = build_rows(options)
    except ValueError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    took = time.perf_counter() - started
    meta = {**machine(), "runs": options.runs, "warmup": options.warmup, "seconds": round(took, 1)}
    if args.json:
        print(json.dumps({"meta": meta, "rows": [row.as_dict() for row in rows]}, indent=2))
        return 0
    print(
        f"Sotong bench: Python {meta['python']} on {meta['platform']} ({meta['machine']}, "
        f"{meta['cpus']} CPUs); {options.runs} runs + {options.warmup} warm-up; {took:.0f} s"
    )
    print()
    print(format_table(rows))
    print()
    print(NOISE_NOTE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
