"""Cases, activities, conferences, reviews and their audit in the records table: the port the
care-plan desk uses (`CarePlanRepository`) and its DynamoDB adapter, the one place that knows the
key layout. The messages a change causes join its transaction (`sotong.notify.txoutbox`).

Everything about one case lives under `CASE#<id>`:
- `CASE` the case (gsi4 `CASES` / `<created at>#<id>` and gsi1 `CASEDEPT#<department>` / the
  same, while open: the lists, never a Scan);
- `ACT#<activity id>` an activity (gsi1 `AGENCY#<agency>` / `<due>#<case>#<id>`: an agency's
  own list; gsi2 `CAREREMIND#<UTC hour>` / `<remind at>#<case>#<id>` while open and not yet
  reminded: the sparse, time-bucketed index the schedule reads);
- `DISC#<conference id>` the case as a conference discussed it (decisions -> activities);
- `REV#<review id>` a follow-up review (gsi2 `CAREREVIEW#<UTC hour>` / `<due at>#...` while
  scheduled; gsi4 `REVIEWSDUE` / `<due at>#<case>#<id>` while due and not done);
- `AUDIT#<at>#<seq>#<nonce>` one change: who, when, before and after.
`CONF#<id>` / `CONF` a conference (gsi4 `CONFS` / `<held on>#<id>`).
`CASECONTACT#<recipient key of the contact phone>` / `CASE#<id>` a pointer, written with a case
that has a contact phone (which never changes), so a patient's erasure finds the cases of their
phone by key, never by a Scan (`contact_cases`, `erase_case`, `unlink_contact`).

Every write is one transaction of `Put`s: a new record on condition it does not exist, a changed
one on condition its `record_version` is the one read, the audit entries and the outbox items
with it. A write refused by a condition writes nothing (`False`): a re-run does nothing twice.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sotong import clock, keys, store
from sotong.careplans.records import (
    Activity,
    AuditEntry,
    CareCase,
    Conference,
    Discussion,
    Review,
    StoredRecord,
)

if TYPE_CHECKING:
    from sotong.notify.model import MessageRequest

REMIND = "CAREREMIND"
REVIEW = "CAREREVIEW"
CASES = "CASES"
CONFERENCES = "CONFS"
REVIEWS_DUE = "REVIEWSDUE"
CONTACT = "CASECONTACT#"
MAX_ACTIONS = 100
CONTACT_FIELDS = ("contact_name", "contact_phone")
"""what names the case's contact, in the case and in its audit's before and after"""
ERASED_KINDS = {
    "CASE": "care_cases",
    "ACT#": "care_activities",
    "DISC#": "care_discussions",
    "REV#": "care_reviews",
    "AUDIT#": "care_audit_entries",
}
"""the kinds of a case's items, as an erasure report counts them"""


@dataclass(frozen=True)
class Change:
    """One write, whole or not at all."""

    new: Sequence[StoredRecord] = ()
    moved: Sequence[tuple[StoredRecord, StoredRecord]] = ()
    """(as read, as it becomes): written on condition it is still as read"""
    audit: Sequence[AuditEntry] = ()
    messages: Sequence[MessageRequest] = ()

    @property
    def pointers(self) -> list[CareCase]:
        """The new cases with a contact phone: each writes its `CASECONTACT#` pointer too."""
        return [r for r in self.new if isinstance(r, CareCase) and r.contact_phone]

    @property
    def size(self) -> int:
        news = len(self.new) + len(self.pointers)
        return news + len(self.moved) + len(self.audit) + len(self.messages)


@dataclass(frozen=True)
class CaseFile:
    """A care case with everything under it: activities, discussions, reviews and audit."""

    case: CareCase
    activities: list[Activity] = field(default_factory=list)
    discussions: list[Discussion] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)


