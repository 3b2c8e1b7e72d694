"""Complaints write their messages through the transactional outbox: a complaint and the
messages it causes exist together or not at all, and SQS being down loses nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from sotong import clock, store
from sotong.notify import txoutbox
from tests.integration.api import ADMIN, DESK, call
from tests.integration.conftest import receive_all

KST = ZoneInfo("Asia/Seoul")
CRITICAL = "어머니가 화장실에서 넘어지셨는데 한참 동안 아무도 오지 않았습니다."


@pytest.fixture
def env(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    import boto3

    from sotong.config import load_hospital
    from sotong_local.aws import placeholder_secrets

    for name, value in placeholder_secrets(load_hospital()).items():
        boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(value))
    monkeypatch.setenv("SOTONG_PUBLIC_URL", "https://demo.example")
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
    txoutbox._sqs.cache_clear()
    yield aws
    txoutbox._sqs.cache_clear()


def form(text: str = "접수 대기시간이 1시간이 넘었는데 아무 안내도 없었습니다.") -> dict[str, Any]:
    return {
        "text": text,
        "contact": {"name": "홍길동", "phone": "010-1234-5678"},
        "consent_to_contact": True,
    }


def outbox_requests() -> list[dict[str, Any]]:
    """The message requests waiting in the outbox (not yet on the queue)."""
    pending = txoutbox.pending(clock.now() + timedelta(days=1))
    return [json.loads(entry["request"]) for entry in pending]


def templates(requests: list[dict[str, Any]]) -> list[str]:
    return sorted(r["template_id"] for r in requests)


def on_queue(env: dict[str, str]) -> list[dict[str, Any]]:
    messages = receive_all(env["SOTONG_NOTIFICATIONS_QUEUE_URL"])
    return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def sqs_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SQS call, from any client, fails as if the service were unreachable."""
    real = getattr(BaseClient, "_make_api_call")  # noqa: B009 (private, not in the stubs)

    def call_api(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "sqs":
            raise ClientError(
                {"Error": {"Code": "ServiceUnavailable", "Message": "SQS is down"}}, operation
            )
        return real(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", call_api)


def complaint_id() -> str:
    (item,) = call("GET", "/inbox", claims=ADMIN).body["items"]
    return str(item["id"])


def test_a_failed_write_leaves_nothing_and_the_retry_creates_complaint_and_alerts_once(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = store.dynamodb()
    real = client.transact_write_items
    calls: list[int] = []

    def fails_once(**kwargs: Any) -> Any:
        calls.append(len(kwargs["TransactItems"]))
        if len(calls) == 1:
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "try again"}},
                "TransactWriteItems",
            )
        return real(**kwargs)

    monkeypatch.setattr(client, "transact_write_items", fails_once)
    key = {"Idempotency-Key": "form-critical-1"}
    with pytest.raises(ClientError):
        call("POST", "/complaints", form(CRITICAL), headers=key)
    assert call("GET", "/inbox", claims=ADMIN).body["items"] == []  # nothing half-done
    assert outbox_requests() == []

    first = call("POST", "/complaints", form(CRITICAL), headers=key)
    again = call("POST", "/complaints", form(CRITICAL), headers=key)
    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body
    # complaint + contact pointer (how an erasure finds it) + consent audit + on-call alert + ack
    # + the department's routing alert; the replay wrote nothing
    assert calls == [6, 6]
    assert len(call("GET", "/inbox", claims=ADMIN).body["items"]) == 1
    requests = outbox_requests()
    assert templates(requests) == ["complaint_received", "staff_critical", "staff_routed"]
    alert = next(r for r in requests if r["template_id"] == "staff_critical")
    assert alert["recipient"]["phone"] == "+821020001999"  # the on-call contact

    assert txoutbox.flush() == 3
    assert templates(on_queue(env)) == ["complaint_received", "staff_critical", "staff_routed"]


