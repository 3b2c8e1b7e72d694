"""What every provider takes and answers.

A 2xx from a provider means "accepted", never "delivered": delivery arrives later as a
`DeliveryReport` through the provider's webhook (or SES events for e-mail).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

MessageChannel = Literal["alimtalk", "sms", "email"]
SMS_MAX_BYTES = 90


def sms_kind(text: str) -> Literal["SMS", "LMS"]:
    """Korean carriers count SMS length in EUC-KR bytes (Hangul = 2): over 90 bytes is an LMS."""
    size = len(text.encode("euc-kr", errors="replace"))
    return "SMS" if size <= SMS_MAX_BYTES else "LMS"


@dataclass(frozen=True)
class OutgoingMessage:
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
    outcome: Literal["accepted", "retryable", "permanent"]
    provider_message_id: str | None = None
    reason: str | None = None
    retry_after_s: float | None = None


@dataclass(frozen=True)
class DeliveryReport:
    message_id: str | None
    provider_message_id: str | None
    status: Literal["delivered", "failed", "fallback_sent", "opted_out"]
    reason: str | None = None
    channel: MessageChannel | None = None
    recipient_phone: str | None = None
    recipient_email: str | None = None


class Provider(Protocol):
    name: str

    def send(self, message: OutgoingMessage) -> SendResult:
        """Submit one message; never raises for provider answers, only maps them."""
        ...
