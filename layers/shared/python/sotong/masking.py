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
# A pydantic ValidationError's text repeats the rejected input: a whole message, a contact.
_INPUT_VALUE = re.compile(r"input_value=.*?, input_type=", re.S)
_TRACK_PATH = re.compile(r"(/track/)[^/?#]+", re.I)
_LANDLINE = re.compile(r"(?<!\d)0(?:2|[3-6][1-5])[\s.-]?\d{3,4}[\s.-]?\d{4}(?!\d)")


def mask_text(text: str) -> str:
    text = _INPUT_VALUE.sub("input_value=***, input_type=", text)
    text = _EMAIL.sub(r"\1***@\2", text)
    text = _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    return _LANDLINE.sub(lambda m: mask_phone(m.group(0)), text)


def mask_url(target: str) -> str:
    """A request target safe to log: every query value and a tracking code in the path hidden
    (`/track/ABCD-2345?phone_last4=5678` -> `/track/***?phone_last4=***`), numbers and
    addresses left in the path masked."""
    path, _, query = target.partition("?")
    path = _TRACK_PATH.sub(r"\1***", mask_text(path))
    if not query:
        return path
    names = [piece.partition("=")[0] for piece in query.split("&") if piece]
    return path + "?" + "&".join(f"{mask_text(name)}=***" for name in names)


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


class ScrubbedError(Exception):
    """What an error that would carry personal data leaves a function as: its kind and where,
    never the values (the Lambda runtime prints an uncaught exception to CloudWatch as is)."""


def scrubbed(error: Exception) -> ScrubbedError:
    """`error` without the data in it: for a pydantic ValidationError, each field, problem and
    type (`errors(include_input=False)`), masked; for anything else, its type only."""
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or '(model)'}: {item['msg']} ({item['type']})"
            for item in error.errors(include_input=False, include_url=False)
        )
        return ScrubbedError(mask_text(f"{error.title}: {error.error_count()} invalid: {problems}"))
    return ScrubbedError(type(error).__name__)
