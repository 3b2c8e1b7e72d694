"""Recall by treatment tag: what staff record, what the plan schedules, what the dispatcher sends.

Consent, opt-outs, quiet hours and never-twice stay the notification pipeline's; this module
decides *which* touchpoints are due and whether their reason still holds (cancellation rules are
checked at dispatch time, so a booking made after planning still cancels a recall).

Nothing here calls SQS: a touchpoint's `queued` mark and its message request (an outbox item)
are one transaction, as are a staff reply and its message; the outbox relay publishes them.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sotong import clock, consent, tombstones
from sotong.config.schema import PATIENT_VARIABLES, HospitalConfig, Template, TreatmentTag
from sotong.errors import BadRequest, Conflict, NotFound
from sotong.health_terms import check_staff_text
from sotong.notify.model import MessageRequest, Recipient, recipient_key
from sotong.recall.model import (
    Appointment,
    PatientRegistration,
    TreatmentRecord,
    patient_id,
    treatment_id,
)
from sotong.recall.plan import plan
from sotong.recall.records import (
    AppointmentRecord,
    ConversationMessage,
    Patient,
    Touchpoint,
    Treatment,
)
from sotong.recall.repository import (
    AdMark,
    DynamoPatientRepository,
    PatientRepository,
    TouchpointMove,
    WaitingReply,
)

TimeLeft = Callable[[], float]
"""seconds the caller may still run (a Lambda context's remaining time)"""
Triage = Callable[[str], tuple[str, tuple[str, ...]]]
"""a reply's urgency (critical | high | normal) and the phrases that decided it: the complaint
classifier, wired by the function (recall never imports complaints)"""
FLAGGED = ("critical", "high")
"""urgencies that pin a waiting reply on top: the ones the second opinion turns into a complaint"""
URGENCY_ORDER = {"critical": 0, "high": 1, "normal": 2}
WAITING_SHOWN = 200
RECENT_TOUCHPOINTS = 5
FIRST_LOOKBACK = timedelta(days=1)
REPLY_WINDOW = timedelta(days=30)
CONVERSION_WINDOW = timedelta(days=60)
BOOKING_PROMPT_STEP = "recall"
DISPATCH = "recall_dispatch"
"""the dispatcher's watermark and lease"""
LEASE_HOLD = timedelta(seconds=150)
"""longer than the dispatcher's 120 s timeout: a crashed run blocks the next ones briefly"""
INDEX_LAG = timedelta(minutes=5)
"""the due index (a GSI) is eventually consistent: each run reads this far behind the
watermark again; the conditional `queued` mark keeps a touchpoint read twice from going twice"""
STOP_MARGIN_S = 15.0
"""a run stops taking on touchpoints with less time left than this"""
SLICE = 1_000
"""touchpoints decided together (their patients read in one go)"""
SEND_UNITS = 50
"""touchpoints per TransactWriteItems: a `queued` mark and an outbox item each"""
CANCEL_UNITS = 100


def patient_recipient(patient: Patient) -> Recipient:
    """A stored patient as a message recipient, with the consents they gave."""
    return Recipient(
        name=patient.name,
        phone=patient.phone,
        email=patient.email,
        contact_consent=patient.consent("contact"),
        marketing_consent=patient.consent("marketing"),
        night_consent=patient.consent("night"),
        patient_id=patient.id,
    )


def patient_variables(
    hospital: HospitalConfig, template: Template, patient: Patient
) -> dict[str, str]:
    """The variables a recall or campaign template may use (`PATIENT_VARIABLES`), limited to
    the ones it does. Nothing stands in for what is not known: a treatment record has a date,
    not a time, so there is no `#{time}` (the config check refuses a plan step whose template
    asks for one, rather than a message promising "예약하신 시간")."""
    sender = hospital.sender
    available = {
        "hospital": sender.display_name,
        "name": patient.name,
        "callback": sender.callback_number,
        "opt_out": sender.opt_out_number,
    }
    assert tuple(available) == PATIENT_VARIABLES
    return {k: v for k, v in available.items() if k in template.variables}


@dataclass
class DispatchReport:
    """What one dispatch run did: touchpoints read, queued, cancelled, deferred, and its writes."""

    read: int = 0
    queued: int = 0
    cancelled: int = 0
    already_done: int = 0
    """read again (the index lags) or moved on by someone else between read and write"""
    deferred: int = 0
    """marketing steps moved later by the frequency cap"""
    reasons: Counter[str] = field(default_factory=Counter)
    leased: bool = True
    """False: another run held the lease, this one did nothing"""
    complete: bool = True
    """False: stopped before the deadline; the watermark stays where it got to"""
    writes: Counter[str] = field(default_factory=Counter)
    """write requests by kind"""
    watermark: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "queued": self.queued,
            "cancelled": self.cancelled,
            "already_done": self.already_done,
            "deferred": self.deferred,
            "reasons": dict(self.reasons),
            "leased": self.leased,
            "complete": self.complete,
            "writes": dict(self.writes),
            "watermark": self.watermark,
        }


