"""The network desk: the partner directory's hours (who is open now, or at a given time, across
nights, weekends, 설날 and 추석), referrals between partners and the hospital as a closed loop,
the sweep that pages the on-call contact for an unanswered urgent referral, and the monthly
network report.

Storage is a port (`ReferralRepository`); the directory is the hospital config's HSDS file. Every
change that tells the guardian writes the message request in the same transaction; the text names
the child, the place and the time, never the reason for the referral (templates are checked by
the config, `sotong.health_terms`).
"""

from __future__ import annotations

import hashlib
import secrets
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sotong import clock
from sotong.config.network import KINDS, URGENCIES, ReferralUrgency
from sotong.config.schema import HospitalConfig
from sotong.errors import BadRequest, Conflict, Forbidden, NotFound
from sotong.network import hours
from sotong.network.records import (
    HOSPITAL,
    Direction,
    Partner,
    Referral,
    Step,
    TaskStatus,
    TransitionError,
)
from sotong.network.repository import ReferralRepository
from sotong.notify.model import MessageRequest, Recipient
from sotong.staff import Staff

KIND_GROUPS = {"clinic": ("clinic", "hospital")}
"""what a guardian's choice covers: a clinic is a doctor's, a clinic's or a hospital's"""
KIND_NAMES = {"clinic": "의원", "pharmacy": "약국", "hospital": "병원"}
URGENCY_NAMES = {"emergent": "응급", "urgent": "긴급", "routine": "일반"}
TEMPLATES: dict[str, str] = {
    "requested": "referral_sent",
    "scheduled": "referral_scheduled",
    "accepted": "referral_accepted",
    "completed": "referral_completed",
    "rejected": "referral_declined",
    "cancelled": "referral_cancelled",
}
"""the guardian's message of each step (`in-progress`, the visit itself, sends none)"""
URGENT_NOW = frozenset({"emergent", "urgent"})
"""the urgencies whose guardian messages go at once, quiet hours or not (the child is being
referred now); a routine referral's wait for the morning"""
ALWAYS = timedelta(hours=24)
"""open this long from now on: shown as open around the clock"""
SWEEP = "referral_escalation"
FIRST_SWEEP = timedelta(days=2)
"""how far back a sweeper with no watermark looks"""


@dataclass(frozen=True, slots=True, kw_only=True)
class NewReferral:
    """A referral as the edge validated it."""

    partner_id: str | None
    urgency: ReferralUrgency
    reason: str
    child_name: str
    child_birth_date: str | None
    guardian_name: str
    guardian_phone: str
    guardian_consent: bool
    department: str | None = None


def side_of(staff: Staff) -> str:
    """The hospital, or the partner organisation a partner user signs in for."""
    return (staff.organisation or "") if staff.outside else HOSPITAL


