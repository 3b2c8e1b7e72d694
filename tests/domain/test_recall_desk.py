"""The recall desk over the in-memory repository: registering, planning, rescheduling,
cancelling, dispatching and pausing, with no DynamoDB and no sockets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from sotong import clock, consent, tombstones
from sotong.config import load_hospital
from sotong.config.schema import HospitalConfig
from sotong.errors import NotFound
from sotong.recall.model import Appointment, PatientRegistration, TreatmentRecord
from sotong.recall.service import DISPATCH, RecallDesk
from tests.fakes.recall import InMemoryPatientRepository

NOW = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)  # 10:30 KST
TODAY = date(2026, 11, 23)


@pytest.fixture
def hospital() -> HospitalConfig:
    return load_hospital()


@pytest.fixture
def audited(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Consent changes the desk audits; tombstones (another port) find nobody erased."""
    changes: list[dict[str, Any]] = []
    monkeypatch.setattr(consent, "put_all", changes.extend)
    monkeypatch.setattr(tombstones, "erased", lambda hospital_id, identity: {})
    return changes


@pytest.fixture
def repo() -> InMemoryPatientRepository:
    return InMemoryPatientRepository()


@pytest.fixture
def desk(
    hospital: HospitalConfig, repo: InMemoryPatientRepository, audited: list[dict[str, Any]]
) -> Iterator[RecallDesk]:
    clock.fix(NOW)
    yield RecallDesk(hospital, repo)
    clock.fix(None)


def register(desk: RecallDesk, **overrides: Any) -> str:
    body = {
        "name": "홍길동",
        "phone": "010-1234-5678",
        "chart_no": "C-1",
        "consents": {"contact": True, "marketing": True, "night": False},
        **overrides,
    }
    return str(desk.register(PatientRegistration.model_validate(body), by="desk")["id"])


def treat(desk: RecallDesk, pid: str, tag: str, day: date) -> dict[str, Any]:
    record = TreatmentRecord.model_validate({"tag": tag, "date": day.isoformat()})
    answer, _ = desk.record_treatment(pid, record, "dr.kim")
    return answer


def statuses(desk: RecallDesk, pid: str) -> dict[str, str]:
    return {t["step"]: t["status"] for t in desk.touchpoints(pid)}


def test_registering_stores_the_patient_and_audits_the_consents(
    desk: RecallDesk, repo: InMemoryPatientRepository, audited: list[dict[str, Any]]
) -> None:
    pid = register(desk)
    patient = desk.patient(pid)
    assert (patient["name"], patient["chart_no"]) == ("홍길동", "C-1")
    assert patient["consents"] == {"contact": True, "marketing": True, "night": False}
    assert patient["last_treatment"] == {}
    assert audited  # the first consents are audited
    # registering again with a new name updates the same patient, not another
    assert register(desk, name="홍길순") == pid
    assert desk.patient(pid)["name"] == "홍길순"
    assert list(repo.stored_patients) == [pid]


def test_recording_a_treatment_plans_each_step_of_its_tag_once(
    desk: RecallDesk, hospital: HospitalConfig, repo: InMemoryPatientRepository
) -> None:
    pid = register(desk)
    answer = treat(desk, pid, "implant_surgery", TODAY + timedelta(days=3))
    tag = hospital.treatment_tag("implant_surgery")
    assert tag is not None
    assert [t["step"] for t in answer["touchpoints"]] == [s.id for s in tag.plan]
    assert set(statuses(desk, pid).values()) == {"planned"}
    assert desk.patient(pid)["last_treatment"] == {"implant_surgery": "2026-11-26"}
    # the same treatment again: nothing new is planned
    record = TreatmentRecord.model_validate({"tag": "implant_surgery", "date": "2026-11-26"})
    _, created = desk.record_treatment(pid, record, "dr.kim")
    assert created is False
    assert len(repo.stored_touchpoints) == len(tag.plan)


def test_a_treatment_recorded_late_skips_what_is_long_past(desk: RecallDesk) -> None:
    pid = register(desk)
    treat(desk, pid, "implant_surgery", TODAY - timedelta(days=3))
    assert statuses(desk, pid) == {
        "precautions": "skipped",
        "aftercare": "skipped",
        "feedback": "planned",
        "recall": "planned",
    }


def due_of(desk: RecallDesk, pid: str, step: str) -> datetime:
    (touchpoint,) = [t for t in desk.touchpoints(pid) if t["step"] == step]
    return clock.parse(touchpoint["due_at"])


