"""The complaint desk over the in-memory repository: intake, the lifecycle, SLA escalation and
tracking, with no DynamoDB and no network (`conftest.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sotong import clock
from sotong.complaints.classification import Classification
from sotong.complaints.model import Assignment, ComplaintSubmission, Reply, Resolution
from sotong.complaints.record import Complaint
from sotong.complaints.service import ComplaintDesk
from sotong.config import load_hospital
from sotong.config.schema import HospitalConfig
from sotong.errors import Conflict, NotFound
from sotong.staff import Staff
from tests.fakes.complaints import InMemoryComplaintRepository

START = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Monday 10:00 in Seoul
ADMIN = Staff(username="cs.kim", role="cs_admin", department="customer_service")
DENTAL = Staff(username="lee.dental", role="department_staff", department="dental")
PHONE = "010-1234-5678"
E164 = "+821012345678"  # as the form's field stores it
WAIT = "접수 대기시간이 1시간이 넘었는데 아무 안내도 없었습니다."


@dataclass
class Fixed:
    """A classifier that says what the test needs."""

    urgency: str = "normal"
    category: str = "wait_time"

    def classify(self, text: str, category_hint: str | None = None) -> Classification:
        return Classification("complaint", self.category, self.urgency, ("대기",), "rules")


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    clock.fix(START)
    yield
    clock.fix(None)


@pytest.fixture(scope="module")
def hospital() -> HospitalConfig:
    return load_hospital()


@pytest.fixture
def repo() -> InMemoryComplaintRepository:
    return InMemoryComplaintRepository()


@pytest.fixture
def desk(hospital: HospitalConfig, repo: InMemoryComplaintRepository) -> ComplaintDesk:
    return ComplaintDesk(hospital, Fixed(), repo)


def form(text: str = WAIT, **fields: Any) -> ComplaintSubmission:
    return ComplaintSubmission(
        text=text, contact={"phone": PHONE}, consent_to_contact=True, **fields
    )


def file(desk: ComplaintDesk, repo: InMemoryComplaintRepository, **fields: Any) -> Complaint:
    receipt, created = desk.submit(form(**fields), channel="web")
    assert created
    found = repo.by_code(receipt["tracking_code"])
    assert found is not None
    return found


def at(minutes: float) -> None:
    clock.fix(START + timedelta(minutes=minutes))


def sweep(desk: ComplaintDesk, hours: float) -> int:
    """The scheduled sweep, run at `hours` after START."""
    at(hours * 60)
    return desk.sweep_sla(clock.now())["escalated"]


# --- intake ---------------------------------------------------------------------------------------
def test_intake_stores_routes_and_acknowledges_in_one_write(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository
) -> None:
    receipt, created = desk.submit(form(), channel="web", idempotency_key="k-1")
    assert created
    stored = repo.get(desk.complaint_id_for("k-1"))
    assert stored is not None
    assert (stored.status, stored.department, stored.version) == ("received", "front_desk", 1)
    assert receipt["tracking_code"] == stored.code
    assert receipt["acknowledge_by"] == "2026-11-24T10:00:00+09:00"  # normal: 24 h
    assert stored.sla_next_check == stored.ack_due
    assert [e.status for e in stored.history] == ["received"]
    assert repo.writes == 1
    # the acknowledgement, and the department told in the same write
    assert repo.outbox.templates() == ["complaint_received", "staff_routed"]
    assert repo.outbox.requests[0].urgent  # the patient's own action: answered at once
    assert len(repo.consents) == 1
    assert repo.complaints_of_contact(desk._sender_key(E164)) == [stored.id]


def test_a_retry_with_the_same_key_returns_the_same_receipt_and_writes_nothing(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository
) -> None:
    first, _ = desk.submit(form(), channel="web", idempotency_key="k-1")
    again, created = desk.submit(form(), channel="web", idempotency_key="k-1")
    assert not created
    assert again == first
    assert repo.writes == 1
    assert len(repo.outbox.requests) == 2  # the acknowledgement and the routing alert, once
    with pytest.raises(Conflict, match="different complaint"):
        desk.submit(
            form("다른 내용의 불만입니다. 주차장이 좁아요"), channel="web", idempotency_key="k-1"
        )


def test_a_race_lost_to_the_same_retry_answers_the_winners_receipt(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read said nothing was there, but a concurrent retry wrote it first."""
    winner, _ = desk.submit(form(), channel="web", idempotency_key="k-1")
    real_get = repo.get
    reads: list[str] = []

    def first_read_misses(complaint_id: str) -> Complaint | None:
        reads.append(complaint_id)
        return None if len(reads) == 1 else real_get(complaint_id)

    monkeypatch.setattr(repo, "get", first_read_misses)
    again, created = desk.submit(form(), channel="web", idempotency_key="k-1")
    assert (again, created) == (winner, False)
    assert repo.writes == 1
    assert len(repo.outbox.requests) == 2


