"""The notification pipeline with the real Solapi client against the fake Solapi on 127.0.0.1:
SQS -> notification_sender -> HTTP -> record, through retries and the dead-letter queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from sotong import clock
from sotong.config import load_hospital
from sotong.notify import records
from sotong.notify.model import MessageRequest, Recipient, message_id
from sotong.notify.providers.factory import Providers
from sotong.resources import NOTIFICATIONS
from tests.fakes.solapi_server import (
    FakeSolapi,
    accept,
    fail,
    fallback,
    hang,
    rate_limited,
    server_error,
)
from tests.integration.test_notifications import enqueue, run_sender

KST = ZoneInfo("Asia/Seoul")


@pytest.fixture
def solapi(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSolapi]:
    """The demo hospital switched to Solapi, its secrets in Secrets Manager, the fake as Solapi."""
    import notification_sender

    with FakeSolapi() as fake:
        secrets = boto3.client("secretsmanager")
        secrets.create_secret(
            Name="sotong/demo/solapi",
            SecretString=json.dumps({"api_key": fake.api_key, "api_secret": fake.api_secret}),
        )
        secrets.create_secret(
            Name="sotong/demo/kakao", SecretString=json.dumps({"sender_key": "KA01PF"})
        )
        monkeypatch.setenv("SOTONG_SOLAPI_URL", fake.base_url)
        monkeypatch.setenv("SOTONG_PROVIDER_TIMEOUT_SECONDS", "0.3")
        demo = load_hospital()
        hospital = demo.model_copy(
            update={"sender": demo.sender.model_copy(update={"provider": "solapi"})}
        )
        monkeypatch.setattr(notification_sender, "hospital", hospital)
        monkeypatch.setattr(notification_sender, "providers", Providers(hospital))
        clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
        yield fake


def alert(key: str = "alert-1") -> MessageRequest:
    return MessageRequest(
        idempotency_key=key,
        recipient=Recipient(kind="staff", phone="010-2000-1999"),
        template_id="staff_alert",
        variables={"level": "긴급", "department": "QI", "code": "AB12-CD34", "reason": "환자안전"},
    )


def aftercare(key: str = "tp-1") -> MessageRequest:
    return MessageRequest(
        idempotency_key=key,
        recipient=Recipient(name="홍길동", phone="010-1234-5678", contact_consent=True),
        template_id="dental_aftercare",
        variables={"hospital": "소통치과", "name": "홍길동", "callback": "02-555-0100"},
    )


def until_settled(env: dict[str, str], rounds: int = 8) -> list[dict[str, Any]]:
    """Run the sender until the queue is empty; handed-back requests come back at once with
    the clock moved past their lease, backoff and lookup delay."""
    results = []
    for _ in range(rounds):
        result = run_sender(env, redeliver_now=True)
        if not result["count"]:
            break
        results.append(result)
        if result["batchItemFailures"]:
            clock.fix(clock.now() + timedelta(minutes=10))
            time.sleep(1.2)  # a late intake (the fake's `hang`) lands before the lookup
    return results


def dlq_depth(env: dict[str, str]) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=env[NOTIFICATIONS.dlq_env], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_a_message_goes_out_once_with_solapis_signature(
    aws: dict[str, str], solapi: FakeSolapi
) -> None:
    enqueue([alert(), alert()])
    until_settled(aws)
    mid = message_id("demo", "alert-1")
    assert solapi.sends_for(mid) == 1
    record = records.get(mid)
    assert record is not None
    assert (record["status"], record["provider"]) == ("sent", "solapi")


def test_a_5xx_is_uncertain_looked_up_and_never_parked_in_the_dlq(
    aws: dict[str, str], solapi: FakeSolapi
) -> None:
    solapi.script(*[server_error(503)] * 10)
    enqueue([alert()])
    until_settled(aws)
    mid = message_id("demo", "alert-1")
    record = records.get(mid)
    assert record is not None
    assert record["status"] == "uncertain"
    assert "left for staff" not in record["reason"]  # the record says what is uncertain
    assert record["attempts"] == NOTIFICATIONS.max_receive_count
    assert solapi.sends_for(mid) == 0  # each resend came only after the log said "no such"
    assert len(solapi.list_requests()) >= NOTIFICATIONS.max_receive_count - 1
    assert dlq_depth(aws) == 0  # a replay must never resend an uncertain message


def test_a_timeout_after_the_provider_took_it_is_found_not_resent(
    aws: dict[str, str], solapi: FakeSolapi
) -> None:
    solapi.script(hang(1.0))
    enqueue([alert()])
    until_settled(aws)
    mid = message_id("demo", "alert-1")
    record = records.get(mid)
    assert record is not None
    assert record["status"] == "sent"
    assert [e["status"] for e in record["events"]] == ["calling", "uncertain", "sent"]
    assert solapi.sends_for(mid) == 1


def test_a_refused_connection_is_retried_then_parked_in_the_dlq(
    aws: dict[str, str], solapi: FakeSolapi
) -> None:
    enqueue([alert()])
    with solapi.offline():
        until_settled(aws)
    mid = message_id("demo", "alert-1")
    record = records.get(mid)
    assert record is not None
    assert (record["status"], record["reason"]) == (
        "failed",
        "retries_exhausted: provider_unreachable",
    )
    assert record["attempts"] == NOTIFICATIONS.max_receive_count
    assert dlq_depth(aws) == 1


def test_a_429_is_retried_and_then_sent(aws: dict[str, str], solapi: FakeSolapi) -> None:
    solapi.script(rate_limited("1"), accept())
    enqueue([alert()])
    until_settled(aws)
    record = records.get(message_id("demo", "alert-1"))
    assert record is not None
    assert record["status"] == "sent"
    assert [e["status"] for e in record["events"]] == ["calling", "retry", "calling", "sent"]


def test_a_template_mismatch_fails_without_retry(aws: dict[str, str], solapi: FakeSolapi) -> None:
    solapi.script(fail("3103"))
    enqueue([aftercare()])
    results = until_settled(aws)
    assert len(results) == 1  # no redelivery
    record = records.get(message_id("demo", "tp-1"))
    assert record is not None
    assert (record["status"], record["reason"]) == ("failed", "template_mismatch")
    assert dlq_depth(aws) == 0


def test_alimtalk_fallback_is_the_providers_and_reported(
    aws: dict[str, str], solapi: FakeSolapi
) -> None:
    from sotong.notify.providers.solapi import parse_delivery_reports

    solapi.script(fallback())
    enqueue([aftercare()])
    until_settled(aws)
    mid = message_id("demo", "tp-1")
    (sent,) = solapi.accepted
    assert sent.message["type"] == "ATA"
    assert sent.message["kakaoOptions"]["disableSms"] is False  # Solapi falls back, we never resend
    body = solapi.reports_body()
    for report in parse_delivery_reports(body):
        assert report.message_id is not None
        records.apply_report(report.message_id, report.status, report.reason, report.channel)
    record = records.get(mid)
    assert record is not None
    assert record["status"] == "fallback_sent"
    assert solapi.sends_for(mid) == 1
