"""What every provider takes and answers.

A 2xx from a provider means "accepted", never "delivered": delivery arrives later as a
`DeliveryReport` through the provider's webhook (or SES events for e-mail).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

MessageChannel = Literal["alimtalk", "sms", "email"]
SMS_MAX_BYTES = 90


def sms_kind(text: str) -> Literal["SMS", "LMS"]:
    """Korean carriers count SMS length in EUC-KR bytes (Hangul = 2): over 90 bytes is an LMS."""
    size = len(text.encode("euc-kr", errors="replace"))
    return "SMS" if size <= SMS_MAX_BYTES else "LMS"


@dataclass(frozen=True)
class OutgoingMessage:
    """One message as every provider takes it: channel, text, sender, recipient, template."""

    message_id: str
    channel: MessageChannel
    text: str
    sender_number: str
    to_phone: str | None = None
    to_email: str | None = None
    subject: str | None = None
    kakao_template_code: str | None = None
    kakao_sender_key: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    fallback_text: str | None = None
    """AlimTalk only: the provider falls back to SMS/LMS with this text; None disables it."""


@dataclass(frozen=True)
class SendResult:
    """What the provider answered for one message.

    - `accepted`: the provider has it (a 2xx; delivery comes later as a report).
    - `retryable`: the provider surely does not have it (connection refused, 429, refused
      before intake): safe to send again.
    - `uncertain`: the request left and no clear answer came back (read timeout, connection
      dropped mid-answer, 5xx): the provider may have it. Never resent without a `lookup`.
    - `permanent`: refused for good (bad template, bad number, auth).
    """

    outcome: Literal["accepted", "retryable", "uncertain", "permanent"]
    provider_message_id: str | None = None
    reason: str | None = None
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Lookup:
    """Does the provider have this message? `found` None: the provider could not tell."""

    found: bool | None
    provider_message_id: str | None = None
    status: Literal["accepted", "delivered", "failed"] | None = None
    reason: str | None = None


@dataclass(frozen=True)
class DeliveryReport:
    """What became of a sent message, as the provider's webhook (or SES events) reports it."""

    message_id: str | None
    provider_message_id: str | None
    status: Literal["delivered", "failed", "fallback_sent", "opted_out"]
    reason: str | None = None
    channel: MessageChannel | None = None
    recipient_phone: str | None = None
    recipient_email: str | None = None


@dataclass(frozen=True)
class Balance:
    """What the provider says is left on the account; `cash_krw` None: it could not tell."""

    cash_krw: float | None
    point: float | None = None
    """Solapi's points, reported beside the cash (`point`); not counted in `cash_krw`."""
    reason: str | None = None


@runtime_checkable
class ReportsBalance(Protocol):
    """A provider that reports the account's balance (Solapi, the sandbox)."""

    name: str

    def balance(self) -> Balance:
        """The account's balance now; never raises (`cash_krw=None` with a reason)."""
        ...


class Provider(Protocol):
    name: str
    max_batch: int
    """How many messages one `send_many` request may carry."""

    def send(self, message: OutgoingMessage) -> SendResult:
        """Submit one message; never raises for provider answers, only maps them."""
        ...

    def send_many(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """Submit up to `max_batch` messages in one request; one result per message, in order.
        A transport failure gives every message the same `retryable` or `uncertain` result."""
        ...

    def lookup(self, message: OutgoingMessage, sent_after: datetime) -> Lookup:
        """Ask the provider whether it accepted `message` (matched on our message id) at or
        after `sent_after`. Never raises; `found=None` when it cannot tell."""
        ...
