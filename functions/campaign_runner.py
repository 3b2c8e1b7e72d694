"""Scheduled every minute: advances each planned or running campaign by up to a minute's worth
of messages at the provider's rate (a lease per campaign, progress written with its messages)."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import clock
from sotong.config import load_hospital
from sotong.observability import get_logger, get_metrics
from sotong.recall.campaigns import CampaignRunner
from sotong.resources import require_env

require_env("campaign_runner")
logger = get_logger("campaign_runner")
metrics = get_metrics("campaign_runner")
runner = CampaignRunner(load_hospital())


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runs = runner.run(clock.now(), time_left=lambda: context.get_remaining_time_in_millis() / 1000)
    queued = sum(r.queued for r in runs)
    if queued:
        metrics.add_metric(name="CampaignMessagesQueued", unit="Count", value=queued)
    finished = sum(1 for r in runs if r.outcome == "done")
    if finished:
        metrics.add_metric(name="CampaignsFinished", unit="Count", value=finished)
    if runs:
        logger.info("campaign runs", campaigns=[r.as_dict() for r in runs])
    return {"campaigns": [r.as_dict() for r in runs], "queued": queued}


init_phase.finished()
