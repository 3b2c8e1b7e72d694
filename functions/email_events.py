"""EventBridge rule: SES delivery events onto message records; a spam complaint opts out."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong.config import load_hospital
from sotong.notify import records
from sotong.notify.providers.ses import parse_ses_events
from sotong.observability import get_logger, get_metrics
from sotong.resources import require_env

require_env("email_events")
logger = get_logger("email_events")
metrics = get_metrics("email_events")
hospital = load_hospital()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    applied = 0
    for report in parse_ses_events(event):
        if report.status == "opted_out" and report.recipient_email:
            records.record_opt_out(hospital.hospital_id, report.recipient_email, "email", "ses")
        status = "failed" if report.status == "opted_out" else report.status
        if report.message_id and records.apply_report(
            report.message_id, status, report.reason, "email"
        ):
            applied += 1
    metrics.add_metric(name="EmailEvents", unit="Count", value=applied)
    return {"applied": applied}


init_phase.finished()
