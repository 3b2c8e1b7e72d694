"""Releasing held messages: the sender re-checks every rule when they come back.

A watermark remembers up to when messages were released, so each run reads only the hour
buckets since then: cost grows with the messages due, not with the table or the schedule.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sotong import clock, store
from sotong.notify import records
from sotong.notify.enqueue import enqueue
from sotong.notify.model import MessageRequest

WATERMARK_KEY = ("WATERMARK", "held_release")
FIRST_LOOKBACK = timedelta(days=2)


def _watermark() -> datetime | None:
    item = (
        store.dynamodb()
        .get_item(TableName=store.table_name(), Key=store.key(*WATERMARK_KEY), ConsistentRead=True)
        .get("Item")
    )
    if not item:
        return None
    return datetime.fromisoformat(store.from_item(item)["until"].replace("Z", "+00:00"))


def _advance(until: datetime) -> None:
    store.dynamodb().put_item(
        TableName=store.table_name(),
        Item=store.to_item(
            {"pk": WATERMARK_KEY[0], "sk": WATERMARK_KEY[1], "until": clock.iso(until)}
        ),
    )


def release_due(now: datetime) -> int:
    """Enqueue every held message due in (watermark, now]; then move the watermark to now."""
    since = _watermark() or now - FIRST_LOOKBACK
    due = records.due_held(until=now, since=since)
    requests = [MessageRequest.model_validate(r["request"]) for r in due if r.get("request")]
    released = enqueue(requests) if requests else 0
    _advance(now)
    return released
