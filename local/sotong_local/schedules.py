"""EventBridge Scheduler expressions, evaluated as Scheduler does, and a thread that fires them.

Supported: `rate(N minute|minutes|hour|hours|day|days)` (singular for 1, plural otherwise, as AWS
insists) and `cron(minutes hours day-of-month month day-of-week year)` with `*`, `?`, `,`, `-`, `/`,
month names JAN-DEC and weekday names SUN-SAT (1 = Sunday), in the schedule's time zone. `L`, `W`
and `#` are refused with a clear message rather than guessed at.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

log = logging.getLogger("sotong_local.schedules")

_RATE = re.compile(r"^rate\(\s*(\d+)\s+([a-z]+)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_DAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}
_SEARCH_YEARS = 8


class ScheduleError(ValueError):
    """An expression EventBridge Scheduler would refuse (or one this emulator does not support)."""


@dataclass(frozen=True)
class Rate:
    expression: str
    every: timedelta
    anchor: datetime

    def next_after(self, after: datetime) -> datetime:
        """The first run strictly after `after`: anchor + k * every (rates start at creation)."""
        if after < self.anchor:
            return self.anchor + self.every
        elapsed = (after - self.anchor) // self.every
        return self.anchor + (elapsed + 1) * self.every


@dataclass(frozen=True)
class Cron:
    expression: str
    zone: ZoneInfo
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int] | None  # None: `?`
    months: frozenset[int]
    days_of_week: frozenset[int] | None  # None: `?`; 1 = Sunday ... 7 = Saturday
    years: frozenset[int]

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months or day.year not in self.years:
            return False
        if self.days_of_month is not None:
            return day.day in self.days_of_month
        assert self.days_of_week is not None
        return (day.isoweekday() % 7) + 1 in self.days_of_week

    def next_after(self, after: datetime) -> datetime:
        """The first matching minute strictly after `after` (aware), as an aware UTC datetime."""
        if after.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        start = after.astimezone(self.zone)
        day = start.date()
        last_day = date(min(start.year + _SEARCH_YEARS, 9999), 12, 31)
        hours = sorted(self.hours)
        minutes = sorted(self.minutes)
        while day <= last_day:
            if day.year > max(self.years):
                break
            if self._day_matches(day):
                for hour in hours:
                    for minute in minutes:
                        local = datetime.combine(day, time(hour, minute), tzinfo=self.zone)
                        at = local.astimezone(UTC)
                        # A wall time that does not exist (a DST gap) does not round-trip: skip it.
                        if at.astimezone(self.zone).replace(tzinfo=None) != local.replace(
                            tzinfo=None
                        ):
                            continue
                        if at > after:
                            return at
            day += timedelta(days=1)
        raise ScheduleError(f"{self.expression} never fires again after {after.isoformat()}")


Expression = Rate | Cron


def parse(
    expression: str, timezone: str = "Asia/Seoul", *, anchor: datetime | None = None
) -> Expression:
    """Parse a Scheduler expression; `anchor` (aware) is when a rate schedule was created."""
    text = expression.strip()
    zone = ZoneInfo(timezone)
    rate = _RATE.match(text)
    if rate:
        return _parse_rate(text, int(rate.group(1)), rate.group(2), anchor)
    cron = _CRON.match(text)
    if cron:
        return _parse_cron(text, cron.group(1), zone)
    if text.startswith("at("):
        raise ScheduleError(f"{text}: one-time at() schedules are not supported by the local stack")
    raise ScheduleError(f"'{text}' is not rate(...) or cron(...)")


def _parse_rate(text: str, value: int, unit: str, anchor: datetime | None) -> Rate:
    base = unit.removesuffix("s")
    if base not in _UNITS:
        raise ScheduleError(f"{text}: unit must be minute(s), hour(s) or day(s)")
    if value < 1:
        raise ScheduleError(f"{text}: the value must be a positive whole number")
    plural = unit.endswith("s")
    if (value == 1) == plural:
        want = base if value == 1 else base + "s"
        raise ScheduleError(f"{text}: AWS requires rate({value} {want}) (singular only for 1)")
    return Rate(text, timedelta(seconds=value * _UNITS[base]), anchor or datetime.now(UTC))


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] = field(default_factory=dict)


_FIELDS = (
    _Field("minutes", 0, 59),
    _Field("hours", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day-of-week", 1, 7, _DAYS),
    _Field("year", 1970, 2199),
)


def _parse_cron(text: str, body: str, zone: ZoneInfo) -> Cron:
    parts = body.split()
    if len(parts) != 6:
        raise ScheduleError(
            f"{text}: a cron expression needs 6 fields "
            f"(minutes hours day-of-month month day-of-week year), got {len(parts)}"
        )
    dom, dow = parts[2], parts[4]
    if (dom == "?") == (dow == "?"):
        raise ScheduleError(
            f"{text}: use '?' in exactly one of day-of-month and day-of-week (AWS rule)"
        )
    values: list[frozenset[int] | None] = []
    for spec, part in zip(_FIELDS, parts, strict=True):
        if part == "?":
            if spec.name not in ("day-of-month", "day-of-week"):
                raise ScheduleError(f"{text}: '?' is only allowed in day-of-month or day-of-week")
            values.append(None)
        else:
            values.append(_parse_field(text, spec, part))
    minutes, hours, doms, months, dows, years = values
    assert minutes is not None
    assert hours is not None
    assert months is not None
    assert years is not None
    return Cron(text, zone, minutes, hours, doms, months, dows, years)


def _value(text: str, spec: _Field, token: str) -> int:
    upper = token.upper()
    if upper in spec.names:
        return spec.names[upper]
    if not token.isdigit():
        if any(c in upper for c in "LW#"):
            raise ScheduleError(
                f"{text}: '{token}' in {spec.name} (L, W, #) is not supported by the local stack"
            )
        raise ScheduleError(f"{text}: '{token}' is not a valid {spec.name} value")
    number = int(token)
    if not spec.low <= number <= spec.high:
        raise ScheduleError(f"{text}: {spec.name} {number} is outside {spec.low}-{spec.high}")
    return number


def _parse_field(text: str, spec: _Field, part: str) -> frozenset[int]:
    out: set[int] = set()
    for item in part.split(","):
        if not item:
            raise ScheduleError(f"{text}: empty list item in {spec.name}")
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ScheduleError(f"{text}: '{item}' has an invalid step in {spec.name}")
            step = int(step_text)
        if base == "*":
            low, high = spec.low, spec.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(text, spec, first), _value(text, spec, last)
            if low > high:
                raise ScheduleError(f"{text}: range '{base}' in {spec.name} runs backwards")
        else:
            low = _value(text, spec, base)
            high = spec.high if step_text else low
        out.update(range(low, high + 1, step))
    return frozenset(out)


@dataclass
class ScheduledJob:
    """One function on one schedule, with what the local stack remembers about its runs."""

    function: str
    expression: Expression
    timezone: str
    arn: str
    next_run: datetime
    last_run: datetime | None = None
    last_error: str | None = None
    last_result: Any = None
    runs: int = 0


# (job, scheduled time, clock offset in seconds) -> (error or None, the handler's answer)
Runner = Callable[[ScheduledJob, datetime, float], tuple[str | None, Any]]


class Scheduler:
    """A background thread that runs each job when its time comes (no catch-up of missed runs)."""

    def __init__(
        self,
        jobs: list[ScheduledJob],
        run: Runner,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.jobs = {job.function: job for job in jobs}
        self._run = run
        self._now = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.jobs:
            return
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.tick())

    def tick(self) -> float:
        """Run every job that is due; returns how long to sleep before the next one (max 60 s)."""
        for job in sorted(self.jobs.values(), key=lambda j: j.next_run):
            if self._stop.is_set():
                break
            if job.next_run <= self._now():
                scheduled_for = job.next_run
                try:
                    job.next_run = job.expression.next_after(max(self._now(), scheduled_for))
                except ScheduleError as error:  # no future run: fire this one, then drop it
                    log.warning("%s", error)
                    del self.jobs[job.function]
                self.fire(job, scheduled_for)
        if not self.jobs:
            return 60.0
        due = min(job.next_run for job in self.jobs.values())
        return min(max((due - self._now()).total_seconds(), 0.0), 60.0)

    def fire(
        self, job: ScheduledJob, scheduled_for: datetime, clock_offset_seconds: float = 0.0
    ) -> str | None:
        """Run a job now (the loop and run-now both come here); returns the error, if any."""
        result: Any = None
        try:
            error, result = self._run(job, scheduled_for, clock_offset_seconds)
        except Exception as exc:  # the runner reports handler errors; this is our own bug
            log.exception("schedule %s failed to run", job.function)
            error = f"{type(exc).__name__}: {exc}"
        job.last_run = scheduled_for
        job.last_error = error
        job.last_result = result
        job.runs += 1
        return error
