"""Complaints through the real handlers: every channel, every transition, department scoping."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sotong import clock
from sotong.complaints.model import TRANSITIONS
from sotong.notify import txoutbox
from sotong.notify.providers.solapi import sign_webhook
from tests.integration.api import ADMIN, DENTAL, DESK, call
from tests.integration.conftest import receive_all

KST = ZoneInfo("Asia/Seoul")
WEBHOOK_SECRET = "local-hmac_key"


def queued(env: dict[str, str]) -> list[dict[str, Any]]:
    """What the complaints wrote to the outbox, once the relay put it on the queue."""
    txoutbox.flush()
    return [json.loads(m["Body"]) for m in receive_all(env["SOTONG_NOTIFICATIONS_QUEUE_URL"])]


def form(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "text": "접수 대기시간이 1시간이 넘었는데 아무 안내도 없었습니다.",
        "contact": {"name": "홍길동", "phone": "010-1234-5678"},
        "consent_to_contact": True,
    }
    body.update(changes)
    return body


@pytest.fixture
def complaints_env(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The demo hospital's secrets, as the local stack creates them."""
    import boto3

    from sotong.config import load_hospital
    from sotong_local.aws import placeholder_secrets

    client = boto3.client("secretsmanager")
    for name, value in placeholder_secrets(load_hospital()).items():
        client.create_secret(Name=name, SecretString=json.dumps(value))
    monkeypatch.setenv("SOTONG_PUBLIC_URL", "https://demo.example")
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
    return aws


def submit(**changes: Any) -> dict[str, Any]:
    answer = call("POST", "/complaints", form(**changes))
    assert answer.status == 201, answer.body
    return answer.body  # type: ignore[no-any-return]


def find(code: str) -> dict[str, Any]:
    inbox = call("GET", "/inbox", claims=ADMIN, query={"limit": "100"})
    item = next(i for i in inbox.body["items"] if i["code"] == code)
    return call("GET", f"/complaints/{item['id']}", claims=ADMIN).body  # type: ignore[no-any-return]


# --- intake -------------------------------------------------------------------------------------
def test_web_form_complaint_is_stored_routed_and_acknowledged(
    complaints_env: dict[str, str],
) -> None:
    receipt = submit()
    assert receipt["status"] == "received"
    assert len(receipt["tracking_code"]) == 9
    assert receipt["acknowledge_by"].startswith("2026-11-24T10:00")  # 24 h, normal urgency
    assert receipt["track_url"].startswith("https://demo.example/pages/track.html?code=")

    complaint = find(receipt["tracking_code"])
    assert (complaint["category"], complaint["department"], complaint["channel"]) == (
        "wait_time",
        "front_desk",
        "web",
    )
    assert complaint["classifier"]["category"] == "wait_time"
    assert complaint["history"][0]["status"] == "received"

    ack, routed = sorted(queued(complaints_env), key=lambda m: m["template_id"])
    assert routed["template_id"] == "staff_routed"  # the department is told
    assert routed["recipient"]["kind"] == "staff"
    assert ack["template_id"] == "complaint_received"
    assert ack["variables"]["code"] == receipt["tracking_code"]
    assert ack["recipient"]["phone"] == "+821012345678"


def test_a_double_submit_gives_one_complaint_and_the_same_answer(
    complaints_env: dict[str, str],
) -> None:
    key = {"Idempotency-Key": "form-7f1c2a"}
    first = call("POST", "/complaints", form(), headers=key)
    again = call("POST", "/complaints", form(), headers=key)
    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body
    inbox = call("GET", "/inbox", claims=ADMIN).body["items"]
    assert len(inbox) == 1
    other = call(
        "POST", "/complaints", form(text="다른 내용의 민원입니다. 주차장이 좁아요."), headers=key
    )
    assert other.status == 409
    assert other.body["field"] == "header.idempotency-key"


def test_without_consent_no_patient_is_messaged(complaints_env: dict[str, str]) -> None:
    submit(consent_to_contact=False, contact={})
    assert [m["template_id"] for m in queued(complaints_env)] == ["staff_routed"]  # staff only


def test_app_channel_and_department_choice(complaints_env: dict[str, str]) -> None:
    receipt = submit(
        channel="app", department="dental", text="치료 설명이 너무 짧았어요. 다시 듣고 싶습니다."
    )
    complaint = find(receipt["tracking_code"])
    assert (complaint["channel"], complaint["department"]) == ("app", "dental")
    assert complaint["routing"]["by"] == "submitter"


