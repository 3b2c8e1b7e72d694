"""Staff HTTP API for recall: patients, treatments and their planned touchpoints, bookings and
visits, pauses, erasure, and the conversation with a patient beside the tag's manual."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong.api import Staff, create_resolver, current_staff, resolve
from sotong.config import load_hospital
from sotong.errors import Forbidden
from sotong.notify.enqueue import enqueue
from sotong.observability import get_logger, get_metrics
from sotong.recall.model import (
    Appointment,
    PatientRegistration,
    PauseChange,
    StaffMessage,
    TreatmentDateChange,
    TreatmentRecord,
)
from sotong.recall.service import RecallDesk

logger = get_logger("recall_api")
metrics = get_metrics("recall_api")
app = create_resolver("Sotong recall API", "Treatment tags, planned follow-ups and replies")
hospital = load_hospital()
desk = RecallDesk(hospital, enqueue)
PatientId = Annotated[str, Path(pattern=r"^p[0-9a-f]{20}$", description="patient id")]
TreatmentId = Annotated[str, Path(pattern=r"^t[0-9a-f]{16}$", description="treatment id")]
TouchpointId = Annotated[str, Path(pattern=r"^t[0-9a-f]{16}\.[a-z][a-z0-9_]{0,39}$")]


def _may_treat(staff: Staff, tag_id: str) -> None:
    tag = desk.tag(tag_id)
    if not staff.sees_department(tag.department):
        raise Forbidden(f"'{tag_id}' belongs to department '{tag.department}', not yours")


@app.post("/patients", summary="Register a patient (or update their contact and consents)")
def register(registration: PatientRegistration) -> Response[dict[str, Any]]:
    current_staff(app)
    return Response(201, "application/json", desk.register(registration))


@app.get("/patients/<patient_id>", summary="A patient with their upcoming touchpoints")
def get_patient(patient_id: PatientId) -> dict[str, Any]:
    current_staff(app)
    return {**desk.patient(patient_id), "upcoming": desk.upcoming(patient_id)}


@app.post("/patients/<patient_id>/treatments", summary="Record a treatment: plans its follow-ups")
def record_treatment(patient_id: PatientId, record: TreatmentRecord) -> Response[dict[str, Any]]:
    staff = current_staff(app)
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
    patient_id: PatientId, treatment_id: TreatmentId, change: TreatmentDateChange
) -> dict[str, Any]:
    staff = current_staff(app)
    return desk.change_treatment_date(patient_id, treatment_id, change.date, staff.username)


@app.post("/patients/<patient_id>/appointments", summary="Record a booking or a visit")
def record_appointment(patient_id: PatientId, appointment: Appointment) -> dict[str, Any]:
    staff = current_staff(app)
    return desk.record_appointment(patient_id, appointment, staff.username)


@app.get("/patients/<patient_id>/touchpoints", summary="Every touchpoint, planned or done")
def touchpoints(patient_id: PatientId) -> dict[str, Any]:
    current_staff(app)
    desk.patient(patient_id)
    return {"touchpoints": desk.touchpoints(patient_id)}


@app.post(
    "/patients/<patient_id>/touchpoints/<touchpoint_id>/cancel", summary="Cancel one touchpoint"
)
def cancel(patient_id: PatientId, touchpoint_id: TouchpointId) -> dict[str, Any]:
    staff = current_staff(app)
    return desk.cancel_touchpoint(patient_id, touchpoint_id, staff.username)


@app.post("/patients/<patient_id>/pause", summary="Pause (or resume) a patient's follow-ups")
def pause(patient_id: PatientId, change: PauseChange) -> dict[str, Any]:
    current_staff(app)
    return desk.pause(patient_id, change.paused, change.reason)


@app.delete("/patients/<patient_id>", summary="Erase a patient (PIPA request): counts remain")
def erase(patient_id: PatientId) -> dict[str, Any]:
    staff = current_staff(app)
    if staff.role != "cs_admin":
        raise Forbidden("only the customer-service admin (cs_admin) may erase a patient")
    return {"erased": patient_id, "kept_counts": desk.erase(patient_id)}


@app.get("/patients/<patient_id>/conversation", summary="Replies beside the tag's manual")
def conversation(patient_id: PatientId) -> dict[str, Any]:
    current_staff(app)
    return desk.conversation(patient_id)


@app.post("/patients/<patient_id>/conversation", summary="Answer the patient")
def answer(patient_id: PatientId, message: StaffMessage) -> dict[str, Any]:
    staff = current_staff(app)
    return desk.answer(patient_id, message.message, staff.username)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
