"""Personal data out of logs: phone numbers, e-mail addresses and names are masked."""

from __future__ import annotations

import re
from typing import Any

from sotong.phone import mask_phone

PERSONAL_KEYS = frozenset(
    {
        "name",
        "patient_name",
        "contact_name",
        "guardian_name",
        "phone",
        "recipient_phone",
        "email",
        "recipient_email",
        "to",
        "recipient",
        "text",
        "body",
        "reply",
        "note",
        "variables",
        "authorization",
        "secret",
        "password",
    }
)
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_PHONE = re.compile(r"(?<!\d)(?:\+?82[\s.-]?|0)1[016789][\s.-]?\d{3,4}[\s.-]?\d{4}(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)0(?:2|[3-6][1-5])[\s.-]?\d{3,4}[\s.-]?\d{4}(?!\d)")


def mask_text(text: str) -> str:
    text = _EMAIL.sub(r"\1***@\2", text)
    text = _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    return _LANDLINE.sub(lambda m: mask_phone(m.group(0)), text)


def mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return "***" if value else value
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(v) for v in value]
    return value if value is None or isinstance(value, bool | int | float) else "***"


def mask(data: Any) -> Any:
    """A copy of `data` safe to log: personal keys blanked, numbers and addresses masked."""
    if isinstance(data, dict):
        return {
            k: mask_value(v) if str(k).lower() in PERSONAL_KEYS else mask(v)
            for k, v in data.items()
        }
    if isinstance(data, list | tuple):
        return [mask(v) for v in data]
    if isinstance(data, str):
        return mask_text(data)
    if data is None or isinstance(data, bool | int | float):
        return data
    # Anything else (an exception in a stack trace, a Decimal, a model) is logged as its str().
    return mask_text(str(data))
