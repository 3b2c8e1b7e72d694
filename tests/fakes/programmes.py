"""An in-memory `ProgrammeRepository` (`sotong.programmes.repository`), for the domain tests.

It keeps typed records and refuses what the DynamoDB adapter's conditions refuse: a second
sign-up of one phone for one session, a seat past the capacity, a sign-up no longer in the status
it was read in, a sent mark set twice, a code attempt on a code that changed. The messages a write
causes go to an `InMemoryOutbox` in the same step, or not at all.
`tests/integration/test_programme_repository_contract.py` runs the same checks on both adapters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sotong import clock
from sotong.notify.model import MessageRequest
from sotong.programmes.records import CodeChallenge, Seats, Signup
from tests.fakes.memory import InMemoryOutbox


@dataclass
class InMemoryProgrammeRepository:
    outbox: InMemoryOutbox = field(default_factory=InMemoryOutbox)
    stored_seats: dict[tuple[str, str], Seats] = field(default_factory=dict)
    days: dict[tuple[str, str], str] = field(default_factory=dict)
    stored_signups: dict[tuple[str, str, str], Signup] = field(default_factory=dict)
    phone_keys: dict[tuple[str, str, str], str] = field(default_factory=dict)
    codes: dict[str, CodeChallenge] = field(default_factory=dict)
    limits: dict[tuple[str, int], int] = field(default_factory=dict)

    def seats(self, programme_id: str, starts: Iterable[str]) -> dict[str, Seats]:
        return {
            s: self.stored_seats[(programme_id, s)]
            for s in set(starts)
            if (programme_id, s) in self.stored_seats
        }

    def signup(self, programme_id: str, starts_at: str, signup_id: str) -> Signup | None:
        return self.stored_signups.get((programme_id, starts_at, signup_id))

    def signups(
        self, programme_id: str, since: str | None = None, until: str | None = None
    ) -> list[Signup]:
        return [
            s
            for (p, start, sid), s in sorted(self.stored_signups.items())
            if p == programme_id and start >= (since or "") and (until is None or start <= until)
        ]

    def signups_of(self, phone_key: str) -> list[tuple[str, str]]:
        return sorted((k[0], k[1]) for k, v in self.phone_keys.items() if v == phone_key)

    def sessions_on(self, day: str) -> list[Seats]:
        return [self.stored_seats[k] for k, d in sorted(self.days.items()) if d == day]

    def _seat(self, signup: Signup, day: str, change: int) -> None:
        key = (signup.programme_id, signup.starts_at)
        found = self.stored_seats.get(key) or Seats(
            programme_id=signup.programme_id, starts_at=signup.starts_at
        )
        self.stored_seats[key] = replace(found, taken=int(found.taken) + change)
        self.days[key] = day

    def _key(self, signup: Signup) -> tuple[str, str, str]:
        return (signup.programme_id, signup.starts_at, signup.id)

    def take_seat(
        self,
        signup: Signup,
        capacity: int,
        phone_key: str,
        day: str,
        messages: Sequence[MessageRequest],
    ) -> bool:
        seats = self.stored_seats.get((signup.programme_id, signup.starts_at))
        if self._key(signup) in self.stored_signups or (seats and seats.taken >= capacity):
            return False
        self._seat(signup, day, 1)
        self.stored_signups[self._key(signup)] = signup
        self.phone_keys[self._key(signup)] = phone_key
        self.outbox.add(messages)
        return True

    def join_waiting(
        self, signup: Signup, phone_key: str, day: str, messages: Sequence[MessageRequest]
    ) -> bool:
        if self._key(signup) in self.stored_signups:
            return False
        self._seat(signup, day, 0)
        self.stored_signups[self._key(signup)] = signup
        self.phone_keys[self._key(signup)] = phone_key
        self.outbox.add(messages)
        return True

    def _is(self, signup: Signup) -> bool:
        found = self.stored_signups.get(self._key(signup))
        return found is not None and found.status == signup.status

    def cancel(
        self,
        before: Signup,
        after: Signup,
        promoted: tuple[Signup, Signup] | None,
        messages: Sequence[MessageRequest],
    ) -> bool:
        if not self._is(before) or (promoted is not None and not self._is(promoted[0])):
            return False
        key = (before.programme_id, before.starts_at)
        if promoted is None and before.is_confirmed:
            seats = self.stored_seats.get(key)
            if seats is None or seats.taken <= 0:
                return False
            self.stored_seats[key] = replace(seats, taken=seats.taken - 1)
        self.stored_signups[self._key(after)] = after
        if promoted is not None:
            self.stored_signups[self._key(promoted[1])] = promoted[1]
        self.outbox.add(messages)
        return True

    def save_attendance(self, before: Signup, after: Signup) -> bool:
        if not self._is(before):
            return False
        self.stored_signups[self._key(after)] = after
        return True

    def mark_sent(
        self, before: Signup, attribute: str, at: datetime, messages: Sequence[MessageRequest]
    ) -> bool:
        found = self.stored_signups.get(self._key(before))
        if found is None or not found.is_confirmed or getattr(found, attribute) is not None:
            return False
        marked: dict[str, Any] = {attribute: clock.iso(at)}
        self.stored_signups[self._key(before)] = replace(found, **marked)
        self.outbox.add(messages)
        return True

    def put_code(
        self, phone_key: str, challenge: CodeChallenge, messages: Sequence[MessageRequest]
    ) -> None:
        self.codes[phone_key] = challenge
        self.outbox.add(messages)

    def code(self, phone_key: str) -> CodeChallenge | None:
        return self.codes.get(phone_key)

    def spend_attempt(self, phone_key: str, challenge: CodeChallenge, *, used: bool) -> bool:
        found = self.codes.get(phone_key)
        if (
            found is None
            or found.code_hash != challenge.code_hash
            or found.attempts != challenge.attempts
            or found.used
        ):
            return False
        self.codes[phone_key] = replace(found, attempts=found.attempts + 1, used=used)
        return True

    def hit_rate_limit(self, name: str, window_s: int, limit: int) -> bool:
        now = int(clock.now().timestamp())
        key = (name, now - now % window_s)
        if self.limits.get(key, 0) >= limit:
            return True
        self.limits[key] = self.limits.get(key, 0) + 1
        return False
