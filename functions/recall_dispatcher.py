"""Scheduled every minute: queues due touchpoints (outbox items, one transaction with their
`queued` marks), checking cancellation rules as it goes; one run at a time, stopping before its
timeout with the watermark where it got to."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import clock
from sotong.config import load_hospital
from sotong.observability import get_logger, get_metrics
from sotong.recall.service import RecallDesk
from sotong.resources import require_env

require_env("recall_dispatcher")
logger = get_logger("recall_dispatcher")
metrics = get_metrics("recall_dispatcher")
desk = RecallDesk(load_hospital())


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = desk.dispatch_due(
        clock.now(), time_left=lambda: context.get_remaining_time_in_millis() / 1000
    )
    if not report.leased:
        logger.info("recall dispatch: another run holds the lease")
        return report.as_dict()
    metrics.add_metric(name="TouchpointsQueued", unit="Count", value=report.queued)
    metrics.add_metric(name="TouchpointsCancelled", unit="Count", value=report.cancelled)
    if not report.complete:
        metrics.add_metric(name="RecallDispatchCutShort", unit="Count", value=1)
    logger.info("recall dispatch", **report.as_dict())
    return report.as_dict()


init_phase.finished()
