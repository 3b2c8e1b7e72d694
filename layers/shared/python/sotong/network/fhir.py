"""FHIR R4 exports of the care network, as plain JSON dicts (no FHIR library in the layer; the
tests validate these with `fhir.resources`):

- a partner as a `HealthcareService`: its weekly hours as `availableTime`, the coming Korean
  public holidays it is closed on as `notAvailable`, and its holiday hours, if any, in
  `availabilityExceptions`;
- a referral as a `ServiceRequest` (what is asked, by whom, of whom, how urgently) and a `Task`
  that tracks it (`status` the loop's state, `businessStatus` scheduled, `restriction.period`
  the visit, `output` the time it was seen), in a `Bundle` of type `collection`.

The reason for the referral travels in `ServiceRequest.note` for the receiving clinician; the
guardian's contact stays out of the export (it is for the messages only).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sotong.complaints.sla import public_holidays
from sotong.config.schema import HospitalConfig
from sotong.network import hours
from sotong.network.records import HOSPITAL, Partner, Referral

SYSTEM = "urn:sotong"
PRIORITY = {"emergent": "stat", "urgent": "urgent", "routine": "routine"}
_FHIR_DAYS = {
    "MO": "mon",
    "TU": "tue",
    "WE": "wed",
    "TH": "thu",
    "FR": "fri",
    "SA": "sat",
    "SU": "sun",
}
KIND_CODES = {
    "clinic": "Paediatric clinic",
    "pharmacy": "Pharmacy",
    "hospital": "Children's hospital",
}


def _time(text: str) -> str:
    return "23:59:59" if text == "24:00" else f"{text}:00"


def healthcare_service(
    partner: Partner, hospital: HospitalConfig, today: date, days: int = 366
) -> dict[str, Any]:
    """A partner as a FHIR R4 `HealthcareService`, with the public holidays of the coming
    `days` from `today`."""
    available = []
    for schedule in partner.schedules:
        if schedule.applies_to == "public_holiday":
            continue
        entry: dict[str, Any] = {"daysOfWeek": [_FHIR_DAYS[d] for d in schedule.days]}
        if schedule.opens_at == "00:00" and schedule.closes_at == "24:00":
            entry["allDay"] = True
        else:
            entry["availableStartTime"] = _time(schedule.opens_at)
            overnight = schedule.closes_at <= schedule.opens_at and schedule.closes_at != "24:00"
            # FHIR's availableTime cannot cross midnight: the span runs to the day's end here,
            # and its early-morning rest is said in availabilityExceptions
            entry["availableEndTime"] = "23:59:59" if overnight else _time(schedule.closes_at)
        available.append(entry)
    holiday_hours = [s for s in partner.schedules if s.applies_to == "public_holiday"]
    not_available = []
    end = today + timedelta(days=days)
    holidays: list[date] = sorted(
        d
        for year in range(today.year, end.year + 1)
        for d in public_holidays("KR", year)
        if today <= d < end
    )
    if not holiday_hours:
        for day in holidays:
            not_available.append(
                {
                    "description": f"{hours.holiday_name(day) or '공휴일'} 휴진",
                    "during": {"start": day.isoformat(), "end": day.isoformat()},
                }
            )
    exceptions = []
    for schedule in partner.schedules:
        if schedule.closes_at <= schedule.opens_at and schedule.closes_at not in ("24:00",):
            span = f"{schedule.opens_at}-다음날 {schedule.closes_at}"
            exceptions.append(f"{schedule.description or ''} {span}".strip())
    if holiday_hours:
        spans = ", ".join(f"{s.opens_at}-{s.closes_at}" for s in holiday_hours)
        exceptions.append(f"공휴일(설날·추석 포함) 진료: {spans}")
    else:
        exceptions.append("공휴일(설날·추석 포함) 휴진")
    service: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "id": partner.id,
        "identifier": [{"system": f"{SYSTEM}:partner", "value": partner.id}],
        "active": True,
        "providedBy": {"display": partner.name},
        "type": [{"text": KIND_CODES.get(partner.kind, partner.kind)}],
        "specialty": [{"text": term} for _, term in partner.treats] or None,
        "name": partner.name,
        "comment": partner.description or None,
        "telecom": [{"system": "phone", "value": partner.phone, "use": "work"}],
        "availableTime": available or None,
        "notAvailable": not_available or None,
        "availabilityExceptions": "; ".join(exceptions),
    }
    if partner.address:
        service["extraDetails"] = partner.address
    return {k: v for k, v in service.items() if v is not None}


def _party(side: str, hospital: HospitalConfig, partner: Partner | None) -> dict[str, Any]:
    if side == HOSPITAL:
        return {
            "display": hospital.name,
            "identifier": {"system": f"{SYSTEM}:hospital", "value": hospital.hospital_id},
        }
    return {
        "reference": f"HealthcareService/{side}",
        "display": partner.name if partner else side,
    }


def service_request(
    referral: Referral, hospital: HospitalConfig, partner: Partner | None
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": referral.id,
        "identifier": [{"system": f"{SYSTEM}:referral", "value": referral.id}],
        "status": {
            "requested": "active",
            "accepted": "active",
            "in-progress": "active",
            "completed": "completed",
            "rejected": "revoked",
            "cancelled": "revoked",
        }[referral.status],
        "intent": "order",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "3457005",
                        "display": "Patient referral",
                    }
                ]
            }
        ],
        "priority": PRIORITY[referral.urgency],
        "code": {"text": "소아 진료 의뢰 (paediatric referral)"},
        "subject": {"display": referral.child_name},
        "authoredOn": referral.requested_at,
        "requester": _party(referral.requester, hospital, partner),
        "performer": [_party(referral.receiver, hospital, partner)],
        "reasonCode": [{"text": referral.reason}],
    }
    if referral.scheduled_for:
        request["occurrenceDateTime"] = referral.scheduled_for
    return request


def task(referral: Referral, hospital: HospitalConfig, partner: Partner | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Task",
        "id": f"{referral.id}-task",
        "identifier": [{"system": f"{SYSTEM}:referral-task", "value": referral.id}],
        "basedOn": [{"reference": f"ServiceRequest/{referral.id}"}],
        "status": referral.status,
        "intent": "order",
        "priority": PRIORITY[referral.urgency],
        "code": {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/CodeSystem/task-code",
                    "code": "fulfill",
                    "display": "Fulfill the focal request",
                }
            ]
        },
        "focus": {"reference": f"ServiceRequest/{referral.id}"},
        "for": {"display": referral.child_name},
        "authoredOn": referral.requested_at,
        "lastModified": referral.history[-1].at if referral.history else referral.requested_at,
        "requester": _party(referral.requester, hospital, partner),
        "owner": _party(referral.receiver, hospital, partner),
        "note": [
            {
                "time": step.at,
                "text": f"{step.status} ({step.side}, {step.by})"
                + (f": {step.note}" if step.note else ""),
            }
            for step in referral.history
        ],
    }
    if referral.scheduled_for:
        body["businessStatus"] = {"text": "scheduled"}
        body["restriction"] = {"period": {"start": referral.scheduled_for}}
    if referral.status_reason and referral.status in ("rejected", "cancelled"):
        body["statusReason"] = {"text": referral.status_reason}
    if referral.seen_at:
        body["output"] = [
            {"type": {"text": "seen at"}, "valueDateTime": referral.seen_at},
        ]
    return body


def referral_bundle(
    referral: Referral, hospital: HospitalConfig, partner: Partner | None
) -> dict[str, Any]:
    resources = (service_request(referral, hospital, partner), task(referral, hospital, partner))
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"urn:sotong:{r['resourceType']}/{r['id']}", "resource": r}
            for r in resources
        ],
    }


def services_bundle(
    partners: tuple[Partner, ...], hospital: HospitalConfig, today: date
) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": f"urn:sotong:HealthcareService/{p.id}",
                "resource": healthcare_service(p, hospital, today),
            }
            for p in partners
        ],
    }
