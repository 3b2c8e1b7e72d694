"""What staff and agencies send to the care-plan API (validated at the edge)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sotong.careplans.records import TaskStatus
from sotong.fields import Line, MobilePhone, StrictBool, Text

MAX_CASES_PER_CONFERENCE = 20
MAX_ACTIVITIES_PER_CASE = 20
"""activities one conference may give one case (one transaction per case)"""


class _Body(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", str_strip_whitespace=True)


class CaseContact(_Body):
    name: Line = Field(min_length=1, max_length=50)
    phone: MobilePhone
    relation: Line = Field(
        default="self",
        min_length=1,
        max_length=20,
        description="`self`, or the guardian's relation (아들, 딸, 배우자 ...)",
    )


class CaseOpening(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "김OO",
                    "department": "dental",
                    "summary": "홀몸 어르신, 주 3회 외래 치료 후 어지럼증, 기억력 저하",
                    "contact": {"name": "김OO", "phone": "010-3100-2001", "relation": "self"},
                    "consent_to_contact": True,
                }
            ]
        }
    )

    name: Line = Field(min_length=1, max_length=50, description="the person's name")
    department: Line = Field(min_length=1, max_length=40, description="coordinating department")
    summary: Text = Field(
        default="", max_length=2000, description="needs, for staff and agencies only"
    )
    contact: CaseContact | None = Field(default=None, description="who receives notices")
    consent_to_contact: StrictBool = Field(
        default=False, description="the person (or guardian) agreed to be sent notices"
    )


class ActivityPlan(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"agency": "gangnam-care-sos", "title": "병원 이동·동행 지원", "due": "2026-12-15"}
            ]
        }
    )

    agency: str = Field(pattern=r"^[a-z][a-z0-9-]{1,39}$", description="agency id (config)")
    title: Line = Field(min_length=1, max_length=120, description="the service, as agencies see")
    due: date = Field(description="ISO date it is due by")
    confirm_health_terms: StrictBool = Field(
        default=False,
        description="send a title naming a health term anyway (it is in the agency's message)",
    )


class ActivityChange(_Body):
    status: TaskStatus = Field(description="the FHIR Task status it moves to")
    note: Text | None = Field(default=None, max_length=1000)


class DecisionRecord(_Body):
    text: Text = Field(min_length=1, max_length=1000, description="what was decided")
    activities: list[ActivityPlan] = Field(default_factory=list, max_length=10)


class CaseDiscussed(_Body):
    case_id: str = Field(pattern=r"^c[0-9a-f]{16}$")
    decisions: list[DecisionRecord] = Field(min_length=1, max_length=10)


class ConferenceRecord(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "title": "2026년 제1차 의료·돌봄 통합지원회의",
                    "held_on": "2026-12-01",
                    "place": "구청 3층 대회의실",
                    "agencies_present": ["gangnam-health", "gangnam-welfare"],
                    "cases": [
                        {
                            "case_id": "c0123456789abcdef",
                            "decisions": [
                                {
                                    "text": "복지관 식사배달 서비스 제공",
                                    "activities": [
                                        {
                                            "agency": "gangnam-welfare",
                                            "title": "식사배달",
                                            "due": "2026-12-08",
                                        }
                                    ],
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )

    title: Line = Field(min_length=1, max_length=120)
    held_on: date
    place: Line | None = Field(default=None, max_length=120)
    agencies_present: list[str] = Field(default_factory=list, max_length=30)
    cases: list[CaseDiscussed] = Field(min_length=1, max_length=MAX_CASES_PER_CONFERENCE)


class ReviewDone(_Body):
    note: Text | None = Field(default=None, max_length=1000)


Outcome = Literal["created", "existing"]
