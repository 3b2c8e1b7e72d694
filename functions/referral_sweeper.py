"""Scheduled: pages the on-call contact for each urgent referral left unanswered past its time
(`network.accept_within_minutes`), once per referral."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import clock
from sotong.config import load_hospital
from sotong.network.service import NetworkDesk
from sotong.observability import get_logger, get_metrics
from sotong.resources import require_env

require_env("referral_sweeper")
logger = get_logger("referral_sweeper")
metrics = get_metrics("referral_sweeper")
hospital = load_hospital()
desk = NetworkDesk(hospital)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = desk.sweep(clock.now())
    metrics.add_metric(name="ReferralsEscalated", unit="Count", value=report["escalated"])
    logger.info("referral sweep done", escalated=report["escalated"])
    return report


init_phase.finished()