@pytest.mark.parametrize("channel", ["phone", "walk_in"])
def test_staff_enter_phone_and_walk_in_complaints(
    complaints_env: dict[str, str], channel: str
) -> None:
    answer = call("POST", "/staff/complaints", form(channel=channel), claims=DESK)
    assert answer.status == 201
    complaint = find(answer.body["tracking_code"])
    assert complaint["channel"] == channel
    assert complaint["entered_by"] == "desk.choi"
    assert complaint["history"][0]["by"] == "desk.choi"


def test_staff_entry_needs_a_sign_in(complaints_env: dict[str, str]) -> None:
    assert call("POST", "/staff/complaints", form(channel="phone"), claims={}).status == 401


def _inbound(
    text: str, sender: str = "01055556666", kind: str = "SMS", message_id: str | None = None
) -> dict[str, Any]:
    body = json.dumps(
        [
            {
                "eventDataId": "e1",
                "data": {
                    "messageId": message_id or hashlib.sha256(text.encode()).hexdigest()[:20],
                    "from": sender,
                    "to": "025550100",
                    "text": text,
                    "type": kind,
                    "dateReceived": "2026-11-23T01:00:00Z",
                },
            }
        ]
    ).encode()
    answer = call("POST", "/webhooks/inbound", raw=body, headers=sign_webhook(body, WEBHOOK_SECRET))
    assert answer.status == 200, answer.body
    return answer.body  # type: ignore[no-any-return]


def test_sms_and_kakao_start_a_complaint_then_append_to_it(complaints_env: dict[str, str]) -> None:
    assert _inbound("주차장에 자리가 없어서 30분을 돌았어요")["complaints"] == 1
    assert _inbound("그리고 발렛 직원분도 불친절했습니다", kind="CTA")["complaints"] == 1
    items = call("GET", "/inbox", claims=ADMIN).body["items"]
    assert len(items) == 1
    complaint = call("GET", f"/complaints/{items[0]['id']}", claims=ADMIN).body
    assert complaint["channel"] == "sms"
    assert complaint["text"] == "주차장에 자리가 없어서 30분을 돌았어요"  # the first message
    assert [m["text"] for m in complaint["inbound_messages"]] == [
        "주차장에 자리가 없어서 30분을 돌았어요",
        "그리고 발렛 직원분도 불친절했습니다",
    ]
    assert complaint["category"] == "parking"  # the demo hospital's own rule


def test_inbound_opt_out_and_bad_signatures(complaints_env: dict[str, str]) -> None:
    assert _inbound("수신거부")["opted_out"] == 1
    body = b'[{"data": {"from": "01055556666", "text": "hello"}}]'
    forged = call("POST", "/webhooks/inbound", raw=body, headers=sign_webhook(body, "wrong-secret"))
    assert forged.status == 401
    unsigned = call("POST", "/webhooks/inbound", raw=body)
    assert unsigned.status == 401


# --- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (form(contact={"phone": "010-12"}), "body.contact.phone"),
        (form(department="cardiology"), "body.department"),
        (form(category_hint="weather"), "body.category_hint"),
        (form(text="가" * 4001), "body.text"),
        (form(kind="praise"), "body.kind"),
        (form(consent_to_contact="maybe"), "body.consent_to_contact"),
        (form(extra="x"), "body.extra"),
        ({"text": "대기가 길어요 정말로"}, "body.consent_to_contact"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    complaints_env: dict[str, str], body: Any, field: str
) -> None:
    answer = call("POST", "/complaints", body)
    assert 400 <= answer.status < 500
    assert field in json.dumps(answer.body, ensure_ascii=False)
    assert queued(complaints_env) == []


def test_broken_json_and_odd_content_types(complaints_env: dict[str, str]) -> None:
    broken = call("POST", "/complaints", raw=b'{"text": ')
    assert broken.status == 422
    assert "not valid JSON" in broken.body["message"]
    multipart = call(
        "POST", "/complaints", raw=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}
    )
    assert multipart.status == 415
    assert multipart.body["field"] == "header.content-type"


