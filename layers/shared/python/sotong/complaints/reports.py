"""Monthly and quarterly complaint reports: counts by type, SLA performance and satisfaction,
the previous period beside it, a 12-month trend and the classifier's top phrases.

Reads the complaints created in the twelve months ending with the period through the inbox
indexes (gsi4 `INBOX#*#<state>`, or gsi1 `INBOX#<department>#<state>`, sorted by created_at;
one Query per state and page, never a Scan): the cost grows with the complaints of those months,
not with the table, and needs no counter on the write path (a complaint's figures change with
its status, and the record already says where it stands). Period bounds are the hospital's
months (`hospital.zone`), converted to UTC instants for the index's keys.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from itertools import pairwise
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


def month_starts(end: datetime, count: int) -> list[datetime]:
    """The first instants of the `count` months before `end` (a month start), oldest first,
    in `end`'s time zone."""
    zone = end.tzinfo
    out: list[datetime] = []
    year, month = end.year, end.month
    for _ in range(count):
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        out.append(datetime(year, month, 1, tzinfo=zone))
    return out[::-1]


def previous_period(period: str) -> str:
    """`2026-01` -> `2025-12`; `2026-Q1` -> `2025-Q4`."""
    match = _PERIOD.match(period)
    if not match:
        raise ValueError("use a month like 2026-11 or a quarter like 2026-Q4")
    year = int(match.group(1))
    if match.group(2):
        month = int(match.group(2)) - 1
        return f"{year - 1}-12" if month == 0 else f"{year}-{month:02d}"
    quarter = int(match.group(3)) - 1
    return f"{year - 1}-Q4" if quarter == 0 else f"{year}-Q{quarter}"


def percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def change(now: float | int | None, before: float | int | None) -> dict[str, Any]:
    """`now` against `before`: the difference and, when `before` is not 0, the change in %."""
    if now is None or before is None:
        return {"now": now, "before": before, "difference": None, "percent": None}
    difference = round(now - before, 2)
    return {
        "now": now,
        "before": before,
        "difference": difference,
        "percent": round(100 * difference / before, 1) if before else None,
    }


def _hours(start: str, end: str | None) -> float | None:
    if not end:
        return None
    a = clock.parse(start)
    b = clock.parse(end)
    return (b - a).total_seconds() / 3600


def complaints_in(
    complaints: ComplaintRepository,
    start: datetime,
    end: datetime,
    department: str | None = None,
) -> list[Complaint]:
    found: list[Complaint] = []
    since, until = clock.iso(start), clock.iso(end)
    scope = department or ALL_DEPARTMENTS
    for state in ("open", "resolved", "closed"):
        cursor: str | None = None
        while True:
            items, cursor = complaints.inbox(
                scope, state, limit=500, since=since, until=until, cursor=cursor
            )
            found += [i for i in items if since <= i.created_at < until]
            if not cursor:
                break
    return found


def summarize(items: list[Complaint]) -> dict[str, Any]:
    """The figures of one period's complaints (the fields `build` has always answered, plus
    the SLA percentages, the survey's answer rate and the top phrases)."""
    ack_hours = [h for i in items if (h := _hours(i.created_at, i.acknowledged_at)) is not None]
    resolve_hours = [h for i in items if (h := _hours(i.created_at, i.resolved_at)) is not None]
    acknowledged = sum(1 for i in items if i.acknowledged_at)
    ack_met = sum(1 for i in items if i.acknowledged_at and i.acknowledged_at <= i.ack_due)
    resolved = [i for i in items if i.resolved_at]
    resolve_met = sum(1 for i in resolved if i.resolved_at and i.resolved_at <= i.resolve_due)
    scores = [i.survey["score"] for i in items if i.survey]
    phrases: Counter[str] = Counter()
    for item in items:
        phrases.update(set(map(str, item.classifier.get("matched") or ())))
    return {
        "total": len(items),
        "by_kind": dict(Counter(i.kind for i in items)),
        "by_category": dict(Counter(i.category for i in items)),
        "by_urgency": dict(Counter(i.urgency for i in items)),
        "by_department": dict(Counter(i.department for i in items)),
        "by_channel": dict(Counter(i.channel for i in items)),
        "by_status": dict(Counter(i.status for i in items)),
        "acknowledged": acknowledged,
        "acknowledged_within_sla": ack_met,
        "acknowledged_within_sla_percent": percent(ack_met, len(items)),
        "resolved": len(resolved),
        "resolved_within_sla": resolve_met,
        "resolved_within_sla_percent": percent(resolve_met, len(resolved)),
        "median_hours_to_acknowledge": round(median(ack_hours), 1) if ack_hours else None,
        "median_hours_to_resolve": round(median(resolve_hours), 1) if resolve_hours else None,
        "escalated": sum(1 for i in items if i.escalations),
        "survey_answers": len(scores),
        "survey_answer_rate_percent": percent(len(scores), len(resolved)),
        "satisfaction_average": round(sum(scores) / len(scores), 2) if scores else None,
        "top_phrases": [
            {"phrase": p, "count": n}
            for p, n in sorted(phrases.items(), key=lambda pn: (-pn[1], pn[0]))[:10]
        ],
    }


