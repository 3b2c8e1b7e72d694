"""Business-hours SLA clocks against moto: the sweeper (`sla_sweeper`, reading the sparse
`SLA#<hour>` index) escalates at the business-hours due time and not before, across a weekend
and 설날 2027; a complaint waiting for the patient has no next check and never escalates; the
patient's SMS answer resumes it with its due times moved by the paused business hours."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from sotong import clock, store
from sotong.complaints import repository as repo
from sotong.complaints.classify import classifier_for
from sotong.complaints.model import ComplaintSubmission, Reply, Resolution
from sotong.complaints.repository import DynamoComplaintRepository
from sotong.complaints.service import ComplaintDesk
from sotong.config.loader import parse_hospital
from sotong.config.schema import HospitalConfig
from sotong.staff import Staff
from tests.integration.api import ADMIN as API_ADMIN
from tests.integration.api import call
from tests.integration.test_complaints import _inbound as inbound_sms
from tests.integration.test_complaints import complaints_env, find, queued
from tests.integration.test_complaints import submit as submit_form

__all__ = ["complaints_env"]
KST = ZoneInfo("Asia/Seoul")
ROOT = Path(__file__).resolve().parents[2]
ADMIN = Staff(username="cs.kim", role="cs_admin", department="customer_service")
PHONE = "010-1234-5678"
complaints = DynamoComplaintRepository("demo")


def stored_item(complaint_id: str) -> dict[str, Any] | None:
    found = complaints.get(complaint_id)
    return found.to_item() if found else None


def kst(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=KST)


def business_hospital(normal: dict[str, Any]) -> HospitalConfig:
    """The demo hospital with `normal` complaints on business hours (Mon-Fri 09:00-18:00,
    Korean public holidays); critical and high stay around the clock."""
    data = yaml.safe_load((ROOT / "hospitals" / "demo.yaml").read_text(encoding="utf-8"))
    data["sla"] = {
        "critical": {"acknowledge": 1, "resolve": 24},
        "high": {"acknowledge": 4, "resolve": 72},
        "normal": {**normal, "clock": "business"},
    }
    data["business_hours"] = {
        "opening": {d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")},
        "public_holidays": "KR",
    }
    return parse_hospital(data, "business-hours.yaml")


@pytest.fixture
def sweeper(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The `sla_sweeper` function, serving a business-hours hospital."""
    import sla_sweeper

    from sotong.resources import function
    from sotong_local.lambdas import LambdaContext

    context = LambdaContext(function("sla_sweeper"))

    def serve(desk: ComplaintDesk) -> Any:
        monkeypatch.setattr(sla_sweeper, "desk", desk)

        def sweep(at: datetime) -> int:
            clock.fix(at)
            return int(sla_sweeper.handler({}, context)["escalated"])

        return sweep

    return serve


def submit(desk: ComplaintDesk, at: datetime, text: str) -> dict[str, Any]:
    clock.fix(at)
    receipt, created = desk.submit(
        ComplaintSubmission(text=text, contact={"phone": PHONE}, consent_to_contact=True),
        channel="web",
    )
    assert created
    stored = complaints.by_code(receipt["tracking_code"])
    assert stored is not None
    return {**receipt, "id": stored.id}


def raw(complaint_id: str) -> dict[str, Any]:
    """The stored item with its index attributes (what the sweep's Query reads)."""
    item = store.dynamodb().get_item(
        TableName=store.table_name(), Key=store.key(repo.pk(complaint_id), "CMP")
    )["Item"]
    return store.from_item(item)


def local(stamp: str) -> datetime:
    return clock.parse(stamp).astimezone(KST)


