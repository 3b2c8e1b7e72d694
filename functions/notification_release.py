"""Scheduled: puts held messages whose time has come back in the outbox for the queue."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import clock
from sotong.config import load_hospital
from sotong.notify.release import release_due
from sotong.observability import get_logger, get_metrics
from sotong.resources import require_env

require_env("notification_release")
logger = get_logger("notification_release")
metrics = get_metrics("notification_release")
hospital = load_hospital()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = clock.now()
    released = release_due(now, hospital.hospital_id)
    metrics.add_metric(name="MessagesReleased", unit="Count", value=released)
    logger.info("held messages released", released=released)
    return {"released": released}


init_phase.finished()
