"""The local sandbox provider: nothing leaves the machine; each message lands in the outbox.

It can fail on demand (`Fault`, armed by the local stack's `sotong sandbox fail`), answering as
the Solapi client answers the same failure, so retries, fallback, uncertain calls and the DLQ
can be watched locally.

Every send also counts itself in a small item, `pk="SANDBOX#<message id>", sk="SENT"` (first
`sent_at`, `provider_message_id`, `copies`; expires after 30 days), written in the same
transaction as the outbox entry, so `lookup` can really tell whether a message went out and a
test can count duplicates (`sent_copies`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from sotong import clock, store
from sotong.masking import mask
from sotong.notify import outbox
from sotong.notify.providers.base import (
    Balance,
    Lookup,
    OutgoingMessage,
    SendResult,
    sms_kind,
)

MARKER_PREFIX = "SANDBOX#"
MARKER_SORT_KEY = "SENT"
MARKER_TTL = timedelta(days=30)

_log = logging.getLogger("sotong.notify.sandbox")


def _marker_key(message_id: str) -> dict[str, Any]:
    return store.key(f"{MARKER_PREFIX}{message_id}", MARKER_SORT_KEY)


def sent_copies(message_id: str) -> int:
    """How many times the sandbox sent `message_id` (0 when never)."""
    item = (
        store.dynamodb()
        .get_item(TableName=store.table_name(), Key=_marker_key(message_id), ConsistentRead=True)
        .get("Item")
    )
    return int(store.from_item(item).get("copies", 0)) if item else 0


FaultMode = Literal[
    "reject", "429", "5xx", "unreachable", "timeout-before", "timeout-after", "not-kakao"
]
FAULT_MODES: tuple[str, ...] = get_args(FaultMode)
REQUEST_MODES = frozenset({"429", "5xx", "unreachable", "timeout-before", "timeout-after"})
"""Modes that fail a whole provider request (every message in it gets the same answer, as with
Solapi); `reject` and `not-kakao` are answers about one message."""
NOT_KAKAO_USER = "3104"
DELIVERED = "4000"
RESEND_SAFE_CODES = frozenset({"1024", "2024", "1026"})
"""Solapi refusals that leave nothing sent (its server errors, a repeated recipient)."""


@dataclass
class Fault:
    """Failures armed on the sandbox (the local stack's `sotong sandbox fail`), each answered
    as the Solapi client answers the same failure (`sotong.notify.providers.solapi`):

    - `reject`: Solapi refuses the message (`failedMessageList`, status `code`): `permanent`
      with the code's reason (`retryable` for 1024/2024/1026, which leave nothing sent).
    - `429`: `retryable rate_limited` with `retry_after_s` (the `Retry-After` header).
    - `5xx`: `uncertain provider_http_<http_status>`; the sandbox did not keep the message.
    - `unreachable`: connection refused: `retryable provider_unreachable`.
    - `timeout-before`: read timeout, the message not kept: `uncertain provider_timeout`; the
      sender's lookup finds nothing and sends again.
    - `timeout-after`: read timeout after the sandbox kept the message: `uncertain
      provider_timeout`; the lookup finds it and nothing is sent again.
    - `not-kakao`: an AlimTalk to someone without KakaoTalk: accepted; the patient gets the SMS/LMS
      substitute (or nothing without a fallback text) and the delivery report says so (3104, or
      4000 as a substitute), delivered by the local stack to its own webhook.

    `count`: provider requests for the request modes, messages for `reject` and `not-kakao`
    (`not-kakao` touches AlimTalk messages only).
    """

    mode: FaultMode
    count: int = 1
    code: str = "1060"
    retry_after_s: float = 30.0
    http_status: int = 503
    used: int = 0

    def view(self) -> dict[str, Any]:
        return {**asdict(self), "left": self.count - self.used}


Reporter = Callable[[dict[str, Any]], None]


class Faults:
    """The armed failures of this process, oldest first, each used up `count` times."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[Fault] = []
        self.seen: dict[str, int] = {}
        self.reporter: Reporter | None = None
        """Where delivery reports go (the local stack's webhook); None: they are not sent."""

    def arm(self, fault: Fault) -> Fault:
        if fault.mode not in FAULT_MODES:
            raise ValueError(f"mode must be one of {', '.join(FAULT_MODES)}")
        if fault.count < 1:
            raise ValueError("count must be at least 1")
        if fault.mode == "reject" and not (fault.code.isdigit() and len(fault.code) == 4):
            raise ValueError("code must be a Solapi status code such as 1060")
        if fault.mode == "5xx" and not 500 <= fault.http_status <= 599:
            raise ValueError("http_status must be 500-599")
        if fault.retry_after_s < 0:
            raise ValueError("retry_after_s must not be negative")
        with self._lock:
            self._armed.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"armed": [f.view() for f in self._armed], "failed": dict(self.seen)}

    def take(self, modes: frozenset[str] | set[str]) -> Fault | None:
        """The first armed fault among `modes`, used once."""
        with self._lock:
            for fault in self._armed:
                if fault.mode in modes:
                    fault.used += 1
                    if fault.used >= fault.count:
                        self._armed.remove(fault)
                    self.seen[fault.mode] = self.seen.get(fault.mode, 0) + 1
                    return fault
        return None


