"""프로그램 둘러보기 in a real headless Chromium (390 x 844, as on a phone) over the local stack:
a patient whose chemotherapy day is recorded by staff browses the programmes, signs up for the
힐링 카페 with the code read from the local outbox (the SMS the pipeline sent), and is offered
only sessions that avoid that day. Screenshots land in the test's tmp_path (`-s` prints where)."""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import holidays
import pytest

from tests.e2e import test_web_form as web
from tests.e2e.browser import Browser
from tests.e2e.test_web_form import HTTP, NO_SIDEWAYS_SCROLL, SEOUL, Stack

# the local stack and Chromium of the web form tests (module fixtures: one stack, one browser)
stack = web.stack
browser = web.browser

pytestmark = pytest.mark.e2e
PHONE = "010-4321-8765"
CODE = re.compile(r"인증번호 (\d{6})")


def _shot(browser: Browser, tmp_path: Path, name: str) -> Path:
    path = browser.screenshot(tmp_path / f"{name}.png")
    print(f"screenshot: {path}")
    return path


def _chemo_day(now: datetime) -> date:
    """The first 힐링 카페 day (Tuesday or Thursday, not a holiday) more than a day ahead."""
    day = now.date() + timedelta(days=2)
    while day.weekday() not in (1, 3) or day in holidays.country_holidays("KR", years=day.year):
        day += timedelta(days=1)
    return day


def _code(stack: Stack, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in reversed(stack.outbox()):
            found = CODE.search(str(entry.get("text")))
            if found and str(entry.get("to", "")).endswith("8765"):
                return found.group(1)
            if found and "8765" in str(entry):
                return found.group(1)
        time.sleep(0.2)
    raise AssertionError(f"no code in the outbox: {stack.outbox()}\n{stack.output()}")


def test_a_patient_signs_up_with_a_code_and_gets_a_session_off_their_chemotherapy_day(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    now = datetime.fromisoformat(HTTP.get(f"{stack.url}/health", timeout=5).json()["time"])
    chemo = _chemo_day(now.astimezone(SEOUL))
    staff = stack.staff_headers()
    patient = HTTP.post(
        f"{stack.url}/patients",
        json={
            "name": "김하나",
            "phone": PHONE,
            "chart_no": "ONC-2001",
            "consents": {"contact": True},
        },
        headers=staff,
        timeout=10,
    )
    assert patient.status_code == 201, patient.text
    treated = HTTP.post(
        f"{stack.url}/patients/{patient.json()['id']}/treatments",
        json={"tag": "chemotherapy", "date": chemo.isoformat()},
        headers=staff,
        timeout=10,
    )
    assert treated.status_code == 201, treated.text

    browser.errors.clear()
    browser.navigate(f"{stack.url}/pages/programmes.html")
    assert browser.evaluate("document.documentElement.lang") == "ko"
    browser.wait_for("document.querySelectorAll('article.programme').length === 4")
    assert browser.evaluate(NO_SIDEWAYS_SCROLL)
    assert "힐링 카페" in browser.evaluate("document.getElementById('list').textContent")
    _shot(browser, tmp_path, "1-programmes")

    browser.click("article.programme button")
    browser.wait_for("!document.getElementById('signup').hidden")
    browser.type("#phone", PHONE)
    _shot(browser, tmp_path, "2-phone")
    browser.click("#send-code")
    browser.wait_for("!document.getElementById('code-form').hidden")
    code = _code(stack)
    browser.type("#code", "000000" if code != "000000" else "111111")
    browser.click("#verify")
    browser.wait_for("document.getElementById('code-error').textContent.length > 0")
    assert (
        browser.evaluate("document.getElementById('code').getAttribute('aria-invalid')") == "true"
    )
    _shot(browser, tmp_path, "3-wrong-code")
    browser.type("#code", code)
    browser.click("#verify")
    browser.wait_for("!document.getElementById('session-form').hidden")
    offered = browser.evaluate(
        "[...document.querySelectorAll('input[name=session]')].map(i => i.value)"
    )
    assert offered, "no session offered"
    offered_days = {datetime.fromisoformat(v).astimezone(SEOUL).date() for v in offered}
    assert chemo not in offered_days
    avoided = browser.evaluate("document.getElementById('avoided').textContent")
    assert f"{chemo.month}월 {chemo.day}일" in avoided, avoided
    assert browser.evaluate("document.getElementById('name').value") == "김하나"
    assert browser.evaluate(NO_SIDEWAYS_SCROLL)
    _shot(browser, tmp_path, "4-sessions")

    browser.click("#submit")  # no session picked, no consent: the errors beside the fields
    browser.wait_for("document.getElementById('session-error').textContent.length > 0")
    assert browser.evaluate("document.getElementById('consent-error').textContent")
    browser.click("#s-0")
    browser.click("#consent")
    browser.click("#submit")
    browser.wait_for("!document.getElementById('done').hidden")
    assert (
        browser.evaluate("document.getElementById('done-title').textContent")
        == "신청이 완료되었습니다"
    )
    shown = browser.evaluate("document.getElementById('done-facts').textContent")
    first = datetime.fromisoformat(offered[0]).astimezone(SEOUL)
    assert f"{first.month}월 {first.day}일" in shown
    assert "본관 1층 힐링 카페" in shown
    _shot(browser, tmp_path, "5-done")
    assert browser.errors == []  # no CSP violation, no script error