COMPARED = (
    "total",
    "acknowledged_within_sla_percent",
    "resolved_within_sla_percent",
    "median_hours_to_acknowledge",
    "median_hours_to_resolve",
    "escalated",
    "satisfaction_average",
    "survey_answer_rate_percent",
)


def build(
    period: str, zone: ZoneInfo, department: str | None, complaints: ComplaintRepository
) -> dict[str, Any]:
    start, end = period_bounds(period, zone)
    months = month_starts(end, 12)
    before = previous_period(period)
    before_start, _ = period_bounds(before, zone) if int(before[:4]) in YEARS else (start, start)
    first = min(months[0], before_start)
    every = complaints_in(complaints, first, end, department)
    items = [i for i in every if clock.iso(start) <= i.created_at]
    earlier = [i for i in every if clock.iso(before_start) <= i.created_at < clock.iso(start)]
    now, then = summarize(items), summarize(earlier)
    trend = []
    bounds = [*months, end]
    for low, high in pairwise(bounds):
        lo, hi = clock.iso(low), clock.iso(high)
        inside = [i for i in every if lo <= i.created_at < hi]
        trend.append(
            {
                "month": f"{low.year}-{low.month:02d}",
                "total": len(inside),
                "resolved": sum(1 for i in inside if i.resolved_at),
                "escalated": sum(1 for i in inside if i.escalations),
            }
        )
    return {
        "period": period,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "department": department,
        **now,
        "previous": {"period": before, **{k: then[k] for k in COMPARED}},
        "compared": {k: change(now[k], then[k]) for k in COMPARED},
        "trend": trend,
    }


CSV_HEADER = ("구분", "항목", "값", "이전 기간")
_LABELS = {
    "total": "접수 건수",
    "acknowledged_within_sla_percent": "기한 내 접수확인(%)",
    "resolved_within_sla_percent": "기한 내 해결(%)",
    "median_hours_to_acknowledge": "접수확인 중앙값(시간)",
    "median_hours_to_resolve": "해결 중앙값(시간)",
    "escalated": "상향 보고 건수",
    "satisfaction_average": "만족도 평균(1~5)",
    "survey_answer_rate_percent": "설문 응답률(%)",
}
_GROUPS = {
    "by_kind": "유형별",
    "by_category": "분류별",
    "by_channel": "접수 경로별",
    "by_department": "부서별",
    "by_urgency": "긴급도별",
}


def csv_rows(report: dict[str, Any], words: dict[str, str] | None = None) -> list[list[object]]:
    """Long form: one figure a line (`words` turns the API's names into the hospital's)."""
    name = (words or {}).get
    rows: list[list[object]] = []
    for key, label in _LABELS.items():
        rows.append(["요약", label, report[key], report["previous"][key]])
    for key, label in _GROUPS.items():
        for item, count in sorted(report[key].items()):
            rows.append([label, name(item) or item, count, ""])
    for month in report["trend"]:
        rows.append(["12개월 추이", month["month"], month["total"], ""])
    for phrase in report["top_phrases"]:
        rows.append(["주요 표현", phrase["phrase"], phrase["count"], ""])
    return rows
