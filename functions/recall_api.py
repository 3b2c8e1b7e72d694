"""Staff HTTP API for recall: patients, treatments and their planned touchpoints, bookings and
visits, pauses, erasure, and the conversation with a patient beside the tag's manual."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
import base64
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import clock
from sotong.api import SignedIn, create_resolver, resolve
from sotong.complaints.classify import classifier_for
from sotong.config import load_hospital
from sotong.errors import BadRequest, Forbidden, NotFound
from sotong.fields import MobilePhone
from sotong.observability import get_logger, get_metrics
from sotong.recall import segments
from sotong.recall.access import PatientAccess
from sotong.recall.campaigns import CampaignDesk, CampaignPreview, CampaignRequest, checked_key
from sotong.recall.model import (
    Appointment,
    PatientRegistration,
    PauseChange,
    RepliesSettled,
    StaffMessage,
    TreatmentDateChange,
    TreatmentRecord,
)
from sotong.recall.service import RecallDesk
from sotong.resources import require_env
from sotong.staff import Staff

require_env("recall_api")
logger = get_logger("recall_api")
metrics = get_metrics("recall_api")
app = create_resolver("Sotong recall API", "Treatment tags, planned follow-ups and replies")
hospital = load_hospital()
desk = RecallDesk(hospital)
access = PatientAccess(desk)
classifier = classifier_for(hospital)  # the complaints' own, built on first use
PatientId = Annotated[str, Path(pattern=r"^p[0-9a-f]{20}$", description="patient id")]
TreatmentId = Annotated[str, Path(pattern=r"^t[0-9a-f]{16}$", description="treatment id")]
TouchpointId = Annotated[str, Path(pattern=r"^t[0-9a-f]{16}\.[a-z][a-z0-9_]{0,39}$")]


def _may_treat(staff: Staff, tag_id: str) -> None:
    tag = desk.tag(tag_id)
    if not staff.sees_department(tag.department):
        raise Forbidden(f"'{tag_id}' belongs to department '{tag.department}', not yours")


@app.post("/patients", summary="Register a patient (or update their contact and consents)")
def register(staff: SignedIn, registration: PatientRegistration) -> Response[dict[str, Any]]:
    access.registration(staff, registration)
    return Response(201, "application/json", desk.register(registration, staff.username))


def triage(text: str) -> tuple[str, tuple[str, ...]]:
    """A patient's reply as the complaint classifier reads it: urgency and matched phrases."""
    found = classifier.classify(text)
    return found.urgency, tuple(found.matched)


@app.get(
    "/patients",
    summary="Find a patient by chart number or phone",
    description="The patient id is derived from the chart number, and phones have their own "
    "index: a lookup reads one or two items, never the table. Answers the patients the caller "
    "may see (as `GET /patients/{patient_id}` shows them); none is an empty list.",
)
def find_patients(
    staff: SignedIn,
    chart_no: Annotated[
        str | None, Query(min_length=1, max_length=40, description="EMR chart number")
    ] = None,
    phone: Annotated[MobilePhone | None, Query(description="mobile, e.g. 010-1234-5678")] = None,
) -> dict[str, Any]:
    if not chart_no and not phone:
        raise BadRequest("query.chart_no: give a chart number or a phone", field="query.chart_no")
    return {"patients": access.find(staff, chart_no.strip() if chart_no else None, phone)}


@app.get(
    "/replies",
    summary="Patient replies waiting for an answer: harm flagged first, then oldest first",
    description="Replies to recall messages (SMS/KakaoTalk) wait here until staff answer the "
    "patient (`POST /patients/{patient_id}/conversation`) or mark them handled or converted. "
    "A reply the complaint classifier finds critical or high (bleeding, swelling, fever after "
    "a procedure) is `flagged` and listed first. Department staff see their department's "
    "replies, the CS admin every department's; read from a sparse queue index, never a Scan.",
)
def waiting_replies(staff: SignedIn) -> dict[str, Any]:
    return access.waiting(staff, triage)


@app.get("/patients/<patient_id>", summary="A patient with their upcoming touchpoints")
def get_patient(staff: SignedIn, patient_id: PatientId) -> dict[str, Any]:
    return access.view(staff, patient_id)


@app.post("/patients/<patient_id>/treatments", summary="Record a treatment: plans its follow-ups")
def record_treatment(
    staff: SignedIn, patient_id: PatientId, record: TreatmentRecord
) -> Response[dict[str, Any]]:
    _may_treat(staff, record.tag)
    treatment, created = desk.record_treatment(patient_id, record, staff.username)
    if created:
        metrics.add_metric(name="TreatmentRecorded", unit="Count", value=1)
    return Response(201 if created else 200, "application/json", treatment)


