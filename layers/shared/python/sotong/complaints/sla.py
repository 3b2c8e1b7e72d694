"""SLA clock arithmetic: calendar hours (around the clock) or business hours.

A business-hours clock runs only while the hospital is open: its weekday opening hours in its
time zone, never on a public holiday (the `holidays` package's calendar, lunar holidays and
substitute days included) or one of the hospital's own closed days. Pure functions, no AWS.

`holidays` is imported on first use and each year's holidays are built once per process, so a
function that never meets a business-hours clock never pays for the import (about 0.1 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from sotong.config.schema import WEEKDAYS, BusinessHours

MAX_DAYS = 366 * 30
"""How far a business-hours due time is looked for (the config keeps targets far below it)."""


@lru_cache(maxsize=64)
def public_holidays(country: str, year: int) -> frozenset[date]:
    """The public holidays of `country` in `year`, built once per process."""
    import holidays  # lazily: only business-hours clocks need it

    return frozenset(holidays.country_holidays(country, years=year).keys())


@dataclass(frozen=True)
class BusinessCalendar:
    """When a business-hours clock runs. `weekly[0]` is Monday: each day's opening spans as
    (start, end) minutes after local midnight, end at most 24 * 60."""

    zone: ZoneInfo
    weekly: tuple[tuple[tuple[int, int], ...], ...]
    country: str | None = "KR"
    closed_days: frozenset[date] = frozenset()

    def closed(self, day: date) -> bool:
        if day in self.closed_days:
            return True
        return self.country is not None and day in public_holidays(self.country, day.year)

    def spans(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's opening hours as UTC intervals (none on a closed day)."""
        if self.closed(day):
            return []
        return [
            (_local(day, start, self.zone), _local(day, end, self.zone))
            for start, end in self.weekly[day.weekday()]
        ]


def _local(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """`minutes` after local midnight of `day` as UTC (24:00 is the next day's midnight)."""
    extra, minutes = divmod(minutes, 24 * 60)
    wall = datetime.combine(day + timedelta(days=extra), time(minutes // 60, minutes % 60))
    return wall.replace(tzinfo=zone).astimezone(UTC)


def calendar_from(hours: BusinessHours, timezone: str) -> BusinessCalendar:
    """The calendar a hospital's `business_hours` section describes."""
    weekly = tuple(tuple(_minutes(span) for span in hours.opening.get(day, ())) for day in WEEKDAYS)
    return BusinessCalendar(
        zone=ZoneInfo(timezone),
        weekly=weekly,
        country=hours.public_holidays,
        closed_days=frozenset(hours.closed_days),
    )


def _minutes(span: str) -> tuple[int, int]:
    start, end = span.split("-")
    return _clock_minutes(start), _clock_minutes(end)


def _clock_minutes(text: str) -> int:
    hour, minute = text.split(":")
    return int(hour) * 60 + int(minute)


def _as_delta(hours: float | timedelta) -> timedelta:
    return hours if isinstance(hours, timedelta) else timedelta(hours=hours)


def due(start: datetime, hours: float | timedelta, calendar: BusinessCalendar | None) -> datetime:
    """When `hours` of the clock have run from `start` (aware): calendar hours when `calendar`
    is None, else business hours, across nights, weekends, holidays and closed days. A target
    that runs out exactly at closing time is due at closing time. Returns UTC."""
    start = start.astimezone(UTC)
    left = _as_delta(hours)
    if calendar is None:
        return start + left
    if left <= timedelta(0):
        return start
    day = start.astimezone(calendar.zone).date() - timedelta(days=1)  # a span past midnight
    for _ in range(MAX_DAYS):
        for open_at, close_at in calendar.spans(day):
            begin = max(open_at, start)
            if begin >= close_at:
                continue
            if begin + left <= close_at:
                return begin + left
            left -= close_at - begin
        day += timedelta(days=1)
    raise ValueError(f"no business hours within {MAX_DAYS} days of {start.isoformat()}")


def elapsed(start: datetime, end: datetime, calendar: BusinessCalendar | None) -> timedelta:
    """How much of the clock ran from `start` to `end`: wall time when `calendar` is None, else
    the business hours between them (zero when `end` is not after `start`)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return timedelta(0)
    if calendar is None:
        return end - start
    total = timedelta(0)
    day = start.astimezone(calendar.zone).date() - timedelta(days=1)
    last = end.astimezone(calendar.zone).date()
    while day <= last:
        for open_at, close_at in calendar.spans(day):
            low, high = max(open_at, start), min(close_at, end)
            if high > low:
                total += high - low
        day += timedelta(days=1)
    return total
