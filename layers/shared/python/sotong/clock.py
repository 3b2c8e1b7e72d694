"""The one clock every rule reads, so tests can fix it and the local stack can shift it."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

_fixed: datetime | None = None
OFFSET_ENV = "SOTONG_CLOCK_OFFSET_SECONDS"


def now() -> datetime:
    """Aware UTC now; `SOTONG_CLOCK_OFFSET_SECONDS` shifts it (local stack and demos only)."""
    if _fixed is not None:
        return _fixed
    current = datetime.now(UTC)
    offset = os.environ.get(OFFSET_ENV)
    return current + timedelta(seconds=float(offset)) if offset else current


def unshifted() -> datetime:
    """`now()` without the local stack's shift (a fixed clock stays fixed)."""
    return _fixed if _fixed is not None else datetime.now(UTC)


def fix(at: datetime | None) -> None:
    """Freeze the clock at `at` (aware), or release it with None."""
    global _fixed
    if at is not None and at.tzinfo is None:
        raise ValueError("fix the clock with an aware datetime")
    _fixed = at.astimezone(UTC) if at else None


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(stamp: str) -> datetime:
    """A stored timestamp (`...Z` or with an offset) as an aware datetime."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def sleep(seconds: float) -> None:
    """Wait on this clock: a fixed clock moves on by `seconds` at once (tests, simulations)."""
    global _fixed
    if seconds <= 0:
        return
    if _fixed is not None:
        _fixed = _fixed + timedelta(seconds=seconds)
        return
    time.sleep(seconds)