FAULTS = Faults()


def _fault_result(fault: Fault, provider_id: str) -> SendResult:
    """What the Solapi client answers for the same failure (tests hold the two together)."""
    if fault.mode == "reject":
        outcome: Literal["retryable", "permanent"] = (
            "retryable" if fault.code in RESEND_SAFE_CODES else "permanent"
        )
        return SendResult(outcome, provider_message_id=provider_id, reason=_reason(fault.code))
    if fault.mode == "429":
        return SendResult("retryable", reason="rate_limited", retry_after_s=fault.retry_after_s)
    if fault.mode == "5xx":
        return SendResult("uncertain", reason=f"provider_http_{fault.http_status}")
    if fault.mode == "unreachable":
        return SendResult("retryable", reason="provider_unreachable")
    return SendResult("uncertain", reason="provider_timeout")


def _reason(code: str) -> str:
    from sotong.notify.providers.solapi import reason_for_status

    return reason_for_status(code)


class SandboxProvider:
    name = "sandbox"
    max_batch = 100

    def send(self, message: OutgoingMessage) -> SendResult:
        return self.send_many([message])[0]

    def _keep(self, message: OutgoingMessage, *, not_kakao: bool = False) -> str:
        """Write what the patient receives (the outbox entry) and the sent marker; returns the
        provider's message id. Not a KakaoTalk user: the SMS/LMS substitute, or nothing."""
        now = clock.now()
        sent_at = clock.iso(now)
        provider_id = f"sandbox-{message.message_id}"
        text = message.fallback_text if not_kakao else message.text
        entry: dict[str, Any] = {
            "message_id": message.message_id,
            "sent_at": sent_at,
            # the message record's words: its channel, and its status when the entry is
            # written (`outbox.recent` shows the record's status as it is now)
            "channel": message.channel,
            "to": message.to_email if message.channel == "email" else message.to_phone,
            "subject": message.subject,
            "text": text,
            "kakao_template_code": message.kakao_template_code,
            "status": "sent",
        }
        if message.channel == "sms" or not_kakao:
            entry["sms_type"] = sms_kind(text or "")  # the carrier's SMS or LMS
        if not_kakao:
            entry["delivered_channel"] = "sms"
            entry["fallback"] = "not_kakao_user"
        marker = {
            "Update": {
                "TableName": store.table_name(),
                "Key": _marker_key(message.message_id),
                "UpdateExpression": (
                    "SET provider_message_id = :pid, sent_at = if_not_exists(sent_at, :at),"
                    " expires_at = :exp ADD copies :one"
                ),
                "ExpressionAttributeValues": store.values(
                    pid=provider_id,
                    at=sent_at,
                    exp=int((now + MARKER_TTL).timestamp()),
                    one=1,
                ),
            }
        }
        actions: list[dict[str, Any]] = [marker]
        if text is not None:
            # The outbox entry as `outbox.put` writes it, in one transaction with the marker.
            outbox_item = {
                "pk": outbox.PARTITION,
                "sk": f"{sent_at}#{message.message_id}",
                **entry,
            }
            actions.insert(0, store.put_action(outbox_item))
        store.transact(actions)
        return provider_id

    def send_many(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        if len(messages) > self.max_batch:
            raise ValueError(f"at most {self.max_batch} messages per batch, not {len(messages)}")
        if not messages:
            return []
        whole = FAULTS.take(REQUEST_MODES)
        if whole is not None:
            _log.warning(
                "sandbox fault %s",
                whole.mode,
                extra=mask(
                    {
                        "mode": whole.mode,
                        "message_id": messages[0].message_id,
                        "message_count": len(messages),
                    }
                ),
            )
            if whole.mode == "timeout-after":  # the provider has them; the answer is lost
                for message in messages:
                    self._keep(message)
            return [_fault_result(whole, f"sandbox-{m.message_id}") for m in messages]
        results: list[SendResult] = []
        for message in messages:
            fault = FAULTS.take({"reject", "not-kakao"}) if message.channel == "alimtalk" else None
            if fault is None and message.channel != "alimtalk":
                fault = FAULTS.take({"reject"})
            if fault is not None:
                _log.warning(
                    "sandbox fault %s", fault.mode, extra={"message_id": message.message_id}
                )
            if fault is not None and fault.mode == "reject":
                results.append(_fault_result(fault, f"sandbox-{message.message_id}"))
                continue
            not_kakao = fault is not None
            provider_id = self._keep(message, not_kakao=not_kakao)
            results.append(SendResult(outcome="accepted", provider_message_id=provider_id))
            if not_kakao:
                self._report_not_kakao(message, provider_id)
        return results

    def _report_not_kakao(self, message: OutgoingMessage, provider_id: str) -> None:
        """The report Solapi sends for an AlimTalk to someone without KakaoTalk."""
        substituted = message.fallback_text is not None
        report = {
            "messageId": provider_id,
            "type": sms_kind(message.fallback_text or "") if substituted else "ATA",
            "statusCode": DELIVERED if substituted else NOT_KAKAO_USER,
            "replacement": substituted,
            "to": message.to_phone,
            "from": message.sender_number,
            "kakaoOptions": {"templateId": message.kakao_template_code},
            "customFields": {"sotongMessageId": message.message_id},
        }
        reporter = FAULTS.reporter
        if reporter is None:
            return
        try:
            reporter(report)
        except Exception as error:  # a report that cannot go out must not fail the send
            _log.warning("sandbox report not sent", extra={"error": type(error).__name__})

    def lookup(self, message: OutgoingMessage, sent_after: datetime) -> Lookup:
        """Found when the sandbox ever sent this message id (ids are unique per message)."""
        try:
            item = (
                store.dynamodb()
                .get_item(
                    TableName=store.table_name(),
                    Key=_marker_key(message.message_id),
                    ConsistentRead=True,
                )
                .get("Item")
            )
        except Exception as error:  # the provider could not tell: never raise from lookup
            _log.warning(
                "sandbox lookup_failed",
                extra=mask({"message_id": message.message_id, "error": type(error).__name__}),
            )
            return Lookup(found=None, reason="sandbox_store_error")
        if not item:
            return Lookup(found=False)
        data = store.from_item(item)
        return Lookup(
            found=True, provider_message_id=str(data["provider_message_id"]), status="delivered"
        )

    def balance(self) -> Balance:
        """A made-up account balance: `SOTONG_SANDBOX_BALANCE_KRW` (default 1,000,000 원), so the
        balance check and its alarm can be watched locally (`SOTONG_SANDBOX_BALANCE_KRW=1000`)."""
        return sandbox_balance()


SANDBOX_BALANCE_ENV = "SOTONG_SANDBOX_BALANCE_KRW"
DEFAULT_SANDBOX_BALANCE_KRW = 1_000_000.0


def sandbox_balance() -> Balance:
    raw = os.environ.get(SANDBOX_BALANCE_ENV, "").strip()
    if not raw:
        return Balance(cash_krw=DEFAULT_SANDBOX_BALANCE_KRW, point=0.0)
    try:
        return Balance(cash_krw=float(raw), point=0.0)
    except ValueError:
        return Balance(cash_krw=None, reason="sandbox_balance_not_a_number")


def forget(message_ids: set[str]) -> int:
    """Remove what the sandbox kept of these messages (an erasure): their outbox entries (every
    copy, found from the first send on) and their markers. Returns the entries removed."""
    if not message_ids:
        return 0
    markers = store.batch_get([_marker_key(m) for m in sorted(message_ids)], consistent=True)
    if not markers:
        return 0
    since = min(str(m.get("sent_at", "")) for m in markers)
    removed = outbox.remove(message_ids, since)
    for marker in markers:
        store.dynamodb().delete_item(
            TableName=store.table_name(), Key=store.key(marker["pk"], marker["sk"])
        )
    return removed
