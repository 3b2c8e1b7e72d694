"""Planning: a treatment tag's steps become touchpoints due at local times (pure functions)."""

from __future__ import annotations

import calendar
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


@dataclass(frozen=True)
class PlannedStep:
    step: PlanStep
    due_at: datetime  # aware, UTC


def plan(hospital: HospitalConfig, tag: TreatmentTag, treated_on: date) -> list[PlannedStep]:
    """Every step of the tag's plan, due on its day at its local time in the hospital's zone."""
    planned = []
    for step in tag.plan:
        amount, unit = step.offset_parts
        local = datetime.combine(
            add_offset(treated_on, amount, unit), step.at, tzinfo=hospital.zone
        )
        planned.append(PlannedStep(step, local.astimezone(UTC)))
    return planned
