"""A case as FHIR R4 JSON: a `Bundle` (collection) of the person (`Patient`, the name only), the
agencies and the hospital (`Organization`), the `CareTeam`, the `CarePlan` and one `Task` per
activity (its status the activity's, its owner the agency, due by `restriction.period.end`).
The conferences' decisions and the follow-up reviews are the CarePlan's `note`s.

Plain dicts: the layer carries no FHIR library; the tests validate the export with
`fhir.resources` (R4B).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sotong import clock
from sotong.careplans.records import Activity, Conference
from sotong.careplans.repository import CaseFile
from sotong.config.schema import HospitalConfig

KIND_NAMES = {
    "care_sos": "돌봄SOS",
    "health_centre": "보건소",
    "welfare_centre": "복지관",
    "dementia_centre": "치매안심센터",
    "housing": "주거상담소",
    "district": "구청",
    "other": "기타",
}


def _task(activity: Activity, case_id: str) -> dict[str, Any]:
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": activity.id,
        "status": activity.status,
        "intent": "plan",
        "description": activity.title,
        "for": {"reference": f"Patient/{case_id}"},
        "owner": {"reference": f"Organization/{activity.agency}"},
        "basedOn": [{"reference": f"CarePlan/{case_id}"}],
        "authoredOn": activity.created_at,
        "lastModified": activity.updated_at or activity.created_at,
        "restriction": {"period": {"end": activity.due}},
    }
    if activity.note:
        task["note"] = [{"text": activity.note}]
    return task


def bundle(
    hospital: HospitalConfig, file: CaseFile, conferences: Mapping[str, Conference]
) -> dict[str, Any]:
    case = file.case
    subject = {"reference": f"Patient/{case.id}", "display": case.name}
    agency_ids = list(
        dict.fromkeys(
            [a.agency for a in file.activities]
            + [i for c in conferences.values() for i in c.agencies_present]
        )
    )
    organisations: list[dict[str, Any]] = [
        {"resourceType": "Organization", "id": hospital.hospital_id, "name": hospital.name}
    ]
    participants: list[dict[str, Any]] = []
    for agency_id in agency_ids:
        agency = hospital.care_agency(agency_id)
        if agency is None:
            continue
        telecom = []
        if agency.contact.phone:
            telecom.append({"system": "phone", "value": agency.contact.phone})
        if agency.contact.email:
            telecom.append({"system": "email", "value": agency.contact.email})
        organisations.append(
            {
                "resourceType": "Organization",
                "id": agency.id,
                "name": agency.name,
                "type": [{"text": KIND_NAMES.get(agency.kind, agency.kind)}],
                **({"telecom": telecom} if telecom else {}),
            }
        )
        participants.append(
            {
                "role": [{"text": KIND_NAMES.get(agency.kind, agency.kind)}],
                "member": {"reference": f"Organization/{agency.id}", "display": agency.name},
            }
        )
    team: dict[str, Any] = {
        "resourceType": "CareTeam",
        "id": f"{case.id}-team",
        "status": "active" if case.is_open else "inactive",
        "name": f"{case.name} 통합지원",
        "subject": subject,
        "managingOrganization": [{"reference": f"Organization/{hospital.hospital_id}"}],
    }
    if participants:
        team["participant"] = participants
    notes = []
    for discussion in file.discussions:
        conference = conferences.get(discussion.conference_id)
        title = conference.title if conference else discussion.title
        for decision in discussion.decisions:
            notes.append(
                {
                    "time": discussion.created_at or discussion.held_on,
                    "text": f"{discussion.held_on} {title}: {decision.get('text', '')}",
                }
            )
    for review in file.reviews:
        notes.append(
            {
                "time": review.created_at or review.due_at,
                "text": f"{review.months}개월 점검 {review.due_at[:10]} ({review.status})",
            }
        )
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": case.id,
        "status": "active" if case.is_open else "completed",
        "intent": "plan",
        "title": f"{case.name} 통합지원계획",
        "subject": subject,
        "created": case.created_at,
        "author": {"reference": f"Organization/{hospital.hospital_id}"},
        "careTeam": [{"reference": f"CareTeam/{case.id}-team"}],
    }
    if file.activities:
        plan["activity"] = [{"reference": {"reference": f"Task/{a.id}"}} for a in file.activities]
    if notes:
        plan["note"] = notes
    patient = {"resourceType": "Patient", "id": case.id, "name": [{"text": case.name}]}
    resources = [patient, *organisations, team, plan, *(_task(a, case.id) for a in file.activities)]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": clock.iso(clock.now()),
        "entry": [{"resource": r} for r in resources],
    }
