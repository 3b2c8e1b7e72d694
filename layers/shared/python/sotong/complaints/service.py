"""Complaint handling: intake from every channel, lifecycle, SLA escalation, patient messages.

The desk works on `Complaint` records (`complaints.record`, where the lifecycle rules live) and
writes them through a `ComplaintRepository` (`complaints.repository`). Every write that causes
messages hands them to the repository with the complaint, which writes both in one transaction
(the transactional outbox): either both exist or neither does, so a retry after any failure finds
either nothing (and does it all) or everything (and sends nothing more).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sotong import clock, dates
from sotong.complaints import sla as clocks
from sotong.complaints.classification import SEVERITY, Classification, Classifier
from sotong.complaints.model import (
    MAX_INBOUND_TEXT,
    Assignment,
    ComplaintSubmission,
    Correction,
    InboundSubmission,
    Reply,
    Resolution,
    StaffEntry,
    SurveyAnswer,
    new_tracking_code,
    normalize_code,
)
from sotong.complaints.record import AWAITING, Complaint, Event, Pause, StaffReply
from sotong.complaints.record import Contact as PatientContact
from sotong.complaints.repository import (
    ALL_DEPARTMENTS,
    ComplaintRepository,
    ContactConsent,
    DynamoComplaintRepository,
    ReceivedText,
    ReplyLink,
)
from sotong.config.schema import Contact, HospitalConfig, SlaClock
from sotong.errors import BadRequest, Conflict, Forbidden, NotFound
from sotong.health_terms import check_staff_text
from sotong.notify import rules
from sotong.notify.model import MessageRequest, Recipient, recipient_key
from sotong.phone import mask_phone
from sotong.staff import Staff

PUBLIC_URL_ENV = "SOTONG_PUBLIC_URL"
LEVELS = ("department_head", "cs_admin")
SLA_CLOCKS = (("ack", "acknowledge", "ack_due"), ("resolve", "resolve", "resolve_due"))
"""Each SLA clock: its name on the complaint, its target in the config, its due field (the
level-2 escalation time is `<field>_2`)."""
INBOUND_ATTEMPTS = 4
"""How often an inbound message re-reads its complaint when staff changed it meanwhile."""


def public_url(hospital: HospitalConfig) -> str:
    return (os.environ.get(PUBLIC_URL_ENV) or hospital.public_url or "").rstrip("/")


def console_link(hospital: HospitalConfig, complaint_id: str | None = None) -> str:
    """The staff console's page of a complaint (or its inbox), for staff messages; `-` when
    the stack has no public URL."""
    base = public_url(hospital)
    if not base:
        return "-"
    return (
        f"{base}/console/#/complaints/{complaint_id}" if complaint_id else f"{base}/console/#/inbox"
    )


URGENCY_LABELS = {"critical": "긴급", "high": "높음", "normal": "보통", "low": "낮음"}
ROUTED_TEMPLATES = {"sms": "staff_routed", "email": "staff_routed_email"}
DIGEST_TEMPLATES = {"sms": "staff_digest", "email": "staff_digest_email"}
DIGEST_LIMIT = 2_000
"""open complaints of one department a digest reads (its counts say `+` beyond)"""


class ComplaintDesk:
    """Everything staff and patients do to complaints, for one hospital, kept in `complaints`
    (the records table unless another repository is given)."""

    def __init__(
        self,
        hospital: HospitalConfig,
        classifier: Classifier,
        complaints: ComplaintRepository | None = None,
    ) -> None:
        self.hospital = hospital
        self.classifier = classifier
        self.complaints: ComplaintRepository = (
            DynamoComplaintRepository(hospital.hospital_id) if complaints is None else complaints
        )

    # --- intake -------------------------------------------------------------------------------
    def submit(
        self,
        submission: ComplaintSubmission,
        *,
        channel: str,
        idempotency_key: str | None = None,
        entered_by: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Store, classify, route and acknowledge a complaint. Returns (receipt, created)."""
        result = self._intake(
            submission, channel=channel, idempotency_key=idempotency_key, entered_by=entered_by
        )
        if result is None:  # nothing but the complaint itself has a condition
            raise Conflict("the complaint could not be stored; try again")
        return result

    def complaint_id_for(self, idempotency_key: str) -> str:
        """The id a complaint taken in with this idempotency key has (or will have)."""
        return self._complaint_id(idempotency_key)

    def _complaint_id(self, idempotency_key: str | None) -> str:
        if idempotency_key:
            digest = hashlib.sha256(f"{self.hospital.hospital_id}\x00{idempotency_key}".encode())
            return "c" + digest.hexdigest()[:24]
        return "c" + clock.now().strftime("%Y%m%d%H%M%S") + secrets.token_hex(5)

    def _intake(
        self,
        submission: ComplaintSubmission,
        *,
        channel: str,
        idempotency_key: str | None = None,
        entered_by: str | None = None,
        message_count: int | None = None,
        text_continues: bool | None = None,
        source: Mapping[str, Any] | None = None,
        received: ReceivedText | None = None,
        reply: ReplyLink | None = None,
        guess: Classification | None = None,
    ) -> tuple[dict[str, Any], bool] | None:
        """`submit`, with more fields on the complaint, and in its write the message that
        started it (`received`) or the recall reply it came from (`reply`). None when one of
        those refused the write (and no complaint exists)."""
        hospital = self.hospital
        if channel not in hospital.channels:
            raise BadRequest(
                f"channel '{channel}' is not enabled at this hospital", field="channel"
            )
        categories = hospital.complaints.categories
        if submission.category_hint and submission.category_hint not in categories:
            raise BadRequest(
                f"body.category_hint: unknown category '{submission.category_hint}'; "
                f"known: {', '.join(categories)}",
                field="body.category_hint",
            )
        if submission.department and hospital.department(submission.department) is None:
            raise BadRequest(
                f"body.department: unknown department '{submission.department}'; known: "
                f"{', '.join(d.id for d in hospital.departments)}",
                field="body.department",
            )
        fingerprint = hashlib.sha256(submission.model_dump_json().encode()).hexdigest()[:16]
        complaint_id = self._complaint_id(idempotency_key)
        if idempotency_key:
            existing = self.complaints.get(complaint_id)
            if existing is not None:
                return self._replayed(existing, fingerprint), False

        if guess is None:
            guess = self.classifier.classify(submission.text, submission.category_hint)
        kind = submission.kind or guess.kind
        department = submission.department or hospital.complaints.routing.get(
            guess.category, hospital.complaints.default_department
        )
        now = clock.now()
        stamp = clock.iso(now)
        complaint = Complaint(
            id=complaint_id,
            code=new_tracking_code(),
            version=1,
            fingerprint=fingerprint,
            channel=channel,
            kind=kind,
            category=guess.category,
            urgency=guess.urgency,
            department=department,
            status="received",
            text=submission.text,
            visit_date=submission.visit_date.isoformat() if submission.visit_date else None,
            contact=PatientContact.from_item(submission.contact.model_dump(exclude_none=True)),
            consent_to_contact=submission.consent_to_contact,
            entered_by=entered_by,
            classifier={
                "kind": guess.kind,
                "category": guess.category,
                "urgency": guess.urgency,
                "matched": list(guess.matched),
                "by": guess.classifier,
            },
            routing={
                "department": department,
                "by": "submitter" if submission.department else "rules",
            },
            created_at=stamp,
            updated_at=stamp,
            **self._dues(now, guess.urgency),
            history=(Event(status="received", by=entered_by or channel, at=stamp),),
            message_count=message_count,
            text_continues=text_continues,
            source=source,
        )
        complaint = replace(complaint, sla_next_check=complaint.next_check())
        phone, email = submission.contact.phone, submission.contact.email
        sender = self._sender_key(phone) if channel in ("sms", "kakao") and phone else None
        # the contact pointers: how an erasure finds the complaints a person filed
        addresses = [str(a) for a in dict.fromkeys((phone, email)) if a]
        consents = [
            ContactConsent(address=a, source="staff" if entered_by else "form", by=entered_by)
            for a in addresses
            if submission.consent_to_contact
        ]
        created = self.complaints.create(
            complaint,
            messages=self._messages_on_intake(complaint),
            contact_keys=[self._sender_key(a) for a in addresses],
            consents=consents,
            sender_key=sender,
            received=received,
            reply=reply,
        )
        if not created:
            # a concurrent retry with the same key won the race, or `received`/`reply` refused it
            existing = self.complaints.get(complaint_id)
            if existing is None:
                return None
            return self._replayed(existing, fingerprint), False
        return self.receipt(complaint), True

    def _replayed(self, existing: Complaint, fingerprint: str) -> dict[str, Any]:
        if existing.fingerprint != fingerprint:
            raise Conflict(
                "header.idempotency-key: this key was already used for a different complaint",
                field="header.idempotency-key",
            )
        return self.receipt(existing)

    def _local(self, stamp: str) -> str:
        return clock.parse(stamp).astimezone(self.hospital.zone).isoformat()

    def receipt(self, complaint: Complaint) -> dict[str, Any]:
        base = public_url(self.hospital)
        code = complaint.code
        return {
            "tracking_code": code,
            "status": complaint.status,
            "kind": complaint.kind,
            "acknowledge_by": self._local(complaint.ack_due),
            "track_url": f"{base}/pages/track.html?code={code}" if base else None,
        }

    def take_inbound(
        self,
        phone: str,
        text: str,
        channel: str,
        *,
        key: str,
        received_at: datetime | None = None,
    ) -> tuple[dict[str, Any], bool] | None:
        """An SMS/KakaoTalk message, exactly once: it joins the sender's open complaint or starts
        one. The message is stored whole as its own item, and its inbound marker (`key`: the
        provider's message id) in the same transaction. Returns (receipt, created), or None when
        this message was taken before."""
        stamp = clock.iso(clock.now())
        received = clock.iso(received_at) if received_at else stamp
        sender = self._sender_key(phone)
        for _ in range(INBOUND_ATTEMPTS):
            if self.complaints.inbound_seen(key):
                return None
            open_id = self.complaints.open_for_sender(sender)
            current = self.complaints.get(open_id) if open_id else None
            if current is not None and current.is_open:
                count = (1 if current.message_count is None else current.message_count) + 1
                counted = replace(current, message_count=count)
                if current.status == AWAITING:  # the answer staff waited for: clocks resume
                    updated = counted.recorded(
                        "in_progress", "patient", "환자 답변 수신", stamp, self._calendar
                    )
                else:
                    updated = counted.recorded(
                        current.status, "patient", "추가 메시지 수신", stamp, self._calendar
                    )
                message = self._received(key, count, received, text, channel)
                if self.complaints.replace(current, updated, received=message):
                    return self.receipt(updated), False
                continue  # staff changed it, or the same message came in at the same time
            stripped = text.strip()
            first = stripped if len(stripped) >= 5 else f"{stripped} (문자 접수)".strip()
            submission = InboundSubmission(
                text=first[:MAX_INBOUND_TEXT], contact={"phone": phone}, consent_to_contact=True
            )
            result = self._intake(
                submission,
                channel=channel,
                idempotency_key=f"inbound:{key}",
                message_count=1,
                text_continues=len(first) > MAX_INBOUND_TEXT or None,
                received=self._received(key, 1, received, text, channel),
            )
            if result is None:
                continue
            receipt, created = result
            return (receipt, True) if created else None
        raise Conflict("the complaint kept changing while a message joined it; try again")

    @staticmethod
    def _received(key: str, seq: int, received: str, text: str, channel: str) -> ReceivedText:
        return ReceivedText(
            key=key,
            seq=seq,
            received_at=received,
            stored_at=clock.iso(clock.now()),
            channel=channel,
            text=text,
        )

    def _sender_key(self, phone: str) -> str:
        return recipient_key(self.hospital.hospital_id, phone)

    def enter(self, staff: Staff, entry: StaffEntry) -> dict[str, Any]:
        """A complaint staff took by phone or at the desk. Staff who see one department may file
        it into theirs, or leave the department to the routing rules."""
        if entry.department and not staff.sees_department(entry.department):
            raise Forbidden(
                f"body.department: you may file complaints into '{staff.department}' only, or "
                "leave the department out and the routing rules choose it",
                field="body.department",
            )
        receipt, _ = self.submit(entry, channel=entry.channel, entered_by=staff.username)
        return receipt

    # --- staff: reading -------------------------------------------------------------------------
    def get_for(self, staff: Staff, complaint_id: str) -> dict[str, Any]:
        return self._get_for(staff, complaint_id).to_item()

    def _get_for(self, staff: Staff, complaint_id: str) -> Complaint:
        complaint = self.complaints.get(complaint_id)
        if complaint is None or not staff.sees_department(complaint.department):
            raise NotFound(f"no complaint {complaint_id}", field="path.complaint_id")
        return complaint

    def view_for(self, staff: Staff, complaint_id: str) -> dict[str, Any]:
        """The complaint with every SMS/KakaoTalk message it received, in order, each whole."""
        complaint = self._get_for(staff, complaint_id)
        item = complaint.to_item()
        inbound_messages = (
            self.complaints.messages(complaint_id) if complaint.channel in ("sms", "kakao") else []
        )
        if not staff.changes:  # QI reviews the case; it never contacts the person
            contact = item.get("contact") or {}
            item = {
                **item,
                "contact": {
                    k: (mask_phone(v) if k == "phone" else "***")
                    for k, v in contact.items()
                    if v is not None
                },
            }
        return {**item, "inbound_messages": inbound_messages}

    def inbox(
        self,
        staff: Staff,
        *,
        state: str,
        department: str | None,
        status: str | None,
        urgency: str | None,
        since: str | None,
        until: str | None,
        limit: int,
        cursor: str | None,
        channel: str | None = None,
    ) -> dict[str, Any]:
        if department is None:
            department = ALL_DEPARTMENTS if staff.sees_every_department else staff.department
        if department is None:
            raise Forbidden("your account has no department; ask the CS admin to set one")
        if department != ALL_DEPARTMENTS:
            if self.hospital.department(department) is None:
                raise BadRequest(
                    f"query.department: unknown department '{department}'", field="query.department"
                )
            if not staff.sees_department(department):
                raise Forbidden(f"you may only see the inbox of department '{staff.department}'")
        low, high = self._bound(since, end=False), self._bound(until, end=True)
        try:
            items, next_cursor = self.complaints.inbox(
                department,
                state,
                limit=limit,
                since=low,
                until=high,
                status=status,
                urgency=urgency,
                channel=channel,
                cursor=cursor,
            )
        except ValueError as error:  # a cursor not from this listing
            raise BadRequest(f"query.cursor: {error}", field="query.cursor") from None
        return {"items": [self.summary(i) for i in items], "next_cursor": next_cursor}

    def _bound(self, value: str | None, *, end: bool) -> str | None:
        """A date (hospital's day) or a date-time from the query, as a stored timestamp."""
        if value is None:
            return None
        field = "query.to" if end else "query.from"
        try:
            if len(value) == 10:
                day = datetime.fromisoformat(value).replace(tzinfo=self.hospital.zone)
            else:
                day = clock.parse(value)
                if day.tzinfo is None:
                    day = day.replace(tzinfo=self.hospital.zone)
        except ValueError:
            raise BadRequest(f"{field}: not a date or date-time", field=field) from None
        try:  # inside the calendar before any arithmetic (0001-01-01 in UTC is year 0)
            dates.filter_day(day.date())
        except ValueError as error:
            raise BadRequest(f"{field}: {error}", field=field) from None
        if end and len(value) == 10:  # the whole of the `to` day
            day += timedelta(days=1) - timedelta(microseconds=1)
        return clock.iso(day)

    @staticmethod
    def summary(complaint: Complaint) -> dict[str, Any]:
        item = complaint.to_item()
        keys = (
            "id",
            "code",
            "kind",
            "category",
            "urgency",
            "department",
            "status",
            "channel",
            "created_at",
            "ack_due",
            "resolve_due",
            "awaiting_since",
            "assignee",
        )
        summary = {k: item.get(k) for k in keys}
        summary["excerpt"] = item["text"][:80]
        return summary

    # --- staff: changing ------------------------------------------------------------------------
    def change_status(
        self, staff: Staff, complaint_id: str, to: str, note: str | None
    ) -> dict[str, Any]:
        current = self._get_for(staff, complaint_id)
        if to == "resolved" and to in current.allowed:
            raise Conflict(
                "resolve with POST /complaints/{id}/resolve, giving the outcome",
                field="body.status",
                allowed=[s for s in current.allowed if s != "resolved"],
            )
        if to == AWAITING:
            sender = self._await_sender(current) if to in current.allowed else None
            return self._save(
                staff, current, current, to, note or "환자 답변 대기", sender_key=sender, check=True
            )
        return self._save(staff, current, current, to, note, check=True)

    def assign(self, staff: Staff, complaint_id: str, assignment: Assignment) -> dict[str, Any]:
        current = self._get_for(staff, complaint_id)
        if not current.is_open:
            raise Conflict(
                f"a {current.status} complaint cannot be assigned; reopen it first",
                field="status",
                allowed=list(current.allowed),
            )
        updated = current
        if assignment.department:
            if self.hospital.department(assignment.department) is None:
                raise BadRequest(
                    f"body.department: unknown department '{assignment.department}'",
                    field="body.department",
                )
            updated = replace(
                updated,
                department=assignment.department,
                routing={
                    **current.routing,
                    "department": assignment.department,
                    "corrected_by": staff.username,
                    "was": current.department,
                },
            )
        if assignment.assignee:
            updated = replace(updated, assignee=assignment.assignee)
        status = "assigned" if current.status in ("received", "acknowledged") else current.status
        note = assignment.note or f"담당: {assignment.assignee or '-'} / 부서: {updated.department}"
        return self._save(staff, current, updated, status, note)

    def correct(self, staff: Staff, complaint_id: str, correction: Correction) -> dict[str, Any]:
        current = self._get_for(staff, complaint_id)
        if correction.category and correction.category not in self.hospital.complaints.categories:
            raise BadRequest(
                f"body.category: unknown category '{correction.category}'", field="body.category"
            )
        changes = correction.model_dump(exclude_none=True, exclude={"note"})
        stamp = clock.iso(clock.now())
        updated = replace(
            current, **changes, correction={**changes, "by": staff.username, "at": stamp}
        )
        if "urgency" in changes:
            created = clock.parse(current.created_at)
            updated = replace(
                updated, **self._dues(created, changes["urgency"], current.sla_pauses)
            )
        return self._save(
            staff,
            current,
            updated,
            current.status,
            correction.note or "분류 수정",
            label_at=stamp,
        )

    def corrections(self, months: Sequence[str]) -> list[dict[str, Any]]:
        """Staff corrections as labelled lines for training: the text, the labels as corrected
        (what staff did not change stays as classified), and the classifier's guess."""
        out = []
        for month in months:
            for complaint in self.complaints.get_many(self.complaints.corrected_in(month)):
                fix = complaint.correction or {}
                if not fix:
                    continue
                guess = complaint.classifier
                out.append(
                    {
                        "text": complaint.text,
                        "kind": complaint.kind,
                        "category": complaint.category,
                        "urgency": complaint.urgency,
                        "was": {k: guess.get(k) for k in ("kind", "category", "urgency")},
                        "corrected_at": fix.get("at"),
                    }
                )
        return out

    def reply(self, staff: Staff, complaint_id: str, reply: Reply) -> dict[str, Any]:
        current = self._get_for(staff, complaint_id)
        if reply.notify_patient:
            check_staff_text(
                reply.message,
                "body.message",
                confirmed=reply.confirm_health_terms,
                extra=[t.name for t in self.hospital.treatment_tags],
            )
        stamp = clock.iso(clock.now())
        answer = StaffReply(at=stamp, by=staff.username, message=reply.message)
        updated = replace(current, replies=(*current.replies, answer))
        sender: str | None = None
        if reply.awaiting_patient:  # a question to the patient: the clocks pause
            if not current.is_open:
                raise Conflict(
                    f"a {current.status} complaint cannot wait for the patient; reopen it first",
                    field="body.awaiting_patient",
                    allowed=list(current.allowed),
                )
            status = AWAITING
            sender = self._await_sender(current)
        elif current.status in ("received", "acknowledged", "assigned", AWAITING):
            status = "in_progress"  # a reply that asks nothing goes on (and resumes)
        else:
            status = current.status
        requests = []
        if reply.notify_patient:
            n = len(updated.replies)
            requests = self._to_patient(
                updated, "complaint_progress", f"progress:{n}", {"message": reply.message}
            )
        note = "환자에게 질문 (답변 대기)" if reply.awaiting_patient else "환자에게 답변"
        return self._save(staff, current, updated, status, note, requests, sender_key=sender)

    def resolve(self, staff: Staff, complaint_id: str, resolution: Resolution) -> dict[str, Any]:
        current = self._get_for(staff, complaint_id)
        if "resolved" not in current.allowed:
            raise Conflict(
                f"cannot resolve a {current.status} complaint; allowed: "
                f"{', '.join(current.allowed)}",
                field="status",
                allowed=list(current.allowed),
            )
        if resolution.notify_patient:
            check_staff_text(
                resolution.outcome,
                "body.outcome",
                confirmed=resolution.confirm_health_terms,
                extra=[t.name for t in self.hospital.treatment_tags],
            )
        updated = replace(current, outcome=resolution.outcome, resolved_at=clock.iso(clock.now()))
        requests = []
        if resolution.notify_patient:
            n = current.times_reached("resolved") + 1
            requests = self._to_patient(
                updated,
                "complaint_outcome",
                f"outcome:{n}",
                {"outcome": resolution.outcome, "callback": self.hospital.sender.callback_number},
                email_template="complaint_outcome_email",
            )
        note = resolution.note or "처리 완료"
        return self._save(staff, current, updated, "resolved", note, requests)

    def close(self, staff: Staff, complaint_id: str, note: str | None) -> dict[str, Any]:
        current = self._get_for(staff, complaint_id)
        if current.status != "resolved":
            raise Conflict(
                f"only a resolved complaint can be closed; this one is {current.status}",
                field="status",
                allowed=list(current.allowed),
            )
        token = secrets.token_urlsafe(16)
        updated = replace(current, closed_at=clock.iso(clock.now()), survey_token=token)
        base = public_url(self.hospital)
        link = f"{base}/pages/survey.html?code={updated.code}&t={token}"
        n = current.times_reached("closed") + 1
        requests = self._to_patient(
            updated, "complaint_survey", f"survey:{n}", {"survey_url": link}
        )
        result = self._save(staff, current, updated, "closed", note, requests)
        if current.phone:
            # after the close: a message meanwhile found the complaint closed and starts another
            self.complaints.forget_open(self._sender_key(current.phone), complaint_id)
        return result

    def reopen(self, staff: Staff, complaint_id: str, note: str | None) -> dict[str, Any]:
        current = self._get_for(staff, complaint_id)
        if current.status not in ("resolved", "closed"):
            raise Conflict(
                f"only a resolved or closed complaint can be reopened; this one is "
                f"{current.status}",
                field="status",
                allowed=list(current.allowed),
            )
        return self._save(staff, current, current.reopening(), "in_progress", note or "재개")

    # --- patients ---------------------------------------------------------------------------------
    def track(self, code: str, phone_last4: str) -> dict[str, Any]:
        found = self.complaints.by_code(normalize_code(code))
        phone = (found.phone if found else None) or ""
        if found is None or not phone or not hmac.compare_digest(phone[-4:], phone_last4):
            raise NotFound("no complaint with this code and phone number")
        return {
            "tracking_code": found.code,
            "kind": found.kind,
            "status": found.status,
            "received_at": self._local(found.created_at),
            "acknowledge_by": self._local(found.ack_due),
            "updated_at": self._local(found.updated_at),
            "replies": [{"at": self._local(r.at), "message": r.message} for r in found.replies],
            "outcome": found.outcome,
        }

    def answer_survey(self, answer: SurveyAnswer) -> None:
        found = self.complaints.by_code(normalize_code(answer.code))
        token = (found.survey_token if found else None) or ""
        if found is None or not token or not hmac.compare_digest(token, answer.token):
            raise NotFound("no survey for this link")
        current = self.complaints.get(found.id)
        assert current is not None
        if current.survey:
            raise Conflict("this survey was already answered")
        stamp = clock.iso(clock.now())
        survey = {"score": answer.score, "comment": answer.comment, "at": stamp}
        updated = replace(current, survey=survey).recorded(
            current.status, "patient", f"만족도 {answer.score}/5", stamp, self._calendar
        )
        if not self.complaints.replace(current, updated):
            raise Conflict("the complaint changed meanwhile; try again")

    # --- second opinion -------------------------------------------------------------------------
    def second_opinion(self, complaint_id: str, opinion: Classification) -> str:
        """The asynchronous classifier's view of a stored complaint. It may raise the urgency,
        never lower it, and never overrules staff who corrected the urgency. A raise recomputes
        the SLA from when the complaint came in; a raise to critical pages the on-call contact
        now (the same alert intake would have sent, so never twice). Returns what it did:
        raised, kept, staff (corrected by staff), closed or gone."""
        for _ in range(3):  # re-read when staff changed the complaint meanwhile
            current = self.complaints.get(complaint_id)
            if current is None:
                return "gone"
            if (current.correction or {}).get("urgency"):
                return "staff"
            if not current.is_open:
                return "closed"
            if SEVERITY[opinion.urgency] <= SEVERITY[current.urgency]:
                return "kept"
            updated = self._raised(current, opinion)
            requests = []
            if opinion.urgency == "critical":
                requests.append(self._critical_alert(updated))
            if updated.department != current.department:
                requests += self._routed_alerts(updated)
            if self.complaints.replace(current, updated, messages=requests):
                return "raised"
        raise Conflict("the complaint kept changing while its second opinion was written")

    def _raised(self, current: Complaint, opinion: Classification) -> Complaint:
        stamp = clock.iso(clock.now())
        updated = replace(current, urgency=opinion.urgency)
        if opinion.urgency == "critical" and opinion.category != current.category:
            updated = replace(updated, category=opinion.category)  # safety or privacy: who looks
            if current.routing.get("by") == "rules":
                department = self.hospital.complaints.routing.get(
                    opinion.category, self.hospital.complaints.default_department
                )
                routing = {"department": department, "by": "second_opinion"}
                updated = replace(updated, department=department, routing=routing)
        second = {
            "urgency": opinion.urgency,
            "category": opinion.category,
            "matched": list(opinion.matched),
            "by": opinion.classifier,
            "at": stamp,
        }
        created = clock.parse(current.created_at)
        updated = replace(
            updated,
            classifier={**current.classifier, "second_opinion": second},
            **self._dues(created, opinion.urgency, current.sla_pauses),
        )
        label = {"critical": "긴급", "high": "높음"}.get(opinion.urgency, opinion.urgency)
        return updated.recorded(
            current.status, "classifier", f"2차 분류: {label}", stamp, self._calendar
        )

    def _critical_alert(self, complaint: Complaint) -> MessageRequest:
        categories = self.hospital.complaints.categories
        return self._staff_alert(
            complaint,
            self.hospital.on_call,
            "critical",
            level="긴급",
            reason=categories.get(complaint.category, complaint.category),
            urgent=True,
            template_id="staff_critical",
        )

    def from_patient_reply(
        self,
        *,
        key: str,
        text: str,
        phone: str,
        name: str | None,
        channel: str,
        opinion: Classification,
        refs: dict[str, Any],
        link: ReplyLink | None = None,
    ) -> tuple[dict[str, Any], bool] | None:
        """A patient's reply to a recall message that the urgency check found critical or high:
        a complaint of its own, so it is in the inbox with its SLA and the on-call contact is
        paged. `key` names the reply; the same reply makes one complaint. `link` marks the
        conversation entry with it in the same write (refused: None, when the entry is gone)."""
        submission = InboundSubmission(
            text=text[:MAX_INBOUND_TEXT],
            contact={"phone": phone, **({"name": name} if name else {})},
            consent_to_contact=True,
        )
        return self._intake(
            submission,
            channel=channel,
            idempotency_key=f"reply:{key}",
            source={"kind": "recall_reply", **refs},
            reply=link,
            guess=opinion,
        )

    # --- SLA ------------------------------------------------------------------------------------
    def sweep_sla(self, now: datetime) -> Counter[str]:
        """Escalate every complaint whose SLA check is due: once per level (head, then admin).
        Counts `escalated`, and `critical_unacknowledged` (a critical complaint nobody
        acknowledged in its SLA: the on-call alarm watches it)."""
        since = self.complaints.sla_watermark() or now - timedelta(days=14)
        report: Counter[str] = Counter()
        for complaint in self.complaints.due_sla(since, now):
            key = self._escalate(complaint, now)
            if key:
                report["escalated"] += 1
                if key.startswith("ack:") and complaint.urgency == "critical":
                    report["critical_unacknowledged"] += 1
        self.complaints.set_sla_watermark(now)
        return report

    def _escalate(self, due: Complaint, now: datetime) -> str | None:
        """The escalation written (`ack:1`, `resolve:2`, ...), or None."""
        for _ in range(3):  # re-read and retry when staff changed the complaint meanwhile
            current = self.complaints.get(due.id)
            if current is None:
                return None
            clock_name, level = current.due_level(now)
            if clock_name is None:
                return None
            updated = current.escalated(
                clock_name, level, LEVELS[level - 1], clock.iso(now), self._calendar
            )
            alert = self._escalation_alert(current, clock_name, level)
            if self.complaints.replace(current, updated, messages=[alert]):
                return f"{clock_name}:{level}"
        return None

    def _escalation_alert(
        self, complaint: Complaint, clock_name: str, level: int
    ) -> MessageRequest:
        department = self.hospital.department(complaint.department)
        if LEVELS[level - 1] == "department_head" and department:
            contact = department.head
        else:
            contact = self.hospital.cs_admin
        reason = "접수 확인 지연" if clock_name == "ack" else "처리 기한 초과"
        return self._staff_alert(
            complaint,
            contact,
            f"escalate:{clock_name}:{level}",
            level=f"SLA {level}단계",
            reason=reason,
            urgent=complaint.urgency == "critical",
        )

    def _routed_alerts(self, complaint: Complaint) -> list[MessageRequest]:
        """The department is told a complaint was routed to it: one message per alert contact
        (`Department.alert_contacts`), by their channel, with the code, category, urgency and
        the console link, never the text. A critical one goes at once; any other waits for the
        end of the hospital's quiet hours. A channel whose template the config lacks is
        skipped (older configs)."""
        department = self.hospital.department(complaint.department)
        if department is None:
            return []
        now = clock.now()
        urgent = complaint.urgency == "critical"
        wait = None if urgent else rules.quiet_until(self.hospital, now)
        categories = self.hospital.complaints.categories
        values = {
            "department": department.name,
            "code": complaint.code,
            "category": categories.get(complaint.category, complaint.category),
            "urgency": URGENCY_LABELS.get(complaint.urgency, complaint.urgency),
            "due": clock.parse(complaint.ack_due)
            .astimezone(self.hospital.zone)
            .strftime("%m월 %d일 %H시 %M분"),
            "link": console_link(self.hospital, complaint.id),
        }
        requests = []
        for n, contact in enumerate(department.alert_contacts):
            template = self.hospital.template(ROUTED_TEMPLATES[contact.channel])
            if template is None:
                continue
            requests.append(
                MessageRequest(
                    idempotency_key=f"complaint:{complaint.id}:routed:{department.id}:{n}",
                    recipient=Recipient(
                        kind="staff", name=contact.name, phone=contact.phone, email=contact.email
                    ),
                    template_id=template.id,
                    urgent=urgent,
                    not_before=wait,
                    variables={k: v for k, v in values.items() if k in template.variables},
                    refs={"complaint": complaint.id},
                )
            )
        return requests

    # --- the daily digest ---------------------------------------------------------------------
    def department_digest(self, now: datetime) -> Counter[str]:
        """Each department's morning digest of what is open and due, to its alert contacts.
        One per department per day: the repository writes it with a marker of the day, so a
        second run (a retry, a manual run) sends nothing more. A department with nothing open
        is sent nothing. Reads the department's open inbox (an index Query), never a Scan."""
        zone = self.hospital.zone
        local = now.astimezone(zone)
        day = local.date().isoformat()
        end_of_day = clock.iso(
            datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        )
        stamp = clock.iso(now)
        report: Counter[str] = Counter()
        for department in self.hospital.departments:
            items = self.complaints.open_complaints(department.id, DIGEST_LIMIT)
            if not items:
                report["empty"] += 1
                continue
            counts: Counter[str] = Counter()
            for complaint in items:
                counts["open"] += 1
                counts["critical"] += complaint.urgency == "critical"
                if complaint.status == AWAITING:  # its clocks are paused
                    counts["awaiting"] += 1
                    continue
                due = complaint.ack_due if complaint.status == "received" else complaint.resolve_due
                if due and due < stamp:
                    counts["overdue"] += 1
                elif due and due < end_of_day:
                    counts["due_today"] += 1
            more = "+" if len(items) >= DIGEST_LIMIT else ""
            values = {
                "department": department.name,
                "day": local.strftime("%m월 %d일"),
                "link": console_link(self.hospital),
                **{
                    name: f"{counts[name]}{more if name == 'open' else ''}"
                    for name in ("open", "critical", "overdue", "due_today", "awaiting")
                },
            }
            requests = []
            for n, contact in enumerate(department.alert_contacts):
                template = self.hospital.template(DIGEST_TEMPLATES[contact.channel])
                if template is None:
                    continue
                requests.append(
                    MessageRequest(
                        idempotency_key=f"digest:{department.id}:{day}:{n}",
                        recipient=Recipient(
                            kind="staff",
                            name=contact.name,
                            phone=contact.phone,
                            email=contact.email,
                        ),
                        template_id=template.id,
                        variables={k: v for k, v in values.items() if k in template.variables},
                        refs={"digest": f"{department.id}:{day}"},
                    )
                )
            if not requests:
                report["no_template"] += 1
            elif self.complaints.record_digest(department.id, day, requests):
                report["sent"] += 1
                report["messages"] += len(requests)
            else:
                report["already_sent"] += 1
        return report

    def _staff_alert(
        self,
        complaint: Complaint,
        contact: Contact,
        key: str,
        *,
        level: str,
        reason: str,
        urgent: bool,
        template_id: str = "staff_alert",
    ) -> MessageRequest:
        """A `staff_alert` SMS: the code and the department, never the complaint's details.
        `template_id` names another staff template to use when the config has it (else
        `staff_alert`); its `#{link}`, if any, is the complaint's page in the console."""
        department = self.hospital.department(complaint.department)
        template = self.hospital.template(template_id) or self.hospital.template("staff_alert")
        values = {
            "level": level,
            "department": department.name if department else "-",
            "code": complaint.code,
            "reason": reason,
        }
        if template is not None and template.id != "staff_alert":
            values["link"] = console_link(self.hospital, complaint.id)
            values = {k: v for k, v in values.items() if k in template.variables}
        return MessageRequest(
            idempotency_key=f"complaint:{complaint.id}:{key}",
            recipient=Recipient(
                kind="staff", name=contact.name, phone=contact.phone, email=contact.email
            ),
            template_id=template.id if template else "staff_alert",
            urgent=urgent,
            variables=values,
            refs={"complaint": complaint.id},
        )

    @cached_property
    def _business_calendar(self) -> clocks.BusinessCalendar:
        hours = self.hospital.business_hours
        if hours is None:  # the config refuses a business clock without business_hours
            raise ValueError("business_hours: not configured")
        return clocks.calendar_from(hours, self.hospital.timezone)

    def _calendar(self, kind: SlaClock | str) -> clocks.BusinessCalendar | None:
        """The calendar a clock runs on: None for calendar hours (around the clock)."""
        return self._business_calendar if kind == "business" else None

    def _dues(self, start: datetime, urgency: str, pauses: Sequence[Pause] = ()) -> dict[str, Any]:
        """The SLA fields of a complaint that came in at `start`: each clock's due time (level
        1, the department head) and `_2` (level 2, the CS admin: half the target again), on the
        urgency's clock (`sla_clocks`), moved by the `pauses` it had."""
        target = self.hospital.sla[urgency]  # type: ignore[index]
        out: dict[str, Any] = {"sla_clocks": {}}
        for name, key, field in SLA_CLOCKS:
            kind = getattr(target.clock, key)
            calendar = self._calendar(kind)
            hours = float(getattr(target, key))
            first = clocks.due(start, hours, calendar)
            second = clocks.due(first, hours / 2, calendar)
            for pause in pauses:
                moved = clocks.elapsed(clock.parse(pause.start), clock.parse(pause.end), calendar)
                first = clocks.due(first, moved, calendar)
                second = clocks.due(second, moved, calendar)
            out[field], out[f"{field}_2"] = clock.iso(first), clock.iso(second)
            out["sla_clocks"][name] = kind
        return out

    def _await_sender(self, complaint: Complaint) -> str | None:
        """Waiting for the patient: their SMS/KakaoTalk answer joins this complaint (and
        resumes its clocks), whatever channel it came in by (the sender's open pointer)."""
        return self._sender_key(complaint.phone) if complaint.phone else None

    # --- helpers --------------------------------------------------------------------------------
    def _save(
        self,
        staff: Staff,
        current: Complaint,
        updated: Complaint,
        status: str,
        note: str | None,
        requests: Sequence[MessageRequest] = (),
        *,
        sender_key: str | None = None,
        label_at: str | None = None,
        check: bool = False,
    ) -> dict[str, Any]:
        """Write a staff change and the messages it causes, together. `check`: refused unless
        the lifecycle allows going to `status`."""
        stamp = clock.iso(clock.now())
        if current.status == "received":  # any staff action acknowledges it
            updated = updated.acknowledged(stamp)
        if check:
            after = updated.transition(
                status, by=staff.username, note=note, at=stamp, calendar_of=self._calendar
            )
        else:
            after = updated.recorded(status, staff.username, note, stamp, self._calendar)
        written = self.complaints.replace(
            current, after, messages=requests, sender_key=sender_key, label_at=label_at
        )
        if not written:
            raise Conflict("the complaint changed meanwhile; reload it and try again")
        return after.answer()

    def _messages_on_intake(self, complaint: Complaint) -> list[MessageRequest]:
        requests = []
        if complaint.urgency == "critical":
            requests.append(self._critical_alert(complaint))
        ack = self._patient_request(
            complaint,
            "complaint_received",
            "ack",
            {
                "code": complaint.code,
                "due": clock.parse(complaint.ack_due)
                .astimezone(self.hospital.zone)
                .strftime("%m월 %d일 %H시 %M분"),
                "track_url": self.receipt(complaint)["track_url"]
                or public_url(self.hospital)
                or "-",
            },
        )
        if ack is not None:
            # the answer to the patient's own action goes at once, even in quiet hours
            requests.append(ack.model_copy(update={"urgent": True}))
        return requests + self._routed_alerts(complaint)

    def _patient_request(
        self,
        complaint: Complaint,
        template: str,
        key: str,
        variables: dict[str, str],
        email_template: str | None = None,
    ) -> MessageRequest | None:
        contact = complaint.contact or PatientContact()
        if not complaint.consent_to_contact or not (contact.phone or contact.email):
            return None
        template_id = template if contact.phone or email_template is None else email_template
        spec = self.hospital.template(template_id)
        if spec is None or (spec.channel != "email" and not contact.phone):
            return None
        base = {"hospital": self.hospital.sender.display_name, "code": complaint.code}
        wanted = set(spec.variables)
        values = {k: v for k, v in {**base, **variables}.items() if k in wanted}
        return MessageRequest(
            idempotency_key=f"complaint:{complaint.id}:{key}",
            recipient=Recipient(
                name=contact.name,
                phone=contact.phone,
                email=contact.email,
                contact_consent=True,
            ),
            template_id=template_id,
            variables=values,
            refs={"complaint": complaint.id},
        )

    def _to_patient(
        self,
        complaint: Complaint,
        template: str,
        key: str,
        variables: dict[str, str],
        email_template: str | None = None,
    ) -> list[MessageRequest]:
        request = self._patient_request(complaint, template, key, variables, email_template)
        return [request] if request is not None else []
