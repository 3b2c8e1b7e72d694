"""The recall records: stored attributes kept as they are, and the lifecycle rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sotong import clock
from sotong.recall.records import (
    AppointmentRecord,
    Patient,
    Touchpoint,
    TransitionError,
    Treatment,
)

SEOUL = ZoneInfo("Asia/Seoul")
NOW = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)


def touchpoint(**overrides: object) -> Touchpoint:
    item = {
        "pk": "ignored",
        "sk": "ignored",
        "gsi2pk": "ignored",
        "id": "t1.recall",
        "patient_id": "p1",
        "treatment_id": "t1",
        "tag": "scaling",
        "step": "recall",
        "template": "recall_checkup",
        "purpose": "service",
        "cancel_if": ["future_booking", "visit_since", "repeat_treatment", "patient_paused"],
        "treatment_date": "2026-05-23",
        "due_at": "2026-11-23T01:00:00.000000Z",
        "status": "planned",
        **overrides,
    }
    return Touchpoint.from_item(item)


def test_stored_attributes_come_back_as_they_were() -> None:
    item = {
        "id": "p1",
        "name": "홍길동",
        "phone": "+821012345678",
        "consents": {"contact": True, "marketing": False, "night": False},
        "last_treatment": {"scaling": "2026-05-23"},
        "paused": False,
        "created_at": "2026-01-01T00:00:00.000000Z",
        "something_new": 3,
    }
    assert Patient.from_item({"pk": "PAT#p1", "sk": "PAT", **item}).to_item() == item
    planned = touchpoint()
    assert planned.to_item()["cancel_if"] == [
        "future_booking",
        "visit_since",
        "repeat_treatment",
        "patient_paused",
    ]
    assert "pk" not in planned.to_item()
    assert "gsi2pk" not in planned.to_item()
    treatment = {"id": "t1", "patient_id": "p1", "tag": "scaling", "department": "dental"}
    assert Treatment.from_item({**treatment, "date": "2026-05-23"}).to_item() == {
        **treatment,
        "date": "2026-05-23",
    }


def test_a_touchpoint_moves_only_where_its_status_allows() -> None:
    planned = touchpoint()
    queued = planned.queue(NOW)
    assert (queued.status, queued.queued_at) == ("queued", clock.iso(NOW))
    assert planned.status == "planned"  # a new record; the old one stays
    converted = queued.convert("visit recorded", NOW)
    assert (converted.status, converted.status_reason) == ("converted", "visit recorded")
    with pytest.raises(TransitionError):
        queued.cancel("too late", NOW)
    with pytest.raises(TransitionError):
        planned.convert("never sent", NOW)
    with pytest.raises(TransitionError):
        converted.queue(NOW)
    cancelled = planned.cancel("future_booking", NOW)
    with pytest.raises(TransitionError):
        cancelled.defer(NOW, "frequency_cap", NOW)


def test_planning_skips_what_is_long_past_and_sends_what_is_just_past() -> None:
    common: dict[str, Any] = {
        "patient_id": "p1",
        "treatment_id": "t1",
        "tag": "scaling",
        "template": "dental_aftercare",
        "purpose": "service",
        "cancel_if": ("patient_paused",),
        "treatment_date": NOW.date(),
        "now": NOW,
    }
    long_past = Touchpoint.planned(step="a", due=NOW - timedelta(hours=13), **common)
    just_past = Touchpoint.planned(step="b", due=NOW - timedelta(hours=1), **common)
    ahead = Touchpoint.planned(step="c", due=NOW + timedelta(days=1), **common)
    assert (long_past.status, long_past.status_reason) == ("skipped", "already past when recorded")
    assert (just_past.status, just_past.due) == ("planned", NOW + timedelta(minutes=1))
    assert (ahead.status, ahead.due) == ("planned", NOW + timedelta(days=1))
    assert ahead.is_due(NOW + timedelta(days=1))
    assert not ahead.is_due(NOW)


def test_what_makes_a_touchpoint_pointless() -> None:
    planned = touchpoint()
    patient = Patient(id="p1", name="홍길동", last_treatment={"scaling": "2026-05-23"})
    assert planned.cancel_reason(patient, NOW, SEOUL) is None
    assert planned.cancel_reason(None, NOW, SEOUL) == "patient_gone"
    paused = patient.with_pause(True, None)
    assert (paused.paused, paused.pause_reason) == (True, "")
    assert planned.cancel_reason(paused, NOW, SEOUL) == "patient_paused"
    booked = patient.noting(
        AppointmentRecord(patient_id="p1", kind="booking", at="2026-12-01T01:00:00.000000Z")
    )
    assert planned.cancel_reason(booked, NOW, SEOUL) == "future_booking"
    assert planned.cancel_reason(booked, NOW + timedelta(days=9), SEOUL) is None  # it is past
    visited = patient.noting(
        AppointmentRecord(patient_id="p1", kind="visit", at="2026-06-01T01:00:00.000000Z")
    )
    assert planned.cancel_reason(visited, NOW, SEOUL) == "visit_since"
    repeated = patient.noting_treatment("scaling", "2026-08-01")
    assert repeated.noting_treatment("scaling", "2026-07-01") is repeated  # earlier: no change
    assert planned.cancel_reason(repeated, NOW, SEOUL) == "repeat_treatment"
    assert touchpoint(cancel_if=[]).cancel_reason(repeated, NOW, SEOUL) is None


def test_the_frequency_cap_defers_to_the_same_local_time() -> None:
    planned = touchpoint(due_at="2026-11-23T01:20:00.000000Z")  # 10:20 KST
    after = NOW + timedelta(days=4)  # 10:30 KST: 10:20 that day is too early
    assert planned.deferred_due(after, SEOUL) == planned.due + timedelta(days=5)
    moved = planned.defer(planned.deferred_due(after, SEOUL), "frequency_cap", NOW)
    assert (moved.status, moved.deferred_reason) == ("planned", "frequency_cap")
    patient = Patient(id="p1", name="홍길동", last_ad_at=clock.iso(NOW - timedelta(days=3)))
    assert patient.advertised_after(NOW - timedelta(days=7))
    assert not patient.advertised_after(NOW - timedelta(days=2))