def test_the_sweeper_escalates_at_the_business_hours_due_time_across_seollal(
    sweeper: Any, aws: dict[str, str]
) -> None:
    hospital = business_hospital({"acknowledge": 8, "resolve": 40})
    desk = ComplaintDesk(hospital, classifier_for(hospital))
    sweep = sweeper(desk)
    friday = kst(2027, 2, 5, 17, 0)  # one working hour before 설날 (Sat 6 - Tue 9, substitute)
    normal = submit(desk, friday, "접수 대기시간이 1시간이 넘었는데 아무 안내도 없었습니다.")
    critical = submit(desk, friday, "임플란트 흔들려서 피가 나요. 바로 봐 주세요")
    # the patient is told the business-hours time: Fri 1 h + Wed 7 h
    assert normal["acknowledge_by"] == "2027-02-10T16:00:00+09:00"
    assert critical["acknowledge_by"] == "2027-02-05T18:00:00+09:00"  # 1 h around the clock
    stored = stored_item(normal["id"])
    assert stored is not None
    assert stored["sla_clocks"] == {"ack": "business", "resolve": "business"}
    assert local(stored["ack_due_2"]) == kst(2027, 2, 11, 11, 0)  # + 4 business hours
    queued(aws)

    assert sweep(kst(2027, 2, 5, 17, 59)) == 0
    assert sweep(kst(2027, 2, 5, 18, 0)) == 1  # the critical one, level 1 (around the clock)
    clock.fix(kst(2027, 2, 5, 18, 10))
    desk.resolve(ADMIN, critical["id"], Resolution(outcome="바로 진료해 드렸습니다."))
    timeline = [
        (kst(2027, 2, 6, 1, 0), 0),  # calendar hours would be 8 h past: nothing yet
        (kst(2027, 2, 8, 17, 0), 0),  # 설날 (Monday)
        (kst(2027, 2, 9, 17, 0), 0),  # the substitute holiday
        (kst(2027, 2, 10, 15, 59), 0),  # one minute before the due time
        (kst(2027, 2, 10, 16, 0), 1),  # the normal one, level 1 (department head)
        (kst(2027, 2, 11, 10, 59), 0),
        (kst(2027, 2, 11, 11, 0), 1),  # level 2 (CS admin)
    ]
    assert [sweep(at) for at, _ in timeline] == [expected for _, expected in timeline]
    after = stored_item(normal["id"])
    assert after is not None
    assert set(after["escalations"]) == {"ack:1", "ack:2"}
    assert local(after["escalations"]["ack:1"]) == kst(2027, 2, 10, 16, 0)
    alerts = [m for m in queued(aws) if m["template_id"] == "staff_alert"]
    # the critical one to the QI head; the normal one to the front desk's head, then the CS admin
    assert sorted(a["recipient"]["phone"] for a in alerts) == [
        "+821020001001",
        "+821020001004",
        "+821020001006",
    ]


def test_no_escalation_while_waiting_for_the_patient_and_the_answer_resumes(
    sweeper: Any, aws: dict[str, str]
) -> None:
    hospital = business_hospital({"acknowledge": 2, "resolve": 8})
    desk = ComplaintDesk(hospital, classifier_for(hospital))
    sweep = sweeper(desk)
    thursday = kst(2026, 11, 26, 10, 0)
    complaint = submit(desk, thursday, "접수 대기시간이 1시간이 넘었는데 아무 안내도 없었습니다.")
    cid = complaint["id"]
    before = stored_item(cid)
    assert before is not None
    assert local(before["resolve_due"]) == kst(2026, 11, 26, 18, 0)
    assert raw(cid)["gsi2pk"] == repo.sla_bucket(kst(2026, 11, 26, 12, 0))  # the ack check

    clock.fix(kst(2026, 11, 26, 10, 30))
    asked = desk.reply(
        ADMIN, cid, Reply(message="방문하신 날짜와 시간을 알려 주시겠어요?", awaiting_patient=True)
    )
    assert asked["status"] == "awaiting_patient"
    assert asked["sla_next_check"] is None
    assert "gsi2pk" not in raw(cid)  # no next check: the sweep's index does not hold it

    for at in (kst(2026, 11, 26, 18, 0), kst(2026, 11, 27, 13, 0), kst(2026, 11, 30, 10, 59)):
        assert sweep(at) == 0  # past both resolve deadlines, but paused
    assert stored_item(cid)["escalations"] == {}  # type: ignore[index]

    # the patient answers by SMS on Monday 11:00: it joins the web complaint and resumes it
    clock.fix(kst(2026, 11, 30, 11, 0))
    sender = "+821012345678"  # as the provider's webhook gives it (E.164)
    taken = desk.take_inbound(sender, "11월 20일 오후 2시쯤이었어요", "sms", key="msg-answer-1")
    assert taken is not None
    assert taken[1] is False  # joined, not a new complaint
    resumed = stored_item(cid)
    assert resumed is not None
    assert resumed["status"] == "in_progress"
    assert resumed["history"][-1]["note"] == "환자 답변 수신"
    assert resumed["sla_pauses"] == [
        {"from": clock.iso(kst(2026, 11, 26, 10, 30)), "to": clock.iso(kst(2026, 11, 30, 11, 0))}
    ]
    # 7.5 business hours were left at the pause: Mon 11-18 (7 h) + Tue 09:00-09:30
    assert local(resumed["resolve_due"]) == kst(2026, 12, 1, 9, 30)
    assert local(resumed["resolve_due_2"]) == kst(2026, 12, 1, 13, 30)
    assert raw(cid)["gsi2pk"] == repo.sla_bucket(kst(2026, 12, 1, 9, 30))

    assert sweep(kst(2026, 12, 1, 9, 29)) == 0
    assert sweep(kst(2026, 12, 1, 9, 30)) == 1
    assert set(stored_item(cid)["escalations"]) == {"resolve:1"}  # type: ignore[index]


