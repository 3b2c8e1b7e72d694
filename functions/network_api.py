"""The care network's HTTP API: who is open now (public, for guardians), the partner directory
as HSDS 3 and FHIR, referrals between partners and the hospital (partners see only their own
organisation's), and the monthly network report."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import clock, dates
from sotong.api import SignedIn, create_resolver, resolve
from sotong.config import load_hospital
from sotong.errors import BadRequest
from sotong.network import fhir, hsds
from sotong.network.model import ReferralIn, StatusChange
from sotong.network.service import NetworkDesk
from sotong.observability import get_logger, get_metrics
from sotong.resources import require_env

require_env("network_api")
logger = get_logger("network_api")
metrics = get_metrics("network_api")
app = create_resolver("Sotong care network API", "Partner clinics' hours, referrals, reports")
hospital = load_hospital()
desk = NetworkDesk(hospital)
ReferralId = Annotated[str, Path(pattern=r"^r[0-9a-f]{16}$", description="referral id")]
Month = Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]


def _idempotency_key() -> str | None:
    key = app.current_event.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key.strip()) <= 200):
        raise BadRequest(
            "header.idempotency-key: 1 to 200 characters", field="header.idempotency-key"
        )
    return key.strip() if key else None


@app.get(
    "/network/open",
    summary="지금 진료 가능한 곳: the partners open now, or at a given time",
    description="Partner clinics and pharmacies open at `at` (default: now), across nights "
    "(hours past midnight), weekends and Korean public holidays (설날, 추석), with phone numbers "
    "and when each closes; the closed ones with when they open next. From the hospital's "
    "reviewed directory: no sign-in, no table read.",
)
def open_now(
    at: Annotated[
        datetime | None,
        Query(description="a time with its offset, e.g. 2027-02-07T21:00:00+09:00"),
    ] = None,
    kind: Annotated[str | None, Query(pattern=r"^(clinic|pharmacy|hospital)$")] = None,
    treats: Annotated[str | None, Query(pattern=r"^[a-z_]{1,40}$")] = None,
) -> dict[str, Any]:
    when = at or clock.now()
    if when.tzinfo is None:
        when = when.replace(tzinfo=hospital.zone)
    try:
        dates.filter_time(when)
    except (ValueError, OverflowError) as error:
        raise BadRequest(f"query.at: {error}", field="query.at") from None
    return desk.open_at(when, kind, [treats] if treats else [])


@app.get("/network/directory", summary="The partner directory as Open Referral HSDS 3 JSON")
def directory() -> dict[str, Any]:
    return hsds.export(hospital)


@app.get(
    "/network/services",
    summary="The partners as FHIR R4 HealthcareService resources (a Bundle)",
    description="`availableTime` per weekday, `notAvailable` the coming public holidays a "
    "partner is closed on, `availabilityExceptions` its holiday and past-midnight hours.",
)
def services() -> dict[str, Any]:
    today = clock.now().astimezone(hospital.zone).date()
    return fhir.services_bundle(desk.partners, hospital, today)


@app.post(
    "/referrals",
    summary="Refer a child: a partner to the hospital, or the hospital to a partner",
    description="Tells the guardian (AlimTalk, SMS fallback) without the reason. An "
    "`Idempotency-Key` header makes a retry answer the same referral (200).",
)
def refer(staff: SignedIn, referral: ReferralIn) -> Response[dict[str, Any]]:
    body, created = desk.refer(staff, referral.new(), _idempotency_key())
    if created:
        metrics.add_metric(name="ReferralRequested", unit="Count", value=1)
    return Response(201 if created else 200, "application/json", body)


@app.get(
    "/referrals",
    summary="Referrals: a partner's own; the hospital's of a month",
    description="A partner sees its own organisation's referrals (newest first); hospital staff "
    "the hospital's of `month` (default this month). Read from indexes, never a Scan.",
)
def referrals(staff: SignedIn, month: Month = None) -> dict[str, Any]:
    return desk.listing(staff, month)


@app.get("/referrals/<referral_id>", summary="A referral with its history")
def referral(staff: SignedIn, referral_id: ReferralId) -> dict[str, Any]:
    return desk.view(staff, referral_id)


@app.post(
    "/referrals/<referral_id>/status",
    summary="Move a referral on: accept (and schedule), start, complete, decline or cancel",
    description="FHIR Task states: requested -> accepted -> in-progress -> completed, or "
    "rejected / cancelled. The receiving side accepts, schedules, completes or declines; the "
    "requesting side cancels. A wrong step is a 409 naming the allowed ones.",
)
def change_status(staff: SignedIn, referral_id: ReferralId, change: StatusChange) -> dict[str, Any]:
    return desk.act(
        staff, referral_id, change.status, note=change.note, scheduled_for=change.scheduled_for
    )


@app.get(
    "/referrals/<referral_id>/fhir",
    summary="A referral as FHIR R4: a Bundle of its ServiceRequest and Task",
)
def referral_fhir(staff: SignedIn, referral_id: ReferralId) -> dict[str, Any]:
    found = desk.referral_of(staff, referral_id)
    return fhir.referral_bundle(found, hospital, desk.partner(found.partner_id))


@app.get(
    "/reports/network",
    summary="The monthly network report: referrals by partner and urgency",
    description="Counts by status, escalations, and the median minutes to accept and to be "
    "seen, for the referrals requested in `period` (YYYY-MM).",
)
def report(
    staff: SignedIn,
    period: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")],
) -> dict[str, Any]:
    return desk.report(period)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)


init_phase.finished()
