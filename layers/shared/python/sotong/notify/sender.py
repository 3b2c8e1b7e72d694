"""Processing one message request: claim it, apply the rules, send it once, record the outcome.

Never twice: the record is claimed with a conditional write before any provider call. A record
already sent is never sent again; one whose sender died mid-call (lease expired while `sending`)
is marked `failed: outcome_unknown` for a person to check, not resent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sotong import clock
from sotong.config.schema import HospitalConfig
from sotong.notify import records, rules
from sotong.notify.model import DONE, MessageRequest, message_id
from sotong.notify.providers.base import OutgoingMessage, Provider

MAX_RATE_WAIT_S = 5.0


class RetryLater(Exception):
    """The request must come back later (provider busy or failing, or another sender holds it)."""

    def __init__(self, reason: str, delay_s: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s


@dataclass(frozen=True)
class Outcome:
    message_id: str
    status: str
    reason: str | None = None


ProviderFor = Callable[[str], Provider]


def backoff_s(attempt: int) -> float:
    """30 s, 60 s, 2 min, 4 min, ... capped at 15 min (the longest SQS visibility step)."""
    return float(min(900, 30 * 2 ** max(0, attempt - 1)))


def _parse(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


def _resume(mid: str, existing: dict[str, object], now: datetime) -> Outcome | None:
    """A record that exists already: None when this call took it over, else what it is."""
    status = str(existing.get("status"))
    if status in DONE:
        return Outcome(mid, status, "duplicate request: already handled")
    if status == "held":
        release_at = _parse(str(existing.get("release_at") or "")) or now
        if release_at > now:
            return Outcome(mid, "held", "already held")
        if records.reclaim(mid, "held"):
            return None
        raise RetryLater("held record taken by another sender", 30)
    if status == "retry":
        if records.reclaim(mid, "retry"):
            return None
        raise RetryLater("retry record taken by another sender", 30)
    lease_until = _parse(str(existing.get("lease_until") or ""))
    if lease_until is not None and lease_until > now:
        raise RetryLater("another sender is sending this message", 60)
    records.finish(
        mid,
        "failed",
        "outcome_unknown: a sender stopped during the provider call; check before resending",
    )
    return Outcome(mid, "failed", "outcome_unknown")


def process(
    request: MessageRequest,
    hospital: HospitalConfig,
    provider_for: ProviderFor,
    secret: Callable[[str], str | None],
    *,
    receive_count: int = 1,
    max_receives: int = 5,
) -> Outcome:
    now = clock.now()
    mid = message_id(hospital.hospital_id, request.idempotency_key)
    existing = records.claim(mid, request, hospital.hospital_id)
    if existing is not None:
        resumed = _resume(mid, existing, now)
        if resumed is not None:
            return resumed
    address = request.recipient.phone or request.recipient.email or ""
    opted_out = records.opted_out_channels(hospital.hospital_id, address)
    decision = rules.decide(request, hospital, now, opted_out)
    if decision.action in ("fail", "suppress"):
        status = "failed" if decision.action == "fail" else "suppressed"
        records.finish(mid, status, decision.reason)
        return Outcome(mid, status, decision.reason)
    rendered = decision.rendered
    assert rendered is not None
    if decision.action == "hold":
        assert decision.release_at is not None
        records.finish(
            mid,
            "held",
            decision.reason,
            held_until=decision.release_at,
            held_request=request.model_dump(mode="json"),
        )
        return Outcome(mid, "held", decision.reason)

    provider = provider_for(rendered.channel)
    _wait_for_slot(provider.name, hospital.sender.rate_per_second)
    sender = hospital.sender
    template = rendered.template
    message = OutgoingMessage(
        message_id=mid,
        channel=rendered.channel,
        text=rendered.text,
        subject=rendered.subject,
        sender_number=sender.sms_sender_number,
        to_phone=request.recipient.phone,
        to_email=request.recipient.email,
        kakao_template_code=template.kakao_template_code,
        kakao_sender_key=secret("kakao_sender_key") if rendered.channel == "alimtalk" else None,
        variables=dict(request.variables),
        fallback_text=rendered.text if decision.sms_fallback else None,
    )
    result = provider.send(message)
    if result.outcome == "accepted":
        records.finish(
            mid,
            "sent",
            channel=rendered.channel,
            provider=provider.name,
            provider_message_id=result.provider_message_id,
        )
        return Outcome(mid, "sent")
    if result.outcome == "permanent":
        records.finish(
            mid, "failed", result.reason, channel=rendered.channel, provider=provider.name
        )
        return Outcome(mid, "failed", result.reason)
    reason = result.reason or "provider_unavailable"
    if receive_count >= max_receives:
        records.finish(mid, "failed", f"retries_exhausted: {reason}", provider=provider.name)
        raise RetryLater(f"retries_exhausted: {reason}", 0)
    records.finish(mid, "retry", reason, provider=provider.name)
    raise RetryLater(reason, result.retry_after_s or backoff_s(receive_count))


def _wait_for_slot(provider: str, per_second: float) -> None:
    waited = 0.0
    while (wait := records.take_send_slot(provider, per_second)) > 0:
        if waited + wait > MAX_RATE_WAIT_S:
            raise RetryLater("send rate limit", 5)
        time.sleep(wait)
        waited += wait
