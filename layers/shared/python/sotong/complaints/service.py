"""Complaint handling: intake from every channel, lifecycle, SLA escalation, patient messages.

Every write that causes messages writes the complaint and its outbox items in one DynamoDB
transaction (`sotong.notify.txoutbox`): either both exist or neither does, so a retry after any
failure finds either nothing (and does it all) or everything (and sends nothing more).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sotong import clock, consent, dates, store
from sotong.complaints import repository as repo
from sotong.complaints import sla as clocks
from sotong.complaints.classification import SEVERITY, Classification, Classifier
from sotong.complaints.model import (
    MAX_INBOUND_TEXT,
    OPEN_STATUSES,
    TRANSITIONS,
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
from sotong.config.schema import Contact, HospitalConfig, SlaClock
from sotong.errors import BadRequest, Conflict, Forbidden, NotFound
from sotong.health_terms import check_staff_text
from sotong.notify import inbound, txoutbox
from sotong.notify.model import MessageRequest, Recipient, recipient_key
from sotong.phone import mask_phone
from sotong.staff import Staff

PUBLIC_URL_ENV = "SOTONG_PUBLIC_URL"
LEVELS = ("department_head", "cs_admin")
AWAITING = "awaiting_patient"
SLA_CLOCKS = (("ack", "acknowledge", "ack_due"), ("resolve", "resolve", "resolve_due"))
"""Each SLA clock: its name on the complaint, its target in the config, its due field (the
level-2 escalation time is `<field>_2`)."""
INBOUND_ATTEMPTS = 4
"""How often an inbound message re-reads its complaint when staff changed it meanwhile."""


def public_url(hospital: HospitalConfig) -> str:
    return (os.environ.get(PUBLIC_URL_ENV) or hospital.public_url or "").rstrip("/")


@dataclass
class ComplaintDesk:
    """Everything staff and patients do to complaints, for one hospital."""

    hospital: HospitalConfig
    classifier: Classifier

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
        fields: dict[str, Any] | None = None,
        also: Sequence[dict[str, Any]] = (),
        guess: Classification | None = None,
    ) -> tuple[dict[str, Any], bool] | None:
        """`submit`, with more `fields` on the complaint and `also` more actions in its write.
        None when one of `also`'s conditions refused the write (and no complaint exists)."""
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
            existing = repo.get(complaint_id)
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
        item: dict[str, Any] = {
            "id": complaint_id,
            "code": new_tracking_code(),
            "version": 1,
            "fingerprint": fingerprint,
            "channel": channel,
            "kind": kind,
            "category": guess.category,
            "urgency": guess.urgency,
            "department": department,
            "status": "received",
            "text": submission.text,
            "visit_date": submission.visit_date.isoformat() if submission.visit_date else None,
            "contact": submission.contact.model_dump(exclude_none=True) or None,
            "consent_to_contact": submission.consent_to_contact,
            "entered_by": entered_by,
            "classifier": {
                "kind": guess.kind,
                "category": guess.category,
                "urgency": guess.urgency,
                "matched": list(guess.matched),
                "by": guess.classifier,
            },
            "routing": {
                "department": department,
                "by": "submitter" if submission.department else "rules",
            },
            "created_at": stamp,
            "updated_at": stamp,
            **self._dues(now, guess.urgency),
            "escalations": {},
            "replies": [],
            "history": [self._event("received", entered_by or channel, None, stamp)],
            **(fields or {}),
        }
        item["sla_next_check"] = self._next_check(item)
        actions = [repo.create_action(item)]
        if channel in ("sms", "kakao") and submission.contact.phone:
            sender = self._sender_key(submission.contact.phone)
            actions.append(repo.remember_open_action(sender, complaint_id))
        for address in {submission.contact.phone, submission.contact.email} - {None}:
            # how an erasure finds the complaints a person filed (sotong.erasure)
            actions.append(repo.contact_action(self._sender_key(str(address)), complaint_id))
            if submission.consent_to_contact:
                audit = consent.change(
                    self.hospital.hospital_id,
                    str(address),
                    scope="complaint_contact",
                    old=None,
                    new=True,
                    source="staff" if entered_by else "form",
                    by=entered_by,
                )
                actions.append(store.put_action({**audit, "complaint_id": complaint_id}))
        if not self._commit([*actions, *also], self._messages_on_intake(item)):
            # a concurrent retry with the same key won the race, or `also` was refused
            existing = repo.get(complaint_id)
            if existing is None:
                return None
            return self._replayed(existing, fingerprint), False
        return self.receipt(item), True

    def _replayed(self, existing: dict[str, Any], fingerprint: str) -> dict[str, Any]:
        if existing.get("fingerprint") != fingerprint:
            raise Conflict(
                "header.idempotency-key: this key was already used for a different complaint",
                field="header.idempotency-key",
            )
        return self.receipt(existing)

    def _local(self, stamp: str) -> str:
        return clock.parse(stamp).astimezone(self.hospital.zone).isoformat()

    def receipt(self, item: dict[str, Any]) -> dict[str, Any]:
        base = public_url(self.hospital)
        return {
            "tracking_code": item["code"],
            "status": item["status"],
            "kind": item["kind"],
            "acknowledge_by": self._local(item["ack_due"]),
            "track_url": f"{base}/pages/track.html?code={item['code']}" if base else None,
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
            if inbound.seen(key):
                return None
            open_id = repo.open_for_sender(sender)
            current = repo.get(open_id) if open_id else None
            if current is not None and current["status"] in OPEN_STATUSES:
                updated = dict(current)
                updated["message_count"] = int(current.get("message_count", 1)) + 1
                if current["status"] == AWAITING:  # the answer staff waited for: clocks resume
                    self._record(updated, "in_progress", "patient", "환자 답변 수신", stamp)
                else:
                    self._record(updated, current["status"], "patient", "추가 메시지 수신", stamp)
                actions = [
                    repo.replace_action(current, updated),
                    *self._inbound_actions(
                        current["id"], updated["message_count"], key, received, text, channel
                    ),
                ]
                if store.transact(actions):
                    return self.receipt(updated), False
                continue  # staff changed it, or the same message came in at the same time
            stripped = text.strip()
            first = stripped if len(stripped) >= 5 else f"{stripped} (문자 접수)".strip()
            submission = InboundSubmission(
                text=first[:MAX_INBOUND_TEXT], contact={"phone": phone}, consent_to_contact=True
            )
            idempotency_key = f"inbound:{key}"
            complaint_id = self._complaint_id(idempotency_key)
            result = self._intake(
                submission,
                channel=channel,
                idempotency_key=idempotency_key,
                fields={
                    "message_count": 1,
                    "text_continues": len(first) > MAX_INBOUND_TEXT or None,
                },
                also=self._inbound_actions(complaint_id, 1, key, received, text, channel),
            )
            if result is None:
                continue
            receipt, created = result
            return (receipt, True) if created else None
        raise Conflict("the complaint kept changing while a message joined it; try again")

    @staticmethod
    def _inbound_actions(
        complaint_id: str, seq: int, key: str, received: str, text: str, channel: str
    ) -> list[dict[str, Any]]:
        return [
            *repo.message_actions(
                complaint_id,
                seq=seq,
                key=key,
                received_at=received,
                text=text,
                channel=channel,
                stored_at=clock.iso(clock.now()),
            ),
            inbound.marker_action(key, "complaint", complaint_id=complaint_id),
        ]

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
        item = repo.get(complaint_id)
        if item is None or not staff.sees_department(item["department"]):
            raise NotFound(f"no complaint {complaint_id}", field="path.complaint_id")
        return item

    def view_for(self, staff: Staff, complaint_id: str) -> dict[str, Any]:
        """The complaint with every SMS/KakaoTalk message it received, in order, each whole."""
        item = self.get_for(staff, complaint_id)
        inbound_messages = (
            repo.messages(complaint_id) if item["channel"] in ("sms", "kakao") else []
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
    ) -> dict[str, Any]:
        if department is None:
            department = repo.ALL_DEPARTMENTS if staff.sees_every_department else staff.department
        if department is None:
            raise Forbidden("your account has no department; ask the CS admin to set one")
        if department != repo.ALL_DEPARTMENTS:
            if self.hospital.department(department) is None:
                raise BadRequest(
                    f"query.department: unknown department '{department}'", field="query.department"
                )
            if not staff.sees_department(department):
                raise Forbidden(f"you may only see the inbox of department '{staff.department}'")
        low, high = self._bound(since, end=False), self._bound(until, end=True)
        scope = repo.inbox_scope(department, state, low, high, status, urgency)
        try:
            start = repo.cursor_in(cursor, scope) if cursor else None
        except ValueError as error:
            raise BadRequest(f"query.cursor: {error}", field="query.cursor") from None
        items, next_cursor = repo.inbox(
            department,
            state,
            limit=limit,
            since=low,
            until=high,
            status=status,
            urgency=urgency,
            cursor=start,
        )
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
    def summary(item: dict[str, Any]) -> dict[str, Any]:
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
        current = self.get_for(staff, complaint_id)
        allowed = TRANSITIONS[current["status"]]
        if to not in allowed:
            raise Conflict(
                f"cannot go from {current['status']} to {to}; allowed: {', '.join(allowed)}",
                field="body.status",
                allowed=list(allowed),
            )
        if to == "resolved":
            raise Conflict(
                "resolve with POST /complaints/{id}/resolve, giving the outcome",
                field="body.status",
                allowed=[s for s in allowed if s != "resolved"],
            )
        if to == AWAITING:
            also = self._await_actions(current)
            return self._save(
                staff, current, dict(current), to, note or "환자 답변 대기", also=also
            )
        return self._move(staff, current, to, note)

    def assign(self, staff: Staff, complaint_id: str, assignment: Assignment) -> dict[str, Any]:
        current = self.get_for(staff, complaint_id)
        if current["status"] not in OPEN_STATUSES:
            raise Conflict(
                f"a {current['status']} complaint cannot be assigned; reopen it first",
                field="status",
                allowed=list(TRANSITIONS[current["status"]]),
            )
        updated = dict(current)
        if assignment.department:
            if self.hospital.department(assignment.department) is None:
                raise BadRequest(
                    f"body.department: unknown department '{assignment.department}'",
                    field="body.department",
                )
            updated["department"] = assignment.department
            updated["routing"] = {
                **current.get("routing", {}),
                "department": assignment.department,
                "corrected_by": staff.username,
                "was": current["department"],
            }
        if assignment.assignee:
            updated["assignee"] = assignment.assignee
        status = (
            "assigned" if current["status"] in ("received", "acknowledged") else current["status"]
        )
        note = (
            assignment.note or f"담당: {assignment.assignee or '-'} / 부서: {updated['department']}"
        )
        return self._save(staff, current, updated, status, note)

    def correct(self, staff: Staff, complaint_id: str, correction: Correction) -> dict[str, Any]:
        current = self.get_for(staff, complaint_id)
        if correction.category and correction.category not in self.hospital.complaints.categories:
            raise BadRequest(
                f"body.category: unknown category '{correction.category}'", field="body.category"
            )
        updated = dict(current)
        changes = correction.model_dump(exclude_none=True, exclude={"note"})
        updated.update(changes)
        stamp = clock.iso(clock.now())
        updated["correction"] = {**changes, "by": staff.username, "at": stamp}
        if "urgency" in changes:
            created = clock.parse(current["created_at"])
            updated.update(self._dues(created, changes["urgency"], current.get("sla_pauses")))
        return self._save(
            staff,
            current,
            updated,
            current["status"],
            correction.note or "분류 수정",
            also=[repo.label_action(complaint_id, stamp)],
        )

    def corrections(self, months: Sequence[str]) -> list[dict[str, Any]]:
        """Staff corrections as labelled lines for training: the text, the labels as corrected
        (what staff did not change stays as classified), and the classifier's guess."""
        out = []
        for month in months:
            for item in repo.get_many(repo.corrected_in(month)):
                fix = item.get("correction") or {}
                if not fix:
                    continue
                guess = item.get("classifier") or {}
                out.append(
                    {
                        "text": item["text"],
                        "kind": item["kind"],
                        "category": item["category"],
                        "urgency": item["urgency"],
                        "was": {k: guess.get(k) for k in ("kind", "category", "urgency")},
                        "corrected_at": fix.get("at"),
                    }
                )
        return out

    def reply(self, staff: Staff, complaint_id: str, reply: Reply) -> dict[str, Any]:
        current = self.get_for(staff, complaint_id)
        if reply.notify_patient:
            check_staff_text(
                reply.message,
                "body.message",
                confirmed=reply.confirm_health_terms,
                extra=[t.name for t in self.hospital.treatment_tags],
            )
        updated = dict(current)
        stamp = clock.iso(clock.now())
        updated["replies"] = [
            *current.get("replies", []),
            {"at": stamp, "by": staff.username, "message": reply.message},
        ]
        also: list[dict[str, Any]] = []
        if reply.awaiting_patient:  # a question to the patient: the clocks pause
            if current["status"] not in OPEN_STATUSES:
                raise Conflict(
                    f"a {current['status']} complaint cannot wait for the patient; reopen it first",
                    field="body.awaiting_patient",
                    allowed=list(TRANSITIONS[current["status"]]),
                )
            status = AWAITING
            also = self._await_actions(current)
        elif current["status"] in ("received", "acknowledged", "assigned", AWAITING):
            status = "in_progress"  # a reply that asks nothing goes on (and resumes)
        else:
            status = current["status"]
        requests = []
        if reply.notify_patient:
            n = len(updated["replies"])
            requests = self._to_patient(
                updated, "complaint_progress", f"progress:{n}", {"message": reply.message}
            )
        note = "환자에게 질문 (답변 대기)" if reply.awaiting_patient else "환자에게 답변"
        return self._save(staff, current, updated, status, note, requests, also)

    def resolve(self, staff: Staff, complaint_id: str, resolution: Resolution) -> dict[str, Any]:
        current = self.get_for(staff, complaint_id)
        if "resolved" not in TRANSITIONS[current["status"]]:
            raise Conflict(
                f"cannot resolve a {current['status']} complaint; allowed: "
                f"{', '.join(TRANSITIONS[current['status']])}",
                field="status",
                allowed=list(TRANSITIONS[current["status"]]),
            )
        if resolution.notify_patient:
            check_staff_text(
                resolution.outcome,
                "body.outcome",
                confirmed=resolution.confirm_health_terms,
                extra=[t.name for t in self.hospital.treatment_tags],
            )
        updated = dict(current)
        updated["outcome"] = resolution.outcome
        updated["resolved_at"] = clock.iso(clock.now())
        requests = []
        if resolution.notify_patient:
            n = sum(1 for e in current["history"] if e["status"] == "resolved") + 1
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
        current = self.get_for(staff, complaint_id)
        if current["status"] != "resolved":
            raise Conflict(
                f"only a resolved complaint can be closed; this one is {current['status']}",
                field="status",
                allowed=list(TRANSITIONS[current["status"]]),
            )
        updated = dict(current)
        updated["closed_at"] = clock.iso(clock.now())
        updated["survey_token"] = secrets.token_urlsafe(16)
        base = public_url(self.hospital)
        link = f"{base}/pages/survey.html?code={updated['code']}&t={updated['survey_token']}"
        n = sum(1 for e in current["history"] if e["status"] == "closed") + 1
        requests = self._to_patient(
            updated, "complaint_survey", f"survey:{n}", {"survey_url": link}
        )
        result = self._save(staff, current, updated, "closed", note, requests)
        if current.get("contact", {}).get("phone"):
            # after the close: a message meanwhile found the complaint closed and starts another
            repo.forget_open(self._sender_key(current["contact"]["phone"]), complaint_id)
        return result

    def reopen(self, staff: Staff, complaint_id: str, note: str | None) -> dict[str, Any]:
        current = self.get_for(staff, complaint_id)
        if current["status"] not in ("resolved", "closed"):
            raise Conflict(
                f"only a resolved or closed complaint can be reopened; this one is "
                f"{current['status']}",
                field="status",
                allowed=list(TRANSITIONS[current["status"]]),
            )
        updated = dict(current)
        updated["escalations"] = {
            k: v for k, v in current.get("escalations", {}).items() if k.startswith("ack")
        }
        return self._save(staff, current, updated, "in_progress", note or "재개")

    # --- patients ---------------------------------------------------------------------------------
    def track(self, code: str, phone_last4: str) -> dict[str, Any]:
        item = repo.by_code(normalize_code(code))
        phone = (item or {}).get("contact", {}).get("phone") or ""
        if item is None or not phone or not hmac.compare_digest(phone[-4:], phone_last4):
            raise NotFound("no complaint with this code and phone number")
        return {
            "tracking_code": item["code"],
            "kind": item["kind"],
            "status": item["status"],
            "received_at": self._local(item["created_at"]),
            "acknowledge_by": self._local(item["ack_due"]),
            "updated_at": self._local(item["updated_at"]),
            "replies": [
                {"at": self._local(r["at"]), "message": r["message"]}
                for r in item.get("replies", [])
            ],
            "outcome": item.get("outcome"),
        }

    def answer_survey(self, answer: SurveyAnswer) -> None:
        item = repo.by_code(normalize_code(answer.code))
        token = (item or {}).get("survey_token") or ""
        if item is None or not token or not hmac.compare_digest(token, answer.token):
            raise NotFound("no survey for this link")
        current = repo.get(item["id"])
        assert current is not None
        if current.get("survey"):
            raise Conflict("this survey was already answered")
        updated = dict(current)
        updated["survey"] = {
            "score": answer.score,
            "comment": answer.comment,
            "at": clock.iso(clock.now()),
        }
        self._record(
            updated,
            current["status"],
            "patient",
            f"만족도 {answer.score}/5",
            clock.iso(clock.now()),
        )
        if not repo.replace(current, updated):
            raise Conflict("the complaint changed meanwhile; try again")

    # --- second opinion -------------------------------------------------------------------------
    def second_opinion(self, complaint_id: str, opinion: Classification) -> str:
        """The asynchronous classifier's view of a stored complaint. It may raise the urgency,
        never lower it, and never overrules staff who corrected the urgency. A raise recomputes
        the SLA from when the complaint came in; a raise to critical pages the on-call contact
        now (the same alert intake would have sent, so never twice). Returns what it did:
        raised, kept, staff (corrected by staff), closed or gone."""
        for _ in range(3):  # re-read when staff changed the complaint meanwhile
            current = repo.get(complaint_id)
            if current is None:
                return "gone"
            if (current.get("correction") or {}).get("urgency"):
                return "staff"
            if current["status"] not in OPEN_STATUSES:
                return "closed"
            if SEVERITY[opinion.urgency] <= SEVERITY[current["urgency"]]:
                return "kept"
            updated = self._raised(current, opinion)
            requests = []
            if opinion.urgency == "critical":
                requests.append(self._critical_alert(updated))
            if self._commit([repo.replace_action(current, updated)], requests):
                return "raised"
        raise Conflict("the complaint kept changing while its second opinion was written")

    def _raised(self, current: dict[str, Any], opinion: Classification) -> dict[str, Any]:
        stamp = clock.iso(clock.now())
        updated = dict(current)
        updated["urgency"] = opinion.urgency
        if opinion.urgency == "critical" and opinion.category != current["category"]:
            updated["category"] = opinion.category  # safety or privacy: who must look
            if (current.get("routing") or {}).get("by") == "rules":
                department = self.hospital.complaints.routing.get(
                    opinion.category, self.hospital.complaints.default_department
                )
                updated["department"] = department
                updated["routing"] = {"department": department, "by": "second_opinion"}
        updated["classifier"] = {
            **current.get("classifier", {}),
            "second_opinion": {
                "urgency": opinion.urgency,
                "category": opinion.category,
                "matched": list(opinion.matched),
                "by": opinion.classifier,
                "at": stamp,
            },
        }
        created = clock.parse(current["created_at"])
        updated.update(self._dues(created, opinion.urgency, current.get("sla_pauses")))
        label = {"critical": "긴급", "high": "높음"}.get(opinion.urgency, opinion.urgency)
        self._record(updated, current["status"], "classifier", f"2차 분류: {label}", stamp)
        return updated

    def _critical_alert(self, item: dict[str, Any]) -> MessageRequest:
        categories = self.hospital.complaints.categories
        return self._staff_alert(
            item,
            self.hospital.on_call,
            "critical",
            level="긴급",
            reason=categories.get(item["category"], item["category"]),
            urgent=True,
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
        also: Sequence[dict[str, Any]] = (),
    ) -> tuple[dict[str, Any], bool] | None:
        """A patient's reply to a recall message that the urgency check found critical or high:
        a complaint of its own, so it is in the inbox with its SLA and the on-call contact is
        paged. `key` names the reply; the same reply makes one complaint."""
        submission = InboundSubmission(
            text=text[:MAX_INBOUND_TEXT],
            contact={"phone": phone, **({"name": name} if name else {})},
            consent_to_contact=True,
        )
        return self._intake(
            submission,
            channel=channel,
            idempotency_key=f"reply:{key}",
            fields={"source": {"kind": "recall_reply", **refs}},
            also=also,
            guess=opinion,
        )

    # --- SLA ------------------------------------------------------------------------------------
    def sweep_sla(self, now: datetime) -> Counter[str]:
        """Escalate every complaint whose SLA check is due: once per level (head, then admin).
        Counts `escalated`, and `critical_unacknowledged` (a critical complaint nobody
        acknowledged in its SLA: the on-call alarm watches it)."""
        since = store.watermark("sla_sweep") or now - timedelta(days=14)
        report: Counter[str] = Counter()
        for item in repo.due_sla(since, now):
            key = self._escalate(item, now)
            if key:
                report["escalated"] += 1
                if key.startswith("ack:") and item.get("urgency") == "critical":
                    report["critical_unacknowledged"] += 1
        store.set_watermark("sla_sweep", now)
        return report

    def _escalate(self, item: dict[str, Any], now: datetime) -> str | None:
        """The escalation written (`ack:1`, `resolve:2`, ...), or None."""
        for _ in range(3):  # re-read and retry when staff changed the complaint meanwhile
            current = repo.get(item["id"])
            if current is None:
                return None
            clock_name, level = self._due_level(current, now)
            if clock_name is None:
                return None
            key = f"{clock_name}:{level}"
            updated = dict(current)
            updated["escalations"] = {**current.get("escalations", {}), key: clock.iso(now)}
            who = LEVELS[level - 1]
            note = f"SLA 초과({clock_name}) → {who}"
            self._record(updated, current["status"], "system", note, clock.iso(now))
            alert = self._escalation_alert(current, clock_name, level)
            if self._commit([repo.replace_action(current, updated)], [alert]):
                return key
        return None

    def _escalation_alert(
        self, item: dict[str, Any], clock_name: str, level: int
    ) -> MessageRequest:
        department = self.hospital.department(item["department"])
        if LEVELS[level - 1] == "department_head" and department:
            contact = department.head
        else:
            contact = self.hospital.cs_admin
        reason = "접수 확인 지연" if clock_name == "ack" else "처리 기한 초과"
        return self._staff_alert(
            item,
            contact,
            f"escalate:{clock_name}:{level}",
            level=f"SLA {level}단계",
            reason=reason,
            urgent=item["urgency"] == "critical",
        )

    def _staff_alert(
        self,
        item: dict[str, Any],
        contact: Contact,
        key: str,
        *,
        level: str,
        reason: str,
        urgent: bool,
    ) -> MessageRequest:
        """A `staff_alert` SMS: the code and the department, never the complaint's details."""
        department = self.hospital.department(item["department"])
        return MessageRequest(
            idempotency_key=f"complaint:{item['id']}:{key}",
            recipient=Recipient(
                kind="staff", name=contact.name, phone=contact.phone, email=contact.email
            ),
            template_id="staff_alert",
            urgent=urgent,
            variables={
                "level": level,
                "department": department.name if department else "-",
                "code": item["code"],
                "reason": reason,
            },
            refs={"complaint": item["id"]},
        )

    def _due_level(self, item: dict[str, Any], now: datetime) -> tuple[str | None, int]:
        for name, field in (("ack", "ack_due"), ("resolve", "resolve_due")):
            if not self._clock_running(item, name):
                continue
            for level in (1, 2):
                if f"{name}:{level}" in item.get("escalations", {}):
                    continue
                if self._deadline(item, field, level) <= now:
                    return name, level
                return None, 0
        return None, 0

    @staticmethod
    def _clock_running(item: dict[str, Any], name: str) -> bool:
        if item["status"] == AWAITING:  # paused while the patient is asked something
            return False
        if name == "ack":
            return item["status"] == "received" and not item.get("acknowledged_at")
        return item["status"] in OPEN_STATUSES

    def _deadline(self, item: dict[str, Any], field: str, level: int) -> datetime:
        due = clock.parse(item[field])
        if level == 1:
            return due
        if item.get(f"{field}_2"):
            return clock.parse(item[f"{field}_2"])
        created = clock.parse(item["created_at"])  # stored before `<field>_2` was
        return due + (due - created) / 2

    def _next_check(self, item: dict[str, Any], floor: str | None = None) -> str | None:
        """When the sweep must next look at the complaint (its `SLA#<hour>` index entry), or
        None while no clock runs (waiting for the patient, resolved, closed). Never before
        `floor` (the write's time): the sweep reads only what falls due after its watermark."""
        for name, field in (("ack", "ack_due"), ("resolve", "resolve_due")):
            if not self._clock_running(item, name):
                continue
            for level in (1, 2):
                if f"{name}:{level}" not in item.get("escalations", {}):
                    at = clock.iso(self._deadline(item, field, level))
                    return max(at, floor) if floor else at
        return None

    @cached_property
    def _business_calendar(self) -> clocks.BusinessCalendar:
        hours = self.hospital.business_hours
        if hours is None:  # the config refuses a business clock without business_hours
            raise ValueError("business_hours: not configured")
        return clocks.calendar_from(hours, self.hospital.timezone)

    def _calendar(self, kind: SlaClock | str) -> clocks.BusinessCalendar | None:
        """The calendar a clock runs on: None for calendar hours (around the clock)."""
        return self._business_calendar if kind == "business" else None

    def _dues(
        self, start: datetime, urgency: str, pauses: Sequence[dict[str, str]] | None = None
    ) -> dict[str, Any]:
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
            for pause in pauses or ():
                moved = clocks.elapsed(
                    clock.parse(pause["from"]), clock.parse(pause["to"]), calendar
                )
                first = clocks.due(first, moved, calendar)
                second = clocks.due(second, moved, calendar)
            out[field], out[f"{field}_2"] = clock.iso(first), clock.iso(second)
            out["sla_clocks"][name] = kind
        return out

    def _resume(self, item: dict[str, Any], stamp: str) -> None:
        """The patient answered or staff went on: every due time moves by the time the clock
        was paused, counted in the clock's own hours (business hours for a business clock)."""
        since = item.pop("awaiting_since", None)
        if not since:
            return
        pause = {"from": since, "to": stamp}
        item["sla_pauses"] = [*item.get("sla_pauses", []), pause]
        kinds = item.get("sla_clocks") or {}
        for name, _, field in SLA_CLOCKS:
            calendar = self._calendar(kinds.get(name, "calendar"))
            moved = clocks.elapsed(clock.parse(since), clock.parse(stamp), calendar)
            second = self._deadline(item, field, 2)
            item[field] = clock.iso(clocks.due(clock.parse(item[field]), moved, calendar))
            item[f"{field}_2"] = clock.iso(clocks.due(second, moved, calendar))

    def _await_actions(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        """Waiting for the patient: their SMS/KakaoTalk answer joins this complaint (and
        resumes its clocks), whatever channel it came in by."""
        phone = (item.get("contact") or {}).get("phone")
        return [repo.remember_open_action(self._sender_key(phone), item["id"])] if phone else []

    # --- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _event(status: str, by: str, note: str | None, at: str) -> dict[str, Any]:
        return {"status": status, "by": by, "note": note, "at": at}

    def _record(
        self, updated: dict[str, Any], status: str, by: str, note: str | None, stamp: str
    ) -> None:
        was = updated.get("status")
        updated["status"] = status
        updated["updated_at"] = stamp
        updated["version"] = int(updated.get("version", 1)) + 1
        updated["history"] = [*updated.get("history", []), self._event(status, by, note, stamp)]
        if status == AWAITING and was != AWAITING:
            updated["awaiting_since"] = stamp  # the clocks pause: no next check
        elif was == AWAITING and status != AWAITING:
            self._resume(updated, stamp)
        updated["sla_next_check"] = self._next_check(updated, floor=stamp)
        if status == "acknowledged" and not updated.get("acknowledged_at"):
            updated["acknowledged_at"] = stamp

    def _save(
        self,
        staff: Staff,
        current: dict[str, Any],
        updated: dict[str, Any],
        status: str,
        note: str | None,
        requests: Sequence[MessageRequest] = (),
        also: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """Write a staff change and the messages it causes, together."""
        if current["status"] == "received":  # any staff action acknowledges it
            updated.setdefault("acknowledged_at", clock.iso(clock.now()))
        self._record(updated, status, staff.username, note, clock.iso(clock.now()))
        if not self._commit([repo.replace_action(current, updated), *also], requests):
            raise Conflict("the complaint changed meanwhile; reload it and try again")
        return updated

    def _commit(
        self, actions: Sequence[dict[str, Any]], requests: Sequence[MessageRequest]
    ) -> bool:
        """The complaint's own write and its outbox items in one transaction; False when a
        condition refused it (nothing was written)."""
        return store.transact([*actions, *txoutbox.actions(self.hospital.hospital_id, requests)])

    def _move(
        self, staff: Staff, current: dict[str, Any], to: str, note: str | None
    ) -> dict[str, Any]:
        return self._save(staff, current, dict(current), to, note)

    def _messages_on_intake(self, item: dict[str, Any]) -> list[MessageRequest]:
        requests = []
        if item["urgency"] == "critical":
            requests.append(self._critical_alert(item))
        ack = self._patient_request(
            item,
            "complaint_received",
            "ack",
            {
                "code": item["code"],
                "due": clock.parse(item["ack_due"])
                .astimezone(self.hospital.zone)
                .strftime("%m월 %d일 %H시 %M분"),
                "track_url": self.receipt(item)["track_url"] or public_url(self.hospital) or "-",
            },
        )
        if ack is not None:
            # the answer to the patient's own action goes at once, even in quiet hours
            requests.append(ack.model_copy(update={"urgent": True}))
        return requests

    def _patient_request(
        self,
        item: dict[str, Any],
        template: str,
        key: str,
        variables: dict[str, str],
        email_template: str | None = None,
    ) -> MessageRequest | None:
        contact = item.get("contact") or {}
        if not item.get("consent_to_contact") or not (contact.get("phone") or contact.get("email")):
            return None
        template_id = template if contact.get("phone") or email_template is None else email_template
        spec = self.hospital.template(template_id)
        if spec is None or (spec.channel != "email" and not contact.get("phone")):
            return None
        base = {"hospital": self.hospital.sender.display_name, "code": item["code"]}
        wanted = set(spec.variables)
        values = {k: v for k, v in {**base, **variables}.items() if k in wanted}
        return MessageRequest(
            idempotency_key=f"complaint:{item['id']}:{key}",
            recipient=Recipient(
                name=contact.get("name"),
                phone=contact.get("phone"),
                email=contact.get("email"),
                contact_consent=True,
            ),
            template_id=template_id,
            variables=values,
            refs={"complaint": item["id"]},
        )

    def _to_patient(
        self,
        item: dict[str, Any],
        template: str,
        key: str,
        variables: dict[str, str],
        email_template: str | None = None,
    ) -> list[MessageRequest]:
        request = self._patient_request(item, template, key, variables, email_template)
        return [request] if request is not None else []
