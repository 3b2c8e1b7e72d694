"""What the recall desk stores, as typed records: patients, treatments, touchpoints, bookings and
visits, conversation messages.

Each record reads and writes the attributes stored today (`from_item` / `to_item`, a plain
dict without keys or index attributes: only `sotong.recall.repository` knows those), so the
table and every API answer stay as they are; an attribute a record does not name is kept in
`extra` and written back unchanged. Timestamps stay the stored ISO strings (`clock.iso`).

The lifecycle rules live here as methods returning new records: a touchpoint goes
`planned -> queued -> converted`, or `planned -> cancelled`, and may be deferred while planned;
`skipped` is for a step already past when its treatment was recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, ClassVar, Self

from sotong import clock

Day = date

PAST_GRACE = timedelta(hours=12)
"""a step due longer ago than this when its treatment is recorded is skipped, not sent late"""

TRANSITIONS: Mapping[str, tuple[str, ...]] = {
    "queued": ("planned",),
    "cancelled": ("planned",),
    "converted": ("queued",),
    "planned": ("planned",),
}
"""the statuses a touchpoint may move to, and from which"""


class TransitionError(ValueError):
    """A touchpoint asked to move where its status does not allow."""


def _known(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls) if f.name != "extra")


def _split(cls: type, item: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    known = _known(cls)
    attributes = {
        k: v for k, v in item.items() if k not in ("pk", "sk") and not k.startswith("gsi")
    }
    return (
        {k: v for k, v in attributes.items() if k in known},
        {k: v for k, v in attributes.items() if k not in known},
    )


class _Record:
    """`to_item`: the stored attributes, None left out (DynamoDB stores no None)."""

    __slots__ = ()
    extra: Mapping[str, Any]
    _lists: ClassVar[tuple[str, ...]] = ()

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = dict(self.extra)
        for f in fields(self):  # type: ignore[arg-type]
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name in self._lists:
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            item[f.name] = value
        return item


@dataclass(frozen=True, slots=True, kw_only=True)
class Patient(_Record):
    """A patient: contact, consents, pause, next booking, last visit and latest treatment dates."""

    id: str
    name: str
    phone: str | None = None
    email: str | None = None
    chart_no: str | None = None
    consents: Mapping[str, bool] | None = None
    paused: bool | None = None
    pause_reason: str | None = None
    next_booking_at: str | None = None
    last_visit_at: str | None = None
    last_treatment: Mapping[str, str] | None = None
    """the latest date of each treatment tag (for `repeat_treatment` and segments)"""
    last_ad_at: str | None = None
    last_ad_by: str | None = None
    source: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        known, extra = _split(cls, item)
        return cls(**known, extra=extra)

    def consent(self, kind: str) -> bool:
        return bool((self.consents or {}).get(kind))

    @property
    def marketing_consent(self) -> bool:
        return self.consent("marketing")

    def latest_treatment(self, tag: str) -> str | None:
        return (self.last_treatment or {}).get(tag)

    def with_pause(self, paused: bool, reason: str | None) -> Patient:
        return replace(self, paused=paused, pause_reason=reason or "")

    def advertised_after(self, cutoff: datetime) -> bool:
        """Sent an advertising message after `cutoff` (the frequency cap holds them back)."""
        return bool(self.last_ad_at) and clock.parse(str(self.last_ad_at)) > cutoff

    def with_ad(self, at: datetime, by: str) -> Patient:
        return replace(self, last_ad_at=clock.iso(at), last_ad_by=by)

    def noting_treatment(self, tag: str, day: str) -> Patient:
        """The latest date of `tag` after a treatment on `day` (an earlier one changes nothing)."""
        latest = dict(self.last_treatment or {})
        if latest.get(tag, "") >= day:
            return self
        return replace(self, last_treatment={**latest, tag: day})

    def noting(self, appointment: AppointmentRecord) -> Patient:
        """A booking moves `next_booking_at`, a visit `last_visit_at`, to the later time."""
        at = appointment.at
        if appointment.kind == "booking":
            if self.next_booking_at is not None and self.next_booking_at >= at:
                return self
            return replace(self, next_booking_at=at)
        if self.last_visit_at is not None and self.last_visit_at >= at:
            return self
        return replace(self, last_visit_at=at)


@dataclass(frozen=True, slots=True, kw_only=True)
class Treatment(_Record):
    """A treatment of a patient: its tag, department and date, and who recorded it."""

    id: str
    patient_id: str
    tag: str
    department: str
    date: str
    note: str | None = None
    recorded_by: str | None = None
    recorded_at: str | None = None
    source: str | None = None
    date_changed_by: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        known, extra = _split(cls, item)
        return cls(**known, extra=extra)

    @property
    def day(self) -> Day:
        return Day.fromisoformat(self.date)

    def moved_to(self, day: Day, by: str) -> Treatment:
        return replace(self, date=day.isoformat(), date_changed_by=by)


@dataclass(frozen=True, slots=True, kw_only=True)
class Touchpoint(_Record):
    """One step of a treatment's recall plan for a patient: the message due, and its status."""

    id: str
    """`<treatment id>.<step>`"""
    patient_id: str
    treatment_id: str
    tag: str
    step: str
    template: str
    purpose: str
    cancel_if: tuple[str, ...] = ()
    treatment_date: str
    due_at: str
    status: str
    status_reason: str | None = None
    queued_at: str | None = None
    converted_at: str | None = None
    deferred_reason: str | None = None
    updated_at: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _lists: ClassVar[tuple[str, ...]] = ("cancel_if",)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        known, extra = _split(cls, item)
        known["cancel_if"] = tuple(known.get("cancel_if") or ())
        return cls(**known, extra=extra)

    @classmethod
    def planned(
        cls,
        *,
        patient_id: str,
        treatment_id: str,
        tag: str,
        step: str,
        template: str,
        purpose: str,
        cancel_if: tuple[str, ...],
        treatment_date: date,
        due: datetime,
        now: datetime,
    ) -> Touchpoint:
        """A step of the plan as recorded at `now`: skipped when long past, sent with the next
        run when just past."""
        status, reason = "planned", None
        if due < now - PAST_GRACE:
            status, reason = "skipped", "already past when recorded"
        elif due <= now:
            due = now + timedelta(minutes=1)
        return cls(
            id=f"{treatment_id}.{step}",
            patient_id=patient_id,
            treatment_id=treatment_id,
            tag=tag,
            step=step,
            template=template,
            purpose=purpose,
            cancel_if=cancel_if,
            treatment_date=treatment_date.isoformat(),
            due_at=clock.iso(due),
            status=status,
            status_reason=reason,
        )

    @property
    def due(self) -> datetime:
        return clock.parse(self.due_at)

    @property
    def sent_at(self) -> str:
        """When it went out (its due time for one queued before `queued_at` was kept)."""
        return self.queued_at or self.due_at

    @property
    def is_planned(self) -> bool:
        return self.status == "planned"

    def is_due(self, now: datetime) -> bool:
        return self.is_planned and self.due <= now

    def sent_since(self, since: datetime) -> bool:
        """Queued (or converted since) at or after `since`: a reply may be about it."""
        return self.status in ("queued", "converted") and clock.parse(self.sent_at) >= since

    def _move(self, status: str, updated: datetime, **changes: Any) -> Touchpoint:
        if self.status not in TRANSITIONS[status]:
            raise TransitionError(f"touchpoint {self.id} is {self.status}, not {status}-able")
        return replace(self, status=status, updated_at=clock.iso(updated), **changes)

    def queue(self, at: datetime, *, updated: datetime | None = None) -> Touchpoint:
        return self._move("queued", updated or at, queued_at=clock.iso(at))

    def cancel(self, reason: str, at: datetime) -> Touchpoint:
        return self._move("cancelled", at, status_reason=reason)

    def convert(self, why: str, at: datetime) -> Touchpoint:
        return self._move("converted", at, status_reason=why, converted_at=clock.iso(at))

    def defer(self, due: datetime, reason: str, at: datetime) -> Touchpoint:
        """Later, still planned (the frequency cap)."""
        return self._move("planned", at, due_at=clock.iso(due), deferred_reason=reason)

    def rescheduled(self, fresh: Touchpoint) -> Touchpoint | None:
        """This step planned again from a moved treatment date (`fresh`): only while it is
        still planned (what is sent, cancelled or skipped stays)."""
        return fresh if self.is_planned else None

    def deferred_due(self, after: datetime, zone: tzinfo) -> datetime:
        """The first time at or after `after` at this touchpoint's own local time of day."""
        planned = self.due.astimezone(zone)
        moved = datetime.combine(after.astimezone(zone).date(), planned.time(), tzinfo=zone)
        if moved < after:
            moved += timedelta(days=1)
        return moved.astimezone(UTC)

    def cancel_reason(self, patient: Patient | None, now: datetime, zone: tzinfo) -> str | None:
        """Why sending it now would be pointless (its `cancel_if` conditions), or None."""
        if patient is None:
            return "patient_gone"
        conditions = self.cancel_if
        treated = datetime.combine(
            date.fromisoformat(self.treatment_date), datetime.max.time(), tzinfo=zone
        ).astimezone(UTC)
        if "patient_paused" in conditions and patient.paused:
            return "patient_paused"
        booking = patient.next_booking_at
        if "future_booking" in conditions and booking and clock.parse(booking) > now:
            return "future_booking"
        visit = patient.last_visit_at
        if "visit_since" in conditions and visit and clock.parse(visit) > treated:
            return "visit_since"
        latest = patient.latest_treatment(self.tag)
        if "repeat_treatment" in conditions and latest and latest > self.treatment_date:
            return "repeat_treatment"
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppointmentRecord(_Record):
    """A booking (ahead) or a visit (done) recorded by staff."""

    patient_id: str
    kind: str
    at: str
    note: str | None = None
    recorded_by: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def patient_attribute(self) -> str:
        return "next_booking_at" if self.kind == "booking" else "last_visit_at"

    def to_item(self) -> dict[str, Any]:
        item = _Record.to_item(self)
        item.pop("patient_id")
        return item


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationMessage(_Record):
    """One message of a patient's conversation (`direction` in: from the patient)."""

    id: str
    """`<at>#<unique tail>`: time-ordered, unique"""
    direction: str
    text: str
    by: str
    at: str
    touchpoint: str | None = None
    provider_message_id: str | None = None
    complaint_id: str | None = None
    urgency: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        known, extra = _split(cls, item)
        return cls(**known, extra=extra)
