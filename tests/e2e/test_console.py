"""The staff console in a real headless Chromium over the local stack (in a subprocess, as
test_web_form starts it): sign in as each kind of user, the inbox with a critical complaint pinned,
a complaint handled from acknowledgement to close, and the role matrix in the console.

Screenshots (1366x768 desk, 768x1024 tablet) land in the test's tmp_path; `-s` prints where.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import Browser, BrowserMissing
from tests.e2e.test_web_form import HTTP, NO_SIDEWAYS_SCROLL, Stack, stack

pytestmark = pytest.mark.e2e
__all__ = ["stack"]  # the local stack fixture, started once for this module

DESK = (1366, 768)
TABLET = (768, 1024)
CRITICAL = "임플란트 흔들리고 봉합 터진 것 같아요. 피가 계속 납니다."
DERM = "피부과 레이저 시술 후 안내가 부족했습니다. 다음에는 설명을 더 해 주세요."


def _submit(stack: Stack, text: str, department: str) -> str:
    answer = HTTP.post(
        f"{stack.url}/complaints",
        json={
            "text": text,
            "contact": {"name": "홍길동", "phone": "010-1234-5678"},
            "consent_to_contact": True,
            "department": department,
        },
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    code: str = answer.json()["tracking_code"]
    return code


def _id_of(stack: Stack, code: str) -> str:
    inbox = HTTP.get(
        f"{stack.url}/inbox", params={"limit": 100}, headers=stack.staff_headers(), timeout=10
    )
    return str(next(i["id"] for i in inbox.json()["items"] if i["code"] == code))


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


def _shot(browser: Browser, tmp_path: Path, name: str) -> Path:
    path = browser.screenshot(tmp_path / f"console-{name}.png")
    print(f"screenshot: {path}")
    return path


def _sign_in(browser: Browser, stack: Stack, role: str, department: str = "") -> None:
    browser.evaluate("sessionStorage.clear()")
    browser.navigate(f"{stack.url}/console/")
    browser.wait_for("!!document.querySelector('button.user')")
    browser.click(f"button.user[data-role='{role}'][data-department='{department}']")
    browser.wait_for("!!document.getElementById('sign-out')")


def _text(browser: Browser, selector: str) -> str:
    return str(browser.evaluate(f"document.querySelector({json.dumps(selector)})?.textContent"))


def _row_codes(browser: Browser) -> list[str]:
    codes: list[str] = browser.evaluate(
        "[...document.querySelectorAll('[data-code], #critical li[data-id]')]"
        ".map(el => el.dataset.code || el.textContent)"
    )
    return codes


def _accessible(browser: Browser) -> dict[str, Any]:
    """Every control has a label; the page has one h1, a skip link and a lang."""
    found: dict[str, Any] = browser.evaluate(
        """(() => ({
          unlabeled: [...document.querySelectorAll('input, select, textarea')]
            .filter(el => !el.labels || el.labels.length === 0).map(el => el.name || el.id),
          h1: document.querySelectorAll('h1').length,
          skip: !!document.querySelector('a.skip-link[href="#main"]'),
          lang: document.documentElement.lang,
          sideways: document.documentElement.scrollWidth > window.innerWidth,
        }))()"""
    )
    return found


CONTRAST = """(() => {
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const c = rgb(getComputedStyle(node).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length || el.closest('[hidden], .visually-hidden')) continue;
    const style = getComputedStyle(el);
    const a = lum(rgb(style.color).slice(0, 3));
    const b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const text = el.textContent.trim().slice(0, 20);
    if (ratio < 4.5) low.push(`${el.tagName}.${el.className}: ${ratio.toFixed(2)} ${text}`);
  }
  return low;
})()"""


def test_the_console_handles_a_critical_complaint_as_cs_admin(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    critical = _submit(stack, CRITICAL, "dental")
    other = _submit(stack, DERM, "dermatology")

    browser.navigate(f"{stack.url}/console/")
    browser.wait_for("!!document.querySelector('button.user')")
    assert _accessible(browser) == {
        "unlabeled": [],
        "h1": 1,
        "skip": True,
        "lang": "ko",
        "sideways": False,
    }
    roles = browser.evaluate(
        "[...document.querySelectorAll('button.user')].map(b => b.dataset.role)"
    )
    assert {"cs_admin", "department_staff", "reception", "qi"} <= set(roles)
    _shot(browser, tmp_path, "1-sign-in")

    # Keyboard: Tab reaches the skip link first, and Enter on it moves focus to <main>.
    browser.evaluate("document.activeElement && document.activeElement.blur()")
    browser.press("Tab", key_code=9)
    assert browser.evaluate("document.activeElement.className") == "skip-link"
    browser.press("Enter", key_code=13, text="\r")
    assert browser.evaluate("document.activeElement.id") == "main"

    _sign_in(browser, stack, "cs_admin")
    browser.wait_for(
        f"!!document.querySelector('#critical li[data-id]')?.textContent.includes('{critical}')"
    )
    assert not browser.evaluate("document.getElementById('critical').hidden")
    assert "긴급 민원" in _text(browser, "#critical h2")
    assert browser.wait_for(f"!!document.querySelector('[data-code=\"{other}\"]')")
    assert _accessible(browser)["unlabeled"] == []
    assert browser.evaluate(NO_SIDEWAYS_SCROLL)
    assert browser.evaluate(CONTRAST) == []  # WCAG AA: 4.5:1 for text
    _shot(browser, tmp_path, "2-inbox-critical-pinned")
    browser.set_viewport(*TABLET)
    assert browser.evaluate(NO_SIDEWAYS_SCROLL), "the inbox scrolls sideways on a tablet"
    _shot(browser, tmp_path, "3-inbox-tablet")
    browser.set_viewport(*DESK)

    # New complaints appear without a reload (the poll, run now) and are announced politely.
    fresh = _submit(stack, "접수 창구에서 40분을 기다렸는데 안내가 없었습니다.", "front_desk")
    browser.click("#refresh")  # what the 20 s poll does
    browser.wait_for(f"!!document.querySelector('[data-code=\"{fresh}\"] .badge.new')")
    browser.wait_for("document.getElementById('polite').textContent.includes('새 민원 1건')")

    # Acknowledge from the banner (the status change to acknowledged): the pin goes.
    complaint_id = _id_of(stack, critical)
    browser.focus(f"#critical li[data-id='{complaint_id}'] button.ack")
    browser.press("Enter", key_code=13, text="\r")
    browser.wait_for(f"!document.querySelector('#critical li[data-id=\"{complaint_id}\"]')")
    browser.wait_for(f"!!document.querySelector('[data-code=\"{critical}\"]')")

    # The complaint: text, classifier with matched phrases, timeline, actions.
    browser.focus(f"[data-code='{critical}'] a.item-link")
    browser.press("Enter", key_code=13, text="\r")
    browser.wait_for("!!document.getElementById('complaint-text')")
    assert "봉합" in _text(browser, "#complaint-text")
    assert browser.evaluate("document.querySelectorAll('#classification mark').length") > 0
    assert "확인함" in _text(browser, "#complaint-status")
    assert _accessible(browser)["unlabeled"] == []
    assert browser.evaluate(CONTRAST) == []
    _shot(browser, tmp_path, "4-complaint")

    # Assign.
    browser.type("#assign input[name=assignee]", "lee.junho")
    browser.set_value("#assign select[name=department]", "dental")
    browser.click("#assign button[type=submit]")
    browser.wait_for("document.getElementById('complaint-assignee').textContent === 'lee.junho'")

    # Reply from a saved answer.
    browser.set_value("#reply select", "apology")
    browser.click("#insert-template")
    assert "불편을 끼쳐 죄송합니다" in browser.evaluate(
        "document.querySelector('#reply textarea[name=message]').value"
    )
    browser.click("#reply button[type=submit]")
    browser.wait_for("document.getElementById('timeline').textContent.includes('환자에게 답변')")
    assert "처리 중" in _text(browser, "#complaint-status")

    # An empty outcome: the API's 422 is shown beside the field.
    browser.click("#resolve button[type=submit]")
    browser.wait_for(
        "document.querySelector('#resolve textarea[name=outcome]')"
        ".getAttribute('aria-invalid') === 'true'"
    )
    assert browser.evaluate("document.activeElement.name") == "outcome"
    _shot(browser, tmp_path, "5-complaint-field-error")

    # Resolve with the outcome, then close.
    browser.type(
        "#resolve textarea[name=outcome]", "봉합 부위를 다시 확인하고 재진료를 잡아 드렸습니다."
    )
    browser.set_value("#resolve input[name=notify_patient]", "on")
    browser.evaluate(
        "document.querySelector('#resolve input[name=confirm_health_terms]').checked = true"
    )
    browser.click("#resolve button[type=submit]")
    browser.wait_for(
        "document.getElementById('complaint-status').textContent.includes('처리 완료')"
        " || !document.querySelector('#resolve .confirm-terms')?.hidden",
        timeout=10,
    )
    if not browser.evaluate(
        "document.getElementById('complaint-status').textContent.includes('처리 완료')"
    ):
        # the outcome names a treatment: confirm it, as staff would, and send again
        browser.click("#resolve input[name=confirm_health_terms]")
        browser.click("#resolve button[type=submit]")
        browser.wait_for(
            "document.getElementById('complaint-status').textContent.includes('처리 완료')"
        )
    browser.click("#close button[type=submit]")
    browser.wait_for("document.getElementById('complaint-status').textContent.includes('종결')")
    assert browser.evaluate("!!document.querySelector('#reopen')")

    # Every message sent about it, with its delivery status.
    # (the staff alerts are listed too: wait for the outcome's record itself)
    browser.wait_for(
        "document.querySelectorAll('#messages tbody tr').length >= 3"
        " && document.getElementById('messages').textContent.includes('처리 결과')",
        timeout=15,
    )
    statuses = browser.evaluate(
        "[...document.querySelectorAll('#messages tbody tr')].map(r => r.dataset.status)"
    )
    assert statuses, "no messages shown"
    assert set(statuses) <= {"calling", "sent", "delivered", "fallback_sent", "held"}, statuses
    assert browser.evaluate("document.getElementById('messages').textContent.includes('처리 결과')")
    _shot(browser, tmp_path, "6-complaint-closed-messages")
    browser.set_viewport(*TABLET)
    assert browser.evaluate(NO_SIDEWAYS_SCROLL), "the complaint scrolls sideways on a tablet"
    _shot(browser, tmp_path, "7-complaint-tablet")
    browser.set_viewport(*DESK)
    assert browser.errors == [], browser.errors


def test_department_staff_see_only_their_department(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    dental = _submit(stack, "치과 예약 시간이 지켜지지 않아 한 시간을 기다렸습니다.", "dental")
    derm = _submit(stack, "피부과 상담 설명이 너무 짧았습니다. 다시 듣고 싶어요.", "dermatology")
    dental_id = _id_of(stack, dental)

    _sign_in(browser, stack, "department_staff", "dermatology")
    browser.wait_for(f"!!document.querySelector('[data-code=\"{derm}\"]')")
    codes = browser.evaluate(
        "[...document.querySelectorAll('[data-code]')].map(e => e.dataset.code)"
    )
    assert dental not in codes
    assert "피부과" in _text(browser, "#who")
    _shot(browser, tmp_path, "8-inbox-dermatology-staff")

    browser.evaluate(f"window.location.hash = '#/complaints/{dental_id}'")
    browser.wait_for("!!document.getElementById('not-found')")
    title = _text(browser, "#screen-title")
    assert "없음" in title
    assert "권한 없음" in title
    _shot(browser, tmp_path, "9-other-department-not-found")

    # QI reads every department's complaints and changes nothing: no actions are offered.
    _sign_in(browser, stack, "qi")
    browser.wait_for(f"!!document.querySelector('[data-code=\"{dental}\"] a.item-link')")
    assert not browser.evaluate("!!document.querySelector('button.ack')")
    browser.focus(f"[data-code='{dental}'] a.item-link")
    browser.press("Enter", key_code=13, text="\r")
    browser.wait_for("!!document.getElementById('complaint-text')")
    assert browser.evaluate("document.querySelectorAll('#actions form').length") == 0
    assert "읽기 전용" in _text(browser, "#actions")
    browser.wait_for(
        "document.getElementById('messages-holder').textContent.includes('담당 부서만')"
    )
    _shot(browser, tmp_path, "10-complaint-qi-read-only")

    browser.click("#sign-out")
    browser.wait_for("!!document.querySelector('button.user')")
    assert browser.evaluate("sessionStorage.length") == 0
    assert browser.errors == [], browser.errors
