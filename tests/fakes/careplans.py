"""An in-memory `CarePlanRepository` (`sotong.careplans.repository`), for the domain tests.

It keeps typed records and refuses what the DynamoDB adapter's conditions refuse: a record
written twice, a change to a record no longer at the version read (or gone). A refused write
writes nothing, its audit and messages included; the messages of a write go to an
`InMemoryOutbox` in the same step. A new case with a contact phone is found by the phone's
recipient key (the `CASECONTACT#` pointers) until an erasure deletes the case or unlinks its
contact. `tests/integration/test_careplans_repository_contract.py` runs the same checks on both
adapters.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sotong import clock, keys
from sotong.careplans.records import (
    Activity,
    AuditEntry,
    CareCase,
    Conference,
    Discussion,
    Review,
    StoredRecord,
)
from sotong.careplans.repository import CONTACT_FIELDS, MAX_ACTIONS, CaseFile, Change
from tests.fakes.memory import InMemoryOutbox


def _without_contact(value: Any) -> Any:
    if value is None:
        return None
    return {k: v for k, v in value.items() if k not in CONTACT_FIELDS}


def _key(record: StoredRecord) -> tuple[str, ...]:
    if isinstance(record, CareCase):
        return ("case", record.id)
    if isinstance(record, Activity):
        return ("act", record.case_id, record.id)
    if isinstance(record, Discussion):
        return ("disc", record.case_id, record.conference_id)
    if isinstance(record, Review):
        return ("rev", record.case_id, record.id)
    assert isinstance(record, Conference)
    return ("conf", record.id)


@dataclass
class InMemoryCarePlanRepository:
    outbox: InMemoryOutbox = field(default_factory=InMemoryOutbox)
    stored: dict[tuple[str, ...], StoredRecord] = field(default_factory=dict)
    audits: list[AuditEntry] = field(default_factory=list)
    marks: dict[str, datetime] = field(default_factory=dict)
    writes: int = 0
    contacts: dict[str, set[str]] = field(default_factory=dict)
    """recipient key of a case's contact phone -> the case ids (the pointers)"""

    def write(self, hospital_id: str, change: Change) -> bool:
        if change.size > MAX_ACTIONS:
            raise ValueError(f"a change takes at most {MAX_ACTIONS} writes, not {change.size}")
        self.writes += 1
        if any(_key(r) in self.stored for r in change.new):
            return False
        for before, _ in change.moved:
            current = self.stored.get(_key(before))
            if current is None or current.record_version != before.record_version:
                return False
        for record in change.new:
            self.stored[_key(record)] = record
        for case in change.pointers:
            phone_key = keys.recipient_key(hospital_id, str(case.contact_phone))
            self.contacts.setdefault(phone_key, set()).add(case.id)
        for _, after in change.moved:
            self.stored[_key(after)] = after
        self.audits += change.audit
        self.outbox.add(change.messages)
        return True

    def _all(self, kind: type) -> list[Any]:
        return [r for r in self.stored.values() if isinstance(r, kind)]

    def case(self, case_id: str) -> CareCase | None:
        found = self.stored.get(("case", case_id))
        return found if isinstance(found, CareCase) else None

    def case_file(self, case_id: str) -> CaseFile | None:
        case = self.case(case_id)
        if case is None:
            return None
        activities: list[Activity] = [a for a in self._all(Activity) if a.case_id == case_id]
        discussions: list[Discussion] = [d for d in self._all(Discussion) if d.case_id == case_id]
        reviews: list[Review] = [r for r in self._all(Review) if r.case_id == case_id]
        return CaseFile(
            case=case,
            activities=sorted(activities, key=lambda a: (a.due, a.id)),
            discussions=sorted(discussions, key=lambda d: d.held_on),
            reviews=sorted(reviews, key=lambda r: r.due_at),
            audit=[a for a in self.audits if a.case_id == case_id],
        )

    def cases(self, department: str | None, limit: int) -> list[CareCase]:
        found: list[CareCase] = [
            c
            for c in self._all(CareCase)
            if c.is_open and (department is None or c.department == department)
        ]
        return sorted(found, key=lambda c: (c.created_at, c.id))[:limit]

    def activity(self, case_id: str, activity_id: str) -> Activity | None:
        found = self.stored.get(("act", case_id, activity_id))
        return found if isinstance(found, Activity) else None

    def agency_activities(self, agency_id: str, limit: int) -> list[Activity]:
        found: list[Activity] = [a for a in self._all(Activity) if a.agency == agency_id]
        return sorted(found, key=lambda a: (a.due, a.case_id, a.id))[:limit]

    def conference(self, conference_id: str) -> Conference | None:
        found = self.stored.get(("conf", conference_id))
        return found if isinstance(found, Conference) else None

    def review(self, case_id: str, review_id: str) -> Review | None:
        found = self.stored.get(("rev", case_id, review_id))
        return found if isinstance(found, Review) else None

    def reviews_falling_due(self, since: datetime, until: datetime) -> list[Review]:
        low, high = clock.iso(since), clock.iso(until)
        found: list[Review] = [
            r for r in self._all(Review) if r.status == "scheduled" and low < r.due_at <= high
        ]
        return sorted(found, key=lambda r: (r.due_at, r.case_id, r.id))

    def reviews_due(self, limit: int) -> list[Review]:
        found: list[Review] = [r for r in self._all(Review) if r.status == "due"]
        return sorted(found, key=lambda r: (r.due_at, r.case_id, r.id))[:limit]

    def reminders_due(self, since: datetime, until: datetime) -> list[Activity]:
        low, high = clock.iso(since), clock.iso(until)
        found: list[Activity] = [
            a
            for a in self._all(Activity)
            if a.awaits_reminder and a.remind_at and low < a.remind_at <= high
        ]
        return sorted(found, key=lambda a: (a.remind_at or "", a.case_id, a.id))

    def watermark(self, name: str) -> datetime | None:
        return self.marks.get(name)

    def set_watermark(self, name: str, until: datetime) -> None:
        self.marks[name] = until

    def contact_cases(self, phone_key: str) -> list[CaseFile]:
        found = (self.case_file(c) for c in sorted(self.contacts.get(phone_key, ())))
        return [f for f in found if f is not None]

    def _drop_pointer(self, case_id: str, phone_key: str) -> None:
        pointers = self.contacts.get(phone_key, set())
        pointers.discard(case_id)
        if not pointers:
            self.contacts.pop(phone_key, None)

    def erase_case(self, case_id: str, phone_key: str) -> Counter[str]:
        counted: Counter[str] = Counter()
        kinds = {"case": "care_cases", "act": "care_activities", "disc": "care_discussions"}
        kinds["rev"] = "care_reviews"
        for key in [k for k in self.stored if k[0] != "conf" and k[1] == case_id]:
            counted[kinds[key[0]]] += 1
            del self.stored[key]
        kept = [a for a in self.audits if a.case_id != case_id]
        counted["care_audit_entries"] = len(self.audits) - len(kept)
        self.audits = kept
        self._drop_pointer(case_id, phone_key)
        return +counted

    def unlink_contact(self, case_id: str, phone_key: str) -> int:
        rewritten = 0
        case = self.case(case_id)
        if case is not None and (case.contact_name or case.contact_phone):
            self.stored[("case", case_id)] = replace(
                case,
                contact_name=None,
                contact_phone=None,
                contact_consent=False,
                updated_at=clock.iso(clock.now()),
                record_version=case.record_version + 1,
            )
            rewritten += 1
        for n, entry in enumerate(self.audits):
            if entry.case_id != case_id:
                continue
            cleaned = replace(
                entry,
                before=_without_contact(entry.before),
                after=_without_contact(entry.after),
            )
            if cleaned != entry:
                self.audits[n] = cleaned
                rewritten += 1
        self._drop_pointer(case_id, phone_key)
        return rewritten