def test_a_critical_complaint_pages_on_call_in_the_same_write(
    hospital: HospitalConfig, repo: InMemoryComplaintRepository
) -> None:
    desk = ComplaintDesk(hospital, Fixed(urgency="critical", category="safety"), repo)
    receipt, _ = desk.submit(form("임플란트 흔들려서 피가 나요. 바로 봐 주세요"), channel="web")
    assert repo.writes == 1
    pages = [r for r in repo.outbox.requests if r.template_id == "staff_critical"]
    assert [r.template_id for r in repo.outbox.requests if r.recipient.kind == "patient"] == [
        "complaint_received"
    ]
    (alert,) = pages
    assert alert.urgent
    assert alert.recipient.name == hospital.on_call.name
    assert alert.variables["code"] == receipt["tracking_code"]
    routed = [r for r in repo.outbox.requests if r.template_id.startswith("staff_routed")]
    assert routed
    assert all(r.urgent and r.not_before is None for r in routed)  # critical: at once
    assert receipt["acknowledge_by"] == "2026-11-23T11:00:00+09:00"  # critical: 1 h


def test_without_consent_the_patient_gets_no_message(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository
) -> None:
    desk.submit(ComplaintSubmission(text=WAIT, consent_to_contact=False), channel="web")
    assert [r for r in repo.outbox.requests if r.recipient.kind == "patient"] == []
    assert repo.outbox.templates() == ["staff_routed"]  # the department is still told
    assert repo.consents == []


def test_sms_joins_the_senders_open_complaint_once(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository
) -> None:
    sender = E164
    receipt, created = desk.take_inbound(sender, "주차장이 너무 좁아요", "sms", key="m-1") or (
        {},
        None,
    )
    assert created is True
    at(5)
    joined = desk.take_inbound(sender, "그리고 안내도 없었어요", "sms", key="m-2")
    assert joined == (receipt, False)
    assert desk.take_inbound(sender, "그리고 안내도 없었어요", "sms", key="m-2") is None
    (complaint,) = repo.complaints.values()
    assert complaint.message_count == 2
    assert [m["text"] for m in repo.messages(complaint.id)] == [
        "주차장이 너무 좁아요",
        "그리고 안내도 없었어요",
    ]
    assert repo.inbound_keys(complaint.id) == {"m-1", "m-2"}
    assert complaint.history[-1].note == "추가 메시지 수신"


def test_after_the_close_the_senders_next_sms_starts_a_new_complaint(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository
) -> None:
    first = desk.take_inbound(E164, "주차장이 너무 좁아요", "sms", key="m-1")
    assert first is not None
    (cid,) = repo.complaints
    assert repo.open_for_sender(desk._sender_key(E164)) == cid
    desk.resolve(ADMIN, cid, Resolution(outcome="주차 안내를 늘렸습니다."))
    desk.close(ADMIN, cid, None)
    assert repo.open_for_sender(desk._sender_key(E164)) is None
    at(60)
    again = desk.take_inbound(E164, "또 주차 문제가 있었어요", "sms", key="m-2")
    assert again is not None
    assert again[1] is True
    assert len(repo.complaints) == 2


# --- lifecycle ------------------------------------------------------------------------------------
def test_assign_reply_resolve_close_reopen(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository
) -> None:
    cid = file(desk, repo).id
    at(10)
    assigned = desk.assign(ADMIN, cid, Assignment(assignee="lee", department="dental"))
    assert assigned["status"] == "assigned"
    assert assigned["acknowledged_at"] == clock.iso(clock.now())  # any staff action acknowledges
    assert assigned["routing"]["was"] == "front_desk"
    assert assigned["history"][-1] == {
        "status": "assigned",
        "by": "cs.kim",
        "note": "담당: lee / 부서: dental",
        "at": clock.iso(clock.now()),
    }
    assert assigned == repo.get(cid).answer()  # type: ignore[union-attr]
    at(20)
    replied = desk.reply(DENTAL, cid, Reply(message="확인 중입니다. 조금만 기다려 주세요."))
    assert replied["status"] == "in_progress"
    assert repo.outbox.templates()[-1] == "complaint_progress"
    at(30)
    resolved = desk.resolve(DENTAL, cid, Resolution(outcome="대기 안내 화면을 설치했습니다."))
    assert resolved["status"] == "resolved"
    assert resolved["sla_next_check"] is None  # no clock runs: shown as null
    assert repo.outbox.templates()[-1] == "complaint_outcome"
    at(40)
    closed = desk.close(ADMIN, cid, None)
    assert closed["status"] == "closed"
    assert closed["history"][-1]["note"] is None
    assert repo.outbox.templates()[-1] == "complaint_survey"
    at(50)
    reopened = desk.reopen(ADMIN, cid, None)
    assert reopened["status"] == "in_progress"
    assert reopened["sla_next_check"] == reopened["resolve_due"]
    stored = repo.get(cid)
    assert stored is not None
    assert stored.version == 6
    assert [e.status for e in stored.history] == [
        "received",
        "assigned",
        "in_progress",
        "resolved",
        "closed",
        "in_progress",
    ]
    assert stored.to_item()["history"][-1]["note"] == "재개"


