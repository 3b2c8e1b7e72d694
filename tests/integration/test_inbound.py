"""Inbound SMS/KakaoTalk through the signed webhook: exactly once, whole, and bounded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from botocore.exceptions import ClientError

from sotong import clock, store
from sotong.complaints.model import MAX_INBOUND_TEXT
from sotong.notify import inbound, records, txoutbox
from sotong.notify.providers.solapi import InboundMessage, sign_webhook
from tests.integration.api import ADMIN, Answer, call

KST = ZoneInfo("Asia/Seoul")
SECRET = "local-hmac_key"
SENDER = "01055556666"


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


def event(
    text: str,
    message_id: str | None,
    *,
    sender: str = SENDER,
    kind: str = "SMS",
    minute: int = 0,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "from": sender,
        "to": "025550100",
        "text": text,
        "type": kind,
        "dateReceived": f"2026-11-23T01:{minute:02d}:00Z",
    }
    if message_id is not None:
        data["messageId"] = message_id
    return {"eventDataId": f"e-{message_id}", "data": data}


def post(events: list[dict[str, Any]] | bytes, path: str = "/webhooks/inbound") -> Answer:
    body = events if isinstance(events, bytes) else json.dumps(events).encode()
    return call("POST", path, raw=body, headers=sign_webhook(body, SECRET))


def deliver(events: list[dict[str, Any]]) -> dict[str, Any]:
    answer = post(events)
    assert answer.status == 200, answer.body
    return answer.body  # type: ignore[no-any-return]


def complaints() -> list[dict[str, Any]]:
    items = call("GET", "/inbox", claims=ADMIN, query={"limit": "100"}).body["items"]
    return [call("GET", f"/complaints/{i['id']}", claims=ADMIN).body for i in items]


def only_complaint() -> dict[str, Any]:
    (complaint,) = complaints()
    return complaint


def outbox_templates() -> list[str]:
    pending = txoutbox.pending(clock.now() + timedelta(days=1))
    return sorted(json.loads(e["request"])["template_id"] for e in pending)


# --- exactly once -------------------------------------------------------------------------------
def test_the_same_webhook_three_times_is_taken_once(env: dict[str, str]) -> None:
    body = json.dumps([event("주차장에 자리가 없어서 30분을 돌았어요", "M-1")]).encode()
    headers = sign_webhook(body, SECRET)
    answers = [call("POST", "/webhooks/inbound", raw=body, headers=headers) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert [a.body["complaints"] for a in answers] == [1, 0, 0]
    assert [a.body["duplicates"] for a in answers] == [0, 1, 1]
    complaint = only_complaint()
    assert complaint["text"] == "주차장에 자리가 없어서 30분을 돌았어요"
    assert len(complaint["inbound_messages"]) == 1
    assert len(complaint["history"]) == 1
    # one acknowledgement, and the department told once
    assert outbox_templates() == ["complaint_received", "staff_routed"]


def test_one_provider_id_twice_in_a_body_or_across_calls_is_taken_once(env: dict[str, str]) -> None:
    first = event("주차장에 자리가 없어서 30분을 돌았어요", "M-1")
    second = event("그리고 발렛 직원분도 불친절했습니다", "M-2", minute=1)
    assert deliver([first, first]) == {
        "opted_out": 0,
        "complaints": 1,
        "replies": 0,
        "duplicates": 1,
        "ignored": 0,
    }
    assert deliver([second, first, second])["complaints"] == 1
    assert deliver([first])["duplicates"] == 1
    complaint = only_complaint()
    assert [m["id"] for m in complaint["inbound_messages"]] == ["M-1", "M-2"]
    assert [m["text"] for m in complaint["inbound_messages"]] == [
        "주차장에 자리가 없어서 30분을 돌았어요",
        "그리고 발렛 직원분도 불친절했습니다",
    ]
    assert [e.get("note") for e in complaint["history"]] == [None, "추가 메시지 수신"]


def test_without_a_provider_id_sender_text_and_time_identify_a_message(
    env: dict[str, str],
) -> None:
    same = event("대기실 에어컨이 너무 추워요 조절 부탁드립니다", None)
    assert deliver([same])["complaints"] == 1
    assert deliver([same])["duplicates"] == 1
    assert (
        deliver([event("대기실 에어컨이 너무 추워요 조절 부탁드립니다", None, minute=5)])[
            "complaints"
        ]
        == 1
    )  # the same words later are a new message
    assert len(only_complaint()["inbound_messages"]) == 2


def test_a_failed_write_leaves_nothing_and_the_retry_takes_the_message_once(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = store.dynamodb()
    real = client.transact_write_items
    failures = [1]

    def fails_once(**kwargs: Any) -> Any:
        if failures:
            failures.pop()
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "try again"}},
                "TransactWriteItems",
            )
        return real(**kwargs)

    monkeypatch.setattr(client, "transact_write_items", fails_once)
    events = [event("어머니가 병실에서 넘어지셨는데 아무도 오지 않았어요", "M-fall")]
    with pytest.raises(ClientError):  # a 5xx: the provider retries the webhook
        post(events)
    assert complaints() == []
    assert not inbound.seen("M-fall")
    assert outbox_templates() == []

    assert deliver(events)["complaints"] == 1
    assert deliver(events)["duplicates"] == 1
    complaint = only_complaint()
    assert complaint["urgency"] == "critical"
    assert len(complaint["inbound_messages"]) == 1
    assert outbox_templates() == ["complaint_received", "staff_critical", "staff_routed"]


# --- whole --------------------------------------------------------------------------------------
def test_twelve_long_lms_from_one_sender_are_all_kept_whole(env: dict[str, str]) -> None:
    texts = [f"{n}번째 문자입니다. " + "병원 주차장 안내가 부족합니다. " * 110 for n in range(12)]
    assert all(1_800 <= len(t) <= 2_000 for t in texts)
    for n, text in enumerate(texts):
        answer = deliver([event(text, f"LMS-{n}", kind="LMS", minute=n)])
        assert answer["complaints"] == 1, (n, answer)
    complaint = only_complaint()
    assert complaint["text"] == texts[0].strip()  # the first message, not a concatenation
    assert [m["text"] for m in complaint["inbound_messages"]] == texts
    assert complaint["message_count"] == 12


def test_a_6000_character_first_message_starts_a_complaint_with_all_of_it(
    env: dict[str, str],
) -> None:
    text = "진료 대기시간이 너무 길었습니다. " * 334
    text = text[:6_000]
    assert deliver([event(text, "LONG-1", kind="LMS")])["complaints"] == 1
    complaint = only_complaint()
    assert complaint["text"] == text.strip()
    assert complaint["inbound_messages"][0]["text"] == text
    assert complaint["category"] == "wait_time"


def test_a_message_over_the_item_ceiling_is_stored_whole_in_parts(env: dict[str, str]) -> None:
    first = "가" * (MAX_INBOUND_TEXT + 5_000)
    later = "나" * (MAX_INBOUND_TEXT * 2 + 1)
    assert deliver([event(first, "HUGE-1"), event(later, "HUGE-2", minute=1)])["complaints"] == 2
    complaint = only_complaint()
    assert complaint["text"] == first[:MAX_INBOUND_TEXT]
    assert complaint["text_continues"] is True
    assert [m["text"] for m in complaint["inbound_messages"]] == [first, later]


# --- routing ------------------------------------------------------------------------------------
def test_an_opt_out_word_records_the_opt_out_once(env: dict[str, str]) -> None:
    stop = event("수신거부", "STOP-1")
    assert deliver([stop])["opted_out"] == 1
    assert deliver([stop])["duplicates"] == 1
    assert records.opted_out_channels("demo", "+821055556666") == frozenset({"sms"})
    assert deliver([event("STOP", "STOP-2", sender="01077778888", kind="CTA")])["opted_out"] == 1
    assert records.opted_out_channels("demo", "+821077778888") == frozenset({"alimtalk"})
    assert complaints() == []


class FakeRecall:
    """A recall desk whose every sender has a recent recall."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def inbound(
        self,
        phone: str,
        text: str,
        *,
        provider_message_id: str | None = None,
        received_at: datetime | None = None,
    ) -> dict[str, Any] | None:
        duplicate = any(c[2]["provider_message_id"] == provider_message_id for c in self.calls)
        self.calls.append(
            (phone, text, {"provider_message_id": provider_message_id, "received_at": received_at})
        )
        return {"patient_id": "p1", "touchpoint": "t1", "converted": None, "duplicate": duplicate}


