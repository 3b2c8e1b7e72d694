"""A programme's sessions: its RFC 5545 RRULE expanded in the hospital's time zone (Asia/Seoul
has no daylight saving, so a 14:00 session is 05:00 UTC all year), public holidays (KR: 설날,
추석, substitutes) and the listed closures left out; and which of them fall on a day a patient
is already busy with their own treatment or booking."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr  # type: ignore[import-untyped]

from sotong.config.programme_schema import Programme, SessionRule


@cache
def _holidays(year: int) -> frozenset[date]:
    import holidays  # lazily: only a programme that skips public holidays needs it

    return frozenset(holidays.country_holidays("KR", years=year).keys())


def is_public_holiday(day: date) -> bool:
    return day in _holidays(day.year)


def _occurrences(
    rule: SessionRule, zone: ZoneInfo, after: datetime, until: datetime
) -> list[datetime]:
    start = datetime.combine(rule.first_day, rule.start, tzinfo=zone)
    recurrence = rrulestr(rule.rule, dtstart=start)
    found = recurrence.between(after.astimezone(zone), until.astimezone(zone), inc=True)
    return list(found)


def skipped(rule: SessionRule, day: date) -> bool:
    """The rule falls on `day` but there is no session (a closure or a public holiday)."""
    return day in rule.skip_dates or (rule.skip_public_holidays and is_public_holiday(day))


def sessions(
    programme: Programme, zone: ZoneInfo, after: datetime, until: datetime
) -> list[datetime]:
    """The session starts (aware, in `zone`) from `after` to `until`, both included."""
    rule = programme.sessions
    return [at for at in _occurrences(rule, zone, after, until) if not skipped(rule, at.date())]


def not_available(
    programme: Programme, zone: ZoneInfo, after: datetime, until: datetime
) -> list[tuple[date, str]]:
    """The days the rule falls on without a session, with why (FHIR `notAvailable`)."""
    rule = programme.sessions
    found: list[tuple[date, str]] = []
    for at in _occurrences(rule, zone, after, until):
        day = at.date()
        if day in rule.skip_dates:
            found.append((day, "휴무"))
        elif rule.skip_public_holidays and is_public_holiday(day):
            found.append((day, "공휴일"))
    return found


def is_session(programme: Programme, zone: ZoneInfo, at: datetime) -> bool:
    """`at` is one of the programme's session starts."""
    return at in sessions(programme, zone, at - timedelta(minutes=1), at + timedelta(minutes=1))


def clashes(
    starts: Iterable[datetime], minutes: int, busy_days: Iterable[date], zone: ZoneInfo
) -> tuple[list[datetime], list[datetime]]:
    """The sessions split into (free, clashing): a session clashes when it falls on a local
    day the patient has a treatment or a booking of their own (treatment records carry a day,
    not a time, so the whole day is theirs)."""
    busy = set(busy_days)
    free: list[datetime] = []
    clash: list[datetime] = []
    for at in starts:
        local = at.astimezone(zone)
        end = local + timedelta(minutes=minutes)
        (clash if local.date() in busy or end.date() in busy else free).append(at)
    return free, clash


def stamp(at: datetime) -> str:
    """A session's start as stored and answered: UTC to the second, `2026-12-08T05:00:00Z`."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