@pytest.mark.parametrize(
    ("steps", "action", "message"),
    [
        ([], lambda d, c: d.change_status(ADMIN, c, "closed", None), "cannot go from received"),
        ([], lambda d, c: d.change_status(ADMIN, c, "resolved", None), "resolve with POST"),
        ([], lambda d, c: d.close(ADMIN, c, None), "only a resolved complaint"),
        ([], lambda d, c: d.reopen(ADMIN, c, None), "only a resolved or closed"),
        (["resolve"], lambda d, c: d.assign(ADMIN, c, Assignment(assignee="x")), "reopen it"),
        (["resolve"], lambda d, c: d.resolve(ADMIN, c, Resolution(outcome="다시")), "cannot"),
        (
            ["resolve", "close"],
            lambda d, c: d.reply(ADMIN, c, Reply(message="질문", awaiting_patient=True)),
            "cannot wait",
        ),
    ],
)
def test_a_refused_transition_is_a_409_and_writes_nothing(
    desk: ComplaintDesk,
    repo: InMemoryComplaintRepository,
    steps: list[str],
    action: Any,
    message: str,
) -> None:
    cid = file(desk, repo).id
    for step in steps:
        if step == "resolve":
            desk.resolve(ADMIN, cid, Resolution(outcome="처리했습니다."))
        else:
            desk.close(ADMIN, cid, None)
    before, sent = repo.get(cid), len(repo.outbox.requests)
    with pytest.raises(Conflict, match=message) as refused:
        action(desk, cid)
    assert refused.value.details["allowed"]
    assert repo.get(cid) == before
    assert len(repo.outbox.requests) == sent


