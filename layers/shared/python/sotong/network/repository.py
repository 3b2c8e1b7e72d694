"""Referrals in the records table: the port the network desk uses (`ReferralRepository`) and its
DynamoDB adapter, the one place that knows their key layout. The guardian's messages a change
causes are outbox items in the same transaction (`sotong.notify.txoutbox.actions`).

- `REFERRAL#<id>` / `REFERRAL` the referral, its history inside it;
- gsi1 `REFERRALS#<partner id>` / `<requested_at>#<id>`: a partner's referrals, newest last;
- gsi4 `REFERRALS#<YYYY-MM>` / `<requested_at>#<id>`: the hospital's, by month of the request
  (the list and the monthly network report read one or two months, never the table);
- gsi2 `REFESC#<UTC hour>` / `<escalate_at>#<id>`: sparse, only while the referral waits for an
  answer and has not been escalated; the sweeper reads the hours since its watermark;
- `REFGUARDIAN#<recipient key of the guardian's phone>` / `REFERRAL#<id>`: a pointer, written in
  the referral's own transaction (the phone never changes), so a patient's erasure finds the
  referrals of their phone by key, never by a Scan (`erase_guardian`).

Every write is a Put conditioned on the version read (`attribute_not_exists` for a new one), so
two people answering at once cannot both win, and a retried request changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sotong import clock, keys, store
from sotong.network.records import Referral
from sotong.notify import txoutbox

if TYPE_CHECKING:
    from sotong.notify.model import MessageRequest

SORT = "REFERRAL"
ESCALATION = "REFESC"
LISTED = "REFERRALS#"
GUARDIAN = "REFGUARDIAN#"


class ReferralRepository(Protocol):
    """What the network desk stores and reads, in domain terms."""

    def add(self, referral: Referral, messages: Sequence[MessageRequest]) -> bool: ...
    def referral(self, referral_id: str) -> Referral | None: ...
    def save(
        self, before: Referral, after: Referral, messages: Sequence[MessageRequest]
    ) -> bool: ...
    def of_partner(self, partner_id: str, limit: int = 100) -> list[Referral]: ...
    def of_month(self, month: str) -> list[Referral]: ...
    def unanswered(self, since: datetime, until: datetime) -> list[Referral]: ...
    def watermark(self, name: str) -> datetime | None: ...
    def set_watermark(self, name: str, until: datetime) -> None: ...
    def of_guardian(self, phone_key: str) -> list[Referral]:
        """The referrals whose guardian phone has this recipient key and that no erasure has
        anonymised yet, by their pointers (never a Scan)."""
        ...

    def erase_guardian(self, phone_key: str, child_name: str | None = None) -> int:
        """Anonymise every referral whose guardian phone has this recipient key (only those of
        the child named `child_name`, when given: a phone another patient still has) and drop
        their pointers; returns how many were anonymised. An erasure (`sotong.erasure`)."""
        ...


# --- the key layout -------------------------------------------------------------------------------
def pk(referral_id: str) -> str:
    return f"REFERRAL#{referral_id}"


def item_of(referral: Referral) -> dict[str, Any]:
    order = f"{referral.requested_at}#{referral.id}"
    item = {
        "pk": pk(referral.id),
        "sk": SORT,
        **referral.to_item(),
        "gsi1pk": LISTED + referral.partner_id,
        "gsi1sk": order,
        "gsi4pk": LISTED + referral.month,
        "gsi4sk": order,
    }
    if referral.waits_for_answer and referral.escalate_at:
        at = clock.parse(referral.escalate_at)
        item["gsi2pk"] = store.hour_bucket(ESCALATION, at)
        item["gsi2sk"] = f"{referral.escalate_at}#{referral.id}"
    return item


def guardian_pointer(hospital_id: str, referral: Referral) -> dict[str, Any]:
    """The pointer of a referral by its guardian's phone: the keyed digest and the id, no more."""
    phone_key = keys.recipient_key(hospital_id, referral.guardian_phone)
    return {"pk": GUARDIAN + phone_key, "sk": pk(referral.id)}


