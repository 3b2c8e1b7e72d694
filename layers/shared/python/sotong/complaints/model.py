"""Complaints: what arrives, the lifecycle it follows, and what staff may do to it."""

from __future__ import annotations

import re
import secrets
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from sotong.config.schema import Phone
from sotong.dates import VisitDay
from sotong.fields import ContactEmail, Line, MobilePhone, StrictBool, StrictInt, Text

Kind = Literal["complaint", "suggestion", "compliment"]
UrgencyLevel = Literal["critical", "high", "normal"]
IntakeChannel = Literal["web", "app", "phone", "walk_in", "sms", "kakao"]
Status = Literal[
    "received", "acknowledged", "assigned", "in_progress", "awaiting_patient", "resolved", "closed"
]
State = Literal["open", "resolved", "closed"]

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "received": ("acknowledged", "assigned", "in_progress", "awaiting_patient", "resolved"),
    "acknowledged": ("assigned", "in_progress", "awaiting_patient", "resolved"),
    "assigned": ("in_progress", "awaiting_patient", "resolved"),
    "in_progress": ("awaiting_patient", "resolved"),
    # waiting for the patient's answer: the SLA clocks pause until it comes (SMS/KakaoTalk) or
    # staff go on (in_progress, a reply that asks nothing, resolve)
    "awaiting_patient": ("in_progress", "resolved"),
    "resolved": ("closed", "in_progress"),
    "closed": ("in_progress",),
}
OPEN_STATUSES = ("received", "acknowledged", "assigned", "in_progress", "awaiting_patient")
_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def state_of(status: str) -> State:
    if status == "resolved":
        return "resolved"
    if status == "closed":
        return "closed"
    return "open"