@app.post(
    "/patients/<patient_id>/treatments/<treatment_id>/date",
    summary="Change a treatment's date: its pending touchpoints move with it",
)
def change_date(
    staff: SignedIn, patient_id: PatientId, treatment_id: TreatmentId, change: TreatmentDateChange
) -> dict[str, Any]:
    access.treatment(staff, patient_id, treatment_id)
    return desk.change_treatment_date(patient_id, treatment_id, change.date, staff.username)


@app.post("/patients/<patient_id>/appointments", summary="Record a booking or a visit")
def record_appointment(
    staff: SignedIn, patient_id: PatientId, appointment: Appointment
) -> dict[str, Any]:
    access.patient(staff, patient_id)
    return desk.record_appointment(patient_id, appointment, staff.username)


@app.get("/patients/<patient_id>/touchpoints", summary="Every touchpoint, planned or done")
def touchpoints(staff: SignedIn, patient_id: PatientId) -> dict[str, Any]:
    return {"touchpoints": access.touchpoints(staff, patient_id)}


@app.post(
    "/patients/<patient_id>/touchpoints/<touchpoint_id>/cancel", summary="Cancel one touchpoint"
)
def cancel(staff: SignedIn, patient_id: PatientId, touchpoint_id: TouchpointId) -> dict[str, Any]:
    access.touchpoint(staff, patient_id, touchpoint_id)
    return desk.cancel_touchpoint(patient_id, touchpoint_id, staff.username)


@app.post("/patients/<patient_id>/pause", summary="Pause (or resume) a patient's follow-ups")
def pause(staff: SignedIn, patient_id: PatientId, change: PauseChange) -> dict[str, Any]:
    access.patient(staff, patient_id)
    return desk.pause(patient_id, change.paused, change.reason)


@app.delete("/patients/<patient_id>", summary="Erase a patient (PIPA request): counts remain")
def erase(staff: SignedIn, patient_id: PatientId) -> dict[str, Any]:
    if staff.role != "cs_admin":
        raise Forbidden("only the customer-service admin (cs_admin) may erase a patient")
    from sotong import erasure  # it reaches every module's records: only this route needs it

    # the erasure report: what went, by kind (counts only), and the anonymous counts kept
    report = erasure.erase_patient(hospital.hospital_id, patient_id, staff.username)
    return {"erased": patient_id, **report.as_dict()}


@app.get("/patients/<patient_id>/conversation", summary="Replies beside the tag's manual")
def conversation(staff: SignedIn, patient_id: PatientId) -> dict[str, Any]:
    access.patient(staff, patient_id)
    return desk.conversation(patient_id)


@app.post("/patients/<patient_id>/conversation", summary="Answer the patient")
def answer(staff: SignedIn, patient_id: PatientId, message: StaffMessage) -> dict[str, Any]:
    access.patient(staff, patient_id)
    return desk.answer(
        patient_id, message.message, staff.username, confirmed=message.confirm_health_terms
    )


@app.post(
    "/patients/<patient_id>/conversation/handled",
    summary="Mark the patient's waiting replies handled, or converted (a booking followed)",
)
def replies_handled(
    staff: SignedIn, patient_id: PatientId, settled: RepliesSettled
) -> dict[str, Any]:
    return access.settle(staff, patient_id, settled.outcome)


# --- segments and campaigns -----------------------------------------------------------------------
campaigns = CampaignDesk(hospital)
CampaignId = Annotated[str, Path(pattern=r"^m[0-9a-f]{24}$", description="campaign id")]


def _may_segment(staff: Staff, tag_id: str) -> None:
    tag = segments.known_tag(hospital, tag_id)
    if not staff.sees_department(tag.department):
        raise Forbidden(f"'{tag_id}' belongs to department '{tag.department}', not yours")


@app.post(
    "/segments/count",
    summary="Count the patients of a treatment-history segment",
    description="Reads the tag index only (never the table): the cost grows with the treatments "
    "of that tag and is returned in `cost`.",
)
def count_segment(staff: SignedIn, segment: segments.Segment) -> dict[str, Any]:
    _may_segment(staff, segment.tag)
    return segments.count(segment, hospital)


@app.post(
    "/segments/list",
    summary="List a segment's patients (phone masked), oldest latest treatment first; paginated",
)
def list_segment(staff: SignedIn, request: segments.SegmentPage) -> dict[str, Any]:
    _may_segment(staff, request.tag)
    return segments.page(request, hospital)