def test_a_calendar_clock_moves_by_the_whole_pause_and_staff_resume_it(
    aws: dict[str, str],
) -> None:
    hospital = business_hospital({"acknowledge": 24, "resolve": 168})
    desk = ComplaintDesk(hospital, classifier_for(hospital))
    start = kst(2026, 11, 23, 10, 0)
    critical = submit(desk, start, "임플란트 흔들려서 피가 나요. 바로 봐 주세요")["id"]
    before = stored_item(critical)
    assert before is not None
    assert before["sla_clocks"] == {"ack": "calendar", "resolve": "calendar"}
    clock.fix(kst(2026, 11, 23, 10, 20))
    desk.change_status(ADMIN, critical, "awaiting_patient", "보호자에게 전화로 확인 요청")
    clock.fix(kst(2026, 11, 23, 20, 20))  # ten hours later staff go on (e.g. reached by phone)
    after = desk.change_status(ADMIN, critical, "in_progress", "보호자와 통화함")
    for field in ("resolve_due", "resolve_due_2"):
        assert (clock.parse(after[field]) - clock.parse(before[field])).total_seconds() == 36000
    assert "awaiting_since" not in after
    assert after["sla_next_check"] == after["resolve_due"]


def test_through_the_api_a_question_pauses_and_the_patients_sms_resumes(
    complaints_env: dict[str, str],
) -> None:
    """The demo hospital (calendar hours): staff ask by `POST /complaints/{id}/replies`, the
    patient answers by SMS through the provider's webhook, the real sweeper runs throughout."""
    import sla_sweeper

    from sotong.resources import function
    from sotong_local.lambdas import LambdaContext

    context = LambdaContext(function("sla_sweeper"))

    def sweep(at: datetime) -> int:
        clock.fix(at)
        return int(sla_sweeper.handler({}, context)["escalated"])

    cid = find(submit_form()["tracking_code"])["id"]  # Mon 23 Nov 10:00, resolve in 168 h
    clock.fix(kst(2026, 11, 23, 11, 0))
    asked = call(
        "POST",
        f"/complaints/{cid}/replies",
        {"message": "방문하신 시간을 알려 주시겠어요?", "awaiting_patient": True},
        claims=API_ADMIN,
    )
    assert asked.status == 200, asked.body
    assert asked.body["status"] == "awaiting_patient"
    tracked = call("GET", f"/track/{asked.body['code']}", query={"phone_last4": "5678"})
    assert tracked.body["status"] == "awaiting_patient"
    assert sweep(kst(2026, 11, 30, 10, 0)) == 0  # the resolve due time, while paused
    assert sweep(kst(2026, 12, 1, 9, 0)) == 0

    clock.fix(kst(2026, 12, 1, 10, 0))
    assert inbound_sms("오후 2시쯤이었습니다", sender="01012345678")["complaints"] == 1
    resumed = call("GET", f"/complaints/{cid}", claims=API_ADMIN).body
    assert resumed["status"] == "in_progress"
    # paused 7 days 23 hours: the 168 h resolve time moves by as much
    assert local(resumed["resolve_due"]) == kst(2026, 12, 8, 9, 0)
    assert sweep(kst(2026, 12, 8, 8, 59)) == 0
    assert sweep(kst(2026, 12, 8, 9, 0)) == 1


def test_a_plain_reply_resumes_and_a_closed_complaint_cannot_wait(aws: dict[str, str]) -> None:
    from sotong.errors import Conflict

    hospital = business_hospital({"acknowledge": 2, "resolve": 8})
    desk = ComplaintDesk(hospital, classifier_for(hospital))
    cid = submit(desk, kst(2026, 11, 26, 10, 0), "접수 대기시간이 너무 길었어요. 안내도 없었고요")[
        "id"
    ]
    clock.fix(kst(2026, 11, 26, 11, 0))
    desk.reply(ADMIN, cid, Reply(message="언제 방문하셨나요?", awaiting_patient=True))
    clock.fix(kst(2026, 11, 27, 11, 0))  # Thu 11-18 + Fri 09-11: 9 business hours paused
    went_on = desk.reply(ADMIN, cid, Reply(message="기록을 찾았습니다. 확인 중입니다."))
    assert went_on["status"] == "in_progress"
    assert local(went_on["resolve_due"]) == kst(2026, 11, 27, 18, 0)  # Thu 18:00 + 9 h
    assert went_on["sla_next_check"] == went_on["resolve_due"]
    clock.fix(kst(2026, 11, 27, 12, 0))
    desk.resolve(ADMIN, cid, Resolution(outcome="안내 절차를 바꿨습니다."))
    with pytest.raises(Conflict):
        desk.reply(ADMIN, cid, Reply(message="추가로 여쭙니다", awaiting_patient=True))
