"""Scheduled every minute: publishes outbox items older than a minute that the stream relay
did not (a relay outage, a stream retry that ran out): the outbox's safety net."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import clock
from sotong.notify import txoutbox
from sotong.observability import get_logger, get_metrics
from sotong.resources import require_env

require_env("outbox_sweeper")
logger = get_logger("outbox_sweeper")
metrics = get_metrics("outbox_sweeper")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    found, published = txoutbox.sweep(clock.now())
    metrics.add_metric(name="OutboxSwept", unit="Count", value=published)
    if found:
        logger.warning("outbox items left by the relay", found=found, published=published)
    return {"found": found, "published": published}


init_phase.finished()
