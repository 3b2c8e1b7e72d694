"""Scheduled every 30 minutes: the reminder the day before each programme session and the
feedback question the day after (to those who came). Each is a conditional mark on the sign-up
written with its outbox item, so a rerun, or two runs at once, sends it once."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import clock
from sotong.config import load_hospital
from sotong.observability import get_logger, get_metrics
from sotong.programmes.service import ProgrammeDesk
from sotong.resources import require_env

require_env("programme_notices")
logger = get_logger("programme_notices")
metrics = get_metrics("programme_notices")
desk = ProgrammeDesk(load_hospital())


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = desk.send_notices(clock.now())
    metrics.add_metric(name="ProgrammeRemindersQueued", unit="Count", value=report.reminders)
    metrics.add_metric(name="ProgrammeFeedbackQueued", unit="Count", value=report.feedback)
    logger.info("programme notices", **report.as_dict())
    return report.as_dict()


init_phase.finished()