# --- classification -----------------------------------------------------------------------------
def test_a_critical_complaint_alerts_the_on_call_contact_at_once(
    complaints_env: dict[str, str],
) -> None:
    receipt = submit(text="어머니가 화장실에서 넘어지셨는데 한참 동안 아무도 오지 않았습니다.")
    complaint = find(receipt["tracking_code"])
    assert complaint["urgency"] == "critical"
    assert receipt["acknowledge_by"].startswith("2026-11-23T11:00")  # 1 h for critical
    messages = queued(complaints_env)
    alert = next(m for m in messages if m["template_id"] == "staff_critical")
    assert alert["recipient"]["phone"] == "+821020001999"
    assert alert["urgent"] is True
    assert (
        alert["variables"]["link"] == f"https://demo.example/console/#/complaints/{complaint['id']}"
    )
    assert "넘어지" not in json.dumps(alert, ensure_ascii=False)  # no details in the SMS


def test_staff_correct_the_classifier_and_both_are_kept(complaints_env: dict[str, str]) -> None:
    complaint = find(submit()["tracking_code"])
    answer = call(
        "POST",
        f"/complaints/{complaint['id']}/classification",
        {"category": "reservation", "note": "예약 관련"},
        claims=ADMIN,
    )
    assert answer.status == 200
    assert answer.body["category"] == "reservation"
    assert answer.body["classifier"]["category"] == "wait_time"
    assert answer.body["correction"]["by"] == "cs.kim"
    bad = call(
        "POST",
        f"/complaints/{complaint['id']}/classification",
        {"category": "weather"},
        claims=ADMIN,
    )
    assert (bad.status, bad.body["field"]) == (400, "body.category")


def test_reassigning_keeps_the_routing_guess(complaints_env: dict[str, str]) -> None:
    complaint = find(submit()["tracking_code"])
    answer = call(
        "POST",
        f"/complaints/{complaint['id']}/assign",
        {"department": "customer_service", "assignee": "cs.park"},
        claims=ADMIN,
    )
    assert answer.status == 200
    body = answer.body
    assert (body["department"], body["assignee"], body["status"]) == (
        "customer_service",
        "cs.park",
        "assigned",
    )
    assert body["routing"]["was"] == "front_desk"
    unknown = call(
        "POST", f"/complaints/{complaint['id']}/assign", {"department": "mars"}, claims=ADMIN
    )
    assert (unknown.status, unknown.body["field"]) == (400, "body.department")


# --- lifecycle ----------------------------------------------------------------------------------
def test_the_whole_lifecycle_with_patient_messages_and_survey(
    complaints_env: dict[str, str],
) -> None:
    receipt = submit()
    cid = find(receipt["tracking_code"])["id"]
    queued(complaints_env)  # the acknowledgement

    steps = [
        ("/status", {"status": "acknowledged", "note": "확인했습니다"}),
        ("/assign", {"assignee": "desk.choi"}),
        ("/status", {"status": "in_progress"}),
        ("/replies", {"message": "대기 안내 방법을 개선하고 있습니다."}),
        ("/resolve", {"outcome": "접수 대기 안내 화면을 설치했습니다.", "note": "시설팀 협조"}),
    ]
    for suffix, body in steps:
        answer = call("POST", f"/complaints/{cid}{suffix}", body, claims=DESK)
        assert answer.status == 200, (suffix, answer.body)
    resolved = call("GET", f"/complaints/{cid}", claims=DESK).body
    assert resolved["status"] == "resolved"
    assert [e["status"] for e in resolved["history"]] == [
        "received",
        "acknowledged",
        "assigned",
        "in_progress",
        "in_progress",
        "resolved",
    ]
    assert all(e["by"] and e["at"] for e in resolved["history"])
    templates = sorted(m["template_id"] for m in queued(complaints_env))  # SQS keeps no order
    assert templates == ["complaint_outcome", "complaint_progress"]

    closed = call("POST", f"/complaints/{cid}/close", {"note": "종결"}, claims=ADMIN)
    assert closed.status == 200
    (survey,) = queued(complaints_env)
    assert survey["template_id"] == "complaint_survey"
    link = survey["variables"]["survey_url"]
    token = link.split("&t=")[1]
    answer = call(
        "POST",
        "/survey",
        {
            "code": receipt["tracking_code"],
            "token": token,
            "score": 4,
            "comment": "빨리 처리해 주셔서 감사합니다",
        },
    )
    assert answer.status == 200
    assert call("GET", f"/complaints/{cid}", claims=ADMIN).body["survey"]["score"] == 4
    twice = call("POST", "/survey", {"code": receipt["tracking_code"], "token": token, "score": 1})
    assert twice.status == 409
    forged = call(
        "POST", "/survey", {"code": receipt["tracking_code"], "token": "x" * 22, "score": 1}
    )
    assert forged.status == 404

    reopened = call("POST", f"/complaints/{cid}/reopen", {"note": "추가 문의"}, claims=ADMIN)
    assert reopened.body["status"] == "in_progress"


