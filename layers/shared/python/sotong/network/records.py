"""What the care network keeps, as typed records: the partners of the directory (read from the
hospital's HSDS file, never stored) and referrals (stored: `from_item` / `to_item`, plain dicts
without keys or index attributes; only `sotong.network.repository` knows those).

A referral is a closed loop, its status a FHIR `Task` status:

    requested -> accepted -> in-progress -> completed
    requested | accepted -> rejected          (the receiving side declines)
    requested | accepted | in-progress -> cancelled (the requesting side withdraws)

`accepted` again with a time schedules (or moves) the visit; `in-progress` is the child being
seen. The rules live here as methods returning new records; each change is appended to the
referral's history (who, when, what) and bumps its `version`, the condition of its write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo

from sotong import clock
from sotong.config.network import HsdsOrganization, HsdsSchedule, ReferralUrgency

TaskStatus = Literal["requested", "accepted", "in-progress", "completed", "rejected", "cancelled"]
Direction = Literal["to_partner", "to_hospital"]
HOSPITAL = "hospital"
"""The hospital's side of a referral (a partner's side is its organisation id)."""

TRANSITIONS: Mapping[TaskStatus, tuple[TaskStatus, ...]] = {
    "accepted": ("requested", "accepted"),
    "in-progress": ("accepted",),
    "completed": ("accepted", "in-progress"),
    "rejected": ("requested", "accepted"),
    "cancelled": ("requested", "accepted", "in-progress"),
}
"""the statuses a referral may move to, and from which"""
BY_REQUESTER: frozenset[TaskStatus] = frozenset({"cancelled"})
"""what the requesting side does; the receiving side does the rest"""
FINAL: frozenset[str] = frozenset({"completed", "rejected", "cancelled"})
_SEOUL = ZoneInfo("Asia/Seoul")


class TransitionError(ValueError):
    """A referral asked to move where its status does not allow."""

    def __init__(self, status: str, target: str) -> None:
        allowed = [t for t, sources in TRANSITIONS.items() if status in sources]
        super().__init__(
            f"a {status} referral cannot become {target}"
            + (f"; it may become {', '.join(allowed)}" if allowed else "; it is final")
        )
        self.allowed = allowed


@dataclass(frozen=True, slots=True, kw_only=True)
class Partner:
    """A partner clinic, pharmacy or hospital of the directory (an HSDS organization with its
    first service and location)."""

    id: str
    name: str
    kind: str
    phone: str
    address: str
    latitude: float | None
    longitude: float | None
    description: str
    treats: tuple[tuple[str, str], ...]
    """(code, Korean term) of what it treats or dispenses"""
    schedules: tuple[HsdsSchedule, ...]

    @classmethod
    def from_hsds(cls, organization: HsdsOrganization) -> Partner:
        service = organization.services[0]
        location = organization.locations[0]
        address = location.addresses[0] if location.addresses else None
        phones = service.phones or organization.phones
        schedules = tuple(s for svc in organization.services for s in svc.schedules)
        treats = tuple(
            dict.fromkeys(
                (a.taxonomy_term.code, a.taxonomy_term.term)
                for svc in organization.services
                for a in svc.attributes
                if a.taxonomy_term.taxonomy != "sotong-partner-kind"
                and a.taxonomy_term.code not in ("clinic", "pharmacy", "hospital")
            )
        )
        return cls(
            id=organization.id,
            name=organization.name,
            kind=organization.kind,
            phone=phones[0].number,
            address=address.address_1 if address else "",
            latitude=location.latitude,
            longitude=location.longitude,
            description=organization.description or service.description or "",
            treats=treats,
            schedules=schedules,
        )

    def treats_any(self, codes: set[str]) -> bool:
        return not codes or bool(codes & {code for code, _ in self.treats})


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One change in a referral's history."""

    at: str
    by: str
    side: str
    status: str
    note: str | None = None
    scheduled_for: str | None = None

    def to_item(self) -> dict[str, Any]:
        return {k: v for k, v in _asdict(self).items() if v is not None}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Step:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in item.items() if k in names})


