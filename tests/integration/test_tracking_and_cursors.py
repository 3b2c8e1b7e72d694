"""The patients' tracking page (one spelling per code, failed factors lock the code, a correct
lookup is never locked out, the patient is told how long to wait) and the inbox's signed cursors
(made up, edited or from another listing: a 400 naming `query.cursor`)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sotong import clock
from sotong.complaints import tracking
from sotong.resources import function
from sotong_local.events import proxy_event
from sotong_local.lambdas import LambdaContext
from tests.integration.api import ADMIN, DENTAL, call

KST = ZoneInfo("Asia/Seoul")
START = datetime(2026, 11, 23, 10, 0, tzinfo=KST)
ATTACKER, PATIENT = "198.51.100.66", "203.0.113.7"


@pytest.fixture
def env(aws: dict[str, str]) -> dict[str, str]:
    clock.fix(START)
    return aws


def submit(phone: str = "010-1234-5678", department: str | None = None) -> str:
    form: dict[str, Any] = {
        "text": "접수 대기시간이 1시간이 넘었는데 아무 안내가 없었습니다.",
        "contact": {"name": "홍길동", "phone": phone},
        "consent_to_contact": True,
    }
    if department:
        form["department"] = department
    answer = call("POST", "/complaints", form)
    assert answer.status == 201, answer.body
    return str(answer.body["tracking_code"])


@dataclass
class Tracked:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def track(code: str, last4: str, ip: str = PATIENT) -> Tracked:
    """GET /track/{code} through the public API's handler, with the answer's headers (Powertools
    puts a REST API's headers in `multiValueHeaders`)."""
    import public_api

    event = proxy_event(
        method="GET",
        path=f"/track/{code}",
        resource="/track/{code}",
        path_parameters={"code": code},
        headers=[],
        query=[("phone_last4", last4)],
        body=b"",
        source_ip=ip,
    )
    result = public_api.handler(event, LambdaContext(function("public_api")))
    headers = {k: v[-1] for k, v in (result.get("multiValueHeaders") or {}).items()}
    headers.update(result.get("headers") or {})
    return Tracked(int(result["statusCode"]), json.loads(result["body"]), headers)


# --- tracking -------------------------------------------------------------------------------------


def test_every_spelling_of_a_code_is_the_same_code(env: dict[str, str]) -> None:
    code = submit()
    compact = code.replace("-", "")
    spaced = f"{compact[:2]} {compact[2:6]} {compact[6:]}"
    for spelling in (code, compact.lower(), spaced, f"{code.lower()} "):
        assert track(spelling, "5678").status == 200, spelling
    # and they share one counter: four spellings of wrong guesses, then the lock
    spellings = [code, compact.lower(), f"{compact[:4]} {compact[4:]}", f" {code} "]
    assert [track(s, "0000", ATTACKER).status for s in spellings] == [404] * 4
    assert track(compact, "0001", ATTACKER).status == 429


def test_characters_outside_the_code_alphabet_are_400_naming_the_code(
    env: dict[str, str],
) -> None:
    for code in (
        "ABCD-2O45",
        "ABCD-1234",
        "ABCD_2345",
        "ＡＢＣＤ２３４５",
        "abß2345x",
    ):
        answer = track(code, "5678")
        assert (answer.status, answer.body.get("field")) == (400, "path.code"), (code, answer)
    short = track("abß2345", "5678")  # 7 characters: the route's own length rule
    assert (short.status, short.body["fields"][0]["field"]) == (422, "path.code")


def test_successful_lookups_count_nothing(env: dict[str, str]) -> None:
    code = submit()
    assert [track(code, "5678", ATTACKER).status for _ in range(25)] == [200] * 25
    assert track(code, "5678").status == 200


def test_failures_lock_the_guesser_and_say_how_long_but_never_the_patient(
    env: dict[str, str],
) -> None:
    code = submit()
    statuses = [track(code, f"{n:04d}", ATTACKER).status for n in range(tracking.FAILURES)]
    assert statuses == [404] * (tracking.FAILURES - 1) + [429]
    locked = track(code, "0100", ATTACKER)
    assert locked.status == 429
    assert locked.headers["Retry-After"] == str(tracking.LOCK_S)
    assert locked.body["message"] == "조회 시도가 너무 많습니다. 15분 후에 다시 시도해 주세요."
    assert locked.body["field"] == "path.code"
    # the guesser's right answer is refused unchecked while locked: the lock is no oracle
    assert track(code, "5678", ATTACKER).status == 429
    # the patient, on their own phone, is answered
    assert track(code, "5678", PATIENT).status == 200
    # 10 minutes on, the wait shrinks; after the lock the guesser is checked again
    clock.fix(START + timedelta(minutes=10, seconds=30))
    later = track(code, "0101", ATTACKER)
    assert (later.status, later.headers["Retry-After"]) == (429, str(tracking.LOCK_S - 630))
    assert "5분 후에" in later.body["message"]
    clock.fix(START + timedelta(minutes=16))
    assert track(code, "5678", ATTACKER).status == 200


def test_a_wrong_guess_from_a_new_address_during_the_lock_is_refused_and_remembered(
    env: dict[str, str],
) -> None:
    code = submit()
    for n in range(tracking.FAILURES):
        track(code, f"{n:04d}", ATTACKER)
    other = "192.0.2.10"
    assert track(code, "0200", other).status == 429  # checked once, wrong: the same 429
    assert track(code, "5678", other).status == 429  # and now refused unchecked
    assert track(code, "5678", PATIENT).status == 200


def test_the_per_address_limit_says_how_long_too(env: dict[str, str]) -> None:
    code = submit()
    answers = [track(code, "5678", ATTACKER) for _ in range(31)]
    assert [a.status for a in answers[:30]] == [200] * 30
    assert answers[30].status == 429
    assert int(answers[30].headers["Retry-After"]) <= 60
    assert "1분 후에" in answers[30].body["message"]


def test_a_survey_code_is_normalised_the_same_way(env: dict[str, str]) -> None:
    answer = call("POST", "/survey", {"code": "abcd 2345", "token": "q8Zr2sXk9mPa", "score": 5})
    assert answer.status == 404  # no such survey: but validated and looked up, not a 5xx


# --- cursors --------------------------------------------------------------------------------------


def _two_pages(query: dict[str, str] | None = None) -> str:
    first = call("GET", "/inbox", claims=ADMIN, query={"limit": "1", **(query or {})})
    assert first.status == 200, first.body
    cursor = first.body["next_cursor"]
    assert cursor, first.body
    return str(cursor)


def test_a_cursor_pages_on_and_a_made_up_one_is_400(env: dict[str, str]) -> None:
    submit()
    clock.fix(START + timedelta(minutes=1))
    submit(phone="010-1234-5679")
    cursor = _two_pages()
    second = call("GET", "/inbox", claims=ADMIN, query={"limit": "1", "cursor": cursor})
    assert second.status == 200
    assert len(second.body["items"]) == 1
    forged = base64.b64encode(json.dumps({"pk": {"S": "x"}}).encode()).decode()
    edited = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    for bad in (forged, edited, "nonsense", "%%%", "A" * 1000, "\u202e"):
        answer = call("GET", "/inbox", claims=ADMIN, query={"cursor": bad})
        assert (answer.status, answer.body.get("field")) == (400, "query.cursor"), (bad, answer)


def test_a_cursor_is_bound_to_the_listing_it_came_from(env: dict[str, str]) -> None:
    for minute in range(3):
        clock.fix(START + timedelta(minutes=minute))
        submit(phone=f"010-1234-567{minute}", department="dental")
    cursor = _two_pages({"department": "dental"})
    same = call("GET", "/inbox", claims=DENTAL, query={"department": "dental", "cursor": cursor})
    assert same.status == 200, same.body
    for other in (
        {"department": "dermatology"},
        {},  # every department's listing
        {"department": "dental", "state": "resolved"},
        {"department": "dental", "urgency": "critical"},
        {"department": "dental", "from": "2026-11-01"},
    ):
        answer = call("GET", "/inbox", claims=ADMIN, query={**other, "cursor": cursor})
        assert (answer.status, answer.body.get("field")) == (400, "query.cursor"), other
        assert "another listing" in answer.body["message"]


def test_inbox_dates_at_the_calendars_ends_are_400_naming_the_field(env: dict[str, str]) -> None:
    for query, field in (
        ({"from": "0001-01-01"}, "query.from"),
        ({"to": "9999-12-31"}, "query.to"),
        ({"from": "0001-01-01T00:00:00Z"}, "query.from"),
        ({"to": "9999-12-31T23:59:59Z"}, "query.to"),
        ({"from": "2024-02-30"}, "query.from"),
    ):
        answer = call("GET", "/inbox", claims=ADMIN, query=query)
        assert (answer.status, answer.body.get("field")) == (400, field), (query, answer)
    leap = call("GET", "/inbox", claims=ADMIN, query={"from": "2024-02-29", "to": "2100-12-31"})
    assert leap.status == 200, leap.body
