"""Scheduled every minute: enqueues due touchpoints, checking cancellation rules as it goes."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import clock
from sotong.config import load_hospital
from sotong.notify.enqueue import enqueue
from sotong.observability import get_logger, get_metrics
from sotong.recall.service import RecallDesk

logger = get_logger("recall_dispatcher")
metrics = get_metrics("recall_dispatcher")
desk = RecallDesk(load_hospital(), enqueue)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = desk.dispatch_due(clock.now())
    metrics.add_metric(name="TouchpointsQueued", unit="Count", value=report.queued)
    metrics.add_metric(name="TouchpointsCancelled", unit="Count", value=report.cancelled)
    logger.info(
        "recall dispatch",
        read=report.read,
        queued=report.queued,
        cancelled=report.cancelled,
        reasons=dict(report.reasons),
    )
    return {
        "read": report.read,
        "queued": report.queued,
        "cancelled": report.cancelled,
        "already_done": report.already_done,
    }
