"""What patients send back: opt-out words, and everything else for the hospital to read."""

from __future__ import annotations

import re

OPT_OUT = re.compile(r"^\s*(수신\s*거부|수신\s*중지|거부|stop|unsubscribe|그만)\s*[.!]?\s*$", re.I)


def is_opt_out(text: str) -> bool:
    """`수신거부`, `STOP` and their common variants, alone in the message."""
    return bool(OPT_OUT.match(text))
