"""Scheduled: integrated care plans' follow-up reviews falling due (the agencies with open
activities told) and reminders of activities due tomorrow, from the watermark; a re-run does
nothing twice."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import clock
from sotong.careplans.service import CarePlanDesk
from sotong.config import load_hospital
from sotong.observability import get_logger, get_metrics
from sotong.resources import require_env

require_env("careplans_schedule")
logger = get_logger("careplans_schedule")
metrics = get_metrics("careplans_schedule")
desk = CarePlanDesk(load_hospital())


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = desk.run_schedule(clock.now())
    metrics.add_metric(name="CareReviewsDue", unit="Count", value=report.reviews_due)
    metrics.add_metric(name="CareRemindersSent", unit="Count", value=report.reminders)
    logger.info("care-plan schedule", **report.as_dict())
    return report.as_dict()


init_phase.finished()
