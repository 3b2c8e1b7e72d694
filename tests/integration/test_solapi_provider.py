"""The real Solapi client over HTTP against the fake Solapi on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sotong.notify.providers.base import OutgoingMessage
from sotong.notify.providers.solapi import (
    SolapiProvider,
    parse_delivery_reports,
    parse_inbound,
    verify_webhook,
)
from tests.fakes.solapi_server import (
    Behaviour,
    FakeSolapi,
    accept,
    accept_then_drop,
    accept_then_error,
    accept_then_hang,
    drop,
    fail,
    fallback,
    garbage,
    hang,
    http_error,
    rate_limited,
    server_error,
)

TIMEOUT_S = 0.3
PF_ID = "KA01PF000000000000000000000001"
TEMPLATE = "#{name}님, #{date} #{time} 진료 예약을 안내드립니다. 변경은 02-1234-5678로 연락 주세요."


@pytest.fixture
def fake() -> Iterator[FakeSolapi]:
    with FakeSolapi() as server:
        yield server


@pytest.fixture
def solapi(fake: FakeSolapi) -> SolapiProvider:
    return SolapiProvider(
        fake.api_key, fake.api_secret, base_url=fake.base_url, timeout_s=TIMEOUT_S
    )


def alimtalk(message_id: str = "msg-ata-1", **overrides: Any) -> OutgoingMessage:
    variables = {"name": "김환자", "date": "3월 4일", "time": "10:30"}
    text = TEMPLATE
    for key, value in variables.items():
        text = text.replace(f"#{{{key}}}", value)
    values: dict[str, Any] = {
        "message_id": message_id,
        "channel": "alimtalk",
        "text": text,
        "sender_number": "02-1234-5678",
        "to_phone": "+821012345678",
        "kakao_template_code": "TPL_D1",
        "kakao_sender_key": PF_ID,
        "variables": variables,
        "fallback_text": text,
    }
    values.update(overrides)
    return OutgoingMessage(**values)


def sms(text: str, message_id: str = "msg-sms-1", **overrides: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "message_id": message_id,
        "channel": "sms",
        "text": text,
        "sender_number": "1588-1234",
        "to_phone": "010-2222-3333",
    }
    values.update(overrides)
    return OutgoingMessage(**values)


def test_alimtalk_is_accepted_with_signed_request_and_solapi_body(
    fake: FakeSolapi, solapi: SolapiProvider
) -> None:
    fake.register_template(PF_ID, "TPL_D1", TEMPLATE)
    result = solapi.send(alimtalk())
    assert result.outcome == "accepted"
    assert result.provider_message_id
    assert result.provider_message_id.startswith("M4V")
    [request] = fake.requests
    assert request.status == 200  # the fake checked the HMAC header like Solapi
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.body["allowDuplicates"] is False
    [message] = request.body["messages"]
    assert message["type"] == "ATA"
    assert (message["to"], message["from"]) == ("01012345678", "0212345678")
    assert message["kakaoOptions"]["pfId"] == PF_ID
    assert message["kakaoOptions"]["templateId"] == "TPL_D1"
    assert message["kakaoOptions"]["variables"]["#{name}"] == "김환자"
    assert message["kakaoOptions"]["disableSms"] is False
    assert fake.accepted_copies("msg-ata-1") == 1


def test_text_that_differs_from_the_template_is_permanent(
    fake: FakeSolapi, solapi: SolapiProvider
) -> None:
    fake.register_template(PF_ID, "TPL_D1", TEMPLATE)
    result = solapi.send(alimtalk(text="(광고) 임플란트 할인 이벤트!"))
    assert (result.outcome, result.reason) == ("permanent", "template_mismatch")
    assert fake.accepted_copies("msg-ata-1") == 0


def test_scripted_template_mismatch_is_permanent(fake: FakeSolapi, solapi: SolapiProvider) -> None:
    fake.script(fail("3103", "메시지와 템플릿 불일치"))
    result = solapi.send(alimtalk())
    assert (result.outcome, result.reason) == ("permanent", "template_mismatch")


def test_sms_and_lms_by_korean_byte_length(fake: FakeSolapi, solapi: SolapiProvider) -> None:
    short = "가" * 45  # 90 EUC-KR bytes: still an SMS
    long = "가" * 46
    assert solapi.send(sms(short, "msg-short")).outcome == "accepted"
    assert solapi.send(sms(long, "msg-long", subject="검사 결과 안내")).outcome == "accepted"
    kinds = [r.body["messages"][0]["type"] for r in fake.requests]
    assert kinds == ["SMS", "LMS"]
    assert fake.requests[1].body["messages"][0]["subject"] == "검사 결과 안내"
    assert fake.requests[0].body["messages"][0]["from"] == "15881234"
    assert [r.status for r in fake.requests] == [200, 200]
    assert not any(r.body.get("failedMessageList") for r in fake.requests)


def test_fake_refuses_an_sms_over_90_bytes(fake: FakeSolapi) -> None:
    """The byte check is real: a mislabelled long SMS is refused with 1031 at intake."""
    import json

    import requests

    from sotong.notify.providers.solapi import authorization_header

    body = {
        "messages": [{"to": "01022223333", "from": "15881234", "text": "가" * 46, "type": "SMS"}]
    }
    response = requests.post(
        fake.base_url + "/messages/v4/send-many/detail",
        data=json.dumps(body).encode(),
        headers={
            "Authorization": authorization_header(fake.api_key, fake.api_secret),
            "Content-Type": "application/json",
        },
        timeout=2,
    )
    assert response.status_code == 200
    assert response.json()["failedMessageList"][0]["statusCode"] == "1031"


@pytest.mark.parametrize(("header", "expected"), [("3", 3.0), (None, 1.0)])
def test_429_is_retryable_with_retry_after(
    fake: FakeSolapi, solapi: SolapiProvider, header: str | None, expected: float
) -> None:
    fake.script(rate_limited(header))
    result = solapi.send(alimtalk())
    assert (result.outcome, result.reason, result.retry_after_s) == (
        "retryable",
        "rate_limited",
        expected,
    )
    assert fake.accepted_copies("msg-ata-1") == 0


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_uncertain_and_a_lookup_clears_the_resend(
    fake: FakeSolapi, solapi: SolapiProvider, status: int
) -> None:
    fake.script(server_error(status))
    before = datetime.now(UTC)
    first = solapi.send(alimtalk())
    assert (first.outcome, first.reason) == ("uncertain", f"provider_http_{status}")
    assert solapi.lookup(alimtalk(), before).found is False  # this 5xx came before intake
    assert solapi.send(alimtalk()).outcome == "accepted"
    assert fake.accepted_copies("msg-ata-1") == 1


def test_accepted_then_5xx_is_found_by_lookup(fake: FakeSolapi, solapi: SolapiProvider) -> None:
    fake.script(accept_then_error(502))
    before = datetime.now(UTC)
    result = solapi.send(alimtalk())
    assert (result.outcome, result.reason) == ("uncertain", "provider_http_502")
    assert fake.accepted_copies("msg-ata-1") == 1
    found = solapi.lookup(alimtalk(), before)
    assert (found.found, found.status) == (True, "accepted")


def test_accepted_but_answered_too_late_is_uncertain_and_found(
    fake: FakeSolapi, solapi: SolapiProvider
) -> None:
    """The duplicate-prone case: Solapi has the message, we only saw a read timeout."""
    fake.script(accept_then_hang(1.0))
    before = datetime.now(UTC)
    started = time.monotonic()
    result = solapi.send(alimtalk())
    assert time.monotonic() - started < 0.8
    assert (result.outcome, result.reason) == ("uncertain", "provider_timeout")
    assert fake.accepted_copies("msg-ata-1") == 1
    found = solapi.lookup(alimtalk(), before)
    [copy] = fake.accepted
    assert (found.found, found.provider_message_id, found.status) == (
        True,
        copy.provider_message_id,
        "accepted",
    )
    assert fake.accepted_copies("msg-ata-1") == 1  # looking never sends


def test_a_timeout_before_intake_may_still_be_taken_later(
    fake: FakeSolapi, solapi: SolapiProvider
) -> None:
    """Solapi may take the message after we gave up: a lookup made too early says False."""
    fake.script(hang(0.8, then=accept()))
    before = datetime.now(UTC)
    result = solapi.send(alimtalk())
    assert (result.outcome, result.reason) == ("uncertain", "provider_timeout")
    assert solapi.lookup(alimtalk(), before).found is False
    deadline = time.monotonic() + 3
    while fake.accepted_copies("msg-ata-1") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.accepted_copies("msg-ata-1") == 1
    assert solapi.lookup(alimtalk(), before).found is True


def test_accepted_then_dropped_is_uncertain_and_found(
    fake: FakeSolapi, solapi: SolapiProvider
) -> None:
    fake.script(accept_then_drop())
    before = datetime.now(UTC)
    result = solapi.send(alimtalk())
    assert (result.outcome, result.reason) == ("uncertain", "provider_connection_lost")
    assert fake.accepted_copies("msg-ata-1") == 1
    assert solapi.lookup(alimtalk(), before).found is True


def test_dropped_before_intake_is_uncertain_and_not_found(
    fake: FakeSolapi, solapi: SolapiProvider
) -> None:
    fake.script(drop())
    before = datetime.now(UTC)
    result = solapi.send(alimtalk())
    assert (result.outcome, result.reason) == ("uncertain", "provider_connection_lost")
    assert fake.accepted_copies("msg-ata-1") == 0
    assert solapi.lookup(alimtalk(), before).found is False
    assert solapi.send(alimtalk()).outcome == "accepted"
    assert fake.accepted_copies("msg-ata-1") == 1


def test_refused_connections_are_retryable_and_lookup_cannot_tell(
    fake: FakeSolapi, solapi: SolapiProvider
) -> None:
    assert solapi.send(sms("연결 확인", "msg-warm")).outcome == "accepted"  # a pooled connection
    before = datetime.now(UTC)
    with fake.offline():
        result = solapi.send(alimtalk())
        assert (result.outcome, result.reason) == ("retryable", "provider_unreachable")
        found = solapi.lookup(alimtalk(), before)
        assert (found.found, found.reason) == (None, "lookup_provider_unreachable")
    assert fake.accepted_copies("msg-ata-1") == 0
    assert solapi.send(alimtalk()).outcome == "accepted"
    assert fake.accepted_copies("msg-ata-1") == 1


def test_a_timeout_is_uncertain_and_quick(fake: FakeSolapi, solapi: SolapiProvider) -> None:
    fake.script(hang(0.8, then=accept()))
    started = time.monotonic()
    result = solapi.send(alimtalk())
    elapsed = time.monotonic() - started
    assert (result.outcome, result.reason) == ("uncertain", "provider_timeout")
    assert elapsed < 0.7


def test_unreachable_provider_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    solapi = SolapiProvider("k", "s", base_url=f"http://127.0.0.1:{port}", timeout_s=TIMEOUT_S)
    result = solapi.send(alimtalk())
    assert (result.outcome, result.reason) == ("retryable", "provider_unreachable")


def test_500_messages_go_in_one_request_with_per_message_results(
    fake: FakeSolapi, solapi: SolapiProvider
) -> None:
    fake.register_template(PF_ID, "TPL_D1", TEMPLATE)
    messages = [
        sms(f"{i}번째 안내입니다.", f"msg-{i:03d}", to_phone=f"010-7{i:03d}-{i:04d}")
        for i in range(500)
    ]
    messages[10] = alimtalk("msg-010", to_phone="010-7010-0010")  # matches the template
    messages[20] = alimtalk("msg-020", to_phone="010-7020-0020", text="(광고) 할인!")  # 1043
    messages[30] = sms("중복", "msg-030", to_phone="010-7000-0000")  # same number as msg-000
    fake.script(fail("1030", "잔액 부족", only={"msg-100", "msg-200"}))
    results = solapi.send_many(messages)
    assert len(fake.send_requests()) == 1
    assert len(fake.send_requests()[0].body["messages"]) == 499  # msg-030 held back
    by_id = {m.message_id: r for m, r in zip(messages, results, strict=True)}
    assert (by_id["msg-020"].outcome, by_id["msg-020"].reason) == ("permanent", "template_mismatch")
    assert (by_id["msg-100"].outcome, by_id["msg-100"].reason) == (
        "permanent",
        "insufficient_balance",
    )
    assert by_id["msg-200"].reason == "insufficient_balance"
    assert (by_id["msg-030"].outcome, by_id["msg-030"].reason) == (
        "retryable",
        "duplicate_recipient",
    )
    refused = {"msg-020", "msg-100", "msg-200", "msg-030"}
    ids = {a.our_id: a.provider_message_id for a in fake.accepted}
    for message_id, result in by_id.items():
        if message_id in refused:
            assert fake.accepted_copies(message_id) == 0
            continue
        assert result.outcome == "accepted", message_id
        assert result.provider_message_id == ids[message_id]
        assert fake.accepted_copies(message_id) == 1
    assert fake.accepted_total() == 496


def test_lookup_pages_through_solapis_message_list(fake: FakeSolapi) -> None:
    paged = SolapiProvider(
        fake.api_key,
        fake.api_secret,
        base_url=fake.base_url,
        timeout_s=TIMEOUT_S,
        lookup_page_size=2,
        lookup_max_pages=5,
    )
    before = datetime.now(UTC)
    for i in range(7):  # the same number: one request each
        assert paged.send(sms(f"{i}번 안내", f"msg-page-{i}")).outcome == "accepted"
    paged.send(sms("다른 분", "msg-other", to_phone="010-9999-0000"))
    fake.set_status("msg-page-0", "4000")
    found = paged.lookup(sms("0번 안내", "msg-page-0"), before)  # the oldest: the last page
    assert (found.found, found.status) == (True, "delivered")
    pages = fake.list_requests()
    assert len(pages) == 4
    assert {r.query["to"] for r in pages} == {"01022223333"}
    assert [r.query.get("startKey") is None for r in pages] == [True, False, False, False]
    assert paged.lookup(sms("없음", "msg-never-sent"), before).found is False
    short = SolapiProvider(
        fake.api_key,
        fake.api_secret,
        base_url=fake.base_url,
        timeout_s=TIMEOUT_S,
        lookup_page_size=2,
        lookup_max_pages=3,
    )
    assert short.lookup(sms("0번 안내", "msg-page-0"), before).found is None


def test_lookup_window_excludes_earlier_sends(fake: FakeSolapi, solapi: SolapiProvider) -> None:
    solapi.send(alimtalk())
    later = datetime.now(UTC) + timedelta(minutes=2)  # the fake's clock is the real one
    fake.accepted[0].accepted_at -= timedelta(minutes=10)
    assert solapi.lookup(alimtalk(), later - timedelta(minutes=2)).found is False


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (server_error(500), "lookup_http_500"),
        (rate_limited("1"), "lookup_rate_limited"),
        (http_error(400, "ValidationError"), "lookup_http_400"),
        (hang(1.0), "lookup_provider_timeout"),
        (drop(), "lookup_provider_connection_lost"),
        (garbage(), "lookup_unparsed_response"),
    ],
)
def test_a_failing_message_list_means_lookup_cannot_tell(
    fake: FakeSolapi, solapi: SolapiProvider, behaviour: Behaviour, reason: str
) -> None:
    before = datetime.now(UTC)
    solapi.send(alimtalk())
    fake.script_list(behaviour)
    found = solapi.lookup(alimtalk(), before)
    assert (found.found, found.reason) == (None, reason)
    assert solapi.lookup(alimtalk(), before).found is True  # the next query works again


@pytest.mark.parametrize(
    ("key", "secret", "code"),
    [("NCSWRONGKEY00000", None, "InvalidAPIKey"), (None, "wrong-secret", "SignatureDoesNotMatch")],
)
def test_bad_credentials_are_permanent(
    fake: FakeSolapi, key: str | None, secret: str | None, code: str
) -> None:
    solapi = SolapiProvider(
        key or fake.api_key, secret or fake.api_secret, base_url=fake.base_url, timeout_s=TIMEOUT_S
    )
    result = solapi.send(alimtalk())
    assert (result.outcome, result.reason) == ("permanent", "provider_auth")
    [request] = fake.requests
    assert request.status == 403
    assert fake.accepted_copies("msg-ata-1") == 0
    assert fake.check_authorization(request.headers["Authorization"]) == (403, code)


def test_a_replayed_signature_is_refused(fake: FakeSolapi, solapi: SolapiProvider) -> None:
    solapi.send(alimtalk())
    replayed = fake.requests[0].headers["Authorization"]
    assert fake.check_authorization(replayed) == (403, "DuplicatedSignature")


def test_validation_error_is_permanent_with_solapis_code(
    fake: FakeSolapi, solapi: SolapiProvider
) -> None:
    fake.script(http_error(400, "ValidationError", "messages[0].to is invalid"))
    result = solapi.send(alimtalk())
    assert (result.outcome, result.reason) == ("permanent", "ValidationError")


def test_fallback_report_arrives_signed_and_parses(
    fake: FakeSolapi, solapi: SolapiProvider
) -> None:
    fake.script(fallback())
    sent = solapi.send(alimtalk("msg-fb"))
    assert sent.outcome == "accepted"
    body = fake.report_body("msg-fb")
    headers = fake.signed_headers(body)
    assert verify_webhook(headers, body, fake.webhook_secret)
    assert not verify_webhook(headers, body.replace(b"msg-fb", b"msg-xx"), fake.webhook_secret)
    assert not verify_webhook(headers, body, "another-hospital")
    [report] = parse_delivery_reports(body)
    assert report.message_id == "msg-fb"
    assert report.provider_message_id == sent.provider_message_id
    assert (report.status, report.reason, report.channel) == (
        "fallback_sent",
        "kakao_fallback",
        "sms",
    )
    assert report.recipient_phone == "+821012345678"


def test_reports_for_every_accepted_message(fake: FakeSolapi, solapi: SolapiProvider) -> None:
    solapi.send(alimtalk("msg-a"))
    solapi.send(sms("내일 검진이 있습니다.", "msg-b"))
    failed_body = fake.report_body("msg-a", status_code="3104")
    assert parse_delivery_reports(failed_body)[0].reason == "not_kakao_user"
    body = fake.reports_body()
    assert verify_webhook(fake.signed_headers(body), body, fake.webhook_secret)
    by_id = {r.message_id: r for r in parse_delivery_reports(body)}
    assert {k: (v.status, v.channel) for k, v in by_id.items()} == {
        "msg-a": ("delivered", "alimtalk"),
        "msg-b": ("delivered", "sms"),
    }


def test_inbound_reply_body(fake: FakeSolapi) -> None:
    body = fake.inbound_body("01012345678", "예약 변경하고 싶어요")
    assert verify_webhook(fake.signed_headers(body), body, fake.webhook_secret)
    [reply] = parse_inbound(body)
    assert (reply.from_phone, reply.text, reply.channel) == (
        "+821012345678",
        "예약 변경하고 싶어요",
        "sms",
    )
    assert reply.received_at is not None


def test_lookup_and_batch_failures_log_nothing_personal(
    fake: FakeSolapi, solapi: SolapiProvider, caplog: pytest.LogCaptureFixture
) -> None:
    before = datetime.now(UTC)
    fake.script(accept_then_drop())
    fake.script_list(server_error(500))
    with caplog.at_level("DEBUG"):
        solapi.send_many([alimtalk(), sms("검사 결과가 나왔습니다.", "msg-sms-9")])
        solapi.lookup(alimtalk(), before)  # fails: logged
        solapi.lookup(alimtalk(), before)  # urllib3 logs the request line at DEBUG
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "list-old" in logged  # urllib3's own line is there, with the number masked
    for personal in ("01012345678", "01022223333", "1234-5678", "2222-3333", "김환자", "검사 결과"):
        assert personal not in logged
