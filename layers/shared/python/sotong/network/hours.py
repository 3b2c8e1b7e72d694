"""When a partner is open: its HSDS schedules (RFC 5545 RRULE parts, read with python-dateutil)
on the hospital's local calendar, with the Korean public holidays of the `holidays` package (설날,
추석, substitute days), as `sotong.complaints.sla` reads them. Pure functions, no AWS.

- A span belongs to the day it opens on; `closes_at` at or before `opens_at` closes the next day
  (a night clinic's 18:00-01:00 is open at 00:30 on the morning after).
- On a public holiday only the schedules marked `applies_to: public_holiday` hold; on any other
  day only the others. So a clinic without holiday hours is closed on 설날, and a 휴일지킴이 with
  holiday-only hours is open then and only then (and on its regular days).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dateutil import rrule  # type: ignore[import-untyped]

from sotong.complaints.sla import public_holidays
from sotong.config.network import HsdsSchedule, clock_of

_WEEKDAYS = {
    "MO": rrule.MO,
    "TU": rrule.TU,
    "WE": rrule.WE,
    "TH": rrule.TH,
    "FR": rrule.FR,
    "SA": rrule.SA,
    "SU": rrule.SU,
}
LOOK_AHEAD_DAYS = 8
"""How far the next opening is looked for (a week and a day: every weekly schedule recurs)."""


@dataclass(frozen=True, slots=True)
class Span:
    """One opening: from `opens` to `closes` (aware UTC), on the local day it opens."""

    opens: datetime
    closes: datetime
    day: date
    holiday: bool
    description: str

    def holds(self, at: datetime) -> bool:
        return self.opens <= at < self.closes


def holiday_name(day: date, country: str = "KR") -> str | None:
    """The public holiday's name on `day` (Korean), or None on a working day."""
    if day not in public_holidays(country, day.year):
        return None
    return _names(country, day.year).get(day)


@lru_cache(maxsize=16)
def _names(country: str, year: int) -> dict[date, str]:
    import holidays

    try:
        found = holidays.country_holidays(country, years=year, language="ko")
    except (NotImplementedError, KeyError, ValueError):  # pragma: no cover - other countries
        found = holidays.country_holidays(country, years=year)
    return {day: str(name) for day, name in found.items()}


@lru_cache(maxsize=4096)
def _occurs(schedule: HsdsSchedule, day: date) -> bool:
    """Whether the schedule's recurrence has an occurrence on `day` (dateutil's rrule)."""
    if schedule.valid_from and day < schedule.valid_from:
        return False
    if schedule.valid_to and day > schedule.valid_to:
        return False
    start = schedule.dtstart or schedule.valid_from
    if start is None or (schedule.interval == 1 and schedule.count is None):
        # an every-week (or every-day) rule recurs alike from any week: start near the day
        start = max(start or date.min, day - timedelta(days=7))
    if start > day:
        return False
    rule = rrule.rrule(
        rrule.WEEKLY if schedule.freq == "WEEKLY" else rrule.DAILY,
        interval=schedule.interval,
        byweekday=[_WEEKDAYS[d] for d in schedule.days] if schedule.byday else None,
        dtstart=datetime.combine(start, time()),
        until=datetime.combine(schedule.until, time.max) if schedule.until else None,
        count=schedule.count,
        cache=False,
    )
    midnight = datetime.combine(day, time())
    return bool(rule.after(midnight, inc=True) == midnight)  # occurrences fall at midnight


def _at(day: date, text: str, zone: ZoneInfo) -> datetime:
    if text == "24:00":
        return datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
    return datetime.combine(day, clock_of(text), zone).astimezone(UTC)


def spans_on(
    schedules: tuple[HsdsSchedule, ...], day: date, zone: ZoneInfo, country: str = "KR"
) -> list[Span]:
    """The openings that start on local `day`, earliest first."""
    holiday = day in public_holidays(country, day.year)
    found = []
    for schedule in schedules:
        if (schedule.applies_to == "public_holiday") != holiday:
            continue
        if not _occurs(schedule, day):
            continue
        opens = _at(day, schedule.opens_at, zone)
        closes = _at(day, schedule.closes_at, zone)
        if closes <= opens:  # past midnight: closes the next day
            closes = _at(day + timedelta(days=1), schedule.closes_at, zone)
        found.append(Span(opens, closes, day, holiday, schedule.description or ""))
    return sorted(found, key=lambda s: s.opens)


def open_span(
    schedules: tuple[HsdsSchedule, ...], at: datetime, zone: ZoneInfo, country: str = "KR"
) -> Span | None:
    """The opening that holds at `at`, if any (the latest-closing of overlapping ones): spans
    of the day before are looked at too, for the hours past midnight."""
    at = at.astimezone(UTC)
    local = at.astimezone(zone).date()
    holding = [
        span
        for day in (local - timedelta(days=1), local)
        for span in spans_on(schedules, day, zone, country)
        if span.holds(at)
    ]
    return max(holding, key=lambda s: s.closes) if holding else None


def until_closed(
    schedules: tuple[HsdsSchedule, ...], span: Span, zone: ZoneInfo, country: str = "KR"
) -> datetime:
    """When an open partner really closes: a span that runs into the next one (24-hour
    pharmacies, 00:00-24:00 every day) carries on to the end of that one."""
    closes = span.closes
    for _ in range(LOOK_AHEAD_DAYS):
        later = open_span(schedules, closes, zone, country)
        if later is None or later.closes <= closes:
            return closes
        closes = later.closes
    return closes


def next_opening(
    schedules: tuple[HsdsSchedule, ...], at: datetime, zone: ZoneInfo, country: str = "KR"
) -> Span | None:
    """The first opening after `at`, within `LOOK_AHEAD_DAYS`."""
    at = at.astimezone(UTC)
    day = at.astimezone(zone).date()
    for offset in range(LOOK_AHEAD_DAYS + 1):
        for span in spans_on(schedules, day + timedelta(days=offset), zone, country):
            if span.opens > at:
                return span
    return None
