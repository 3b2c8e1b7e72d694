"""Rows, the suite registry, statistics and the plain-text table."""

from __future__ import annotations

import contextlib
import importlib
import io
import math
import pkgutil
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_RUNS = 7


@dataclass(frozen=True)
class Options:
    runs: int = DEFAULT_RUNS
    warmup: int = 1
    only: tuple[str, ...] = ()
    """suite names to run; empty: all"""
    functions: tuple[str, ...] = ()
    """function names (sotong.resources.FUNCTIONS) a suite should limit itself to; empty: all"""


@dataclass(frozen=True)
class Row:
    suite: str
    name: str
    value: float | None
    """None when there is nothing to measure (missing module, failed run): `note` says why"""
    unit: str
    note: str = ""
    stats: dict[str, float | int | str | None] = field(default_factory=dict)
    """machine-readable details for --json (median, p90, min, runs, ratio, ...)"""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Suite = Callable[[Options], list[Row]]
_SUITES: dict[str, Suite] = {}
_NOT_SUITES = frozenset({"core"})


def suite(name: str) -> Callable[[Suite], Suite]:
    """Register a suite: a function from Options to rows."""

    def register(function: Suite) -> Suite:
        if name in _SUITES and _SUITES[name] is not function:
            raise ValueError(f"benchmark suite {name!r} is registered twice")
        _SUITES[name] = function
        return function

    return register


def suites() -> dict[str, Suite]:
    """Every suite in the package, in the order their modules sort."""
    import bench

    for module in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        if not module.name.startswith("_") and module.name not in _NOT_SUITES:
            importlib.import_module(f"bench.{module.name}")
    return dict(_SUITES)


def build_rows(options: Options) -> list[Row]:
    available = suites()
    unknown = sorted(set(options.only) - set(available))
    if unknown:
        raise ValueError(
            f"unknown suite(s): {', '.join(unknown)}; known: {', '.join(sorted(available))}"
        )
    rows: list[Row] = []
    for name, run in available.items():
        if not options.only or name in options.only:
            # The functions a suite runs in-process print their Powertools metric (EMF) lines
            # and log lines to stdout; the bench prints its table only.
            with contextlib.redirect_stdout(_Discard()):
                rows.extend(run(options))
    return rows


class _Discard(io.TextIOBase):
    """A stdout that drops what is written (a logger may keep it after its suite ended)."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


# --- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: with few runs it is one of the values)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float | int | str | None]:
    return {
        "median": round(statistics.median(values), 2),
        "p90": round(percentile(values, 0.9), 2),
        "min": round(min(values), 2),
        "runs": len(values),
    }


# --- output ----------------------------------------------------------------------------------


def _value(row: Row) -> str:
    if row.value is None:
        return "-"
    return f"{row.value:,.0f}" if abs(row.value) >= 100 else f"{row.value:,.1f}"


def format_table(rows: Iterable[Row]) -> str:
    header = ("suite", "name", "value", "unit", "note")
    cells = [header] + [(r.suite, r.name, _value(r), r.unit, r.note) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    right = {2}  # numbers line up on the right

    def render(line: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(line) for line in cells[1:])])
