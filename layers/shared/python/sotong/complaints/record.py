"""A complaint as the desk handles it: typed fields for what the records table stores, and its
lifecycle rules (status transitions, the SLA clocks, the next check, the due level) as methods
that return a new record.

`Complaint.from_item` reads the stored attributes (without the key and index attributes, which
`complaints.repository` alone knows) and `to_item` gives them back with the same names and
shapes. Attributes the record has no field for are kept in `extra` and written back as read.
A plain dataclass, not a pydantic model: a function pays nothing to build one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from sotong import clock
from sotong.complaints import sla as clocks
from sotong.complaints.model import OPEN_STATUSES, TRANSITIONS, State, state_of
from sotong.errors import Conflict

AWAITING = "awaiting_patient"
CLOCKS = ("ack", "resolve")
"""The SLA clocks, in the order they are checked: acknowledging, then resolving."""
LEVELS = (1, 2)
"""Level 1 is due at `<clock>_due` (the department head), level 2 at `<clock>_due_2` (the CS
admin)."""

CalendarOf = Callable[[str], clocks.BusinessCalendar | None]
"""The calendar a clock kind ("calendar", "business") runs on: None for around the clock."""


def _dropping_none(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One entry of a complaint's history: a transition, or a note on the same status."""

    status: str
    by: str
    at: str
    note: str | None = None

    @classmethod
    def from_item(cls, data: Mapping[str, Any]) -> Event:
        return cls(status=data["status"], by=data["by"], at=data["at"], note=data.get("note"))

    def to_item(self, *, keep_none: bool = False) -> dict[str, Any]:
        item = {"status": self.status, "by": self.by, "note": self.note, "at": self.at}
        return item if keep_none else _dropping_none(item)


