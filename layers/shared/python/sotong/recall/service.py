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
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sotong import clock, consent, erasure, store, tombstones
from sotong.config.schema import PATIENT_VARIABLES, HospitalConfig, Template, TreatmentTag
from sotong.errors import BadRequest, Conflict, NotFound
from sotong.health_terms import check_staff_text
from sotong.notify import txoutbox
from sotong.notify.model import MessageRequest, Recipient, recipient_key
from sotong.recall import repository as repo
from sotong.recall.model import (
    Appointment,
    PatientRegistration,
    TreatmentRecord,
    patient_id,
    treatment_id,
)
from sotong.recall.plan import plan

TimeLeft = Callable[[], float]
"""seconds the caller may still run (a Lambda context's remaining time)"""
PAST_GRACE = timedelta(hours=12)
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


def patient_recipient(patient: dict[str, Any]) -> Recipient:
    """A stored patient as a message recipient, with the consents they gave."""
    consents = patient.get("consents") or {}
    return Recipient(
        name=patient["name"],
        phone=patient.get("phone"),
        email=patient.get("email"),
        contact_consent=bool(consents.get("contact")),
        marketing_consent=bool(consents.get("marketing")),
        night_consent=bool(consents.get("night")),
        patient_id=patient["id"],
    )


def patient_variables(
    hospital: HospitalConfig, template: Template, patient: dict[str, Any]
) -> dict[str, str]:
    """The variables a recall or campaign template may use (`PATIENT_VARIABLES`), limited to
    the ones it does. Nothing stands in for what is not known: a treatment record has a date,
    not a time, so there is no `#{time}` (the config check refuses a plan step whose template
    asks for one, rather than a message promising "예약하신 시간")."""
    sender = hospital.sender
    available = {
        "hospital": sender.display_name,
        "name": patient["name"],
        "callback": sender.callback_number,
        "opt_out": sender.opt_out_number,
    }
    assert tuple(available) == PATIENT_VARIABLES
    return {k: v for k, v in available.items() if k in template.variables}


@dataclass
class DispatchReport:
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


def _tp_sk(touchpoint: dict[str, Any]) -> str:
    return f"TP#{touchpoint['treatment_id']}#{touchpoint['step']}"


