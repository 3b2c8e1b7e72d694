"""Monthly and quarterly complaint reports: counts by type, SLA performance and satisfaction.

Reads the complaints created in the period through the inbox index (one Query per state and
page): the cost grows with the complaints in the period, not with the table.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from sotong import clock
from sotong.complaints.record import Complaint
from sotong.complaints.repository import ALL_DEPARTMENTS, ComplaintRepository
from sotong.errors import BadRequest

_PERIOD = re.compile(r"^(\d{4})-(?:(0[1-9]|1[0-2])|Q([1-4]))$")
# Years whose bounds survive the conversion to UTC (year 1 in Seoul is year 0 in UTC, which
# datetime cannot hold; 9999-12 ends in year 10000).
YEARS = range(1970, 9999)


def period_bounds(period: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """`2026-11` or `2026-Q4` -> [start, end) in the hospital's time zone."""
    match = _PERIOD.match(period)
    if not match:
        raise ValueError("use a month like 2026-11 or a quarter like 2026-Q4")
    year = int(match.group(1))
    if year not in YEARS:
        raise BadRequest(
            f"query.period: the year must be {YEARS.start} to {YEARS.stop - 1}",
            field="query.period",
        )
    if match.group(2):
        first, months = int(match.group(2)), 1
    else:
        first, months = (int(match.group(3)) - 1) * 3 + 1, 3
    start = datetime(year, first, 1, tzinfo=zone)
    last = first + months
    end = datetime(year + (last - 1) // 12, (last - 1) % 12 + 1, 1, tzinfo=zone)
    return start, end


def _hours(start: str, end: str | None) -> float | None:
    if not end:
        return None
    a = clock.parse(start)
    b = clock.parse(end)
    return (b - a).total_seconds() / 3600


def complaints_in(
    complaints: ComplaintRepository, start: datetime, end: datetime
) -> list[Complaint]:
    found: list[Complaint] = []
    since, until = clock.iso(start), clock.iso(end)
    for state in ("open", "resolved", "closed"):
        cursor: str | None = None
        while True:
            items, cursor = complaints.inbox(
                ALL_DEPARTMENTS, state, limit=500, since=since, until=until, cursor=cursor
            )
            found += [i for i in items if since <= i.created_at < until]
            if not cursor:
                break
    return found


def build(
    period: str, zone: ZoneInfo, department: str | None, complaints: ComplaintRepository
) -> dict[str, Any]:
    start, end = period_bounds(period, zone)
    items = complaints_in(complaints, start, end)
    if department:
        items = [i for i in items if i.department == department]
    ack_hours = [h for i in items if (h := _hours(i.created_at, i.acknowledged_at)) is not None]
    resolve_hours = [h for i in items if (h := _hours(i.created_at, i.resolved_at)) is not None]
    ack_met = sum(1 for i in items if i.acknowledged_at and i.acknowledged_at <= i.ack_due)
    resolved = [i for i in items if i.resolved_at]
    resolve_met = sum(1 for i in resolved if i.resolved_at and i.resolved_at <= i.resolve_due)
    scores = [i.survey["score"] for i in items if i.survey]
    return {
        "period": period,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "department": department,
        "total": len(items),
        "by_kind": dict(Counter(i.kind for i in items)),
        "by_category": dict(Counter(i.category for i in items)),
        "by_urgency": dict(Counter(i.urgency for i in items)),
        "by_department": dict(Counter(i.department for i in items)),
        "by_channel": dict(Counter(i.channel for i in items)),
        "by_status": dict(Counter(i.status for i in items)),
        "acknowledged_within_sla": ack_met,
        "resolved": len(resolved),
        "resolved_within_sla": resolve_met,
        "median_hours_to_acknowledge": round(median(ack_hours), 1) if ack_hours else None,
        "median_hours_to_resolve": round(median(resolve_hours), 1) if resolve_hours else None,
        "escalated": sum(1 for i in items if i.escalations),
        "survey_answers": len(scores),
        "satisfaction_average": round(sum(scores) / len(scores), 2) if scores else None,
    }
