"""Recall by treatment tag through the real handlers, with a fixed clock and moto."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sotong import clock, store
from sotong.config import load_hospital
from sotong.notify import outbox, txoutbox
from sotong.recall import repository
from sotong.recall.plan import spread_offset
from sotong.recall.service import RecallDesk
from sotong.resources import function
from sotong_local.lambdas import LambdaContext
from tests.integration.api import ADMIN, DENTAL, DESK, call
from tests.integration.test_notifications import run_sender

KST = ZoneInfo("Asia/Seoul")
START = datetime(2026, 11, 23, 9, 0, tzinfo=KST)


@pytest.fixture
def recall_env(aws: dict[str, str]) -> dict[str, str]:
    clock.fix(START)
    return aws


def dispatch(at: datetime) -> dict[str, Any]:
    import recall_dispatcher

    clock.fix(at)
    result: dict[str, Any] = recall_dispatcher.handler(
        {}, LambdaContext(function("recall_dispatcher"))
    )
    return result


def register(phone: str = "010-1234-5678", **consents: bool) -> str:
    body = {
        "name": "홍길동",
        "phone": phone,
        "chart_no": f"C-{phone[-4:]}",
        "consents": {"contact": True, **consents},
    }
    answer = call("POST", "/patients", body, claims=DENTAL)
    assert answer.status == 201, answer.body
    return str(answer.body["id"])


def treat(
    pid: str, tag: str = "implant_surgery", day: str = "2026-11-23", claims: Any = None
) -> Any:
    return call(
        "POST", f"/patients/{pid}/treatments", {"tag": tag, "date": day}, claims=claims or DENTAL
    )


def deliver(env: dict[str, str]) -> dict[str, Any]:
    """What the outbox relay does in the stack (publish what producers wrote), then the sender."""
    txoutbox.flush()
    return run_sender(env)


def sent_templates(env: dict[str, str]) -> list[str]:
    deliver(env)
    return [m["kakao_template_code"] or m["channel"] for m in outbox.recent()]


def test_a_treatment_plans_every_step_inside_its_local_window(recall_env: dict[str, str]) -> None:
    pid = register()
    answer = treat(pid, day="2026-11-25")  # a planned surgery: D-1 precautions too
    assert answer.status == 201
    due = {t["step"]: clock.parse(t["due_at"]) for t in answer.body["touchpoints"]}
    starts = {
        "precautions": datetime(2026, 11, 24, 18, 0, tzinfo=KST),  # the day before the visit
        "aftercare": datetime(2026, 11, 26, 10, 0, tzinfo=KST),  # the day after
        "feedback": datetime(2026, 12, 9, 11, 0, tzinfo=KST),  # +14 days
        "recall": datetime(2027, 5, 25, 10, 0, tzinfo=KST),  # +6 months
    }
    tag = load_hospital().treatment_tag("implant_surgery")
    assert tag is not None
    for step in tag.plan:
        offset = due[step.id] - starts[step.id]
        assert timedelta(0) <= offset < timedelta(minutes=step.spread_minutes), step.id
        assert offset == spread_offset(pid, step)  # a hash of patient and step: the same again
    assert due["precautions"] < datetime(2026, 11, 25, 0, 0, tzinfo=KST)  # still before the visit
    again = treat(pid, day="2026-11-25")
    assert again.status == 200  # recorded twice: nothing new planned
    assert len(call("GET", f"/patients/{pid}/touchpoints", claims=DENTAL).body["touchpoints"]) == 4


def test_a_days_touchpoints_spread_over_the_window_and_replanning_keeps_them(
    recall_env: dict[str, str],
) -> None:
    hospital = load_hospital()
    desk = RecallDesk(hospital)
    tag = hospital.treatment_tag("scaling")
    assert tag is not None
    day = datetime(2026, 11, 22, tzinfo=KST).date()
    times = {
        pid: clock.parse(desk.touchpoint_items(pid, "t1", tag, day)[0]["due_at"])
        for pid in (f"p{n:020x}" for n in range(300))
    }
    start = datetime(2026, 11, 23, 10, 0, tzinfo=KST)
    assert all(start <= at < start + timedelta(hours=1) for at in times.values())
    assert len(set(times.values())) > 250  # not one second for everyone
    by_quarter = {int((at - start).total_seconds() // 900) for at in times.values()}
    assert by_quarter == {0, 1, 2, 3}
    again = {
        pid: clock.parse(desk.touchpoint_items(pid, "t1", tag, day)[0]["due_at"]) for pid in times
    }
    assert again == times


def test_exactly_the_planned_messages_go_at_the_planned_times(recall_env: dict[str, str]) -> None:
    pid = register()
    planned = treat(pid, day="2026-11-25").body["touchpoints"]
    due = {t["step"]: clock.parse(t["due_at"]) for t in planned}
    second = timedelta(seconds=1)
    assert dispatch(due["precautions"] - second)["queued"] == 0
    assert dispatch(due["precautions"])["queued"] == 1
    assert sent_templates(recall_env) == ["SOTONG_RCL_PRE_02"]
    (precautions,) = outbox.recent()
    assert precautions["text"] == (  # the D-1 text as the patient reads it: no invented time
        "[소통치과피부과] 홍길동님, 내일 내원 예약이 있어 안내드립니다.\n"
        "내원 전 식사는 가볍게 하시고, 복용 중인 약이 있으면 알려 주세요.\n"
        "예약 시간 확인·변경 문의: 02-555-0100"
    )
    assert "#{" not in precautions["text"]
    assert dispatch(due["aftercare"] - second)["queued"] == 0
    assert dispatch(due["aftercare"])["queued"] == 1
    deliver(recall_env)
    aftercare = outbox.recent()[0]
    assert aftercare["kakao_template_code"] == "SOTONG_RCL_AFT_01"
    assert aftercare["text"].startswith("[소통치과피부과] 홍길동님, 어제 치료 후")
    statuses = {
        t["step"]: t["status"]
        for t in call("GET", f"/patients/{pid}/touchpoints", claims=DENTAL).body["touchpoints"]
    }
    assert statuses == {
        "precautions": "queued",
        "aftercare": "queued",
        "feedback": "planned",
        "recall": "planned",
    }


def test_rerunning_the_dispatcher_sends_nothing_twice(recall_env: dict[str, str]) -> None:
    pid = register()
    treat(pid, day="2026-11-22")  # yesterday: aftercare due today 10:00-11:00
    at = datetime(2026, 11, 23, 11, 0, tzinfo=KST)
    assert dispatch(at)["queued"] == 1
    assert dispatch(at)["queued"] == 0
    assert dispatch(at + timedelta(minutes=1))["queued"] == 0
    # even a re-run that sees the touchpoint again (watermark lost) sends nothing twice
    store.dynamodb().delete_item(
        TableName=store.table_name(), Key=store.key("WATERMARK", "recall_dispatch")
    )
    dispatch(at)
    deliver(recall_env)
    deliver(recall_env)
    assert len(outbox.recent()) == 1


def test_a_three_hour_outage_is_caught_up(recall_env: dict[str, str]) -> None:
    ids = [register(phone=f"010-5555-{n:04d}") for n in range(3)]
    for pid in ids:
        treat(pid, day="2026-11-22")  # aftercare due 10:00 today
    treat(ids[0], tag="extraction", day="2026-11-22")  # aftercare 10:00 too (other treatment)
    dispatch(datetime(2026, 11, 23, 9, 0, tzinfo=KST))  # the last run before the outage
    report = dispatch(datetime(2026, 11, 23, 12, 0, tzinfo=KST))  # back three hours later
    assert report["queued"] == 4
    deliver(recall_env)
    assert len(outbox.recent()) == 4


def test_a_booking_cancels_the_recall_at_dispatch_time(recall_env: dict[str, str]) -> None:
    pid = register()
    treat(pid, day="2026-05-20")  # six-month recall due 2026-11-20 10:00 → past, not sent
    pid2 = register(phone="010-7777-8888")
    treat(pid2, tag="scaling", day="2026-11-23")
    # a booking made after planning: the recall six months later is pointless
    call(
        "POST",
        f"/patients/{pid2}/appointments",
        {"kind": "booking", "at": "2027-06-01T10:00:00+09:00"},
        claims=DESK,
    )
    report = dispatch(datetime(2027, 5, 23, 11, 0, tzinfo=KST))
    assert report["cancelled"] == 1
    touchpoints = call("GET", f"/patients/{pid2}/touchpoints", claims=DENTAL).body["touchpoints"]
    recall = next(t for t in touchpoints if t["step"] == "recall")
    assert (recall["status"], recall["status_reason"]) == ("cancelled", "future_booking")


def test_a_visit_a_repeat_or_a_pause_cancel_what_they_make_pointless(
    recall_env: dict[str, str],
) -> None:
    visited, repeated, paused = (register(phone=f"010-6666-{n:04d}") for n in range(3))
    for pid in (visited, repeated, paused):
        treat(pid, tag="scaling", day="2026-11-23")
    call(
        "POST",
        f"/patients/{visited}/appointments",
        {"kind": "visit", "at": "2027-01-10T10:00:00+09:00"},
        claims=DESK,
    )
    treat(repeated, tag="scaling", day="2027-02-01")
    call("POST", f"/patients/{paused}/pause", {"paused": True, "reason": "해외 체류"}, claims=DESK)
    report = dispatch(datetime(2027, 5, 23, 11, 0, tzinfo=KST))
    reasons = {}
    for pid in (visited, repeated, paused):
        for t in call("GET", f"/patients/{pid}/touchpoints", claims=DENTAL).body["touchpoints"]:
            if t["step"] == "recall" and t["treatment_date"] == "2026-11-23":
                reasons[pid] = t["status_reason"]
    assert reasons == {
        visited: "visit_since",
        repeated: "repeat_treatment",
        paused: "patient_paused",
    }
    assert report["queued"] == 0


def test_staff_cancel_one_touchpoint_and_move_a_treatment_date(recall_env: dict[str, str]) -> None:
    pid = register()
    treatment = treat(pid, day="2026-11-25").body
    first = treatment["touchpoints"][0]
    cancelled = call("POST", f"/patients/{pid}/touchpoints/{first['id']}/cancel", claims=DENTAL)
    assert cancelled.body["status"] == "cancelled"
    assert (
        call("POST", f"/patients/{pid}/touchpoints/{first['id']}/cancel", claims=DENTAL).status
        == 404
    )
    moved = call(
        "POST",
        f"/patients/{pid}/treatments/{treatment['id']}/date",
        {"date": "2026-12-01"},
        claims=DENTAL,
    )
    assert moved.status == 200
    due = {t["step"]: (t["status"], t["due_at"]) for t in moved.body["touchpoints"]}
    assert due["precautions"][0] == "cancelled"  # a cancelled step stays cancelled
    status, at = due["aftercare"]
    assert status == "planned"
    window = datetime(2026, 12, 2, 10, 0, tzinfo=KST)
    assert window <= clock.parse(at) < window + timedelta(hours=1)
    assert dispatch(datetime(2026, 11, 26, 11, 0, tzinfo=KST))["queued"] == 0  # the old time
    assert dispatch(datetime(2026, 12, 2, 11, 0, tzinfo=KST))["queued"] == 1


def test_bad_input_is_named(recall_env: dict[str, str]) -> None:
    bad_phone = call("POST", "/patients", {"name": "김", "phone": "010-12"}, claims=DENTAL)
    assert bad_phone.status == 422
    assert bad_phone.body["fields"][0]["field"] == "body.phone"
    pid = register()
    unknown = treat(pid, tag="tattoo")
    assert (unknown.status, unknown.body["field"]) == (400, "body.tag")
    bad_date = call(
        "POST",
        f"/patients/{pid}/treatments",
        {"tag": "scaling", "date": "2026-13-01"},
        claims=DENTAL,
    )
    assert bad_date.status == 422
    assert "body.date" in bad_date.body["message"]
    assert call("GET", "/patients/p00000000000000000000", claims=DENTAL).status == 404
    assert call("POST", "/patients", {"name": "김", "phone": "010-1234-5678"}).status == 401


def test_department_staff_record_only_their_tags(recall_env: dict[str, str]) -> None:
    pid = register()
    assert treat(pid, tag="botox", claims=DENTAL).status == 403
    assert treat(pid, tag="botox", claims=ADMIN).status == 201


def test_a_reply_joins_the_conversation_beside_the_manual_and_1_converts(
    recall_env: dict[str, str],
) -> None:
    from sotong.notify.providers.solapi import sign_webhook

    pid = register()
    treat(pid, day="2026-05-23")  # six-month recall due today 10:00-11:00
    dispatch(datetime(2026, 11, 23, 11, 0, tzinfo=KST))
    deliver(recall_env)

    sent: list[str] = []

    def reply(text: str) -> dict[str, Any]:
        sent.append(text)
        body = json.dumps(
            [
                {
                    "data": {
                        "messageId": f"M{len(sent)}",  # the provider's id: one per message
                        "from": "01012345678",
                        "to": "025550100",
                        "text": text,
                        "type": "SMS",
                    }
                }
            ]
        ).encode()
        answer = call(
            "POST", "/webhooks/inbound", raw=body, headers=sign_webhook(body, "local-hmac_key")
        )
        assert answer.status == 200, answer.body
        return answer.body  # type: ignore[no-any-return]

    import boto3

    from sotong.config import load_hospital
    from sotong_local.aws import placeholder_secrets

    for name, value in placeholder_secrets(load_hospital()).items():
        boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(value))
    assert reply("임플란트 부위가 조금 시려요")["replies"] == 1
    assert reply("1")["replies"] == 1
    talk = call("GET", f"/patients/{pid}/conversation", claims=DENTAL).body
    assert [m["text"] for m in talk["messages"]] == ["임플란트 부위가 조금 시려요", "1"]
    assert talk["manual"]["tag"] == "implant_surgery"
    assert "흔들림" in talk["manual"]["text"]
    assert talk["about"]["status"] == "converted"
    answered = call(
        "POST",
        f"/patients/{pid}/conversation",
        {"message": "내일 오전에 내원해 주세요."},
        claims=DENTAL,
    )
    assert answered.status == 200
    deliver(recall_env)
    # sent at the same (fixed) time as the recall: the outbox orders them by message id
    assert "[소통치과피부과] 내일 오전에 내원해 주세요." in {m["text"] for m in outbox.recent()}
    follow_up = reply("주차장이 너무 좁아요")
    assert follow_up["replies"] == 1  # a recent recall: it joins the conversation, not a complaint


def test_a_booking_after_a_recall_marks_it_converted(recall_env: dict[str, str]) -> None:
    pid = register()
    treat(pid, tag="scaling", day="2026-05-23")
    dispatch(datetime(2026, 11, 23, 11, 0, tzinfo=KST))
    answer = call(
        "POST",
        f"/patients/{pid}/appointments",
        {"kind": "booking", "at": "2026-11-30T10:00:00+09:00"},
        claims=DESK,
    )
    assert answer.body["converted"] is not None


def test_an_erasure_leaves_nothing_personal(recall_env: dict[str, str]) -> None:
    pid = register()
    treat(pid, day="2026-11-22")
    dispatch(datetime(2026, 11, 23, 23, 30, tzinfo=KST))  # aftercare → held by quiet hours
    deliver(recall_env)
    assert call("DELETE", f"/patients/{pid}", claims=DENTAL).status == 403
    erased = call("DELETE", f"/patients/{pid}", claims=ADMIN)
    assert erased.status == 200
    assert erased.body["kept_counts"]["treatments_implant_surgery"] == 1
    assert list(repository.items_of(pid)) == []
    assert call("GET", f"/patients/{pid}", claims=ADMIN).status == 404
    assert erased.body["removed"]["held_messages_suppressed"] == 1
    held = call("GET", "/messages", claims=ADMIN, query={"recipient_phone": "010-1234-5678"}).body[
        "messages"
    ]
    assert held == []  # its record went with the rest (tests/integration/test_erasure.py)
    assert repository.DynamoPatientRepository().counts()["patients_erased"] == 1
    clock.fix(datetime(2026, 11, 24, 8, 0, tzinfo=KST))
    from sotong.notify.release import release_due

    assert release_due(clock.now(), "demo") == 0


def test_the_same_inbound_message_twice_is_stored_once(recall_env: dict[str, str]) -> None:
    pid = register()
    treat(pid, tag="scaling", day="2026-05-23")
    dispatch(datetime(2026, 11, 23, 11, 0, tzinfo=KST))
    desk = RecallDesk(load_hospital())
    received = datetime(2026, 11, 23, 11, 30, tzinfo=KST)
    first = desk.inbound("+821012345678", "1", provider_message_id="M-1", received_at=received)
    assert first is not None
    assert first["converted"] is not None
    assert "duplicate" not in first
    clock.fix(received + timedelta(minutes=5))  # the provider retries its webhook later
    again = desk.inbound("+821012345678", "1", provider_message_id="M-1")
    assert again is not None
    assert again["duplicate"] is True
    assert again["converted"] is None  # nothing converted twice
    other = desk.inbound("+821012345678", "감사합니다", provider_message_id="M-2")
    assert other is not None
    assert "duplicate" not in other
    talk = desk.conversation(pid)["messages"]
    assert [m["text"] for m in talk] == ["1", "감사합니다"]
    assert talk[0]["at"] == clock.iso(received)


def test_a_staff_answer_and_its_message_are_written_together(recall_env: dict[str, str]) -> None:
    pid = register()
    desk = RecallDesk(load_hospital())
    desk.answer(pid, "내일 오전에 오세요.", "dental.lee")
    desk.answer(pid, "주차는 지하 2층입니다.", "dental.lee")
    pending = txoutbox.pending(clock.now() + timedelta(days=1))
    keys = sorted(json.loads(p["request"])["idempotency_key"] for p in pending)
    messages = desk.conversation(pid)["messages"]
    assert [m["text"] for m in messages] == ["내일 오전에 오세요.", "주차는 지하 2층입니다."]
    # each answer's message is keyed by the answer's own (unique, time-ordered) key
    assert keys == [f"conversation:{pid}:{m['id']}" for m in messages]
    deliver(recall_env)
    assert {m["text"] for m in outbox.recent()} == {
        "[소통치과피부과] 내일 오전에 오세요.",
        "[소통치과피부과] 주차는 지하 2층입니다.",
    }