class CarePlanRepository(Protocol):
    def write(self, hospital_id: str, change: Change) -> bool: ...
    def case(self, case_id: str) -> CareCase | None: ...
    def case_file(self, case_id: str) -> CaseFile | None: ...
    def cases(self, department: str | None, limit: int) -> list[CareCase]: ...
    def activity(self, case_id: str, activity_id: str) -> Activity | None: ...
    def agency_activities(self, agency_id: str, limit: int) -> list[Activity]: ...
    def conference(self, conference_id: str) -> Conference | None: ...
    def review(self, case_id: str, review_id: str) -> Review | None: ...
    def reviews_falling_due(self, since: datetime, until: datetime) -> list[Review]: ...
    def reviews_due(self, limit: int) -> list[Review]: ...
    def reminders_due(self, since: datetime, until: datetime) -> list[Activity]: ...
    def watermark(self, name: str) -> datetime | None: ...
    def set_watermark(self, name: str, until: datetime) -> None: ...
    def contact_cases(self, phone_key: str) -> list[CaseFile]:
        """The cases whose contact phone has this recipient key (`CASECONTACT#` pointers)."""
        ...

    def erase_case(self, case_id: str, phone_key: str) -> Counter[str]:
        """Delete the case and everything under it (activities, discussions, reviews, audit)
        and its pointer: an erasure of the case's person. Counts what went, by kind."""
        ...

    def unlink_contact(self, case_id: str, phone_key: str) -> int:
        """Take the contact (name, phone, consent) out of the case and of its audit entries,
        and drop the pointer: an erasure of the contact, not of the case's person. Returns how
        many records were rewritten."""
        ...


# --- the key layout -------------------------------------------------------------------------------
def case_pk(case_id: str) -> str:
    return f"CASE#{case_id}"


def conference_pk(conference_id: str) -> str:
    return f"CONF#{conference_id}"


def contact_pointer(hospital_id: str, case: CareCase) -> dict[str, Any]:
    """A case's pointer by its contact phone: the keyed digest and the case id, no more."""
    return {
        "pk": CONTACT + keys.recipient_key(hospital_id, str(case.contact_phone)),
        "sk": case_pk(case.id),
    }


