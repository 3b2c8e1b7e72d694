"""Scheduled (mornings): each department's digest of its open and due complaints, to its staff
contacts (`departments[].staff`, else the head); one per department per day, however often it
runs."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import clock
from sotong.complaints.classify import classifier_for
from sotong.complaints.service import ComplaintDesk
from sotong.config import load_hospital
from sotong.observability import get_logger, get_metrics
from sotong.resources import require_env

require_env("department_digest")
logger = get_logger("department_digest")
metrics = get_metrics("department_digest")
hospital = load_hospital()
desk = ComplaintDesk(hospital, classifier_for(hospital))


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = desk.department_digest(clock.now())
    result = {
        name: int(report[name])
        for name in ("sent", "messages", "already_sent", "empty", "no_template")
    }
    metrics.add_metric(name="DigestsSent", unit="Count", value=result["sent"])
    logger.info(
        "department digest done",
        sent=result["sent"],
        already_sent=result["already_sent"],
        empty=result["empty"],
    )
    return result


init_phase.finished()
