"""Solapi send_many and lookup without a network: matching answers back to messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from sotong.notify.providers.base import OutgoingMessage
from sotong.notify.providers.solapi import MAX_BATCH, SolapiProvider
from tests.unit.test_solapi_client import KEY, SECRET, Response, ScriptedHttp, alimtalk, sms


def provider(*answers: Response | Exception, **options: Any) -> tuple[SolapiProvider, ScriptedHttp]:
    http = ScriptedHttp(list(answers))
    return SolapiProvider(KEY, SECRET, base_url="https://solapi.test", http=http, **options), http


def batch(count: int) -> list[OutgoingMessage]:
    return [
        sms(f"{i}번 안내", message_id=f"msg-{i}", to_phone=f"010-5555-{i:04d}")
        for i in range(count)
    ]


def ok(
    listed: list[dict[str, Any]] | None = None,
    failed: list[dict[str, Any]] | None = None,
    group: str = "G4V1",
) -> Response:
    body: dict[str, Any] = {"groupInfo": {"groupId": group}, "failedMessageList": failed or []}
    if listed is not None:
        body["messageList"] = listed
    return Response(200, json.dumps(body).encode())


def item(our_id: str | None, provider_id: str, code: str = "2000") -> dict[str, Any]:
    entry: dict[str, Any] = {"messageId": provider_id, "statusCode": code, "statusMessage": "."}
    if our_id is not None:
        entry["customFields"] = {"sotongMessageId": our_id}
    return entry


def sent_bodies(http: ScriptedHttp) -> list[dict[str, Any]]:
    return [json.loads(call["body"]) for call in http.calls if call["method"] == "POST"]


def test_one_request_for_the_whole_batch_and_results_in_input_order() -> None:
    messages = batch(5)
    # Solapi's lists follow no documented order: answer them shuffled.
    solapi, http = provider(
        ok(
            listed=[item("msg-3", "M3"), item("msg-0", "M0"), item("msg-4", "M4")],
            failed=[
                {**item("msg-2", "M2", "1030"), "to": "01055550002"},
                {**item("msg-1", "M1", "1024"), "to": "01055550001"},
            ],
        )
    )
    results = solapi.send_many(messages)
    assert [(r.outcome, r.provider_message_id, r.reason) for r in results] == [
        ("accepted", "M0", None),
        ("retryable", "M1", "provider_error"),
        ("permanent", "M2", "insufficient_balance"),
        ("accepted", "M3", None),
        ("accepted", "M4", None),
    ]
    [body] = sent_bodies(http)
    assert (body["allowDuplicates"], body["showMessageList"]) == (False, True)
    assert [m["customFields"]["sotongMessageId"] for m in body["messages"]] == [
        f"msg-{i}" for i in range(5)
    ]


def test_a_message_in_neither_list_is_accepted_unparsed_and_never_resent() -> None:
    solapi, _ = provider(ok(listed=[item("msg-0", "M0")]))
    first, second = solapi.send_many(batch(2))
    assert (first.outcome, first.reason) == ("accepted", None)
    assert (second.outcome, second.reason, second.provider_message_id) == (
        "accepted",
        "unparsed_response",
        "group:G4V1",
    )


def test_entries_without_our_id_are_not_matched_by_position_in_a_batch() -> None:
    solapi, _ = provider(ok(listed=[item(None, "MX"), item(None, "MY")]))
    results = solapi.send_many(batch(2))
    assert {(r.outcome, r.reason, r.provider_message_id) for r in results} == {
        ("accepted", "unparsed_response", "group:G4V1")
    }


def test_entries_for_messages_we_did_not_send_are_ignored() -> None:
    solapi, _ = provider(ok(listed=[item("msg-0", "M0"), item("someone-else", "MZ")]))
    [result] = solapi.send_many(batch(1))
    assert result.provider_message_id == "M0"


def test_listed_as_accepted_wins_over_failed() -> None:
    solapi, _ = provider(ok(listed=[item("msg-0", "M0")], failed=[item("msg-0", "M0", "1043")]))
    [result] = solapi.send_many(batch(1))
    assert (result.outcome, result.provider_message_id) == ("accepted", "M0")


def test_a_failure_code_inside_message_list_is_a_refusal() -> None:
    solapi, _ = provider(ok(listed=[item("msg-0", "M0", "1043")]))
    [result] = solapi.send_many(batch(1))
    assert (result.outcome, result.reason) == ("permanent", "template_mismatch")


def test_locally_refused_messages_stay_out_of_the_request() -> None:
    messages = [
        *batch(2),
        sms("안녕하세요", message_id="msg-bad", to_phone="12345"),
        alimtalk(message_id="msg-notpl", kakao_template_code=None),
    ]
    solapi, http = provider(ok(listed=[item("msg-0", "M0"), item("msg-1", "M1")]))
    results = solapi.send_many(messages)
    assert [(r.outcome, r.reason) for r in results] == [
        ("accepted", None),
        ("accepted", None),
        ("permanent", "invalid_recipient"),
        ("permanent", "template_not_found"),
    ]
    [body] = sent_bodies(http)
    assert len(body["messages"]) == 2


def test_nothing_to_send_makes_no_request() -> None:
    solapi, http = provider()
    [result] = solapi.send_many([sms("x", to_phone=None)])
    assert result.outcome == "permanent"
    assert http.calls == []
    assert solapi.send_many([]) == []


def test_a_second_message_to_the_same_number_waits_for_the_next_batch() -> None:
    """allowDuplicates: false would refuse it; held back, it is surely not sent: retryable."""
    messages = [
        sms("첫 안내", message_id="msg-a", to_phone="010-5555-0001"),
        sms("둘째 안내", message_id="msg-b", to_phone="+821055550001"),
    ]
    solapi, http = provider(ok(listed=[item("msg-a", "MA")]))
    first, second = solapi.send_many(messages)
    assert first.outcome == "accepted"
    assert (second.outcome, second.reason) == ("retryable", "duplicate_recipient")
    [body] = sent_bodies(http)
    assert len(body["messages"]) == 1


def test_solapis_own_duplicate_refusal_is_retryable() -> None:
    solapi, _ = provider(ok(failed=[item("msg-0", "M0", "1026")]))
    [result] = solapi.send_many(batch(1))
    assert (result.outcome, result.reason) == ("retryable", "duplicate_recipient")


def test_a_repeated_message_id_goes_once_and_both_get_its_result() -> None:
    message = batch(1)[0]
    solapi, http = provider(ok(listed=[item("msg-0", "M0")]))
    results = solapi.send_many([message, message])
    assert [r.provider_message_id for r in results] == ["M0", "M0"]
    [body] = sent_bodies(http)
    assert len(body["messages"]) == 1


def test_more_than_max_batch_is_a_programming_error() -> None:
    solapi, http = provider()
    assert solapi.max_batch == MAX_BATCH
    with pytest.raises(ValueError, match="at most"):
        solapi.send_many(batch(MAX_BATCH + 1))
    assert http.calls == []


@pytest.mark.parametrize(
    ("answer", "outcome", "reason"),
    [
        (ConnectionRefusedError(), "retryable", "provider_unreachable"),
        (TimeoutError(), "uncertain", "provider_timeout"),
        (ConnectionResetError(), "uncertain", "provider_connection_lost"),
        (Response(503, b""), "uncertain", "provider_http_503"),
        (Response(429, b"", {"Retry-After": "4"}), "retryable", "rate_limited"),
        (Response(403, b'{"errorCode":"InvalidAPIKey"}'), "permanent", "provider_auth"),
        (Response(400, b'{"errorCode":"ValidationError"}'), "permanent", "ValidationError"),
        (Response(200, b"<html>"), "accepted", "unparsed_response"),
    ],
)
def test_a_request_level_answer_applies_to_every_message(
    answer: Response | Exception, outcome: str, reason: str
) -> None:
    solapi, _ = provider(answer)
    results = solapi.send_many([*batch(3), sms("x", message_id="bad", to_phone=None)])
    assert [(r.outcome, r.reason) for r in results[:3]] == [(outcome, reason)] * 3
    assert results[3].outcome == "permanent"  # refused locally, not part of the request


def test_send_is_send_many_of_one() -> None:
    solapi, http = provider(ok(listed=[item("msg-001", "M1")]))
    assert solapi.send(alimtalk()).provider_message_id == "M1"
    assert len(http.calls) == 1


# --------------------------------------------------------------------------- lookup


def page(
    entries: dict[str, dict[str, Any]], next_key: str | None = None, start_key: str | None = None
) -> Response:
    body = {"startKey": start_key, "nextKey": next_key, "limit": 20, "messageList": entries}
    return Response(200, json.dumps(body).encode())


def stored(our_id: str | None, provider_id: str, code: str = "3000") -> dict[str, Any]:
    return {
        "messageId": provider_id,
        "to": "01012345678",
        "statusCode": code,
        "customFields": {"sotongMessageId": our_id} if our_id else {},
    }


def query_of(call: dict[str, Any]) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(call["url"]).query).items()}


def test_lookup_queries_the_message_list_by_recipient_and_window() -> None:
    solapi, http = provider(page({"M1": stored("msg-001", "M1")}))
    sent_after = datetime.now(UTC) - timedelta(minutes=10)
    found = solapi.lookup(alimtalk(), sent_after)
    assert (found.found, found.provider_message_id, found.status) == (True, "M1", "accepted")
    [call] = http.calls
    assert call["method"] == "GET"
    assert urlsplit(call["url"]).path == "/messages/v4/list-old"
    assert call["body"] is None
    assert call["retries"] is False
    assert call["headers"]["Authorization"].startswith("HMAC-SHA256 ")
    query = query_of(call)
    assert query["to"] == "01012345678"
    assert query["dateType"] == "CREATED"
    assert query["limit"] == "20"
    assert "startKey" not in query
    start = datetime.fromisoformat(query["startDate"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(query["endDate"].replace("Z", "+00:00"))
    assert abs(start - (sent_after - timedelta(minutes=1))) < timedelta(seconds=2)
    assert end >= datetime.now(UTC)


def test_lookup_window_never_starts_after_now() -> None:
    """A sender clock ahead of the real one must not hide the message."""
    solapi, http = provider(page({}))
    solapi.lookup(alimtalk(), datetime.now(UTC) + timedelta(days=3))
    start = query_of(http.calls[0])["startDate"]
    assert datetime.fromisoformat(start.replace("Z", "+00:00")) < datetime.now(UTC)


def test_lookup_pages_until_found() -> None:
    solapi, http = provider(
        page({"MA": stored("other-1", "MA"), "MB": stored(None, "MB")}, next_key="MC"),
        page({"MC": stored("other-2", "MC")}, next_key="MD", start_key="MC"),
        page({"MD": stored("msg-001", "MD", "4000")}, start_key="MD"),
    )
    found = solapi.lookup(alimtalk(), datetime.now(UTC))
    assert (found.found, found.provider_message_id, found.status) == (True, "MD", "delivered")
    assert [query_of(c).get("startKey") for c in http.calls] == [None, "MC", "MD"]
    signatures = {c["headers"]["Authorization"] for c in http.calls}
    assert len(signatures) == 3  # Solapi refuses a reused signature


def test_lookup_not_found_only_after_the_last_page() -> None:
    solapi, http = provider(
        page({"MA": stored("other", "MA")}, next_key="MB"),
        page({"MB": stored("other", "MB")}),
    )
    found = solapi.lookup(alimtalk(), datetime.now(UTC))
    assert (found.found, found.reason) == (False, None)
    assert len(http.calls) == 2


def test_lookup_that_runs_out_of_pages_cannot_tell() -> None:
    answers = [page({f"M{i}": stored("other", f"M{i}")}, next_key=f"M{i + 1}") for i in range(3)]
    solapi, http = provider(*answers, lookup_max_pages=3)
    found = solapi.lookup(alimtalk(), datetime.now(UTC))
    assert (found.found, found.reason) == (None, "lookup_incomplete")
    assert len(http.calls) == 3


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        ([ConnectionRefusedError()], "lookup_provider_unreachable"),
        ([TimeoutError()], "lookup_provider_timeout"),
        ([Response(500, b"")], "lookup_http_500"),
        ([Response(429, b"")], "lookup_rate_limited"),
        ([Response(403, b'{"errorCode":"InvalidAPIKey"}')], "lookup_http_403"),
        ([Response(200, b"not json")], "lookup_unparsed_response"),
        ([Response(200, b'{"messageList": []}')], "lookup_unparsed_response"),
        ([page({}, next_key="MA"), ConnectionResetError()], "lookup_provider_connection_lost"),
        (
            [page({}, next_key="MA"), page({"MA": stored("x", "MA")}, next_key="MA")],
            "lookup_paging_stuck",
        ),
    ],
)
def test_lookup_failures_are_found_none(answers: list[Any], reason: str | None) -> None:
    solapi, _ = provider(*answers)
    found = solapi.lookup(alimtalk(), datetime.now(UTC))
    assert found.found is None
    if reason:
        assert found.reason == reason


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        ("2000", "accepted", None),
        ("3000", "accepted", None),
        ("TEST1000", "accepted", None),
        ("4000", "delivered", None),
        ("3104", "failed", "not_kakao_user"),
        ("1043", "failed", "template_mismatch"),
    ],
)
def test_lookup_status_codes(code: str, status: str, reason: str | None) -> None:
    solapi, _ = provider(page({"M1": stored("msg-001", "M1", code)}))
    found = solapi.lookup(alimtalk(), datetime.now(UTC))
    assert (found.found, found.status, found.reason) == (True, status, reason)


def test_lookup_of_a_message_solapi_could_never_take() -> None:
    solapi, http = provider()
    found = solapi.lookup(sms("x", to_phone=None), datetime.now(UTC))
    assert (found.found, found.reason) == (False, "invalid_recipient")
    assert http.calls == []