def _without_contact(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {k: v for k, v in value.items() if k not in CONTACT_FIELDS}


def item_of(record: StoredRecord | AuditEntry) -> dict[str, Any]:
    """The stored item of a record: its key and the index entries its state puts it on."""
    data = record.to_item()
    if isinstance(record, CareCase):
        index: dict[str, str] = {}
        if record.is_open:
            sort = f"{record.created_at}#{record.id}"
            index = {
                "gsi4pk": CASES,
                "gsi4sk": sort,
                "gsi1pk": f"CASEDEPT#{record.department}",
                "gsi1sk": sort,
            }
        return {"pk": case_pk(record.id), "sk": "CASE", **data, **index}
    if isinstance(record, Activity):
        index = {
            "gsi1pk": f"AGENCY#{record.agency}",
            "gsi1sk": f"{record.due}#{record.case_id}#{record.id}",
        }
        if record.awaits_reminder and record.remind_at:
            index |= {
                "gsi2pk": store.hour_bucket(REMIND, clock.parse(record.remind_at)),
                "gsi2sk": f"{record.remind_at}#{record.case_id}#{record.id}",
            }
        return {"pk": case_pk(record.case_id), "sk": f"ACT#{record.id}", **data, **index}
    if isinstance(record, Discussion):
        return {"pk": case_pk(record.case_id), "sk": f"DISC#{record.conference_id}", **data}
    if isinstance(record, Review):
        sort = f"{record.due_at}#{record.case_id}#{record.id}"
        index = {}
        if record.status == "scheduled":
            index = {"gsi2pk": store.hour_bucket(REVIEW, record.due), "gsi2sk": sort}
        elif record.status == "due":
            index = {"gsi4pk": REVIEWS_DUE, "gsi4sk": sort}
        return {"pk": case_pk(record.case_id), "sk": f"REV#{record.id}", **data, **index}
    if isinstance(record, Conference):
        index = {"gsi4pk": CONFERENCES, "gsi4sk": f"{record.held_on}#{record.id}"}
        return {"pk": conference_pk(record.id), "sk": "CONF", **data, **index}
    sk = f"AUDIT#{record.at}#{record.seq:03d}#{secrets.token_hex(3)}"
    return {"pk": case_pk(record.case_id), "sk": sk, **data}


def _record_of(item: dict[str, Any]) -> StoredRecord | AuditEntry | None:
    sk = str(item["sk"])
    if sk == "CASE":
        return CareCase.from_item(item)
    if sk.startswith("ACT#"):
        return Activity.from_item(item)
    if sk.startswith("DISC#"):
        return Discussion.from_item(item)
    if sk.startswith("REV#"):
        return Review.from_item(item)
    if sk.startswith("AUDIT#"):
        return AuditEntry.from_item(item)
    return None


# --- the adapter ----------------------------------------------------------------------------------
class DynamoCarePlanRepository:
    def write(self, hospital_id: str, change: Change) -> bool:
        from sotong.notify import txoutbox

        if change.size > MAX_ACTIONS:
            raise ValueError(f"a change takes at most {MAX_ACTIONS} writes, not {change.size}")
        actions = [store.put_action(item_of(r), "attribute_not_exists(pk)") for r in change.new]
        actions += [store.put_action(contact_pointer(hospital_id, c)) for c in change.pointers]
        for before, after in change.moved:
            actions.append(
                store.put_action(
                    item_of(after), "record_version = :v", v=int(before.record_version)
                )
            )
        actions += [store.put_action(item_of(a), "attribute_not_exists(pk)") for a in change.audit]
        actions += txoutbox.actions(hospital_id, change.messages)
        return store.transact(actions)

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        found = (
            store.dynamodb()
            .get_item(TableName=store.table_name(), Key=store.key(pk, sk), ConsistentRead=True)
            .get("Item")
        )
        return store.from_item(found) if found else None

    def case(self, case_id: str) -> CareCase | None:
        item = self._get(case_pk(case_id), "CASE")
        return CareCase.from_item(item) if item else None

    def case_file(self, case_id: str) -> CaseFile | None:
        records = [
            _record_of(item)
            for item in store.query_pages(
                TableName=store.table_name(),
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues=store.values(p=case_pk(case_id)),
                ConsistentRead=True,
            )
        ]
        case = next((r for r in records if isinstance(r, CareCase)), None)
        if case is None:
            return None
        return CaseFile(
            case=case,
            activities=sorted(
                (r for r in records if isinstance(r, Activity)), key=lambda a: (a.due, a.id)
            ),
            discussions=sorted(
                (r for r in records if isinstance(r, Discussion)), key=lambda d: d.held_on
            ),
            reviews=sorted((r for r in records if isinstance(r, Review)), key=lambda r: r.due_at),
            audit=[r for r in records if isinstance(r, AuditEntry)],
        )

    def _index(self, index: str, partition: str, limit: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": store.table_name(),
            "IndexName": index,
            "KeyConditionExpression": f"{index}pk = :p",
            "ExpressionAttributeValues": store.values(p=partition),
            "Limit": limit,
        }
        while len(found) < limit:
            page = store.dynamodb().query(**kwargs)
            found += [store.from_item(i) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:limit]

    def cases(self, department: str | None, limit: int) -> list[CareCase]:
        items = (
            self._index("gsi4", CASES, limit)
            if department is None
            else self._index("gsi1", f"CASEDEPT#{department}", limit)
        )
        return [CareCase.from_item(i) for i in items]

    def activity(self, case_id: str, activity_id: str) -> Activity | None:
        item = self._get(case_pk(case_id), f"ACT#{activity_id}")
        return Activity.from_item(item) if item else None

    def agency_activities(self, agency_id: str, limit: int) -> list[Activity]:
        return [Activity.from_item(i) for i in self._index("gsi1", f"AGENCY#{agency_id}", limit)]

    def conference(self, conference_id: str) -> Conference | None:
        item = self._get(conference_pk(conference_id), "CONF")
        return Conference.from_item(item) if item else None

    def review(self, case_id: str, review_id: str) -> Review | None:
        item = self._get(case_pk(case_id), f"REV#{review_id}")
        return Review.from_item(item) if item else None

    def reviews_falling_due(self, since: datetime, until: datetime) -> list[Review]:
        return [Review.from_item(i) for i in store.query_due(REVIEW, since, until)]

    def reviews_due(self, limit: int) -> list[Review]:
        return [Review.from_item(i) for i in self._index("gsi4", REVIEWS_DUE, limit)]

    def reminders_due(self, since: datetime, until: datetime) -> list[Activity]:
        return [Activity.from_item(i) for i in store.query_due(REMIND, since, until)]

    def watermark(self, name: str) -> datetime | None:
        return store.watermark(name)

    def set_watermark(self, name: str, until: datetime) -> None:
        store.set_watermark(name, until)

    # --- an erasure (sotong.erasure) ----------------------------------------------------------
    def _pointers(self, phone_key: str) -> list[dict[str, Any]]:
        return list(
            store.query_pages(
                TableName=store.table_name(),
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues=store.values(p=CONTACT + phone_key),
                ConsistentRead=True,
            )
        )

    def _items(self, case_id: str) -> list[dict[str, Any]]:
        return list(
            store.query_pages(
                TableName=store.table_name(),
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues=store.values(p=case_pk(case_id)),
                ConsistentRead=True,
            )
        )

    def contact_cases(self, phone_key: str) -> list[CaseFile]:
        found = (
            self.case_file(str(p["sk"]).removeprefix("CASE#")) for p in self._pointers(phone_key)
        )
        return [f for f in found if f is not None]

    def erase_case(self, case_id: str, phone_key: str) -> Counter[str]:
        items = self._items(case_id)
        counted: Counter[str] = Counter()
        for item in items:
            sk = str(item["sk"])
            counted[
                next((v for k, v in ERASED_KINDS.items() if sk.startswith(k)), "care_other")
            ] += 1
        deletes = [_delete(str(i["pk"]), str(i["sk"])) for i in items]
        deletes.append(_delete(CONTACT + phone_key, case_pk(case_id)))  # the pointer, last
        for start in range(0, len(deletes), MAX_ACTIONS):
            store.transact(deletes[start : start + MAX_ACTIONS])
        return counted

    def unlink_contact(self, case_id: str, phone_key: str) -> int:
        for _ in range(3):  # the case changed meanwhile: read it again
            items = self._items(case_id)
            audits: list[dict[str, Any]] = []
            final: list[dict[str, Any]] = []
            for item in items:
                sk = str(item["sk"])
                if sk == "CASE" and any(item.get(f) for f in CONTACT_FIELDS):
                    version = int(item.get("record_version") or 1)
                    changed = _without_contact(item) | {
                        "contact_consent": False,
                        "record_version": version + 1,
                        "updated_at": clock.iso(clock.now()),
                    }
                    final.append(store.put_action(changed, "record_version = :v", v=version))
                elif sk.startswith("AUDIT#"):
                    cleaned = {
                        k: _without_contact(v) if k in ("before", "after") else v
                        for k, v in item.items()
                    }
                    if cleaned != item:
                        audits.append(store.put_action(cleaned))
            # the audit first (a rewrite is idempotent), the case and its pointer last, together:
            # an erasure cut short finds the pointer and finishes
            for start in range(0, len(audits), MAX_ACTIONS):
                store.transact(audits[start : start + MAX_ACTIONS])
            final.append(_delete(CONTACT + phone_key, case_pk(case_id)))
            if store.transact(final):
                return len(audits) + len(final) - 1
        raise RuntimeError(f"case {case_id} kept changing during the erasure")  # pragma: no cover


def _delete(pk: str, sk: str) -> dict[str, Any]:
    return {"Delete": {"TableName": store.table_name(), "Key": store.key(pk, sk)}}
