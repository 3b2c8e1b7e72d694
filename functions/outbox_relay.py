"""DynamoDB stream consumer: each new outbox item's message request goes on the notification
queue, then the item is deleted. A record SQS did not take is reported as the batch's first
failure, so the stream retries from there (a request published twice is claimed once)."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong.notify import txoutbox
from sotong.observability import get_logger, get_metrics
from sotong.resources import require_env

require_env("outbox_relay")
logger = get_logger("outbox_relay")
metrics = get_metrics("outbox_relay")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    found = txoutbox.from_stream(event.get("Records") or [])
    if not found:
        return {"batchItemFailures": []}
    try:
        published = txoutbox.publish([entry for _, entry in found])
    except Exception:
        logger.exception("outbox publish failed; the stream retries the batch")
        published = set()
    failed = [sequence for sequence, entry in found if entry["message_id"] not in published]
    metrics.add_metric(name="OutboxPublished", unit="Count", value=len(published))
    if failed:
        metrics.add_metric(name="OutboxPublishFailed", unit="Count", value=len(failed))
    logger.info("outbox relayed", published=len(published), failed=len(failed))
    return {"batchItemFailures": [{"itemIdentifier": failed[0]}] if failed else []}


init_phase.finished()