class DynamoReferralRepository:
    """`ReferralRepository` over the records table."""

    def __init__(self, hospital_id: str) -> None:
        self.hospital_id = hospital_id

    def _write(self, put: dict[str, Any], messages: Sequence[MessageRequest]) -> bool:
        return store.transact([put, *txoutbox.actions(self.hospital_id, messages)])

    def add(self, referral: Referral, messages: Sequence[MessageRequest]) -> bool:
        put = store.put_action(item_of(referral), "attribute_not_exists(pk)")
        pointer = store.put_action(guardian_pointer(self.hospital_id, referral))
        return store.transact([put, pointer, *txoutbox.actions(self.hospital_id, messages)])

    def referral(self, referral_id: str) -> Referral | None:
        found = store.dynamodb().get_item(
            TableName=store.table_name(), Key=store.key(pk(referral_id), SORT), ConsistentRead=True
        )
        item = found.get("Item")
        return Referral.from_item(store.from_item(item)) if item else None

    def save(self, before: Referral, after: Referral, messages: Sequence[MessageRequest]) -> bool:
        put = store.put_action(item_of(after), "version = :v", v=before.version)
        return self._write(put, messages)

    def _query(self, index: str, partition: str, limit: int | None = None) -> list[Referral]:
        kwargs: dict[str, Any] = {
            "TableName": store.table_name(),
            "IndexName": index,
            "KeyConditionExpression": f"{index}pk = :p",
            "ExpressionAttributeValues": store.values(p=partition),
            "ScanIndexForward": False,
        }
        found = []
        for item in store.query_pages(**kwargs):
            found.append(Referral.from_item(item))
            if limit is not None and len(found) >= limit:
                break
        return found

    def of_partner(self, partner_id: str, limit: int = 100) -> list[Referral]:
        return self._query("gsi1", LISTED + partner_id, limit)

    def of_month(self, month: str) -> list[Referral]:
        return self._query("gsi4", LISTED + month)

    def unanswered(self, since: datetime, until: datetime) -> list[Referral]:
        return [Referral.from_item(i) for i in store.query_due(ESCALATION, since, until)]

    def watermark(self, name: str) -> datetime | None:
        return store.watermark(name)

    def set_watermark(self, name: str, until: datetime) -> None:
        store.set_watermark(name, until)

    def _pointers(self, phone_key: str) -> list[dict[str, Any]]:
        return list(
            store.query_pages(
                TableName=store.table_name(),
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues=store.values(p=GUARDIAN + phone_key),
                ConsistentRead=True,
            )
        )

    def of_guardian(self, phone_key: str) -> list[Referral]:
        found = (
            self.referral(str(p["sk"]).removeprefix("REFERRAL#")) for p in self._pointers(phone_key)
        )
        return [r for r in found if r is not None and not r.erased_at]

    def erase_guardian(self, phone_key: str, child_name: str | None = None) -> int:
        erased = 0
        for pointer in self._pointers(phone_key):
            referral_id = str(pointer["sk"]).removeprefix("REFERRAL#")
            drop = {
                "Delete": {
                    "TableName": store.table_name(),
                    "Key": store.key(str(pointer["pk"]), str(pointer["sk"])),
                }
            }
            for _ in range(3):  # someone answering meanwhile: read it again
                referral = self.referral(referral_id)
                if referral is None or referral.erased_at:  # gone, or erased before
                    store.transact([drop])
                    break
                if child_name is not None and referral.child_name != child_name:
                    break  # the other patient's child: kept, and so is its pointer
                after = referral.anonymised(clock.now())
                put = store.put_action(item_of(after), "version = :v", v=referral.version)
                if store.transact([put, drop]):
                    erased += 1
                    break
            else:  # pragma: no cover - three changes in a row
                raise RuntimeError(f"referral {referral_id} kept changing during the erasure")
        return erased
