"""Solapi webhooks: signature check, delivery reports and inbound replies."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from sotong.notify.providers.solapi import (
    InboundMessage,
    parse_delivery_reports,
    parse_inbound,
    sign_webhook,
    verify_webhook,
)

SECRET = "hospital-webhook-secret"
BODY = b'[{"eventDataId":"E1","data":{"messageId":"M1","statusCode":"4000"}}]'
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z


def signed(body: bytes = BODY, stamp: int = NOW, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Solapi-Timestamp": str(stamp), "X-Solapi-Signature": digest}


def verify(headers: dict[str, str], body: bytes = BODY, secret: str = SECRET) -> bool:
    return verify_webhook(headers, body, secret, now=lambda: NOW + 10)


def test_valid_signature_passes() -> None:
    assert verify(signed())


def test_sign_webhook_matches_the_scheme() -> None:
    assert sign_webhook(BODY, SECRET, timestamp=NOW) == signed()


def test_header_names_are_case_insensitive_and_prefix_is_allowed() -> None:
    headers = {k.lower(): v for k, v in signed().items()}
    headers["x-solapi-signature"] = "sha256=" + headers["x-solapi-signature"].upper()
    assert verify(headers)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Solapi-Timestamp": str(NOW)},
        {"X-Solapi-Signature": signed()["X-Solapi-Signature"]},
        {**signed(), "X-Solapi-Signature": ""},
        {**signed(), "X-Solapi-Signature": "0" * 64},
        {**signed(), "X-Solapi-Timestamp": "yesterday"},
        signed(secret="another-hospital"),
        signed(stamp=NOW - 3600),  # replayed an hour later
        signed(stamp=NOW + 3600),
    ],
)
def test_bad_signatures_fail(headers: dict[str, str]) -> None:
    assert not verify(headers)


def test_tampered_body_fails() -> None:
    assert not verify(signed(), body=BODY.replace(b"4000", b"3104"))


def test_empty_secret_never_verifies() -> None:
    assert not verify(signed(secret=""), secret="")


def test_default_clock_accepts_a_fresh_signature() -> None:
    assert verify_webhook(sign_webhook(BODY, SECRET), BODY, SECRET)
    assert not verify_webhook(sign_webhook(BODY, SECRET, int(time.time()) - 301), BODY, SECRET)


def event(**data: Any) -> dict[str, Any]:
    base = {
        "messageId": "M4V1",
        "groupId": "G4V1",
        "type": "ATA",
        "to": "01012345678",
        "from": "0212345678",
        "statusCode": "4000",
        "kakaoOptions": {"pfId": "KA01PF", "templateId": "TPL", "disableSms": False},
        "customFields": {"sotongMessageId": "msg-001"},
    }
    base.update(data)
    return {"eventDataId": "E", "retryCount": 0, "data": base}


def reports(*events: Any) -> list[Any]:
    return list(parse_delivery_reports(json.dumps(list(events)).encode()))


def test_delivered_alimtalk() -> None:
    [report] = reports(event())
    assert report.message_id == "msg-001"
    assert report.provider_message_id == "M4V1"
    assert (report.status, report.reason, report.channel) == ("delivered", None, "alimtalk")
    assert report.recipient_phone == "+821012345678"


def test_alimtalk_that_went_as_sms_is_fallback_sent() -> None:
    [flagged] = reports(event(type="LMS", replacement=True))
    [inferred] = reports(event(type="SMS"))  # kakaoOptions with a template but sent as SMS
    for report in (flagged, inferred):
        assert (report.status, report.reason, report.channel) == (
            "fallback_sent",
            "kakao_fallback",
            "sms",
        )


def test_plain_sms_delivered_is_not_a_fallback() -> None:
    [report] = reports(event(type="SMS", kakaoOptions=None))
    assert (report.status, report.channel) == ("delivered", "sms")


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        ("3104", "failed", "not_kakao_user"),
        ("3107", "failed", "kakao_blocked_or_inactive"),
        ("3103", "failed", "template_mismatch"),
        ("3043", "failed", "handset_unavailable"),
        ("1061", "opted_out", "opted_out"),
        ("3999", "failed", "solapi_3999"),
    ],
)
def test_failures_keep_their_reason(code: str, status: str, reason: str) -> None:
    [report] = reports(event(statusCode=code))
    assert (report.status, report.reason) == (status, reason)


def test_pending_group_and_broken_entries_are_skipped() -> None:
    body: list[Any] = [
        event(statusCode="3000"),
        event(statusCode="2000"),
        {"eventDataId": "G", "data": {"groupId": "G4V1", "count": {"total": 1}}},
        "nonsense",
        event(customFields=None, to="not a number"),
    ]
    [report] = reports(*body)
    assert report.message_id is None
    assert report.recipient_phone is None
    assert parse_delivery_reports(b"not json") == []
    assert parse_delivery_reports(b"") == []


def test_a_single_object_body_is_accepted() -> None:
    assert len(parse_delivery_reports(json.dumps(event()).encode())) == 1


def test_inbound_reply() -> None:
    body = [
        {
            "eventDataId": "E",
            "data": {
                "messageId": "M4VIN",
                "type": "SMS",
                "from": "010-1234-5678",
                "to": "0212345678",
                "text": "네 참석합니다",
                "dateReceived": "2026-01-01T00:00:05.000Z",
            },
        },
        {"eventDataId": "E2", "data": {"from": "bogus", "text": "x"}},
        {"eventDataId": "E3", "data": {"from": "01012345678", "text": ""}},
    ]
    assert parse_inbound(json.dumps(body).encode()) == [
        InboundMessage(
            from_phone="+821012345678",
            to_phone="+82212345678",
            text="네 참석합니다",
            received_at=datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC),
            channel="sms",
            provider_message_id="M4VIN",
            event_id="E",
        )
    ]


def test_inbound_keeps_the_ids_deduplication_needs() -> None:
    """Solapi retries a webhook with the same eventDataId; the message id is the primary key."""
    body = [
        {"eventDataId": "E9", "retryCount": 2, "data": {"from": "01012345678", "text": "네"}},
        {"eventDataId": "E8", "data": {"messageId": "M4V8", "from": "01012345678", "text": "네"}},
    ]
    first, second = parse_inbound(json.dumps(body).encode())
    assert (first.provider_message_id, first.event_id) == (None, "E9")
    assert (second.provider_message_id, second.event_id) == ("M4V8", "E8")


def test_a_report_shaped_like_the_sdks_single_report_model() -> None:
    """Every field of `SingleReportData` (solapi 5.0.3 model/webhook/single_report.py)."""
    data = {
        "messageId": "M4V2",
        "groupId": "G4V2",
        "type": "LMS",
        "to": "01012345678",
        "from": "0212345678",
        "statusCode": "4000",
        "statusMessage": "정상 수신",
        "dateProcessed": "2026-01-01T00:00:01.000Z",
        "dateReported": "2026-01-01T00:00:02.000Z",
        "dateReceived": "2026-01-01T00:00:02.000Z",
        "networkCode": "10001",
        "kakaoOptions": {"pfId": "KA01PF", "templateId": "TPL", "disableSms": False},
        "rcsOptions": None,
        "naverOptions": None,
        "customFields": {"sotongMessageId": "msg-002"},
    }
    [report] = reports({"eventDataId": "E", "retryCount": 0, "data": data})
    # No `replacement` in the Python model: a text type with an AlimTalk template is the
    # substitute of that AlimTalk.
    assert (report.message_id, report.status, report.channel) == (
        "msg-002",
        "fallback_sent",
        "sms",
    )
