"""The recall report per treatment tag: of the touchpoints due in the period, how many were
sent, cancelled (and why), answered, converted, and the return rate beside the dental band.

No Scan and no counter on the write path: the treatments of a tag come from the tag index
(gsi1 `TAG#<tag>`, by treatment date) over the dates whose plan steps can fall due in the
period (the tag's longest offset before it, a day after it), then each patient's touchpoints
and conversation from their own partition. A touchpoint counts once, by its status now; the
cost grows with the tag's treatments of those dates, not with the table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sotong import clock
from sotong.recall.repository import PatientRepository

BAND = {"typical_low": 55.0, "typical_high": 65.0, "best": 85.0}
"""what dental practices bring back of the patients due (%): most 55-65, the best 85+"""
SENT = ("queued", "converted")


def reason_of(reason: str | None) -> str:
    """A cancellation's reason as the report counts it: the `cancel_if` condition, or `staff`
    for one a staff member cancelled (the stored reason names them)."""
    if not reason:
        return "unknown"
    return "staff" if reason.startswith("cancelled by ") else reason


def band_position(rate: float | None) -> str | None:
    """Where the hospital's return rate stands against `BAND`."""
    if rate is None:
        return None
    if rate >= BAND["best"]:
        return "best"
    if rate > BAND["typical_high"]:
        return "above_typical"
    if rate >= BAND["typical_low"]:
        return "typical"
    return "below_typical"


def tag_report(
    tag: str, start: datetime, end: datetime, lookback_days: int, patients: PatientRepository
) -> dict[str, Any]:
    page = patients.tag_index(
        tag,
        on_or_after=(start - timedelta(days=lookback_days + 1)).date(),
        before=(end + timedelta(days=2)).date(),
    )
    due = []
    for patient_id in dict.fromkeys(ref.patient_id for ref in page.refs):
        due += [
            t
            for t in patients.touchpoints(patient_id)
            if t.tag == tag and t.status != "skipped" and start <= clock.parse(t.due_at) < end
        ]
    ids = {t.id for t in due}
    replied: set[str] = set()
    replies = 0
    for patient_id in dict.fromkeys(t.patient_id for t in due):
        for message in patients.conversation(patient_id):
            if message.direction == "in" and message.touchpoint in ids:
                replies += 1
                replied.add(message.touchpoint)
    cancelled = Counter(reason_of(t.status_reason) for t in due if t.status == "cancelled")
    converted = sum(1 for t in due if t.status == "converted")
    rate = round(100 * converted / len(due), 1) if due else None
    return {
        "tag": tag,
        "due": len(due),
        "planned": sum(1 for t in due if t.status == "planned"),
        "sent": sum(1 for t in due if t.status in SENT),
        "cancelled": sum(cancelled.values()),
        "cancelled_by_reason": dict(cancelled.most_common()),
        "replies": replies,
        "replied_touchpoints": len(replied),
        "converted": converted,
        "return_rate_percent": rate,
        "band_position": band_position(rate),
        "by_step": dict(Counter(t.step for t in due)),
    }


def build(
    period: str,
    start: datetime,
    end: datetime,
    tags: Mapping[str, int],
    patients: PatientRepository,
) -> dict[str, Any]:
    """`tags`: each tag reported and its longest plan offset in days."""
    rows = [tag_report(tag, start, end, days, patients) for tag, days in tags.items()]
    due = sum(r["due"] for r in rows)
    converted = sum(r["converted"] for r in rows)
    rate = round(100 * converted / due, 1) if due else None
    return {
        "period": period,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "band": BAND,
        "tags": rows,
        "total": {
            "due": due,
            "sent": sum(r["sent"] for r in rows),
            "cancelled": sum(r["cancelled"] for r in rows),
            "replies": sum(r["replies"] for r in rows),
            "converted": converted,
            "return_rate_percent": rate,
            "band_position": band_position(rate),
        },
    }


DAYS = {"d": 1, "w": 7, "mo": 31}


def lookback_days(offsets: list[tuple[int, str]]) -> int:
    """The longest positive plan offset in days (a month taken as 31 days), from
    `PlanStep.offset_parts`."""
    return max([0, *(amount * DAYS[unit] for amount, unit in offsets)])


CSV_HEADER = (
    "치료 태그",
    "대상(예정)",
    "발송",
    "취소",
    "취소 사유",
    "환자 답장",
    "전환(내원)",
    "재내원율(%)",
    "업계 범위(%)",
)


def csv_rows(report: Mapping[str, Any], names: Mapping[str, str]) -> list[list[object]]:
    band = report["band"]
    span = f"{band['typical_low']:g}~{band['typical_high']:g} (최고 {band['best']:g}+)"
    rows: list[list[object]] = []
    for row in [*report["tags"], {"tag": "합계", **report["total"]}]:
        reasons = row.get("cancelled_by_reason") or {}
        rows.append(
            [
                names.get(row["tag"], row["tag"]),
                row["due"],
                row["sent"],
                row["cancelled"],
                "; ".join(f"{k} {v}" for k, v in reasons.items()),
                row["replies"],
                row["converted"],
                row["return_rate_percent"],
                span,
            ]
        )
    return rows
