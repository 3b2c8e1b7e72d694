"""E-mail over SES v2: moto for the happy path, botocore's Stubber for faults, events back."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.stub import ANY, Stubber
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from sotong.notify.providers.base import OutgoingMessage
from sotong.notify.providers.ses import SesEmailProvider, message_id_tag, parse_ses_events

REGION = "ap-northeast-2"
SENDER = "noreply@hospital.example"


def email(message_id: str = "msg-mail-1", **overrides: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "message_id": message_id,
        "channel": "email",
        "text": "민원 처리 결과를 안내드립니다. 자세한 내용은 병원 홈페이지에서 확인해 주세요.",
        "sender_number": "0212345678",
        "to_email": "patient@example.com",
        "subject": "[소통병원] 민원 처리 결과 안내",
    }
    values.update(overrides)
    return OutgoingMessage(**values)


@pytest.fixture
def moto_ses() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sesv2", region_name=REGION)


def test_sends_through_sesv2_once_the_identity_is_verified(moto_ses: Any) -> None:
    moto_ses.create_email_identity(EmailIdentity="hospital.example")
    provider = SesEmailProvider(SENDER, configuration_set="sotong-events", client=moto_ses)
    result = provider.send(email())
    assert result.outcome == "accepted"
    assert result.provider_message_id
    from moto.ses.models import ses_backends

    [sent] = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
    assert sent.subject == "[소통병원] 민원 처리 결과 안내"
    assert sent.body.startswith("민원 처리 결과")
    assert sent.destinations == {"ToAddresses": ["patient@example.com"]}


def test_unverified_sender_is_rejected_permanently(moto_ses: Any) -> None:
    result = SesEmailProvider(SENDER, client=moto_ses).send(email())
    assert (result.outcome, result.reason) == ("permanent", "message_rejected")


def stubbed() -> tuple[SesEmailProvider, Stubber]:
    client = boto3.client(
        "sesv2", region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t"
    )
    return SesEmailProvider(SENDER, configuration_set="cs", client=client), Stubber(client)


def test_request_shape_utf8_and_message_id_tag() -> None:
    provider, stub = stubbed()
    stub.add_response(
        "send_email",
        {"MessageId": "0100-ses-id"},
        {
            "FromEmailAddress": SENDER,
            "Destination": {"ToAddresses": ["patient@example.com"]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": "[소통병원] 민원 처리 결과 안내", "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": ANY, "Charset": "UTF-8"}},
                }
            },
            "EmailTags": [{"Name": "sotong_message_id", "Value": "msg-mail-1"}],
            "ConfigurationSetName": "cs",
        },
    )
    with stub:
        result = provider.send(email())
    stub.assert_no_pending_responses()
    assert (result.outcome, result.provider_message_id) == ("accepted", "0100-ses-id")


@pytest.mark.parametrize(
    ("code", "status", "outcome", "reason"),
    [
        ("TooManyRequestsException", 429, "retryable", "too_many_requests"),
        ("Throttling", 400, "retryable", "throttling"),
        ("LimitExceededException", 400, "retryable", "limit_exceeded"),
        ("ServiceUnavailable", 503, "retryable", "service_unavailable"),
        ("InternalFailure", 500, "retryable", "internal_failure"),
        ("MessageRejected", 400, "permanent", "message_rejected"),
        ("MailFromDomainNotVerifiedException", 400, "permanent", "mail_from_domain_not_verified"),
        ("AccountSuspendedException", 400, "permanent", "account_suspended"),
        ("SendingPausedException", 400, "permanent", "sending_paused"),
        ("NotFoundException", 404, "permanent", "configuration_not_found"),
        ("SomethingNewException", 400, "permanent", "something_new"),
    ],
)
def test_client_errors_map_to_outcomes(code: str, status: int, outcome: str, reason: str) -> None:
    provider, stub = stubbed()
    stub.add_client_error("send_email", service_error_code=code, http_status_code=status)
    with stub:
        result = provider.send(email())
    assert (result.outcome, result.reason) == (outcome, reason)


def test_connection_refused_is_retryable() -> None:
    client = boto3.client(
        "sesv2",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="t",
        aws_secret_access_key="t",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=0.5),
    )
    result = SesEmailProvider(SENDER, client=client).send(email())
    assert (result.outcome, result.reason) == ("retryable", "provider_unreachable")


@contextmanager
def tcp_server(behaviour: str) -> Iterator[str]:
    """A local endpoint that takes the request, then hangs ("hang") or hangs up ("close")."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    done = threading.Event()
    taken: list[socket.socket] = []

    def serve() -> None:
        listener.settimeout(0.1)
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            taken.append(connection)
            connection.recv(65536)  # the request reached the "server"
            if behaviour == "close":
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        thread.join(timeout=2)
        for connection in taken:
            connection.close()
        listener.close()


def client_for(endpoint: str) -> Any:
    return boto3.client(
        "sesv2",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="t",
        aws_secret_access_key="t",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=0.5, read_timeout=0.3),
    )


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [("hang", "provider_timeout"), ("close", "provider_connection_lost")],
)
def test_a_request_that_left_without_an_answer_is_uncertain(behaviour: str, reason: str) -> None:
    """SES may have sent it: never `provider_unreachable`, never resent blindly."""
    with tcp_server(behaviour) as endpoint:
        result = SesEmailProvider(SENDER, client=client_for(endpoint)).send(email())
    assert (result.outcome, result.reason) == ("uncertain", reason)


