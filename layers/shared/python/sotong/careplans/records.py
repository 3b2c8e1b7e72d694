"""What the care-plan desk stores, as typed records: a case, its plan's activities (one per
agency task), a conference and its discussion of each case, the follow-up reviews, the audit.

Each record reads and writes its stored attributes (`from_item` / `to_item`, a plain dict
without keys or index attributes: only `sotong.careplans.repository` knows those); an attribute
a record does not name is kept in `extra` and written back unchanged.

The rules live here: an activity's status is a FHIR Task status and moves only as `TRANSITIONS`
allows; a review falls due a whole number of months after its conference (`review_due`, month
ends clamped: 31 January + 1 month is 28 or 29 February); every change carries a
`record_version`, the condition its write is made on.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, ClassVar, Literal, Self

from sotong import clock

TaskStatus = Literal[
    "requested",
    "accepted",
    "rejected",
    "in-progress",
    "on-hold",
    "completed",
    "cancelled",
    "failed",
]
TASK_STATUSES: tuple[TaskStatus, ...] = (
    "requested",
    "accepted",
    "rejected",
    "in-progress",
    "on-hold",
    "completed",
    "cancelled",
    "failed",
)
TRANSITIONS: Mapping[str, tuple[TaskStatus, ...]] = {
    "requested": ("accepted", "rejected", "cancelled"),
    "accepted": ("in-progress", "on-hold", "completed", "cancelled"),
    "in-progress": ("on-hold", "completed", "failed", "cancelled"),
    "on-hold": ("in-progress", "cancelled", "failed"),
    "rejected": (),
    "completed": (),
    "cancelled": (),
    "failed": (),
}
"""FHIR R4 Task statuses an activity may move to from each (the terminal ones: none)."""
OPEN: frozenset[str] = frozenset({"requested", "accepted", "in-progress", "on-hold"})
HOSPITAL_ONLY: frozenset[str] = frozenset({"cancelled"})
"""statuses only the hospital sets (an agency declines with `rejected`)"""
REVIEW_MONTHS: tuple[int, ...] = (1, 3)
REVIEW_TIME = time(9, 0)
"""local time a follow-up review falls due, and of an activity's reminder (the day before)"""


class TransitionError(ValueError):
    """An activity asked to move where its status does not allow."""


def add_months(day: date, months: int) -> date:
    """`day` moved `months` calendar months on, clamped to the month's end (31 Jan + 1 = 28/29
    Feb; 30 Nov + 3 = 28/29 Feb; 31 Mar + 1 = 30 Apr)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(
        year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1])
    )


def review_due(held_on: date, months: int, zone: tzinfo) -> datetime:
    """When the review `months` after a conference held on `held_on` falls due (09:00 local)."""
    return datetime.combine(add_months(held_on, months), REVIEW_TIME, tzinfo=zone)


def reminder_at(due: date, zone: tzinfo) -> datetime:
    """An activity's reminder: 09:00 local the day before it is due."""
    return datetime.combine(due - timedelta(days=1), REVIEW_TIME, tzinfo=zone)


def _known(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls) if f.name != "extra")


class _Record:
    __slots__ = ()
    extra: Mapping[str, Any]
    _lists: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        known = _known(cls)
        attributes = {
            k: v for k, v in item.items() if k not in ("pk", "sk") and not k.startswith("gsi")
        }
        values = {k: v for k, v in attributes.items() if k in known}
        for name in cls._lists:
            if name in values and values[name] is not None:
                values[name] = tuple(values[name])
        extra = {k: v for k, v in attributes.items() if k not in known}
        return cls(**values, extra=extra)  # type: ignore[call-arg]

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = dict(self.extra)
        for f in fields(self):  # type: ignore[arg-type]
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name in self._lists:
                value = [dict(v) if isinstance(v, Mapping) else v for v in value]
            elif isinstance(value, Mapping):
                value = dict(value)
            item[f.name] = value
        return item


@dataclass(frozen=True, slots=True, kw_only=True)
class CareCase(_Record):
    """A person with complex needs and their integrated support plan."""

    id: str
    name: str
    department: str
    """the hospital department that coordinates the case"""
    summary: str = ""
    """the needs as staff describe them (never sent in a message)"""
    contact_name: str | None = None
    contact_phone: str | None = None
    contact_relation: str = "self"
    """`self`, or who the guardian is (`son`, `daughter`, ...): notices go to this contact"""
    contact_consent: bool = False
    status: Literal["open", "closed"] = "open"
    created_by: str = ""
    created_at: str = ""
    updated_at: str | None = None
    record_version: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass(frozen=True, slots=True, kw_only=True)