class RecallDesk:
    """What staff, the dispatcher and the provider webhook do with recalls, over a
    `PatientRepository` (the records table unless another is given)."""

    def __init__(self, hospital: HospitalConfig, patients: PatientRepository | None = None) -> None:
        self.hospital = hospital
        self.patients: PatientRepository = patients or DynamoPatientRepository()

    # --- patients -------------------------------------------------------------------------------
    def register(self, registration: PatientRegistration, by: str | None = None) -> dict[str, Any]:
        """Create or update the patient; every consent that changes is audited (sotong.consent)."""
        hospital_id = self.hospital.hospital_id
        pid = patient_id(hospital_id, registration.chart_no, registration.phone)
        tombstones.check_registration(
            hospital_id,
            tombstones.Identity(pid, registration.chart_no, registration.phone, registration.email),
            registration.returning_after_erasure,
        )
        consents = registration.consents.model_dump()
        patient = Patient(
            id=pid,
            name=registration.name,
            phone=registration.phone,
            email=registration.email,
            chart_no=registration.chart_no,
            consents=consents,
        )
        before = self.patients.patient(pid)
        saved = self.patients.register(patient, recipient_key(hospital_id, registration.phone))
        consent.put_all(
            consent.changes_of(
                hospital_id,
                registration.phone,
                dict(before.consents) if before and before.consents is not None else None,
                consents,
                source="staff",
                by=by,
                patient_id=pid,
            )
        )
        return saved.to_item()

    def _patient(self, pid: str) -> Patient:
        found = self.patients.patient(pid)
        if found is None:
            raise NotFound(f"no patient {pid}", field="path.patient_id")
        return found

    def patient(self, pid: str) -> dict[str, Any]:
        return self._patient(pid).to_item()

    def pause(self, pid: str, paused: bool, reason: str | None) -> dict[str, Any]:
        patient = self.patients.patient(pid)
        if patient is None or not self.patients.save_pause(patient.with_pause(paused, reason)):
            raise NotFound(f"no patient {pid}", field="path.patient_id")
        return self.patient(pid)

    # --- treatments -----------------------------------------------------------------------------
    def tag(self, tag_id: str) -> TreatmentTag:
        tag = self.hospital.treatment_tag(tag_id)
        if tag is None:
            known = ", ".join(t.id for t in self.hospital.treatment_tags)
            raise BadRequest(
                f"body.tag: unknown treatment tag '{tag_id}'; known: {known}", field="body.tag"
            )
        return tag

    def record_treatment(
        self, pid: str, record: TreatmentRecord, recorded_by: str
    ) -> tuple[dict[str, Any], bool]:
        """Store the treatment and plan every step of its tag. Recording it again plans nothing."""
        tag = self.tag(record.tag)
        self._patient(pid)
        tid = treatment_id(pid, tag.id, record.date)
        treatment = Treatment(
            id=tid,
            patient_id=pid,
            tag=tag.id,
            department=tag.department,
            date=record.date.isoformat(),
            note=record.note,
            recorded_by=recorded_by,
            recorded_at=clock.iso(clock.now()),
        )
        created = self.patients.add_treatment(treatment)
        if created:
            self.patients.note_treatment(pid, tag.id, treatment.date)
            self.patients.add_touchpoints(self.plan_touchpoints(pid, tid, tag, record.date))
        answer = {**treatment.to_item(), "note": treatment.note}
        return {**answer, "touchpoints": self.touchpoints(pid, tid)}, created

    def plan_touchpoints(
        self, pid: str, tid: str, tag: TreatmentTag, day: date
    ) -> list[Touchpoint]:
        now = clock.now()
        return [
            Touchpoint.planned(
                patient_id=pid,
                treatment_id=tid,
                tag=tag.id,
                step=planned.step.id,
                template=planned.step.template,
                purpose=planned.step.purpose,
                cancel_if=tuple(planned.step.cancel_if),
                treatment_date=day,
                due=planned.due_at,
                now=now,
            )
            for planned in plan(self.hospital, tag, day, pid)
        ]

    def touchpoint_items(
        self, pid: str, tid: str, tag: TreatmentTag, day: date
    ) -> list[dict[str, Any]]:
        return [t.to_item() for t in self.plan_touchpoints(pid, tid, tag, day)]

    def touchpoints(self, pid: str, tid: str | None = None) -> list[dict[str, Any]]:
        return [t.to_item() for t in self.patients.touchpoints(pid, tid)]

    def upcoming(self, pid: str) -> list[dict[str, Any]]:
        self._patient(pid)
        return [t.to_item() for t in self.patients.touchpoints(pid) if t.is_planned]

    def cancel_touchpoint(self, pid: str, touchpoint: str, by: str) -> dict[str, Any]:
        tid, _, step = touchpoint.partition(".")
        found = next((t for t in self.patients.touchpoints(pid, tid) if t.step == step), None)
        if (
            found is None
            or not found.is_planned
            or not self.patients.move_touchpoint(
                found, found.cancel(f"cancelled by {by}", clock.now())
            )
        ):
            raise NotFound(f"no planned touchpoint {touchpoint}", field="path.touchpoint_id")
        return next(t for t in self.touchpoints(pid, tid) if t["step"] == step)

    def change_treatment_date(self, pid: str, tid: str, new_date: date, by: str) -> dict[str, Any]:
        treatment = self.patients.treatment(pid, tid)
        if treatment is None:
            raise NotFound(f"no treatment {tid}", field="path.treatment_id")
        tag = self.tag(treatment.tag)
        current = {t.step: t for t in self.patients.touchpoints(pid, tid)}
        moved = [
            rescheduled
            for fresh in self.plan_touchpoints(pid, tid, tag, new_date)
            if fresh.step in current
            and (rescheduled := current[fresh.step].rescheduled(fresh)) is not None
        ]
        self.patients.add_touchpoints(moved)
        self.patients.save_treatment(treatment.moved_to(new_date, by))
        # the latest date of the tag, recomputed: a date moved earlier lowers it
        latest = max(
            (t.date for t in self.patients.treatments(pid) if t.tag == tag.id), default=None
        )
        if latest is not None:
            self.patients.set_latest_treatment(pid, tag.id, latest)
        return {
            **treatment.to_item(),
            "date": new_date.isoformat(),
            "touchpoints": self.touchpoints(pid, tid),
        }

    # --- bookings and visits --------------------------------------------------------------------
    def record_appointment(self, pid: str, appointment: Appointment, by: str) -> dict[str, Any]:
        self._patient(pid)
        self.patients.note_appointment(
            AppointmentRecord(
                patient_id=pid,
                kind=appointment.kind,
                at=clock.iso(appointment.at),
                note=appointment.note,
                recorded_by=by,
            )
        )
        converted = self._convert_latest(pid, f"{appointment.kind} recorded")
        return {"patient": self.patient(pid), "converted": converted}

    def _convert_latest(self, pid: str, why: str, step: str | None = None) -> str | None:
        """Mark the most recent recall sent to this patient (within 60 days) converted."""
        now = clock.now()
        sent = [
            t
            for t in self.patients.touchpoints(pid)
            if t.status == "queued"
            and (step is None or t.step == step)
            and clock.parse(t.sent_at) >= now - CONVERSION_WINDOW
        ]
        if not sent:
            return None
        latest = max(sent, key=lambda t: t.sent_at)
        self.patients.move_touchpoint(latest, latest.convert(why, now))
        return latest.id

    # --- dispatch -------------------------------------------------------------------------------
    def dispatch_due(self, now: datetime, time_left: TimeLeft | None = None) -> DispatchReport:
        """Queue every planned touchpoint due by `now`, since the watermark: an outage is caught
        up, a re-run sends nothing twice, and the cost grows with what is due.

        One run at a time (a lease); a run that cannot take it returns at once. Each
        touchpoint's `queued` mark (on condition it is still planned) and its outbox item are
        one unit, 50 units per TransactWriteItems; cancellations go 100 per transaction. With
        `time_left`, the run stops before its deadline and leaves the watermark where it got
        to, so the next run carries on from there."""
        report = DispatchReport()
        owner = uuid.uuid4().hex
        if not self.patients.take_lease(DISPATCH, owner, now, LEASE_HOLD):
            report.leased = False
            return report
        try:
            since = self.patients.watermark(DISPATCH) or now - FIRST_LOOKBACK
            read = self.patients.due_touchpoints(since - INDEX_LAG, now)
            due = list({(t.patient_id, t.id): t for t in read}.values())
            due.sort(key=lambda t: (t.due_at, t.patient_id, t.id))
            report.read = len(due)
            reached = now
            for start in range(0, len(due), SLICE):
                if start and time_left is not None and time_left() < STOP_MARGIN_S:
                    reached = due[start].due - timedelta(microseconds=1)
                    report.complete = False
                    break
                self._dispatch_slice(due[start : start + SLICE], now, report)
            self.patients.set_watermark(DISPATCH, reached)
            report.watermark = clock.iso(reached)
        finally:
            self.patients.release_lease(DISPATCH, owner)
        return report

    def _dispatch_slice(
        self, due: Sequence[Touchpoint], now: datetime, report: DispatchReport
    ) -> None:
        hospital_id = self.hospital.hospital_id
        patients = self.patients.patients(t.patient_id for t in due)
        cap = timedelta(days=self.hospital.marketing.min_days_between_ads)
        cancels: list[tuple[TouchpointMove, str]] = []
        sends: list[TouchpointMove] = []
        defers: list[tuple[Touchpoint, datetime]] = []
        advertised: set[str] = set()  # patients sent an ad in this slice
        for touchpoint in due:
            patient = patients.get(touchpoint.patient_id)
            reason = self.cancel_reason(touchpoint, patient, now)
            if reason:
                cancelled = touchpoint.cancel(reason, clock.now())
                cancels.append((TouchpointMove(before=touchpoint, after=cancelled), reason))
                continue
            assert patient is not None
            ad = None
            if touchpoint.purpose == "marketing" and cap:
                if patient.id in advertised:
                    defers.append((touchpoint, now + cap))
                    continue
                if patient.advertised_after(now - cap):
                    defers.append((touchpoint, clock.parse(str(patient.last_ad_at)) + cap))
                    continue
                advertised.add(patient.id)
                ad = AdMark(
                    patient_id=patient.id,
                    at=now,
                    by=f"touchpoint:{touchpoint.id}",
                    cutoff=now - cap,
                )
            move = TouchpointMove(
                before=touchpoint,
                after=touchpoint.queue(now, updated=clock.now()),
                messages=(self.message(touchpoint, patient),),
                ad=ad,
            )
            sends.append(move)

        if cancels:
            moved = self.patients.move_touchpoints(
                hospital_id, [m for m, _ in cancels], per_transaction=CANCEL_UNITS
            )
            report.writes["cancel"] += moved.requests
            for index, (_, reason) in enumerate(cancels):
                if index in moved.refused:
                    report.already_done += 1
                else:
                    report.cancelled += 1
                    report.reasons[reason] += 1
        if sends:
            moved = self.patients.move_touchpoints(hospital_id, sends, per_transaction=SEND_UNITS)
            report.writes["send"] += moved.requests
            for index, move in enumerate(sends):
                refused = moved.refused.get(index)
                if refused is None:
                    report.queued += 1
                elif refused == "moved_on":  # cancelled meanwhile, or queued already
                    report.already_done += 1
                else:  # the frequency cap refused it: another ad got there first
                    defers.append((move.before, now + cap))
        if defers:
            updated = clock.now()
            moved = self.patients.move_touchpoints(
                hospital_id,
                [
                    TouchpointMove(
                        before=t,
                        after=t.defer(self._deferred_due(t, after), "frequency_cap", updated),
                    )
                    for t, after in defers
                ],
                per_transaction=CANCEL_UNITS,
            )
            report.writes["defer"] += moved.requests
            report.deferred += len(defers) - len(moved.refused)
            report.already_done += len(moved.refused)

    def _deferred_due(self, touchpoint: Touchpoint, after: datetime) -> datetime:
        """The first time at or after `after` at the touchpoint's own local time of day."""
        return touchpoint.deferred_due(after, self.hospital.zone)

    def cancel_reason(
        self, touchpoint: Touchpoint, patient: Patient | None, now: datetime
    ) -> str | None:
        return touchpoint.cancel_reason(patient, now, self.hospital.zone)

    def message(self, touchpoint: Touchpoint, patient: Patient) -> MessageRequest:
        template = self.hospital.template(touchpoint.template)
        assert template is not None  # the config schema checks every step's template
        return MessageRequest(
            idempotency_key=f"touchpoint:{patient.id}:{touchpoint.id}",
            recipient=patient_recipient(patient),
            template_id=template.id,
            variables=patient_variables(self.hospital, template, patient),
            purpose=touchpoint.purpose,
            refs={"touchpoint": touchpoint.id},
        )

    # --- replies and conversations --------------------------------------------------------------
    def inbound(
        self,
        phone: str,
        text: str,
        *,
        provider_message_id: str | None = None,
        received_at: datetime | None = None,
    ) -> dict[str, Any] | None:
        """A message from a patient recently sent a recall joins their conversation (None when
        the sender has no recent recall: the caller treats it as a complaint).

        With the provider's message id, the same message delivered twice (a webhook retried) is
        stored once: the second answer says `duplicate` and converts nothing."""
        hospital_id = self.hospital.hospital_id
        if tombstones.erased(hospital_id, tombstones.Identity(phone=phone)):
            return None  # an erased phone joins no patient's conversation
        patient = self.patients.patient_by_phone(recipient_key(hospital_id, phone))
        if patient is None:
            return None
        at = received_at or clock.now()
        recent = [
            t for t in self.patients.touchpoints(patient.id) if t.sent_since(at - REPLY_WINDOW)
        ]
        if not recent:
            return None
        latest = max(recent, key=lambda t: t.sent_at)
        answer: dict[str, Any] = {
            "patient_id": patient.id,
            "touchpoint": latest.id,
            "converted": None,
        }
        message = self._conversation_message(
            "in", text, "patient", latest.id, at, provider_message_id
        )
        tag = self.hospital.treatment_tag(latest.tag)
        if not self.patients.add_message(
            patient.id,
            message,
            inbound_id=provider_message_id,
            waiting_in=tag.department if tag else "",  # waits for an answer in its department
        ):
            return {**answer, "duplicate": True}
        if text.strip() in ("1", "1번", "예약"):
            answer["converted"] = self._convert_latest(
                patient.id, "replied 1", step=BOOKING_PROMPT_STEP
            )
        return answer

    def _conversation_message(
        self,
        direction: str,
        text: str,
        by: str,
        touchpoint: str | None,
        at: datetime,
        inbound_id: str | None = None,
    ) -> ConversationMessage:
        stamp = clock.iso(at)
        # unique and time-ordered: same-instant messages keep their order, and two writers (or a
        # conversation begun again after an erasure) never take one key; a provider's id makes
        # a redelivery the same key
        tail = f"in:{inbound_id}" if inbound_id else f"{time.time_ns():020d}{secrets.token_hex(4)}"
        return ConversationMessage(
            id=f"{stamp}#{tail}",
            direction=direction,
            text=text,
            by=by,
            at=stamp,
            touchpoint=touchpoint,
            provider_message_id=inbound_id,
        )

    def conversation(self, pid: str) -> dict[str, Any]:
        self._patient(pid)
        messages = [m.to_item() for m in self.patients.conversation(pid)]
        sent = [t for t in self.patients.touchpoints(pid) if t.status in ("queued", "converted")]
        latest = max(sent, key=lambda t: t.sent_at, default=None)
        tag = self.hospital.treatment_tag(latest.tag) if latest else None
        return {
            "messages": messages,
            "about": latest.to_item() if latest else None,
            "manual": {"tag": tag.id, "name": tag.name, "text": tag.manual} if tag else None,
        }

    def answer(self, pid: str, text: str, by: str, *, confirmed: bool = False) -> dict[str, Any]:
        """Staff answer: the conversation item and the message to the patient in one
        transaction. Each answer has a key of its own (time-ordered, unique): two staff
        answering at once both land, and the message's idempotency key is unique per answer.
        Text naming a diagnosis or treatment is refused (422) unless `confirmed`."""
        patient = self._patient(pid)
        check_staff_text(
            text,
            "body.message",
            confirmed=confirmed,
            extra=[t.name for t in self.hospital.treatment_tags],
        )
        template = self.hospital.template("staff_reply")
        if template is None:
            raise BadRequest(
                "this hospital has no 'staff_reply' template configured", field="template"
            )
        message = self._conversation_message("out", text, by, None, clock.now())
        request = MessageRequest(
            idempotency_key=f"conversation:{pid}:{message.id}",  # one per answer, ever
            recipient=Recipient(
                name=patient.name,
                phone=patient.phone,
                contact_consent=patient.consent("contact"),
                patient_id=pid,
            ),
            template_id=template.id,
            variables={"hospital": self.hospital.sender.display_name, "message": text},
            refs={"patient": pid},
        )
        waiting = self.patients.waiting_of(pid)
        if not self.patients.add_answer(
            self.hospital.hospital_id, pid, message, request, settles=waiting
        ):
            raise Conflict("the answer could not be stored; send it again")
        return self.conversation(pid)

    # --- the replies waiting for an answer ------------------------------------------------------
    def waiting(
        self, department: str | None, triage: Triage, limit: int = WAITING_SHOWN
    ) -> dict[str, Any]:
        """The replies waiting in a department's queue (None: every department's): those the
        triage finds critical or high first (harm after a procedure: bleeding, swelling, fever),
        then oldest first; each with its patient, the tag's consultation manual and the
        patient's recent touchpoints. Reads the queue index, the patients in one batch and one
        partition query per patient shown."""
        page = self.patients.waiting_replies(department, limit)
        patients = self.patients.patients({r.patient_id for r in page.replies})
        touchpoints: dict[str, list[Touchpoint]] = {}
        items = []
        for reply in page.replies:
            patient = patients.get(reply.patient_id)
            if patient is None:
                continue  # erased between the two reads
            if reply.patient_id not in touchpoints:
                touchpoints[reply.patient_id] = self.patients.touchpoints(reply.patient_id)
            items.append(self._waiting_item(reply, patient, touchpoints[reply.patient_id], triage))
        items.sort(key=lambda i: (URGENCY_ORDER.get(i["urgency"], 2), i["message"]["at"]))
        return {
            "replies": items,
            "flagged": sum(1 for i in items if i["flagged"]),
            "more": page.more,
        }

    def _waiting_item(
        self, reply: WaitingReply, patient: Patient, touchpoints: list[Touchpoint], triage: Triage
    ) -> dict[str, Any]:
        message = reply.message
        urgency, matched = triage(message.text)
        if URGENCY_ORDER.get(message.urgency or "", 2) < URGENCY_ORDER.get(urgency, 2):
            urgency = str(message.urgency)  # the second opinion found it more urgent
        about = next((t for t in touchpoints if t.id == message.touchpoint), None)
        sent = [t for t in touchpoints if t.status in ("queued", "converted", "cancelled")]
        recent = sorted(sent, key=lambda t: t.updated_at or t.sent_at, reverse=True)
        tag = self.hospital.treatment_tag(about.tag) if about else None
        return {
            "patient": {"id": patient.id, "name": patient.name, "chart_no": patient.chart_no},
            "message": message.to_item(),
            "department": reply.department or None,
            "urgency": urgency,
            "flagged": urgency in FLAGGED,
            "matched": list(matched),
            "complaint_id": message.complaint_id,
            "manual": {"tag": tag.id, "name": tag.name, "text": tag.manual} if tag else None,
            "about": about.to_item() if about else None,
            "recent_touchpoints": [t.to_item() for t in recent[:RECENT_TOUCHPOINTS]],
        }

    def settle(self, pid: str, outcome: str, by: str) -> dict[str, Any]:
        """Staff mark the patient's waiting replies handled (nothing to answer) or converted
        (the reply led to a booking: the latest recall sent is marked converted too)."""
        self._patient(pid)
        settled = self.patients.settle_replies(self.patients.waiting_of(pid))
        converted = (
            self._convert_latest(pid, f"marked converted by {by}")
            if outcome == "converted"
            else None
        )
        return {"patient_id": pid, "outcome": outcome, "settled": settled, "converted": converted}
