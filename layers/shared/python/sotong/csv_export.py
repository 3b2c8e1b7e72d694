"""CSV for spreadsheets: UTF-8 with a BOM (Excel then reads Korean as it is), CRLF lines, and no
formula injection: a cell starting with = + - @, a tab or a carriage return gets a leading
apostrophe, so Excel shows it as text and never evaluates it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

BOM = "\ufeff"
CONTENT_TYPE = "text/csv; charset=utf-8"
RISKY = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value  # a number is never a formula
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(RISKY) else text


def render(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([cell(h) for h in header])
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return BOM + out.getvalue()