class Activity(_Record):
    """One task of the plan, owned by one agency: a FHIR Task."""

    id: str
    case_id: str
    agency: str
    title: str
    due: str
    """the ISO date it is due by"""
    status: TaskStatus = "requested"
    note: str | None = None
    conference_id: str | None = None
    remind_at: str | None = None
    reminded_at: str | None = None
    created_by: str = ""
    created_at: str = ""
    updated_by: str | None = None
    updated_at: str | None = None
    record_version: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def awaits_reminder(self) -> bool:
        """On the reminder index: open, with a reminder not yet sent."""
        return self.is_open and self.remind_at is not None and self.reminded_at is None

    def can_move(self, status: str) -> bool:
        return status in TRANSITIONS.get(self.status, ())

    def move(self, status: TaskStatus, by: str, at: datetime, note: str | None = None) -> Activity:
        if not self.can_move(status):
            allowed = ", ".join(TRANSITIONS.get(self.status, ())) or "none (it is finished)"
            raise TransitionError(
                f"an activity that is {self.status} cannot become {status} (allowed: {allowed})"
            )
        return replace(
            self,
            status=status,
            note=note if note is not None else self.note,
            updated_by=by,
            updated_at=clock.iso(at),
            record_version=self.record_version + 1,
        )

    def reminded(self, at: datetime) -> Activity:
        return replace(
            self,
            reminded_at=clock.iso(at),
            updated_at=clock.iso(at),
            record_version=self.record_version + 1,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision(_Record):
    """What a conference decided for a case, and the activities it became."""

    text: str
    activities: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    _lists: ClassVar[tuple[str, ...]] = ("activities",)


@dataclass(frozen=True, slots=True, kw_only=True)
class Conference(_Record):
    """A case conference (의료·돌봄 통합지원회의): who came, which cases, what was decided."""

    id: str
    title: str
    held_on: str
    place: str | None = None
    agencies_present: tuple[str, ...] = ()
    cases: tuple[str, ...] = ()
    created_by: str = ""
    created_at: str = ""
    record_version: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)
    _lists: ClassVar[tuple[str, ...]] = ("agencies_present", "cases")


@dataclass(frozen=True, slots=True, kw_only=True)
class Discussion(_Record):
    """One case as a conference discussed it: its decisions, each with its activities."""

    case_id: str
    conference_id: str
    held_on: str
    title: str
    decisions: tuple[Mapping[str, Any], ...] = ()
    """`{text, activities: [activity id, ...]}` each"""
    created_at: str = ""
    record_version: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)
    _lists: ClassVar[tuple[str, ...]] = ("decisions",)


@dataclass(frozen=True, slots=True, kw_only=True)
class Review(_Record):
    """A follow-up review of a case, `months` after the conference that scheduled it."""

    id: str
    case_id: str
    conference_id: str
    months: int
    due_at: str
    status: Literal["scheduled", "due", "done"] = "scheduled"
    note: str | None = None
    created_at: str = ""
    updated_at: str | None = None
    updated_by: str | None = None
    record_version: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def due(self) -> datetime:
        return clock.parse(self.due_at)

    def fall_due(self, at: datetime) -> Review:
        if self.status != "scheduled":
            raise TransitionError(f"a review that is {self.status} cannot fall due")
        return replace(
            self, status="due", updated_at=clock.iso(at), record_version=self.record_version + 1
        )

    def done(self, by: str, at: datetime, note: str | None) -> Review:
        if self.status == "done":
            raise TransitionError("the review is done already")
        return replace(
            self,
            status="done",
            note=note,
            updated_by=by,
            updated_at=clock.iso(at),
            record_version=self.record_version + 1,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry(_Record):
    """One change of a case, kept in the case's partition: who, when, what, before and after."""

    case_id: str
    at: str
    by: str
    action: str
    target: str
    """what changed: `case`, `activity:<id>`, `review:<id>`, `conference:<id>`"""
    seq: int = 0
    """its place among the entries of one write"""
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


StoredRecord = CareCase | Activity | Conference | Discussion | Review


def audit(
    case_id: str,
    by: str,
    at: datetime,
    action: str,
    target: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    seq: int = 0,
) -> AuditEntry:
    return AuditEntry(
        case_id=case_id,
        at=clock.iso(at),
        by=by,
        action=action,
        target=target,
        seq=seq,
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None,
    )


def changed(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The attributes that differ (bookkeeping left out): the audit's before and after."""
    skip = {"record_version", "updated_at", "updated_by"}
    keys = [k for k in dict.fromkeys([*before, *after]) if k not in skip]
    diff = [k for k in keys if before.get(k) != after.get(k)]
    # an attribute not set is left out (as the table stores it), not written as None
    return (
        {k: before[k] for k in diff if before.get(k) is not None},
        {k: after[k] for k in diff if after.get(k) is not None},
    )


def statuses(records: Sequence[Activity]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.status] = counts.get(record.status, 0) + 1
    return counts
