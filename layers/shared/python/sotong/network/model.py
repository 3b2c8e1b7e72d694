"""What clients send the network API, validated at the edge (pydantic): every refusal names the
field (`body.urgency`, `query.at`)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from sotong.config.network import ReferralUrgency
from sotong.fields import Line, MobilePhone, StrictBool, Text
from sotong.network.service import NewReferral

Target = Literal["accepted", "in-progress", "completed", "rejected", "cancelled"]


class Child(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    name: Line = Field(min_length=1, max_length=50, description="the child's name")
    birth_date: date | None = Field(default=None, description="YYYY-MM-DD")

    @field_validator("birth_date")
    @classmethod
    def _a_child(cls, value: date | None) -> date | None:
        if value is not None and not (date(1990, 1, 1) <= value <= date(2100, 1, 1)):
            raise ValueError("not a plausible birth date")
        return value


class Guardian(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    name: Line = Field(min_length=1, max_length=50)
    phone: MobilePhone = Field(description="mobile, e.g. 010-1234-5678: told of every step")
    consent_to_contact: StrictBool = Field(
        description="the guardian agreed to be told by AlimTalk/SMS (without it: no message)"
    )


class ReferralIn(BaseModel):
    """A referral: a partner refers to the hospital (its own organisation is the partner), or
    the hospital refers to a partner (`partner_id`)."""

    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "urgency": "urgent",
                    "reason": "발열 이틀째, 수분 섭취 저하",
                    "child": {"name": "김하준", "birth_date": "2022-05-01"},
                    "guardian": {
                        "name": "박지은",
                        "phone": "010-2345-6789",
                        "consent_to_contact": True,
                    },
                }
            ]
        },
    )

    partner_id: Line | None = Field(
        default=None, max_length=40, description="the receiving partner (hospital staff only)"
    )
    urgency: ReferralUrgency
    reason: Text = Field(
        min_length=1,
        max_length=2000,
        description="for the receiving clinician; never sent to the guardian",
    )
    child: Child
    guardian: Guardian
    department: Line | None = Field(default=None, max_length=40)

    def new(self) -> NewReferral:
        return NewReferral(
            partner_id=self.partner_id,
            urgency=self.urgency,
            reason=self.reason,
            child_name=self.child.name,
            child_birth_date=self.child.birth_date.isoformat() if self.child.birth_date else None,
            guardian_name=self.guardian.name,
            guardian_phone=self.guardian.phone,
            guardian_consent=self.guardian.consent_to_contact,
            department=self.department,
        )


class StatusChange(BaseModel):
    """A step of the loop, as a FHIR Task status: the receiving side accepts (again with
    `scheduled_for`: schedules the visit), starts (`in-progress`: the child is seen), completes
    or declines (`rejected`, with a `note`); the requesting side cancels."""

    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [{"status": "accepted", "scheduled_for": "2027-02-07T21:30:00+09:00"}]
        },
    )

    status: Target
    scheduled_for: AwareDatetime | None = Field(
        default=None, description="the visit, with its offset: 2027-02-07T21:30:00+09:00"
    )
    note: Text | None = Field(default=None, max_length=1000)