class NoComplaints:
    def take_inbound(self, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], bool] | None:
        raise AssertionError("a recall reply is not a complaint")


def test_a_recall_reply_goes_to_the_recall_desk_with_the_provider_id_once(
    env: dict[str, str],
) -> None:
    from sotong.config import load_hospital

    recall = FakeRecall()
    router = inbound.InboundRouter(load_hospital(), NoComplaints(), recall)
    at = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    message = InboundMessage("+821012345678", "025550100", "1", at, "sms", "R-1")
    assert router.handle(message) == "reply"
    assert router.handle(message) == "duplicate"  # the marker: the desk is not asked again
    assert recall.calls == [
        ("+821012345678", "1", {"provider_message_id": "R-1", "received_at": at}),
    ]
    store.dynamodb().delete_item(  # a crash after the reply, before the marker
        TableName=store.table_name(), Key=inbound.marker_key("R-1")
    )
    assert router.handle(message) == "duplicate"  # the desk itself knew it
    assert len(recall.calls) == 2


# --- bounded ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/webhooks/inbound", "/webhooks/reports"])
def test_5000_events_are_a_413_at_once(env: dict[str, str], path: str) -> None:
    events = [{"data": {"messageId": f"B{n}", "from": SENDER, "text": "hi"}} for n in range(5_000)]
    started = time.perf_counter()
    answer = post(events, path)
    elapsed = time.perf_counter() - started
    assert answer.status == 413
    assert str(inbound.MAX_EVENTS) in answer.body["message"]
    assert answer.body["limit_events"] == inbound.MAX_EVENTS
    assert elapsed < 1.0
    assert complaints() == []
    assert call("GET", "/health").status == 200