def test_a_change_from_a_stale_read_is_refused_with_its_message(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = file(desk, repo).id
    real_get = repo.get

    def stale(complaint_id: str) -> Complaint | None:
        found = real_get(complaint_id)
        return replace(found, version=found.version - 1) if found else None

    monkeypatch.setattr(repo, "get", stale)
    with pytest.raises(Conflict, match="changed meanwhile"):
        desk.reply(ADMIN, cid, Reply(message="확인 중입니다."))
    assert repo.outbox.templates() == ["complaint_received", "staff_routed"]


def test_other_departments_do_not_see_it(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository
) -> None:
    cid = file(desk, repo).id  # routed to the front desk
    with pytest.raises(NotFound):
        desk.reply(DENTAL, cid, Reply(message="확인 중입니다."))


def test_waiting_for_the_patient_pauses_and_their_sms_resumes(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository
) -> None:
    cid = file(desk, repo).id
    at(30)
    asked = desk.reply(ADMIN, cid, Reply(message="언제 오셨나요?", awaiting_patient=True))
    assert asked["status"] == "awaiting_patient"
    assert asked["sla_next_check"] is None
    assert repo.open_for_sender(desk._sender_key(E164)) == cid
    before = repo.get(cid)
    assert before is not None
    at(30 + 600)  # ten hours later the patient answers by SMS
    assert desk.take_inbound(E164, "오후 2시쯤이요", "sms", key="m-9") is not None
    resumed = repo.get(cid)
    assert resumed is not None
    assert resumed.status == "in_progress"
    assert resumed.awaiting_since is None
    moved = clock.parse(resumed.resolve_due) - clock.parse(before.resolve_due)
    assert moved == timedelta(hours=10)
    assert [(p.start, p.end) for p in resumed.sla_pauses] == [
        (clock.iso(START + timedelta(minutes=30)), clock.iso(clock.now()))
    ]


def test_a_correction_is_labelled_for_training(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository
) -> None:
    from sotong.complaints.model import Correction

    cid = file(desk, repo).id
    corrected = desk.correct(ADMIN, cid, Correction(category="parking", urgency="high"))
    assert corrected["urgency"] == "high"
    assert corrected["ack_due"] == clock.iso(START + timedelta(hours=4))
    assert repo.corrected_in("2026-11") == [cid]
    (line,) = desk.corrections(["2026-11"])
    assert line["category"] == "parking"
    assert line["was"] == {"kind": "complaint", "category": "wait_time", "urgency": "normal"}


# --- SLA ------------------------------------------------------------------------------------------
def test_the_sweep_escalates_each_level_once(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository
) -> None:
    complaint = file(desk, repo)  # normal: acknowledge in 24 h, level 2 at 36 h
    assert complaint.due_level(START + timedelta(hours=23)) == (None, 0)
    assert complaint.due_level(START + timedelta(hours=24)) == ("ack", 1)

    assert sweep(desk, 23 + 59 / 60) == 0
    assert sweep(desk, 24) == 1
    assert sweep(desk, 24 + 5 / 60) == 0  # once per level
    stored = repo.get(complaint.id)
    assert stored is not None
    assert set(stored.escalations) == {"ack:1"}
    assert stored.sla_next_check == clock.iso(START + timedelta(hours=36))
    assert stored.history[-1].note == "SLA 초과(ack) → department_head"
    head = next(r for r in repo.outbox.requests if r.template_id == "staff_alert")
    assert head.recipient.name == "최유진"  # the front desk's head

    assert sweep(desk, 36) == 1
    alerts = [r for r in repo.outbox.requests if r.template_id == "staff_alert"]
    assert [a.variables["level"] for a in alerts] == ["SLA 1단계", "SLA 2단계"]
    assert alerts[-1].recipient.name == desk.hospital.cs_admin.name
    assert repo.watermark == START + timedelta(hours=36)


def test_an_unacknowledged_critical_complaint_is_counted(
    hospital: HospitalConfig, repo: InMemoryComplaintRepository
) -> None:
    desk = ComplaintDesk(hospital, Fixed(urgency="critical", category="safety"), repo)
    file(desk, repo)
    at(60)
    report = desk.sweep_sla(clock.now())
    assert report == {"escalated": 1, "critical_unacknowledged": 1}


def test_an_acknowledged_complaint_escalates_on_its_resolve_clock_only(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository
) -> None:
    cid = file(desk, repo).id
    desk.change_status(ADMIN, cid, "acknowledged", None)
    assert sweep(desk, 30) == 0
    assert sweep(desk, 168) == 1
    stored = repo.get(cid)
    assert stored is not None
    assert set(stored.escalations) == {"resolve:1"}


# --- patients -------------------------------------------------------------------------------------
def test_tracking_by_code_needs_the_last_four_digits(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository
) -> None:
    complaint = file(desk, repo)
    at(20)
    desk.reply(ADMIN, complaint.id, Reply(message="확인 중입니다."))
    code = complaint.code.lower().replace("-", " ")  # as people type it
    tracked = desk.track(code, "5678")
    assert tracked["status"] == "in_progress"
    assert tracked["received_at"] == "2026-11-23T10:00:00+09:00"
    assert tracked["replies"] == [{"at": "2026-11-23T10:20:00+09:00", "message": "확인 중입니다."}]
    with pytest.raises(NotFound):
        desk.track(complaint.code, "0000")
    with pytest.raises(NotFound):
        desk.track("ZZZZ-2222", "5678")


def test_the_survey_is_answered_once(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository
) -> None:
    from sotong.complaints.model import SurveyAnswer

    cid = file(desk, repo).id
    desk.resolve(ADMIN, cid, Resolution(outcome="처리했습니다."))
    desk.close(ADMIN, cid, None)
    stored = repo.get(cid)
    assert stored is not None
    assert stored.survey_token
    answer = SurveyAnswer(code=stored.code, token=stored.survey_token, score=5)
    desk.answer_survey(answer)
    after = repo.get(cid)
    assert after is not None
    assert after.survey is not None
    assert after.survey["score"] == 5
    assert "comment" not in after.survey  # unset, as the table keeps it
    with pytest.raises(Conflict):
        desk.answer_survey(answer)
    with pytest.raises(NotFound):
        desk.answer_survey(replace_token(answer))


def replace_token(answer: Any) -> Any:
    return answer.model_copy(update={"token": "x" * 20})


def test_the_inbox_filters_by_channel_on_the_server(
    desk: ComplaintDesk, repo: InMemoryComplaintRepository
) -> None:
    on_web = file(desk, repo)
    by_phone, _ = desk.submit(form("전화로 접수: 주차장이 너무 좁아요"), channel="phone")

    def listed(channel: str | None) -> list[str]:
        page = desk.inbox(
            ADMIN,
            state="open",
            department=None,
            status=None,
            urgency=None,
            since=None,
            until=None,
            limit=25,
            cursor=None,
            channel=channel,
        )
        return [item["code"] for item in page["items"]]

    assert listed("web") == [on_web.code]
    assert listed("phone") == [by_phone["tracking_code"]]
    assert len(listed(None)) == 2
