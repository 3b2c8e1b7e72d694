"""What producers put on the notification queue."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from sotong.config.schema import Email, MessageChannel, Phone, Purpose
from sotong.keys import recipient_key as recipient_key

Status = Literal[
    "queued",
    "held",
    "calling",
    "retry",
    "uncertain",
    "sent",
    "delivered",
    "fallback_sent",
    "failed",
    "suppressed",
]
TERMINAL: frozenset[str] = frozenset({"delivered", "fallback_sent", "failed", "suppressed"})
DONE: frozenset[str] = TERMINAL | {"sent"}


class Recipient(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    kind: Literal["patient", "staff"] = "patient"
    name: str | None = Field(default=None, max_length=50)
    phone: Phone | None = None
    email: Email | None = None
    contact_consent: bool = False
    marketing_consent: bool = False
    night_consent: bool = False
    patient_id: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _reachable(self) -> Recipient:
        if not self.phone and not self.email:
            raise ValueError("a recipient needs a phone or an e-mail address")
        return self


class MessageRequest(BaseModel):
    """One message to one recipient; `idempotency_key` is the business key (never twice)."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    idempotency_key: str = Field(min_length=1, max_length=200)
    recipient: Recipient
    template_id: str = Field(min_length=1, max_length=40)
    variables: dict[str, str] = Field(default_factory=dict)
    purpose: Purpose = "service"
    channel: MessageChannel | None = Field(
        default=None, description="preferred channel; must match the template's channel"
    )
    not_before: AwareDatetime | None = None
    urgent: bool = Field(
        default=False,
        description="ignores service quiet hours (staff alerts, replies to the patient's action)",
    )
    refs: dict[str, str] = Field(
        default_factory=dict, description="what the message is about, e.g. {complaint: id}"
    )
    requested_at: AwareDatetime | None = Field(
        default=None,
        description="when the producer wrote it (the outbox stamps it): a request made before "
        "its recipient was erased is never sent",
    )


def message_id(hospital_id: str, idempotency_key: str) -> str:
    """Deterministic: the same business key always names the same message."""
    digest = hashlib.sha256(f"{hospital_id}\x00{idempotency_key}".encode()).hexdigest()
    return digest[:32]


def is_after(at: datetime | None, now: datetime) -> bool:
    return at is not None and at > now
