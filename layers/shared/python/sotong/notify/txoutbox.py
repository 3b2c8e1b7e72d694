"""The transactional outbox: a state change and the messages it causes are written together.

A producer never calls SQS. It writes its own item (a complaint, a touchpoint, a campaign's
progress) and one outbox item per message request in one DynamoDB transaction, so either both
exist or neither does. The relay (`outbox_relay`, on the table's stream) puts each new outbox
item on the notification queue and deletes it; the sweeper (`outbox_sweeper`, every minute)
publishes whatever the stream missed. Publishing twice is harmless: the message id is the
request's business key and the sender claims it once.

Layout: `TXOUT#<message_id>` / `REQ` with the request as JSON; while pending it sits on the
sparse index gsi2 under `TXOUT#<shard>` (sort: `<created_at>#<message_id>`), four shards so no
partition takes every write.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from sotong import clock, store
from sotong.resources import NOTIFICATIONS

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from sotong.notify.model import MessageRequest

PREFIX = "TXOUT#"
SORT = "REQ"
SHARDS = 4
SWEEP_AGE = timedelta(seconds=60)
"""The sweeper leaves younger items to the stream."""
SWEEP_LIMIT = 2_000


def pk(mid: str) -> str:
    return f"{PREFIX}{mid}"


def _shard(mid: str) -> str:
    return f"{PREFIX}{int(mid[:4], 16) % SHARDS}"


def item(hospital_id: str, request: MessageRequest, now: datetime | None = None) -> dict[str, Any]:
    # Imported here: the relay and the sweeper publish stored JSON and never load pydantic.
    from sotong.notify.model import message_id

    mid = message_id(hospital_id, request.idempotency_key)
    at = now or clock.now()
    stamp = clock.iso(at)
    if request.requested_at is None:  # kept through holds and replays: the sender's erasure check
        request = request.model_copy(update={"requested_at": at})
    return {
        "pk": pk(mid),
        "sk": SORT,
        "message_id": mid,
        "request": request.model_dump_json(),
        "created_at": stamp,
        "gsi2pk": _shard(mid),
        "gsi2sk": f"{stamp}#{mid}",
    }


def actions(hospital_id: str, requests: Iterable[MessageRequest]) -> list[dict[str, Any]]:
    """TransactWriteItems `Put`s of these requests, to join the producer's own write.

    Unconditional: writing a request twice (a producer's retry) only publishes it twice."""
    now = clock.now()
    seen: set[str] = set()
    puts = []
    for request in requests:
        entry = item(hospital_id, request, now)
        if entry["pk"] in seen:  # a transaction may not touch one item twice
            continue
        seen.add(entry["pk"])
        puts.append(store.put_action(entry))
    return puts


def write(hospital_id: str, requests: Sequence[MessageRequest]) -> int:
    """Outbox items with no state change of their own (a release of held messages)."""
    entries = list({e["pk"]: e for e in (item(hospital_id, r) for r in requests)}.values())
    for start in range(0, len(entries), 25):
        _batch_write(
            [{"PutRequest": {"Item": store.to_item(e)}} for e in entries[start : start + 25]]
        )
    return len(entries)


# --------------------------------------------------------------------------- relay


@cache
def _sqs() -> SQSClient:
    import boto3

    return boto3.client("sqs")


def publish(entries: Sequence[dict[str, Any]]) -> set[str]:
    """Put these outbox items' requests on the queue, then delete the items SQS took.
    Returns the message ids SQS accepted; the rest stay pending for a retry or the sweeper."""
    queue_url = os.environ[NOTIFICATIONS.env]
    accepted: set[str] = set()
    unique = {e["message_id"]: e for e in entries}
    ordered = list(unique.values())
    for start in range(0, len(ordered), 10):
        chunk = ordered[start : start + 10]
        response = _sqs().send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": e["request"]} for i, e in enumerate(chunk)],
        )
        for ok in response.get("Successful") or []:
            accepted.add(chunk[int(ok["Id"])]["message_id"])
    deletes = [{"DeleteRequest": {"Key": store.key(pk(mid), SORT)}} for mid in sorted(accepted)]
    for start in range(0, len(deletes), 25):
        _batch_write(deletes[start : start + 25])
    return accepted


def _batch_write(requests: list[dict[str, Any]]) -> None:
    pending: dict[str, Any] = {store.table_name(): requests}
    for attempt in range(8):
        response = store.dynamodb().batch_write_item(RequestItems=pending)
        pending = response.get("UnprocessedItems") or {}
        if not pending:
            return
        time.sleep(min(2.0, 0.05 * 2**attempt))
    raise RuntimeError("DynamoDB left outbox writes unprocessed after 8 attempts")


def pending(older_than: datetime, limit: int = SWEEP_LIMIT) -> list[dict[str, Any]]:
    """Outbox items written before `older_than` and not yet published (oldest first)."""
    found: list[dict[str, Any]] = []
    high = clock.iso(older_than) + "#~"
    for shard in range(SHARDS):
        kwargs: dict[str, Any] = {
            "TableName": store.table_name(),
            "IndexName": "gsi2",
            "KeyConditionExpression": "gsi2pk = :p AND gsi2sk < :hi",
            "ExpressionAttributeValues": store.values(p=f"{PREFIX}{shard}", hi=high),
        }
        while len(found) < limit:
            page = store.dynamodb().query(**kwargs)
            found += [store.from_item(i) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return found[:limit]


def sweep(now: datetime) -> tuple[int, int]:
    """Publish what the stream missed. Returns (found, published)."""
    found = pending(now - SWEEP_AGE)
    # the index is eventually consistent: an item published a moment ago may still show
    live = [e for e in found if _still_pending(e["message_id"])] if found else []
    return len(found), len(publish(live)) if live else 0


def _still_pending(mid: str) -> bool:
    response = store.dynamodb().get_item(
        TableName=store.table_name(), Key=store.key(pk(mid), SORT), ConsistentRead=True
    )
    return "Item" in response


def from_stream(records: Iterable[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(sequence number, outbox item) of the stream records that carry a new outbox item."""
    found = []
    for record in records:
        if record.get("eventName") not in ("INSERT", "MODIFY"):
            continue
        image = (record.get("dynamodb") or {}).get("NewImage") or {}
        if not str(image.get("pk", {}).get("S", "")).startswith(PREFIX):
            continue
        sequence = str((record.get("dynamodb") or {}).get("SequenceNumber", ""))
        found.append((sequence, store.from_item(image)))
    return found


def discard(message_ids: Iterable[str]) -> None:
    """Delete these outbox items unpublished (an erasure); an id without one is no error."""
    deletes = [{"DeleteRequest": {"Key": store.key(pk(m), SORT)}} for m in sorted(set(message_ids))]
    for start in range(0, len(deletes), 25):
        _batch_write(deletes[start : start + 25])


def flush(now: datetime | None = None) -> int:
    """Publish every pending item at once, whatever its age (tests, the local stack, drills)."""
    entries = pending((now or clock.now()) + timedelta(days=3650), limit=100_000)
    return len(publish(entries)) if entries else 0
