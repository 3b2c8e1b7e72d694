"""SQS consumer: each record is one message request; failures come back alone (partial batch)."""

import os
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong.config import load_hospital
from sotong.notify.model import MessageRequest
from sotong.notify.providers.factory import Providers
from sotong.notify.sender import RetryLater, process
from sotong.observability import get_logger, get_metrics
from sotong.resources import NOTIFICATIONS

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = get_logger("notification_sender")
metrics = get_metrics("notification_sender")
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
hospital = load_hospital()
providers = Providers(hospital)


@cache
def _sqs() -> "SQSClient":
    import boto3

    return boto3.client("sqs")


def record_handler(record: SQSRecord) -> None:
    request = MessageRequest.model_validate_json(record.body)
    receives = int(record.attributes.approximate_receive_count or 1)
    try:
        outcome = process(
            request,
            hospital,
            providers.for_channel,
            providers.secret,
            receive_count=receives,
            max_receives=NOTIFICATIONS.max_receive_count,
        )
    except RetryLater as later:
        metrics.add_metric(name="MessageRetry", unit="Count", value=1)
        logger.warning("message will be retried", reason=later.reason, delay_s=later.delay_s)
        if later.delay_s > 0:
            _sqs().change_message_visibility(
                QueueUrl=os.environ[NOTIFICATIONS.env],
                ReceiptHandle=record.receipt_handle,
                VisibilityTimeout=int(min(later.delay_s, 43_200)),
            )
        raise
    metrics.add_metric(name=f"Message_{outcome.status}", unit="Count", value=1)
    logger.info(
        "message handled",
        message_id=outcome.message_id,
        status=outcome.status,
        reason=outcome.reason,
        template_id=request.template_id,
    )


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
