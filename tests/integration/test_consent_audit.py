"""Every consent change is audited through the real handlers: who, when, from which source, the
value before and after; and the audit keeps nothing personal."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from sotong import clock, consent
from sotong.notify.providers.solapi import sign_webhook
from tests.integration.api import ADMIN, DESK, call
from tests.integration.test_complaints import WEBHOOK_SECRET, _inbound, complaints_env, form

__all__ = ["complaints_env"]
KST = ZoneInfo("Asia/Seoul")
PHONE = "010-5555-6666"


def audit() -> list[dict[str, Any]]:
    return list(reversed(consent.history("demo", PHONE)))


def _register(claims: dict[str, str], **consents: bool) -> Any:
    body = {"name": "홍길동", "phone": PHONE, "chart_no": "C-7", "consents": consents}
    answer = call("POST", "/patients", body, claims=claims)
    assert answer.status == 201, answer.body
    return answer.body


def test_staff_changes_are_audited_with_who_old_and_new(complaints_env: dict[str, str]) -> None:
    clock.fix(datetime(2026, 12, 1, 10, 0, tzinfo=KST))
    patient = _register(DESK, contact=True, marketing=False)
    assert sorted((a["scope"], a["old"], a["new"], a["source"], a["by"]) for a in audit()) == [
        ("contact", "unset", True, "staff", "desk.choi"),
        ("marketing", "unset", False, "staff", "desk.choi"),
        ("night", "unset", False, "staff", "desk.choi"),
    ]
    clock.fix(datetime(2026, 12, 1, 11, 0, tzinfo=KST))
    _register(ADMIN, contact=True, marketing=True)  # only marketing changes
    last = audit()[-1]
    assert (last["scope"], last["old"], last["new"], last["by"]) == (
        "marketing",
        False,
        True,
        "cs.kim",
    )
    assert last["at"].startswith("2026-12-01T02:00")  # stored in UTC
    assert last["patient_id"] == patient["id"]
    assert len(audit()) == 4
    view = call("GET", f"/patients/{patient['id']}", claims=DESK).body
    newest, *first = (a["scope"] for a in view["consent_history"])
    assert newest == "marketing"
    assert sorted(first) == ["contact", "marketing", "night"]


def test_refusals_from_every_channel_are_audited_once(complaints_env: dict[str, str]) -> None:
    clock.fix(datetime(2026, 12, 1, 10, 0, tzinfo=KST))
    assert _inbound("수신거부", sender="01055556666")["opted_out"] == 1
    assert _inbound("수신거부", sender="01055556666", message_id="again")["opted_out"] == 1
    report = json.dumps(
        [
            {
                "eventDataId": "r1",
                "data": {
                    "messageId": "M1",
                    "statusCode": "1061",
                    "type": "SMS",
                    "to": "01055556666",
                },
            }
        ]
    ).encode()
    answer = call(
        "POST", "/webhooks/reports", raw=report, headers=sign_webhook(report, WEBHOOK_SECRET)
    )
    assert answer.status == 200
    rows = [(a["scope"], a["old"], a["new"], a["source"]) for a in audit()]
    assert rows == [("opt_out:sms", "allowed", "refused", "inbound")]  # 080 was already refused


def test_the_complaint_form_consent_is_audited(complaints_env: dict[str, str]) -> None:
    body = form(contact={"name": "김민지", "phone": PHONE})
    assert call("POST", "/complaints", body).status == 201
    (entry,) = audit()
    assert (entry["scope"], entry["new"], entry["source"]) == ("complaint_contact", True, "form")
    assert entry["complaint_id"].startswith("c")


def test_the_audit_holds_nothing_personal(complaints_env: dict[str, str]) -> None:
    _register(DESK, contact=True)
    _inbound("수신거부", sender="01055556666")
    table = boto3.client("dynamodb").scan(TableName=complaints_env["SOTONG_TABLE"])  # test only
    items = [i for i in table["Items"] if i["pk"]["S"].startswith("CONSENT#")]
    assert items
    text = json.dumps(items, ensure_ascii=False)
    for personal in ("01055556666", "010-5555-6666", "1055556666", "홍길동"):
        assert personal not in text


@pytest.fixture(autouse=True)
def _reset_clock() -> Any:
    yield
    clock.fix(None)
