"""What patients send back, each message handled exactly once and kept whole.

A message is an opt-out word, a reply to a recall the patient had recently, or something for the
hospital to read (it joins the sender's open complaint or starts one). `InboundRouter` decides;
the webhook handler only verifies, bounds and counts.

Exactly once: every message has a key (the provider's message id; without one a digest of
sender, text and time) and leaves an `INBOUND#<key>` / `SEEN` marker, written only when the
marker does not exist yet. For a complaint the marker is written in the same transaction as the
message itself, so a repeat (the provider retrying a webhook, one id twice in a body) is a no-op
and a crash leaves nothing half-done. An opt-out and a recall reply are idempotent writes of
their own (the recall conversation item is keyed on the same id): the marker follows them, and
a crash between the two only repeats a write that changes nothing.

Bounded: one webhook call carries at most `MAX_EVENTS` events in at most `MAX_BODY_BYTES`
bytes, refused as a whole (413) before any per-event work. The function has 15 s; the provider
retries a refused call, and splits nothing itself, so the limit must be set on its side too.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sotong import clock, keys, store
from sotong.config.schema import HospitalConfig
from sotong.errors import SotongError
from sotong.fields import clean_text
from sotong.notify import records

if TYPE_CHECKING:
    from sotong.notify.providers.solapi import InboundMessage

OPT_OUT = re.compile(r"^\s*(수신\s*거부|수신\s*중지|거부|stop|unsubscribe|그만)\s*[.!]?\s*$", re.I)
MAX_EVENTS = 100
"""Events one webhook call may carry (at ~50 ms of writes each, well inside 15 s)."""
MAX_BODY_BYTES = 1024 * 1024
"""Bytes one webhook call may carry: 100 LMS of 2,000 bytes, JSON-escaped, fit 5 times over."""
MAX_KEY = 128
MARKER_PREFIX = "INBOUND#"
MARKER_SORT = "SEEN"
MARKER_DAYS = 90
"""How long a message id is remembered (providers retry for hours, not months)."""

Outcome = Literal["opted_out", "reply", "complaint", "duplicate", "ignored"]


class PayloadTooLarge(SotongError):
    status = 413
    code = "payload_too_large"


def is_opt_out(text: str) -> bool:
    """`수신거부`, `STOP` and their common variants, alone in the message."""
    return bool(OPT_OUT.match(text))


# --------------------------------------------------------------------------- bounds


def check_size(body: bytes) -> None:
    """Refuse a body over `MAX_BODY_BYTES` (before its signature is even checked)."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"body: {len(body)} bytes; a webhook call may carry at most {MAX_BODY_BYTES}",
            field="body",
            limit_bytes=MAX_BODY_BYTES,
        )


def event_count(body: bytes) -> int:
    """Events in a webhook body: a JSON list's length, 1 for an object, 0 for anything else."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return 0
    if isinstance(parsed, list):
        return len(parsed)
    return 1 if isinstance(parsed, dict) else 0


def check_events(body: bytes) -> int:
    """Refuse a body with more than `MAX_EVENTS` events, before any per-event work."""
    check_size(body)
    count = event_count(body)
    if count > MAX_EVENTS:
        raise PayloadTooLarge(
            f"body: {count} events; a webhook call may carry at most {MAX_EVENTS}",
            field="body",
            limit_events=MAX_EVENTS,
            events=count,
        )
    return count


# --------------------------------------------------------------------------- exactly once


def message_key(message: InboundMessage) -> str:
    """The provider's message id, or (without one) a digest of sender, text and time."""
    provider_id = getattr(message, "provider_message_id", None)
    if isinstance(provider_id, str) and provider_id:
        if len(provider_id) <= MAX_KEY and provider_id.isprintable():
            return provider_id
        return "sha256:" + _digest(provider_id)
    received = message.received_at.isoformat() if message.received_at else ""
    # keyed: the key is stored (`INBOUND#...`) and holds the sender's phone
    basis = storable(f"{message.from_phone}\x00{message.text}\x00{received}")
    return "hmac:" + keys.digest("inbound", basis, 40)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:40]


