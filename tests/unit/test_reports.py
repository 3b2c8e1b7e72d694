"""The reports' arithmetic: period bounds in the hospital's zone, the previous period and the
12-month window, percentages and comparisons, the messages' status counts, the return-rate band,
and the CSV (UTF-8 with BOM, Korean intact, formula injection neutralised)."""

from __future__ import annotations

import csv
import io
from zoneinfo import ZoneInfo

import pytest

from sotong import csv_export
from sotong.complaints import reports
from sotong.notify import reports as message_reports
from sotong.recall import reports as recall_reports

SEOUL = ZoneInfo("Asia/Seoul")


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("2026-11", "2026-11-01T00:00:00+09:00", "2026-12-01T00:00:00+09:00"),
        ("2026-12", "2026-12-01T00:00:00+09:00", "2027-01-01T00:00:00+09:00"),
        ("2026-Q4", "2026-10-01T00:00:00+09:00", "2027-01-01T00:00:00+09:00"),
        ("2027-Q1", "2027-01-01T00:00:00+09:00", "2027-04-01T00:00:00+09:00"),
        ("2028-02", "2028-02-01T00:00:00+09:00", "2028-03-01T00:00:00+09:00"),
    ],
)
def test_period_bounds_are_the_hospitals_months(period: str, start: str, end: str) -> None:
    low, high = reports.period_bounds(period, SEOUL)
    assert (low.isoformat(), high.isoformat()) == (start, end)


def test_a_seoul_month_starts_the_evening_before_in_utc() -> None:
    from sotong import clock

    low, _ = reports.period_bounds("2027-01", SEOUL)
    assert clock.iso(low) == "2026-12-31T15:00:00.000000Z"


@pytest.mark.parametrize(
    ("period", "before"),
    [
        ("2026-11", "2026-10"),
        ("2026-01", "2025-12"),
        ("2026-Q1", "2025-Q4"),
        ("2026-Q3", "2026-Q2"),
    ],
)
def test_the_previous_period(period: str, before: str) -> None:
    assert reports.previous_period(period) == before


def test_twelve_months_before_a_period_end_cross_the_year() -> None:
    _, end = reports.period_bounds("2026-02", SEOUL)
    months = reports.month_starts(end, 12)
    assert [f"{m.year}-{m.month:02d}" for m in (months[0], months[-1])] == ["2025-03", "2026-02"]
    assert len(months) == 12
    assert all(m.tzinfo == SEOUL for m in months)


def test_percent_and_change() -> None:
    assert reports.percent(2, 3) == 66.7
    assert reports.percent(1, 0) is None
    assert reports.change(12, 8) == {"now": 12, "before": 8, "difference": 4, "percent": 50.0}
    assert reports.change(3, 0)["percent"] is None
    assert reports.change(None, 4)["difference"] is None


def test_a_message_counts_once_per_status_it_reached() -> None:
    events = [{"status": s} for s in ("calling", "retry", "calling", "sent", "sent")]
    record = {"status": "delivered", "channel": "sms", "created_at": "2026-11-30T15:10:00Z"}
    assert message_reports.reached({**record, "events": events}) == {"sent", "delivered"}
    fallback = {**record, "status": "fallback_sent", "channel": "alimtalk", "events": []}
    failed = {**record, "status": "failed", "events": [{"status": "calling"}]}
    summary = message_reports.summarize([{**record, "events": events}, fallback, failed], SEOUL)
    assert summary["totals"] == {
        "sent": 2, "delivered": 1, "fallback_sent": 1, "failed": 1, "suppressed": 0
    }  # fmt: skip
    assert summary["by_channel"]["alimtalk"]["fallback_sent"] == 1
    assert list(summary["by_month"]) == ["2026-12"]  # 00:10 on 1 December in Seoul
    assert summary["delivered_percent"] == 50.0


@pytest.mark.parametrize(
    ("rate", "where"),
    [(None, None), (40.0, "below_typical"), (55.0, "typical"), (65.0, "typical"),
     (70.0, "above_typical"), (85.0, "best")],
)  # fmt: skip
def test_the_return_rate_beside_the_dental_band(rate: float | None, where: str | None) -> None:
    assert recall_reports.band_position(rate) == where


def test_lookback_is_the_longest_plan_offset() -> None:
    assert recall_reports.lookback_days([(-1, "d"), (14, "d"), (6, "mo")]) == 186
    assert recall_reports.lookback_days([(-1, "d")]) == 0


def test_csv_has_a_bom_korean_and_no_formula() -> None:
    text = csv_export.render(
        ["구분", "항목", "값"],
        [
            ["분류별", '=HYPERLINK("http://x")', 3],
            ["주요 표현", "+82 10", -2],
            ["주요 표현", "-1+1", 1.5],
            ["주요 표현", "@SUM(A1)", 0],
            ["주요 표현", "\tcmd", None],
            ["주요 표현", "\rcmd", '대기, "오래"'],
        ],
    )
    assert text.startswith("\ufeff구분,항목,값\r\n")
    data = text.encode("utf-8")
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    cells = [row[1] for row in rows[1:]]
    assert cells == [
        '\'=HYPERLINK("http://x")',
        "'+82 10",
        "'-1+1",
        "'@SUM(A1)",
        "'\tcmd",
        "'\rcmd",
    ]
    assert [row[2] for row in rows[1:]] == ["3", "-2", "1.5", "0", "", '대기, "오래"']
    assert all(not c.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for c in row[:2])


def test_complaint_csv_rows_name_things_in_korean() -> None:
    report = {
        "total": 2, "acknowledged_within_sla_percent": 50.0, "resolved_within_sla_percent": None,
        "median_hours_to_acknowledge": 1.5, "median_hours_to_resolve": None, "escalated": 0,
        "satisfaction_average": None, "survey_answer_rate_percent": None,
        "previous": dict.fromkeys(reports.COMPARED, 0),
        "by_kind": {"complaint": 2}, "by_category": {"wait_time": 2}, "by_channel": {"web": 2},
        "by_department": {"dental": 2}, "by_urgency": {"normal": 2},
        "trend": [{"month": "2026-11", "total": 2}],
        "top_phrases": [{"phrase": "=대기", "count": 2}],
    }  # fmt: skip
    rows = reports.csv_rows(report, {"dental": "치과"})
    assert ["요약", "접수 건수", 2, 0] in rows
    assert ["부서별", "치과", 2, ""] in rows
    text = csv_export.render(reports.CSV_HEADER, rows)
    assert "'=대기" in text
    assert "12개월 추이" in text


def test_cancel_reasons_are_counted_by_kind_not_by_who() -> None:
    assert recall_reports.reason_of("cancelled by local-cs_admin") == "staff"
    assert recall_reports.reason_of("future_booking") == "future_booking"
    assert recall_reports.reason_of(None) == "unknown"