def test_the_limit_itself_is_taken(env: dict[str, str]) -> None:
    # opt-outs: no transaction, which moto makes cost a copy of the whole table
    events = [
        event("수신거부", f"OK-{n}", sender=f"010{5000_0000 + n}")
        for n in range(inbound.MAX_EVENTS)
    ]
    assert deliver(events)["opted_out"] == inbound.MAX_EVENTS


def test_a_body_over_the_byte_limit_is_a_413_before_anything_else(env: dict[str, str]) -> None:
    body = json.dumps([event("가" * (inbound.MAX_BODY_BYTES // 6 + 10), "BIG")]).encode()
    assert len(body) > inbound.MAX_BODY_BYTES
    answer = post(body)
    assert answer.status == 413
    assert answer.body["limit_bytes"] == inbound.MAX_BODY_BYTES
    unsigned = call("POST", "/webhooks/inbound", raw=b"[" + b"{}," * 400_000 + b"{}]")
    assert unsigned.status == 413


def test_a_message_of_control_characters_only_is_ignored_not_a_5xx(env: dict[str, str]) -> None:
    for n, text in enumerate(("\x00" * 6, "\u202e\u200b", "\x07 \t")):
        body = json.dumps([event(text, f"ctrl-{n}")]).encode()
        answer = call("POST", "/webhooks/inbound", raw=body, headers=sign_webhook(body, SECRET))
        assert answer.status == 200, answer.body
        assert answer.body["ignored"] == 1
        assert answer.body["complaints"] == 0
