"""The patients' web pages in a real headless Chromium, against the local stack in a subprocess.

Screenshots (390 px wide, as on a phone) land in the test's tmp_path; `-s` prints where.
Chromium must be installed (`apt-get install -y chromium`; `.ci/run` does it): without it these
tests fail, they do not skip.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.e2e.browser import Browser, BrowserMissing

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STARTUP_S = 30
SEOUL = ZoneInfo("Asia/Seoul")
CODE = re.compile(r"^[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}$")
PHONE_WIDTH = 390
HTTP = requests.Session()
HTTP.trust_env = False  # straight to 127.0.0.1, whatever proxy the environment names
SHOWN_STATUS = (
    "!document.getElementById('result').hidden && document.getElementById('status').textContent"
)
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"
ACK_TEMPLATE = "SOTONG_CMP_RCV_01"  # complaint_received in hospitals/demo.yaml
OUTCOME_TEMPLATE = "SOTONG_CMP_OUT_01"  # complaint_outcome


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _daytime_offset(now: datetime) -> float:
    """Seconds to shift the stack's clock so it is daytime in Seoul: patient messages wait out the
    hospital's quiet hours (21:00-08:00), and the acknowledgement must leave during the test."""
    local = now.astimezone(SEOUL)
    if 9 <= local.hour < 20:
        return 0.0
    noon = local.replace(hour=12, minute=0, second=0, microsecond=0)
    if noon < local:
        noon += timedelta(days=1)
    return (noon - local).total_seconds()