@pytest.mark.parametrize(
    ("error", "outcome", "reason"),
    [
        (EndpointConnectionError(endpoint_url="https://x"), "retryable", "provider_unreachable"),
        (ConnectTimeoutError(endpoint_url="https://x"), "retryable", "provider_unreachable"),
        (ReadTimeoutError(endpoint_url="https://x"), "uncertain", "provider_timeout"),
        (ConnectionClosedError(endpoint_url="https://x"), "uncertain", "provider_connection_lost"),
        (NoCredentialsError(), "retryable", "ses_client_error"),
        (ParamValidationError(report="bad"), "permanent", "invalid_message"),
    ],
)
def test_botocore_errors_map_by_whether_the_request_left(
    error: Exception, outcome: str, reason: str
) -> None:
    class Failing:
        def send_email(self, **_: Any) -> Any:
            raise error

    result = SesEmailProvider(SENDER, client=Failing()).send(email())  # type: ignore[arg-type]
    assert (result.outcome, result.reason) == (outcome, reason)


def test_send_many_loops_and_lookup_cannot_tell(moto_ses: Any) -> None:
    moto_ses.create_email_identity(EmailIdentity="hospital.example")
    provider = SesEmailProvider(SENDER, client=moto_ses)
    assert provider.max_batch == 1
    results = provider.send_many([email("m-1"), email("m-2", to_email=None), email("m-3")])
    assert [r.outcome for r in results] == ["accepted", "permanent", "accepted"]
    assert results[0].provider_message_id != results[2].provider_message_id
    found = provider.lookup(email("m-1"), datetime.now(UTC))
    assert (found.found, found.reason) == (None, "ses_has_no_lookup")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (email(channel="sms"), "unsupported_channel"),
        (email(to_email=None), "invalid_recipient"),
        (email(to_email="not-an-address"), "invalid_recipient"),
        (email(message_id="가" * 50), "invalid_message"),
    ],
)
def test_messages_that_cannot_go(message: OutgoingMessage, reason: str) -> None:
    provider, stub = stubbed()
    with stub:
        result = provider.send(message)
    assert (result.outcome, result.reason) == ("permanent", reason)


def ses_event(kind: str, tags: dict[str, list[str]] | None = None, **extra: Any) -> dict[str, Any]:
    mail = {
        "timestamp": "2026-01-01T00:00:00.000Z",
        "source": SENDER,
        "messageId": "0100-ses-id",
        "destination": ["patient@example.com"],
        "tags": tags if tags is not None else {"sotong_message_id": ["msg-mail-1"]},
    }
    return {"eventType": kind, "mail": mail, **extra}


def sns(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "Records": [
            {"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": json.dumps(e)}}
            for e in events
        ]
    }


def test_sns_records_map_to_reports() -> None:
    event = sns(
        ses_event("Send"),
        ses_event("Delivery", delivery={"recipients": ["patient@example.com"]}),
        ses_event("Bounce", bounce={"bounceType": "Permanent", "bounceSubType": "General"}),
        ses_event("Complaint", complaint={"complainedRecipients": []}),
        ses_event("Reject", reject={"reason": "Bad content"}),
        ses_event("DeliveryDelay"),
        ses_event("Open"),
    )
    reports = parse_ses_events(event)
    assert [(r.status, r.reason) for r in reports] == [
        ("delivered", None),
        ("failed", "bounce"),
        ("opted_out", "complaint"),
        ("failed", "rejected"),
    ]
    assert {r.message_id for r in reports} == {"msg-mail-1"}
    assert {r.provider_message_id for r in reports} == {"0100-ses-id"}
    assert {r.channel for r in reports} == {"email"}


def test_eventbridge_and_sqs_wrapped_events() -> None:
    eventbridge = {
        "version": "0",
        "source": "aws.ses",
        "detail-type": "Email Bounced",
        "detail": ses_event("Bounce", bounce={"bounceType": "Transient"}),
    }
    sqs = {
        "Records": [
            {
                "eventSource": "aws:sqs",
                "body": json.dumps(
                    {"Type": "Notification", "Message": json.dumps(ses_event("Delivery"))}
                ),
            }
        ]
    }
    assert [(r.status, r.reason) for r in parse_ses_events(eventbridge)] == [("failed", "bounce")]
    assert [r.status for r in parse_ses_events(sqs)] == ["delivered"]
    assert parse_ses_events({"unrelated": True}) == []
    assert parse_ses_events("not json") == []


def test_non_ascii_message_ids_travel_hex_encoded() -> None:
    tag = message_id_tag("민원#42")
    assert tag["Name"] == "sotong_message_id_hex"
    [report] = parse_ses_events(ses_event("Delivery", tags={tag["Name"]: [tag["Value"]]}))
    assert report.message_id == "민원#42"
    [untagged] = parse_ses_events(ses_event("Delivery", tags={}))
    assert untagged.message_id is None
