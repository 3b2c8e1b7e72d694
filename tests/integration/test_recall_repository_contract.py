"""One contract, two adapters: the in-memory `PatientRepository` the domain tests use behaves as
the DynamoDB one (over moto) does: what each stores and reads, and what each refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from sotong import clock
from sotong.notify import txoutbox
from sotong.notify.model import MessageRequest, Recipient
from sotong.recall.records import (
    AppointmentRecord,
    ConversationMessage,
    Patient,
    Touchpoint,
    Treatment,
)
from sotong.recall.repository import (
    AdMark,
    DynamoPatientRepository,
    PatientRepository,
    TouchpointMove,
)
from tests.fakes.recall import InMemoryPatientRepository

NOW = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)


@pytest.fixture(params=["memory", "dynamo"])
def repo(request: pytest.FixtureRequest) -> Iterator[PatientRepository]:
    if request.param == "dynamo":
        request.getfixturevalue("aws")
    clock.fix(NOW)
    yield DynamoPatientRepository() if request.param == "dynamo" else InMemoryPatientRepository()
    clock.fix(None)


def outbox(repo: PatientRepository) -> list[str]:
    """The idempotency keys of the message requests written so far."""
    if isinstance(repo, InMemoryPatientRepository):
        return sorted(r.idempotency_key for r in repo.outbox.requests)
    pending = txoutbox.pending(NOW + timedelta(days=3650), limit=1_000)
    return sorted(json.loads(p["request"])["idempotency_key"] for p in pending)


def patient(n: int = 1, **overrides: Any) -> Patient:
    given: dict[str, Any] = {
        "id": f"p{n}",
        "name": f"환자{n}",
        "phone": f"+8210000000{n:02d}",
        "consents": {"contact": True, "marketing": True, "night": False},
        **overrides,
    }
    return Patient(**given)


def treatment(n: int = 1, day: str = "2026-05-23", tag: str = "scaling") -> Treatment:
    return Treatment(id=f"t{n}-{day}", patient_id=f"p{n}", tag=tag, department="dental", date=day)


def touchpoint(
    n: int = 1, due: datetime = NOW - timedelta(minutes=5), step: str = "recall"
) -> Touchpoint:
    return Touchpoint(
        id=f"t{n}.{step}",
        patient_id=f"p{n}",
        treatment_id=f"t{n}",
        tag="scaling",
        step=step,
        template="recall_checkup",
        purpose="service",
        cancel_if=("patient_paused",),
        treatment_date="2026-05-23",
        due_at=clock.iso(due),
        status="planned",
    )


def request(key: str) -> MessageRequest:
    return MessageRequest(
        idempotency_key=key,
        recipient=Recipient(name="환자1", phone="+821000000001", contact_consent=True),
        template_id="recall_checkup",
        variables={},
    )


def test_a_patient_is_registered_and_keeps_their_history(repo: PatientRepository) -> None:
    assert repo.patient("p1") is None
    saved = repo.register(patient(email="a@example.com"), "phone-key-1")
    assert (saved.name, saved.email, saved.last_treatment) == ("환자1", "a@example.com", {})
    repo.note_treatment("p1", "scaling", "2026-05-23")
    repo.note_treatment("p1", "scaling", "2026-01-01")  # earlier: the later one stays
    again = repo.register(patient(name="새이름"), "phone-key-1")
    assert (again.name, again.email) == ("새이름", None)
    assert again.last_treatment == {"scaling": "2026-05-23"}
    assert again.created_at == saved.created_at
    repo.set_latest_treatment("p1", "scaling", "2026-01-01")
    found = repo.patient_by_phone("phone-key-1")
    assert found is not None
    assert (found.id, found.last_treatment) == ("p1", {"scaling": "2026-01-01"})
    assert repo.patient_by_phone("no-such-key") is None
    assert set(repo.patients(["p1", "p2"])) == {"p1"}


def test_writes_to_a_patient_who_is_gone_are_refused(repo: PatientRepository) -> None:
    assert repo.save_pause(patient().with_pause(True, "away")) is False
    repo.note_treatment("p1", "scaling", "2026-05-23")
    repo.note_appointment(AppointmentRecord(patient_id="p1", kind="visit", at=clock.iso(NOW)))
    assert repo.patient("p1") is None
    repo.register(patient(), "k")
    assert repo.save_pause(patient().with_pause(True, "away")) is True
    stored = repo.patient("p1")
    assert stored is not None
    assert (stored.paused, stored.pause_reason) == (True, "away")


def test_an_appointment_moves_the_patient_time_only_later(repo: PatientRepository) -> None:
    repo.register(patient(), "k")
    late, early = "2026-12-01T01:00:00.000000Z", "2026-11-25T01:00:00.000000Z"
    repo.note_appointment(AppointmentRecord(patient_id="p1", kind="booking", at=late))
    repo.note_appointment(AppointmentRecord(patient_id="p1", kind="booking", at=early))
    stored = repo.patient("p1")
    assert stored is not None
    assert (stored.next_booking_at, stored.last_visit_at) == (late, None)


def test_a_treatment_is_stored_once(repo: PatientRepository) -> None:
    first = treatment()
    assert repo.add_treatment(first) is True
    assert repo.add_treatment(first) is False
    assert repo.treatment("p1", first.id) == first
    moved = first.moved_to(date(2026, 6, 1), "dr.kim")
    repo.save_treatment(moved)
    assert repo.treatments("p1") == [moved]


def test_the_tag_index_pages_in_date_order(repo: PatientRepository) -> None:
    for n, day in [(1, "2026-03-01"), (2, "2026-01-01"), (3, "2026-02-01"), (4, "2025-12-01")]:
        repo.add_treatment(treatment(n, day))
    repo.add_treatment(treatment(5, "2026-02-15", tag="botox"))
    everything = repo.tag_index("scaling")
    assert [r.day for r in everything.refs] == [
        "2025-12-01",
        "2026-01-01",
        "2026-02-01",
        "2026-03-01",
    ]
    assert everything.more is False
    bounded = repo.tag_index("scaling", on_or_after=date(2026, 1, 1), before=date(2026, 3, 1))
    assert [r.patient_id for r in bounded.refs] == ["p2", "p3"]
    first = repo.tag_index("scaling", limit=2)
    assert ([r.patient_id for r in first.refs], first.more) == (["p4", "p2"], True)
    rest = repo.tag_index("scaling", cursor=first.refs[-1].cursor, limit=2)
    assert [r.patient_id for r in rest.refs] == ["p3", "p1"]


def test_due_touchpoints_are_the_planned_ones_in_the_window(repo: PatientRepository) -> None:
    due, later = touchpoint(1), touchpoint(2, due=NOW + timedelta(hours=2))
    assert repo.add_touchpoints([due, later]) == 1
    window = repo.due_touchpoints(NOW - timedelta(hours=1), NOW)
    assert [t.id for t in window] == [due.id]
    assert window[0] == due
    assert repo.move_touchpoint(due, due.cancel("cancelled by desk", NOW)) is True
    assert repo.due_touchpoints(NOW - timedelta(hours=1), NOW) == []
    (stored,) = repo.touchpoints("p1")
    assert (stored.status, stored.status_reason) == ("cancelled", "cancelled by desk")
    # moved on from what was read: refused, nothing changes
    assert repo.move_touchpoint(due, due.queue(NOW)) is False
    assert repo.touchpoints("p1")[0].status == "cancelled"


def test_a_deferred_touchpoint_moves_in_the_due_index(repo: PatientRepository) -> None:
    planned = touchpoint(1)
    repo.add_touchpoints([planned])
    later = NOW + timedelta(days=2)
    assert repo.move_touchpoint(planned, planned.defer(later, "frequency_cap", NOW))
    assert repo.due_touchpoints(NOW - timedelta(hours=1), NOW) == []
    (moved,) = repo.due_touchpoints(later - timedelta(minutes=1), later)
    assert (moved.due, moved.deferred_reason) == (later, "frequency_cap")


def test_a_move_and_its_messages_are_written_together_or_not_at_all(
    repo: PatientRepository,
) -> None:
    repo.register(patient(1), "k1")
    repo.register(patient(2), "k2")
    first, second, third = touchpoint(1), touchpoint(2), touchpoint(3)
    earlier = touchpoint(2, step="next_step")
    repo.add_touchpoints([first, second, third, earlier])
    repo.move_touchpoint(third, third.cancel("gone", NOW))  # moved on before the run writes
    cutoff = NOW - timedelta(days=7)
    yesterday = NOW - timedelta(days=1)
    advertised = TouchpointMove(
        before=earlier,
        after=earlier.queue(yesterday),
        ad=AdMark(patient_id="p2", at=yesterday, by="touchpoint:t2.next_step", cutoff=cutoff),
    )
    assert repo.move_touchpoints("demo", [advertised]).refused == {}
    moves = [
        TouchpointMove(
            before=first,
            after=first.queue(NOW),
            messages=(request("touchpoint:p1"),),
            ad=AdMark(patient_id="p1", at=NOW, by="touchpoint:t1.recall", cutoff=cutoff),
        ),
        TouchpointMove(
            before=second,
            after=second.queue(NOW),
            messages=(request("touchpoint:p2"),),
            ad=AdMark(patient_id="p2", at=NOW, by="touchpoint:t2.recall", cutoff=cutoff),
        ),
        TouchpointMove(before=third, after=third.queue(NOW), messages=(request("touchpoint:p3"),)),
    ]
    moved = repo.move_touchpoints("demo", moves)
    assert moved.refused == {1: "ad_cap", 2: "moved_on"}
    assert moved.requests == 2  # the group, then again without the refused
    assert outbox(repo) == ["touchpoint:p1"]
    assert [t.status for t in repo.touchpoints("p1")] == ["queued"]
    assert {t.step: t.status for t in repo.touchpoints("p2")} == {
        "recall": "planned",
        "next_step": "queued",
    }
    marked = repo.patient("p1")
    assert marked is not None
    assert (marked.last_ad_at, marked.last_ad_by) == (clock.iso(NOW), "touchpoint:t1.recall")
    again = repo.move_touchpoints("demo", moves[:1])
    assert again.refused == {0: "moved_on"}
    assert outbox(repo) == ["touchpoint:p1"]


def test_conversation_messages_are_stored_once(repo: PatientRepository) -> None:
    message = ConversationMessage(
        id="2026-11-23T01:30:00.000000Z#in:m1",
        direction="in",
        text="1",
        by="patient",
        at="2026-11-23T01:30:00.000000Z",
        touchpoint="t1.recall",
        provider_message_id="m1",
    )
    assert repo.add_message("p1", message, inbound_id="m1") is True
    assert repo.add_message("p1", message, inbound_id="m1") is False
    answer = ConversationMessage(
        id="2026-11-23T01:31:00.000000Z#x", direction="out", text="네", by="desk", at=clock.iso(NOW)
    )
    assert repo.add_answer("demo", "p1", answer, request("conversation:p1:x")) is True
    assert repo.add_answer("demo", "p1", answer, request("conversation:p1:x")) is False
    assert repo.conversation("p1") == [message, answer]
    assert outbox(repo) == ["conversation:p1:x"]


def test_one_lease_holder_at_a_time(repo: PatientRepository) -> None:
    hold = timedelta(seconds=150)
    assert repo.take_lease("dispatch", "a", NOW, hold) is True
    assert repo.take_lease("dispatch", "b", NOW + timedelta(seconds=10), hold) is False
    assert repo.take_lease("dispatch", "a", NOW + timedelta(seconds=10), hold) is True
    repo.release_lease("dispatch", "b")  # not theirs: nothing happens
    assert repo.take_lease("dispatch", "b", NOW + timedelta(seconds=20), hold) is False
    repo.release_lease("dispatch", "a")
    assert repo.take_lease("dispatch", "b", NOW + timedelta(seconds=20), hold) is True
    assert repo.take_lease("dispatch", "c", NOW + timedelta(seconds=200), hold) is True  # ran out
    assert repo.watermark("dispatch") is None
    repo.set_watermark("dispatch", NOW)
    assert repo.watermark("dispatch") == NOW


def waiting_message(n: int, minute: int) -> ConversationMessage:
    at = clock.iso(NOW + timedelta(minutes=minute))
    return ConversationMessage(
        id=f"{at}#in:w{n}",
        direction="in",
        text=f"reply {n}",
        by="patient",
        at=at,
        touchpoint="t1.aftercare",
        provider_message_id=f"w{n}",
    )


def test_replies_wait_in_their_departments_queue_oldest_first(repo: PatientRepository) -> None:
    first, second, third = waiting_message(1, 1), waiting_message(2, 2), waiting_message(3, 3)
    assert repo.add_message("p2", second, inbound_id="w2", waiting_in="dental")
    assert repo.add_message("p1", first, inbound_id="w1", waiting_in="dental")
    assert repo.add_message("p3", third, inbound_id="w3", waiting_in="dermatology")
    assert repo.add_message("p3", waiting_message(4, 0), inbound_id="w4")  # not waiting

    dental = repo.waiting_replies("dental", 10)
    assert [(r.patient_id, r.message, r.department) for r in dental.replies] == [
        ("p1", first, "dental"),
        ("p2", second, "dental"),
    ]
    assert dental.more is False
    everyone = repo.waiting_replies(None, 2)
    assert [r.message.id for r in everyone.replies] == [first.id, second.id]
    assert everyone.more is True
    assert [r.message.id for r in repo.waiting_replies(None, 3).replies] == [
        first.id,
        second.id,
        third.id,
    ]
    assert repo.waiting_replies("front_desk", 10).replies == []
    # the queue entry is no part of the message as read back
    assert repo.conversation("p1") == [first]


def test_an_answer_or_a_settle_takes_replies_off_the_queue(repo: PatientRepository) -> None:
    first, second = waiting_message(1, 1), waiting_message(2, 2)
    repo.add_message("p1", first, inbound_id="w1", waiting_in="dental")
    repo.add_message("p1", second, inbound_id="w2", waiting_in="dental")
    repo.add_message("p2", waiting_message(3, 3), inbound_id="w3", waiting_in="")
    waiting = repo.waiting_of("p1")
    assert [r.message.id for r in waiting] == [first.id, second.id]
    answer = ConversationMessage(
        id="2026-11-23T01:40:00.000000Z#x", direction="out", text="네", by="desk", at=clock.iso(NOW)
    )
    assert repo.add_answer("demo", "p1", answer, request("conversation:p1:x"), settles=waiting)
    assert repo.waiting_of("p1") == []
    assert repo.waiting_replies("dental", 10).replies == []
    assert repo.conversation("p1") == [first, second, answer]
    # a department unknown ('') waits in the every-department queue only
    (other,) = repo.waiting_replies(None, 10).replies
    assert (other.patient_id, other.department) == ("p2", "")
    assert repo.settle_replies([other]) == 1
    assert repo.settle_replies([other]) == 0  # settled already
    assert repo.waiting_replies(None, 10).replies == []