class Stack:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def output(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(line for line in lines if "/_local/outbox" not in line)[-6000:]

    def outbox(self) -> list[dict[str, Any]]:
        answer = HTTP.get(f"{self.url}/_local/outbox", params={"limit": 100}, timeout=5)
        answer.raise_for_status()
        entries: list[dict[str, Any]] = answer.json()
        return entries

    def wait_for_message(self, code: str, marker: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first outbox entry about tracking code `code` that shows `marker` (in its text, or as
        its KakaoTalk template code), polled for: the queue consumer sends in the background."""

        def matches(entry: dict[str, Any]) -> bool:
            text = str(entry.get("text"))
            return code in text and (marker in text or entry.get("kakao_template_code") == marker)

        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.outbox() if matches(e)]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no message for {code} with {marker} in the outbox after {timeout:.0f} s: "
                    f"{self.outbox()}\n--- stack output ---\n{self.output()}"
                )
            time.sleep(0.2)

    def resolve_and_close(self, code: str, outcome: str) -> None:
        """What staff do through the staff API: resolve with an outcome, then close."""
        staff = self.staff_headers()
        inbox = HTTP.get(f"{self.url}/inbox", params={"limit": 100}, headers=staff, timeout=10)
        complaint_id = next(i["id"] for i in inbox.json()["items"] if i["code"] == code)
        for step, body in (("resolve", {"outcome": outcome}), ("close", {})):
            answer = HTTP.post(
                f"{self.url}/complaints/{complaint_id}/{step}", json=body, headers=staff, timeout=10
            )
            assert answer.status_code == 200, answer.text

    def staff_headers(self) -> dict[str, str]:
        answer = HTTP.post(f"{self.url}/_local/token", json={"role": "cs_admin"}, timeout=5)
        answer.raise_for_status()
        return {"Authorization": str(answer.json()["authorization"])}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    port = _free_port()
    log = tmp_path_factory.mktemp("stack") / "stack.log"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "SOTONG_CLOCK_OFFSET_SECONDS": str(_daytime_offset(datetime.now(UTC))),
    }
    command = [
        sys.executable,
        "-m",
        "sotong_local",
        "--port",
        str(port),
        "--hospital",
        "hospitals/demo.yaml",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--sqs-visibility-timeout", "1", "--no-schedules"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Stack(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"the stack exited with {process.returncode}:\n{running.output()}"
                )
            try:
                health = HTTP.get(f"{running.url}/health", timeout=2)
                if health.status_code == 200:
                    break
                if health.status_code >= 500:
                    raise AssertionError(f"the public API does not work:\n{running.output()}")
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the stack did not answer within {STARTUP_S} s:\n{running.output()}"
                )
            time.sleep(0.1)
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        launched = Browser.launch()
    except BrowserMissing as error:
        pytest.fail(f"Chromium is needed for the web form tests: {error}", pytrace=False)
    with launched:
        launched.set_viewport(PHONE_WIDTH, 844)
        launched.set_locale("ko-KR")
        yield launched


def _field_state(browser: Browser, field: str) -> dict[str, Any]:
    state: dict[str, Any] = browser.evaluate(
        f"""(() => {{
        const el = document.getElementById('{field}');
        const error = document.getElementById('{field}-error');
        return {{invalid: el.getAttribute('aria-invalid'),
                describedby: el.getAttribute('aria-describedby') || '',
                error: error.textContent, source: error.getAttribute('data-source'),
                errorVisible: error.getBoundingClientRect().height > 0,
                focused: document.activeElement && document.activeElement.id,
                summary: document.getElementById('summary').textContent,
                summaryRole: document.getElementById('summary').getAttribute('role')}};
        }})()"""
    )
    return state


def _assert_beside_phone(state: dict[str, Any]) -> None:
    assert state["invalid"] == "true", state
    assert "phone-error" in state["describedby"].split(), state
    assert "휴대전화" in state["error"], state
    assert state["errorVisible"], state
    assert state["focused"] == "phone", state
    assert state["summaryRole"] == "alert", state
    assert "휴대전화" in state["summary"], state


def _shot(browser: Browser, tmp_path: Path, name: str) -> Path:
    path = browser.screenshot(tmp_path / f"{name}.png")
    print(f"screenshot: {path}")
    return path


def test_complaint_form_then_tracking(browser: Browser, stack: Stack, tmp_path: Path) -> None:
    started = time.monotonic()
    browser.navigate(f"{stack.url}/pages/complaint.html")
    assert browser.evaluate("document.documentElement.lang") == "ko"
    unlabeled = browser.evaluate(
        "[...document.querySelectorAll('input, select, textarea')]"
        ".filter(el => !el.labels || el.labels.length === 0).map(el => el.id)"
    )
    assert unlabeled == [], f"fields without a <label>: {unlabeled}"
    for width in (320, PHONE_WIDTH):  # the narrowest phones, then the usual one
        browser.set_viewport(width, 844)
        assert browser.evaluate(NO_SIDEWAYS_SCROLL), f"scrolls sideways at {width} px"
    browser.wait_for(
        "document.getElementById('org').textContent.includes('소통치과피부과의원')", timeout=5
    )
    _shot(browser, tmp_path, "1-form")

    browser.click("#kind-complaint")
    browser.type(
        "#text", "주차장 안내가 부족해서 예약 시간에 늦었고 접수 대기도 40분이나 걸렸습니다."
    )
    browser.set_value("#category_hint", "wait_time")
    browser.type("#name", "홍길동")
    browser.type("#phone", "010-1234-56")  # two digits short
    browser.click("#submit")
    # The page's own check catches it first ...
    browser.wait_for("document.getElementById('phone').getAttribute('aria-invalid') === 'true'")
    client = _field_state(browser, "phone")
    _assert_beside_phone(client)
    assert client["source"] == "client"

    # With the network down, a Korean message at the top; nothing typed is lost.
    browser.evaluate(
        "document.getElementById('complaint-form').setAttribute('data-client-checks', 'off')"
    )
    browser.evaluate(
        "window.realFetch = window.fetch;"
        " window.fetch = () => Promise.reject(new TypeError('offline'))"
    )
    browser.click("#submit")
    browser.wait_for("document.getElementById('summary').textContent.includes('인터넷 연결')")
    assert browser.evaluate("document.activeElement.id") == "summary"
    assert browser.evaluate("document.getElementById('phone').getAttribute('aria-invalid')") is None
    assert not browser.evaluate("document.getElementById('submit').disabled")
    browser.evaluate("window.fetch = window.realFetch")

    # ... and the server's 422 lands beside the same field when the page lets it through.
    browser.click("#submit")
    browser.wait_for(
        "document.getElementById('phone-error').getAttribute('data-source') === 'server'"
    )
    _assert_beside_phone(_field_state(browser, "phone"))
    assert browser.evaluate("document.getElementById('text').value").startswith("주차장"), (
        "text lost"
    )
    _shot(browser, tmp_path, "2-phone-error")
    browser.evaluate(
        "document.getElementById('complaint-form').removeAttribute('data-client-checks')"
    )

    # Fixed by keyboard only: type the number, Space ticks consent, Enter in a field submits.
    browser.type("#phone", "010-1234-5678")
    browser.focus("#consent")
    browser.press(" ", "Space", 32, " ")
    assert browser.evaluate("document.getElementById('consent').checked"), (
        "Space did not tick consent"
    )
    browser.focus("#email")
    # Two submits in a row (a double Enter): the page sends one request, with one Idempotency-Key.
    browser.evaluate(
        "(() => { const form = document.getElementById('complaint-form');"
        " form.requestSubmit(); form.requestSubmit(); })()"
    )
    code = browser.wait_for("document.getElementById('code').textContent", timeout=10)
    assert CODE.match(code), code
    done = browser.evaluate(
        """({ack: document.getElementById('ack').textContent,
             focused: document.activeElement.id,
             link: document.getElementById('track-link').getAttribute('href'),
             phoneError: document.getElementById('phone').getAttribute('aria-invalid')})"""
    )
    assert done["focused"] == "done-title"
    assert re.search(
        r"\d{1,2}월 \d{1,2}일\([일월화수목금토]\) 오[전후] \d{1,2}시.*까지 확인 후 연락드립니다",
        done["ack"],
    ), done
    assert done["link"] == f"track.html?code={code}"
    assert done["phoneError"] is None
    browser.set_viewport(320, 844)
    assert browser.evaluate(NO_SIDEWAYS_SCROLL), "the receipt scrolls sideways at 320 px"
    browser.set_viewport(PHONE_WIDTH, 844)
    _shot(browser, tmp_path, "3-received")

    ack = stack.wait_for_message(code, ACK_TEMPLATE, timeout=10)
    assert ack["channel"] == "alimtalk", ack
    assert ack["to"].endswith("5678"), ack
    acks = [e for e in stack.outbox() if e.get("kakao_template_code") == ACK_TEMPLATE]
    assert len(acks) == 1, f"the double submit made {len(acks)} complaints: {acks}"

    # Tracking: the code comes from the link, the wrong digits first.
    browser.clear_events()
    browser.click("#track-link")
    browser.wait_event("Page.loadEventFired")
    assert browser.evaluate("location.pathname") == "/pages/track.html"
    assert browser.evaluate("document.getElementById('code').value") == code
    assert browser.evaluate("document.activeElement.id") == "last4"
    browser.type("#last4", "0000")
    browser.click("#submit")
    browser.wait_for("document.getElementById('summary').textContent !== ''")
    assert "접수번호 또는 전화번호 뒷자리를 확인해 주세요" in browser.evaluate(
        "document.getElementById('summary').textContent"
    )
    assert (
        browser.evaluate("document.getElementById('last4').getAttribute('aria-invalid')") == "true"
    )
    browser.type("#last4", "5678")
    browser.click("#submit")
    status = browser.wait_for(SHOWN_STATUS)
    assert status == "접수"
    assert browser.evaluate(
        "document.querySelector('#steps [aria-current=step]').textContent"
    ).startswith("접수")
    assert browser.evaluate("document.getElementById('summary').textContent") == ""
    _shot(browser, tmp_path, "4-tracking")

    # Staff resolve it: the outcome reaches the patient, and after closing the survey link.
    stack.resolve_and_close(code, "접수 대기 안내 화면을 새로 설치했습니다.")
    outcome = stack.wait_for_message(code, OUTCOME_TEMPLATE, timeout=10)
    assert "접수 대기 안내 화면을 새로 설치했습니다." in outcome["text"]
    survey = stack.wait_for_message(code, "survey.html", timeout=10)
    assert survey["channel"] in ("sms", "lms"), survey

    assert browser.errors == [], browser.errors
    elapsed = time.monotonic() - started
    print(f"form → receipt → outbox → tracking → outcome → survey in {elapsed:.1f} s")
    assert elapsed < 25


def test_survey_after_closing(browser: Browser, stack: Stack, tmp_path: Path) -> None:
    started = time.monotonic()
    browser.navigate(f"{stack.url}/pages/survey.html")
    assert "올바르지 않습니다" in browser.evaluate(
        "document.getElementById('done-title').textContent"
    )

    receipt = HTTP.post(
        f"{stack.url}/complaints",
        json={
            "text": "간호사 선생님이 친절하게 설명해 주셔서 감사했습니다.",
            "consent_to_contact": True,
            "contact": {"phone": "010-9876-5432"},
        },
        timeout=10,
    ).json()
    code = receipt["tracking_code"]
    stack.resolve_and_close(code, "해당 직원에게 칭찬을 전달했습니다.")
    survey = stack.wait_for_message(code, "survey.html", timeout=10)
    link = re.search(r"survey\.html\?code=([A-Z0-9-]+)&t=([\w-]+)", survey["text"])
    assert link, survey
    page = f"{stack.url}/pages/survey.html?code={link[1]}&t={link[2]}"

    browser.navigate(f"{page[:-3]}xyz")  # a damaged link: the server says 404
    browser.click("#score-4")
    browser.click("#submit")
    browser.wait_for("!document.getElementById('done').hidden")
    assert "올바르지 않습니다" in browser.evaluate(
        "document.getElementById('done-title').textContent"
    )

    browser.navigate(page)
    assert link[1] in browser.evaluate("document.getElementById('intro').textContent")
    browser.click("#submit")  # no score chosen
    assert (
        browser.evaluate("document.getElementById('score-group').getAttribute('aria-invalid')")
        == "true"
    )
    assert browser.evaluate("document.activeElement.id") == "score-5"
    browser.click("#score-5")
    browser.type("#comment", "빠르게 답해 주셔서 좋았습니다.")
    _shot(browser, tmp_path, "5-survey")
    browser.click("#submit")
    browser.wait_for("!document.getElementById('done').hidden")
    assert (
        browser.evaluate("document.getElementById('done-title').textContent")
        == "응답해 주셔서 감사합니다"
    )
    _shot(browser, tmp_path, "6-survey-thanks")

    browser.navigate(page)  # the same link again
    browser.click("#score-1")
    browser.click("#submit")
    browser.wait_for("!document.getElementById('done').hidden")
    assert (
        browser.evaluate("document.getElementById('done-title').textContent")
        == "이미 응답하신 설문입니다"
    )

    # The patient sees the outcome when tracking.
    browser.navigate(f"{stack.url}/pages/track.html?code={code}")
    browser.type("#last4", "5432")
    browser.click("#submit")
    assert browser.wait_for(SHOWN_STATUS) == "종결"
    assert "칭찬을 전달했습니다" in browser.evaluate(
        "document.getElementById('outcome').textContent"
    )
    _shot(browser, tmp_path, "7-tracking-closed")
    assert browser.errors == [], browser.errors
    print(f"survey flow in {time.monotonic() - started:.1f} s")


@pytest.mark.parametrize("page", ["complaint.html", "track.html", "survey.html"])
def test_each_page_runs_its_own_code_under_its_csp_and_nothing_injected(
    browser: Browser, stack: Stack, page: str
) -> None:
    answer = HTTP.get(f"{stack.url}/pages/{page}", timeout=5)
    csp = answer.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "'sha256-" in csp
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"

    browser.errors.clear()
    browser.navigate(f"{stack.url}/pages/{page}")
    # Its hashed inline script ran (it fills the hospital's name in) and its styles applied.
    browser.wait_for(
        "document.getElementById('org').textContent.includes('소통치과피부과의원')", timeout=5
    )
    assert browser.evaluate("getComputedStyle(document.body).marginTop") == "0px"  # style.css
    assert browser.errors == [], browser.errors
    # A script or style injected into the page (an XSS) is refused by the CSP.
    browser.evaluate(
        "(() => { const s = document.createElement('script');"
        " s.textContent = 'window.injected = true'; document.body.appendChild(s);"
        " const t = document.createElement('style'); t.textContent = 'body{margin-top:7px}';"
        " document.head.appendChild(t); })()"
    )
    browser.pump(0.3)
    assert browser.evaluate("window.injected === undefined")
    assert browser.evaluate("getComputedStyle(document.body).marginTop") == "0px"
    assert any("Content Security Policy" in error for error in browser.errors), browser.errors
    browser.errors.clear()
