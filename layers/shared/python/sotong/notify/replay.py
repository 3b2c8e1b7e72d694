"""Replaying the notification dead-letter queue once the cause is fixed (a provider outage, a
wrong credential). Each request goes back to the queue; its record is reopened only if it ran
out of retries, so a message that was sent in the meantime is still never sent twice."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from sotong.notify import records
from sotong.notify.model import MessageRequest, message_id


@dataclass
class ReplayReport:
    """What a dead-letter replay did: requests sent back, records reopened, unreadable ones."""

    replayed: int = 0
    reopened: int = 0
    unreadable: list[str] = field(default_factory=list)


def replay_dead_letters(
    sqs: Any, dlq_url: str, queue_url: str, hospital_id: str, limit: int = 1000
) -> ReplayReport:
    report = ReplayReport()
    while report.replayed + len(report.unreadable) < limit:
        batch = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=60
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            try:
                request = MessageRequest.model_validate_json(message["Body"])
            except ValidationError:
                report.unreadable.append(message["MessageId"])
                continue  # stays in the DLQ for a person to read
            if records.reopen_for_replay(message_id(hospital_id, request.idempotency_key)):
                report.reopened += 1
            sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            report.replayed += 1
    return report
