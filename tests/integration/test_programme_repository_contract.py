"""One contract, two adapters: the in-memory `ProgrammeRepository` the domain tests use behaves as
the DynamoDB one (over moto) does: what each stores and reads, and what each refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sotong import clock
from sotong.notify import txoutbox
from sotong.notify.model import MessageRequest, Recipient
from sotong.programmes.records import CodeChallenge, Signup
from sotong.programmes.repository import DynamoProgrammeRepository, ProgrammeRepository
from tests.fakes.programmes import InMemoryProgrammeRepository

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
START = "2026-12-03T05:00:00Z"
DAY = "2026-12-03"


@pytest.fixture(params=["memory", "dynamo"])
def repo(request: pytest.FixtureRequest) -> Iterator[ProgrammeRepository]:
    if request.param == "dynamo":
        request.getfixturevalue("aws")
    clock.fix(NOW)
    yield (
        DynamoProgrammeRepository("demo")
        if request.param == "dynamo"
        else InMemoryProgrammeRepository()
    )
    clock.fix(None)


def outbox(repo: ProgrammeRepository) -> list[str]:
    if isinstance(repo, InMemoryProgrammeRepository):
        return sorted(r.idempotency_key for r in repo.outbox.requests)
    pending = txoutbox.pending(NOW + timedelta(days=3650), limit=1_000)
    return sorted(json.loads(p["request"])["idempotency_key"] for p in pending)


def signup(n: int, status: str = "confirmed") -> Signup:
    return Signup(
        id=f"s{n:020d}",
        programme_id="healing_cafe",
        starts_at=START,
        name=f"환자{n}",
        phone=f"+8210555000{n:02d}",
        status=status,
        created_at=clock.iso(NOW),
        waiting_since=clock.iso(NOW + timedelta(seconds=n)) if status == "waiting" else None,
    )


def message(key: str) -> MessageRequest:
    return MessageRequest(
        idempotency_key=key,
        recipient=Recipient(phone="+821055500000", contact_consent=True),
        template_id="programme_confirmed",
    )


def test_seats_are_taken_up_to_the_capacity_once_per_phone(repo: ProgrammeRepository) -> None:
    assert repo.take_seat(signup(1), 2, "k1", DAY, [message("m1")])
    assert not repo.take_seat(signup(1), 2, "k1", DAY, [message("m1-again")])  # twice
    assert repo.take_seat(signup(2), 2, "k2", DAY, [message("m2")])
    assert not repo.take_seat(signup(3), 2, "k3", DAY, [message("m3")])  # full
    assert repo.seats("healing_cafe", [START, "2026-12-08T05:00:00Z"])[START].taken == 2
    assert outbox(repo) == ["m1", "m2"]
    assert repo.join_waiting(signup(3, "waiting"), "k3", DAY, [message("w3")])
    assert not repo.join_waiting(signup(3, "waiting"), "k3", DAY, [])
    assert [s.status for s in repo.signups("healing_cafe", START, START)] == [
        "confirmed",
        "confirmed",
        "waiting",
    ]
    assert repo.signups_of("k3") == [("healing_cafe", START)]
    assert [s.starts_at for s in repo.sessions_on(DAY)] == [START]
    assert repo.sessions_on("2026-12-04") == []
    found = repo.signup("healing_cafe", START, signup(2).id)
    assert found is not None
    assert found.name == "환자2"


def test_a_cancellation_hands_the_seat_on_or_gives_it_back(repo: ProgrammeRepository) -> None:
    first, second, third = signup(1), signup(2), signup(3, "waiting")
    repo.take_seat(first, 2, "k1", DAY, [])
    repo.take_seat(second, 2, "k2", DAY, [])
    repo.join_waiting(third, "k3", DAY, [])
    promoted = (third, third.promote(NOW))
    assert repo.cancel(first, first.cancel(NOW), promoted, [message("up3")])
    assert repo.seats("healing_cafe", [START])[START].taken == 2
    # as read before: refused, nothing written
    assert not repo.cancel(first, first.cancel(NOW), None, [message("again")])
    assert repo.cancel(second, second.cancel(NOW), None, [])
    assert repo.seats("healing_cafe", [START])[START].taken == 1
    assert outbox(repo) == ["up3"]
    statuses = {s.id: s.status for s in repo.signups("healing_cafe")}
    assert statuses == {first.id: "cancelled", second.id: "cancelled", third.id: "confirmed"}


def test_attendance_and_sent_marks_are_written_once(repo: ProgrammeRepository) -> None:
    one = signup(1)
    repo.take_seat(one, 5, "k1", DAY, [])
    came = one.attend(True, "onc.jung", NOW)
    assert repo.save_attendance(one, came)
    stored = repo.signup("healing_cafe", START, one.id)
    assert stored is not None
    assert stored.attendance == "attended"
    assert repo.mark_sent(one, "reminded_at", NOW, [message("r1")])
    assert not repo.mark_sent(one, "reminded_at", NOW, [message("r1-again")])
    assert outbox(repo) == ["r1"]
    waiting = signup(2, "waiting")
    repo.join_waiting(waiting, "k2", DAY, [])
    assert not repo.mark_sent(waiting, "reminded_at", NOW, [message("r2")])  # no seat


def test_a_code_counts_its_attempts_and_is_spent_once(repo: ProgrammeRepository) -> None:
    challenge = CodeChallenge(
        code_hash="h" * 32, valid_until=clock.iso(NOW + timedelta(minutes=10)), created_at="x"
    )
    repo.put_code("k1", challenge, [message("code")])
    stored = repo.code("k1")
    assert stored is not None
    assert stored.attempts == 0
    assert not stored.used
    assert repo.spend_attempt("k1", stored, used=False)
    assert not repo.spend_attempt("k1", stored, used=True)  # read before the last attempt
    now = repo.code("k1")
    assert now is not None
    assert now.attempts == 1
    assert repo.spend_attempt("k1", now, used=True)
    spent = repo.code("k1")
    assert spent is not None
    assert spent.used
    assert not spent.open_at(NOW, 5)
    assert repo.code("nobody") is None
    assert outbox(repo) == ["code"]
    # a new code replaces the old one
    repo.put_code("k1", replace(challenge, code_hash="n" * 32), [])
    fresh = repo.code("k1")
    assert fresh is not None
    assert fresh.open_at(NOW, 5)


def test_the_rate_limit_counts_per_window(repo: ProgrammeRepository) -> None:
    assert [repo.hit_rate_limit("progcode:k1", 600, 3) for _ in range(4)] == [
        False,
        False,
        False,
        True,
    ]
    assert not repo.hit_rate_limit("progcode:k2", 600, 3)
