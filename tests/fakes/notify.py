"""In-memory adapters for the sender (`sotong.notify.sender.BatchSender`): its message records,
its send rate, and a provider that counts what it accepted per message."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sotong import clock
from sotong.notify.model import MessageRequest
from sotong.notify.providers.base import Lookup, OutgoingMessage, Provider, SendResult
from sotong.notify.ratelimit import Reservation, Slot
from sotong.notify.records import LEASE, MessageRecord


@dataclass
class InMemoryMessageRecords:
    """`MessageRecords` with DynamoDB's conditions: a create refuses an existing id, and a move
    happens only from the status it expects."""

    LEASE = LEASE
    by_id: dict[str, MessageRecord] = field(default_factory=dict)
    opt_outs: dict[str, set[str]] = field(default_factory=dict)
    """address → channels refused (`sms`, `alimtalk`, `email`, `all`)"""

    def get_many(self, message_ids: list[str]) -> dict[str, MessageRecord]:
        return {m: self.by_id[m] for m in message_ids if m in self.by_id}

    def opted_out_many(self, hospital_id: str, addresses: list[str]) -> dict[str, frozenset[str]]:
        return {a: frozenset(self.opt_outs.get(a, ())) for a in addresses}

    def create(
        self,
        message_id: str,
        request: MessageRequest,
        hospital_id: str,
        status: str,
        reason: str | None = None,
        *,
        held_until: datetime | None = None,
    ) -> bool:
        if message_id in self.by_id:
            return False
        stamp = clock.iso(clock.now())
        self.by_id[message_id] = MessageRecord(
            message_id=message_id,
            status=status,
            reason=reason,
            release_at=clock.iso(held_until) if held_until else None,
            updated_at=stamp,
            events=({"status": status, "at": stamp, "reason": reason},),
        )
        return True

    def claim_calling(
        self,
        message_id: str,
        request: MessageRequest,
        hospital_id: str,
        from_status: str | None,
        *,
        channel: str,
        provider: str,
    ) -> bool:
        now = clock.now()
        if from_status is None:
            if not self.create(message_id, request, hospital_id, "calling"):
                return False
        elif self._status(message_id) != from_status:
            return False
        else:
            self._move(message_id, "calling", None)
        self.by_id[message_id] = dataclasses.replace(
            self.by_id[message_id],
            attempts=self.by_id[message_id].attempts + 1,
            lease_until=clock.iso(now + LEASE),
            called_at=clock.iso(now),
            channel=channel,
            provider=provider,
        )
        return True

    def finish(
        self,
        message_id: str,
        status: str,
        reason: str | None = None,
        *,
        expect: str | None = "calling",
        channel: str | None = None,
        provider: str | None = None,
        provider_message_id: str | None = None,
        held_until: datetime | None = None,
        held_request: MessageRequest | None = None,
    ) -> bool:
        if expect is not None and self._status(message_id) != expect:
            return False
        self._move(message_id, status, reason)
        current = self.by_id[message_id]
        self.by_id[message_id] = dataclasses.replace(
            current,
            lease_until=None,
            channel=channel or current.channel,
            provider=provider or current.provider,
            provider_message_id=provider_message_id or current.provider_message_id,
            release_at=clock.iso(held_until) if held_until else current.release_at,
        )
        return True

    def statuses(self) -> Counter[str]:
        return Counter(r.status for r in self.by_id.values())

    def _status(self, message_id: str) -> str | None:
        record = self.by_id.get(message_id)
        return record.status if record else None

    def _move(self, message_id: str, status: str, reason: str | None) -> None:
        stamp = clock.iso(clock.now())
        current = self.by_id.get(message_id) or MessageRecord(message_id=message_id, status=status)
        event = {"status": status, "at": stamp, "reason": reason}
        self.by_id[message_id] = dataclasses.replace(
            current,
            status=status,
            reason=reason if reason is not None else current.reason,
            updated_at=stamp,
            events=(*current.events, event),
        )


@dataclass
class UnlimitedRate:
    """Every send fits in the current window."""

    def reserve(
        self, provider: str, wanted: int, per_second: float, *, horizon_s: float
    ) -> Reservation:
        slots = (Slot(starts_at=clock.now().timestamp(), count=wanted),) if wanted else ()
        return Reservation(slots, 0.0)


@dataclass
class CountingProvider:
    """A provider that answers from a script (`accepted` unless told otherwise) and keeps what it
    took: `accepted[message_id]` counts copies, which "never twice" must keep at 1."""

    name: str = "counting"
    max_batch: int = 100
    script: list[str] = field(default_factory=list)
    """Outcomes for the next calls, in order (`accepted`, `uncertain_kept` — the provider took
    it but the answer was lost —, `uncertain_lost`, `retryable`, `permanent`)."""
    accepted: Counter[str] = field(default_factory=Counter)
    calls: int = 0

    def send(self, message: OutgoingMessage) -> SendResult:
        return self.send_many([message])[0]

    def send_many(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        results = []
        for message in messages:
            self.calls += 1
            step = self.script.pop(0) if self.script else "accepted"
            if step in ("accepted", "uncertain_kept"):
                self.accepted[message.message_id] += 1
            if step == "accepted":
                results.append(SendResult("accepted", provider_message_id=f"P-{self.calls}"))
            elif step.startswith("uncertain"):
                results.append(SendResult("uncertain", reason="read timeout"))
            else:
                results.append(SendResult(step, reason=f"scripted {step}"))  # type: ignore[arg-type]
        return results

    def lookup(self, message: OutgoingMessage, sent_after: datetime) -> Lookup:
        if self.accepted[message.message_id]:
            return Lookup(found=True, provider_message_id="P-found", status="accepted")
        return Lookup(found=False)


@dataclass
class OneProvider:
    provider: Provider

    def for_channel(self, channel: str) -> Provider:
        return self.provider

    def secret(self, name: str) -> str | None:
        return "KA01PF-sender-key"
