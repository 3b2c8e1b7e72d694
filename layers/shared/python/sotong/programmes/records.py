"""What the programmes desk stores, as typed records: a sign-up, a session's seats and a phone's
one-time code.

Each record reads and writes its stored attributes (`from_item` / `to_item`, no keys or index
attributes: only `sotong.programmes.repository` knows those); an attribute a record does not
name is kept in `extra` and written back unchanged. Timestamps are the stored ISO strings.

A sign-up goes `confirmed -> cancelled`, or `waiting -> confirmed` (a seat freed: promoted) and
`waiting -> cancelled`; attendance is recorded on a confirmed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Self

from sotong import clock

TRANSITIONS: Mapping[str, tuple[str, ...]] = {
    "confirmed": ("waiting",),
    "cancelled": ("confirmed", "waiting"),
}
"""the statuses a sign-up may move to, and from which"""
ATTENDANCE = ("attended", "absent")


class TransitionError(ValueError):
    """A sign-up asked to move where its status does not allow."""


def _split(cls: type, item: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    known = frozenset(f.name for f in fields(cls) if f.name != "extra")
    attributes = {
        k: v for k, v in item.items() if k not in ("pk", "sk") and not k.startswith("gsi")
    }
    return (
        {k: v for k, v in attributes.items() if k in known},
        {k: v for k, v in attributes.items() if k not in known},
    )


class _Record:
    __slots__ = ()
    extra: Mapping[str, Any]

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = dict(self.extra)
        for f in fields(self):  # type: ignore[arg-type]
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is not None:
                item[f.name] = value
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        known, extra = _split(cls, item)
        return cls(**known, extra=extra)  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True, kw_only=True)
class Signup(_Record):
    """A person's sign-up for one session of a programme: its status and attendance."""

    id: str
    programme_id: str
    starts_at: str
    """the session's start (UTC ISO)"""
    name: str
    phone: str
    status: str
    contact_consent: bool = True
    patient_id: str | None = None
    created_at: str | None = None
    waiting_since: str | None = None
    promoted_at: str | None = None
    cancelled_at: str | None = None
    attendance: str | None = None
    attendance_by: str | None = None
    attendance_at: str | None = None
    reminded_at: str | None = None
    feedback_at: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def start(self) -> datetime:
        return clock.parse(self.starts_at)

    @property
    def is_confirmed(self) -> bool:
        return self.status == "confirmed"

    @property
    def is_waiting(self) -> bool:
        return self.status == "waiting"

    def _move(self, status: str, **changes: Any) -> Signup:
        if self.status not in TRANSITIONS[status]:
            raise TransitionError(f"sign-up {self.id} is {self.status}, not {status}-able")
        return replace(self, status=status, **changes)

    def promote(self, at: datetime) -> Signup:
        return self._move("confirmed", promoted_at=clock.iso(at))

    def cancel(self, at: datetime) -> Signup:
        return self._move("cancelled", cancelled_at=clock.iso(at))

    def attend(self, attended: bool, by: str, at: datetime) -> Signup:
        if not self.is_confirmed:
            raise TransitionError(f"sign-up {self.id} is {self.status}: no seat to attend")
        return replace(
            self,
            attendance="attended" if attended else "absent",
            attendance_by=by,
            attendance_at=clock.iso(at),
        )

    def public(self) -> dict[str, Any]:
        """What the person who signed up sees (no phone)."""
        return {
            "signup_id": self.id,
            "programme_id": self.programme_id,
            "starts_at": self.starts_at,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Seats(_Record):
    """A session's seats: how many are taken (confirmed sign-ups)."""

    programme_id: str
    starts_at: str
    taken: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def left(self, capacity: int) -> int:
        return max(0, capacity - int(self.taken))


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeChallenge(_Record):
    """A one-time code sent to a phone: only its keyed digest is stored."""

    code_hash: str
    valid_until: str
    attempts: int = 0
    used: bool = False
    created_at: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def open_at(self, now: datetime, max_attempts: int) -> bool:
        return (
            not self.used
            and int(self.attempts) < max_attempts
            and clock.parse(self.valid_until) > now
        )
