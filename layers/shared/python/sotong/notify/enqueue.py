"""How producers hand messages to the pipeline: one SQS message per request, in batches of 10."""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING

from sotong.notify.model import MessageRequest
from sotong.resources import NOTIFICATIONS

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@cache
def _sqs() -> SQSClient:
    import boto3

    return boto3.client("sqs")


def enqueue(requests: Iterable[MessageRequest]) -> int:
    """Queue the requests; raises if SQS refused any, so the caller's retry covers them
    (the idempotency key makes a repeated request harmless)."""
    queue_url = os.environ[NOTIFICATIONS.env]
    batch: list[MessageRequest] = []
    count = 0
    for request in requests:
        batch.append(request)
        if len(batch) == 10:
            count += _send(queue_url, batch)
            batch = []
    if batch:
        count += _send(queue_url, batch)
    return count


def _send(queue_url: str, batch: list[MessageRequest]) -> int:
    response = _sqs().send_message_batch(
        QueueUrl=queue_url,
        Entries=[
            {"Id": str(i), "MessageBody": request.model_dump_json()}
            for i, request in enumerate(batch)
        ],
    )
    failed = response.get("Failed") or []
    if failed:
        codes = ", ".join(sorted({f.get("Code", "?") for f in failed}))
        raise RuntimeError(f"SQS refused {len(failed)} of {len(batch)} message requests: {codes}")
    return len(batch)
