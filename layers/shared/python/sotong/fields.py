"""Field types for what clients send: free text made safe to store and show, the patient's mobile
number, and strict JSON scalars.

- `Text` (multi-line: complaint text, notes, replies) and `Line` (one line: names, ids, chart
  numbers) drop what no person types and what deceives a reader: NUL and the other control
  characters (C0 and C1), lone surrogates (valid JSON escapes, but not storable as UTF-8),
  noncharacters, the byte order mark and the invisible format characters, among them the
  bidirectional overrides (U+202E shows `exe.txt` as `txt.exe`). They keep the zero-width joiner
  and non-joiner (emoji and some scripts need them) and emoji tag characters. `Text` keeps new
  lines (CR LF and CR become LF, U+2028/U+2029 too) and tabs; `Line` turns them into spaces.
  Cleaning runs before the field's length rules, so six NUL characters are an empty text, which
  `min_length` refuses, naming the field.
- `MobilePhone`: a patient's phone for text messages is a mobile number (010, 011, 016, 017,
  018, 019); landlines and 070/080 numbers take no SMS. Staff contacts in the hospital config
  keep the looser `Phone` (a department head may be reached on a desk line).
- `StrictBool`, `StrictInt`: `"yes"`, `"5"`, `1` for a flag or `true` for a score are refused,
  not coerced: a form that sends JSON sends JSON's true and false and numbers.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, StrictBool, StrictInt

from sotong.config.schema import Email
from sotong.phone import normalize_korean_phone

__all__ = [
    "ContactEmail",
    "Line",
    "MobilePhone",
    "StrictBool",
    "StrictInt",
    "Text",
    "clean_text",
    "is_mobile",
]

_KEPT_FORMAT = frozenset("\u200c\u200d")  # zero-width non-joiner and joiner
_NEW_LINES = {"\r\n": "\n", "\r": "\n", "\u2028": "\n", "\u2029": "\n", "\x85": "\n"}


def _dropped(char: str) -> bool:
    category = unicodedata.category(char)
    if category in ("Cc", "Cs"):
        return True
    if category == "Cf":
        return char not in _KEPT_FORMAT and not "\U000e0020" <= char <= "\U000e007f"
    code = ord(char)
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def clean_text(text: str, *, multiline: bool = True) -> str:
    """`text` without control, format (bidi override, BOM) and non-characters; new lines and
    tabs kept when `multiline`, else spaces."""
    for old, new in _NEW_LINES.items():
        text = text.replace(old, new)
    kept = []
    for char in text:
        if char in "\n\t":
            kept.append(char if multiline else " ")
        elif not _dropped(char):
            kept.append(char)
    return "".join(kept)


def _text(value: Any) -> Any:
    return clean_text(value) if isinstance(value, str) else value


def _line(value: Any) -> Any:
    return clean_text(value, multiline=False) if isinstance(value, str) else value


def is_mobile(e164: str) -> bool:
    """A Korean mobile number in E.164: +8210 and 8 digits, or +8211/16/17/18/19 and 7-8."""
    national = e164.removeprefix("+82")
    if national.startswith("10"):
        return len(national) == 10 and national.isdigit()
    return national[:2] in ("11", "16", "17", "18", "19") and len(national) in (9, 10)


def _mobile(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a phone number as text, e.g. '010-1234-5678'")
    e164 = normalize_korean_phone(clean_text(value, multiline=False))
    if not is_mobile(e164):
        raise ValueError(
            "is not a mobile number (010, 011, 016-019): text messages need one, e.g. 010-1234-5678"
        )
    return e164


def _address(value: str) -> str:
    if clean_text(value, multiline=False) != value:
        raise ValueError("has control or invisible characters; type the address again")
    return value


Text = Annotated[str, BeforeValidator(_text)]
Line = Annotated[str, BeforeValidator(_line)]
MobilePhone = Annotated[str, BeforeValidator(_mobile)]
ContactEmail = Annotated[Email, AfterValidator(_address)]
"""A patient's e-mail address: `Email`, without control or invisible characters (NUL, U+202E)."""
