"""The local sandbox provider: nothing leaves the machine; each message lands in the outbox.

Every send also counts itself in a small item, `pk="SANDBOX#<message id>", sk="SENT"` (first
`sent_at`, `provider_message_id`, `copies`; expires after 30 days), written in the same
transaction as the outbox entry, so `lookup` can really tell whether a message went out and a
test can count duplicates (`sent_copies`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sotong import clock, store
from sotong.masking import mask
from sotong.notify import outbox
from sotong.notify.providers.base import Lookup, OutgoingMessage, SendResult, sms_kind

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


class SandboxProvider:
    name = "sandbox"
    max_batch = 100

    def send(self, message: OutgoingMessage) -> SendResult:
        now = clock.now()
        sent_at = clock.iso(now)
        provider_id = f"sandbox-{message.message_id}"
        shown_channel = (
            message.channel if message.channel != "sms" else sms_kind(message.text).lower()
        )
        entry = {
            "message_id": message.message_id,
            "sent_at": sent_at,
            "channel": shown_channel,
            "to": message.to_email if message.channel == "email" else message.to_phone,
            "subject": message.subject,
            "text": message.text,
            "kakao_template_code": message.kakao_template_code,
            "status": "delivered",
        }
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
        # The outbox entry as `outbox.put` writes it, in one transaction with the marker.
        outbox_item = {"pk": outbox.PARTITION, "sk": f"{sent_at}#{message.message_id}", **entry}
        store.transact([store.put_action(outbox_item), marker])
        return SendResult(outcome="accepted", provider_message_id=provider_id)

    def send_many(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        if len(messages) > self.max_batch:
            raise ValueError(f"at most {self.max_batch} messages per batch, not {len(messages)}")
        return [self.send(message) for message in messages]

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