def recorded_earlier(desk: RecallDesk, tag: str, day: date) -> str:
    """A patient whose treatment on `day` was recorded that day."""
    clock.fix(datetime.combine(day, datetime.min.time(), tzinfo=UTC))
    pid = register(desk)
    treat(desk, pid, tag, day)
    return pid


def dispatch_at(desk: RecallDesk, at: datetime) -> Any:
    clock.fix(at)
    return desk.dispatch_due(at)


def test_changing_the_treatment_date_reschedules_what_is_still_planned(desk: RecallDesk) -> None:
    pid = recorded_earlier(desk, "scaling", TODAY)
    before = {t["step"]: t["due_at"] for t in desk.touchpoints(pid)}
    dispatch_at(desk, due_of(desk, pid, "aftercare") + timedelta(minutes=1))
    assert statuses(desk, pid)["aftercare"] == "queued"
    (treatment_id,) = {t["treatment_id"] for t in desk.touchpoints(pid)}
    moved = desk.change_treatment_date(pid, treatment_id, TODAY + timedelta(days=7), "dr.kim")
    after = {t["step"]: t for t in moved["touchpoints"]}
    assert after["aftercare"]["status"] == "queued"  # sent stays sent
    assert after["aftercare"]["due_at"] == before["aftercare"]
    week = timedelta(days=7)
    for step in ("recall", "next_step"):
        assert after[step]["status"] == "planned"
        assert clock.parse(after[step]["due_at"]) == clock.parse(before[step]) + week
    assert moved["date"] == "2026-11-30"
    assert desk.patient(pid)["last_treatment"] == {"scaling": "2026-11-30"}


def test_dispatch_sends_what_is_due_once(desk: RecallDesk, repo: InMemoryPatientRepository) -> None:
    pid = recorded_earlier(desk, "implant_surgery", TODAY)
    due = due_of(desk, pid, "aftercare")
    report = dispatch_at(desk, due + timedelta(minutes=1))
    assert (report.read, report.queued, report.cancelled) == (1, 1, 0)
    assert repo.outbox.templates() == ["dental_aftercare"]
    (request,) = repo.outbox.requests
    assert request.idempotency_key == f"touchpoint:{pid}:{request.refs['touchpoint']}"
    assert request.recipient.patient_id == pid
    assert statuses(desk, pid)["aftercare"] == "queued"
    # the next run reads a few minutes behind the watermark again, and sends nothing twice
    again = dispatch_at(desk, due + timedelta(minutes=2))
    assert (again.read, again.queued, again.already_done) == (0, 0, 0)
    assert len(repo.outbox.requests) == 1
    assert repo.watermark(DISPATCH) == due + timedelta(minutes=2)
    assert repo.leases == {}


def test_a_run_that_cannot_take_the_lease_does_nothing(
    desk: RecallDesk, repo: InMemoryPatientRepository
) -> None:
    pid = recorded_earlier(desk, "scaling", TODAY)
    due = due_of(desk, pid, "aftercare") + timedelta(minutes=1)
    assert repo.take_lease(DISPATCH, "another run", due, timedelta(seconds=150))
    report = dispatch_at(desk, due)
    assert (report.leased, report.queued) == (False, 0)
    assert repo.outbox.requests == []
    assert statuses(desk, pid)["aftercare"] == "planned"


def test_a_booking_cancels_the_recall_it_makes_pointless(
    desk: RecallDesk, repo: InMemoryPatientRepository
) -> None:
    pid = recorded_earlier(desk, "scaling", date(2026, 5, 20))
    due = due_of(desk, pid, "recall")
    clock.fix(due - timedelta(days=2))
    booking = Appointment.model_validate({"kind": "booking", "at": "2026-12-01T10:00:00+09:00"})
    desk.record_appointment(pid, booking, "desk")
    report = dispatch_at(desk, due + timedelta(minutes=1))
    assert (report.cancelled, report.reasons["future_booking"], report.queued) == (1, 1, 0)
    (cancelled,) = [t for t in desk.touchpoints(pid) if t["step"] == "recall"]
    assert (cancelled["status"], cancelled["status_reason"]) == ("cancelled", "future_booking")
    assert repo.outbox.requests == []


def test_without_a_booking_the_recall_goes(
    desk: RecallDesk, repo: InMemoryPatientRepository
) -> None:
    pid = recorded_earlier(desk, "scaling", date(2026, 5, 20))
    report = dispatch_at(desk, due_of(desk, pid, "recall") + timedelta(minutes=1))
    assert (report.cancelled, report.queued) == (0, 1)
    assert repo.outbox.templates() == ["recall_checkup"]


