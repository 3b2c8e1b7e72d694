"""Staff alerts over moto: a complaint routed to a department tells its contacts in the same
transaction as the complaint (once, however often it is retried), and the `department_digest`
function queues one digest per department per day, however often it runs. Run with
`-p tests.iam_guard` to hold the function to its grants."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from sotong import clock
from sotong.config import load_hospital
from sotong.resources import function
from sotong_local.lambdas import LambdaContext
from tests.integration.api import call
from tests.integration.test_complaints_outbox import env, form, outbox_requests, templates

KST = ZoneInfo("Asia/Seoul")
__all__ = ["env"]


def _file(text: str, department: str, key: str) -> None:
    body = {**form(text), "department": department}
    answer = call("POST", "/complaints", body, headers={"Idempotency-Key": key})
    assert answer.status in (200, 201), answer.body


def test_routing_alerts_are_written_with_the_complaint_once(env: dict[str, str]) -> None:
    _file("접수 대기시간이 1시간이 넘었는데 아무 안내도 없었습니다.", "dental", "r-1")
    _file("접수 대기시간이 1시간이 넘었는데 아무 안내도 없었습니다.", "dental", "r-1")  # a retry
    _file("주차장이 좁아서 한참을 돌았습니다. 안내가 필요합니다.", "facilities", "r-2")
    requests = outbox_requests()
    routed = [r for r in requests if r["template_id"].startswith("staff_routed")]
    assert templates(routed) == ["staff_routed", "staff_routed", "staff_routed_email"]
    by_department = Counter(r["variables"]["department"] for r in routed)
    assert by_department == {"치과": 2, "시설관리팀": 1}  # dental's two contacts; the head
    assert all("/console/#/complaints/c" in r["variables"]["link"] for r in routed)
    assert all(r["recipient"]["kind"] == "staff" for r in routed)


def test_the_digest_goes_once_per_department_per_day(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import department_digest

    _file("접수 대기시간이 1시간이 넘었는데 아무 안내도 없었습니다.", "dental", "d-1")
    _file("레이저 시술 후 설명이 부족했습니다. 다음엔 자세히 알려 주세요.", "dermatology", "d-2")
    _file("치과 예약 시간을 두 번이나 바꾸셨어요. 미리 알려 주세요.", "dental", "d-3")
    context = LambdaContext(function("department_digest"))

    def digests() -> list[dict[str, str]]:
        return [r for r in outbox_requests() if r["template_id"].startswith("staff_digest")]

    clock.fix(datetime(2026, 11, 24, 8, 30, tzinfo=KST))
    first = department_digest.handler({}, context)
    assert first["sent"] == 2  # dental and dermatology; nothing open elsewhere
    assert first["empty"] == len(load_hospital().departments) - 2
    second = department_digest.handler({}, context)  # EventBridge retried, or someone ran it
    assert (second["sent"], second["already_sent"], second["messages"]) == (0, 2, 0)
    sent = digests()
    assert templates(sent) == ["staff_digest", "staff_digest", "staff_digest_email"]
    dental = next(
        r
        for r in sent
        if r["template_id"] == "staff_digest" and r["variables"]["department"] == "치과"
    )
    assert dental["variables"]["open"] == "2"
    assert dental["variables"]["link"] == "https://demo.example/console/#/inbox"
    assert dental["idempotency_key"] == "digest:dental:2026-11-24:0"

    clock.fix(datetime(2026, 11, 25, 8, 30, tzinfo=KST))  # the next morning: a new digest
    assert department_digest.handler({}, context)["sent"] == 2
    assert len(digests()) == 6