@dataclass(frozen=True, slots=True, kw_only=True)
class StaffReply:
    """A staff member's reply recorded on a complaint: when, by whom, and the message."""

    at: str
    by: str
    message: str

    @classmethod
    def from_item(cls, data: Mapping[str, Any]) -> StaffReply:
        return cls(at=data["at"], by=data["by"], message=data["message"])

    def to_item(self) -> dict[str, Any]:
        return {"at": self.at, "by": self.by, "message": self.message}


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause:
    """A span the SLA clocks stood still (waiting for the patient), stored as `from` / `to`."""

    start: str
    end: str

    @classmethod
    def from_item(cls, data: Mapping[str, Any]) -> Pause:
        return cls(start=data["from"], end=data["to"])

    def to_item(self) -> dict[str, Any]:
        return {"from": self.start, "to": self.end}


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    """How the patient may be reached (what they gave, or the number a text came from)."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None

    @classmethod
    def from_item(cls, data: Mapping[str, Any] | None) -> Contact | None:
        if not data:
            return None
        return cls(name=data.get("name"), phone=data.get("phone"), email=data.get("email"))

    def to_item(self) -> dict[str, Any]:
        return _dropping_none({"name": self.name, "phone": self.phone, "email": self.email})

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(a for a in (self.phone, self.email) if a)


@dataclass(frozen=True, slots=True, kw_only=True)
class Complaint:
    """A stored complaint. Times are ISO strings in UTC, as stored (`clock.iso`). The fields
    are the stored attributes, in the order intake writes them (then the later ones).

        `classifier` (the guess: kind, category, urgency, matched, by, and the `second_opinion`),
        `routing` (department, by, and `corrected_by` / `was` after staff moved it), `correction`
        (what staff changed, by, at), `survey` (score, comment, at) and `source` (kind and refs of
        a recall reply that became this complaint) are JSON objects as stored."""

    id: str
    code: str
    version: int = 1
    fingerprint: str | None = None
    channel: str
    kind: str
    category: str
    urgency: str
    department: str
    status: str
    text: str
    visit_date: str | None = None
    contact: Contact | None = None
    consent_to_contact: bool = False
    entered_by: str | None = None
    classifier: Mapping[str, Any] = field(default_factory=dict)
    routing: Mapping[str, Any] = field(default_factory=dict)
    created_at: str
    updated_at: str
    sla_clocks: Mapping[str, str] | None = None
    ack_due: str
    ack_due_2: str | None = None
    resolve_due: str
    resolve_due_2: str | None = None
    escalations: Mapping[str, str] = field(default_factory=dict)
    """`<clock>:<level>` -> when that escalation was sent"""
    replies: tuple[StaffReply, ...] = ()
    history: tuple[Event, ...] = ()
    message_count: int | None = None
    """SMS/KakaoTalk messages the complaint received (complaints a text started)"""
    text_continues: bool | None = None
    source: Mapping[str, Any] | None = None
    sla_next_check: str | None = None
    acknowledged_at: str | None = None
    assignee: str | None = None
    correction: Mapping[str, Any] | None = None
    awaiting_since: str | None = None
    sla_pauses: tuple[Pause, ...] = ()
    outcome: str | None = None
    resolved_at: str | None = None
    closed_at: str | None = None
    survey_token: str | None = None
    survey: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    """stored attributes the record has no field for, written back as read"""

    # --- the stored attributes ------------------------------------------------------------------
    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Complaint:
        known = {k: item[k] for k in _FIELDS if k in item}
        known["contact"] = Contact.from_item(item.get("contact"))
        known["replies"] = tuple(StaffReply.from_item(r) for r in item.get("replies") or ())
        known["history"] = tuple(Event.from_item(e) for e in item.get("history") or ())
        known["sla_pauses"] = tuple(Pause.from_item(p) for p in item.get("sla_pauses") or ())
        for name in ("escalations", "classifier", "routing"):
            known[name] = dict(item.get(name) or {})
        known["extra"] = {k: v for k, v in item.items() if k not in _FIELDS}
        return cls(**known)

    def to_item(self) -> dict[str, Any]:
        """The stored attributes (none that is unset), without key or index attributes."""
        item: dict[str, Any] = {}
        for name in _FIELDS:
            value = getattr(self, name)
            if name == "contact":
                value = (value.to_item() or None) if value is not None else None
            elif name in ("replies", "history"):
                value = [v.to_item() for v in value]
            elif name == "sla_pauses":
                value = [p.to_item() for p in value] or None
            elif isinstance(value, Mapping):
                value = dict(value)
            if value is not None:
                item[name] = value
        return {**item, **self.extra}

    def answer(self) -> dict[str, Any]:
        """The complaint as the desk answers a change it wrote: the stored attributes, with the
        next check and the new event's note shown as null when the change left them unset."""
        item = self.to_item()
        item["sla_next_check"] = self.sla_next_check
        if self.history:
            item["history"][-1] = self.history[-1].to_item(keep_none=True)
        return item

    # --- where it stands ------------------------------------------------------------------------
    @property
    def state(self) -> State:
        return state_of(self.status)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def allowed(self) -> tuple[str, ...]:
        """The statuses it may go to from its own."""
        return TRANSITIONS[self.status]

    @property
    def phone(self) -> str | None:
        return self.contact.phone if self.contact else None

    @property
    def corrected_at(self) -> str | None:
        at = (self.correction or {}).get("at")
        return at if isinstance(at, str) else None

    def times_reached(self, status: str) -> int:
        return sum(1 for e in self.history if e.status == status)

    # --- SLA ------------------------------------------------------------------------------------
    def clock_running(self, name: str) -> bool:
        if self.status == AWAITING:  # paused while the patient is asked something
            return False
        if name == "ack":
            return self.status == "received" and not self.acknowledged_at
        return self.is_open

    def deadline(self, name: str, level: int) -> datetime:
        """When clock `name` reaches `level`."""
        due = clock.parse(self._due(name))
        if level == 1:
            return due
        second = self._due_2(name)
        if second:
            return clock.parse(second)
        created = clock.parse(self.created_at)  # stored before `<clock>_due_2` was
        return due + (due - created) / 2

    def due_level(self, now: datetime) -> tuple[str | None, int]:
        """The clock and level due for escalation at `now`, or (None, 0)."""
        for name in CLOCKS:
            if not self.clock_running(name):
                continue
            for level in LEVELS:
                if f"{name}:{level}" in self.escalations:
                    continue
                if self.deadline(name, level) <= now:
                    return name, level
                return None, 0
        return None, 0

    def next_check(self, floor: str | None = None) -> str | None:
        """When the sweep must next look at the complaint, or None while no clock runs (waiting
        for the patient, resolved, closed). Never before `floor` (the write's time): the sweep
        reads only what falls due after its watermark."""
        for name in CLOCKS:
            if not self.clock_running(name):
                continue
            for level in LEVELS:
                if f"{name}:{level}" not in self.escalations:
                    at = clock.iso(self.deadline(name, level))
                    return max(at, floor) if floor else at
        return None

    def _due(self, name: str) -> str:
        return self.ack_due if name == "ack" else self.resolve_due

    def _due_2(self, name: str) -> str | None:
        return self.ack_due_2 if name == "ack" else self.resolve_due_2

    def resumed(self, at: str, calendar_of: CalendarOf) -> Complaint:
        """The patient answered or staff went on: every due time moves by the time the clocks
        were paused, counted in each clock's own hours (business hours for a business clock)."""
        since = self.awaiting_since
        if not since:
            return self
        kinds = self.sla_clocks or {}
        moved: dict[str, tuple[str, str]] = {}
        for name in CLOCKS:
            calendar = calendar_of(kinds.get(name, "calendar"))
            paused = clocks.elapsed(clock.parse(since), clock.parse(at), calendar)
            first = clocks.due(clock.parse(self._due(name)), paused, calendar)
            second = clocks.due(self.deadline(name, 2), paused, calendar)
            moved[name] = clock.iso(first), clock.iso(second)
        return replace(
            self,
            awaiting_since=None,
            sla_pauses=(*self.sla_pauses, Pause(start=since, end=at)),
            ack_due=moved["ack"][0],
            ack_due_2=moved["ack"][1],
            resolve_due=moved["resolve"][0],
            resolve_due_2=moved["resolve"][1],
        )

    # --- changes --------------------------------------------------------------------------------
    def recorded(
        self, status: str, by: str, note: str | None, at: str, calendar_of: CalendarOf
    ) -> Complaint:
        """The complaint in `status` with its history event: a new version, its clocks paused
        (waiting for the patient) or resumed, its next SLA check, acknowledged if it now is."""
        was = self.status
        after = replace(
            self,
            status=status,
            updated_at=at,
            version=self.version + 1,
            history=(*self.history, Event(status=status, by=by, note=note, at=at)),
        )
        if status == AWAITING and was != AWAITING:
            after = replace(after, awaiting_since=at)
        elif was == AWAITING and status != AWAITING:
            after = after.resumed(at, calendar_of)
        after = replace(after, sla_next_check=after.next_check(floor=at))
        if status == "acknowledged" and not after.acknowledged_at:
            after = replace(after, acknowledged_at=at)
        return after

    def transition(
        self, to: str, *, by: str, note: str | None, at: str, calendar_of: CalendarOf
    ) -> Complaint:
        """`recorded`, refused (409 naming the allowed statuses) unless the lifecycle allows
        going from its status to `to`."""
        if to not in self.allowed:
            raise Conflict(
                f"cannot go from {self.status} to {to}; allowed: {', '.join(self.allowed)}",
                field="body.status",
                allowed=list(self.allowed),
            )
        return self.recorded(to, by, note, at, calendar_of)

    def acknowledged(self, at: str) -> Complaint:
        """Any staff action on a received complaint acknowledges it (once)."""
        if self.status != "received" or self.acknowledged_at:
            return self
        return replace(self, acknowledged_at=at)

    def escalated(
        self, name: str, level: int, who: str, at: str, calendar_of: CalendarOf
    ) -> Complaint:
        """Clock `name` escalated to `level` (`who`: the one alerted): once per level."""
        after = replace(self, escalations={**self.escalations, f"{name}:{level}": at})
        return after.recorded(self.status, "system", f"SLA 초과({name}) → {who}", at, calendar_of)

    def reopening(self) -> Complaint:
        """Going back in progress: the resolve clock escalates again (from level 1)."""
        return replace(
            self, escalations={k: v for k, v in self.escalations.items() if k.startswith("ack")}
        )


_FIELDS = tuple(f.name for f in fields(Complaint) if f.name != "extra")
