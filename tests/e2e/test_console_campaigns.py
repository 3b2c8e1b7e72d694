"""The campaigns screen (캠페인) in a real headless Chromium over the local stack: as the CS admin,
build a segment and see its live count, preview the message as the patient will see it
(`(광고)`, the sender's name, the 080 line) with who the rules hold or skip, schedule it and
watch it run; as department staff, count and preview their own tags but find no way to send.

Screenshots (1366x768) land in the test's tmp_path; `-s` prints where.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sotong_local import commands
from tests.e2e.browser import Browser, BrowserMissing
from tests.e2e.test_console import CONTRAST, _accessible, _shot, _sign_in, _text
from tests.e2e.test_web_form import HTTP, NO_SIDEWAYS_SCROLL, Stack, stack

pytestmark = pytest.mark.e2e
__all__ = ["stack"]  # the local stack fixture, started once for this module

DESK = (1366, 768)
SEOUL = ZoneInfo("Asia/Seoul")
PATIENTS = (
    # name, phone, consents, paused
    ("김하나", "010-5100-0001", {"contact": True, "marketing": True}, False),
    ("이두리", "010-5100-0002", {"contact": True}, False),
    ("박세나", "010-5100-0003", {"contact": True, "marketing": True, "night": True}, False),
    ("최네모", "010-5100-0004", {"contact": True, "marketing": True}, False),
    ("정다섯", "010-5100-0005", {"contact": True, "marketing": True}, True),
)
OPTED_OUT = "010-5100-0004"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        launched = Browser.launch()
    except BrowserMissing as error:
        pytest.fail(f"Chromium is needed for the console tests: {error}", pytrace=False)
    with launched:
        launched.set_viewport(*DESK)
        launched.set_locale("ko-KR")
        yield launched


def _headers(stack: Stack, role: str, department: str | None = None) -> dict[str, str]:
    body = {"role": role, **({"department": department} if department else {})}
    answer = HTTP.post(f"{stack.url}/_local/token", json=body, timeout=5)
    answer.raise_for_status()
    return {"Authorization": str(answer.json()["authorization"])}


def _stack_today(stack: Stack) -> datetime:
    health = HTTP.get(f"{stack.url}/health", timeout=5).json()
    return datetime.fromisoformat(str(health["time"]).replace("Z", "+00:00")).astimezone(SEOUL)


@pytest.fixture(scope="module")
def seeded(stack: Stack) -> Stack:
    """Five scaling patients: one for each way the rules take them (once per module)."""
    auth = _headers(stack, "cs_admin")
    day = (_stack_today(stack).date() - timedelta(days=30)).isoformat()
    for name, phone, consents, paused in PATIENTS:
        patient = HTTP.post(
            f"{stack.url}/patients",
            json={"name": name, "phone": phone, "consents": consents},
            headers=auth,
            timeout=10,
        )
        assert patient.status_code == 201, patient.text
        pid = patient.json()["id"]
        treatment = HTTP.post(
            f"{stack.url}/patients/{pid}/treatments",
            json={"tag": "scaling", "date": day},
            headers=auth,
            timeout=10,
        )
        assert treatment.status_code == 201, treatment.text
        if paused:
            pause = HTTP.post(
                f"{stack.url}/patients/{pid}/pause",
                json={"paused": True, "reason": "본인 요청"},
                headers=auth,
                timeout=10,
            )
            assert pause.status_code == 200, pause.text
    assert commands.simulate(["--api", stack.url, "optout", "--phone", OPTED_OUT]) == 0
    return stack


def _rules(browser: Browser) -> dict[str, str]:
    rows: dict[str, str] = browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#preview-rules tr[data-rule]')]"
        ".map(tr => [tr.dataset.rule, tr.cells[1].textContent]))"
    )
    return rows


def _preview(browser: Browser) -> None:
    browser.evaluate("document.getElementById('campaign-preview').hidden = true")
    browser.click("#preview")
    browser.wait_for(
        "!document.getElementById('campaign-preview').hidden"
        " && !document.getElementById('campaign-preview').classList.contains('stale')"
        " && !!document.getElementById('preview-text')",
        timeout=15,
    )


def test_cs_admin_builds_previews_schedules_and_watches_a_campaign(
    browser: Browser, seeded: Stack, tmp_path: Path
) -> None:
    stack = seeded
    today = _stack_today(stack).date()
    browser.navigate(f"{stack.url}/console/")  # sessionStorage is the console origin's
    _sign_in(browser, stack, "cs_admin")
    browser.evaluate("location.hash = '#/campaigns'")  # a hash change: no load event
    browser.wait_for("!!document.getElementById('campaign-form')")
    assert "캠페인" in _text(browser, "#nav")

    # The live count: every scaling patient, then those who consented to ads.
    browser.set_value("select[name='tag']", "scaling")
    browser.wait_for("document.getElementById('segment-count').textContent === '대상 5명'")
    browser.click("#f-consent-only")
    browser.wait_for("document.getElementById('segment-count').textContent === '대상 4명'")
    browser.click("#f-consent-only")
    browser.wait_for("document.getElementById('segment-count').textContent === '대상 5명'")
    browser.click("#show-members")
    browser.wait_for("document.querySelectorAll('#members tbody tr').length === 5")
    assert "5100-0001" not in _text(browser, "#members tbody")  # phones masked

    # Preview for tomorrow: the runner starts at 00:00, so ads without night consent wait.
    tomorrow = (today + timedelta(days=1)).isoformat()
    browser.set_value("input[name='send_on']", tomorrow)
    _preview(browser)
    text = _text(browser, "#preview-text")
    assert text.startswith("(광고) ")
    assert "[소통치과피부과]" in text  # the sender's name
    assert "무료수신거부 080-555-0100" in text
    assert "#{" not in text
    rules = _rules(browser)
    assert rules == {
        "send:send": "1명",  # night consent: sent at night
        "hold:night_advertising": "1명",
        "skip:no_marketing_consent": "1명",
        "skip:paused": "1명",
        "suppress:opted_out": "1명",
    }, rules
    assert "오전 8:00" in _text(browser, "tr[data-rule='hold:night_advertising']")
    assert _accessible(browser)["unlabeled"] == []
    assert browser.evaluate(NO_SIDEWAYS_SCROLL)
    assert browser.evaluate(CONTRAST) == []
    _shot(browser, tmp_path, "campaigns-1-preview-tomorrow")

    # Today (daytime on the stack's clock): both consenting patients get it now.
    browser.set_value("input[name='send_on']", today.isoformat())
    assert browser.evaluate("document.getElementById('schedule').disabled")  # preview again
    _preview(browser)
    assert _rules(browser)["send:send"] == "2명"
    browser.type("input[name='name']", "겨울 스케일링 안내")
    browser.click("#schedule")
    browser.wait_for("!!document.getElementById('campaign-status')", timeout=15)
    assert "예약됨" in _text(browser, "#campaign-status")
    campaign_id = str(browser.evaluate("location.hash.split('/').pop()"))
    _shot(browser, tmp_path, "campaigns-2-planned")

    # The runner's minute: it queues the three it may (the sender then drops the opted-out
    # one); the page follows without a reload.
    run = HTTP.post(f"{stack.url}/_local/schedules/campaign_runner/run", json={}, timeout=30)
    assert run.status_code == 200, run.text
    browser.wait_for(
        "document.getElementById('campaign-queued')?.textContent === '3건'"
        " && document.getElementById('campaign-status').textContent.includes('완료')",
        timeout=20,
    )
    browser.wait_for(
        "!!document.querySelector('#campaign-results tbody').textContent.match(/발송됨|전달됨/)"
        " && document.querySelector('#campaign-results tbody').textContent.includes('보내지 않음')",
        timeout=20,
    )
    campaign = HTTP.get(
        f"{stack.url}/campaigns/{campaign_id}", headers=_headers(stack, "cs_admin"), timeout=10
    ).json()
    assert campaign["queued"] == 3  # the runner queues; the sender suppresses the opted-out
    assert campaign["skipped_no_consent"] == 1
    assert campaign["skipped_paused"] == 1
    assert campaign["results"]["by_status"].get("suppressed") == 1  # the 080 opt-out, at send
    assert _accessible(browser)["unlabeled"] == []
    assert browser.evaluate(CONTRAST) == []
    _shot(browser, tmp_path, "campaigns-3-done")
    texts = [json.dumps(e, ensure_ascii=False) for e in stack.outbox()]
    assert sum("(광고)" in t for t in texts) == 2, texts


def test_department_staff_preview_their_tags_but_cannot_send(
    browser: Browser, seeded: Stack, tmp_path: Path
) -> None:
    stack = seeded
    browser.navigate(f"{stack.url}/console/")
    _sign_in(browser, stack, "department_staff", "dental")
    browser.evaluate("location.hash = '#/campaigns'")  # a hash change: no load event
    browser.wait_for("!!document.getElementById('campaign-form')")
    tags = browser.evaluate(
        "[...document.querySelectorAll('select[name=tag] option')].map(o => o.value)"
    )
    assert set(tags) == {"implant_surgery", "scaling", "extraction"}
    browser.set_value("select[name='tag']", "scaling")
    browser.wait_for("document.getElementById('segment-count').textContent === '대상 5명'")
    _preview(browser)
    assert _text(browser, "#preview-text").startswith("(광고) ")
    # every member is counted under one rule (after the first test's campaign, the frequency
    # cap holds the three it advertised)
    assert sum(int(n.rstrip("명")) for n in _rules(browser).values()) == 5
    assert not browser.evaluate("!!document.getElementById('schedule')")  # no button
    assert "고객지원팀 관리자만" in _text(browser, "#admin-only")
    _shot(browser, tmp_path, "campaigns-4-department-staff")

    # The API refuses them too, and another department's tag.
    dental = _headers(stack, "department_staff", "dental")
    body = {"name": "x", "segment": {"tag": "scaling"}, "template_id": "scaling_next_step"}
    refused = HTTP.post(
        f"{stack.url}/campaigns",
        json=body,
        headers={**dental, "Idempotency-Key": "dept-try"},
        timeout=10,
    )
    assert refused.status_code == 403, refused.text
    other = HTTP.post(
        f"{stack.url}/campaigns/preview",
        json={"segment": {"tag": "botox"}, "template_id": "botox_next_step"},
        headers=dental,
        timeout=10,
    )
    assert other.status_code == 403, other.text


def test_the_local_stack_runs_the_department_digest_once_a_day(stack: Stack) -> None:
    """The schedule from `sotong.resources`, run twice on the local stack: one digest."""
    answer = HTTP.post(
        f"{stack.url}/complaints",
        json={
            "text": "치료 후 안내 전화를 준다고 하셨는데 아직 연락이 없습니다.",
            "contact": {"name": "홍길동", "phone": "010-1234-5678"},
            "consent_to_contact": True,
            "department": "dental",
        },
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    runs = [
        HTTP.post(f"{stack.url}/_local/schedules/department_digest/run", json={}, timeout=30)
        for _ in range(2)
    ]
    assert [r.status_code for r in runs] == [200, 200], [r.text for r in runs]
    assert runs[0].json()["result"]["sent"] >= 1
    assert runs[1].json()["result"]["sent"] == 0
    assert runs[1].json()["result"]["already_sent"] == runs[0].json()["result"]["sent"]
