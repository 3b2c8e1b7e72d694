"""Recall on the local stack over HTTP: record a treatment, run the dispatcher now with a shifted
clock, and see the aftercare message in the outbox as the patient would."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.e2e.test_local_stack import Running, start_stack, stop_stack

pytestmark = pytest.mark.e2e
KST = ZoneInfo("Asia/Seoul")


def _noon_offset(now: datetime) -> float:
    """Seconds that move the stack's clock to 12:00 KST today, away from quiet hours."""
    local = now.astimezone(KST)
    return (local.replace(hour=12, minute=0, second=0, microsecond=0) - local).total_seconds()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, datetime]]:
    import os

    offset = _noon_offset(datetime.now(UTC))
    os.environ["SOTONG_CLOCK_OFFSET_SECONDS"] = str(offset)
    try:
        running = start_stack(Path(tmp_path_factory.mktemp("recall")))
    finally:
        del os.environ["SOTONG_CLOCK_OFFSET_SECONDS"]
    try:
        yield running, datetime.now(UTC) + timedelta(seconds=offset)
    finally:
        stop_stack(running)


def test_a_treatment_today_sends_aftercare_when_the_dispatcher_runs_tomorrow(
    stack: tuple[Running, datetime],
) -> None:
    running, stack_now = stack
    api = running.url
    token = requests.post(
        f"{api}/_local/token",
        json={"username": "dental.lee", "role": "department_staff", "department": "dental"},
        timeout=10,
    ).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    patient = requests.post(
        f"{api}/patients",
        json={"name": "김서연", "phone": "010-4444-5555", "consents": {"contact": True}},
        headers=auth,
        timeout=10,
    )
    assert patient.status_code == 201, patient.text
    pid = patient.json()["id"]
    today = stack_now.astimezone(KST).date().isoformat()
    treatment = requests.post(
        f"{api}/patients/{pid}/treatments",
        json={"tag": "extraction", "date": today},
        headers=auth,
        timeout=10,
    )
    assert treatment.status_code == 201, treatment.text
    aftercare = next(t for t in treatment.json()["touchpoints"] if t["step"] == "aftercare")
    due = datetime.fromisoformat(aftercare["due_at"].replace("Z", "+00:00"))
    assert due.astimezone(KST).hour == 10

    shift_hours = (due - stack_now).total_seconds() / 3600 + 0.05  # just past 10:00 tomorrow
    run = requests.post(
        f"{api}/_local/schedules/recall_dispatcher/run",
        json={"clock_offset_seconds": shift_hours * 3600},
        timeout=30,
    )
    assert run.status_code == 200, run.text

    deadline = time.monotonic() + 15
    found = []
    while time.monotonic() < deadline and not found:
        outbox = requests.get(f"{api}/_local/outbox", timeout=10).json()
        messages = outbox if isinstance(outbox, list) else outbox.get("messages", [])
        found = [m for m in messages if m.get("kakao_template_code") == "SOTONG_RCL_AFT_01"]
        time.sleep(0.3)
    assert found, running.output()[-3000:]
    assert found[0]["text"].startswith("[소통치과피부과] 김서연님, 어제 치료 후")
    assert found[0]["channel"] == "alimtalk"
    touchpoints = requests.get(f"{api}/patients/{pid}/touchpoints", headers=auth, timeout=10).json()
    statuses = {t["step"]: t["status"] for t in touchpoints["touchpoints"]}
    assert statuses["aftercare"] == "queued"
    assert statuses["feedback"] == "planned"
