"""Benchmarks: `make bench` (or `python -m bench`) prints one table of rows.

A suite is a function that returns rows; it registers itself with `@suite("name")` in a module of
this package, and every module here (except `core` and private ones) is imported to find them.
Machines are noisy: suites report medians of several runs and, where they can, ratios to a floor
measured in the same run, so numbers from two machines or two days compare by their ratios.
"""

from bench.core import Options, Row, build_rows, format_table, suite

__all__ = ["Options", "Row", "build_rows", "format_table", "suite"]