@app.post(
    "/campaigns",
    summary="Send a marketing template to a segment (cs_admin): consented patients only",
    description="Creates the campaign as a job and returns at once (`status: planned`); the "
    "campaign runner sends it at the provider's rate, each minute a minute's worth. One "
    "campaign per segment, template and send date: the same request again (a retry, whatever "
    "its `Idempotency-Key`) answers the same campaign with 200. Patients without marketing "
    "consent, paused or advertised within the frequency cap are counted, not messaged; the "
    "notification pipeline applies every advertising rule.",
    responses={
        200: {"description": "The same campaign, created before"},
        201: {"description": "Created; the runner starts it within a minute"},
    },
)
def create_campaign(staff: SignedIn, request: CampaignRequest) -> Response[dict[str, Any]]:
    if staff.role != "cs_admin":
        raise Forbidden("only the customer-service admin (cs_admin) may send a campaign")
    key = checked_key(app.current_event.headers.get("Idempotency-Key"))
    campaign, created = campaigns.create(request, staff.username, key)
    if created:
        metrics.add_metric(name="CampaignCreated", unit="Count", value=1)
    return Response(201 if created else 200, "application/json", campaign)


@app.post(
    "/campaigns/preview",
    summary="Preview a campaign: the message as patients see it, and who the rules hold or skip",
    description="Nothing is created or sent. The text is rendered by the sender's own code "
    "(`(광고)`, sender name, free 080 opt-out line); each member of the segment is taken as the "
    "campaign runner and the sender would take them at the time the runner would queue the "
    "message: skipped (no marketing consent, paused, frequency cap), suppressed (opted out, no "
    "contact consent), held until morning (night advertising, quiet hours) or sent. Department "
    "staff may preview their department's tags.",
)
def preview_campaign(staff: SignedIn, request: CampaignPreview) -> dict[str, Any]:
    _may_segment(staff, request.segment.tag)
    return campaigns.preview(request, clock.now())


@app.get("/campaigns/<campaign_id>", summary="A campaign with its progress and results")
def get_campaign(staff: SignedIn, campaign_id: CampaignId) -> dict[str, Any]:
    campaign = campaigns.get(campaign_id)
    tag = segments.known_tag(hospital, campaign["segment"]["tag"])
    if not staff.sees_department(tag.department):
        raise NotFound(f"no campaign {campaign_id} in your department", field="path.campaign_id")
    return campaign


@app.post(
    "/campaigns/<campaign_id>/cancel",
    summary="Stop a campaign (cs_admin): nothing more is queued after the current page",
    responses={409: {"description": "The campaign has finished already"}},
)
def cancel_campaign(staff: SignedIn, campaign_id: CampaignId) -> dict[str, Any]:
    if staff.role != "cs_admin":
        raise Forbidden("only the customer-service admin (cs_admin) may cancel a campaign")
    return campaigns.cancel(campaign_id, staff.username)


# --- CSV import -----------------------------------------------------------------------------------
IMPORT_ERRORS_SHOWN = 200


@app.post(
    "/imports/treatments",
    summary="Import treatments from an EMR's CSV export (body: text/csv, up to 5 MB)",
    description="Korean or English headers; UTF-8 or CP949. Every row is checked: bad rows are "
    "listed as `line N: field: problem` and the good ones imported. Importing the same file "
    "again imports nothing twice. Department staff may import their department's tags only. "
    "A file too long for one call stops between chunks with `complete: false`: send it again.",
    responses={
        200: {"description": "The report: counts, bad rows by line (the first 200), requests"},
        413: {"description": "Over 5 MB: import it with `sotong import-treatments`"},
        415: {"description": "Not sent as text/csv"},
        422: {"description": "The file as a whole is unusable: encoding, header"},
    },
)
def import_treatments(
    staff: SignedIn,
    dry_run: Annotated[bool, Query(description="check every row; write nothing")] = False,
) -> dict[str, Any]:
    from sotong.recall import importer

    event = app.current_event
    raw = event.body or ""
    data = base64.b64decode(raw) if event.is_base64_encoded else raw.encode("utf-8")
    if len(data) > importer.MAX_API_BYTES:
        raise importer.TooLarge(
            f"body: the CSV is {len(data) / 2**20:.1f} MB; this API takes up to "
            f"{importer.MAX_API_BYTES // 2**20} MB (API Gateway and Lambda payload limits): "
            "import it with the command line, `sotong import-treatments FILE.csv`, or split it",
            field="body",
            limit_bytes=importer.MAX_API_BYTES,
        )
    context = app.lambda_context
    report = importer.import_treatments(
        hospital,
        data,
        by=staff.username,
        dry_run=dry_run,
        departments=None if staff.role == "cs_admin" else {staff.department or ""},
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    if report.imported and not dry_run:
        metrics.add_metric(name="TreatmentsImported", unit="Count", value=report.imported)
    return report.as_dict(max_errors=IMPORT_ERRORS_SHOWN)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)


init_phase.finished()
