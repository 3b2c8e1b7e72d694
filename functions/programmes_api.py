"""HTTP API for patient support programmes: the public page's routes (browse, a code by SMS,
sessions that avoid the patient's own treatment days, sign up, cancel) and the staff routes
(sign-ups and attendance per programme, recording attendance, the FHIR / HSDS export)."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from datetime import date
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import clock, dates, keys
from sotong.api import SignedIn, create_resolver, resolve
from sotong.config import load_hospital
from sotong.errors import BadRequest, Forbidden
from sotong.observability import get_logger, get_metrics
from sotong.programmes import fhir
from sotong.programmes.model import (
    Attendance,
    Cancellation,
    CodeRequest,
    SignupRequest,
    Verification,
)
from sotong.programmes.service import ProgrammeDesk
from sotong.resources import require_env
from sotong.staff import Staff

require_env("programmes_api")
logger = get_logger("programmes_api")
metrics = get_metrics("programmes_api")
app = create_resolver("Sotong programmes API", "Patient support programmes: sign-ups, sessions")
hospital = load_hospital()
desk = ProgrammeDesk(hospital)
ProgrammeId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="programme id")]


def _client() -> str:
    identity = app.current_event.request_context.identity
    return keys.digest("programme-client", identity.source_ip or "unknown", 24)


def _may_see(staff: Staff, programme_id: str) -> None:
    programme = desk.programme(programme_id)
    if not staff.sees_department(programme.department):
        raise Forbidden(
            f"path.programme_id: '{programme_id}' is run by department "
            f"'{programme.department}', not yours",
            field="path.programme_id",
        )


@app.get("/programmes", summary="The programmes the hospital publishes, with upcoming sessions")
def list_programmes() -> dict[str, Any]:
    return desk.list_public(clock.now())


@app.post(
    "/programmes/codes",
    summary="Send a one-time code to a phone by SMS (to sign up without an account)",
    description="At most 3 codes per phone and 20 per address in 10 minutes (429 with "
    "`Retry-After`). The code is valid for the config's `code_minutes` and 5 tries.",
    responses={202: {"description": "The code is on its way"}},
)
def request_code(request: CodeRequest) -> Response[dict[str, Any]]:
    answer = desk.request_code(request.phone, _client(), clock.now())
    metrics.add_metric(name="ProgrammeCodeSent", unit="Count", value=1)
    return Response(202, "application/json", answer)


@app.post(
    "/programmes/<programme_id>/offers",
    summary="Verify the code; the sessions offered (none on the patient's own treatment days)",
    description="Answers a `token` for signing up (30 minutes) and the upcoming sessions, "
    "leaving out the ones on a day of the patient's recorded treatment or booking (`avoided`).",
)
def offers(programme_id: ProgrammeId, verification: Verification) -> dict[str, Any]:
    desk.programme(programme_id)
    now = clock.now()
    token = desk.verify(verification.phone, verification.code, now)
    return {**desk.offers(programme_id, verification.phone, now), "token": token}


@app.post(
    "/programmes/<programme_id>/signups",
    summary="Sign up for a session (a seat, or the waiting list when it is full)",
    responses={201: {"description": "Signed up (status confirmed or waiting)"}},
)
def sign_up(programme_id: ProgrammeId, request: SignupRequest) -> Response[dict[str, Any]]:
    if not request.consent_to_contact:
        raise BadRequest(
            "body.consent_to_contact: needed to send the confirmation and the reminder",
            field="body.consent_to_contact",
        )
    now = clock.now()
    phone = desk.verified_phone(request.token, now)
    answer, created = desk.sign_up(programme_id, phone, request.starts_at, request.name, now)
    if created:
        metrics.add_metric(name="ProgrammeSignup", unit="Count", value=1)
    return Response(201 if created else 200, "application/json", answer)


@app.post(
    "/programmes/cancellations", summary="Cancel a sign-up (its seat goes to the waiting list)"
)
def cancel(request: Cancellation) -> dict[str, Any]:
    return desk.cancel(request.cancel_token, clock.now())


@app.get(
    "/programmes/<programme_id>/roster",
    summary="Sign-ups and attendance per session (staff of the programme's department)",
)
def roster(
    staff: SignedIn,
    programme_id: ProgrammeId,
    since: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")] = None,
) -> dict[str, Any]:
    _may_see(staff, programme_id)
    try:
        day = dates.filter_day(date.fromisoformat(since)) if since else None
    except ValueError as error:
        raise BadRequest(f"query.since: {error}", field="query.since") from None
    return desk.roster(programme_id, day, clock.now())


@app.post(
    "/programmes/<programme_id>/attendance",
    summary="Record whether a participant came (the facilitator, after the session)",
)
def attendance(staff: SignedIn, programme_id: ProgrammeId, record: Attendance) -> dict[str, Any]:
    _may_see(staff, programme_id)
    return desk.record_attendance(
        programme_id,
        record.starts_at,
        record.signup_id,
        record.attended,
        staff.username,
        clock.now(),
    )


@app.get(
    "/programmes/<programme_id>/export",
    summary="The programme as FHIR R4 HealthcareService and HSDS 3 service, sign-ups as "
    "FHIR Appointments",
)
def export(staff: SignedIn, programme_id: ProgrammeId) -> dict[str, Any]:
    _may_see(staff, programme_id)
    programme = desk.programme(programme_id)
    now = clock.now()
    signups = desk.programmes.signups(programme.id)
    return {
        "healthcare_service": fhir.healthcare_service(hospital, programme, now),
        "appointments": fhir.bundle([fhir.appointment(hospital, programme, s) for s in signups]),
        "hsds_service": fhir.hsds_service(hospital, programme),
    }


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)


init_phase.finished()
