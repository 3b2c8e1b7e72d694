"""Staff and agency HTTP API for integrated care plans: cases, their agencies' activities (FHIR
Task statuses), case conferences whose decisions become activities, follow-up reviews, the audit
and the FHIR export. Hospital staff run cases and conferences; an agency user sees and updates
only its own activities (anything else is not found)."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong.api import SignedIn, create_resolver, resolve
from sotong.careplans.model import (
    ActivityChange,
    ActivityPlan,
    CaseOpening,
    ConferenceRecord,
    ReviewDone,
)
from sotong.careplans.service import CarePlanDesk
from sotong.config import load_hospital
from sotong.observability import get_logger, get_metrics
from sotong.resources import require_env

require_env("careplans_api")
logger = get_logger("careplans_api")
metrics = get_metrics("careplans_api")
app = create_resolver(
    "Sotong care-plan API", "Integrated care plans, agency activities and case conferences"
)
desk = CarePlanDesk(load_hospital())
CaseId = Annotated[str, Path(pattern=r"^c[0-9a-f]{16}$", description="case id")]
ActivityId = Annotated[str, Path(pattern=r"^a[0-9a-f]{16}$", description="activity id")]
ConferenceId = Annotated[str, Path(pattern=r"^f[0-9a-f]{16}$", description="conference id")]
ReviewId = Annotated[str, Path(pattern=r"^f[0-9a-f]{16}\.m[0-9]{1,2}$", description="review id")]


@app.post("/care/cases", summary="Open a case for a person with complex needs")
def open_case(staff: SignedIn, opening: CaseOpening) -> Response[dict[str, Any]]:
    case = desk.open_case(staff, opening)
    metrics.add_metric(name="CareCaseOpened", unit="Count", value=1)
    return Response(201, "application/json", case)


@app.get(
    "/care/cases",
    summary="Open cases: the CS admin every department's, department staff their department's",
)
def list_cases(staff: SignedIn) -> dict[str, Any]:
    return desk.cases(staff)


@app.get(
    "/care/cases/<case_id>",
    summary="A case: its plan's activities, the conferences' decisions, reviews and audit",
)
def get_case(staff: SignedIn, case_id: CaseId) -> dict[str, Any]:
    return desk.view(staff, case_id)


@app.get(
    "/care/cases/<case_id>/fhir",
    summary="The case as FHIR R4: a Bundle of CarePlan, CareTeam and a Task per activity",
)
def export_case(staff: SignedIn, case_id: CaseId) -> dict[str, Any]:
    return desk.export(staff, case_id)


@app.post(
    "/care/cases/<case_id>/activities",
    summary="Add an activity to the plan (the agency is told)",
)
def add_activity(staff: SignedIn, case_id: CaseId, plan: ActivityPlan) -> Response[dict[str, Any]]:
    return Response(201, "application/json", desk.add_activity(staff, case_id, plan))


@app.post(
    "/care/cases/<case_id>/activities/<activity_id>/status",
    summary="Move an activity to another FHIR Task status",
    description="requested -> accepted | rejected | cancelled; accepted -> in-progress | "
    "on-hold | completed | cancelled; in-progress -> on-hold | completed | failed | cancelled; "
    "on-hold -> in-progress | cancelled | failed. An agency moves only its own activities "
    "(others are not found) and never cancels; every change is audited.",
)
def change_activity(
    staff: SignedIn, case_id: CaseId, activity_id: ActivityId, change: ActivityChange
) -> dict[str, Any]:
    return desk.change_activity(staff, case_id, activity_id, change)


@app.post(
    "/care/cases/<case_id>/reviews/<review_id>/done", summary="Record a follow-up review held"
)
def review_done(
    staff: SignedIn, case_id: CaseId, review_id: ReviewId, done: ReviewDone
) -> dict[str, Any]:
    return desk.review_done(staff, case_id, review_id, done.note)


@app.get("/care/activities", summary="The signed-in agency's own activities, soonest due first")
def agency_activities(staff: SignedIn) -> dict[str, Any]:
    return desk.agency_activities(staff)


@app.post(
    "/care/conferences",
    summary="Record a case conference: decisions become activities, reviews at 1 and 3 months",
    description="Each case's decisions, activities, reviews, audit and messages are written "
    "together; recording the same conference (same day and title) again writes nothing twice.",
)
def hold_conference(staff: SignedIn, record: ConferenceRecord) -> Response[dict[str, Any]]:
    conference, created = desk.hold_conference(staff, record)
    if created:
        metrics.add_metric(name="CareConferenceHeld", unit="Count", value=1)
    return Response(201 if created else 200, "application/json", conference)


@app.get("/care/conferences/<conference_id>", summary="A conference and what it decided")
def get_conference(staff: SignedIn, conference_id: ConferenceId) -> dict[str, Any]:
    return desk.conference(staff, conference_id)


@app.get("/care/reviews", summary="Follow-up reviews due and not yet held")
def reviews(staff: SignedIn) -> dict[str, Any]:
    return desk.reviews_due(staff)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)


init_phase.finished()
