"""Recall by treatment tag: what staff record, what the plan schedules, what the dispatcher sends.

Consent, opt-outs, quiet hours and never-twice stay the notification pipeline's; this module
decides *which* touchpoints are due and whether their reason still holds (cancellation rules are
checked at dispatch time, so a booking made after planning still cancels a recall).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sotong import clock, store
from sotong.config.schema import HospitalConfig, Template, TreatmentTag
from sotong.errors import BadRequest, NotFound
from sotong.notify import records
from sotong.notify.model import MessageRequest, Recipient, message_id, recipient_key
from sotong.recall import repository as repo
from sotong.recall.model import (
    Appointment,
    PatientRegistration,
    TreatmentRecord,
    patient_id,
    treatment_id,
)
from sotong.recall.plan import plan

Enqueue = Callable[[list[MessageRequest]], int]
PAST_GRACE = timedelta(hours=12)
FIRST_LOOKBACK = timedelta(days=1)
REPLY_WINDOW = timedelta(days=30)
CONVERSION_WINDOW = timedelta(days=60)
BOOKING_PROMPT_STEP = "recall"


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


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
    """The variables a recall or campaign template may use, limited to the ones it does."""
    sender = hospital.sender
    available = {
        "hospital": sender.display_name,
        "name": patient["name"],
        "callback": sender.callback_number,
        "opt_out": sender.opt_out_number,
        "time": "예약하신 시간",
    }
    return {k: v for k, v in available.items() if k in template.variables}


@dataclass
class DispatchReport:
    read: int = 0
    queued: int = 0
    cancelled: int = 0
    already_done: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass
class RecallDesk:
    hospital: HospitalConfig
    enqueue: Enqueue

    # --- patients -------------------------------------------------------------------------------
    def register(self, registration: PatientRegistration) -> dict[str, Any]:
        hospital_id = self.hospital.hospital_id
        pid = patient_id(hospital_id, registration.chart_no, registration.phone)
        patient = {
            "id": pid,
            "name": registration.name,
            "phone": registration.phone,
            "email": registration.email,
            "chart_no": registration.chart_no,
            "consents": registration.consents.model_dump(),
        }
        return repo.upsert_patient(patient, recipient_key(hospital_id, registration.phone))

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
        for planned in plan(self.hospital, tag, day):
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
        repo.note_treatment(pid, tag.id, new_date.isoformat())
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
            and _parse(t.get("queued_at", t["due_at"])) >= now - CONVERSION_WINDOW
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
    def erase(self, pid: str) -> dict[str, int]:
        """Remove the patient's personal data and pending touchpoints; keep anonymous counts."""
        items = list(repo.items_of(pid))
        if not items:
            raise NotFound(f"no patient {pid}", field="path.patient_id")
        counts: Counter[str] = Counter({"patients_erased": 1})
        for item in items:
            if item["sk"].startswith("TRT#"):
                counts[f"treatments_{item['tag']}"] += 1
            elif item["sk"].startswith("TP#"):
                counts[f"touchpoints_{item['status']}"] += 1
                if item["status"] == "queued":  # a message may still wait in quiet hours
                    key = f"touchpoint:{pid}:{item['id']}"
                    records.finish(
                        message_id(self.hospital.hospital_id, key),
                        "suppressed",
                        "patient erased",
                        expect="held",
                    )
        repo.delete_all([{"pk": {"S": i["pk"]}, "sk": {"S": i["sk"]}} for i in items])
        repo.add_counts(dict(counts))
        return dict(counts)

    # --- dispatch -------------------------------------------------------------------------------
    def dispatch_due(self, now: datetime) -> DispatchReport:
        """Enqueue every planned touchpoint due by `now`, since the watermark: an outage is
        caught up, a re-run sends nothing twice, and the cost grows with what is due."""
        since = store.watermark("recall_dispatch") or now - FIRST_LOOKBACK
        due = repo.due_touchpoints(since, now)
        report = DispatchReport(read=len(due))
        patients = repo.get_patients(t["patient_id"] for t in due) if due else {}
        sending: list[tuple[dict[str, Any], MessageRequest]] = []
        for touchpoint in due:
            patient = patients.get(touchpoint["patient_id"])
            reason = self.cancel_reason(touchpoint, patient, now)
            sk = f"TP#{touchpoint['treatment_id']}#{touchpoint['step']}"
            if reason:
                if repo.set_touchpoint(touchpoint["patient_id"], sk, "cancelled", reason):
                    report.cancelled += 1
                    report.reasons[reason] += 1
                continue
            assert patient is not None
            sending.append((touchpoint, self.message(touchpoint, patient)))
        if sending:
            self.enqueue([request for _, request in sending])
        stamp = clock.iso(now)
        for touchpoint, _ in sending:
            sk = f"TP#{touchpoint['treatment_id']}#{touchpoint['step']}"
            if repo.set_touchpoint(
                touchpoint["patient_id"], sk, "queued", None, extra={"queued_at": stamp}
            ):
                report.queued += 1
            else:
                report.already_done += 1
        store.set_watermark("recall_dispatch", now)
        return report

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
        if "future_booking" in conditions and booking and _parse(booking) > now:
            return "future_booking"
        visit = patient.get("last_visit_at")
        if "visit_since" in conditions and visit and _parse(visit) > treated:
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
    def inbound(self, phone: str, text: str) -> dict[str, Any] | None:
        """A message from a patient recently sent a recall joins their conversation (None when
        the sender has no recent recall: the caller treats it as a complaint)."""
        patient = repo.patient_by_phone(recipient_key(self.hospital.hospital_id, phone))
        if patient is None:
            return None
        now = clock.now()
        recent = [
            t
            for t in self.touchpoints(patient["id"])
            if t["status"] in ("queued", "converted")
            and _parse(t.get("queued_at", t["due_at"])) >= now - REPLY_WINDOW
        ]
        if not recent:
            return None
        latest = max(recent, key=lambda t: t.get("queued_at", t["due_at"]))
        converted = None
        if text.strip() in ("1", "1번", "예약"):
            converted = self._convert_latest(patient["id"], "replied 1", step=BOOKING_PROMPT_STEP)
        self._remember(patient["id"], "in", text, "patient", latest["id"])
        return {"patient_id": patient["id"], "touchpoint": latest["id"], "converted": converted}

    def _remember(
        self, pid: str, direction: str, text: str, by: str, touchpoint: str | None
    ) -> None:
        at = clock.iso(clock.now())
        repo.put(
            {
                "pk": repo.pk(pid),
                "sk": f"CONV#{at}#{time.time_ns():020d}",  # same-instant messages keep order
                "direction": direction,
                "text": text,
                "by": by,
                "at": at,
                "touchpoint": touchpoint,
            }
        )

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

    def answer(self, pid: str, text: str, by: str) -> dict[str, Any]:
        patient = self.patient(pid)
        count = sum(1 for _ in repo.items_of(pid, "CONV#"))
        template = self.hospital.template("staff_reply")
        if template is None:
            raise BadRequest(
                "this hospital has no 'staff_reply' template configured", field="template"
            )
        consents = patient.get("consents") or {}
        self.enqueue(
            [
                MessageRequest(
                    idempotency_key=f"conversation:{pid}:{count + 1}",
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
            ]
        )
        self._remember(pid, "out", text, by, None)
        return self.conversation(pid)
