"""The care network on the local stack (a subprocess, as `make run` starts it): a guardian finds a
clinic open on 설날 at 21:00 in a real headless Chromium (390x844, as on a phone), and a referral
goes requested -> accepted -> completed with the guardian told at each step (the sandbox outbox).

Screenshots land in the test's tmp_path (or `$SOTONG_SCREENSHOT_DIR`); `-s` prints where."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import Browser
from tests.e2e.test_web_form import HTTP, NO_SIDEWAYS_SCROLL, Stack, browser, stack

pytestmark = pytest.mark.e2e
__all__ = ["browser", "stack"]  # the fixtures, shared with the web form's tests

SHOWN = (
    "!document.getElementById('result').hidden"
    " && document.getElementById('open-list').children.length"
)
SCREENSHOT_DIR = "SOTONG_SCREENSHOT_DIR"
"""where to keep the screenshots (default: the test's tmp_path, which pytest rotates)"""
REFERRAL_TEMPLATES = ("SOTONG_REF_SNT_01", "SOTONG_REF_ACC_01", "SOTONG_REF_CMP_01")


def test_a_guardian_finds_a_clinic_open_on_seollal_at_nine_pm(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    browser.navigate(f"{stack.url}/pages/open-now.html?at=2027-02-07T21:00")
    browser.wait_for(SHOWN, timeout=15)
    shown: dict[str, Any] = browser.evaluate(
        """(() => ({
        title: document.getElementById('result-title').textContent,
        holiday: document.getElementById('holiday').textContent,
        open: [...document.querySelectorAll('#open-list .place h3')].map(h => h.textContent),
        phones: [...document.querySelectorAll('#open-list a.call')]
          .map(a => a.getAttribute('href')),
        focused: document.activeElement && document.activeElement.id,
        lang: document.documentElement.lang}))()"""
    )
    assert shown["title"] == "2월 7일 (일) 21:00 기준"
    assert "설날" in shown["holiday"]
    assert any("강남달빛어린이병원" in name for name in shown["open"])
    assert not any("한빛소아청소년과" in name for name in shown["open"])  # closed at 18:00 today
    assert "tel:025550202" in shown["phones"]
    assert shown["focused"] == "result-title"
    assert shown["lang"] == "ko"
    assert browser.evaluate(NO_SIDEWAYS_SCROLL)
    shots = Path(os.environ.get(SCREENSHOT_DIR) or tmp_path)
    shot = browser.screenshot(shots / "open-now-seollal-2100.png")
    print(f"\nscreenshot: {shot}")
    # the closed ones, with when each opens next
    browser.click("#closed-title")
    next_opens = browser.evaluate(
        "[...document.querySelectorAll('#closed-list .until')].map(p => p.textContent)"
    )
    assert "다음 진료: 내일 09:00" in next_opens  # e.g. 한빛, on the 8th (설날 still)
    browser.evaluate("document.getElementById('closed-title').scrollIntoView()")
    shot = browser.screenshot(shots / "open-now-seollal-closed.png", full_page=False)
    print(f"screenshot: {shot}")
    # the guardian picks clinics only, and a time past midnight after a weekday
    browser.click("#kind")
    browser.set_value("#kind", "clinic")
    browser.set_value("#date", "2026-12-01")
    browser.type("#time", "00:30")
    browser.click("#submit")
    browser.wait_for(
        "document.getElementById('result-title').textContent.indexOf('00:30') >= 0", timeout=10
    )
    names = browser.evaluate(
        "[...document.querySelectorAll('#open-list .place h3')].map(h => h.textContent)"
    )
    assert any("야간진료실" in name for name in names)  # Monday's 18:00-01:00
    assert not any("약국" in name for name in names)
    shot = browser.screenshot(shots / "open-now-clinics-0030.png")
    print(f"screenshot: {shot}")


def _token(stack: Stack, **claims: str) -> dict[str, str]:
    answer = HTTP.post(f"{stack.url}/_local/token", json=claims, timeout=5)
    answer.raise_for_status()
    return {"Authorization": str(answer.json()["authorization"])}


def _guardian_messages(stack: Stack, phone_tail: str) -> list[dict[str, Any]]:
    return [
        e
        for e in stack.outbox()
        if e.get("kakao_template_code") in REFERRAL_TEMPLATES
        and str(e.get("to", e.get("recipient", ""))).endswith(phone_tail)
    ]


def test_a_referral_goes_round_the_loop_with_the_guardian_told(stack: Stack) -> None:
    partner = _token(stack, role="partner", organisation="hanbit-peds", username="peds.kim")
    staff = _token(stack, role="cs_admin")
    body = {
        "urgency": "urgent",
        "reason": "고열 이틀째, 수분 섭취 저하",
        "child": {"name": "김하준", "birth_date": "2022-05-01"},
        "guardian": {"name": "박지은", "phone": "010-3456-7801", "consent_to_contact": True},
    }
    created = HTTP.post(f"{stack.url}/referrals", json=body, headers=partner, timeout=10)
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    for status in ("accepted", "completed"):
        answer = HTTP.post(
            f"{stack.url}/referrals/{rid}/status",
            json={"status": status},
            headers=staff,
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 20
    while len(_guardian_messages(stack, "7801")) < 3 and time.monotonic() < deadline:
        time.sleep(0.3)
    told = _guardian_messages(stack, "7801")
    assert sorted(e["kakao_template_code"] for e in told) == sorted(REFERRAL_TEMPLATES), (
        stack.outbox()
    )
    assert all("고열" not in str(e.get("text")) for e in told)  # never the reason
    seen = HTTP.get(f"{stack.url}/referrals/{rid}", headers=partner, timeout=10).json()
    assert [s["status"] for s in seen["history"]] == ["requested", "accepted", "completed"]
    other = _token(stack, role="partner", organisation="sarang-night-peds", username="night.park")
    assert HTTP.get(f"{stack.url}/referrals/{rid}", headers=other, timeout=10).status_code == 404
