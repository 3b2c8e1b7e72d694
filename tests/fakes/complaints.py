"""`InMemoryComplaintRepository`: the complaints port (`sotong.complaints.repository`) in memory,
for the domain tests.

It keeps what the DynamoDB adapter stores, as records that went through the same serialisation
(so an unset value reads back as unset), and refuses what DynamoDB's conditions refuse: a second
create of an id, a replace from a stale version (or of a complaint that is gone), an inbound
message taken before, a recall reply entry that is gone. A refused write writes nothing, outbox
messages included; an accepted one puts its messages in `outbox`, as the one transaction does.
`tests/integration/test_complaint_repository_contract.py` runs the same checks on both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sotong import clock, store
from sotong.complaints.record import Complaint
from sotong.complaints.repository import (
    ALL_DEPARTMENTS,
    ComplaintRepository,
    ContactConsent,
    ReceivedText,
    ReplyLink,
    cursor_in,
    cursor_out,
    inbox_scope,
    message_sorts,
)
from sotong.notify.model import MessageRequest
from tests.fakes.memory import InMemoryOutbox


def _as_stored(complaint: Complaint) -> Complaint:
    """What reading the complaint back from the table gives (unset values dropped)."""
    return Complaint.from_item(store.from_item(store.to_item(complaint.to_item())))


@dataclass
class InMemoryComplaintRepository:
    outbox: InMemoryOutbox = field(default_factory=InMemoryOutbox)
    complaints: dict[str, Complaint] = field(default_factory=dict)
    texts: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """complaint id -> sort key -> one stored part of an inbound message"""
    markers: dict[str, str] = field(default_factory=dict)
    """inbound message key -> the complaint it went to"""
    open_senders: dict[str, str] = field(default_factory=dict)
    contacts: dict[str, set[str]] = field(default_factory=dict)
    consents: list[tuple[str, ContactConsent]] = field(default_factory=list)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    """month -> `<at>#<id>` -> complaint id"""
    linked_replies: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    """recall conversation entry -> (complaint id, urgency)"""
    gone_entries: set[tuple[str, str]] = field(default_factory=set)
    """recall conversation entries that no longer exist (a `ReplyLink` to one is refused)"""
    attempts: Counter[tuple[str, int]] = field(default_factory=Counter)
    watermark: datetime | None = None
    digests: set[tuple[str, str]] = field(default_factory=set)
    """(department, day) of the digests written"""
    writes: int = 0
    """accepted writes (creates and replaces)"""

    # --- reading ---------------------------------------------------------------------------------
    def get(self, complaint_id: str) -> Complaint | None:
        return self.complaints.get(complaint_id)

    def get_many(self, complaint_ids: Sequence[str]) -> list[Complaint]:
        return [self.complaints[i] for i in dict.fromkeys(complaint_ids) if i in self.complaints]

    def by_code(self, code: str) -> Complaint | None:
        return next((c for c in self.complaints.values() if c.code == code), None)

    def inbox(
        self,
        department: str,
        state: str,
        *,
        limit: int,
        since: str | None = None,
        until: str | None = None,
        status: str | None = None,
        urgency: str | None = None,
        channel: str | None = None,
        cursor: str | None = None,
    ) -> tuple[list[Complaint], str | None]:
        scope = inbox_scope(department, state, since, until, status, urgency, channel)
        start = cursor_in(cursor, scope) if cursor else None
        rows = sorted(
            (
                (f"{c.created_at}#{c.id}", c)
                for c in self.complaints.values()
                if c.state == state and department in (ALL_DEPARTMENTS, c.department)
            ),
            key=lambda row: row[0],
            reverse=True,
        )
        if since or until:
            low, high = since or "0", (until or "9999") + "~"
            rows = [row for row in rows if low <= row[0] <= high]
        if start:
            rows = [row for row in rows if row[0] < start["sort"]]
        page = rows[:limit]
        items = [
            c
            for _, c in page
            if (not status or c.status == status)
            and (not urgency or c.urgency == urgency)
            and (not channel or c.channel == channel)
        ]
        position = {"sort": page[-1][0]} if len(rows) > limit else None
        return items, cursor_out(position, scope)

    def due_sla(self, since: datetime, until: datetime) -> list[Complaint]:
        low, high = clock.iso(since), clock.iso(until)
        due = [
            c
            for c in self.complaints.values()
            if c.sla_next_check and low < c.sla_next_check <= high
        ]
        return sorted(due, key=lambda c: f"{c.sla_next_check}#{c.id}")

    def sla_watermark(self) -> datetime | None:
        return self.watermark

    def set_sla_watermark(self, until: datetime) -> None:
        self.watermark = min(until, clock.unshifted())

    def open_for_sender(self, sender_key: str) -> str | None:
        return self.open_senders.get(sender_key)

    def inbound_seen(self, key: str) -> bool:
        return key in self.markers

    def messages(self, complaint_id: str) -> list[dict[str, Any]]:
        parts = self.texts.get(complaint_id, {})
        whole: list[dict[str, Any]] = []
        for sort in sorted(parts):
            part = parts[sort]
            if whole and part["part"] and whole[-1]["id"] == part["key"]:
                whole[-1]["text"] += part["text"]
                continue
            whole.append(
                {
                    "id": part["key"],
                    "received_at": part["received_at"],
                    "channel": part["channel"],
                    "text": part["text"],
                }
            )
        return whole

    def inbound_keys(self, complaint_id: str) -> set[str]:
        return {str(m["id"]) for m in self.messages(complaint_id)}

    def corrected_in(self, month: str) -> list[str]:
        entries = self.labels.get(month, {})
        return list(dict.fromkeys(entries[sort] for sort in sorted(entries)))

    def complaints_of_contact(self, contact_key: str) -> list[str]:
        return sorted(self.contacts.get(contact_key, set()))

    # --- writing ---------------------------------------------------------------------------------
    def create(
        self,
        complaint: Complaint,
        *,
        messages: Sequence[MessageRequest] = (),
        contact_keys: Sequence[str] = (),
        consents: Sequence[ContactConsent] = (),
        sender_key: str | None = None,
        received: ReceivedText | None = None,
        reply: ReplyLink | None = None,
    ) -> bool:
        if complaint.id in self.complaints or not self._may_take(complaint.id, received):
            return False
        if reply is not None and (reply.partition, reply.sort) in self.gone_entries:
            return False
        self._write(complaint, messages, sender_key, received)
        for key in contact_keys:
            self.contacts.setdefault(key, set()).add(complaint.id)
        self.consents += [(complaint.id, given) for given in consents]
        if reply is not None:
            self.linked_replies[(reply.partition, reply.sort)] = (complaint.id, reply.urgency)
        return True

    def replace(
        self,
        before: Complaint,
        after: Complaint,
        *,
        messages: Sequence[MessageRequest] = (),
        sender_key: str | None = None,
        received: ReceivedText | None = None,
        label_at: str | None = None,
    ) -> bool:
        stored = self.complaints.get(before.id)
        if stored is None or stored.version != before.version:
            return False
        if not self._may_take(after.id, received):
            return False
        self._write(after, messages, sender_key, received)
        if label_at:
            self.labels.setdefault(label_at[:7], {})[f"{label_at}#{after.id}"] = after.id
        return True

    def forget_open(self, sender_key: str, complaint_id: str) -> None:
        if self.open_senders.get(sender_key) == complaint_id:
            del self.open_senders[sender_key]

    def hit_rate_limit(self, name: str, window_s: int, limit: int) -> bool:
        now = int(clock.now().timestamp())
        window = (name, now - now % window_s)
        if self.attempts[window] >= limit:
            return True
        self.attempts[window] += 1
        return False

    def erase(
        self, complaint_id: str, contact_keys: Sequence[str], found: Complaint | None
    ) -> dict[str, int]:
        self.complaints.pop(complaint_id, None)
        texts = self.texts.pop(complaint_id, {})
        for key in contact_keys:
            self.contacts.get(key, set()).discard(complaint_id)
            self.forget_open(key, complaint_id)
        at = found.corrected_at if found else None
        if at:
            self.labels.get(at[:7], {}).pop(f"{at}#{complaint_id}", None)
        code = (found.code if found else "").upper().replace("-", "")
        windows = [w for w in self.attempts if code and w[0] == f"track-code:{code}"]
        for window in windows:
            del self.attempts[window]
        return {"complaint_messages": len(texts), "rate_limit_windows": len(windows)}

    def open_complaints(self, department: str, limit: int) -> list[Complaint]:
        rows = sorted(
            (
                c
                for c in self.complaints.values()
                if c.state == "open" and c.department == department
            ),
            key=lambda c: f"{c.created_at}#{c.id}",
            reverse=True,
        )
        return rows[:limit]

    def record_digest(self, department: str, day: str, messages: Sequence[MessageRequest]) -> bool:
        if (department, day) in self.digests:
            return False
        self.digests.add((department, day))
        self.outbox.add(messages)
        return True

    # --- the one transaction -------------------------------------------------------------------
    def _may_take(self, complaint_id: str, received: ReceivedText | None) -> bool:
        if received is None:
            return True
        taken = self.texts.get(complaint_id, {})
        return received.key not in self.markers and not any(
            sort in taken for sort, _ in message_sorts(received)
        )

    def _write(
        self,
        complaint: Complaint,
        messages: Sequence[MessageRequest],
        sender_key: str | None,
        received: ReceivedText | None,
    ) -> None:
        self.complaints[complaint.id] = _as_stored(complaint)
        if sender_key:
            self.open_senders[sender_key] = complaint.id
        if received is not None:
            sorts = message_sorts(received)
            for n, (sort, chunk) in enumerate(sorts):
                self.texts.setdefault(complaint.id, {})[sort] = {
                    "key": received.key,
                    "part": n,
                    "parts": len(sorts),
                    "received_at": received.received_at,
                    "stored_at": received.stored_at,
                    "channel": received.channel,
                    "text": chunk,
                }
            self.markers[received.key] = complaint.id
        self.outbox.add(messages)
        self.writes += 1


if TYPE_CHECKING:  # mypy holds the fake to the port
    _conforms: ComplaintRepository = InMemoryComplaintRepository()