def marker_key(key: str) -> dict[str, Any]:
    return store.key(MARKER_PREFIX + key, MARKER_SORT)


def marker_action(key: str, outcome: Outcome, **fields: Any) -> dict[str, Any]:
    """The `Put` of a message's marker, refused when the message was handled before."""
    now = clock.now()
    item = {
        "pk": MARKER_PREFIX + key,
        "sk": MARKER_SORT,
        "outcome": outcome,
        "at": clock.iso(now),
        "expires_at": int((now + timedelta(days=MARKER_DAYS)).timestamp()),
        **fields,
    }
    return store.put_action(item, "attribute_not_exists(pk)")


def seen(key: str) -> bool:
    """Was the message with this key handled already?"""
    response = store.dynamodb().get_item(
        TableName=store.table_name(), Key=marker_key(key), ConsistentRead=True
    )
    return "Item" in response


def mark(key: str, outcome: Outcome, **fields: Any) -> bool:
    """Write the marker alone; False when it was there already."""
    return store.transact([marker_action(key, outcome, **fields)])


def unlink(keys_handled: set[str]) -> int:
    """Keep only the fact that these messages were handled (exactly-once holds on): the
    complaint or patient they went to is removed from their markers (an erasure)."""
    unlinked = 0
    for key in sorted(keys_handled):
        if store.conditional_write(
            "update_item",
            Key=marker_key(key),
            UpdateExpression="REMOVE complaint_id, patient_id",
            ConditionExpression="attribute_exists(pk)",
        ):
            unlinked += 1
    return unlinked


def storable(text: str) -> str:
    """The text as DynamoDB can hold it: lone surrogates (never in a real message) replaced."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace").decode("utf-8")


def received_time(message: InboundMessage) -> datetime | None:
    """When the provider says the message arrived; None when that time cannot be stored."""
    if message.received_at is None:
        return None
    try:
        clock.iso(message.received_at)
    except (OverflowError, ValueError):  # e.g. year 1 in a zone east of UTC
        return None
    return message.received_at


# --------------------------------------------------------------------------- routing


class ComplaintIntake(Protocol):
    def take_inbound(
        self,
        phone: str,
        text: str,
        channel: str,
        *,
        key: str,
        received_at: datetime | None = None,
    ) -> tuple[dict[str, Any], bool] | None: ...


class RecallReplies(Protocol):
    def inbound(
        self,
        phone: str,
        text: str,
        *,
        provider_message_id: str | None = None,
        received_at: datetime | None = None,
    ) -> dict[str, Any] | None: ...


@dataclass
class InboundRouter:
    """Where each inbound message goes: opt-out, recall conversation or complaint."""

    hospital: HospitalConfig
    complaints: ComplaintIntake
    recall: RecallReplies

    def handle(self, message: InboundMessage) -> Outcome:
        key = message_key(message)
        if seen(key):
            return "duplicate"
        text = clean_text(storable(message.text))
        received_at = received_time(message)
        if not text.strip():  # nothing but control characters or spaces: nothing to answer
            return "ignored" if mark(key, "ignored") else "duplicate"
        if is_opt_out(text):
            channel = "alimtalk" if message.channel == "kakao" else "sms"
            records.record_opt_out(
                self.hospital.hospital_id, message.from_phone, channel, "inbound"
            )
            return "opted_out" if mark(key, "opted_out") else "duplicate"
        reply = self.recall.inbound(
            message.from_phone, text, provider_message_id=key, received_at=received_at
        )
        if reply is not None:  # a reply to a recent recall joins that patient's conversation
            marked = mark(key, "reply", patient_id=reply.get("patient_id"))
            return "reply" if marked and not reply.get("duplicate") else "duplicate"
        if message.channel not in self.hospital.channels:
            return "ignored"
        taken = self.complaints.take_inbound(
            message.from_phone, text, message.channel, key=key, received_at=received_at
        )
        return "duplicate" if taken is None else "complaint"

    def handle_all(self, messages: Iterable[InboundMessage]) -> Counter[Outcome]:
        return Counter(self.handle(message) for message in messages)
