"""Programmes in open shapes, so a hospital can exchange them: a programme as a FHIR R4
`HealthcareService` (its weekly times as `availableTime`, the holidays and closures its rule
skips as `notAvailable`), a sign-up as a FHIR R4 `Appointment` (booked, waitlist, cancelled,
fulfilled, noshow), and a programme as an Open Referral HSDS 3 `service` with its `schedule`
(the RRULE's `freq`/`byday`/`interval`, the same RFC 5545 terms).

Plain dicts built here; the tests validate them with `fhir.resources` (test-time only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sotong.config.programme_schema import Programme
from sotong.config.schema import HospitalConfig
from sotong.programmes import schedule
from sotong.programmes.records import Signup

DAYS = {"MO": "mon", "TU": "tue", "WE": "wed", "TH": "thu", "FR": "fri", "SA": "sat", "SU": "sun"}
CATEGORY = "http://terminology.hl7.org/CodeSystem/service-category"
SERVICE_CATEGORY = {  # HL7 service-category: 8 Counselling, 7 Community Health Care, 10 Education
    "support_group": ("8", "Counselling"),
    "nutrition": ("7", "Community Health Care"),
    "family": ("8", "Counselling"),
    "education": ("10", "Education & Learning"),
}
STATUS = {"confirmed": "booked", "waiting": "waitlist", "cancelled": "cancelled"}
ATTENDANCE = {"attended": "fulfilled", "absent": "noshow"}


def rule_parts(programme: Programme) -> dict[str, str]:
    return dict(part.split("=", 1) for part in programme.sessions.rule.split(";"))


def _days(programme: Programme) -> list[str]:
    byday = rule_parts(programme).get("BYDAY", "")
    days = [DAYS[d.lstrip("+-0123456789")] for d in byday.split(",") if d]
    if not days:  # a rule without BYDAY meets on its first day's weekday
        days = [list(DAYS.values())[programme.sessions.first_day.weekday()]]
    return list(dict.fromkeys(days))


def _end(programme: Programme) -> str:
    start = datetime.combine(programme.sessions.first_day, programme.sessions.start)
    return (start + timedelta(minutes=programme.sessions.minutes)).strftime("%H:%M:%S")


def healthcare_service(
    hospital: HospitalConfig, programme: Programme, now: datetime, weeks: int = 26
) -> dict[str, Any]:
    zone = hospital.zone
    code, display = SERVICE_CATEGORY[programme.kind]
    eligibility = []
    if not programme.open_to.anyone:
        eligibility.append(
            {
                "code": {"text": "치료 중인 환자"},
                "comment": "대상: "
                + ", ".join([*programme.open_to.treatment_tags, *programme.open_to.departments]),
            }
        )
    skipped = schedule.not_available(programme, zone, now, now + timedelta(weeks=weeks))
    department = hospital.department(programme.department)
    return {
        "resourceType": "HealthcareService",
        "id": programme.id.replace("_", "-"),
        "active": True,
        "providedBy": {"display": hospital.name},
        "category": [{"coding": [{"system": CATEGORY, "code": code, "display": display}]}],
        "type": [{"text": programme.kind}],
        "name": programme.name,
        "comment": programme.summary,
        "location": [{"display": programme.place}],
        "telecom": [{"system": "phone", "value": hospital.sender.callback_number}],
        "eligibility": eligibility or [{"code": {"text": "누구나"}}],
        "characteristic": [{"text": f"정원 {programme.capacity}명"}],
        "availableTime": [
            {
                "daysOfWeek": _days(programme),
                "availableStartTime": programme.sessions.start.strftime("%H:%M:%S"),
                "availableEndTime": _end(programme),
            }
        ],
        "notAvailable": [
            {
                "description": why,
                "during": {
                    "start": datetime.combine(day, datetime.min.time(), tzinfo=zone).isoformat(),
                    "end": datetime.combine(day, datetime.max.time(), tzinfo=zone)
                    .replace(microsecond=0)
                    .isoformat(),
                },
            }
            for day, why in skipped
        ],
        "availabilityExceptions": "공휴일(설날·추석 등)에는 쉽니다"
        if programme.sessions.skip_public_holidays
        else "",
        "extraDetails": f"진행: {programme.facilitator}"
        + (f" ({department.name})" if department else ""),
    }


def appointment(hospital: HospitalConfig, programme: Programme, signup: Signup) -> dict[str, Any]:
    start = signup.start
    status = STATUS.get(signup.status, "proposed")
    if signup.status == "confirmed" and signup.attendance:
        status = ATTENDANCE[signup.attendance]
    actor: dict[str, Any] = (
        {"reference": f"Patient/{signup.patient_id}"}
        if signup.patient_id
        else {"display": signup.name}
    )
    return {
        "resourceType": "Appointment",
        "id": signup.id,
        "status": status,
        "serviceType": [{"text": programme.name}],
        "description": programme.name,
        "start": schedule.stamp(start),
        "end": schedule.stamp(start + timedelta(minutes=programme.sessions.minutes)),
        "created": (signup.created_at or schedule.stamp(start))[:10],
        "participant": [
            {"actor": actor, "status": "accepted" if status != "cancelled" else "declined"},
            {
                "actor": {
                    "reference": f"HealthcareService/{programme.id.replace('_', '-')}",
                    "display": programme.name,
                },
                "status": "accepted",
            },
            {"actor": {"display": programme.facilitator}, "status": "accepted"},
        ],
    }


def bundle(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": e} for e in entries],
    }


def hsds_service(hospital: HospitalConfig, programme: Programme) -> dict[str, Any]:
    """An HSDS 3 `service` with its `schedules` (RRULE fields as HSDS names them)."""
    parts = rule_parts(programme)
    rule = programme.sessions
    offset = hospital.zone.utcoffset(datetime.combine(rule.first_day, rule.start))
    schedule_entry: dict[str, Any] = {
        "id": f"{programme.id}-schedule",
        "service_id": programme.id,
        "freq": parts["FREQ"],
        "interval": int(parts.get("INTERVAL", "1")),
        "byday": parts.get("BYDAY"),
        "dtstart": rule.first_day.isoformat(),
        "timezone": (offset.total_seconds() / 3600) if offset else 0,
        "opens_at": rule.start.strftime("%H:%M"),
        "closes_at": _end(programme)[:5],
        "description": f"RRULE:{rule.rule}",
        "attending_type": "in_person",
    }
    if "UNTIL" in parts:
        schedule_entry["until"] = parts["UNTIL"]
    if "COUNT" in parts:
        schedule_entry["count"] = int(parts["COUNT"])
    return {
        "id": programme.id,
        "name": programme.name,
        "description": programme.summary,
        "status": "active",
        "eligibility_description": "누구나"
        if programme.open_to.anyone
        else "치료 중인 환자 ("
        + ", ".join([*programme.open_to.treatment_tags, *programme.open_to.departments])
        + ")",
        "schedules": [{k: v for k, v in schedule_entry.items() if v is not None}],
        "capacities": [{"maximum": programme.capacity, "unit": {"name": "명"}}],
    }
