"""The console's 답변 대기 (replies waiting) and 환자 (patients) screens in a real headless
Chromium over the local stack (started for this module, as test_console starts it): a recall
reply that speaks of bleeding is pinned on top with the tag's manual beside it, staff answer it
and it leaves the queue; a patient found by chart number shows their timeline; a department user
never sees another department's patient, and reception's patient page has no clinical panels.

Screenshots (1366x768 desk, 768x1024 tablet) land in the test's tmp_path; `-s` prints where.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sotong.notify.providers.solapi import sign_webhook
from tests.e2e.browser import Browser
from tests.e2e.test_console import CONTRAST, DESK, TABLET, _accessible, _shot, _sign_in, _text
from tests.e2e.test_console import browser as browser  # the module's Chromium
from tests.e2e.test_web_form import HTTP, NO_SIDEWAYS_SCROLL, Stack, stack

pytestmark = pytest.mark.e2e
__all__ = ["browser", "stack"]

KST = ZoneInfo("Asia/Seoul")
BLEEDING = "임플란트 한 곳에서 피가 계속 나요"
WEBHOOK_SECRET = "local-hmac_key"  # what the local stack stores for the provider's webhook


def _patient(stack: Stack, name: str, phone: str, chart: str, tag: str) -> dict[str, Any]:
    """A patient treated yesterday (stack time) whose aftercare message the dispatcher sent."""
    staff = stack.staff_headers()
    body = {"name": name, "phone": phone, "chart_no": chart, "consents": {"contact": True}}
    answer = HTTP.post(f"{stack.url}/patients", json=body, headers=staff, timeout=10)
    assert answer.status_code == 201, answer.text
    pid = str(answer.json()["id"])
    now = datetime.fromisoformat(
        HTTP.get(f"{stack.url}/health", timeout=5).json()["time"].replace("Z", "+00:00")
    )
    yesterday = (now.astimezone(KST) - timedelta(days=1)).date().isoformat()
    treated = HTTP.post(
        f"{stack.url}/patients/{pid}/treatments",
        json={"tag": tag, "date": yesterday},
        headers=staff,
        timeout=10,
    )
    assert treated.status_code in (200, 201), treated.text
    aftercare = next(t for t in treated.json()["touchpoints"] if t["step"] == "aftercare")
    due = datetime.fromisoformat(aftercare["due_at"].replace("Z", "+00:00"))
    shift = max(120.0, (due - now).total_seconds() + 120.0)
    run = HTTP.post(
        f"{stack.url}/_local/schedules/recall_dispatcher/run",
        json={"clock_offset_seconds": shift},
        timeout=30,
    )
    assert run.status_code == 200, run.text
    touchpoints = HTTP.get(
        f"{stack.url}/patients/{pid}/touchpoints", headers=staff, timeout=10
    ).json()["touchpoints"]
    assert any(t["step"] == "aftercare" and t["status"] == "queued" for t in touchpoints), (
        touchpoints,
        run.text,
    )
    return {"id": pid, "phone": phone, "chart": chart}


def _reply(stack: Stack, phone: str, text: str, message_id: str) -> None:
    """The patient answers by SMS: the provider's signed webhook, as Solapi sends it."""
    body = json.dumps(
        [
            {
                "data": {
                    "messageId": message_id,
                    "from": phone.replace("-", ""),
                    "to": "025550100",
                    "text": text,
                    "type": "SMS",
                }
            }
        ]
    ).encode()
    answer = HTTP.post(
        f"{stack.url}/webhooks/inbound",
        data=body,
        headers={"Content-Type": "application/json", **sign_webhook(body, WEBHOOK_SECRET)},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["replies"] == 1, answer.text


def _keys(browser: Browser) -> list[str]:
    keys: list[str] = browser.evaluate(
        "[...document.querySelectorAll('button.reply-pick')].map(b => b.dataset.key)"
    )
    return keys


def test_a_bleeding_reply_is_pinned_answered_and_leaves_the_queue(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    implant = _patient(stack, "김하늘", "010-5555-0101", "E2E-101", "implant_surgery")
    botox = _patient(stack, "박보라", "010-5555-0202", "E2E-202", "botox")
    _reply(stack, implant["phone"], "내일 오전에 가도 되나요?", "E2E-M1")
    _reply(stack, botox["phone"], "네 감사합니다", "E2E-M2")
    _reply(stack, implant["phone"], BLEEDING, "E2E-M3")

    browser.navigate(f"{stack.url}/console/")  # sessionStorage is the console's origin's
    _sign_in(browser, stack, "department_staff", "dental")
    browser.evaluate("window.location.hash = '#/replies'")
    browser.wait_for(
        f"!!document.querySelector('#flagged')?.textContent.includes({json.dumps(BLEEDING)})"
    )
    assert not browser.evaluate("document.getElementById('flagged').hidden")
    assert "위험 신호" in _text(browser, "#flagged h2")
    # the flagged reply is chosen first, its manual beside it
    browser.wait_for(
        f"document.getElementById('reply-text')?.textContent === {json.dumps(BLEEDING)}"
    )
    assert "피가 계속" in _text(browser, "#reply-flag")
    assert "임플란트" in _text(browser, "#manual-title")
    assert len(_text(browser, "#manual .manual-text")) > 20
    assert browser.evaluate(
        "document.getElementById('manual').getBoundingClientRect().top < window.innerHeight"
    ), "the manual is not on the first screen"
    browser.wait_for("!!document.getElementById('thread')")
    # a dental user sees the dental patient's two replies, not the dermatology one
    keys = _keys(browser)
    assert {k.split("/")[0] for k in keys} == {implant["id"]}
    assert len(keys) == 2
    assert _accessible(browser)["unlabeled"] == []
    assert browser.evaluate(NO_SIDEWAYS_SCROLL)
    assert browser.evaluate(CONTRAST) == []
    _shot(browser, tmp_path, "r1-replies-flagged")
    browser.set_viewport(*TABLET)
    assert browser.evaluate(NO_SIDEWAYS_SCROLL), "the replies scroll sideways on a tablet"
    _shot(browser, tmp_path, "r2-replies-tablet")
    browser.set_viewport(*DESK)

    # an answer from the keyboard: it goes to the patient, and their replies leave the queue
    browser.type(
        "#answer textarea[name=message]", "지금 바로 병원으로 오세요. 진료실에서 기다리겠습니다."
    )
    browser.focus("#send-answer")
    browser.press("Enter", key_code=13, text="\r")
    browser.wait_for(
        f"![...document.querySelectorAll('button.reply-pick')]"
        f".some(b => b.dataset.key.startsWith('{implant['id']}/'))",
        timeout=15,
    )
    assert browser.evaluate("document.getElementById('flagged').hidden")
    browser.wait_for("document.getElementById('polite').textContent.includes('답변을 보냈습니다')")
    assert "답장이 없습니다" in _text(browser, "#reply-list")
    _shot(browser, tmp_path, "r3-replies-answered")

    # the dermatology user sees only their patient's reply, and marks it handled
    _sign_in(browser, stack, "department_staff", "dermatology")
    browser.evaluate("window.location.hash = '#/replies'")
    browser.wait_for("document.querySelectorAll('button.reply-pick').length === 1")
    assert _keys(browser)[0].startswith(f"{botox['id']}/")
    assert browser.evaluate("document.getElementById('flagged').hidden")
    # a new reply appears without a reload (what the 20 s poll does, run now), announced
    _reply(stack, botox["phone"], "레이저 부위가 많이 부었어요", "E2E-M4")
    browser.click("#refresh")
    browser.wait_for("document.querySelectorAll('#flagged button.reply-pick').length === 1")
    browser.wait_for("document.getElementById('polite').textContent.includes('새 답장 1건')")
    # the open conversation shows it too
    browser.wait_for("document.getElementById('thread')?.textContent.includes('많이 부었어요')")
    # ↓ from the pinned reply reaches the one below it
    browser.focus("#flagged button.reply-pick")
    browser.press("ArrowDown", key_code=40)
    assert browser.evaluate("document.activeElement.closest('#reply-list') !== null")
    assert browser.evaluate(CONTRAST) == []
    _shot(browser, tmp_path, "r4-replies-dermatology")
    browser.wait_for("!!document.getElementById('mark-handled')")
    browser.click("#mark-handled")
    browser.wait_for("document.querySelectorAll('button.reply-pick').length === 0")
    assert browser.errors == [], browser.errors


def test_a_patient_is_found_by_chart_number_with_their_timeline(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    dental = _patient(stack, "이서준", "010-5555-0303", "E2E-303", "implant_surgery")
    derm = _patient(stack, "최유나", "010-5555-0404", "E2E-404", "laser_toning")

    browser.navigate(f"{stack.url}/console/")
    _sign_in(browser, stack, "department_staff", "dental")
    browser.evaluate("window.location.hash = '#/patients'")
    browser.wait_for("!!document.getElementById('patient-search')")
    assert browser.evaluate("document.activeElement.name") == "q"
    browser.type("#patient-search input[name=q]", dental["chart"])
    browser.press("Enter", key_code=13, text="\r")
    browser.wait_for("!!document.getElementById('patient-timeline')")
    assert browser.evaluate("window.location.hash") == f"#/patients/{dental['id']}"
    assert "이서준" in _text(browser, "#patient-title")
    timeline = _text(browser, "#patient-timeline")
    assert "시술: 임플란트" in timeline
    assert "다음 날 관리 안내" in timeline
    kinds = browser.evaluate(
        "[...document.querySelectorAll('#patient-timeline li')].map(li => li.dataset.kind)"
    )
    assert "treatment" in kinds
    assert "touchpoint-queued" in kinds
    assert "touchpoint-planned" in kinds
    # record a booking: it shows on the page and on the timeline
    now = HTTP.get(f"{stack.url}/health", timeout=5).json()["time"]
    booking = (datetime.fromisoformat(now.replace("Z", "+00:00")) + timedelta(days=14)).astimezone(
        KST
    )
    browser.set_value("#record-appointment input[name=at]", booking.strftime("%Y-%m-%dT10:30"))
    browser.click("#record-appointment button[type=submit]")
    browser.wait_for("(document.getElementById('next-booking')?.textContent || '없음') !== '없음'")
    assert "booking" in browser.evaluate(
        "[...document.querySelectorAll('#patient-timeline li')].map(li => li.dataset.kind)"
    )
    assert _accessible(browser)["unlabeled"] == []
    assert browser.evaluate(NO_SIDEWAYS_SCROLL)
    assert browser.evaluate(CONTRAST) == []
    _shot(browser, tmp_path, "p1-patient-timeline")
    browser.set_viewport(*TABLET)
    assert browser.evaluate(NO_SIDEWAYS_SCROLL), "the patient page scrolls sideways on a tablet"
    _shot(browser, tmp_path, "p2-patient-tablet")
    browser.set_viewport(*DESK)

    # another department's patient: not found, by chart number and by their page's address
    browser.evaluate("window.location.hash = '#/patients'")
    browser.wait_for("!!document.getElementById('patient-search')")
    browser.type("#patient-search input[name=q]", derm["chart"])
    browser.click("#patient-search button[type=submit]")
    browser.wait_for("!!document.getElementById('no-patient')")
    assert "다른 부서" in _text(browser, "#no-patient")
    _shot(browser, tmp_path, "p3-other-department-not-found")
    browser.evaluate(f"window.location.hash = '#/patients/{derm['id']}'")
    browser.wait_for("!!document.getElementById('not-found')")
    assert "최유나" not in _text(browser, "#main")

    # reception: contact, consents and bookings; no clinical panel, no error
    _sign_in(browser, stack, "reception", "front_desk")
    browser.evaluate(f"window.location.hash = '#/patients/{dental['id']}'")
    browser.wait_for("!!document.getElementById('reception-note')")
    assert not browser.evaluate("!!document.getElementById('patient-timeline')")
    assert not browser.evaluate("!!document.getElementById('record-treatment')")
    assert browser.evaluate("!!document.getElementById('record-appointment')")
    assert not browser.evaluate("!!document.querySelector('#main .form-error:not([hidden])')")
    nav = _text(browser, "#nav")
    assert "환자" in nav
    assert "답변 대기" not in nav
    assert browser.evaluate(CONTRAST) == []
    _shot(browser, tmp_path, "p4-patient-reception")
    assert browser.errors == [], browser.errors