def test_sqs_down_loses_nothing(env: dict[str, str], sqs_down: None) -> None:
    answer = call("POST", "/complaints", form(CRITICAL), headers={"Idempotency-Key": "k-sqs"})
    assert answer.status == 201
    assert templates(outbox_requests()) == ["complaint_received", "staff_critical", "staff_routed"]
    cid = complaint_id()
    for suffix, body in (
        ("/replies", {"message": "확인 중입니다."}),
        ("/resolve", {"outcome": "낙상 예방 매트를 설치했습니다."}),
        ("/close", {"note": "종결"}),
    ):
        assert call("POST", f"/complaints/{cid}{suffix}", body, claims=ADMIN).status == 200
    assert len(outbox_requests()) == 6
    with pytest.raises(ClientError):
        txoutbox.flush()  # the relay cannot publish either, and keeps everything pending
    assert len(outbox_requests()) == 6


def test_every_transition_with_messages_writes_them_to_the_outbox(env: dict[str, str]) -> None:
    import sla_sweeper

    from sotong.resources import function
    from sotong_local.lambdas import LambdaContext

    receipt = call("POST", "/complaints", form(CRITICAL)).body
    assert templates(outbox_requests()) == ["complaint_received", "staff_critical", "staff_routed"]
    assert on_queue(env) == []  # nothing reaches SQS until the relay publishes
    assert txoutbox.flush() == 3
    assert templates(on_queue(env)) == ["complaint_received", "staff_critical", "staff_routed"]
    assert outbox_requests() == []

    # critical: acknowledge within 1 h; at 1 h 5 min the department head is alerted
    clock.fix(datetime(2026, 11, 23, 11, 5, tzinfo=KST))
    context = LambdaContext(function("sla_sweeper"))
    # the on-call alarm's metric: a critical complaint nobody acknowledged in its SLA
    assert sla_sweeper.handler({}, context) == {"escalated": 1, "critical_unacknowledged": 1}
    (escalation,) = outbox_requests()
    assert escalation["template_id"] == "staff_alert"
    assert escalation["variables"]["level"] == "SLA 1단계"
    assert escalation["idempotency_key"].endswith(":escalate:ack:1")
    assert txoutbox.flush() == 1

    cid = complaint_id()
    expected = {
        "/replies": ({"message": "담당 부서에서 확인 중입니다."}, "complaint_progress"),
        "/resolve": ({"outcome": "낙상 예방 매트를 설치했습니다."}, "complaint_outcome"),
        "/close": ({"note": "종결"}, "complaint_survey"),
    }
    for suffix, (body, template) in expected.items():
        answer = call("POST", f"/complaints/{cid}{suffix}", body, claims=ADMIN)
        assert answer.status == 200, answer.body
        (request,) = outbox_requests()
        assert request["template_id"] == template
        assert request["refs"] == {"complaint": cid}
        assert txoutbox.flush() == 1
    assert templates(on_queue(env)) == [
        "complaint_outcome",
        "complaint_progress",
        "complaint_survey",
        "staff_alert",
    ]
    assert receipt["tracking_code"] == call("GET", f"/complaints/{cid}", claims=ADMIN).body["code"]


def test_a_refused_staff_write_writes_no_message(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply that loses a race with another change is a 409, and its message is not sent."""
    from dataclasses import replace

    from sotong.complaints.record import Complaint
    from sotong.complaints.repository import DynamoComplaintRepository

    call("POST", "/complaints", form())
    txoutbox.flush()
    cid = complaint_id()
    real_get = DynamoComplaintRepository.get

    def stale(self: DynamoComplaintRepository, complaint: str) -> Complaint | None:
        item = real_get(self, complaint)
        return replace(item, version=item.version - 1) if item else None

    monkeypatch.setattr(DynamoComplaintRepository, "get", stale)
    answer = call("POST", f"/complaints/{cid}/replies", {"message": "확인 중입니다."}, claims=DESK)
    assert answer.status == 409
    assert outbox_requests() == []