class NetworkDesk:
    def __init__(self, hospital: HospitalConfig, referrals: ReferralRepository | None = None):
        self.hospital = hospital
        self._referrals = referrals

    @property
    def referrals(self) -> ReferralRepository:
        if self._referrals is None:  # built on first use: the public page never needs it
            from sotong.network.repository import DynamoReferralRepository

            self._referrals = DynamoReferralRepository(self.hospital.hospital_id)
        return self._referrals

    # --- the directory ----------------------------------------------------------------------------
    @cached_property
    def partners(self) -> tuple[Partner, ...]:
        network = self.hospital.network
        if network is None or network.hsds is None:
            return ()
        return tuple(Partner.from_hsds(o) for o in network.hsds.organizations)

    def partner(self, partner_id: str) -> Partner | None:
        return next((p for p in self.partners if p.id == partner_id), None)

    def open_at(
        self, at: datetime, kind: str | None = None, treats: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Who is open at `at` (and when the others open next), open ones first by closing
        time, latest first: what 지금 진료 가능한 곳 shows."""
        zone = self.hospital.zone
        wanted = set(treats)
        local = at.astimezone(zone)
        open_now: list[dict[str, Any]] = []
        closed: list[dict[str, Any]] = []
        for partner in self.partners:
            if kind and partner.kind not in KIND_GROUPS.get(kind, (kind,)):
                continue
            if not partner.treats_any(wanted):
                continue
            entry = self._entry(partner)
            span = hours.open_span(partner.schedules, at, zone)
            if span is not None:
                until = hours.until_closed(partner.schedules, span, zone)
                entry |= {
                    "open": True,
                    "closes_at": until.astimezone(zone).isoformat(),
                    "closes": "24시간" if until - at >= ALWAYS else _when(until, local),
                    "hours": span.description,
                    "holiday_hours": span.holiday,
                }
                open_now.append(entry)
            else:
                upcoming = hours.next_opening(partner.schedules, at, zone)
                entry |= {
                    "open": False,
                    "next_opens_at": upcoming.opens.astimezone(zone).isoformat()
                    if upcoming
                    else None,
                    "next_opens": _when(upcoming.opens, local) if upcoming else None,
                }
                closed.append(entry)
        # doctors first (a pharmacy needs a prescription first), each latest-closing first
        open_now.sort(key=lambda e: e["closes_at"], reverse=True)
        open_now.sort(key=lambda e: e["kind"] == "pharmacy")
        closed.sort(key=lambda e: e["next_opens_at"] or "~")
        holiday = hours.holiday_name(local.date())
        return {
            "at": local.isoformat(),
            "holiday": holiday,
            "open": open_now,
            "closed": closed,
        }

    def _entry(self, partner: Partner) -> dict[str, Any]:
        return {
            "id": partner.id,
            "name": partner.name,
            "kind": partner.kind,
            "kind_name": KIND_NAMES.get(partner.kind, partner.kind),
            "phone": partner.phone,
            "address": partner.address,
            "treats": [term for _, term in partner.treats],
            "description": partner.description,
        }

    def directory(self) -> list[dict[str, Any]]:
        return [self._entry(p) for p in self.partners]

    # --- referrals --------------------------------------------------------------------------------
    def _visible(self, staff: Staff, referral: Referral | None) -> Referral:
        if referral is None or (staff.outside and referral.partner_id != staff.organisation):
            raise NotFound("no such referral", field="path.referral_id")
        return referral

    def view(self, staff: Staff, referral_id: str) -> dict[str, Any]:
        referral = self._visible(staff, self.referrals.referral(referral_id))
        return self.shown(referral)

    def referral_of(self, staff: Staff, referral_id: str) -> Referral:
        return self._visible(staff, self.referrals.referral(referral_id))

    def shown(self, referral: Referral) -> dict[str, Any]:
        partner = self.partner(referral.partner_id)
        body = referral.to_item()
        body["partner_name"] = partner.name if partner else referral.partner_id
        body["requester"] = referral.requester
        body["receiver"] = referral.receiver
        return body

    def listing(self, staff: Staff, month: str | None = None) -> dict[str, Any]:
        if staff.outside:
            found = self.referrals.of_partner(staff.organisation or "")
        else:
            found = self.referrals.of_month(
                month or clock.now().astimezone(self.hospital.zone).strftime("%Y-%m")
            )
        return {"referrals": [self.shown(r) for r in found]}

    def refer(
        self, staff: Staff, new: NewReferral, idempotency_key: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        side = side_of(staff)
        direction: Direction
        if staff.outside:
            if new.partner_id not in (None, side):
                raise Forbidden(
                    f"body.partner_id: a partner refers as itself ('{side}')",
                    field="body.partner_id",
                )
            partner_id, direction = side, "to_hospital"
        else:
            if not new.partner_id:
                raise BadRequest(
                    "body.partner_id: name the partner the hospital refers to",
                    field="body.partner_id",
                )
            partner_id, direction = new.partner_id, "to_partner"
        if self.partner(partner_id) is None:
            raise BadRequest(
                f"body.partner_id: '{partner_id}' is not a partner of the network",
                field="body.partner_id",
            )
        if new.department and self.hospital.department(new.department) is None:
            raise BadRequest(
                f"body.department: '{new.department}' is not a department",
                field="body.department",
            )
        now = clock.now()
        if idempotency_key:
            digest = hashlib.sha256(f"{side}\x00{idempotency_key}".encode()).hexdigest()
            referral_id = "r" + digest[:16]
        else:
            referral_id = "r" + secrets.token_hex(8)
        network = self.hospital.network
        within = network.accept_within_minutes.get(new.urgency) if network else None
        referral = Referral(
            id=referral_id,
            direction=direction,
            partner_id=partner_id,
            urgency=new.urgency,
            reason=new.reason,
            child_name=new.child_name,
            child_birth_date=new.child_birth_date,
            guardian_name=new.guardian_name,
            guardian_phone=new.guardian_phone,
            guardian_consent=new.guardian_consent,
            requested_at=clock.iso(now),
            requested_by=staff.username,
            department=new.department,
            escalate_at=clock.iso(now + timedelta(minutes=within)) if within else None,
        )
        first = Step(at=referral.requested_at, by=staff.username, side=side, status="requested")
        referral = replace(referral, history=(first,))
        if not self.referrals.add(referral, self._messages(referral, "requested")):
            existing = self.referrals.referral(referral_id)
            if existing is None:  # pragma: no cover - refused, then gone
                raise Conflict("the referral could not be stored; try again")
            return self.shown(self._visible(staff, existing)), False
        return self.shown(referral), True

    def act(
        self,
        staff: Staff,
        referral_id: str,
        target: TaskStatus,
        *,
        note: str | None = None,
        scheduled_for: datetime | None = None,
    ) -> dict[str, Any]:
        referral = self.referral_of(staff, referral_id)
        side = side_of(staff)
        if not referral.may_act(side, target):
            who = "requesting" if target == "cancelled" else "receiving"
            raise Forbidden(
                f"body.status: only the {who} side may set {target}", field="body.status"
            )
        if target == "rejected" and not note:
            raise BadRequest("body.note: say why the referral is declined", field="body.note")
        if scheduled_for is not None and target != "accepted":
            raise BadRequest(
                "body.scheduled_for: a visit is scheduled with status accepted",
                field="body.scheduled_for",
            )
        try:
            after = referral.moved(
                target,
                by=staff.username,
                side=side,
                at=clock.now(),
                note=note,
                scheduled_for=scheduled_for,
            )
        except TransitionError as error:
            raise Conflict(str(error), field="body.status", allowed=error.allowed) from None
        step = "scheduled" if scheduled_for is not None else target
        if target == "accepted" and referral.status == "accepted":
            step = "scheduled"
        messages = self._messages(after, step)
        if target == "accepted" and scheduled_for is not None and referral.status == "requested":
            messages = self._messages(after, "accepted") + messages
        if not self.referrals.save(referral, after, messages):
            raise Conflict(
                "the referral changed meanwhile; read it again", field="path.referral_id"
            )
        return self.shown(after)

    # --- messages ---------------------------------------------------------------------------------
    def _side_name(self, side: str) -> tuple[str, str, str]:
        """(name, phone, place) of a side of a referral."""
        sender = self.hospital.sender
        if side == HOSPITAL:
            return self.hospital.name, sender.callback_number, self.hospital.name
        partner = self.partner(side)
        if partner is None:
            return side, sender.callback_number, side
        return partner.name, partner.phone, f"{partner.name}, {partner.address}"

    def _messages(self, referral: Referral, step: str) -> list[MessageRequest]:
        """The guardian's message of a step: none without their consent or the template."""
        template = self.hospital.template(TEMPLATES.get(step, ""))
        if template is None or not referral.guardian_consent:
            return []
        name, phone, place = self._side_name(referral.receiver)
        network = self.hospital.network
        callback = (network.callback_number if network else None) or (
            self.hospital.sender.callback_number
        )
        when = ""
        if referral.scheduled_for:
            local = clock.parse(referral.scheduled_for).astimezone(self.hospital.zone)
            when = f"{local:%m}월 {local:%d}일 {local:%H:%M}"
        values = {
            "hospital": self.hospital.sender.display_name or self.hospital.name,
            "child": referral.child_name,
            "to": name,
            "phone": phone,
            "place": place,
            "when": when,
            "callback": callback,
        }
        return [
            MessageRequest(
                idempotency_key=f"referral:{referral.id}:{step}:{referral.version}",
                recipient=Recipient(
                    kind="patient",
                    name=referral.guardian_name,
                    phone=referral.guardian_phone,
                    contact_consent=True,
                ),
                template_id=template.id,
                variables={k: v for k, v in values.items() if k in template.variables},
                # a child referred at night is being cared for now: not held for quiet hours
                urgent=referral.urgency in URGENT_NOW,
                refs={"referral": referral.id},
            )
        ]

    # --- the sweep --------------------------------------------------------------------------------
    def sweep(self, now: datetime) -> dict[str, int]:
        """Page the on-call contact for each referral past its accept-within time and still
        `requested`: once (the escalation mark and the page are one write, and the mark takes
        the referral off the index). Safe to run again and to overlap."""
        since = self.referrals.watermark(SWEEP) or now - FIRST_SWEEP
        escalated = 0
        for referral in self.referrals.unanswered(since - timedelta(minutes=5), now):
            if not referral.waits_for_answer:
                continue
            after = referral.escalated(now)
            if self.referrals.save(referral, after, [self._page(referral)]):
                escalated += 1
        self.referrals.set_watermark(SWEEP, now)
        return {"escalated": escalated}

    def _page(self, referral: Referral) -> MessageRequest:
        contact = self.hospital.on_call
        name, _, _ = self._side_name(referral.partner_id)
        network = self.hospital.network
        minutes = network.accept_within_minutes.get(referral.urgency) if network else None
        return MessageRequest(
            idempotency_key=f"referral:{referral.id}:escalated",
            recipient=Recipient(
                kind="staff", name=contact.name, phone=contact.phone, email=contact.email
            ),
            template_id="staff_alert",
            urgent=True,
            variables={
                "level": URGENCY_NAMES.get(referral.urgency, referral.urgency),
                "department": f"협력 의뢰 ({name})",
                "code": referral.id,
                "reason": f"{minutes}분 동안 접수 응답 없음",
            },
            refs={"referral": referral.id},
        )

    # --- the report -------------------------------------------------------------------------------
    def report(self, month: str) -> dict[str, Any]:
        """Referrals requested in `month` (YYYY-MM): by partner and urgency, with the minutes
        to accept and to be seen (medians), read from the month's index."""
        found = self.referrals.of_month(month)
        groups: dict[tuple[str, ReferralUrgency], list[Referral]] = defaultdict(list)
        for referral in found:
            groups[(referral.partner_id, referral.urgency)].append(referral)
        rows = []
        for (partner_id, urgency), items in sorted(
            groups.items(),
            key=lambda kv: (kv[0][0], URGENCIES.index(kv[0][1])),
        ):
            partner = self.partner(partner_id)
            rows.append(
                {
                    "partner_id": partner_id,
                    "partner": partner.name if partner else partner_id,
                    "urgency": urgency,
                    **_counts(items),
                }
            )
        return {
            "month": month,
            "total": _counts(found),
            "rows": rows,
            "by_urgency": {u: _counts([r for r in found if r.urgency == u]) for u in URGENCIES},
        }


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None


def _counts(items: Sequence[Referral]) -> dict[str, Any]:
    by_status: dict[str, int] = defaultdict(int)
    for referral in items:
        by_status[referral.status] += 1
    return {
        "referrals": len(items),
        "to_hospital": sum(1 for r in items if r.direction == "to_hospital"),
        "to_partner": sum(1 for r in items if r.direction == "to_partner"),
        "by_status": dict(sorted(by_status.items())),
        "escalated": sum(1 for r in items if r.escalated_at),
        "median_minutes_to_accept": _median([r.minutes_to_accept() for r in items]),
        "median_minutes_to_be_seen": _median([r.minutes_to_be_seen() for r in items]),
    }


def _when(at: datetime, now: datetime) -> str:
    """A time as a guardian reads it relative to `now`: `23:00`, `내일 02:00`, `12월 3일 09:00`."""
    local = at.astimezone(now.tzinfo)
    days = (local.date() - now.date()).days
    if local.hour == 0 and local.minute == 0 and days >= 1:  # midnight: the end of the day
        days -= 1
        text = "24:00"
    else:
        text = f"{local:%H:%M}"
    if days == 0:
        return text
    if days == 1:
        return f"내일 {text}"
    shown = local - timedelta(days=1) if text == "24:00" else local
    return f"{shown.month}월 {shown.day}일 {text}"


__all__ = ["KINDS", "NetworkDesk", "NewReferral", "side_of"]
