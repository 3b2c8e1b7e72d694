"""Solapi client without a network: auth header, request body, answer mapping."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest

from sotong.notify.providers.base import OutgoingMessage, sms_kind
from sotong.notify.providers.solapi import (
    SolapiProvider,
    authorization_header,
    build_payload,
    parse_retry_after,
    reason_for_status,
)

KEY, SECRET = "NCSAYU7YDBXYORXC", "s3cr3t-value-for-tests-only"


def alimtalk(**overrides: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "message_id": "msg-001",
        "channel": "alimtalk",
        "text": "홍길동님, 내일 10:00 예약을 안내드립니다.",
        "sender_number": "02-1234-5678",
        "to_phone": "+821012345678",
        "kakao_template_code": "TPL_REMIND_D1",
        "kakao_sender_key": "KA01PF000000000000000000000001",
        "variables": {"name": "홍길동", "#{time}": "10:00"},
        "fallback_text": "홍길동님, 내일 10:00 예약을 안내드립니다.",
    }
    values.update(overrides)
    return OutgoingMessage(**values)


def sms(text: str, **overrides: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "message_id": "msg-002",
        "channel": "sms",
        "text": text,
        "sender_number": "1588-1234",
        "to_phone": "010-9876-5432",
    }
    values.update(overrides)
    return OutgoingMessage(**values)


@dataclass
class Response:
    status: int
    data: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ScriptedHttp:
    """An HTTP client that answers from a list and remembers what it was asked."""

    answers: list[Response | Exception]
    calls: list[dict[str, Any]] = field(default_factory=list)

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        self.calls.append({"method": method, "url": url, **kwargs})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def provider(*answers: Response | Exception) -> tuple[SolapiProvider, ScriptedHttp]:
    http = ScriptedHttp(list(answers))
    return SolapiProvider(KEY, SECRET, base_url="https://solapi.test", http=http), http


def test_authorization_header_follows_solapis_hmac_scheme() -> None:
    at = datetime(2019, 7, 1, 0, 41, 48, tzinfo=UTC)
    header = authorization_header(KEY, SECRET, at=at, salt="jqsba2jxjnrjor")
    expected = hmac.new(SECRET.encode(), b"2019-07-01T00:41:48Zjqsba2jxjnrjor", hashlib.sha256)
    assert header == (
        f"HMAC-SHA256 apiKey={KEY}, date=2019-07-01T00:41:48Z, salt=jqsba2jxjnrjor, "
        f"signature={expected.hexdigest()}"
    )


def test_every_header_gets_a_fresh_salt_of_allowed_length() -> None:
    salts = set()
    for _ in range(5):
        match = re.search(r"salt=([^,]+),", authorization_header(KEY, SECRET))
        assert match
        assert 12 <= len(match.group(1)) <= 64
        salts.add(match.group(1))
    assert len(salts) == 5


def test_alimtalk_body_maps_template_variables_and_fallback() -> None:
    payload = build_payload(alimtalk())
    assert payload["allowDuplicates"] is False
    assert payload["showMessageList"] is True
    [message] = payload["messages"]
    assert message["to"] == "01012345678"
    assert message["from"] == "0212345678"
    assert message["type"] == "ATA"
    assert message["kakaoOptions"] == {
        "pfId": "KA01PF000000000000000000000001",
        "templateId": "TPL_REMIND_D1",
        "variables": {"#{name}": "홍길동", "#{time}": "10:00"},
        "disableSms": False,
    }
    assert message["customFields"] == {"sotongMessageId": "msg-001"}


def test_alimtalk_without_fallback_text_disables_substitution() -> None:
    [message] = build_payload(alimtalk(fallback_text=None))["messages"]
    assert message["kakaoOptions"]["disableSms"] is True


def test_sms_switches_to_lms_by_euc_kr_bytes() -> None:
    ninety_bytes = "가" * 45
    assert sms_kind(ninety_bytes) == "SMS"
    [short] = build_payload(sms(ninety_bytes, subject="안내"))["messages"]
    assert short["type"] == "SMS"
    assert "subject" not in short  # Solapi refuses a subject on SMS (1013)
    [long] = build_payload(sms(ninety_bytes + "가", subject="안내"))["messages"]
    assert long["type"] == "LMS"
    assert long["subject"] == "안내"
    assert long["from"] == "15881234"
    assert long["to"] == "01098765432"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (sms("안녕하세요", to_phone="12345"), "invalid_recipient"),
        (sms("안녕하세요", to_phone=None), "invalid_recipient"),
        (sms("안녕하세요", sender_number="abc"), "invalid_sender"),
        (sms("", message_id="m"), "invalid_message"),
        (alimtalk(kakao_template_code=None), "template_not_found"),
        (
            OutgoingMessage("m", "email", "text", "0212345678", to_email="a@b.kr"),
            "unsupported_channel",
        ),
    ],
)
def test_messages_that_cannot_go_are_permanent_without_a_request(
    message: OutgoingMessage, reason: str
) -> None:
    solapi, http = provider()
    result = solapi.send(message)
    assert (result.outcome, result.reason) == ("permanent", reason)
    assert http.calls == []


def test_one_post_with_json_body_and_no_client_side_retries() -> None:
    answer = {
        "failedMessageList": [],
        "groupInfo": {"groupId": "G1"},
        "messageList": [
            {
                "messageId": "M4V1",
                "statusCode": "2000",
                "customFields": {"sotongMessageId": "msg-001"},
            }
        ],
    }
    solapi, http = provider(Response(200, json.dumps(answer).encode()))
    result = solapi.send(alimtalk())
    assert (result.outcome, result.provider_message_id) == ("accepted", "M4V1")
    [call] = http.calls
    assert call["method"] == "POST"
    assert call["url"] == "https://solapi.test/messages/v4/send-many/detail"
    assert call["retries"] is False
    assert call["redirect"] is False
    assert call["headers"]["Authorization"].startswith(f"HMAC-SHA256 apiKey={KEY}, date=")
    assert json.loads(call["body"])["messages"][0]["text"].startswith("홍길동님")


@pytest.mark.parametrize(
    ("answer", "outcome", "reason", "retry_after"),
    [
        (Response(429, b"{}", {"retry-after": "7"}), "retryable", "rate_limited", 7.0),
        (Response(429, b""), "retryable", "rate_limited", 1.0),
        (Response(502, b"<html>bad gateway</html>"), "uncertain", "provider_http_502", None),
        (Response(500, b'{"errorCode":"InternalError"}'), "uncertain", "provider_http_500", None),
        (
            Response(403, b'{"errorCode":"SignatureDoesNotMatch"}'),
            "permanent",
            "provider_auth",
            None,
        ),
        (Response(401, b""), "permanent", "provider_auth", None),
        (
            Response(403, b'{"errorCode":"DuplicatedSignature"}'),
            "retryable",
            "duplicated_signature",
            None,
        ),
        (Response(400, b'{"errorCode":"ValidationError"}'), "permanent", "ValidationError", None),
        (Response(404, b"not json"), "permanent", "provider_http_404", None),
        (Response(200, b"not json"), "accepted", "unparsed_response", None),
    ],
)
def test_http_answers_map_to_outcomes(
    answer: Response, outcome: str, reason: str, retry_after: float | None
) -> None:
    solapi, _ = provider(answer)
    result = solapi.send(alimtalk())
    assert (result.outcome, result.reason, result.retry_after_s) == (outcome, reason, retry_after)


@pytest.mark.parametrize(
    ("code", "outcome", "reason"),
    [
        ("1043", "permanent", "template_mismatch"),
        ("3103", "permanent", "template_mismatch"),
        ("1042", "permanent", "template_not_found"),
        ("3010", "permanent", "invalid_recipient"),
        ("1024", "retryable", "provider_error"),
        ("1030", "permanent", "insufficient_balance"),
        ("9999", "permanent", "solapi_9999"),
    ],
)
def test_refused_messages_map_by_status_code(code: str, outcome: str, reason: str) -> None:
    body = {"failedMessageList": [{"messageId": "M4VX", "statusCode": code}], "groupInfo": {}}
    solapi, _ = provider(Response(200, json.dumps(body).encode()))
    result = solapi.send(alimtalk())
    assert (result.outcome, result.reason, result.provider_message_id) == (outcome, reason, "M4VX")


def test_group_id_stands_in_when_message_list_is_missing() -> None:
    body = {"failedMessageList": [], "groupInfo": {"groupId": "G4V123"}}
    solapi, _ = provider(Response(200, json.dumps(body).encode()))
    assert solapi.send(alimtalk()).provider_message_id == "group:G4V123"


def _urllib3_errors() -> list[tuple[Exception, str, str]]:
    from urllib3 import exceptions as u3

    pool: Any = None
    return [
        (ConnectionRefusedError(), "retryable", "provider_unreachable"),
        (u3.NewConnectionError(pool, "refused"), "retryable", "provider_unreachable"),
        (
            u3.NameResolutionError("solapi.test", pool, OSError()),
            "retryable",
            "provider_unreachable",
        ),
        (u3.ConnectTimeoutError(pool, "connect timed out"), "retryable", "provider_unreachable"),
        (TimeoutError(), "uncertain", "provider_timeout"),
        (u3.ReadTimeoutError(pool, "/", "read timed out"), "uncertain", "provider_timeout"),
        (ConnectionResetError(), "uncertain", "provider_connection_lost"),
        (
            u3.ProtocolError("Connection aborted.", OSError()),
            "uncertain",
            "provider_connection_lost",
        ),
    ]


@pytest.mark.parametrize(("error", "outcome", "reason"), _urllib3_errors())
def test_network_errors_split_unreachable_from_uncertain(
    error: Exception, outcome: str, reason: str
) -> None:
    """Only a request that surely never reached Solapi may be resent without a lookup."""
    solapi, _ = provider(error)
    result = solapi.send(alimtalk())
    assert (result.outcome, result.reason) == (outcome, reason)


def test_kakao_status_reasons() -> None:
    assert reason_for_status("3104") == "not_kakao_user"
    assert reason_for_status("3107") == "kakao_blocked_or_inactive"
    assert reason_for_status("3105") == "template_not_found"
    assert reason_for_status("1061") == "opted_out"


def test_retry_after_values() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(None) == 1.0
    assert parse_retry_after("soon") == 1.0
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("99999") == 3600.0
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == 30.0


def test_nothing_personal_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    body = {"failedMessageList": [{"messageId": "M", "statusCode": "3103"}], "groupInfo": {}}
    solapi, _ = provider(Response(200, json.dumps(body).encode()), Response(429, b""))
    with caplog.at_level("DEBUG", logger="sotong.notify.solapi"):
        solapi.send(alimtalk())
        solapi.send(alimtalk())
    standard = set(logging.makeLogRecord({}).__dict__)  # timestamps may hold "010" by chance
    logged = " ".join(
        f"{r.getMessage()} { ({k: v for k, v in r.__dict__.items() if k not in standard}) }"
        for r in caplog.records
    )
    assert caplog.records
    for secret in ("010", "1234-5678", "12345678", "홍길동", SECRET):
        assert secret not in logged