@pytest.mark.parametrize("start", list(TRANSITIONS))
def test_invalid_transitions_are_409_naming_the_allowed_ones(
    complaints_env: dict[str, str], start: str
) -> None:
    cid = find(submit()["tracking_code"])["id"]
    path = {
        "received": [],
        "acknowledged": [("status", {"status": "acknowledged"})],
        "assigned": [("assign", {"assignee": "a"})],
        "in_progress": [("status", {"status": "in_progress"})],
        "awaiting_patient": [("status", {"status": "awaiting_patient"})],
        "resolved": [("resolve", {"outcome": "done"})],
        "closed": [("resolve", {"outcome": "done"}), ("close", {})],
    }[start]
    for action, body in path:
        assert call("POST", f"/complaints/{cid}/{action}", body, claims=ADMIN).status == 200
    disallowed = [
        s for s in ("acknowledged", "assigned", "closed", "received") if s not in TRANSITIONS[start]
    ]
    for target in disallowed:
        answer = call("POST", f"/complaints/{cid}/status", {"status": target}, claims=ADMIN)
        assert answer.status == 409, (start, target)
        assert answer.body["allowed"] == list(TRANSITIONS[start])
        assert start in answer.body["message"]


# --- scoping ------------------------------------------------------------------------------------
def test_department_staff_see_only_their_department(complaints_env: dict[str, str]) -> None:
    wait = find(submit()["tracking_code"])  # front_desk
    dental = find(
        submit(department="dental", text="임플란트 비용 설명이 달랐어요")["tracking_code"]
    )

    assert call("GET", f"/complaints/{wait['id']}", claims=DENTAL).status == 404
    assert call("GET", f"/complaints/{dental['id']}", claims=DENTAL).status == 200
    assert (
        call(
            "POST", f"/complaints/{wait['id']}/status", {"status": "acknowledged"}, claims=DENTAL
        ).status
        == 404
    )
    mine = call("GET", "/inbox", claims=DENTAL).body["items"]
    assert [i["id"] for i in mine] == [dental["id"]]
    assert call("GET", "/inbox", claims=DENTAL, query={"department": "front_desk"}).status == 403
    everything = call("GET", "/inbox", claims=ADMIN).body["items"]
    assert {i["id"] for i in everything} == {wait["id"], dental["id"]}
    assert call("GET", "/messages", claims=DENTAL, query={"complaint": wait["id"]}).status == 404
    assert call("GET", "/outbox", claims=DENTAL).status == 403


def test_inbox_filters_and_pages(complaints_env: dict[str, str]) -> None:
    for minute in range(5):
        clock.fix(datetime(2026, 11, 23, 10, minute, tzinfo=KST))
        submit(text=f"대기시간이 길었습니다 {minute}번째 방문")
    submit(text="직원이 반말을 하고 불친절했습니다")
    first = call(
        "GET", "/inbox", claims=ADMIN, query={"limit": "2", "department": "front_desk"}
    ).body
    assert len(first["items"]) == 2
    second = call(
        "GET",
        "/inbox",
        claims=ADMIN,
        query={"limit": "2", "department": "front_desk", "cursor": first["next_cursor"]},
    ).body
    assert {i["id"] for i in first["items"]}.isdisjoint({i["id"] for i in second["items"]})
    assert first["items"][0]["created_at"] > second["items"][0]["created_at"]
    dated = call(
        "GET",
        "/inbox",
        claims=ADMIN,
        query={"from": "2026-11-23T01:02:00Z", "to": "2026-11-23T01:03:59Z"},
    )
    assert len(dated.body["items"]) == 2
    bad = call("GET", "/inbox", claims=ADMIN, query={"cursor": "nonsense"})
    assert (bad.status, bad.body["field"]) == (400, "query.cursor")
    wrong_state = call("GET", "/inbox", claims=ADMIN, query={"state": "lost"})
    assert wrong_state.status == 422
    assert "query.state" in wrong_state.body["message"]


