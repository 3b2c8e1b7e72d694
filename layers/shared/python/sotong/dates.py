"""The date rules for what people and files send: one window per kind of date, used by the API's
models and by the CSV importer alike, so a date one of them takes the other takes too.

Why windows at all: Python's calendar ends at 0001-01-01 and 9999-12-31, and every rule that
moves a date steps over those ends (D-1 precautions, a +6mo recall, a local day's start in UTC,
the end of a `to` day): an OverflowError, a 5xx. A window well inside the calendar closes that,
and catches the typos a person wants to hear about (1026 or 2062 for 2026).

- **Treatment dates**: from 20 years back to 366 days ahead. Back: EMR exports carry history
  (charts are kept at least 10 years, 의료법 시행규칙 §15, often longer) and segments by treatment
  history read it; a date older than 20 years is a typo, not history a recall could use. Ahead:
  a treatment booked for later plans its D-1 precautions; a year and a day lets next year's
  date through and stops a mistyped decade.
- **Appointments** (a booking's or a visit's `at`): 20 years back (visits from an EMR's history)
  to 2 years ahead (yearly check-ups are booked a year ahead; beyond two years is a typo).
- **A complaint's visit date**: from 10 years back (a claim for damages lapses 10 years after
  the act, 민법 §766) to today: a visit the patient writes about has happened.
- **A campaign's send day**: up to 366 days ahead (the past is refused where the campaign is
  created, against the hospital's own today).
- **Days to filter by** (the inbox's `from`/`to`, segment dates): 1900-01-01 to 100 years ahead:
  wider than anything stored, so a filter means what it says; only dates that mean nothing and
  that the arithmetic cannot handle are refused.

"Today" is the calendar day in Asia/Seoul, the zone of every hospital Sotong serves; the bounds
are years wide, so only "a visit is not in the future" depends on it, and the Seoul day is the
latest a Korean hospital's visit can have.

Each rule returns the value or raises ValueError with a message that says what is wrong and the
window; the caller names the field (pydantic by its location, the importer by its column).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime

from sotong import clock

ZONE = ZoneInfo("Asia/Seoul")
TREATMENT_YEARS_BACK = 20
TREATMENT_DAYS_AHEAD = 366
APPOINTMENT_YEARS_BACK = 20
APPOINTMENT_YEARS_AHEAD = 2
VISIT_YEARS_BACK = 10
SEND_DAYS_AHEAD = 366
FILTER_EARLIEST = date(1900, 1, 1)
FILTER_YEARS_AHEAD = 100


def today() -> date:
    """Today in Asia/Seoul, on the one clock."""
    return clock.now().astimezone(ZONE).date()


def years_from(day: date, years: int) -> date:
    """`day` moved by whole years (29 February becomes 28 February in a common year)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _within(day: date, earliest: date, latest: date, what: str) -> date:
    if day < earliest or day > latest:
        side = "before" if day < earliest else "after"
        raise ValueError(
            f"{day.isoformat()} is {side} the {what} this system takes "
            f"({earliest.isoformat()} to {latest.isoformat()}): a typo?"
        )
    return day


def treatment_window(on: date | None = None) -> tuple[date, date]:
    base = on or today()
    return years_from(base, -TREATMENT_YEARS_BACK), base + timedelta(days=TREATMENT_DAYS_AHEAD)


def treatment_day(day: date, on: date | None = None) -> date:
    """A treatment's date: 20 years back to 366 days ahead of `on` (default today)."""
    earliest, latest = treatment_window(on)
    return _within(day, earliest, latest, "treatment dates")


def appointment_at(at: datetime, now: datetime | None = None) -> datetime:
    """A booking's or a visit's time (aware): 20 years back to 2 years ahead."""
    base = (now or clock.now()).astimezone(ZONE).date()
    earliest = years_from(base, -APPOINTMENT_YEARS_BACK)
    latest = years_from(base, APPOINTMENT_YEARS_AHEAD)
    # compared as instants, which aware datetimes do without converting (no overflow)
    low = datetime.combine(earliest, time.min, tzinfo=ZONE)
    high = datetime.combine(latest, time.max, tzinfo=ZONE)
    if at < low or at > high:
        side = "before" if at < low else "after"
        raise ValueError(
            f"{at.isoformat()} is {side} the appointment times this system takes "
            f"({earliest.isoformat()} to {latest.isoformat()}): a typo?"
        )
    return at


def visit_day(day: date, on: date | None = None) -> date:
    """The day a patient visited, as they write it in a complaint: 10 years back to today."""
    base = on or today()
    if day > base:
        raise ValueError(f"{day.isoformat()} is in the future: give the day of the visit")
    return _within(day, years_from(base, -VISIT_YEARS_BACK), base, "visit dates")


def send_day(day: date, on: date | None = None) -> date:
    """A campaign's send day: at most 366 days ahead."""
    latest = (on or today()) + timedelta(days=SEND_DAYS_AHEAD)
    if day > latest:
        raise ValueError(
            f"{day.isoformat()} is more than {SEND_DAYS_AHEAD} days ahead (latest "
            f"{latest.isoformat()}): a typo?"
        )
    return day


def filter_window(on: date | None = None) -> tuple[date, date]:
    return FILTER_EARLIEST, years_from(on or today(), FILTER_YEARS_AHEAD)


def filter_day(day: date, on: date | None = None) -> date:
    """A day to filter by: 1900-01-01 to 100 years ahead."""
    earliest, latest = filter_window(on)
    return _within(day, earliest, latest, "dates to filter by")


def filter_time(at: datetime, on: date | None = None) -> datetime:
    """A moment to look at or filter by (an aware datetime), inside the days to filter by: so
    the arithmetic around it (a local day, the week after) stays inside the calendar."""
    try:
        local = at.astimezone(ZONE).date()
    except OverflowError:  # a moment at the calendar's very end, in another zone
        raise ValueError("a moment outside the calendar Sotong can work with") from None
    filter_day(local, on)
    return at


TreatmentDay = Annotated[date, AfterValidator(treatment_day)]
AppointmentTime = Annotated[AwareDatetime, AfterValidator(appointment_at)]
VisitDay = Annotated[date, AfterValidator(visit_day)]
SendDay = Annotated[date, AfterValidator(send_day)]
FilterDay = Annotated[date, AfterValidator(filter_day)]
FilterTime = Annotated[AwareDatetime, AfterValidator(filter_time)]