def _asdict(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Referral:
    """A child's referral between the hospital and a partner, its status a FHIR `Task` status."""

    id: str
    direction: Direction
    partner_id: str
    """the partner on the other side from the hospital (requesting or receiving)"""
    urgency: ReferralUrgency
    reason: str
    """for the receiving clinician only: never in a message to the guardian"""
    child_name: str
    child_birth_date: str | None = None
    guardian_name: str
    guardian_phone: str
    guardian_consent: bool = False
    status: TaskStatus = "requested"
    requested_at: str
    requested_by: str
    department: str | None = None
    accepted_at: str | None = None
    scheduled_for: str | None = None
    seen_at: str | None = None
    completed_at: str | None = None
    closed_at: str | None = None
    status_reason: str | None = None
    escalate_at: str | None = None
    """when an unanswered referral pages the on-call contact (None: never)"""
    escalated_at: str | None = None
    erased_at: str | None = None
    """when the guardian's or child's erasure (`sotong.erasure`) anonymised it"""
    version: int = 1
    history: tuple[Step, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        names = {f.name for f in fields(cls)} - {"extra"}
        attributes = {
            k: v for k, v in item.items() if k not in ("pk", "sk") and not k.startswith("gsi")
        }
        known = {k: v for k, v in attributes.items() if k in names}
        known["history"] = tuple(Step.from_item(s) for s in known.get("history") or ())
        if "version" in known:
            known["version"] = int(known["version"])
        return cls(**known, extra={k: v for k, v in attributes.items() if k not in names})

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = dict(self.extra)
        for name, value in _asdict(self).items():
            if name == "extra" or value is None:
                continue
            item[name] = [s.to_item() for s in value] if name == "history" else value
        return item

    # --- who is who ---------------------------------------------------------------------------
    @property
    def requester(self) -> str:
        return HOSPITAL if self.direction == "to_partner" else self.partner_id

    @property
    def receiver(self) -> str:
        return self.partner_id if self.direction == "to_partner" else HOSPITAL

    @property
    def month(self) -> str:
        """The month of the request, in Seoul (the network report's period)."""
        return clock.parse(self.requested_at).astimezone(_SEOUL).strftime("%Y-%m")

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def waits_for_answer(self) -> bool:
        """Still unanswered and not yet escalated: on the escalation index."""
        return (
            self.status == "requested" and self.escalate_at is not None and not (self.escalated_at)
        )

    # --- rules --------------------------------------------------------------------------------
    def may_act(self, side: str, target: TaskStatus) -> bool:
        return side == (self.requester if target in BY_REQUESTER else self.receiver)

    def moved(
        self,
        target: TaskStatus,
        *,
        by: str,
        side: str,
        at: datetime,
        note: str | None = None,
        scheduled_for: datetime | None = None,
    ) -> Referral:
        if self.status not in TRANSITIONS.get(target, ()):
            raise TransitionError(self.status, target)
        if target == "accepted" and self.status == "accepted" and scheduled_for is None:
            raise TransitionError(self.status, target)
        stamp = clock.iso(at)
        changes: dict[str, Any] = {"status": target, "version": self.version + 1}
        if target == "accepted" and self.accepted_at is None:
            changes["accepted_at"] = stamp
        if scheduled_for is not None:
            changes["scheduled_for"] = clock.iso(scheduled_for)
        if target == "in-progress":
            changes["seen_at"] = stamp
        if target == "completed":
            changes["completed_at"] = stamp
            if self.seen_at is None:
                changes["seen_at"] = stamp
        if target in FINAL:
            changes["closed_at"] = stamp
        if target in ("rejected", "cancelled") and note:
            changes["status_reason"] = note
        step = Step(
            at=stamp,
            by=by,
            side=side,
            status=target,
            note=note,
            scheduled_for=changes.get("scheduled_for") if scheduled_for else None,
        )
        return replace(self, **changes, history=(*self.history, step))

    def escalated(self, at: datetime) -> Referral:
        step = Step(
            at=clock.iso(at),
            by="referral_sweeper",
            side="system",
            status=self.status,
            note="unanswered: on-call paged",
        )
        return replace(
            self,
            escalated_at=clock.iso(at),
            version=self.version + 1,
            history=(*self.history, step),
        )

    def anonymised(self, at: datetime) -> Referral:
        """What is left after an erasure (PIPA): only what the monthly network report counts
        (partner, direction, urgency, department, status, timestamps, who on staff acted); the
        child, the guardian, the reason and every note go, and no message reaches anyone."""
        history = tuple(
            Step(at=s.at, by=s.by, side=s.side, status=s.status, scheduled_for=s.scheduled_for)
            for s in self.history
        )
        return replace(
            self,
            reason="",
            child_name="",
            child_birth_date=None,
            guardian_name="",
            guardian_phone="",
            guardian_consent=False,
            status_reason=None,
            erased_at=clock.iso(at),
            version=self.version + 1,
            history=history,
            extra={},
        )

    def minutes_to_accept(self) -> float | None:
        return _minutes(self.requested_at, self.accepted_at)

    def minutes_to_be_seen(self) -> float | None:
        return _minutes(self.requested_at, self.seen_at)


def _minutes(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    delta: timedelta = clock.parse(end) - clock.parse(start)
    return round(delta.total_seconds() / 60, 1)
