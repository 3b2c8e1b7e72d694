"""The sandbox provider's fault modes: each answers as the Solapi client answers the same failure,
and the sender then retries, falls back, looks up or gives up, with the sandbox never accepting
a message twice."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sotong import clock
from sotong.config.schema import HospitalConfig
from sotong.notify import outbox, records
from sotong.notify.model import MessageRequest, Recipient, message_id
from sotong.notify.providers import sandbox
from sotong.notify.providers.base import OutgoingMessage, SendResult
from sotong.notify.providers.sandbox import FAULTS, Fault, SandboxProvider, sent_copies
from sotong.notify.providers.solapi import SolapiProvider, parse_delivery_reports
from sotong.notify.sender import LOOKUP_DELAY_S, RetryLater, process

KST = ZoneInfo("Asia/Seoul")
PATIENT = Recipient(name="홍길동", phone="010-1234-5678", contact_consent=True)
MID = message_id("demo", "touchpoint-1")


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    FAULTS.clear()
    FAULTS.seen.clear()
    FAULTS.reporter = None
    yield
    FAULTS.clear()
    FAULTS.seen.clear()
    FAULTS.reporter = None


def aftercare() -> MessageRequest:
    """An AlimTalk with its SMS fallback (the demo's dental_aftercare)."""
    return MessageRequest.model_validate(
        {
            "idempotency_key": "touchpoint-1",
            "recipient": PATIENT,
            "template_id": "dental_aftercare",
            "variables": {"hospital": "소통치과", "name": "홍길동", "callback": "02-555-0100"},
        }
    )


def alimtalk(mid: str = "m-1", fallback: str | None = "대체 문자입니다") -> OutgoingMessage:
    return OutgoingMessage(
        mid,
        "alimtalk",
        "알림톡 본문입니다",
        "0212345678",
        to_phone="+821012345678",
        kakao_template_code="TPL_1",
        kakao_sender_key="KA01PF000000000000000000000001",
        fallback_text=fallback,
    )


def send(hospital: HospitalConfig, receives: int = 1) -> Any:
    provider = SandboxProvider()
    return process(
        aftercare(), hospital, lambda _: provider, lambda _: None, receive_count=receives
    )


def status() -> str:
    record = records.get(MID)
    assert record is not None
    return str(record["status"])


# --- the same answers as the Solapi client ---------------------------------------------


@dataclass
class Answer:
    status: int
    data: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class OneAnswer:
    answer: Answer | Exception

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _solapi_says(answer: Answer | Exception, message: OutgoingMessage) -> SendResult:
    solapi = SolapiProvider("key", "secret", base_url="https://solapi.test", http=OneAnswer(answer))
    return solapi.send(message)


def _solapi_answers() -> list[tuple[Fault, Answer | Exception]]:
    from urllib3 import exceptions as u3

    def refused(code: str) -> Answer:
        entry = {
            "statusCode": code,
            "messageId": "sandbox-m-1",
            "customFields": {"sotongMessageId": "m-1"},
        }
        return Answer(200, json.dumps({"failedMessageList": [entry], "messageList": []}).encode())

    pool: Any = None
    timeout = u3.ReadTimeoutError(pool, "/", "read timed out")
    return [
        (Fault("reject", code="1060"), refused("1060")),
        (Fault("reject", code="3104"), refused("3104")),
        (Fault("reject", code="1024"), refused("1024")),  # resend-safe: retryable
        (Fault("429", retry_after_s=7), Answer(429, b"", {"Retry-After": "7"})),
        (Fault("5xx", http_status=502), Answer(502, b'{"errorCode":"BadGateway"}')),
        (Fault("unreachable"), ConnectionRefusedError()),
        (Fault("timeout-before"), timeout),
        (Fault("timeout-after"), timeout),
    ]


@pytest.mark.parametrize(("fault", "answer"), _solapi_answers(), ids=lambda v: str(v)[:30])
def test_each_mode_answers_as_solapi_does(
    aws: dict[str, str], fault: Fault, answer: Answer | Exception
) -> None:
    message = alimtalk()
    FAULTS.arm(fault)
    assert SandboxProvider().send(message) == _solapi_says(answer, message)
    assert FAULTS.state()["armed"] == []  # used up (count 1)


def test_arming_checks_its_settings() -> None:
    for bad in (
        Fault("nothing"),  # type: ignore[arg-type]
        Fault("5xx", count=0),
        Fault("5xx", http_status=404),
        Fault("reject", code="x"),
    ):
        with pytest.raises(ValueError, match="must"):
            FAULTS.arm(bad)


def test_request_modes_count_requests_and_fail_every_message_of_one(aws: dict[str, str]) -> None:
    FAULTS.arm(Fault("5xx", count=2))
    provider = SandboxProvider()
    first = provider.send_many([alimtalk("a"), alimtalk("b")])
    assert {r.outcome for r in first} == {"uncertain"}
    assert FAULTS.state()["armed"][0]["left"] == 1
    assert provider.send(alimtalk("c")).outcome == "uncertain"
    assert provider.send(alimtalk("d")).outcome == "accepted"
    assert [sent_copies(m) for m in "abcd"] == [0, 0, 0, 1]
    assert FAULTS.state()["failed"] == {"5xx": 2}


# --- what the sender makes of them -----------------------------------------------------


def test_reject_fails_the_message_without_sending(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
    FAULTS.arm(Fault("reject", code="1060"))
    outcome = send(hospital)
    assert (outcome.status, outcome.reason) == ("failed", "blocked_recipient")
    assert sent_copies(MID) == 0
    assert outbox.recent() == []


def test_429_waits_as_long_as_asked_then_sends_once(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
    FAULTS.arm(Fault("429", retry_after_s=7))
    with pytest.raises(RetryLater) as later:
        send(hospital)
    assert later.value.delay_s == 7
    assert status() == "retry"
    assert send(hospital, receives=2).status == "sent"
    assert sent_copies(MID) == 1


def test_unreachable_backs_off_then_sends_once(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
    FAULTS.arm(Fault("unreachable"))
    with pytest.raises(RetryLater) as later:
        send(hospital)
    assert later.value.delay_s == 30
    assert send(hospital, receives=2).status == "sent"
    assert sent_copies(MID) == 1


@pytest.mark.parametrize("mode", ["5xx", "timeout-before"])
def test_uncertain_and_not_kept_is_looked_up_then_sent_once(
    aws: dict[str, str], hospital: HospitalConfig, mode: str
) -> None:
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
    FAULTS.arm(Fault(mode))  # type: ignore[arg-type]
    with pytest.raises(RetryLater) as later:
        send(hospital)
    assert later.value.delay_s == LOOKUP_DELAY_S
    assert status() == "uncertain"
    assert sent_copies(MID) == 0
    clock.fix(datetime(2026, 11, 23, 10, 5, tzinfo=KST))
    outcome = send(hospital, receives=2)
    assert outcome.status == "sent"
    assert sent_copies(MID) == 1
    assert len(outbox.recent()) == 1


def test_timeout_after_accepting_is_found_by_the_lookup_and_never_resent(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
    FAULTS.arm(Fault("timeout-after"))
    with pytest.raises(RetryLater):
        send(hospital)
    assert status() == "uncertain"
    assert sent_copies(MID) == 1  # the patient has it; the sender does not know
    clock.fix(datetime(2026, 11, 23, 10, 5, tzinfo=KST))
    outcome = send(hospital, receives=2)
    assert (outcome.status, outcome.reason) == ("sent", "confirmed by the provider")
    assert sent_copies(MID) == 1
    assert len(outbox.recent()) == 1
    [entry] = outbox.recent()
    assert entry["status"] == records.get(MID)["status"]  # type: ignore[index]


def test_429_every_time_ends_failed_for_the_dlq(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
    FAULTS.arm(Fault("429", count=6, retry_after_s=1))
    for receives in range(1, 6):
        with pytest.raises(RetryLater):
            send(hospital, receives=receives)
    with pytest.raises(RetryLater) as last:  # back to the queue, whose redrive takes it to the DLQ
        send(hospital, receives=6)
    assert last.value.delay_s == 0
    record = records.get(MID)
    assert record is not None
    assert (record["status"], record["reason"]) == ("failed", "retries_exhausted: rate_limited")
    assert sent_copies(MID) == 0


def test_not_a_kakao_user_gets_the_sms_and_the_report_says_fallback(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
    reports: list[dict[str, Any]] = []
    FAULTS.reporter = reports.append
    FAULTS.arm(Fault("not-kakao"))
    assert send(hospital).status == "sent"
    assert sent_copies(MID) == 1
    [entry] = outbox.recent()
    assert (entry["channel"], entry["delivered_channel"], entry["status"]) == (
        "alimtalk",
        "sms",
        "sent",
    )
    assert entry["sms_type"] in ("SMS", "LMS")
    [report] = reports
    assert (report["statusCode"], report["replacement"]) == ("4000", True)
    # the report, as the webhook reads it, moves the record
    [parsed] = parse_delivery_reports(json.dumps([{"data": report}]).encode())
    assert (parsed.status, parsed.reason, parsed.message_id) == (
        "fallback_sent",
        "kakao_fallback",
        MID,
    )
    assert records.apply_report(MID, parsed.status, parsed.reason, parsed.channel)
    [entry] = outbox.recent()
    assert (entry["status"], entry["delivered_channel"]) == ("fallback_sent", "sms")


def test_not_a_kakao_user_without_a_fallback_gets_nothing(aws: dict[str, str]) -> None:
    reports: list[dict[str, Any]] = []
    FAULTS.reporter = reports.append
    FAULTS.arm(Fault("not-kakao"))
    provider = SandboxProvider()
    text = OutgoingMessage("an-sms", "sms", "문자입니다", "0212345678", to_phone="+821012345678")
    assert provider.send(text).outcome == "accepted"  # not an AlimTalk: the fault waits
    assert provider.send(alimtalk("m-2", fallback=None)).outcome == "accepted"
    assert [e["message_id"] for e in outbox.recent()] == ["an-sms"]  # m-2 reached no one
    assert sent_copies("m-2") == 1  # but the provider has it (a lookup finds it)
    [report] = reports
    [parsed] = parse_delivery_reports(json.dumps([{"data": report}]).encode())
    assert (parsed.status, parsed.reason, parsed.message_id) == ("failed", "not_kakao_user", "m-2")


def test_a_reporter_that_fails_does_not_fail_the_send(aws: dict[str, str]) -> None:
    def broken(report: dict[str, Any]) -> None:
        raise ConnectionError("no webhook")

    FAULTS.reporter = broken
    FAULTS.arm(Fault("not-kakao"))
    assert SandboxProvider().send(alimtalk()).outcome == "accepted"
    assert sandbox.sent_copies("m-1") == 1
