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
    """Newest first: message_id, sent_at, channel, to, subject, text, status (and sms_type,
    SMS or LMS, for text messages; delivered_channel when it went out on another channel).

    In the message record's words: `status` is the record's status now (`sent`, then what a
    delivery report made it), as `/messages` shows it."""
    from sotong.notify import records

    response = store.dynamodb().query(
        TableName=store.table_name(),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues=store.values(pk=PARTITION),
        ScanIndexForward=False,
        Limit=max(1, min(limit, 500)),
    )
    entries = [store.from_item(item) for item in response.get("Items", [])]
    ids = sorted({str(e["message_id"]) for e in entries if e.get("message_id")})
    found = records.get_many(ids) if ids else {}
    for entry in entries:
        entry.pop("pk", None)
        entry.pop("sk", None)
        record = found.get(str(entry.get("message_id")))
        if record:
            entry["status"] = record.get("status", entry.get("status"))
            if record.get("delivered_channel"):
                entry["delivered_channel"] = record["delivered_channel"]
    return entries


def remove(message_ids: set[str], since: str) -> int:
    """Delete the entries of these messages sent at or after `since` (an erasure): one Query of
    the partition from that time on, the entries of other messages left alone."""
    kwargs: dict[str, Any] = {
        "TableName": store.table_name(),
        "KeyConditionExpression": "pk = :pk AND sk >= :since",
        "ExpressionAttributeValues": store.values(pk=PARTITION, since=since),
        "ProjectionExpression": "pk, sk, message_id",
    }
    removed = 0
    while True:
        page = store.dynamodb().query(**kwargs)
        for item in page.get("Items", []):
            if item.get("message_id", {}).get("S") in message_ids:
                store.dynamodb().delete_item(
                    TableName=store.table_name(), Key={"pk": item["pk"], "sk": item["sk"]}
                )
                removed += 1
        if "LastEvaluatedKey" not in page:
            return removed
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