def new_tracking_code() -> str:
    """8 characters without look-alikes (no 0/O, 1/I): 40 random bits, shown as `ABCD-2345`."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


_CODE_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212\uff0d]")


def normalize_code(code: str) -> str:
    """A tracking code as people type it, in the one form it is stored and limited by:
    upper case, without spaces and dashes (any kind), `ABCD-2345` when 8 characters long.
    Every use goes through it (the lookup, the per-code limit, the survey), so one code has one
    spelling: `abcd 2345`, `ABCD–2345` and `AB CD-23 45` are the same code."""
    compact = _CODE_SEPARATORS.sub("", code)
    # ASCII only: "ß".upper() is "SS", "ﬀ".upper() "FF" — other spellings of a code
    compact = "".join(c.upper() if c.isascii() else c for c in compact)
    return f"{compact[:4]}-{compact[4:]}" if len(compact) == 8 else compact


def tracking_code(raw: str) -> str:
    """`normalize_code`, or ValueError when the result cannot be a code: 8 characters of the
    code alphabet (digits 2-9 and capital letters without I and O)."""
    code = normalize_code(raw)
    compact = code.replace("-", "")
    if len(compact) != 8 or any(c not in _CODE_ALPHABET for c in compact):
        raise ValueError(
            "a tracking code is 8 characters, digits 2-9 and letters A-Z without I and O "
            "(e.g. ABCD-2345)"
        )
    return code


class PatientContact(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", str_strip_whitespace=True)

    name: Line | None = Field(default=None, max_length=50, examples=["홍길동"])
    phone: MobilePhone | None = Field(
        default=None, examples=["010-1234-5678"], description="mobile, for SMS"
    )
    email: ContactEmail | None = Field(
        default=None, max_length=254, examples=["patient@example.com"]
    )


class SenderContact(PatientContact):
    """The contact of a complaint a text message started: the number it came from, whatever
    kind (it reached us, so it is where to answer)."""

    phone: Phone | None = None


class ComplaintSubmission(BaseModel):
    """What the web form and the mobile apps send to `POST /complaints`."""

    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "text": "접수 대기시간이 1시간이 넘었는데 아무 안내가 없었습니다.",
                    "contact": {"name": "홍길동", "phone": "010-1234-5678"},
                    "consent_to_contact": True,
                    "department": "front_desk",
                    "visit_date": "2026-11-20",
                    "channel": "web",
                }
            ]
        },
    )

    kind: Kind | None = Field(default=None, description="left out: the classifier decides")
    text: Text = Field(min_length=5, max_length=4000, examples=["대기시간이 너무 길었습니다."])
    category_hint: Line | None = Field(default=None, max_length=40, examples=["wait_time"])
    contact: PatientContact = Field(default_factory=PatientContact)
    consent_to_contact: StrictBool = Field(
        description="may the hospital contact the patient about it"
    )
    department: Line | None = Field(default=None, max_length=40, examples=["dental"])
    visit_date: VisitDay | None = Field(
        default=None, examples=["2026-11-20"], description="10 years back to today"
    )
    channel: Literal["web", "app"] = "web"

    @field_validator("consent_to_contact")
    @classmethod
    def _contact_when_consented(cls, consent: bool, info: ValidationInfo) -> bool:
        contact = info.data.get("contact")
        if consent and contact is not None and not (contact.phone or contact.email):
            raise ValueError(
                "give a phone (contact.phone) or an e-mail (contact.email) to be contacted"
            )
        return consent


MAX_INBOUND_TEXT = 20_000
"""What a complaint's `text` holds of the SMS/KakaoTalk message that started it (real ones are
at most 2,000 bytes); a longer message is still stored whole, beside the complaint."""


class InboundSubmission(ComplaintSubmission):
    """A complaint an SMS/KakaoTalk message starts: never refused for the length of its text."""

    text: Text = Field(min_length=1, max_length=MAX_INBOUND_TEXT)
    contact: SenderContact = Field(default_factory=SenderContact)


class StaffEntry(ComplaintSubmission):
    """A complaint staff type in from a phone call or at the desk."""

    model_config = ConfigDict(
        defer_build=True,
        json_schema_extra={
            "examples": [
                {
                    "kind": "complaint",
                    "text": "전화 문의: 주차장 안내가 부족해서 30분을 헤맸다고 하십니다.",
                    "contact": {"name": "김민지", "phone": "010-2345-6789"},
                    "consent_to_contact": True,
                    "department": "facilities",
                    "channel": "phone",
                }
            ]
        },
    )

    channel: Literal["phone", "walk_in"] = "phone"  # type: ignore[assignment]


class Transition(BaseModel):
    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"status": "in_progress", "note": "시설팀에 확인 요청"}]},
    )

    status: Status
    note: Text | None = Field(default=None, max_length=2000)


class Assignment(BaseModel):
    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"assignee": "kim.minji", "department": "front_desk", "note": "접수 창구 건"}
            ]
        },
    )

    assignee: Line | None = Field(default=None, max_length=100, examples=["kim.minji"])
    department: Line | None = Field(default=None, max_length=40, examples=["front_desk"])
    note: Text | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _something(self) -> Assignment:
        if not (self.assignee or self.department):
            raise ValueError("give an assignee, a department or both")
        return self


class Correction(BaseModel):
    """Staff correcting the classifier: the guess stays on record beside the correction."""

    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        json_schema_extra={
            "examples": [{"kind": "complaint", "category": "wait_time", "urgency": "high"}]
        },
    )

    kind: Kind | None = None
    category: Line | None = Field(default=None, max_length=40)
    urgency: UrgencyLevel | None = None
    note: Text | None = Field(default=None, max_length=2000)


class Reply(BaseModel):
    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "message": "담당 부서에서 확인 중입니다. 조금만 기다려 주세요.",
                    "notify_patient": True,
                }
            ]
        },
    )

    message: Text = Field(min_length=1, max_length=1000)
    notify_patient: StrictBool = True
    confirm_health_terms: StrictBool = Field(
        default=False, description="send even though the message names a diagnosis or treatment"
    )
    awaiting_patient: StrictBool = Field(
        default=False,
        description="the message asks the patient something: the complaint waits for the "
        "patient (status awaiting_patient) and its SLA clocks pause until the patient answers "
        "by SMS/KakaoTalk or staff go on",
    )


class Resolution(BaseModel):
    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "outcome": "접수 창구에 대기 안내 화면을 설치했습니다.",
                    "note": "시설팀 처리",
                    "notify_patient": True,
                }
            ]
        },
    )

    outcome: Text = Field(min_length=1, max_length=1000, description="what the patient is told")
    note: Text | None = Field(default=None, max_length=2000, description="internal note")
    notify_patient: StrictBool = True
    confirm_health_terms: StrictBool = Field(
        default=False, description="send even though the outcome names a diagnosis or treatment"
    )


class Note(BaseModel):
    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"note": "환자분과 통화로 확인함"}]},
    )

    note: Text | None = Field(default=None, max_length=2000)


class SurveyAnswer(BaseModel):
    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "code": "ABCD-2345",
                    "token": "q8Zr2sXk9mPa",
                    "score": 5,
                    "comment": "빠르게 답해 주셔서 감사합니다.",
                }
            ]
        },
    )

    code: Line = Field(min_length=8, max_length=12, examples=["ABCD-2345"])
    token: Line = Field(min_length=10, max_length=64)
    score: StrictInt = Field(ge=1, le=5)
    comment: Text | None = Field(default=None, max_length=1000)
