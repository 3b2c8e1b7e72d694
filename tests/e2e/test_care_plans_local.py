"""Integrated care plans on the local stack over HTTP: the article's case goes to a case
conference, its decisions become five agencies' activities and the agencies are told (counted
in the outbox), an agency updates its own activity, and when the schedule runs with the clock
shifted a month on, the 1-month review appears."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from sotong_local import care_demo
from tests.e2e.test_local_stack import Running, start_stack, stop_stack
from tests.e2e.test_recall_local import _noon_offset

pytestmark = pytest.mark.e2e
KST = ZoneInfo("Asia/Seoul")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, datetime]]:
    import os

    offset = _noon_offset(datetime.now(UTC))
    os.environ["SOTONG_CLOCK_OFFSET_SECONDS"] = str(offset)
    try:
        running = start_stack(Path(tmp_path_factory.mktemp("care")))
    finally:
        del os.environ["SOTONG_CLOCK_OFFSET_SECONDS"]
    try:
        yield running, datetime.now(UTC) + timedelta(seconds=offset)
    finally:
        stop_stack(running)


def _auth(api: str, **who: str) -> dict[str, str]:
    token = requests.post(f"{api}/_local/token", json=who, timeout=10).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def _wait_for(
    api: str, wanted: Callable[[list[dict[str, Any]]], bool], timeout: float = 20
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    messages: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        outbox = requests.get(f"{api}/_local/outbox?limit=500", timeout=10).json()
        messages = outbox if isinstance(outbox, list) else outbox.get("messages", [])
        if wanted(messages):
            return messages
        time.sleep(0.3)
    return messages


MARKS = {
    # what each of hospitals/demo.yaml's care templates says (SMS text, e-mail subject)
    "care_task": ("새 지원 요청", "통합지원 새 요청"),
    "care_plan_notice": ("지원 계획이 정해졌습니다",),
    "care_review": ("통합지원 점검",),
}


def _care(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The sandbox's messages of one care template (its entries name no template)."""
    return [
        m
        for m in messages
        if any(mark in f"{m.get('subject') or ''} {m.get('text') or ''}" for mark in MARKS[kind])
    ]


def test_a_conference_tells_the_agencies_and_the_one_month_review_appears(
    stack: tuple[Running, datetime],
) -> None:
    running, stack_now = stack
    api = running.url
    admin = _auth(api, username="cs.kim", role="cs_admin")
    case = requests.post(f"{api}/care/cases", json=care_demo.CASE, headers=admin, timeout=10)
    assert case.status_code == 201, case.text
    cid = case.json()["id"]
    today = stack_now.astimezone(KST).date()
    body = care_demo.conference(cid, today)
    held = requests.post(f"{api}/care/conferences", json=body, headers=admin, timeout=30)
    assert held.status_code == 201, held.text
    activities = held.json()["discussions"][0]["activities"]
    assert len(activities) == 5
    assert {a["status"] for a in activities} == {"requested"}

    # the five agencies by SMS or e-mail, and the person's one plain notice
    messages = _wait_for(
        api, lambda m: len(_care(m, "care_task")) >= 5 and bool(_care(m, "care_plan_notice"))
    )
    tasks = _care(messages, "care_task")
    assert len(tasks) == 5, running.output()[-3000:]
    assert sorted(m["channel"] for m in tasks) == ["email", "email", "sms", "sms", "sms"]
    (notice,) = _care(messages, "care_plan_notice")
    assert "김영수님" in notice["text"]
    for word in ("투석", "치매", "식사"):
        assert word not in notice["text"]  # no diagnosis, no service: plain language

    # an agency sees and moves its own activity only
    welfare = _auth(api, username="welfare.lee", role="agency", organisation="gangnam-welfare")
    mine = requests.get(f"{api}/care/activities", headers=welfare, timeout=10).json()
    assert [a["agency"] for a in mine["activities"]] == ["gangnam-welfare"]
    meals = mine["activities"][0]["id"]
    moved = requests.post(
        f"{api}/care/cases/{cid}/activities/{meals}/status",
        json={"status": "accepted"},
        headers=welfare,
        timeout=10,
    )
    assert moved.status_code == 200, moved.text
    others = next(a["id"] for a in activities if a["agency"] != "gangnam-welfare")
    refused = requests.post(
        f"{api}/care/cases/{cid}/activities/{others}/status",
        json={"status": "accepted"},
        headers=welfare,
        timeout=10,
    )
    assert refused.status_code == 404

    # a month on: the 1-month review is due and the agencies with open activities hear of it
    review = held.json()["discussions"][0]["reviews"][0]
    due = datetime.fromisoformat(review["due_at"].replace("Z", "+00:00"))
    assert requests.get(f"{api}/care/reviews", headers=admin, timeout=10).json()["reviews"] == []
    shift_hours = (due - stack_now).total_seconds() / 3600 + 0.1
    run = requests.post(
        f"{api}/_local/schedules/careplans_schedule/run",
        json={"clock_offset_seconds": shift_hours * 3600},
        timeout=60,
    )
    assert run.status_code == 200, run.text
    reviews = requests.get(f"{api}/care/reviews", headers=admin, timeout=10).json()["reviews"]
    assert [(r["case_id"], r["months"], r["status"]) for r in reviews] == [(cid, 1, "due")]
    messages = _wait_for(api, lambda m: len(_care(m, "care_review")) >= 5)
    assert len(_care(messages, "care_review")) == 5
    view = requests.get(f"{api}/care/cases/{cid}", headers=admin, timeout=10).json()
    assert "review_due" in {a["action"] for a in view["audit"]}


def test_the_demo_command_creates_the_articles_case(
    stack: tuple[Running, datetime], capsys: pytest.CaptureFixture[str]
) -> None:
    running, stack_now = stack
    assert care_demo.run(running.url, stack_now.astimezone(KST).date()) == 0
    printed = capsys.readouterr().out
    assert "강남종합사회복지관" in printed
    assert "review at 1 month(s)" in printed
