"""The replies waiting for an answer (the 답변 대기 queue) and finding a patient, over the
in-memory repository: what waits, in which department's queue, in what order, and what takes a
reply off the queue."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from sotong import clock, consent, tombstones
from sotong.complaints.rule_classifier import RuleClassifier
from sotong.config import load_hospital
from sotong.config.schema import HospitalConfig
from sotong.errors import NotFound
from sotong.recall.access import PatientAccess
from sotong.recall.model import PatientRegistration, StaffMessage, TreatmentRecord
from sotong.recall.service import RecallDesk, Triage
from sotong.staff import Staff
from tests.fakes.recall import InMemoryPatientRepository

NOW = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)  # 14:00 KST
SENT = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # every aftercare is due by then
ADMIN = Staff("cs.kim", "cs_admin", None)
DENTAL = Staff("dental.lee", "department_staff", "dental")
SKIN = Staff("skin.park", "department_staff", "dermatology")


@pytest.fixture
def hospital() -> HospitalConfig:
    return load_hospital()


@pytest.fixture
def repo() -> InMemoryPatientRepository:
    return InMemoryPatientRepository()


@pytest.fixture
def desk(
    hospital: HospitalConfig, repo: InMemoryPatientRepository, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RecallDesk]:
    monkeypatch.setattr(consent, "put_all", lambda changes: None)
    monkeypatch.setattr(consent, "history", lambda hospital_id, phone: [])
    monkeypatch.setattr(tombstones, "erased", lambda hospital_id, identity: {})
    clock.fix(NOW)
    yield RecallDesk(hospital, repo)
    clock.fix(None)


@pytest.fixture
def triage(hospital: HospitalConfig) -> Triage:
    rules = RuleClassifier(hospital)

    def urgency(text: str) -> tuple[str, tuple[str, ...]]:
        found = rules.classify(text)
        return found.urgency, tuple(found.matched)

    return urgency


def sent_a_recall(desk: RecallDesk, phone: str, chart: str, tag: str) -> str:
    """A patient treated yesterday whose aftercare message went out this morning."""
    day = date(2026, 11, 22)
    clock.fix(datetime(2026, 11, 22, 0, 0, tzinfo=UTC))
    registration = {"name": f"환자{chart}", "phone": phone, "chart_no": chart}
    pid = str(desk.register(PatientRegistration.model_validate(registration), by="desk")["id"])
    record = TreatmentRecord.model_validate({"tag": tag, "date": day.isoformat()})
    desk.record_treatment(pid, record, "dr.kim")
    clock.fix(SENT)
    assert isinstance(desk.patients, InMemoryPatientRepository)
    desk.patients.watermarks.clear()  # each patient's run reads from the first lookback again
    assert desk.dispatch_due(SENT).queued >= 1
    clock.fix(NOW)
    return pid


def reply(desk: RecallDesk, phone: str, text: str, minutes: int, mid: str) -> dict[str, Any]:
    e164 = "+82" + phone[1:].replace("-", "")
    answer = desk.inbound(
        e164, text, provider_message_id=mid, received_at=NOW + timedelta(minutes=minutes)
    )
    assert answer is not None
    return answer


def texts(answer: dict[str, Any]) -> list[str]:
    return [item["message"]["text"] for item in answer["replies"]]


def test_harm_is_pinned_first_then_oldest_first_each_in_its_department(
    desk: RecallDesk, triage: Triage
) -> None:
    implant = sent_a_recall(desk, "010-1111-0001", "C-1", "implant_surgery")
    sent_a_recall(desk, "010-1111-0002", "C-2", "botox")
    reply(desk, "010-1111-0001", "내일 방문해도 되나요?", 1, "m1")
    reply(desk, "010-1111-0002", "네 감사합니다", 2, "m2")
    reply(desk, "010-1111-0001", "임플란트 한 곳에서 피가 계속 나요", 3, "m3")
    access = PatientAccess(desk)

    everyone = access.waiting(ADMIN, triage)
    assert texts(everyone) == [
        "임플란트 한 곳에서 피가 계속 나요",
        "내일 방문해도 되나요?",
        "네 감사합니다",
    ]
    first = everyone["replies"][0]
    assert (first["urgency"], first["flagged"], everyone["flagged"]) == ("critical", True, 1)
    assert "피가 계속" in first["matched"]
    assert first["manual"]["tag"] == "implant_surgery"
    assert first["manual"]["text"]
    assert first["patient"] == {"id": implant, "name": "환자C-1", "chart_no": "C-1"}
    assert [t["step"] for t in first["recent_touchpoints"]] == ["aftercare"]
    assert first["department"] == "dental"

    assert texts(access.waiting(DENTAL, triage)) == [
        "임플란트 한 곳에서 피가 계속 나요",
        "내일 방문해도 되나요?",
    ]
    assert texts(access.waiting(SKIN, triage)) == ["네 감사합니다"]


@pytest.mark.parametrize("text", ["많이 부었어요", "열이 나요"])
def test_swelling_and_fever_are_flagged(desk: RecallDesk, triage: Triage, text: str) -> None:
    sent_a_recall(desk, "010-1111-0001", "C-1", "implant_surgery")
    reply(desk, "010-1111-0001", text, 1, "m1")
    (item,) = PatientAccess(desk).waiting(DENTAL, triage)["replies"]
    assert item["flagged"] is True
    assert item["urgency"] in ("critical", "high")


def test_an_answer_takes_the_patients_replies_off_the_queue(
    desk: RecallDesk, repo: InMemoryPatientRepository, triage: Triage
) -> None:
    pid = sent_a_recall(desk, "010-1111-0001", "C-1", "implant_surgery")
    other = sent_a_recall(desk, "010-1111-0002", "C-2", "scaling")
    reply(desk, "010-1111-0001", "피가 계속 나요", 1, "m1")
    reply(desk, "010-1111-0001", "지금도요", 2, "m2")
    reply(desk, "010-1111-0002", "감사합니다", 3, "m3")
    message = StaffMessage.model_validate({"message": "지금 바로 내원해 주세요."})
    clock.fix(NOW + timedelta(minutes=5))
    desk.answer(pid, message.message, "dental.lee")
    assert texts(PatientAccess(desk).waiting(DENTAL, triage)) == ["감사합니다"]
    assert repo.waiting_of(pid) == []
    # the conversation keeps every message
    assert [m["text"] for m in desk.conversation(pid)["messages"]] == [
        "피가 계속 나요",
        "지금도요",
        "지금 바로 내원해 주세요.",
    ]
    settled = PatientAccess(desk).settle(DENTAL, other, "converted")
    assert settled["settled"] == 1
    assert settled["converted"] is not None
    assert PatientAccess(desk).waiting(DENTAL, triage)["replies"] == []
    step = next(t for t in desk.touchpoints(other) if t["step"] == "aftercare")
    assert step["status"] == "converted"


def test_a_reply_delivered_twice_waits_once(desk: RecallDesk, triage: Triage) -> None:
    sent_a_recall(desk, "010-1111-0001", "C-1", "implant_surgery")
    reply(desk, "010-1111-0001", "열이 나요", 1, "m1")
    assert reply(desk, "010-1111-0001", "열이 나요", 1, "m1")["duplicate"] is True
    assert texts(PatientAccess(desk).waiting(ADMIN, triage)) == ["열이 나요"]


def test_settling_another_departments_patient_is_not_found(desk: RecallDesk) -> None:
    botox = sent_a_recall(desk, "010-1111-0002", "C-2", "botox")
    with pytest.raises(NotFound):
        PatientAccess(desk).settle(DENTAL, botox, "handled")


def test_a_patient_is_found_by_chart_number_or_phone_within_the_callers_reach(
    desk: RecallDesk,
) -> None:
    implant = sent_a_recall(desk, "010-1111-0001", "C-1", "implant_surgery")
    access = PatientAccess(desk)
    assert [p["id"] for p in access.find(DENTAL, "C-1", None)] == [implant]
    assert [p["id"] for p in access.find(ADMIN, None, "+821011110001")] == [implant]
    assert access.find(SKIN, "C-1", None) == []  # another department's patient: nobody
    assert access.find(ADMIN, "C-404", None) == []
    (seen,) = access.find(Staff("desk.choi", "reception", "front_desk"), "C-1", None)
    assert "upcoming" not in seen
    assert "last_treatment" not in seen
