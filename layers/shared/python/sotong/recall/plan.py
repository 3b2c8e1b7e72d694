"""Planning: a treatment tag's steps become touchpoints due at local times (pure functions).

Each step sends inside its window, `[at, at + spread_minutes)` local time: every patient's
touchpoint sits at a fixed offset in it, a hash of the patient and the step, so a day's
touchpoints spread over the window instead of falling due in one second, and planning the same
treatment again (an import run twice, a moved date) gives the same time. A step before the
treatment (D-1 precautions) stays on its day, so still before the visit.
"""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sotong.config.schema import HospitalConfig, PlanStep, TreatmentTag


def add_offset(day: date, amount: int, unit: str) -> date:
    """`+6mo` from 31 August is 28/29 February: months clamp to the month's last day."""
    if unit == "d":
        return day + timedelta(days=amount)
    if unit == "w":
        return day + timedelta(weeks=amount)
    month_index = day.month - 1 + amount
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def spread_offset(patient_id: str | None, step: PlanStep) -> timedelta:
    """Where in the step's window this patient's touchpoint goes (whole seconds, stable)."""
    window = step.spread_minutes * 60
    if not window or not patient_id:
        return timedelta(0)
    digest = hashlib.sha256(f"{patient_id}\x00{step.id}".encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % window)


@dataclass(frozen=True)
class PlannedStep:
    """A step of a treatment tag's plan, with the time its touchpoint is due."""

    step: PlanStep
    due_at: datetime  # aware, UTC


def plan(
    hospital: HospitalConfig, tag: TreatmentTag, treated_on: date, patient_id: str | None = None
) -> list[PlannedStep]:
    """Every step of the tag's plan, due on its day inside its local window in the hospital's
    zone (at the window's start when no patient is given)."""
    planned = []
    for step in tag.plan:
        amount, unit = step.offset_parts
        local = datetime.combine(
            add_offset(treated_on, amount, unit), step.at, tzinfo=hospital.zone
        )
        local += spread_offset(patient_id, step)  # wall-clock arithmetic: stays on the day
        planned.append(PlannedStep(step, local.astimezone(UTC)))
    return planned
