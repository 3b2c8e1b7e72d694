"""Public HTTP API: what patients reach without a staff sign-in (complaints, tracking, surveys)."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
import os
from functools import cache
from importlib import resources
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import clock
from sotong.api import create_resolver, resolve
from sotong.complaints import tracking
from sotong.complaints.classify import classifier_for
from sotong.complaints.model import ComplaintSubmission, SurveyAnswer, tracking_code
from sotong.complaints.service import ComplaintDesk
from sotong.config import load_hospital
from sotong.errors import BadRequest, NotFound, TooManyRequests
from sotong.observability import get_logger, get_metrics
from sotong.resources import require_env
from sotong.web import console
from sotong.web.headers import CONSOLE_CACHE, NO_STORE

require_env("public_api")
logger = get_logger("public_api")
metrics = get_metrics("public_api")
app = create_resolver("Sotong public API", "Patient-facing endpoints: no sign-in")
hospital = load_hospital()
desk = ComplaintDesk(hospital, classifier_for(hospital))
PAGES = {
    "complaint.html": "text/html; charset=utf-8",
    "track.html": "text/html; charset=utf-8",
    "survey.html": "text/html; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "open-now.html": "text/html; charset=utf-8",
    "open-now.js": "text/javascript; charset=utf-8",
    "programmes.html": "text/html; charset=utf-8",
    "programmes.js": "text/javascript; charset=utf-8",
}


def _source_ip() -> str:
    identity = app.current_event.request_context.identity
    return identity.source_ip or "unknown"


def _limit(name: str, window_s: int, limit: int) -> None:
    if desk.complaints.hit_rate_limit(name, window_s, limit):
        minutes = max(1, round(window_s / 60))
        raise TooManyRequests(
            f"too many attempts; try again in {minutes} minute(s) ({minutes}분 후에 다시 시도해 "
            "주세요)",
            retry_after_s=window_s,
        )


@app.get("/health", summary="Liveness of the API and the hospital it serves")
def health() -> dict[str, Any]:
    return {
        "status": "ok",
        "hospital_id": hospital.hospital_id,
        "hospital": hospital.name,
        "time": clock.now().astimezone(hospital.zone).isoformat(),
    }


@app.post(
    "/complaints",
    summary="Submit a complaint, suggestion or compliment (web form, mobile apps)",
    description="Send an `Idempotency-Key` header: a repeated submit returns the same receipt.",
    responses={201: {"description": "Stored; the receipt carries the tracking code"}},
)
def submit_complaint(submission: ComplaintSubmission) -> Response[dict[str, Any]]:
    key = app.current_event.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 200):
        raise BadRequest(
            "header.idempotency-key: 1 to 200 characters", field="header.idempotency-key"
        )
    _limit(f"submit:{tracking.client_key(_source_ip())}", 60, 20)
    receipt, created = desk.submit(submission, channel=submission.channel, idempotency_key=key)
    if created:
        metrics.add_metric(name="ComplaintReceived", unit="Count", value=1)
    return Response(
        status_code=201 if created else 200, content_type="application/json", body=receipt
    )


def _wait(seconds: int, field: str | None = None) -> Response[dict[str, Any]]:
    """429 that says how long to wait: `Retry-After` (seconds) and the minutes in Korean."""
    body: dict[str, Any] = {
        "error": "too_many_requests",
        "message": tracking.wait_text(seconds),
        "retry_after_s": seconds,
    }
    if field:
        body["field"] = field
    return Response(429, "application/json", body, headers={"Retry-After": str(seconds)})


@app.get(
    "/track/<code>",
    summary="Progress of a complaint: needs the last 4 digits of the phone",
    description="Wrong last-4 digits lock the code after "
    f"{tracking.FAILURES} failures in {tracking.WINDOW_S // 60} minutes, for "
    f"{tracking.LOCK_S // 60} minutes, for the addresses that guessed wrong; a correct lookup "
    "is never locked out by others' failures.",
    responses={
        400: {"description": "Not a tracking code (8 characters, 2-9 and A-Z without I, O)"},
        404: {"description": "No complaint with this code and phone number"},
        429: {"description": "Too many attempts: `Retry-After` says how many seconds to wait"},
    },
)
def track(
    code: Annotated[str, Path(min_length=8, max_length=12, description="tracking code")],
    phone_last4: Annotated[
        str, Query(pattern=r"^\d{4}$", description="last 4 digits of the phone")
    ],
) -> Response[dict[str, Any]]:
    try:
        normalised = tracking_code(code)  # the one spelling: both the limit and the lookup
    except ValueError as error:
        raise BadRequest(f"path.code: {error}", field="path.code") from None
    window = 60
    client = tracking.client_key(_source_ip())
    if desk.complaints.hit_rate_limit(f"track-ip:{client}", window, 30):
        return _wait(window - int(clock.now().timestamp()) % window)
    wait = tracking.refused(tracking.lock_of(normalised), client)
    if wait:
        return _wait(wait, "path.code")
    try:
        return Response(200, "application/json", desk.track(normalised, phone_last4))
    except NotFound:
        wait = tracking.record_failure(normalised, client)
        if wait:
            return _wait(wait, "path.code")
        raise


@app.post("/survey", summary="Answer the satisfaction survey sent after a complaint closed")
def answer_survey(answer: SurveyAnswer) -> dict[str, Any]:
    _limit(f"survey:{tracking.client_key(_source_ip())}", 60, 20)
    desk.answer_survey(answer)
    return {"thanks": True}


@cache
def _page(name: str) -> str:
    return resources.files("sotong.web").joinpath(name).read_text(encoding="utf-8")


@app.get("/pages/<page>", summary="The patients' web pages (complaint form, tracking, survey)")
def page(page: Annotated[str, Path(max_length=40)]) -> Response[str]:
    if page not in PAGES:
        raise NotFound(f"no page {page}", field="path.page")
    return Response(status_code=200, content_type=PAGES[page], body=_page(page))


def _console_file(name: str) -> Response[str]:
    found = console.asset(name)
    if found is None:
        raise NotFound(f"no console file {name}", field="path.page")
    settings = console.sign_in(app.current_event.stage_variables, os.environ.get("AWS_REGION"))
    headers = {
        "Content-Security-Policy": console.csp(settings),
        "Cache-Control": CONSOLE_CACHE,
        "ETag": found.etag,
    }
    if app.current_event.headers.get("If-None-Match") == found.etag:
        return Response(status_code=304, content_type=found.content_type, body="", headers=headers)
    return Response(200, found.content_type, found.body, headers=headers)


@app.get("/console", summary="The staff console (it signs staff in itself: docs/console.md)")
def console_page() -> Response[str]:
    if not app.current_event.path.endswith("/"):  # its modules are relative to /console/
        return Response(301, "text/plain; charset=utf-8", "", headers={"Location": "console/"})
    return _console_file(console.INDEX)


@app.get("/console/<page>", summary="The staff console's files and its sign-in settings")
def console_asset(page: Annotated[str, Path(max_length=40)]) -> Response[Any]:
    if page == console.CONFIG:
        event = app.current_event
        body = console.settings(hospital, event.stage_variables, os.environ.get("AWS_REGION"))
        return Response(200, "application/json", body, headers={"Cache-Control": NO_STORE})
    return _console_file(page)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)


init_phase.finished()
