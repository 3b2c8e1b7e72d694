"""Erasing a patient at their request (PIPA §36): every record that holds the person, in every
part of the system, without a Scan; anonymous counts stay, a tombstone keeps them erased, and a
report says what went.

In this order, so that an erasure cut short is finished by asking again (the patient item goes
last) and nothing new reaches the person once it has begun:
1. tombstones (`sotong.tombstones`) of the patient id, chart number, phone and e-mail: from now
   on the sender refuses what is still queued for them, registration and import refuse them;
2. the complaints they filed, found by their phone and e-mail (`CONTACT#<recipient key>`,
   `complaints.repository`): each complaint's partition, pointers, label and limiter windows;
3. message records (`notify.records`) to their phone or e-mail (gsi1 `RCPT#<key>`), about the
   patient (gsi3 `REF#patient#<id>`) or about their complaints (`REF#complaint#<id>`): held
   messages among them, so a held message is never released; the outbox requests not yet
   published (`TXOUT#`), and what the sandbox provider kept of them;
4. inbound markers keep only that a message id was handled (no complaint, no patient), and
   the consent audit (`CONSENT#<recipient key>`) stays as proof without the patient id;
5. the care network's referrals whose guardian phone is theirs (`sotong.network`, pointers
   `REFGUARDIAN#<key>`): anonymised, so the monthly network report still counts them (partner,
   urgency, status, timestamps), without the child, the guardian, the reason or any note; and
   the care-plan cases of their phone (`sotong.careplans`, pointers `CASECONTACT#<key>`): a case
   about them (it names them, or they are its own contact) deleted whole (`CASE#<id>`:
   activities, discussions, reviews, audit), and they are taken out of a case they are only the
   contact of (name and phone, in the case and its audit). The messages about these referrals
   and cases (`REF#referral#`, `REF#care_case#`, `REF#activity#`) go with step 3's, before them;
6. their programme sign-ups and one-time code (`sotong.programmes`, by the phone's key: gsi3
   `SIGNUPBY#<key>`, `OTP#<key>`), then the patient's partition `PAT#<id>` (patient,
   treatments, touchpoints, bookings, the whole conversation);
7. anonymous counts (`STATS` / `recall`) and the report, `ERASURE` / `<at>#<erasure id>`: counts
   by kind, when and by whom, no personal data and not the patient id.

A phone another patient still has (a family sharing one) is not tombstoned, and the complaints
and messages reached only through it are kept (they may be the other patient's), and so are its
referrals and cases unless they name this patient (the child's name, the case's person or
contact): the report says so. Kept on purpose: opt-outs (`OPTOUT#<key>`: a keyed digest and a
channel; a refusal must keep being honoured) and the provider's send-rate windows (counts only).
Requests already on the notification queue or its dead-letter queue cannot be picked out of SQS:
the sender refuses them (the tombstone), and they expire with the queue's retention.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sotong import clock, consent, store, tombstones
from sotong.careplans.records import CareCase
from sotong.careplans.repository import DynamoCarePlanRepository
from sotong.complaints.repository import DynamoComplaintRepository
from sotong.errors import NotFound
from sotong.network.repository import DynamoReferralRepository
from sotong.notify import inbound, records, txoutbox
from sotong.notify.model import recipient_key
from sotong.notify.providers import sandbox
from sotong.programmes.repository import DynamoProgrammeRepository
from sotong.recall import repository as recall_repo

REPORTS = "ERASURE"
PENDING_LIMIT = 100_000


@dataclass
class ErasureReport:
    """What one erasure did, for audit: records removed by kind, what was kept and why, counts."""

    erasure_id: str
    at: str
    by: str
    removed: Counter[str] = field(default_factory=Counter)
    """records removed, by kind"""
    kept: dict[str, Any] = field(default_factory=dict)
    """what was kept on purpose, and why"""
    counts: dict[str, int] = field(default_factory=dict)
    """the anonymous counts added to the statistics"""

    def as_dict(self) -> dict[str, Any]:
        return {
            "erasure_id": self.erasure_id,
            "at": self.at,
            "by": self.by,
            "removed": dict(sorted(self.removed.items())),
            "removed_total": sum(self.removed.values()),
            "kept": self.kept,
            "kept_counts": self.counts,
        }


def _for_patient(record: dict[str, Any], pid: str) -> bool:
    held = (record.get("request") or {}).get("recipient") or {}
    return record.get("patient_id") == pid or held.get("patient_id") == pid


def _delete(keys: Iterable[dict[str, Any]]) -> None:
    recall_repo.delete_all(list(keys))


def erase_patient(hospital_id: str, pid: str, by: str) -> ErasureReport:
    """Erase one patient everywhere (see the module); NotFound when there is no such patient."""
    patients = recall_repo.DynamoPatientRepository()
    patient = patients.patient(pid)
    if patient is None:
        raise NotFound(f"no patient {pid}", field="path.patient_id")
    now = clock.now()
    report = ErasureReport("e" + secrets.token_hex(8), clock.iso(now), by)
    removed = report.removed
    phone, email = patient.phone, patient.email
    shared = bool(phone) and any(
        other != pid
        for other in patients.patient_ids_by_phone(recipient_key(hospital_id, str(phone)))
    )
    own_phone = None if shared else phone
    identity = tombstones.Identity(pid, patient.chart_no, own_phone, email)
    removed["tombstones"] = tombstones.write(hospital_id, identity, report.erasure_id, now)
    report.kept["phone_shared_with_another_patient"] = shared
    report.kept["opt_outs"] = "kept: a refusal stays honoured (a keyed digest and a channel)"

    # message records: to their own addresses, about them; to a shared phone only if theirs
    found: dict[str, dict[str, Any]] = {}
    for address in (a for a in (phone, email) if a):
        for record in records.of_recipient(hospital_id, str(address)):
            if address in (own_phone, email) or _for_patient(record, pid):
                found[str(record["message_id"])] = record
    for record in records.of_ref("patient", pid):
        found[str(record["message_id"])] = record

    # the complaints they filed
    counts: Counter[str] = Counter({"patients_erased": 1})
    handled: set[str] = set()
    complaint_ids: set[str] = set()
    complaints = DynamoComplaintRepository(hospital_id)
    for address in (a for a in (own_phone, email) if a):
        contact_key = recipient_key(hospital_id, address)
        complaint_ids |= set(complaints.complaints_of_contact(contact_key))
    for cid in sorted(complaint_ids):
        for record in records.of_ref("complaint", cid):
            found[str(record["message_id"])] = record
        stored = complaints.get(cid)  # None when gone already: only its pointers are left
        given = stored.contact.addresses if stored and stored.contact else ()
        addresses = {a for a in (*given, own_phone, email) if a}
        handled |= complaints.inbound_keys(cid)
        removed.update(
            complaints.erase(cid, [recipient_key(hospital_id, a) for a in addresses], stored)
        )
        if stored is not None:
            removed["complaints"] += 1
            counts["complaints_erased"] += 1
            counts[f"complaints_{stored.kind or 'unknown'}"] += 1
    report.kept["complaints_reached_only_by_a_shared_phone"] = "kept" if shared else "none"

    # the network's referrals and the care-plan cases of their phone (pointers by its key); read
    # now, erased once their messages are gone (a retry finds them again by the pointers)
    phone_key = recipient_key(hospital_id, phone) if phone else None
    referrals = DynamoReferralRepository(hospital_id)
    plans = DynamoCarePlanRepository()
    child = None if own_phone else patient.name  # a shared phone: only this patient's child
    referred = referrals.of_guardian(phone_key) if phone_key else []
    referred = [r for r in referred if child is None or r.child_name == child]
    cases = plans.contact_cases(phone_key) if phone_key else []
    about_them = [f for f in cases if _about(f.case, patient.name, own_phone)]
    contact_of = [
        f.case
        for f in cases
        if f not in about_them and (own_phone or f.case.contact_name == patient.name)
    ]
    refs = {("referral", r.id) for r in referred}
    for file in about_them:  # the agencies' messages name the case's person
        refs |= {("care_case", file.case.id), *(("activity", a.id) for a in file.activities)}
    for kind, ref in sorted(refs):
        for record in records.of_ref(kind, ref):
            found[str(record["message_id"])] = record
    report.kept["referrals_and_care_cases_of_a_shared_phone"] = (
        "kept unless they name this patient" if shared else "none"
    )

    # their messages: records (held ones among them), unpublished requests, sandbox copies
    for record in found.values():
        removed["message_records"] += 1
        if record.get("status") == "held":
            removed["held_messages_suppressed"] += 1
    pending = txoutbox.pending(now + timedelta(days=3650), limit=PENDING_LIMIT)
    unsent = {str(e["message_id"]) for e in pending if _pending_for(e, pid, own_phone, email, refs)}
    unsent |= {str(e["message_id"]) for e in pending if e["message_id"] in found}
    txoutbox.discard(unsent)
    removed["outbox_requests"] = len(unsent)
    removed["sandbox_outbox_entries"] = sandbox.forget(set(found) | unsent)
    _delete(records.record_key(mid) for mid in found)

    # their referrals anonymised (the monthly network report still counts them); the cases
    # about them deleted whole, and they are taken out of the cases they are the contact of
    if phone_key:
        removed["referrals_anonymised"] = referrals.erase_guardian(phone_key, child)
        counts["referrals_anonymised"] += removed["referrals_anonymised"]
        for file in about_them:
            removed.update(plans.erase_case(file.case.id, phone_key))
            counts["care_cases_erased"] += 1
        for case in contact_of:
            plans.unlink_contact(case.id, phone_key)
            removed["care_case_contacts_unlinked"] += 1

    # their programme sign-ups and one-time code, by their own phone's key (sotong.programmes)
    if own_phone:
        programmes = DynamoProgrammeRepository(hospital_id)
        removed["programme_signups"] = programmes.erase_phone(recipient_key(hospital_id, own_phone))

    # the patient's own partition, last
    items = list(recall_repo.items_of(pid))
    for item in items:
        sk = str(item["sk"])
        if sk == "PAT":
            removed["patient"] += 1
        elif sk.startswith("TRT#"):
            removed["treatments"] += 1
            counts[f"treatments_{item['tag']}"] += 1
        elif sk.startswith("TP#"):
            removed["touchpoints"] += 1
            counts[f"touchpoints_{item['status']}"] += 1
        elif sk.startswith("CONVIN#"):
            handled.add(sk.removeprefix("CONVIN#"))
        elif sk.startswith("CONV#"):
            removed["conversation_messages"] += 1
        else:
            removed["other_patient_items"] += 1
    removed["inbound_markers_unlinked"] = inbound.unlink(handled)
    for address in (a for a in (own_phone, email) if a):  # the consent audit stays, unnamed
        removed["consent_audit_unlinked"] += consent.unlink_patient(hospital_id, address)
    _delete(store.key(str(i["pk"]), str(i["sk"])) for i in items)

    report.counts = {kind: n for kind, n in counts.items() if n}
    patients.add_counts(report.counts)
    removed += Counter()  # drop zero counts
    _store(report)
    return report


def _about(case: CareCase, name: str, own_phone: str | None) -> bool:
    """Whether a care-plan case reached by the erased phone is about the erased person: it
    names them, or its contact is the person themself on a phone no other patient has."""
    return case.name == name or (own_phone is not None and case.contact_relation == "self")


def _pending_for(
    entry: dict[str, Any],
    pid: str,
    phone: str | None,
    email: str | None,
    refs: set[tuple[str, str]],
) -> bool:
    try:
        request = json.loads(str(entry.get("request") or "{}"))
    except ValueError:
        return False
    if any((str(k), str(v)) in refs for k, v in (request.get("refs") or {}).items()):
        return True  # about a referral or a care-plan case being erased
    recipient = request.get("recipient") or {}
    if recipient.get("kind", "patient") != "patient":
        return False
    return (
        recipient.get("patient_id") == pid
        or (phone is not None and recipient.get("phone") == phone)
        or (email is not None and str(recipient.get("email") or "").lower() == email.lower())
    )


def _store(report: ErasureReport) -> None:
    """The erasure as audit keeps it: what went, when and by whom; nothing of the person."""
    item = {"pk": REPORTS, "sk": f"{report.at}#{report.erasure_id}", **report.as_dict()}
    store.dynamodb().put_item(TableName=store.table_name(), Item=store.to_item(item))


def reports(limit: int = 50) -> list[dict[str, Any]]:
    """The latest erasure reports, newest first."""
    response = store.dynamodb().query(
        TableName=store.table_name(),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues=store.values(pk=REPORTS),
        ScanIndexForward=False,
        Limit=limit,
    )
    return [
        {k: v for k, v in store.from_item(i).items() if k not in ("pk", "sk")}
        for i in response.get("Items", [])
    ]
