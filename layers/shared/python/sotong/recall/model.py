"""What staff send to the recall API."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sotong.dates import AppointmentTime, TreatmentDay
from sotong.fields import ContactEmail, Line, MobilePhone, StrictBool, Text


class _Body(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", str_strip_whitespace=True)


class Consents(_Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"contact": True, "marketing": True, "night": False}]}
    )

    contact: StrictBool = Field(default=True, description="care messages (aftercare, recall)")
    marketing: StrictBool = Field(
        default=False, description="advertising, incl. next-step suggestions"
    )
    night: StrictBool = Field(default=False, description="advertising between 21:00 and 08:00")


class PatientRegistration(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "홍길동",
                    "phone": "010-1234-5678",
                    "email": "gildong@example.com",
                    "chart_no": "C-10021",
                    "consents": {"contact": True, "marketing": True, "night": False},
                }
            ]
        }
    )

    name: Line = Field(min_length=1, max_length=50, examples=["홍길동"])
    phone: MobilePhone = Field(examples=["010-1234-5678"], description="mobile, for SMS")
    email: ContactEmail | None = None
    chart_no: Line | None = Field(default=None, max_length=40, description="EMR chart number")
    consents: Consents = Field(default_factory=Consents)
    returning_after_erasure: StrictBool = Field(
        default=False,
        description="the phone, e-mail or chart number belongs to a patient erased at their "
        "request (PIPA): registering them again is a 409 naming `body.phone` unless this is "
        "`true`, which says the person came back and consented again (it lifts the erasure "
        "tombstone of these details)",
    )


class TreatmentRecord(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"tag": "implant_surgery", "date": "2026-11-25", "note": "하악 우측 제1대구치"}
            ]
        }
    )

    tag: Line = Field(min_length=1, max_length=40, examples=["implant_surgery"])
    date: TreatmentDay = Field(
        description="treatment date, 20 years back to 366 days ahead (a future date plans D-1 "
        "precautions too)"
    )
    note: Text | None = Field(default=None, max_length=500)


class TreatmentDateChange(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"date": "2026-11-27"}]})

    date: TreatmentDay


class Appointment(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"kind": "booking", "at": "2026-12-01T10:00:00+09:00", "note": "실밥 제거"}
            ]
        }
    )

    kind: Literal["booking", "visit"]
    at: AppointmentTime = Field(
        examples=["2026-12-01T10:00:00+09:00"], description="20 years back to 2 years ahead"
    )
    note: Text | None = Field(default=None, max_length=500)


class PauseChange(_Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"paused": True, "reason": "해외 체류 중 (환자 요청)"}]}
    )

    paused: StrictBool
    reason: Text | None = Field(default=None, max_length=200)


class StaffMessage(_Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"message": "네, 내일 오전 10시에 오시면 됩니다."}]}
    )

    message: Text = Field(min_length=1, max_length=1000)
    confirm_health_terms: StrictBool = Field(
        default=False, description="send even though the message names a diagnosis or treatment"
    )


class RepliesSettled(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"outcome": "converted"}]})

    outcome: Literal["handled", "converted"] = Field(
        description="`handled`: nothing to answer; `converted`: the reply led to a booking (the "
        "latest recall sent to the patient is marked converted)"
    )


def patient_id(hospital_id: str, chart_no: str | None, phone: str) -> str:
    """The same chart number (or, without one, the same phone) is the same patient. A keyed
    digest (`sotong.keys`): the id is in URLs and logs, and chart numbers or 010 numbers are too
    few guesses to hide behind a plain hash."""
    from sotong import keys

    basis = f"chart:{chart_no}" if chart_no else f"phone:{phone}"
    return "p" + keys.digest("patient", f"{hospital_id}\x00{basis}", 20)


def treatment_id(patient: str, tag: str, day: date) -> str:
    """Recording the same treatment twice (or importing a file again) creates nothing new."""
    return (
        "t" + hashlib.sha256(f"{patient}\x00{tag}\x00{day.isoformat()}".encode()).hexdigest()[:16]
    )


def minute(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M")
