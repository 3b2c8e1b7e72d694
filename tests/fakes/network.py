"""An in-memory `ReferralRepository` (`sotong.network.repository`), for the domain tests.

It refuses what the DynamoDB adapter's conditions refuse (a referral stored twice, a write over a
version no longer current) and keeps the same indexes in spirit: by partner, by month of the
request, and the unanswered ones by their escalation time while they wait. The messages a write
causes go to an `InMemoryOutbox` in the same step, or not at all.
`tests/integration/test_network_repository_contract.py` runs the same checks on both adapters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sotong import clock, keys
from sotong.network.records import Referral
from sotong.notify.model import MessageRequest
from tests.fakes.memory import InMemoryOutbox


@dataclass
class InMemoryReferralRepository:
    outbox: InMemoryOutbox = field(default_factory=InMemoryOutbox)
    stored: dict[str, Referral] = field(default_factory=dict)
    marks: dict[str, datetime] = field(default_factory=dict)
    hospital_id: str = "demo"
    guardians: dict[str, set[str]] = field(default_factory=dict)
    """recipient key of a guardian's phone -> ids of their referrals (the pointers)"""

    def add(self, referral: Referral, messages: Sequence[MessageRequest]) -> bool:
        if referral.id in self.stored:
            return False
        self.stored[referral.id] = referral
        phone_key = keys.recipient_key(self.hospital_id, referral.guardian_phone)
        self.guardians.setdefault(phone_key, set()).add(referral.id)
        self.outbox.add(messages)
        return True

    def referral(self, referral_id: str) -> Referral | None:
        return self.stored.get(referral_id)

    def save(self, before: Referral, after: Referral, messages: Sequence[MessageRequest]) -> bool:
        current = self.stored.get(before.id)
        if current is None or current.version != before.version:
            return False
        self.stored[after.id] = after
        self.outbox.add(messages)
        return True

    def _newest_first(self, found: list[Referral]) -> list[Referral]:
        return sorted(found, key=lambda r: (r.requested_at, r.id), reverse=True)

    def of_partner(self, partner_id: str, limit: int = 100) -> list[Referral]:
        found = [r for r in self.stored.values() if r.partner_id == partner_id]
        return self._newest_first(found)[:limit]

    def of_month(self, month: str) -> list[Referral]:
        return self._newest_first([r for r in self.stored.values() if r.month == month])

    def unanswered(self, since: datetime, until: datetime) -> list[Referral]:
        return sorted(
            (
                r
                for r in self.stored.values()
                if r.waits_for_answer
                and r.escalate_at
                and since < clock.parse(r.escalate_at) <= until
            ),
            key=lambda r: r.escalate_at or "",
        )

    def watermark(self, name: str) -> datetime | None:
        return self.marks.get(name)

    def set_watermark(self, name: str, until: datetime) -> None:
        self.marks[name] = until

    def of_guardian(self, phone_key: str) -> list[Referral]:
        found = (self.stored.get(i) for i in sorted(self.guardians.get(phone_key, ())))
        return [r for r in found if r is not None and not r.erased_at]

    def erase_guardian(self, phone_key: str, child_name: str | None = None) -> int:
        erased = 0
        pointers = self.guardians.get(phone_key, set())
        for referral_id in sorted(pointers):
            referral = self.stored.get(referral_id)
            if referral is None or referral.erased_at:
                pointers.discard(referral_id)
                continue
            if child_name is not None and referral.child_name != child_name:
                continue
            self.stored[referral_id] = referral.anonymised(clock.now())
            pointers.discard(referral_id)
            erased += 1
        if not pointers:
            self.guardians.pop(phone_key, None)
        return erased
