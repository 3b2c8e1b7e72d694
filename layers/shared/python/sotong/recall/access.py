"""Which patients, treatments and touchpoints a staff member may see and change (docs/roles.md).

A patient belongs to the departments of the treatments recorded for them. Department staff see
and change only patients of their department, and only their department's treatments and
touchpoints; reception registers and books every patient but sees no clinical record; the CS
admin sees everything. A patient outside the caller's reach is answered as not found, so a
patient id tells nobody whether the person is a patient of the hospital."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sotong import consent
from sotong.errors import Forbidden, NotFound
from sotong.notify.model import recipient_key
from sotong.recall.model import PatientRegistration, patient_id
from sotong.recall.service import RecallDesk, Triage
from sotong.staff import Staff

CONTACT_FIELDS = (
    "id",
    "name",
    "phone",
    "email",
    "chart_no",
    "consents",
    "paused",
    "pause_reason",
    "next_booking_at",
    "last_visit_at",
    "created_at",
    "updated_at",
)
"""What reception sees of a patient: who they are, how to reach them, their bookings."""


@dataclass(frozen=True)
class PatientAccess:
    """Which patients, treatments and touchpoints of the recall desk a staff member may reach."""

    desk: RecallDesk

    def departments(self, patient: dict[str, Any]) -> set[str]:
        hospital = self.desk.hospital
        tags = (hospital.treatment_tag(t) for t in patient.get("last_treatment") or {})
        return {tag.department for tag in tags if tag is not None}

    def _own_tag(self, staff: Staff, tag_id: str) -> bool:
        tag = self.desk.hospital.treatment_tag(tag_id)
        return staff.role == "cs_admin" or (
            tag is not None and staff.sees_department(tag.department)
        )

    def patient(self, staff: Staff, pid: str) -> dict[str, Any]:
        """The patient, if the staff member may reach them (reception may reach every one)."""
        patient = self.desk.patient(pid)
        if staff.role in ("cs_admin", "reception"):
            return patient
        if staff.role == "department_staff" and staff.department in self.departments(patient):
            return patient
        raise NotFound(f"no patient {pid} in your department", field="path.patient_id")

    def view(self, staff: Staff, pid: str) -> dict[str, Any]:
        """The patient as the staff member may see them, with the upcoming touchpoints they may
        see (reception: contact, consents and bookings only)."""
        patient = self.patient(staff, pid)
        patient = {
            **patient,
            "consent_history": consent.history(self.desk.hospital.hospital_id, patient["phone"]),
        }
        if not staff.clinical:
            return {k: patient[k] for k in (*CONTACT_FIELDS, "consent_history") if k in patient}
        if staff.role != "cs_admin":
            patient = {
                **patient,
                "last_treatment": {
                    t: day
                    for t, day in (patient.get("last_treatment") or {}).items()
                    if self._own_tag(staff, t)
                },
            }
        upcoming = [t for t in self.desk.upcoming(pid) if self._own_tag(staff, t["tag"])]
        return {**patient, "upcoming": upcoming}

    def touchpoints(self, staff: Staff, pid: str) -> list[dict[str, Any]]:
        self.patient(staff, pid)
        return [t for t in self.desk.touchpoints(pid) if self._own_tag(staff, t["tag"])]

    def treatment(self, staff: Staff, pid: str, tid: str) -> None:
        """May change this treatment: it is of the staff member's department."""
        self.patient(staff, pid)
        treatment = self.desk.patients.treatment(pid, tid)
        if treatment is None or not self._own_tag(staff, treatment.tag):
            raise NotFound(f"no treatment {tid} in your department", field="path.treatment_id")

    def touchpoint(self, staff: Staff, pid: str, touchpoint_id: str) -> None:
        tid, _, step = touchpoint_id.partition(".")
        self.patient(staff, pid)
        found = next((t for t in self.desk.touchpoints(pid, tid) if t["step"] == step), None)
        if found is None or not self._own_tag(staff, found["tag"]):
            raise NotFound(
                f"no touchpoint {touchpoint_id} in your department", field="path.touchpoint_id"
            )

    def waiting(self, staff: Staff, triage: Triage) -> dict[str, Any]:
        """The replies waiting for an answer that the staff member may answer: the CS admin
        every department's, department staff their department's (with only their
        department's touchpoints)."""
        if staff.role != "cs_admin" and not staff.department:
            raise NotFound("no department to show replies of", field="department")
        answer = self.desk.waiting(None if staff.role == "cs_admin" else staff.department, triage)
        if staff.role != "cs_admin":
            for item in answer["replies"]:
                item["recent_touchpoints"] = [
                    t for t in item["recent_touchpoints"] if self._own_tag(staff, t["tag"])
                ]
        return answer

    def settle(self, staff: Staff, pid: str, outcome: str) -> dict[str, Any]:
        self.patient(staff, pid)
        return self.desk.settle(pid, outcome, staff.username)

    def find(self, staff: Staff, chart_no: str | None, phone: str | None) -> list[dict[str, Any]]:
        """Patients by chart number (their id is derived from it) or by phone (the phone index),
        as the staff member may see them; one they may not reach is not found. Never a Scan."""
        hospital_id = self.desk.hospital.hospital_id
        ids: list[str] = []
        if chart_no:
            ids.append(patient_id(hospital_id, chart_no, ""))
        if phone:
            found = self.desk.patients.patient_by_phone(recipient_key(hospital_id, phone))
            if found is not None and found.id not in ids:
                ids.append(found.id)
        views = []
        for pid in ids:
            try:
                views.append(self.view(staff, pid))
            except NotFound:
                continue
        return views

    def registration(self, staff: Staff, registration: PatientRegistration) -> None:
        """Registering someone new is open to every registrar; changing a registered patient's
        contact and consents is for reception, the CS admin and the patient's department."""
        if staff.role != "department_staff":
            return
        pid = patient_id(self.desk.hospital.hospital_id, registration.chart_no, registration.phone)
        existing = self.desk.patients.patient(pid)
        if existing is not None and staff.department not in self.departments(existing.to_item()):
            raise Forbidden(
                "body.chart_no: this patient is registered with another department; reception "
                "or the CS admin changes their contact and consents",
                field="body.chart_no" if registration.chart_no else "body.phone",
            )
