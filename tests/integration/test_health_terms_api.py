"""Staff free text that names a diagnosis or treatment is held back until the sender confirms."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sotong import clock, keys
from sotong.notify import txoutbox
from tests.integration.api import ADMIN, DENTAL, call

KST = ZoneInfo("Asia/Seoul")
WORDED = "보톡스 재시술은 2주 뒤에 가능합니다."


@pytest.fixture
def env(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    import boto3

    from sotong.config import load_hospital
    from sotong_local.aws import placeholder_secrets

    client = boto3.client("secretsmanager")
    for name, value in placeholder_secrets(load_hospital()).items():
        client.create_secret(Name=name, SecretString=json.dumps(value))
    monkeypatch.setenv("SOTONG_PUBLIC_URL", "https://demo.example")
    keys.use_key(b"k" * 32)
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
    return aws


def _complaint() -> str:
    body = {
        "text": "접수 대기시간이 1시간이 넘었는데 아무 안내도 없었습니다.",
        "contact": {"name": "홍길동", "phone": "010-1234-5678"},
        "consent_to_contact": True,
    }
    assert call("POST", "/complaints", body).status == 201
    inbox = call("GET", "/inbox", claims=ADMIN).body["items"]
    return str(inbox[0]["id"])


def _pending() -> list[dict[str, Any]]:
    return [json.loads(p["request"]) for p in txoutbox.pending(clock.now().replace(year=2027))]


def _refused(answer: Any, field: str, term: str) -> None:
    assert answer.status == 422, answer.body
    assert answer.body["error"] == "health_terms"
    assert answer.body["field"] == field
    assert term in answer.body["terms"]
    assert answer.body["message"].startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("action", "field", "body"),
    [
        ("replies", "body.message", {"message": WORDED}),
        ("resolve", "body.outcome", {"outcome": WORDED}),
    ],
)
def test_a_complaint_reply_or_outcome_naming_a_treatment_needs_a_confirmation(
    env: dict[str, str], action: str, field: str, body: dict[str, Any]
) -> None:
    cid = _complaint()
    before = len(_pending())
    _refused(call("POST", f"/complaints/{cid}/{action}", body, claims=ADMIN), field, "보톡스")
    assert len(_pending()) == before, "nothing was queued for the patient"
    assert call("GET", f"/complaints/{cid}", claims=ADMIN).body["status"] == "received"

    confirmed = {**body, "confirm_health_terms": True}
    answer = call("POST", f"/complaints/{cid}/{action}", confirmed, claims=ADMIN)
    assert answer.status == 200, answer.body
    assert len(_pending()) == before + 1


def test_an_internal_reply_is_not_checked_and_a_plain_one_goes_out(env: dict[str, str]) -> None:
    cid = _complaint()
    internal = {"message": WORDED, "notify_patient": False}
    assert call("POST", f"/complaints/{cid}/replies", internal, claims=ADMIN).status == 200
    plain = {"message": "담당 부서에서 확인 중입니다."}
    assert call("POST", f"/complaints/{cid}/replies", plain, claims=ADMIN).status == 200
    strict = {"message": WORDED, "confirm_health_terms": "yes"}
    answer = call("POST", f"/complaints/{cid}/replies", strict, claims=ADMIN)
    assert answer.status == 422
    assert answer.body["fields"][0]["field"] == "body.confirm_health_terms"


def test_a_recall_conversation_answer_naming_a_tag_needs_a_confirmation(
    env: dict[str, str],
) -> None:
    patient = call(
        "POST",
        "/patients",
        {"name": "홍길동", "phone": "010-1234-5678", "consents": {"contact": True}},
        claims=DENTAL,
    )
    assert patient.status == 201, patient.body
    pid = patient.body["id"]
    treated = call(
        "POST",
        f"/patients/{pid}/treatments",
        {"tag": "extraction", "date": "2026-11-23"},
        claims=DENTAL,
    )
    assert treated.status == 201, treated.body
    path = f"/patients/{pid}/conversation"
    # "발치" is the demo's treatment tag `extraction` and a listed procedure.
    _refused(
        call("POST", path, {"message": "발치 부위는 괜찮으신가요?"}, claims=DENTAL),
        "body.message",
        "발치",
    )
    assert call("GET", path, claims=DENTAL).body["messages"] == []
    confirmed = {"message": "발치 부위는 괜찮으신가요?", "confirm_health_terms": True}
    answer = call("POST", path, confirmed, claims=DENTAL)
    assert answer.status == 200, answer.body
    assert [m["text"] for m in answer.body["messages"]] == ["발치 부위는 괜찮으신가요?"]
