"""Business-hours SLA arithmetic (sotong.complaints.sla) on a fixed clock: nights, weekends,
설날 2027 with its substitute holiday, the hospital's own closed days, pauses."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sotong.complaints import sla
from sotong.config.loader import ConfigError, parse_hospital
from sotong.config.schema import BusinessHours

KST = ZoneInfo("Asia/Seoul")
WEEKDAYS = {d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")}


def kst(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=KST)


def calendar(**changes: Any) -> sla.BusinessCalendar:
    hours = BusinessHours.model_validate({"opening": WEEKDAYS, **changes})
    return sla.calendar_from(hours, "Asia/Seoul")


WEEK = calendar()  # Mon-Fri 09:00-18:00, Korean public holidays
WITH_SATURDAY = calendar(opening={**WEEKDAYS, "sat": "09:00-13:00"})


def test_calendar_hours_run_around_the_clock() -> None:
    start = kst(2026, 11, 27, 17, 0)  # a Friday
    assert sla.due(start, 24, None) == kst(2026, 11, 28, 17, 0)
    assert sla.elapsed(start, kst(2026, 11, 30, 17, 0), None) == timedelta(days=3)


def test_a_friday_17_00_complaint_is_due_on_monday() -> None:
    friday = kst(2026, 11, 27, 17, 0)
    # 1 h on Friday, 7 h on Monday
    assert sla.due(friday, 8, WEEK) == kst(2026, 11, 30, 16, 0)
    # with Saturday mornings: 1 h Friday, 4 h Saturday, 3 h Monday
    assert sla.due(friday, 8, WITH_SATURDAY) == kst(2026, 11, 30, 12, 0)
    # 24 business hours: Fri 1 + Mon 9 + Tue 9 + Wed 5
    assert sla.due(friday, 24, WEEK) == kst(2026, 12, 2, 14, 0)
    assert sla.due(friday, 24, WEEK).tzinfo == UTC


def test_nights_and_closing_time() -> None:
    assert sla.due(kst(2026, 11, 24, 20, 0), 1, WEEK) == kst(2026, 11, 25, 10, 0)
    assert sla.due(kst(2026, 11, 24, 6, 0), 9, WEEK) == kst(2026, 11, 24, 18, 0)  # at closing
    assert sla.due(kst(2026, 11, 24, 17, 30), 0.5, WEEK) == kst(2026, 11, 24, 18, 0)
    assert sla.due(kst(2026, 11, 24, 17, 30), 0.75, WEEK) == kst(2026, 11, 25, 9, 15)


def test_the_package_knows_seollal_2027_and_its_substitute_day() -> None:
    days = {d for d in sla.public_holidays("KR", 2027) if d.month == 2}
    # 설날 eve Sat 6, 설날 Sun 7, day after Mon 8, substitute for the Sunday: Tue 9
    assert days == {date(2027, 2, 6), date(2027, 2, 7), date(2027, 2, 8), date(2027, 2, 9)}


def test_business_hours_skip_seollal_2027() -> None:
    friday = kst(2027, 2, 5, 17, 0)  # the last working hour before 설날
    # Fri 1 h, then Sat-Tue are holidays: Wed 10 Feb 09:00 + 7 h
    assert sla.due(friday, 8, WEEK) == kst(2027, 2, 10, 16, 0)
    assert sla.due(friday, 8, WITH_SATURDAY) == kst(2027, 2, 10, 16, 0)  # Saturday is 설날 eve
    assert sla.elapsed(friday, kst(2027, 2, 10, 9, 0), WEEK) == timedelta(hours=1)
    # without the holiday calendar the same hours end on Monday
    no_holidays = calendar(public_holidays=None)
    assert sla.due(friday, 8, no_holidays) == kst(2027, 2, 8, 16, 0)


def test_closed_days_of_the_hospital() -> None:
    closed = calendar(closed_days=["2026-12-31"])  # Thursday; 1 Jan is a public holiday
    assert sla.due(kst(2026, 12, 30, 17, 0), 2, closed) == kst(2027, 1, 4, 10, 0)
    assert sla.due(kst(2026, 12, 30, 17, 0), 2, WEEK) == kst(2026, 12, 31, 10, 0)


def test_a_lunch_break() -> None:
    split = calendar(opening={"mon": ["09:00-12:30", "13:30-18:00"]})
    assert sla.due(kst(2026, 11, 30, 12, 0), 1, split) == kst(2026, 11, 30, 14, 0)
    assert sla.elapsed(kst(2026, 11, 30, 9, 0), kst(2026, 11, 30, 18, 0), split) == timedelta(
        hours=8
    )


def test_a_day_open_to_midnight() -> None:
    late = calendar(opening={"fri": "18:00-24:00", "sat": "00:00-02:00"})
    assert sla.due(kst(2026, 11, 27, 23, 0), 2, late) == kst(2026, 11, 28, 1, 0)


def test_elapsed_is_the_inverse_of_due() -> None:
    start = kst(2027, 2, 3, 11, 17)
    for hours in (0.5, 3, 9, 24, 40, 168):
        end = sla.due(start, hours, WITH_SATURDAY)
        assert sla.elapsed(start, end, WITH_SATURDAY) == timedelta(hours=hours)
    assert sla.elapsed(end, start, WITH_SATURDAY) == timedelta(0)


def test_a_pause_across_a_weekend_moves_the_due_time_by_business_hours_only() -> None:
    start = kst(2026, 11, 26, 10, 0)  # Thursday
    due = sla.due(start, 24, WEEK)  # Thu 8 + Fri 9 + Mon 7 -> Mon 16:00
    assert due == kst(2026, 11, 30, 16, 0)
    paused, resumed = kst(2026, 11, 27, 16, 0), kst(2026, 11, 30, 11, 0)  # Fri 16:00 - Mon 11:00
    moved = sla.elapsed(paused, resumed, WEEK)
    assert moved == timedelta(hours=4)  # Fri 2 h + Mon 2 h; the weekend is not counted
    assert sla.due(due, moved, WEEK) == kst(2026, 12, 1, 11, 0)
    # a calendar clock moves by the whole wall time
    assert sla.elapsed(paused, resumed, None) == timedelta(hours=67)


def test_holidays_are_built_once_per_year() -> None:
    sla.public_holidays.cache_clear()
    sla.due(kst(2027, 2, 5, 17, 0), 100, WEEK)
    info = sla.public_holidays.cache_info()
    assert info.misses == 1
    assert info.hits > 10


# --- config -------------------------------------------------------------------------------------
def _hospital(**changes: Any) -> dict[str, Any]:
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    data: dict[str, Any] = yaml.safe_load((root / "hospitals" / "demo.yaml").read_text())
    data.update(changes)
    return data


def _problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_hospital(data, "h.yaml")
    return caught.value.problems


def test_the_default_is_calendar_hours() -> None:
    hospital = parse_hospital(_hospital(), "demo.yaml")
    for hours in hospital.sla.values():
        assert (hours.clock.acknowledge, hours.clock.resolve) == ("calendar", "calendar")


def test_a_clock_per_urgency_and_per_target() -> None:
    sla_section = {
        "critical": {"acknowledge": 1, "resolve": 24, "clock": {"resolve": "business"}},
        "high": {"acknowledge": 4, "resolve": 72},
        "normal": {"acknowledge": 24, "resolve": 168, "clock": "business"},
    }
    hospital = parse_hospital(
        _hospital(sla=sla_section, business_hours={"opening": WEEKDAYS}), "h.yaml"
    )
    assert hospital.sla["critical"].clock.acknowledge == "calendar"
    assert hospital.sla["critical"].clock.resolve == "business"
    assert hospital.sla["normal"].clock.acknowledge == "business"
    assert hospital.business_hours is not None
    assert hospital.business_hours.public_holidays == "KR"
    # what the config layer ships reads back the same
    again = parse_hospital(hospital.model_dump(mode="json"), "config.json")
    assert again == hospital


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        (
            {"sla": {"critical": {"acknowledge": 1, "resolve": 2, "clock": "business"}}},
            "sla",
            "missing",
        ),
        (
            {
                "sla": {
                    "critical": {"acknowledge": 1, "resolve": 24},
                    "high": {"acknowledge": 4, "resolve": 72},
                    "normal": {"acknowledge": 24, "resolve": 168, "clock": "business"},
                },
                "business_hours": None,
            },
            "sla.normal.clock",
            "needs a business_hours section",
        ),
        (
            {
                "sla": {
                    "critical": {"acknowledge": 1, "resolve": 24, "clock": "working"},
                    "high": {"acknowledge": 4, "resolve": 72},
                    "normal": {"acknowledge": 24, "resolve": 168},
                }
            },
            "sla.critical.clock",
            "'working' is not a clock",
        ),
        (
            {"business_hours": {"opening": {"mon": "18:00-09:00"}}},
            "business_hours.opening.mon",
            "end after",
        ),
        (
            {"business_hours": {"opening": {"mon": "9-18"}}},
            "business_hours.opening.mon",
            "09:00-18:00",
        ),
        (
            {"business_hours": {"opening": {"tue": ["09:00-13:00", "12:00-18:00"]}}},
            "business_hours.opening.tue",
            "must not overlap",
        ),
        (
            {"business_hours": {"opening": {"monday": "09:00-18:00"}}},
            "business_hours.opening",
            "mon",
        ),
        ({"business_hours": {"opening": {}}}, "business_hours.opening", "at least one weekday"),
        (
            {"business_hours": {"opening": WEEKDAYS, "closed_days": ["2026-12-31", "2026-12-31"]}},
            "business_hours.closed_days",
            "listed twice: 2026-12-31",
        ),
        (
            {"business_hours": {"opening": WEEKDAYS, "closed_days": ["12/31"]}},
            "business_hours.closed_days[0]",
            "date",
        ),
        (
            {"business_hours": {"opening": WEEKDAYS, "public_holidays": "JP"}},
            "business_hours.public_holidays",
            "KR",
        ),
    ],
)
def test_business_hours_config_errors_name_the_field(
    changes: dict[str, Any], path: str, words: str
) -> None:
    problems = _problems(_hospital(**changes))
    assert any(p.startswith(path) and words in m for p, m in problems), problems


def test_config_diff_names_a_business_hours_change() -> None:
    from sotong.config.diff import patient_changes

    old = parse_hospital(_hospital(business_hours={"opening": WEEKDAYS}), "old.yaml")
    new = parse_hospital(
        _hospital(business_hours={"opening": WEEKDAYS, "closed_days": ["2026-12-31"]}),
        "new.yaml",
    )
    (line,) = patient_changes(old, new)
    assert line.startswith("business hours (SLA): ")
    assert "2026-12-31" in line
