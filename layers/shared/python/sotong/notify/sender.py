"""Sending message requests in batches: the rules, the rate, one claim per message, one provider
request per batch, and every outcome recorded.

A message record (`MSG#<message id>`) moves through these states:

    new ──rules──▶ held | suppressed | failed                      no provider call
    new | retry | held (due) ──claim──▶ calling ──provider──▶ sent | failed | retry | uncertain
    calling, lease expired (the sender died in the call) ──▶ uncertain
    uncertain ──lookup──▶ sent        the provider has it
                        ▶ calling     the provider says it has no such message: send again
                        ▶ uncertain   it cannot tell: asked again later, then left for staff
    sent ──delivery report──▶ delivered | fallback_sent | failed

Nothing is claimed before the send slots are reserved and the provider and its secrets are at
hand, so a failure before the call hands the request back untouched (`Handback`). `calling` is
written just before the provider request: only an interrupted call can leave a message
uncertain, and an uncertain message is sent again only when the provider says it lacks it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Protocol

from sotong import clock, tombstones
from sotong.config.schema import HospitalConfig
from sotong.notify import ratelimit, rules
from sotong.notify.model import DONE, MessageRequest, message_id
from sotong.notify.providers.base import Lookup, OutgoingMessage, Provider, SendResult
from sotong.notify.records import DynamoMessageRecords, MessageRecord, MessageRecords

_log = logging.getLogger(__name__)
RATE_HORIZON_S = 20.0
"""How far ahead a sender reserves send slots; what does not fit goes back to the queue."""
CALL_MARGIN_S = 10.0
"""Remaining function time below which no new provider call starts."""
ERASED = "recipient_erased: the patient was erased at their request"
LOOKUP_DELAY_S = 60.0
"""First look for an uncertain message after this long (the provider's log lags)."""


class RetryLater(Exception):
    """The request must come back later (provider busy or failing, or another sender holds it)."""

    def __init__(self, reason: str, delay_s: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s


@dataclass(frozen=True)
class Outcome:
    """How one message request ended in a batch, or that it goes back to the queue for a retry."""

    message_id: str
    status: str
    reason: str | None = None
    retry_in_s: float | None = None
    """Set when the request goes back to the queue for another try after this many seconds."""

    @property
    def handed_back(self) -> bool:
        return self.retry_in_s is not None


@dataclass(frozen=True)
class Incoming:
    """One queued request: `key` identifies it in the batch (the SQS message id)."""

    key: str
    request: MessageRequest
    receives: int = 1


class SendRate(Protocol):
    def reserve(
        self, provider: str, wanted: int, per_second: float, *, horizon_s: float
    ) -> ratelimit.Reservation: ...


class SharedSendRate:
    """The rate every concurrent sender shares, in the records table (`ratelimit`)."""

    def reserve(
        self, provider: str, wanted: int, per_second: float, *, horizon_s: float
    ) -> ratelimit.Reservation:
        return ratelimit.reserve(provider, wanted, per_second, horizon_s=horizon_s)


ErasureCheck = Callable[[str, list[MessageRequest]], list[bool]]
"""For each request, whether it is for someone erased at their request (see `refused_as_erased`)."""


class ProviderSet(Protocol):
    def for_channel(self, channel: str) -> Provider: ...

    def secret(self, name: str) -> str | None: ...


def backoff_s(attempt: int) -> float:
    """30 s, 60 s, 2 min, 4 min, ... capped at 15 min (the longest SQS visibility step)."""
    return float(min(900, 30 * 2 ** max(0, attempt - 1)))


@dataclass
class _Job:
    """A request of the batch with its message record's status and the rules' decision."""

    item: Incoming
    mid: str
    from_status: str | None
    decision: rules.Decision
    called_at: datetime | None = None
    needs_lookup: bool = False


@dataclass
class BatchSender:
    """Sends queued message requests in batches; every request ends with an `Outcome`."""

    hospital: HospitalConfig
    providers: ProviderSet
    max_receives: int = 6
    remaining_s: Callable[[], float] = lambda: 60.0
    sleep: Callable[[float], None] = clock.sleep
    records: MessageRecords = field(default_factory=DynamoMessageRecords)
    rate: SendRate = field(default_factory=SharedSendRate)
    erased: ErasureCheck = field(default=lambda h, r: refused_as_erased(h, r))

    def process(self, batch: Sequence[Incoming]) -> dict[str, Outcome]:
        """Every request in `batch` ends with an outcome, final or handed back."""
        now = clock.now()
        hospital_id = self.hospital.hospital_id
        out: dict[str, Outcome] = {}
        unique: dict[str, Incoming] = {}
        for item in batch:
            mid = message_id(hospital_id, item.request.idempotency_key)
            if mid in unique:
                out[item.key] = Outcome(mid, "duplicate", "the same request twice in one batch")
            else:
                unique[mid] = item
        existing = self.records.get_many(list(unique))
        addresses = [_address(i.request) for i in unique.values()]
        opted_out = self.records.opted_out_many(hospital_id, addresses)
        refused = self.erased(hospital_id, [i.request for i in unique.values()])
        erased = {mid for mid, no in zip(unique, refused, strict=True) if no}
        jobs: list[_Job] = []
        for mid, item in unique.items():
            record = existing.get(mid)
            if mid in erased:  # the second guard: an erasure removed it, or is removing it
                out[item.key] = self._refuse_erased(mid, record)
                continue
            early = self._early_outcome(mid, record, now)
            if early is not None:
                out[item.key] = early
                continue
            status = record.status if record else None
            refusals = opted_out[_address(item.request)]
            decision = rules.decide(item.request, self.hospital, now, refusals)
            job = _Job(item, mid, status, decision)
            if status in ("calling", "uncertain") and record is not None:
                job.needs_lookup = True
                job.called_at = record.timestamp("called_at") or record.timestamp("updated_at")
            jobs.append(job)
        jobs = self._reconcile([j for j in jobs if j.needs_lookup], out) + [
            j for j in jobs if not j.needs_lookup
        ]
        sending: list[_Job] = []
        for job in jobs:
            if job.decision.action == "send":
                sending.append(job)
            else:
                out[job.item.key] = _isolated(job, partial(self._settle, job))
        self._send(sending, out)
        return out

    # --- before any call ------------------------------------------------------------------------
    def _early_outcome(
        self, mid: str, record: MessageRecord | None, now: datetime
    ) -> Outcome | None:
        """What an existing record says without asking anyone, or None to go on."""
        if record is None:
            return None
        status = record.status
        if status in DONE:
            return Outcome(mid, status, "duplicate request: already handled")
        if status == "held":
            release_at = record.timestamp("release_at")
            if release_at is not None and release_at > now:
                return Outcome(mid, "held", "already held")
            return None
        if status == "calling":
            lease = record.timestamp("lease_until")
            if lease is not None and lease > now:
                wait = (lease - now).total_seconds() + 1
                return Outcome(mid, "calling", "another sender is calling the provider", wait)
        return None

    def _reconcile(self, jobs: list[_Job], out: dict[str, Outcome]) -> list[_Job]:
        """Ask the provider about messages whose call may have gone through; return the ones
        it says it does not have (to be sent again)."""
        again: list[_Job] = []
        for job in jobs:
            if job.from_status == "calling":  # its sender stopped in the call: one taker only
                if not self.records.finish(
                    job.mid,
                    "uncertain",
                    "uncertain: a sender stopped during the provider call",
                    expect="calling",
                ):
                    out[job.item.key] = Outcome(job.mid, "busy", "another sender took it", 30.0)
                    continue
                job.from_status = "uncertain"
            rendered = job.decision.rendered
            channel = rendered.channel if rendered else (job.item.request.channel or "sms")
            provider = self.providers.for_channel(channel)
            since = job.called_at or clock.now()
            try:
                found = provider.lookup(self._outgoing(job, provider, secret=False), since)
            except Exception as error:  # a lookup must never lose the message
                found = Lookup(found=None, reason=f"lookup_error: {type(error).__name__}")
            if found.found is True:
                self.records.finish(
                    job.mid,
                    "delivered" if found.status == "delivered" else "sent",
                    "confirmed by the provider after an uncertain call",
                    expect=job.from_status,
                    provider=provider.name,
                    provider_message_id=found.provider_message_id,
                )
                out[job.item.key] = Outcome(job.mid, "sent", "confirmed by the provider")
            elif found.found is False and not self._too_soon(job):
                again.append(job)
            elif found.found is False:  # the provider's log may not show it yet
                out[job.item.key] = self._still_uncertain(job, "not in the provider's log yet")
            else:
                out[job.item.key] = self._still_uncertain(job, found.reason)
        return again

    def _too_soon(self, job: _Job) -> bool:
        """A provider's "no such message" counts only once its log has had time to catch up."""
        if job.called_at is None:
            return False
        return (clock.now() - job.called_at).total_seconds() < LOOKUP_DELAY_S

    def _still_uncertain(self, job: _Job, reason: str | None) -> Outcome:
        why = "uncertain: the provider could not say whether it has the message"
        if reason:
            why += f" ({reason})"
        if job.item.receives >= self.max_receives:
            return Outcome(job.mid, "uncertain", why + "; left for staff to check")
        return Outcome(job.mid, "uncertain", why, backoff_s(job.item.receives) + LOOKUP_DELAY_S)

    def _settle(self, job: _Job) -> Outcome:
        """A request the rules answer without a provider call: failed, suppressed or held."""
        decision = job.decision
        status = {"fail": "failed", "suppress": "suppressed", "hold": "held"}[decision.action]
        held_until = decision.release_at if decision.action == "hold" else None
        request = job.item.request
        if job.from_status is None:
            written = self.records.create(
                job.mid,
                request,
                self.hospital.hospital_id,
                status,
                decision.reason,
                held_until=held_until,
            )
        else:
            written = self.records.finish(
                job.mid,
                status,
                decision.reason,
                expect=job.from_status,
                held_until=held_until,
                held_request=request if held_until else None,
            )
        if not written:  # another sender moved it meanwhile: let the next delivery look again
            return Outcome(job.mid, "busy", "the record changed meanwhile", 30.0)
        return Outcome(job.mid, status, decision.reason)

    # --- sending --------------------------------------------------------------------------------
    def _send(self, jobs: list[_Job], out: dict[str, Outcome]) -> None:
        groups: dict[str, tuple[Provider, list[_Job]]] = {}
        for job in jobs:
            assert job.decision.rendered is not None
            provider = self.providers.for_channel(job.decision.rendered.channel)
            groups.setdefault(provider.name, (provider, []))[1].append(job)
        for provider, group in groups.values():
            self._send_group(provider, group, out)

    def _send_group(self, provider: Provider, jobs: list[_Job], out: dict[str, Outcome]) -> None:
        horizon = min(RATE_HORIZON_S, self.remaining_s() - CALL_MARGIN_S)
        if horizon <= 0:
            self._hand_back(jobs, out, "function time nearly up", 1.0)
            return
        try:
            reservation = self.rate.reserve(
                provider.name, len(jobs), self.hospital.sender.rate_per_second, horizon_s=horizon
            )
            messages = [self._outgoing(job, provider, secret=True) for job in jobs]
        except Exception as error:  # nothing claimed yet: the request comes back untouched
            self._hand_back(jobs, out, f"not sent: {type(error).__name__} before the call", 30.0)
            return
        queue = list(zip(jobs, messages, strict=True))
        for slot in reservation.slots:
            chunk, queue = queue[: slot.count], queue[slot.count :]
            wait = slot.starts_at - clock.now().timestamp()
            if wait > 0:
                self.sleep(wait)
            if self.remaining_s() < CALL_MARGIN_S:
                queue = chunk + queue
                break
            if clock.now().timestamp() >= slot.starts_at + ratelimit.WINDOW_S:
                queue = chunk + queue  # woke too late (a busy host): sending now would crowd
                break  # a later window that other senders hold; ask again instead
            for start in range(0, len(chunk), max(1, provider.max_batch)):
                self._call(provider, chunk[start : start + provider.max_batch], out)
        if queue:
            self._hand_back(
                [job for job, _ in queue], out, "send rate limit", max(1.0, reservation.retry_in_s)
            )

    def _call(
        self,
        provider: Provider,
        chunk: list[tuple[_Job, OutgoingMessage]],
        out: dict[str, Outcome],
    ) -> None:
        claimed: list[tuple[_Job, OutgoingMessage]] = []
        for job, message in chunk:
            try:
                taken = self.records.claim_calling(
                    job.mid,
                    job.item.request,
                    self.hospital.hospital_id,
                    job.from_status,
                    channel=message.channel,
                    provider=provider.name,
                )
            except Exception as error:  # not claimed, so not called: safe to hand back
                _log.warning("claim failed", extra={"message_id": job.mid, "error": repr(error)})
                out[job.item.key] = Outcome(job.mid, "queued", "claim failed", 5.0)
                continue
            if taken:
                claimed.append((job, message))
            else:
                out[job.item.key] = Outcome(job.mid, "busy", "another sender took it", 30.0)
        if not claimed:
            return
        try:
            results = provider.send_many([m for _, m in claimed])
        except Exception as error:  # a provider must not raise; if it does, we cannot tell
            reason = f"provider_error: {type(error).__name__}"
            results = [SendResult(outcome="uncertain", reason=reason)] * len(claimed)
        # a record write that fails after the call leaves the record `calling` until its lease
        # ends; the next delivery then looks the message up instead of sending it again
        after_lease = self.records.LEASE.total_seconds() + 1
        for (job, message), result in zip(claimed, results, strict=True):
            step = partial(self._record, job, message, provider, result)
            out[job.item.key] = _isolated(job, step, after_lease)

    def _record(
        self, job: _Job, message: OutgoingMessage, provider: Provider, result: SendResult
    ) -> Outcome:
        mid = job.mid
        if result.outcome == "accepted":
            self.records.finish(
                mid,
                "sent",
                result.reason,
                channel=message.channel,
                provider=provider.name,
                provider_message_id=result.provider_message_id,
            )
            return Outcome(mid, "sent")
        if result.outcome == "permanent":
            self.records.finish(mid, "failed", result.reason, channel=message.channel)
            return Outcome(mid, "failed", result.reason)
        reason = result.reason or "provider_unavailable"
        receives = job.item.receives
        if result.outcome == "uncertain":
            why = f"uncertain: {reason}; the provider may have it, so it is looked up first"
            self.records.finish(mid, "uncertain", why)
            if receives >= self.max_receives:
                return Outcome(mid, "uncertain", why)
            return Outcome(mid, "uncertain", why, LOOKUP_DELAY_S)
        if receives >= self.max_receives:
            self.records.finish(mid, "failed", f"retries_exhausted: {reason}")
            return Outcome(mid, "failed", f"retries_exhausted: {reason}", 0.0)
        self.records.finish(mid, "retry", reason)
        return Outcome(mid, "retry", reason, result.retry_after_s or backoff_s(receives))

    def _refuse_erased(self, mid: str, record: MessageRecord | None) -> Outcome:
        """A request for an erased patient is never sent, and leaves no new record (a record
        would hold the recipient's key again); one left waiting is closed, without its stored
        request."""
        status = record.status if record else None
        if status in ("held", "retry", "queued"):
            self.records.finish(mid, "suppressed", ERASED, expect=status)
        return Outcome(mid, "suppressed", ERASED)

    def _hand_back(
        self, jobs: list[_Job], out: dict[str, Outcome], reason: str, delay_s: float
    ) -> None:
        for job in jobs:
            out[job.item.key] = Outcome(job.mid, job.from_status or "queued", reason, delay_s)

    def _outgoing(self, job: _Job, provider: Provider, *, secret: bool) -> OutgoingMessage:
        request = job.item.request
        rendered = job.decision.rendered
        sender = self.hospital.sender
        if rendered is None:  # a lookup of a message the rules would now refuse
            return OutgoingMessage(
                message_id=job.mid,
                channel=request.channel or "sms",
                text="",
                sender_number=sender.sms_sender_number,
                to_phone=request.recipient.phone,
                to_email=request.recipient.email,
            )
        kakao = rendered.channel == "alimtalk"
        return OutgoingMessage(
            message_id=job.mid,
            channel=rendered.channel,
            text=rendered.text,
            subject=rendered.subject,
            sender_number=sender.sms_sender_number,
            to_phone=request.recipient.phone,
            to_email=request.recipient.email,
            kakao_template_code=rendered.template.kakao_template_code,
            kakao_sender_key=self.providers.secret("kakao_sender_key")
            if kakao and secret
            else None,
            variables=dict(request.variables),
            fallback_text=rendered.text if job.decision.sms_fallback else None,
        )


@dataclass(frozen=True)
class _Adapter:
    """A `ProviderSet` from two functions: a provider per channel, a secret by name."""

    provider_for: Callable[[str], Provider]
    secret_for: Callable[[str], str | None]

    def for_channel(self, channel: str) -> Provider:
        return self.provider_for(channel)

    def secret(self, name: str) -> str | None:
        return self.secret_for(name)


def process(
    request: MessageRequest,
    hospital: HospitalConfig,
    provider_for: Callable[[str], Provider],
    secret: Callable[[str], str | None],
    *,
    receive_count: int = 1,
    max_receives: int = 6,
) -> Outcome:
    """One request on its own (tests, the CLI): raises `RetryLater` when it is handed back."""
    sender = BatchSender(hospital, _Adapter(provider_for, secret), max_receives=max_receives)
    outcome = sender.process([Incoming("one", request, receive_count)])["one"]
    if outcome.retry_in_s is not None:
        raise RetryLater(outcome.reason or outcome.status, outcome.retry_in_s)
    return outcome


def _isolated(job: _Job, step: Callable[[], Outcome], retry_in_s: float = 5.0) -> Outcome:
    """One message's storage failure (a throttled table) hands that message back alone."""
    try:
        return step()
    except Exception as error:
        _log.warning("record write failed", extra={"message_id": job.mid, "error": repr(error)})
        return Outcome(job.mid, job.from_status or "queued", "record write failed", retry_in_s)


def _address(request: MessageRequest) -> str:
    return request.recipient.phone or request.recipient.email or ""


def _identity(request: MessageRequest) -> tombstones.Identity:
    recipient = request.recipient
    return tombstones.Identity(
        patient_id=recipient.patient_id, phone=recipient.phone, email=recipient.email
    )


def refused_as_erased(hospital_id: str, requests: Iterable[MessageRequest]) -> list[bool]:
    """For each request, whether the sender must refuse it: it is for an erased patient, or to
    an erased phone or e-mail and was made before the erasure (a request made afterwards, such
    as the answer to a complaint the person filed anew, may go). Staff recipients are never
    refused. One batched read for all."""
    listed = list(requests)
    patients = [r for r in listed if r.recipient.kind == "patient"]
    stones = iter(tombstones.found(hospital_id, [_identity(r) for r in patients]))
    answer: list[bool] = []
    for request in listed:
        if request.recipient.kind != "patient":
            answer.append(False)
            continue
        hit = next(stones)
        if "patient" in hit:
            answer.append(True)
            continue
        made = request.requested_at
        answer.append(
            any(
                made is None or made <= stone.erased_at
                for kind, stone in hit.items()
                if kind in ("phone", "email")
            )
        )
    return answer
