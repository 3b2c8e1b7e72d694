"""The replies waiting for an answer (GET /replies) and finding a patient (GET /patients),
through the real handlers over moto: a recall reply from the provider's webhook waits in its
department's queue, harm flagged first, and leaves it when staff answer or mark it handled."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from sotong import clock
from sotong.config import load_hospital
from sotong.notify.providers.solapi import sign_webhook
from sotong_local.aws import placeholder_secrets
from tests.integration.api import ADMIN, DENTAL, DERMATOLOGY, DESK, QI, call
from tests.integration.test_recall import deliver, dispatch, register, treat

KST = ZoneInfo("Asia/Seoul")


@pytest.fixture
def env(aws: dict[str, str]) -> dict[str, str]:
    clock.fix(datetime(2026, 11, 23, 9, 0, tzinfo=KST))
    for name, value in placeholder_secrets(load_hospital()).items():
        boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(value))
    return aws


def reply(phone: str, text: str, message_id: str) -> None:
    body = json.dumps(
        [{"data": {"messageId": message_id, "from": phone, "to": "025550100", "text": text}}]
    ).encode()
    answer = call(
        "POST", "/webhooks/inbound", raw=body, headers=sign_webhook(body, "local-hmac_key")
    )
    assert answer.status == 200, answer.body
    assert answer.body["replies"] == 1, answer.body


def waiting(claims: dict[str, str]) -> list[dict[str, Any]]:
    answer = call("GET", "/replies", claims=claims)
    assert answer.status == 200, answer.body
    return answer.body["replies"]  # type: ignore[no-any-return]


def test_a_harm_reply_waits_flagged_first_and_leaves_when_answered(env: dict[str, str]) -> None:
    implant = register("010-1234-5678")
    treat(implant, day="2026-05-23")  # six-month recall due today
    botox = register("010-2222-3333")
    treat(botox, tag="botox", day="2026-07-23", claims=ADMIN)  # its next step is due today
    dispatch(datetime(2026, 11, 23, 12, 0, tzinfo=KST))
    deliver(env)
    reply("01012345678", "언제 가면 될까요?", "M1")
    clock.fix(datetime(2026, 11, 23, 12, 5, tzinfo=KST))
    reply("01012345678", "임플란트 한 곳에서 피가 계속 나요", "M2")

    dental = waiting(DENTAL)
    assert [r["message"]["text"] for r in dental] == [
        "임플란트 한 곳에서 피가 계속 나요",
        "언제 가면 될까요?",
    ]
    first = dental[0]
    assert (first["flagged"], first["urgency"]) == (True, "critical")
    assert first["manual"]["tag"] == "implant_surgery"
    assert "흔들림" in first["manual"]["text"]
    assert first["patient"]["id"] == implant
    assert first["recent_touchpoints"][0]["step"] == "recall"
    assert dental[1]["flagged"] is False
    assert waiting(DERMATOLOGY) == []  # another department's patient
    assert len(waiting(ADMIN)) == 2
    assert call("GET", "/replies", claims=DESK).status == 403
    assert call("GET", "/replies", claims=QI).status == 403

    clock.fix(datetime(2026, 11, 23, 12, 10, tzinfo=KST))
    answered = call(
        "POST",
        f"/patients/{implant}/conversation",
        {"message": "지금 바로 내원해 주세요."},
        claims=DENTAL,
    )
    assert answered.status == 200, answered.body
    assert waiting(DENTAL) == []
    talk = call("GET", f"/patients/{implant}/conversation", claims=DENTAL).body
    assert [m["text"] for m in talk["messages"]][-1] == "지금 바로 내원해 주세요."


def test_marking_replies_converted_or_handled(env: dict[str, str]) -> None:
    pid = register("010-1234-5678")
    treat(pid, day="2026-05-23")
    dispatch(datetime(2026, 11, 23, 12, 0, tzinfo=KST))
    deliver(env)
    reply("01012345678", "예약하고 싶어요", "M1")
    url = f"/patients/{pid}/conversation/handled"
    assert call("POST", url, {"outcome": "converted"}, claims=DERMATOLOGY).status == 404
    bad = call("POST", url, {"outcome": "done"}, claims=DENTAL)
    assert bad.status == 422
    assert bad.body["fields"][0]["field"] == "body.outcome"
    marked = call("POST", url, {"outcome": "converted"}, claims=DENTAL)
    assert marked.status == 200, marked.body
    assert marked.body["settled"] == 1
    assert marked.body["converted"] is not None
    assert waiting(DENTAL) == []
    again = call("POST", url, {"outcome": "handled"}, claims=DENTAL)
    assert (again.status, again.body["settled"]) == (200, 0)


def test_a_patient_is_found_by_chart_number_or_phone(env: dict[str, str]) -> None:
    pid = register("010-1234-5678")  # chart number C-5678
    treat(pid)

    def find(claims: dict[str, str], **query: str) -> list[str]:
        answer = call("GET", "/patients", claims=claims, query=query)
        assert answer.status == 200, answer.body
        return [p["id"] for p in answer.body["patients"]]

    assert find(DENTAL, chart_no="C-5678") == [pid]
    assert find(ADMIN, phone="010-1234-5678") == [pid]
    assert find(DESK, phone="01012345678") == [pid]
    assert find(DERMATOLOGY, chart_no="C-5678") == []
    assert find(ADMIN, chart_no="C-0000") == []
    (seen,) = call("GET", "/patients", claims=DESK, query={"chart_no": "C-5678"}).body["patients"]
    assert "upcoming" not in seen
    missing = call("GET", "/patients", claims=ADMIN)
    assert missing.status == 400
    assert missing.body["message"].startswith("query.chart_no:")
    bad = call("GET", "/patients", claims=ADMIN, query={"phone": "02-555-0100"})
    assert (bad.status, bad.body["fields"][0]["field"]) == (422, "query.phone")
    assert call("GET", "/patients", claims=QI, query={"chart_no": "C-5678"}).status == 403
