"""Releasing held messages: the sender re-checks every rule when they come back.

A watermark remembers up to when messages were released, so each run reads only the hour
buckets since then: cost grows with the messages due, not with the table or the schedule.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sotong import store
from sotong.notify import records, txoutbox
from sotong.notify.model import MessageRequest

WATERMARK = "held_release"
FIRST_LOOKBACK = timedelta(days=2)


def release_due(now: datetime, hospital_id: str) -> int:
    """Put every held message due in (watermark, now] in the outbox; then move the watermark.
    Written before the watermark moves: a failure in between releases them again, harmlessly
    (the sender claims each message once)."""
    since = store.watermark(WATERMARK) or now - FIRST_LOOKBACK
    due = records.due_held(until=now, since=since)
    requests = [MessageRequest.model_validate(r["request"]) for r in due if r.get("request")]
    released = txoutbox.write(hospital_id, requests) if requests else 0
    store.set_watermark(WATERMARK, now)
    return released
