"""Staff HTTP API (behind the Cognito authorizer): complaints inbox and handling, message records,
reports and the sandbox outbox. Department staff see their department only; cs_admin sees all."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong import csv_export
from sotong.api import SignedIn, create_resolver, resolve
from sotong.complaints import reports
from sotong.complaints.classify import classifier_for
from sotong.complaints.model import (
    Assignment,
    Correction,
    IntakeChannel,
    Note,
    Reply,
    Resolution,
    StaffEntry,
    Transition,
)
from sotong.complaints.service import ComplaintDesk
from sotong.config import load_hospital
from sotong.errors import BadRequest, Forbidden, NotFound
from sotong.notify import outbox, records
from sotong.notify import reports as message_reports
from sotong.observability import get_logger, get_metrics
from sotong.phone import normalize_korean_phone
from sotong.resources import require_env
from sotong.staff import Staff

require_env("staff_api")
logger = get_logger("staff_api")
metrics = get_metrics("staff_api")
app = create_resolver("Sotong staff API", "For hospital staff; every call needs a staff sign-in")
hospital = load_hospital()
desk = ComplaintDesk(hospital, classifier_for(hospital))
ComplaintId = Annotated[str, Path(pattern=r"^c[0-9a-f]{10,30}$", description="complaint id")]
DATE = r"^\d{4}-\d{2}-\d{2}(T[0-9:.]+Z?)?$"


def _require_admin(staff: Staff) -> None:
    if staff.role != "cs_admin":
        raise Forbidden("only the customer-service admin (cs_admin) may do this")


# --- complaints -----------------------------------------------------------------------------------
@app.get("/inbox", summary="Complaints by state, department, status, urgency, channel, date; paged")
def inbox(
    staff: SignedIn,
    state: Annotated[Literal["open", "resolved", "closed"], Query()] = "open",
    department: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    urgency: Annotated[Literal["critical", "high", "normal"] | None, Query()] = None,
    channel: Annotated[IntakeChannel | None, Query()] = None,
    since: Annotated[str | None, Query(pattern=DATE, alias="from")] = None,
    until: Annotated[str | None, Query(pattern=DATE, alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> dict[str, Any]:
    return desk.inbox(
        staff,
        state=state,
        department=department,
        status=status,
        urgency=urgency,
        channel=channel,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@app.post("/staff/complaints", summary="Enter a complaint taken by phone or at the desk")
def enter_complaint(staff: SignedIn, entry: StaffEntry) -> Response[dict[str, Any]]:
    receipt = desk.enter(staff, entry)
    return Response(status_code=201, content_type="application/json", body=receipt)


@app.get(
    "/complaints/<complaint_id>",
    summary="One complaint with its full history and every SMS/KakaoTalk message it received",
)
def get_complaint(staff: SignedIn, complaint_id: ComplaintId) -> dict[str, Any]:
    return desk.view_for(staff, complaint_id)


@app.post("/complaints/<complaint_id>/status", summary="Change the status, with a note")
def change_status(staff: SignedIn, complaint_id: ComplaintId, change: Transition) -> dict[str, Any]:
    return desk.change_status(staff, complaint_id, change.status, change.note)


@app.post("/complaints/<complaint_id>/assign", summary="Assign to a person and/or department")
def assign(staff: SignedIn, complaint_id: ComplaintId, assignment: Assignment) -> dict[str, Any]:
    return desk.assign(staff, complaint_id, assignment)


@app.post("/complaints/<complaint_id>/classification", summary="Correct kind/category/urgency")
def correct(staff: SignedIn, complaint_id: ComplaintId, correction: Correction) -> dict[str, Any]:
    return desk.correct(staff, complaint_id, correction)


@app.post("/complaints/<complaint_id>/replies", summary="Reply to the patient (progress update)")
def reply(staff: SignedIn, complaint_id: ComplaintId, message: Reply) -> dict[str, Any]:
    return desk.reply(staff, complaint_id, message)


@app.post("/complaints/<complaint_id>/resolve", summary="Resolve with the outcome for the patient")
def resolve_complaint(
    staff: SignedIn, complaint_id: ComplaintId, resolution: Resolution
) -> dict[str, Any]:
    return desk.resolve(staff, complaint_id, resolution)


@app.post("/complaints/<complaint_id>/close", summary="Close; the patient gets the survey")
def close(staff: SignedIn, complaint_id: ComplaintId, note: Note) -> dict[str, Any]:
    return desk.close(staff, complaint_id, note.note)


@app.post("/complaints/<complaint_id>/reopen", summary="Reopen a resolved or closed complaint")
def reopen(staff: SignedIn, complaint_id: ComplaintId, note: Note) -> dict[str, Any]:
    return desk.reopen(staff, complaint_id, note.note)


Period = Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2]|Q[1-4])$")]
Format = Annotated[Literal["json", "csv"], Query(alias="format")]


def _csv(name: str, header: Sequence[str], rows: list[list[object]]) -> Response[str]:
    return Response(
        status_code=200,
        content_type=csv_export.CONTENT_TYPE,
        body=csv_export.render(header, rows),
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@app.get("/reports/complaints", summary="Monthly (2026-11) or quarterly (2026-Q4) report")
def complaint_report(
    staff: SignedIn,
    period: Period,
    department: Annotated[str | None, Query(max_length=40)] = None,
    output: Format = "json",
) -> Any:
    if not staff.sees_every_department:
        if department and department != staff.department:
            raise Forbidden(f"you may only see reports of department '{staff.department}'")
        department = staff.department
    report = reports.build(period, hospital.zone, department, desk.complaints)
    if output == "csv":
        words = {d.id: d.name for d in hospital.departments}
        rows = reports.csv_rows(report, words)
        return _csv(f"complaints-{period}", reports.CSV_HEADER, rows)
    return report


@app.get("/reports/recall", summary="Recall per treatment tag: due, sent, cancelled, converted")
def recall_report(staff: SignedIn, period: Period, output: Format = "json") -> Any:
    # imported here: the recall package is a third of this function's start, for a rare report
    from sotong.recall import reports as recall_reports
    from sotong.recall.repository import DynamoPatientRepository

    start, end = reports.period_bounds(period, hospital.zone)
    tags = {
        t.id: recall_reports.lookback_days([s.offset_parts for s in t.plan])
        for t in hospital.treatment_tags
        if staff.sees_department(t.department)
    }
    report = recall_reports.build(period, start, end, tags, DynamoPatientRepository())
    if output == "csv":
        names = {t.id: t.name for t in hospital.treatment_tags}
        rows = recall_reports.csv_rows(report, names)
        return _csv(f"recall-{period}", recall_reports.CSV_HEADER, rows)
    return report


@app.get("/reports/messages", summary="Messages sent, delivered, failed, by fallback, by channel")
def message_report(staff: SignedIn, period: Period, output: Format = "json") -> Any:
    start, end = reports.period_bounds(period, hospital.zone)
    report = message_reports.build(period, start, end, hospital.zone, records.created_between)
    if output == "csv":
        rows = message_reports.csv_rows(report)
        return _csv(f"messages-{period}", message_reports.CSV_HEADER, rows)
    return report


# --- messages -------------------------------------------------------------------------------------
@app.get("/outbox", summary="What the sandbox provider sent, newest first")
def list_outbox(staff: SignedIn, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    _require_admin(staff)
    return {"provider": hospital.sender.provider, "messages": outbox.recent(limit)}


@app.get("/messages/<message_id>", summary="One message record with its history")
def get_message(
    staff: SignedIn,
    message_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="message id")],
) -> dict[str, Any]:
    _require_admin(staff)
    record = records.get(message_id)
    if record is None:
        raise NotFound(f"no message {message_id}", field="path.message_id")
    return records.public_view(record)


@app.get("/messages", summary="Message records for a recipient, a complaint or a recall")
def list_messages(
    staff: SignedIn,
    recipient_phone: Annotated[str | None, Query(max_length=20)] = None,
    recipient_email: Annotated[str | None, Query(max_length=254)] = None,
    complaint: Annotated[str | None, Query(max_length=64)] = None,
    touchpoint: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    if complaint:
        desk.get_for(staff, complaint)  # department scoping: 404 outside the staff's department
        return {"messages": records.for_ref("complaint", complaint, limit)}
    _require_admin(staff)
    if recipient_phone:
        try:
            phone = normalize_korean_phone(recipient_phone)
        except ValueError as error:
            raise BadRequest(
                f"query.recipient_phone: {error}", field="query.recipient_phone"
            ) from None
        return {"messages": records.for_recipient(hospital.hospital_id, phone, limit)}
    if recipient_email:
        return {"messages": records.for_recipient(hospital.hospital_id, recipient_email, limit)}
    if touchpoint:
        return {"messages": records.for_ref("touchpoint", touchpoint, limit)}
    raise BadRequest(
        "give one of recipient_phone, recipient_email, complaint or touchpoint", field="query"
    )


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)


init_phase.finished()
