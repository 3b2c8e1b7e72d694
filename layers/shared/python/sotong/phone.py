"""Korean phone numbers: `010-1234-5678` as people write them, `+821012345678` as providers want."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[\s\-().]")
_KOREAN = re.compile(r"^0(10\d{8}|1[16789]\d{7,8}|2\d{7,8}|[3-6][1-5]\d{7,8}|70\d{8}|80\d{7,8})$")
# Nationwide representative numbers (대표번호) such as 1588-1234 have no leading 0.
_REPRESENTATIVE = re.compile(r"^1[5-9]\d{6}$")


def normalize_korean_phone(raw: str) -> str:
    """E.164 form of a Korean number; raises ValueError naming what is wrong."""
    compact = _DIGITS.sub("", raw.strip())
    if compact.startswith("+82"):
        national = compact[3:].lstrip("0")
        compact = national if _REPRESENTATIVE.match(national) else "0" + national
    elif compact.startswith("82") and len(compact) >= 11:
        compact = "0" + compact[2:].lstrip("0")
    if _REPRESENTATIVE.match(compact):
        return "+82" + compact
    if not compact.isdigit() or not _KOREAN.match(compact):
        raise ValueError("is not a Korean phone number like 010-1234-5678")
    return "+82" + compact[1:]


def national_format(e164: str) -> str:
    """`+821012345678` -> `010-1234-5678` (mobile and Seoul numbers; others undashed)."""
    local = "0" + e164[3:] if e164.startswith("+82") else e164
    if _REPRESENTATIVE.match(local[1:]):
        return f"{local[1:5]}-{local[5:]}"
    if local.startswith("02"):
        return f"02-{local[2:-4]}-{local[-4:]}"
    if len(local) in (10, 11):
        return f"{local[:3]}-{local[3:-4]}-{local[-4:]}"
    return local


def last_four(e164: str) -> str:
    return e164[-4:]


def mask_phone(e164_or_raw: str) -> str:
    """Keep the last four digits only: `+82*******5678`."""
    digits = re.sub(r"\D", "", e164_or_raw)
    if len(digits) <= 4:
        return "*" * len(digits)
    prefix = "+" if e164_or_raw.strip().startswith("+") else ""
    return prefix + "*" * (len(digits) - 4) + digits[-4:]
