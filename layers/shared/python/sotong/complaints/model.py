"""Complaints: what arrives, the lifecycle it follows, and what staff may do to it."""

from __future__ import annotations

import secrets
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from sotong.config.schema import Email, Phone

Kind = Literal["complaint", "suggestion", "compliment"]
UrgencyLevel = Literal["critical", "high", "normal"]
IntakeChannel = Literal["web", "app", "phone", "walk_in", "sms", "kakao"]
Status = Literal["received", "acknowledged", "assigned", "in_progress", "resolved", "closed"]
State = Literal["open", "resolved", "closed"]

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "received": ("acknowledged", "assigned", "in_progress", "resolved"),
    "acknowledged": ("assigned", "in_progress", "resolved"),
    "assigned": ("in_progress", "resolved"),
    "in_progress": ("resolved",),
    "resolved": ("closed", "in_progress"),
    "closed": ("in_progress",),
}
OPEN_STATUSES = ("received", "acknowledged", "assigned", "in_progress")
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


def normalize_code(code: str) -> str:
    compact = code.strip().upper().replace("-", "").replace(" ", "")
    compact = compact.replace("O", "0").replace("I", "1")
    return f"{compact[:4]}-{compact[4:]}" if len(compact) == 8 else compact


class PatientContact(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, max_length=50, examples=["홍길동"])
    phone: Phone | None = Field(default=None, examples=["010-1234-5678"])
    email: Email | None = Field(default=None, max_length=254, examples=["patient@example.com"])


class ComplaintSubmission(BaseModel):
    """What the web form and the mobile apps send to `POST /complaints`."""

    model_config = ConfigDict(
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
    text: str = Field(min_length=5, max_length=4000, examples=["대기시간이 너무 길었습니다."])
    category_hint: str | None = Field(default=None, max_length=40, examples=["wait_time"])
    contact: PatientContact = Field(default_factory=PatientContact)
    consent_to_contact: bool = Field(description="may the hospital contact the patient about it")
    department: str | None = Field(default=None, max_length=40, examples=["dental"])
    visit_date: date | None = Field(default=None, examples=["2026-11-20"])
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

    text: str = Field(min_length=1, max_length=MAX_INBOUND_TEXT)


class StaffEntry(ComplaintSubmission):
    """A complaint staff type in from a phone call or at the desk."""

    model_config = ConfigDict(
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
        }
    )

    channel: Literal["phone", "walk_in"] = "phone"  # type: ignore[assignment]


class Transition(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"status": "in_progress", "note": "시설팀에 확인 요청"}]},
    )

    status: Status
    note: str | None = Field(default=None, max_length=2000)


class Assignment(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"assignee": "kim.minji", "department": "front_desk", "note": "접수 창구 건"}
            ]
        },
    )

    assignee: str | None = Field(default=None, max_length=100, examples=["kim.minji"])
    department: str | None = Field(default=None, max_length=40, examples=["front_desk"])
    note: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _something(self) -> Assignment:
        if not (self.assignee or self.department):
            raise ValueError("give an assignee, a department or both")
        return self


class Correction(BaseModel):
    """Staff correcting the classifier: the guess stays on record beside the correction."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"kind": "complaint", "category": "wait_time", "urgency": "high"}]
        },
    )

    kind: Kind | None = None
    category: str | None = Field(default=None, max_length=40)
    urgency: UrgencyLevel | None = None
    note: str | None = Field(default=None, max_length=2000)


class Reply(BaseModel):
    model_config = ConfigDict(
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

    message: str = Field(min_length=1, max_length=1000)
    notify_patient: bool = True


class Resolution(BaseModel):
    model_config = ConfigDict(
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

    outcome: str = Field(min_length=1, max_length=1000, description="what the patient is told")
    note: str | None = Field(default=None, max_length=2000, description="internal note")
    notify_patient: bool = True


class Note(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"note": "환자분과 통화로 확인함"}]},
    )

    note: str | None = Field(default=None, max_length=2000)


class SurveyAnswer(BaseModel):
    model_config = ConfigDict(
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

    code: str = Field(min_length=8, max_length=12, examples=["ABCD-2345"])
    token: str = Field(min_length=10, max_length=64)
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=1000)
