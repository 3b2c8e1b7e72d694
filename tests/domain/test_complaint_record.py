"""`Complaint`: the stored attributes read and written back unchanged, and the lifecycle rules on
the record (transitions, SLA clocks, pauses)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sotong import clock
from sotong.complaints.record import Complaint, Event
from sotong.errors import Conflict

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def stamp(hours: float) -> str:
    return clock.iso(T0 + timedelta(hours=hours))


def around_the_clock(kind: str) -> None:
    assert kind == "calendar"


STORED: dict[str, Any] = {
    "id": "c1",
    "code": "ABCD-2345",
    "version": 3,
    "fingerprint": "f" * 16,
    "channel": "sms",
    "kind": "complaint",
    "category": "wait_time",
    "urgency": "normal",
    "department": "front_desk",
    "status": "in_progress",
    "text": "대기시간이 너무 길었습니다.",
    "contact": {"name": "홍길동", "phone": "+821012345678"},
    "consent_to_contact": True,
    "classifier": {
        "kind": "complaint",
        "category": "wait_time",
        "urgency": "normal",
        "matched": ["대기"],
        "by": "rules",
    },
    "routing": {"department": "front_desk", "by": "rules"},
    "created_at": stamp(0),
    "updated_at": stamp(2),
    "sla_clocks": {"ack": "calendar", "resolve": "calendar"},
    "ack_due": stamp(24),
    "ack_due_2": stamp(36),
    "resolve_due": stamp(168),
    "resolve_due_2": stamp(252),
    "escalations": {},
    "replies": [{"at": stamp(1), "by": "cs.kim", "message": "확인 중입니다."}],
    "history": [
        {"status": "received", "by": "sms", "at": stamp(0)},
        {"status": "in_progress", "by": "cs.kim", "note": "확인", "at": stamp(1)},
    ],
    "message_count": 2,
    "source": {"kind": "recall_reply", "patient_id": "p1"},
    "sla_next_check": stamp(168),
    "acknowledged_at": stamp(1),
    "sla_pauses": [{"from": stamp(1), "to": stamp(2)}],
    "legacy_field": {"kept": True},
}


def complaint(**changes: Any) -> Complaint:
    return replace(Complaint.from_item(STORED), **changes)


def test_a_stored_complaint_is_written_back_as_it_was_read() -> None:
    record = Complaint.from_item(STORED)
    assert record.to_item() == STORED
    assert list(record.to_item())[-1] == "legacy_field"
    assert record.history[0].note is None
    assert record.contact is not None
    assert record.contact.phone == "+821012345678"
    assert record.sla_pauses[0].start == stamp(1)


def test_unset_values_are_left_out_and_an_answer_shows_the_new_ones_as_null() -> None:
    record = complaint(sla_next_check=None, sla_pauses=(), contact=None, message_count=None)
    item = record.to_item()
    assert {"sla_next_check", "sla_pauses", "contact", "message_count"}.isdisjoint(item)
    answer = record.answer()
    assert answer["sla_next_check"] is None
    assert answer["history"][-1] == {
        "status": "in_progress",
        "by": "cs.kim",
        "note": "확인",
        "at": stamp(1),
    }
    quiet = replace(record, history=(*record.history, Event(status="closed", by="x", at="t")))
    assert quiet.answer()["history"][-1]["note"] is None
    assert "note" not in quiet.to_item()["history"][-1]


def test_a_transition_the_lifecycle_does_not_allow_is_refused() -> None:
    closed = complaint(status="closed")
    with pytest.raises(Conflict) as refused:
        closed.transition("resolved", by="x", note=None, at=stamp(3), calendar_of=around_the_clock)
    assert refused.value.details["allowed"] == ["in_progress"]
    reopened = closed.transition(
        "in_progress", by="x", note="재개", at=stamp(3), calendar_of=around_the_clock
    )
    assert (reopened.status, reopened.version, reopened.updated_at) == (
        "in_progress",
        4,
        stamp(3),
    )
    assert reopened.history[-1] == Event(status="in_progress", by="x", note="재개", at=stamp(3))
    assert closed.status == "closed"  # the record itself never changes


def test_the_ack_clock_runs_until_acknowledged_and_the_next_check_follows_the_levels() -> None:
    fresh = complaint(status="received", acknowledged_at=None)
    assert fresh.next_check() == stamp(24)
    assert fresh.due_level(T0 + timedelta(hours=24)) == ("ack", 1)
    escalated = fresh.escalated("ack", 1, "department_head", stamp(24), around_the_clock)
    assert escalated.escalations == {"ack:1": stamp(24)}
    assert escalated.sla_next_check == stamp(36)
    assert escalated.due_level(T0 + timedelta(hours=30)) == (None, 0)
    assert escalated.due_level(T0 + timedelta(hours=36)) == ("ack", 2)
    acknowledged = fresh.acknowledged(stamp(5))
    assert acknowledged.acknowledged_at == stamp(5)
    assert acknowledged.next_check() == stamp(168)  # the resolve clock
    assert complaint().acknowledged(stamp(9)).acknowledged_at == stamp(1)


def test_the_next_check_is_never_before_the_write() -> None:
    late = complaint(status="received", acknowledged_at=None)
    assert late.next_check(floor=stamp(30)) == stamp(30)


def test_level_two_without_its_own_due_time_is_half_the_target_again() -> None:
    old = complaint(ack_due_2=None)
    assert old.deadline("ack", 2) == T0 + timedelta(hours=36)
    assert old.deadline("resolve", 2) == T0 + timedelta(hours=252)


def test_waiting_for_the_patient_pauses_the_clocks_and_going_on_moves_them() -> None:
    waiting = complaint().recorded("awaiting_patient", "x", None, stamp(10), around_the_clock)
    assert waiting.awaiting_since == stamp(10)
    assert waiting.sla_next_check is None
    assert waiting.due_level(T0 + timedelta(hours=1000)) == (None, 0)
    resumed = waiting.recorded("in_progress", "patient", "답변", stamp(15), around_the_clock)
    assert resumed.awaiting_since is None
    assert resumed.resolve_due == stamp(173)
    assert resumed.resolve_due_2 == stamp(257)
    assert resumed.ack_due == stamp(29)
    assert [(p.start, p.end) for p in resumed.sla_pauses][-1] == (stamp(10), stamp(15))
    assert resumed.sla_next_check == stamp(173)


def test_reopening_keeps_only_the_ack_escalations() -> None:
    done = complaint(escalations={"ack:1": stamp(24), "resolve:1": stamp(168)})
    assert done.reopening().escalations == {"ack:1": stamp(24)}
