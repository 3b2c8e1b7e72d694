"""SQS consumer: a batch of message requests, sent in provider batches; each request that must
come back later is reported alone (partial batch response) with its own visibility delay."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
import os
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from sotong.config import load_hospital
from sotong.notify.model import MessageRequest
from sotong.notify.providers.factory import Providers
from sotong.notify.sender import BatchSender, Incoming
from sotong.observability import get_logger, get_metrics
from sotong.resources import NOTIFICATIONS, require_env

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import ChangeMessageVisibilityBatchRequestEntryTypeDef

require_env("notification_sender")
logger = get_logger("notification_sender")
metrics = get_metrics("notification_sender")
hospital = load_hospital()
providers = Providers(hospital)


@cache
def _sqs() -> "SQSClient":
    import boto3

    return boto3.client("sqs")


def _delay(handles: dict[str, int]) -> None:
    """Hide handed-back requests for their backoff; a failure here only makes them come
    back sooner (the claim rules still hold)."""
    entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
        {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
        for i, (handle, seconds) in enumerate(handles.items())
    ]
    for start in range(0, len(entries), 10):
        try:
            _sqs().change_message_visibility_batch(
                QueueUrl=os.environ[NOTIFICATIONS.env], Entries=entries[start : start + 10]
            )
        except Exception:
            logger.exception("could not delay handed-back requests")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failures: list[dict[str, str]] = []
    batch: list[Incoming] = []
    handles: dict[str, str] = {}
    # SQS's record shape read as it comes: importing Powertools' SQSEvent loads all of its
    # event data classes (some forty modules) at init, for four fields
    for record in event.get("Records") or []:
        message_id = record["messageId"]
        try:
            request = MessageRequest.model_validate_json(record["body"])
        except ValidationError as error:
            metrics.add_metric(name="MessageUnreadable", unit="Count", value=1)
            logger.error("unreadable message request", errors=error.error_count())
            failures.append({"itemIdentifier": message_id})
            continue
        receives = int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
        batch.append(Incoming(message_id, request, receives))
        handles[message_id] = record["receiptHandle"]
    sender = BatchSender(
        hospital,
        providers,
        max_receives=NOTIFICATIONS.max_receive_count,
        remaining_s=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    outcomes = sender.process(batch) if batch else {}
    delays: dict[str, int] = {}
    for key, outcome in outcomes.items():
        metrics.add_metric(name=f"Message_{outcome.status}", unit="Count", value=1)
        if outcome.retry_in_s is None:
            continue
        failures.append({"itemIdentifier": key})
        if outcome.retry_in_s > 0:
            delays[handles[key]] = int(min(max(outcome.retry_in_s, 1), 43_200))
    if delays:
        _delay(delays)
    handed_back = sum(1 for o in outcomes.values() if o.retry_in_s is not None)
    logger.info(
        "batch handled",
        requests=len(batch),
        handed_back=handed_back,
        statuses=sorted({o.status for o in outcomes.values()}),
    )
    return {"batchItemFailures": failures}


init_phase.finished()