@dataclass
class RecallDesk:
    hospital: HospitalConfig

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
        patient = {
            "id": pid,
            "name": registration.name,
            "phone": registration.phone,
            "email": registration.email,
            "chart_no": registration.chart_no,
            "consents": consents,
        }
        before = repo.get_patient(pid)
        saved = repo.upsert_patient(patient, recipient_key(hospital_id, registration.phone))
        consent.put_all(
            consent.changes_of(
                hospital_id,
                registration.phone,
                (before or {}).get("consents"),
                consents,
                source="staff",
                by=by,
                patient_id=pid,
            )
        )
        return saved

    def patient(self, pid: str) -> dict[str, Any]:
        found = repo.get_patient(pid)
        if found is None:
            raise NotFound(f"no patient {pid}", field="path.patient_id")
        return found

    def pause(self, pid: str, paused: bool, reason: str | None) -> dict[str, Any]:
        if not repo.update_patient(pid, {"paused": paused, "pause_reason": reason or ""}):
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
        self.patient(pid)
        tid = treatment_id(pid, tag.id, record.date)
        treatment = {
            "pk": repo.pk(pid),
            "sk": f"TRT#{tid}",
            "id": tid,
            "patient_id": pid,
            "tag": tag.id,
            "department": tag.department,
            "date": record.date.isoformat(),
            "note": record.note,
            "recorded_by": recorded_by,
            "recorded_at": clock.iso(clock.now()),
            "gsi1pk": f"TAG#{tag.id}",
            "gsi1sk": f"{record.date.isoformat()}#{pid}",
        }
        created = repo.put_new(treatment)
        if created:
            repo.note_treatment(pid, tag.id, record.date.isoformat())
            repo.write_all(self.touchpoint_items(pid, tid, tag, record.date))
        return {**repo.strip(treatment), "touchpoints": self.touchpoints(pid, tid)}, created

    def touchpoint_items(
        self, pid: str, tid: str, tag: TreatmentTag, day: date
    ) -> list[dict[str, Any]]:
        now = clock.now()
        items = []
        for planned in plan(self.hospital, tag, day, pid):
            due = planned.due_at
            status = "planned"
            if due < now - PAST_GRACE:
                status = "skipped"
            elif due <= now:
                due = now + timedelta(minutes=1)  # recorded late: send it with the next run
            due_stamp = clock.iso(due)
            item: dict[str, Any] = {
                "pk": repo.pk(pid),
                "sk": f"TP#{tid}#{planned.step.id}",
                "id": f"{tid}.{planned.step.id}",
                "patient_id": pid,
                "treatment_id": tid,
                "tag": tag.id,
                "step": planned.step.id,
                "template": planned.step.template,
                "purpose": planned.step.purpose,
                "cancel_if": list(planned.step.cancel_if),
                "treatment_date": day.isoformat(),
                "due_at": due_stamp,
                "status": status,
                "status_reason": "already past when recorded" if status == "skipped" else None,
            }
            if status == "planned":
                item["gsi2pk"] = repo.due_bucket(due)
                item["gsi2sk"] = f"{due_stamp}#{pid}#{item['id']}"
            items.append(item)
        return items

    def touchpoints(self, pid: str, tid: str | None = None) -> list[dict[str, Any]]:
        prefix = f"TP#{tid}#" if tid else "TP#"
        found = [repo.strip(i) for i in repo.items_of(pid, prefix)]
        return sorted(found, key=lambda t: t["due_at"])

    def upcoming(self, pid: str) -> list[dict[str, Any]]:
        self.patient(pid)
        return [t for t in self.touchpoints(pid) if t["status"] == "planned"]

    def cancel_touchpoint(self, pid: str, touchpoint: str, by: str) -> dict[str, Any]:
        tid, _, step = touchpoint.partition(".")
        if not repo.set_touchpoint(pid, f"TP#{tid}#{step}", "cancelled", f"cancelled by {by}"):
            raise NotFound(f"no planned touchpoint {touchpoint}", field="path.touchpoint_id")
        return next(t for t in self.touchpoints(pid, tid) if t["step"] == step)

    def change_treatment_date(self, pid: str, tid: str, new_date: date, by: str) -> dict[str, Any]:
        treatment = next(iter(repo.items_of(pid, f"TRT#{tid}")), None)
        if treatment is None:
            raise NotFound(f"no treatment {tid}", field="path.treatment_id")
        tag = self.tag(treatment["tag"])
        pending = {t["step"] for t in self.touchpoints(pid, tid) if t["status"] == "planned"}
        moved = [
            item
            for item in self.touchpoint_items(pid, tid, tag, new_date)
            if item["step"] in pending
        ]
        repo.write_all(moved)
        repo.put(
            {
                **treatment,
                "date": new_date.isoformat(),
                "gsi1sk": f"{new_date.isoformat()}#{pid}",
                "date_changed_by": by,
            }
        )
        # the latest date of the tag, recomputed: a date moved earlier lowers it
        repo.set_latest_treatment(pid, tag.id, repo.latest_of_tag(pid, tag.id))
        return {
            **repo.strip(treatment),
            "date": new_date.isoformat(),
            "touchpoints": self.touchpoints(pid, tid),
        }

    # --- bookings and visits --------------------------------------------------------------------
    def record_appointment(self, pid: str, appointment: Appointment, by: str) -> dict[str, Any]:
        self.patient(pid)
        at = clock.iso(appointment.at)
        repo.put(
            {
                "pk": repo.pk(pid),
                "sk": f"APT#{at}#{appointment.kind}",
                "kind": appointment.kind,
                "at": at,
                "note": appointment.note,
                "recorded_by": by,
            }
        )
        attribute = "next_booking_at" if appointment.kind == "booking" else "last_visit_at"
        repo.later_of(pid, attribute, at)
        converted = self._convert_latest(pid, f"{appointment.kind} recorded")
        return {"patient": self.patient(pid), "converted": converted}

    def _convert_latest(self, pid: str, why: str, step: str | None = None) -> str | None:
        """Mark the most recent recall sent to this patient (within 60 days) converted."""
        now = clock.now()
        sent = [
            t
            for t in self.touchpoints(pid)
            if t["status"] == "queued"
            and (step is None or t["step"] == step)
            and clock.parse(t.get("queued_at", t["due_at"])) >= now - CONVERSION_WINDOW
        ]
        if not sent:
            return None
        latest = max(sent, key=lambda t: t.get("queued_at", t["due_at"]))
        repo.set_touchpoint(
            pid,
            f"TP#{latest['treatment_id']}#{latest['step']}",
            "converted",
            why,
            expect=("queued",),
            extra={"converted_at": clock.iso(now)},
        )
        return str(latest["id"])

    # --- erasure (PIPA) -------------------------------------------------------------------------
    def erase(self, pid: str, by: str) -> dict[str, Any]:
        """Erase the patient everywhere and leave a tombstone (`sotong.erasure`): the report of
        what went, by kind, with the anonymous counts kept."""
        return erasure.erase_patient(self.hospital.hospital_id, pid, by).as_dict()

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
        if not repo.take_lease(DISPATCH, owner, now, LEASE_HOLD):
            report.leased = False
            return report
        try:
            since = store.watermark(DISPATCH) or now - FIRST_LOOKBACK
            read = repo.due_touchpoints(since - INDEX_LAG, now)
            due = list({(t["patient_id"], t["id"]): t for t in read}.values())
            due.sort(key=lambda t: (t["due_at"], t["patient_id"], t["id"]))
            report.read = len(due)
            reached = now
            for start in range(0, len(due), SLICE):
                if start and time_left is not None and time_left() < STOP_MARGIN_S:
                    reached = clock.parse(due[start]["due_at"]) - timedelta(microseconds=1)
                    report.complete = False
                    break
                self._dispatch_slice(due[start : start + SLICE], now, report)
            store.set_watermark(DISPATCH, reached)
            report.watermark = clock.iso(reached)
        finally:
            repo.release_lease(DISPATCH, owner)
        return report

    def _dispatch_slice(
        self, due: Sequence[dict[str, Any]], now: datetime, report: DispatchReport
    ) -> None:
        patients = repo.get_patients(t["patient_id"] for t in due)
        cap = timedelta(days=self.hospital.marketing.min_days_between_ads)
        stamp = clock.iso(now)
        cancels: list[tuple[dict[str, Any], str]] = []
        sends: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        defers: list[tuple[dict[str, Any], datetime]] = []
        advertised: set[str] = set()  # patients sent an ad in this slice
        for touchpoint in due:
            patient = patients.get(touchpoint["patient_id"])
            reason = self.cancel_reason(touchpoint, patient, now)
            if reason:
                cancels.append((touchpoint, reason))
                continue
            assert patient is not None
            unit = [
                repo.touchpoint_update(
                    patient["id"], _tp_sk(touchpoint), "queued", None, extra={"queued_at": stamp}
                ),
                *txoutbox.actions(self.hospital.hospital_id, [self.message(touchpoint, patient)]),
            ]
            if touchpoint.get("purpose") == "marketing" and cap:
                last = patient.get("last_ad_at")
                if patient["id"] in advertised:
                    defers.append((touchpoint, now + cap))
                    continue
                if last and clock.parse(str(last)) > now - cap:
                    defers.append((touchpoint, clock.parse(str(last)) + cap))
                    continue
                advertised.add(patient["id"])
                unit.append(
                    repo.last_ad_update(
                        patient["id"], now, f"touchpoint:{touchpoint['id']}", now - cap
                    )
                )
            sends.append((touchpoint, unit))

        if cancels:
            written = repo.write_units(
                [
                    [repo.touchpoint_update(t["patient_id"], _tp_sk(t), "cancelled", reason)]
                    for t, reason in cancels
                ],
                per_transaction=CANCEL_UNITS,
            )
            report.writes["cancel"] += written.requests
            for index, (_, reason) in enumerate(cancels):
                if index in written.failed:
                    report.already_done += 1
                else:
                    report.cancelled += 1
                    report.reasons[reason] += 1
        if sends:
            written = repo.write_units([unit for _, unit in sends], per_transaction=SEND_UNITS)
            report.writes["send"] += written.requests
            for index, (touchpoint, _) in enumerate(sends):
                failed = written.failed.get(index)
                if failed is None:
                    report.queued += 1
                elif 0 in failed:  # no longer planned: cancelled meanwhile, or queued already
                    report.already_done += 1
                else:  # the frequency cap refused it: another ad got there first
                    defers.append((touchpoint, now + cap))
        if defers:
            written = repo.write_units(
                [
                    [repo.reschedule_update(t, self._deferred_due(t, after), "frequency_cap")]
                    for t, after in defers
                ],
                per_transaction=CANCEL_UNITS,
            )
            report.writes["defer"] += written.requests
            report.deferred += len(defers) - len(written.failed)
            report.already_done += len(written.failed)

    def _deferred_due(self, touchpoint: dict[str, Any], after: datetime) -> datetime:
        """The first time at or after `after` at the touchpoint's own local time of day."""
        zone = self.hospital.zone
        planned = clock.parse(touchpoint["due_at"]).astimezone(zone)
        moved = datetime.combine(after.astimezone(zone).date(), planned.time(), tzinfo=zone)
        if moved < after:
            moved += timedelta(days=1)
        return moved.astimezone(UTC)

    def cancel_reason(
        self, touchpoint: dict[str, Any], patient: dict[str, Any] | None, now: datetime
    ) -> str | None:
        if patient is None:
            return "patient_gone"
        conditions = touchpoint.get("cancel_if") or []
        treated = datetime.combine(
            date.fromisoformat(touchpoint["treatment_date"]),
            datetime.max.time(),
            tzinfo=self.hospital.zone,
        ).astimezone(UTC)
        if "patient_paused" in conditions and patient.get("paused"):
            return "patient_paused"
        booking = patient.get("next_booking_at")
        if "future_booking" in conditions and booking and clock.parse(booking) > now:
            return "future_booking"
        visit = patient.get("last_visit_at")
        if "visit_since" in conditions and visit and clock.parse(visit) > treated:
            return "visit_since"
        latest = (patient.get("last_treatment") or {}).get(touchpoint["tag"])
        if "repeat_treatment" in conditions and latest and latest > touchpoint["treatment_date"]:
            return "repeat_treatment"
        return None

    def message(self, touchpoint: dict[str, Any], patient: dict[str, Any]) -> MessageRequest:
        template = self.hospital.template(touchpoint["template"])
        assert template is not None  # the config schema checks every step's template
        return MessageRequest(
            idempotency_key=f"touchpoint:{patient['id']}:{touchpoint['id']}",
            recipient=patient_recipient(patient),
            template_id=template.id,
            variables=patient_variables(self.hospital, template, patient),
            purpose=touchpoint["purpose"],
            refs={"touchpoint": touchpoint["id"]},
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
        patient = repo.patient_by_phone(recipient_key(hospital_id, phone))
        if patient is None:
            return None
        at = received_at or clock.now()
        recent = [
            t
            for t in self.touchpoints(patient["id"])
            if t["status"] in ("queued", "converted")
            and clock.parse(t.get("queued_at", t["due_at"])) >= at - REPLY_WINDOW
        ]
        if not recent:
            return None
        latest = max(recent, key=lambda t: t.get("queued_at", t["due_at"]))
        answer: dict[str, Any] = {
            "patient_id": patient["id"],
            "touchpoint": latest["id"],
            "converted": None,
        }
        stored = self._remember(
            patient["id"],
            "in",
            text,
            "patient",
            latest["id"],
            at=at,
            inbound_id=provider_message_id,
        )
        if not stored:
            return {**answer, "duplicate": True}
        if text.strip() in ("1", "1번", "예약"):
            answer["converted"] = self._convert_latest(
                patient["id"], "replied 1", step=BOOKING_PROMPT_STEP
            )
        return answer

    def _conversation_item(
        self,
        pid: str,
        direction: str,
        text: str,
        by: str,
        touchpoint: str | None,
        at: datetime,
        inbound_id: str | None = None,
    ) -> dict[str, Any]:
        stamp = clock.iso(at)
        # unique and time-ordered: same-instant messages keep their order, and two writers (or a
        # conversation begun again after an erasure) never take one key; a provider's id makes
        # a redelivery the same key
        tail = f"in:{inbound_id}" if inbound_id else f"{time.time_ns():020d}{secrets.token_hex(4)}"
        return {
            "pk": repo.pk(pid),
            "sk": f"CONV#{stamp}#{tail}",
            "id": f"{stamp}#{tail}",
            "direction": direction,
            "text": text,
            "by": by,
            "at": stamp,
            "touchpoint": touchpoint,
            "provider_message_id": inbound_id,
        }

    def _remember(
        self,
        pid: str,
        direction: str,
        text: str,
        by: str,
        touchpoint: str | None,
        *,
        at: datetime | None = None,
        inbound_id: str | None = None,
    ) -> bool:
        """Store a message of the conversation; False when this provider message is stored
        already (its marker `CONVIN#<id>` is written in the same transaction)."""
        item = self._conversation_item(
            pid, direction, text, by, touchpoint, at or clock.now(), inbound_id
        )
        actions = [store.put_action(item, "attribute_not_exists(pk)")]
        if inbound_id:
            marker = {"pk": repo.pk(pid), "sk": f"CONVIN#{inbound_id}", "conversation": item["sk"]}
            actions.append(store.put_action(marker, "attribute_not_exists(pk)"))
        return store.transact(actions)

    def conversation(self, pid: str) -> dict[str, Any]:
        self.patient(pid)
        messages = [repo.strip(i) for i in repo.items_of(pid, "CONV#")]
        touchpoints = [t for t in self.touchpoints(pid) if t["status"] in ("queued", "converted")]
        latest = max(touchpoints, key=lambda t: t.get("queued_at", t["due_at"]), default=None)
        tag = self.hospital.treatment_tag(latest["tag"]) if latest else None
        return {
            "messages": messages,
            "about": latest,
            "manual": {"tag": tag.id, "name": tag.name, "text": tag.manual} if tag else None,
        }

    def answer(self, pid: str, text: str, by: str, *, confirmed: bool = False) -> dict[str, Any]:
        """Staff answer: the conversation item and the message to the patient in one
        transaction. Each answer has a key of its own (time-ordered, unique): two staff
        answering at once both land, and the message's idempotency key is unique per answer.
        Text naming a diagnosis or treatment is refused (422) unless `confirmed`."""
        patient = self.patient(pid)
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
        consents = patient.get("consents") or {}
        item = self._conversation_item(pid, "out", text, by, None, clock.now())
        request = MessageRequest(
            idempotency_key=f"conversation:{pid}:{item['id']}",  # one per answer, ever
            recipient=Recipient(
                name=patient["name"],
                phone=patient["phone"],
                contact_consent=bool(consents.get("contact")),
                patient_id=pid,
            ),
            template_id=template.id,
            variables={"hospital": self.hospital.sender.display_name, "message": text},
            refs={"patient": pid},
        )
        (outbox_put,) = txoutbox.actions(self.hospital.hospital_id, [request])
        outbox_put["Put"]["ConditionExpression"] = "attribute_not_exists(pk)"
        if not store.transact([store.put_action(item, "attribute_not_exists(pk)"), outbox_put]):
            raise Conflict("the answer could not be stored; send it again")
        return self.conversation(pid)
