"""What the public page and staff send to the programmes API (pydantic at the edge: every
problem names its field)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sotong.dates import FilterTime
from sotong.fields import Line, MobilePhone, StrictBool


class _Body(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", str_strip_whitespace=True)


class CodeRequest(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"phone": "010-1234-5678"}]})

    phone: MobilePhone = Field(description="the mobile phone the code goes to")


class Verification(_Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"phone": "010-1234-5678", "code": "123456"}]}
    )

    phone: MobilePhone
    code: str = Field(pattern=r"^\d{6}$", description="the 6-digit code sent by SMS")


class SignupRequest(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "token": "eyJwaCI6Iis4MjEwMTIzNDU2NzgiLCJleHAiOjB9.example",
                    "starts_at": "2026-12-08T05:00:00Z",
                    "name": "홍길동",
                    "consent_to_contact": True,
                }
            ]
        }
    )

    token: str = Field(min_length=10, max_length=400, description="from verify")
    starts_at: FilterTime = Field(description="the session, as offered")
    name: Line = Field(min_length=1, max_length=30)
    consent_to_contact: StrictBool = Field(
        description="the confirmation, the reminder the day before and the question after "
        "are sent to the phone (required: without it nothing could reach you)"
    )


class Cancellation(_Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"cancel_token": "eyJwIjoiaGVhbGluZ19jYWZlIn0.example"}]}
    )

    cancel_token: str = Field(min_length=10, max_length=400)


class Attendance(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "signup_id": "s0123456789abcdef0123",
                    "starts_at": "2026-12-08T05:00:00Z",
                    "attended": True,
                }
            ]
        }
    )

    signup_id: str = Field(pattern=r"^s[0-9a-f]{20}$")
    starts_at: FilterTime
    attended: StrictBool
