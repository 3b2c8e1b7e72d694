"""The sandbox provider's outbox: what a patient would have received, for people to read.

Only the sandbox provider writes here (hospitals in `provider: sandbox`, and the local stack).
"""

from __future__ import annotations

from typing import Any

from sotong import store

PARTITION = "OUTBOX"


def put(entry: dict[str, Any]) -> None:
    """Store one sandbox message (the sender guarantees each message id is sent once)."""
    item = {"pk": PARTITION, "sk": f"{entry['sent_at']}#{entry['message_id']}", **entry}
    store.dynamodb().put_item(TableName=store.table_name(), Item=store.to_item(item))


def recent(limit: int = 50) -> list[dict[str, Any]]:
    """Newest first: message_id, sent_at, channel, to, subject, text, status."""
    response = store.dynamodb().query(
        TableName=store.table_name(),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues=store.values(pk=PARTITION),
        ScanIndexForward=False,
        Limit=max(1, min(limit, 500)),
    )
    entries = [store.from_item(item) for item in response.get("Items", [])]
    for entry in entries:
        entry.pop("pk", None)
        entry.pop("sk", None)
    return entries
