"""Scheduled: escalates complaints past their SLA, once per level (head, then CS admin)."""

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

require_env("sla_sweeper")
logger = get_logger("sla_sweeper")
metrics = get_metrics("sla_sweeper")
hospital = load_hospital()
desk = ComplaintDesk(hospital, classifier_for(hospital))


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = desk.sweep_sla(clock.now())
    escalated, critical = report["escalated"], report["critical_unacknowledged"]
    metrics.add_metric(name="ComplaintsEscalated", unit="Count", value=escalated)
    metrics.add_metric(name="CriticalUnacknowledged", unit="Count", value=critical)
    logger.info("SLA sweep done", escalated=escalated, critical_unacknowledged=critical)
    return {"escalated": escalated, "critical_unacknowledged": critical}


init_phase.finished()
