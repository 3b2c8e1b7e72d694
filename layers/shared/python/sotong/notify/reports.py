"""The messages report: per month and channel, how many messages were sent, delivered, failed
and went out by the SMS fallback.

Reads the records created in the period from the day index (gsi4 `MSGDAY#<UTC day>`, written
once with each record: `records.created_between`), never a Scan. A message counts once per
status it reached (its `events` list says which), however often a write was retried, and in the
month it was created (the hospital's month, `hospital.zone`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sotong import clock

STATUSES = ("sent", "delivered", "fallback_sent", "failed", "suppressed")
"""what the report counts, in this order; `fallback_sent` is the provider's SMS fallback of an
AlimTalk message"""

Source = Callable[[datetime, datetime], list[dict[str, Any]]]


def reached(record: Mapping[str, Any]) -> set[str]:
    """The statuses of `STATUSES` a record reached, each once (a delivered message was sent)."""
    seen = {str(e.get("status")) for e in record.get("events") or ()}
    seen.add(str(record.get("status")))
    if seen & {"delivered", "fallback_sent"}:
        seen.add("sent")
    return seen & set(STATUSES)


def _month(stamp: str, zone: ZoneInfo) -> str:
    local = clock.parse(stamp).astimezone(zone)
    return f"{local.year}-{local.month:02d}"


def summarize(records: Iterable[Mapping[str, Any]], zone: ZoneInfo) -> dict[str, Any]:
    by_channel: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATUSES, 0))
    by_month: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATUSES, 0))
    totals = dict.fromkeys(STATUSES, 0)
    count = 0
    for record in records:
        count += 1
        channel = str(record.get("channel") or "none")
        month = _month(str(record["created_at"]), zone)
        for status in reached(record):
            by_channel[channel][status] += 1
            by_month[month][status] += 1
            totals[status] += 1
    return {
        "messages": count,
        "totals": totals,
        "delivered_percent": round(100 * totals["delivered"] / totals["sent"], 1)
        if totals["sent"]
        else None,
        "by_channel": dict(sorted(by_channel.items())),
        "by_month": dict(sorted(by_month.items())),
    }


def build(
    period: str, start: datetime, end: datetime, zone: ZoneInfo, source: Source
) -> dict[str, Any]:
    return {
        "period": period,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "statuses": list(STATUSES),
        **summarize(source(start, end), zone),
    }


CSV_HEADER = ("월", "채널", "발송", "전달", "대체발송(SMS)", "실패", "발송 제외")


def csv_rows(report: Mapping[str, Any]) -> list[list[object]]:
    rows: list[list[object]] = []
    for channel, counts in report["by_channel"].items():
        rows.append([report["period"], channel, *(counts[s] for s in STATUSES)])
    rows.append([report["period"], "합계", *(report["totals"][s] for s in STATUSES)])
    for month, counts in report["by_month"].items():
        rows.append([month, "월 합계", *(counts[s] for s in STATUSES)])
    return rows