# --- patients tracking --------------------------------------------------------------------------
def test_tracking_needs_the_phone_digits_and_leaks_nothing(complaints_env: dict[str, str]) -> None:
    receipt = submit()
    code = receipt["tracking_code"]
    good = call("GET", f"/track/{code}", query={"phone_last4": "5678"})
    assert good.status == 200
    assert good.body["status"] == "received"
    assert "홍길동" not in json.dumps(good.body, ensure_ascii=False)
    assert "010" not in json.dumps(good.body)
    wrong_digits = call("GET", f"/track/{code}", query={"phone_last4": "0000"})
    wrong_code = call("GET", "/track/ZZZZ-ZZZZ", query={"phone_last4": "5678"})
    assert wrong_digits.status == wrong_code.status == 404
    assert wrong_digits.body == wrong_code.body
    lowercase = call(
        "GET", f"/track/{code.lower().replace('-', '')}", query={"phone_last4": "5678"}
    )
    assert lowercase.status == 200


def test_tracking_is_rate_limited(complaints_env: dict[str, str]) -> None:
    # failed factors lock the code (sotong.complaints.tracking; more in test_tracking_lock.py)
    statuses = [
        call("GET", "/track/ZZZZ-ZZZ2", query={"phone_last4": f"{n:04d}"}).status for n in range(12)
    ]
    assert statuses[:4] == [404] * 4
    assert statuses[4:] == [429] * 8


# --- SLA ----------------------------------------------------------------------------------------
def test_overdue_complaints_escalate_once_per_level(complaints_env: dict[str, str]) -> None:
    import sla_sweeper

    from sotong.resources import function
    from sotong_local.lambdas import LambdaContext

    receipt = submit()
    queued(complaints_env)
    context = LambdaContext(function("sla_sweeper"))
    start = datetime(2026, 11, 23, 10, 0, tzinfo=KST)
    escalations = []
    alerts = []
    for hours in (23, 24.1, 25, 36.2, 37, 48):
        clock.fix(start + timedelta(hours=hours))
        escalations.append(sla_sweeper.handler({}, context)["escalated"])
        alerts += [m for m in queued(complaints_env) if m["template_id"] == "staff_alert"]
    assert escalations == [0, 1, 0, 1, 0, 0]
    assert [a["recipient"]["phone"] for a in alerts] == [
        "+821020001004",
        "+821020001001",
    ]  # head, admin
    complaint = find(receipt["tracking_code"])
    assert set(complaint["escalations"]) == {"ack:1", "ack:2"}

    call("POST", f"/complaints/{complaint['id']}/status", {"status": "acknowledged"}, claims=ADMIN)
    clock.fix(start + timedelta(days=7, hours=1))
    assert sla_sweeper.handler({}, context)["escalated"] == 1  # the resolve deadline, level 1


# --- reports ------------------------------------------------------------------------------------
def test_monthly_and_quarterly_reports(complaints_env: dict[str, str]) -> None:
    submit()
    submit(kind="compliment", text="간호사 선생님이 정말 친절하셨어요. 감사합니다!")
    cid = find(submit(text="수납 금액이 안내와 달랐어요")["tracking_code"])["id"]
    call("POST", f"/complaints/{cid}/resolve", {"outcome": "차액을 환불했습니다."}, claims=ADMIN)
    month = call("GET", "/reports/complaints", claims=ADMIN, query={"period": "2026-11"}).body
    assert month["total"] == 3
    assert month["by_kind"]["compliment"] == 1
    assert month["resolved"] == month["resolved_within_sla"] == 1
    quarter = call("GET", "/reports/complaints", claims=ADMIN, query={"period": "2026-Q4"}).body
    assert quarter["total"] == 3
    assert (
        call("GET", "/reports/complaints", claims=ADMIN, query={"period": "2026-12"}).body["total"]
        == 0
    )
    scoped = call("GET", "/reports/complaints", claims=DESK, query={"period": "2026-11"}).body
    assert scoped["department"] == "front_desk"
    assert (
        call("GET", "/reports/complaints", claims=ADMIN, query={"period": "2026-13"}).status == 422
    )