def test_a_visit_after_a_recall_converts_it(desk: RecallDesk) -> None:
    pid = recorded_earlier(desk, "scaling", date(2026, 5, 20))
    assert dispatch_at(desk, due_of(desk, pid, "recall") + timedelta(minutes=1)).queued == 1
    visit = Appointment.model_validate({"kind": "visit", "at": "2026-11-23T11:00:00+09:00"})
    answer = desk.record_appointment(pid, visit, "desk")
    (recall,) = [t for t in desk.touchpoints(pid) if t["step"] == "recall"]
    assert answer["converted"] == recall["id"]
    assert (recall["status"], recall["status_reason"]) == ("converted", "visit recorded")
    assert answer["patient"]["last_visit_at"] == "2026-11-23T02:00:00.000000Z"
    # an earlier visit recorded after it does not move the last visit back
    earlier = Appointment.model_validate({"kind": "visit", "at": "2026-11-01T11:00:00+09:00"})
    later = desk.record_appointment(pid, earlier, "desk")
    assert later["patient"]["last_visit_at"] == "2026-11-23T02:00:00.000000Z"
    assert later["converted"] is None


def test_a_paused_patient_gets_nothing_until_resumed(
    desk: RecallDesk, repo: InMemoryPatientRepository
) -> None:
    pid = recorded_earlier(desk, "scaling", TODAY)
    paused = desk.pause(pid, True, "해외 체류")
    assert (paused["paused"], paused["pause_reason"]) == (True, "해외 체류")
    report = dispatch_at(desk, due_of(desk, pid, "aftercare") + timedelta(minutes=1))
    assert (report.cancelled, report.reasons["patient_paused"], report.queued) == (1, 1, 0)
    assert repo.outbox.requests == []
    resumed = desk.pause(pid, False, None)
    assert (resumed["paused"], resumed["pause_reason"]) == (False, "")
    report = dispatch_at(desk, due_of(desk, pid, "recall") + timedelta(minutes=1))
    assert report.queued == 1
    with pytest.raises(NotFound):
        desk.pause("p-nobody", True, None)


def test_staff_cancel_a_planned_touchpoint_once(desk: RecallDesk) -> None:
    pid = register(desk)
    answer = treat(desk, pid, "scaling", TODAY + timedelta(days=3))
    recall = next(t for t in answer["touchpoints"] if t["step"] == "recall")
    cancelled = desk.cancel_touchpoint(pid, recall["id"], "desk.choi")
    assert (cancelled["status"], cancelled["status_reason"]) == (
        "cancelled",
        "cancelled by desk.choi",
    )
    with pytest.raises(NotFound):
        desk.cancel_touchpoint(pid, recall["id"], "desk.choi")


def test_a_marketing_step_waits_for_the_frequency_cap(
    desk: RecallDesk, repo: InMemoryPatientRepository
) -> None:
    pid = recorded_earlier(desk, "scaling", date(2025, 11, 22))
    due = due_of(desk, pid, "next_step")
    repo._change(pid, last_ad_at=clock.iso(due - timedelta(days=3)))
    report = dispatch_at(desk, due + timedelta(minutes=1))
    assert (report.queued, report.deferred) == (0, 1)
    (step,) = [t for t in desk.touchpoints(pid) if t["step"] == "next_step"]
    assert (step["status"], step["deferred_reason"]) == ("planned", "frequency_cap")
    moved = clock.parse(step["due_at"])
    assert moved >= due + timedelta(days=4)
    assert moved.astimezone(desk.hospital.zone).time() == due.astimezone(desk.hospital.zone).time()
    assert repo.outbox.requests == []
    assert dispatch_at(desk, moved + timedelta(minutes=1)).queued == 1
    assert repo.outbox.templates() == ["scaling_next_step"]
    assert desk.patient(pid)["last_ad_at"] == clock.iso(moved + timedelta(minutes=1))


def test_a_reply_joins_the_conversation_and_1_converts(
    desk: RecallDesk, repo: InMemoryPatientRepository
) -> None:
    pid = recorded_earlier(desk, "scaling", date(2026, 5, 20))
    dispatch_at(desk, due_of(desk, pid, "recall") + timedelta(minutes=1))
    answer = desk.inbound("+821012345678", "1", provider_message_id="m-1")
    assert answer is not None
    assert answer["converted"] is not None
    again = desk.inbound("+821012345678", "1", provider_message_id="m-1")
    assert again is not None
    assert again["duplicate"] is True
    conversation = desk.conversation(pid)
    assert [m["text"] for m in conversation["messages"]] == ["1"]
    assert conversation["manual"]["tag"] == "scaling"
    assert desk.inbound("+821099990000", "hello") is None  # nobody we sent a recall
