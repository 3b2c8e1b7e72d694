"""Provider callbacks, signature-verified: delivery reports, inbound SMS/KakaoTalk and opt-outs."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import secrets
from sotong.api import create_resolver, resolve
from sotong.config import load_hospital
from sotong.errors import Unauthorized
from sotong.notify import inbound as inbound_messages
from sotong.notify import records
from sotong.notify.providers.solapi import (
    parse_delivery_reports,
    parse_inbound,
    verify_webhook,
)
from sotong.observability import get_logger, get_metrics
from sotong.resources import require_env

require_env("provider_webhook")
logger = get_logger("provider_webhook")
metrics = get_metrics("provider_webhook")
app = create_resolver("Sotong provider webhooks", "Signed callbacks from the message provider")
hospital = load_hospital()


@cache
def _router() -> inbound_messages.InboundRouter:
    """Built on the first inbound message: most calls are delivery reports, which need neither
    the complaint desk nor the recall desk (their imports are about 30 ms of init)."""
    from sotong.complaints.classify import classifier_for
    from sotong.complaints.service import ComplaintDesk
    from sotong.recall.service import RecallDesk

    desk = ComplaintDesk(hospital, classifier_for(hospital))
    return inbound_messages.InboundRouter(hospital, desk, RecallDesk(hospital))


def _verified_body() -> bytes:
    """The body, if signed by the provider and no larger than one call may be (413)."""
    event = app.current_event
    body = event.decoded_body.encode() if isinstance(event.decoded_body, str) else b""
    inbound_messages.check_size(body)
    ref = hospital.sender.webhook_secret
    secret = secrets.resolve(ref) if ref else ""
    if not verify_webhook(dict(event.headers or {}), body, secret):
        metrics.add_metric(name="WebhookRejected", unit="Count", value=1)
        raise Unauthorized("the webhook signature is missing, wrong or too old")
    return body


@app.post(
    "/webhooks/reports",
    summary="Delivery results from the provider",
    responses={
        200: {"description": "Handled"},
        413: {"description": "More events or bytes than one call may carry"},
    },
)
def delivery_reports() -> dict[str, Any]:
    body = _verified_body()
    inbound_messages.check_events(body)
    applied = 0
    for report in parse_delivery_reports(body):
        if report.status == "opted_out" and report.recipient_phone:
            records.record_opt_out(hospital.hospital_id, report.recipient_phone, "sms", "080")
        if report.message_id and records.apply_report(
            report.message_id,
            "failed" if report.status == "opted_out" else report.status,
            report.reason,
            report.channel,
        ):
            applied += 1
    metrics.add_metric(name="DeliveryReports", unit="Count", value=applied)
    return {"applied": applied}


@app.post(
    "/webhooks/inbound",
    summary="Messages patients sent to the hospital's number",
    responses={
        200: {"description": "Handled"},
        413: {"description": "More events or bytes than one call may carry"},
    },
)
def inbound() -> dict[str, Any]:
    body = _verified_body()
    inbound_messages.check_events(body)
    outcomes = _router().handle_all(parse_inbound(body))
    counts = {
        "opted_out": outcomes["opted_out"],
        "complaints": outcomes["complaint"],
        "replies": outcomes["reply"],
        "duplicates": outcomes["duplicate"],
        "ignored": outcomes["ignored"],
    }
    logger.info("inbound handled", extra=counts)
    return counts


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)


init_phase.finished()
