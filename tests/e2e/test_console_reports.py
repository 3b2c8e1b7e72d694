"""The reports screen (보고서) in a real headless Chromium over the local stack: seed complaints,
treatments with their touchpoints (one sent by the dispatcher, one cancelled) and the messages
they cause; open the monthly report as the CS admin and see its charts drawn (non-empty canvas
pixels), its numbers equal to the API's for the same period, the CSV downloaded (UTF-8 with
BOM, Korean headers), the print layout; as department staff, their department's only.

Screenshots (1366x768) land in the test's tmp_path; `-s` prints where.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.browser import Browser, BrowserMissing
from tests.e2e.test_console import CONTRAST, _accessible, _shot, _sign_in, _text
from tests.e2e.test_web_form import HTTP, NO_SIDEWAYS_SCROLL, Stack, stack

pytestmark = pytest.mark.e2e
__all__ = ["stack"]  # the local stack fixture, started once for this module

DESK = (1366, 768)
SEOUL = ZoneInfo("Asia/Seoul")
COMPLAINTS = (
    ("접수 대기시간이 1시간이 넘었는데 아무 안내도 없었습니다.", "front_desk"),
    ("수납 금액이 안내와 달랐어요. 확인 부탁드립니다.", "front_desk"),
    ("임플란트 수술 후 설명이 부족했습니다.", "dental"),
    ("간호사 선생님이 정말 친절하셨어요. 감사합니다!", "dental"),
)
CANVAS_INK = """(() => [...document.querySelectorAll('canvas')].map((c) => {
  const g = c.getContext('2d');
  const data = g.getImageData(0, 0, c.width, c.height).data;
  let ink = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 0 && (data[i] < 200 || data[i + 1] < 200 || data[i + 2] < 200)) ink += 1;
  }
  return { id: c.id, width: c.width, height: c.height, ink, url: c.toDataURL().length };
}))()"""


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


def _stack_now(stack: Stack) -> datetime:
    health = HTTP.get(f"{stack.url}/health", timeout=5).json()
    return datetime.fromisoformat(str(health["time"]).replace("Z", "+00:00")).astimezone(SEOUL)


def _seed(stack: Stack) -> dict[str, Any]:
    admin = _headers(stack, "cs_admin")
    codes = []
    for text, department in COMPLAINTS:
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
        codes.append(answer.json()["tracking_code"])
    inbox = HTTP.get(f"{stack.url}/inbox", params={"limit": 100}, headers=admin, timeout=10)
    first = next(i["id"] for i in inbox.json()["items"] if i["code"] == codes[0])
    for step, body in (("resolve", {"outcome": "대기 순서를 다시 안내했습니다."}), ("close", {})):
        done = HTTP.post(
            f"{stack.url}/complaints/{first}/{step}", json=body, headers=admin, timeout=10
        )
        assert done.status_code == 200, done.text
    today = _stack_now(stack).date().isoformat()
    dues = []
    for n in range(2):
        patient = HTTP.post(
            f"{stack.url}/patients",
            json={
                "name": "김리콜",
                "phone": f"010-5300-000{n}",
                "chart_no": f"RP-{n}",
                "consents": {"contact": True},
            },
            headers=admin,
            timeout=10,
        )
        assert patient.status_code == 201, patient.text
        pid = patient.json()["id"]
        treated = HTTP.post(
            f"{stack.url}/patients/{pid}/treatments",
            json={"tag": "implant_surgery", "date": today},
            headers=admin,
            timeout=10,
        )
        assert treated.status_code == 201, treated.text
        aftercare = next(t for t in treated.json()["touchpoints"] if t["step"] == "aftercare")
        dues.append(aftercare["due_at"])
        if n == 1:
            cancel = HTTP.post(
                f"{stack.url}/patients/{pid}/touchpoints/{aftercare['id']}/cancel",
                headers=admin,
                timeout=10,
            )
            assert cancel.status_code == 200, cancel.text
    # the dispatcher's first run sets its watermark (it looks back a little only); the second
    # runs two days on, when the first patient's aftercare is due
    for offset in (0, 2 * 86400):
        run = HTTP.post(
            f"{stack.url}/_local/schedules/recall_dispatcher/run",
            json={"clock_offset_seconds": offset},
            timeout=30,
        )
        assert run.status_code == 200, run.text
        assert run.json()["ok"], run.text
    # the stack's queue consumer sends in the background: wait until the records stop moving,
    # so that the console and the API read the same state
    deadline = time.monotonic() + 20
    period = _stack_now(stack).strftime("%Y-%m")
    reads: list[Any] = []
    while time.monotonic() < deadline:
        reads.append(_api(stack, "reports/messages", period))
        if len(reads) >= 3 and reads[-1] == reads[-2] == reads[-3] and reads[-1]["totals"]["sent"]:
            break
        time.sleep(1.0)
    return {"dues": dues}


def _api(stack: Stack, path: str, period: str) -> dict[str, Any]:
    answer = HTTP.get(
        f"{stack.url}/{path}",
        params={"period": period},
        headers=_headers(stack, "cs_admin"),
        timeout=20,
    )
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    return report


def _cells(browser: Browser, table: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = browser.evaluate(
        f"""Object.fromEntries([...document.querySelectorAll({json.dumps(table + " tbody tr")})]
          .filter((tr) => tr.querySelector('th'))
          .map((tr) => [tr.querySelector('th').textContent,
                        [...tr.querySelectorAll('td')].map((td) => td.textContent)]))"""
    )
    return rows


def _n(value: Any, suffix: str = "") -> str:
    """As the console writes a number (toLocaleString('ko-KR'): 25.0 is 25, 1234 is 1,234)."""
    if value is None:
        return "—"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}{suffix}"


def test_the_monthly_report_draws_its_charts_and_matches_the_api(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    seeded = _seed(stack)
    now = _stack_now(stack)
    period = f"{now.year}-{now.month:02d}"
    complaints = _api(stack, "reports/complaints", period)
    recall = _api(stack, "reports/recall", period)
    messages = _api(stack, "reports/messages", period)
    assert complaints["total"] >= len(COMPLAINTS)
    assert messages["totals"]["sent"] >= 1

    browser.navigate(f"{stack.url}/console/")
    _sign_in(browser, stack, "cs_admin")
    assert browser.evaluate("[...document.querySelectorAll('#nav a')].map(a => a.textContent)")
    browser.evaluate("window.location.hash = '#/reports'")  # the current month by default
    browser.wait_for("document.getElementById('main').dataset.charts > 0", timeout=20)
    assert str(now.month) + "월" in _text(browser, "#screen-title")

    # the charts are drawn: every canvas has ink
    drawn = browser.evaluate(CANVAS_INK)
    assert len(drawn) == 9, drawn  # 5 complaint, 3 recall, 1 messages
    for canvas in drawn:
        assert canvas["width"] > 100, canvas
        assert canvas["ink"] > 200, canvas
        assert canvas["url"] > 2000, canvas

    # the console's numbers are the API's for the same period
    assert _text(browser, "#stat-total .stat-value") == _n(complaints["total"], "건")
    assert _text(browser, "#stat-ack .stat-value") == _n(
        complaints["acknowledged_within_sla_percent"], "%"
    )
    assert _text(browser, "#stat-escalated .stat-value") == _n(complaints["escalated"], "건")
    trend = _cells(browser, "#chart-trend-table")
    for month in complaints["trend"]:
        assert trend[month["month"]] == [
            _n(month["total"]),
            _n(month["resolved"]),
            _n(month["escalated"]),
        ]
    kinds = _cells(browser, "#chart-kind-table")
    assert sorted(int(v[0]) for v in kinds.values()) == sorted(complaints["by_kind"].values())
    departments = _cells(browser, "#chart-department-table")
    assert sum(int(v[0]) for v in departments.values()) == complaints["total"]
    tags = _cells(browser, "#chart-recall-table")
    names = {"implant_surgery": "임플란트 식립"}
    for row in recall["tags"]:
        if row["tag"] in names:
            assert tags[names[row["tag"]]] == [
                _n(row[k]) for k in ("due", "sent", "cancelled", "replies", "converted")
            ]
    if all(d[:7] == period for d in seeded["dues"]):
        implant = next(r for r in recall["tags"] if r["tag"] == "implant_surgery")
        assert (implant["sent"], implant["cancelled"]) == (1, 1)
        assert implant["by_step"]["aftercare"] == 2  # (and the feedback steps, if this month)
    channels = _cells(browser, "#chart-messages-table")
    assert sum(int(v[0].replace(",", "")) for v in channels.values()) == messages["totals"]["sent"]
    assert _text(browser, "#stat-msg-sent .stat-value") == _n(messages["totals"]["sent"], "건")
    phrases = _cells(browser, "#top-phrases")
    assert phrases == {
        p["phrase"]: [_n(i + 1), _n(p["count"], "건")]
        for i, p in enumerate(complaints["top_phrases"])
    }
    rate = _text(browser, "#stat-recall-rate .stat-note")
    assert "치과 평균 55~65%" in rate
    assert "최고 85%+" in rate

    assert _accessible(browser)["unlabeled"] == []
    assert browser.evaluate(NO_SIDEWAYS_SCROLL)
    assert browser.evaluate(CONTRAST) == []
    _shot(browser, tmp_path, "reports-1-monthly")

    # CSV: the button's download, caught as the blob it makes
    browser.evaluate(
        """(() => { const made = URL.createObjectURL.bind(URL);
          URL.createObjectURL = (blob) => { window.__csv = blob; return made(blob); }; })()"""
    )
    browser.focus("#csv-complaints")
    browser.press("Enter", key_code=13, text="\r")
    browser.wait_for("!!window.__csv")
    csv_text = browser.evaluate(
        """window.__csv.arrayBuffer().then((b) => {
          const bytes = new Uint8Array(b);
          return { bom: [...bytes.slice(0, 3)], type: window.__csv.type,
                   text: new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes) };
        })"""
    )
    assert csv_text["bom"] == [0xEF, 0xBB, 0xBF]
    assert csv_text["type"].startswith("text/csv")
    assert csv_text["text"].startswith("\ufeff구분,항목,값,이전 기간\r\n")
    assert f"요약,접수 건수,{complaints['total']}," in csv_text["text"]
    browser.wait_for("document.getElementById('polite').textContent.includes('내려받았습니다')")

    # print: the menu and the controls go, the charts and tables stay
    browser.send("Emulation.setEmulatedMedia", {"media": "print"})
    assert browser.evaluate("getComputedStyle(document.getElementById('period-form')).display") == (
        "none"
    )
    assert browser.evaluate("getComputedStyle(document.querySelector('.topbar')).display") == "none"
    _shot(browser, tmp_path, "reports-2-print")
    browser.send("Emulation.setEmulatedMedia", {"media": ""})

    # the quarter picker: keyboard, then the quarterly report
    browser.set_value("#period-form select[name='kind']", "quarter")
    browser.evaluate(
        "document.querySelector(\"#period-form select[name='kind']\")"
        ".dispatchEvent(new Event('change'))"
    )
    quarter = f"Q{(now.month - 1) // 3 + 1}"
    browser.set_value("#period-form select[name='quarter']", quarter)
    browser.click("#period-form button[type='submit']")
    browser.wait_for(f"window.location.hash === '#/reports/{now.year}-{quarter}'")
    browser.wait_for(
        f"document.getElementById('screen-title').textContent.includes('{quarter[1]}분기')"
        " && document.getElementById('main').dataset.charts > 0",
        timeout=20,
    )
    quarterly = _api(stack, "reports/complaints", f"{now.year}-{quarter}")
    expected = json.dumps(_n(quarterly["total"], "건"))
    # the monthly screen's charts count until the quarterly one replaces it: wait for its figure
    browser.wait_for(
        "(document.querySelector('#stat-total .stat-value') || {}).textContent === " + expected,
        timeout=20,
    )
    _shot(browser, tmp_path, "reports-3-quarterly")


def test_department_staff_see_their_department_only(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    now = _stack_now(stack)
    period = f"{now.year}-{now.month:02d}"
    browser.navigate(f"{stack.url}/console/")
    _sign_in(browser, stack, "department_staff", "dental")
    browser.evaluate(f"window.location.hash = '#/reports/{period}'")
    browser.wait_for("document.getElementById('main').dataset.charts > 0", timeout=20)
    assert browser.evaluate("!document.getElementById('report-messages')")
    departments = _cells(browser, "#chart-department-table")
    assert set(departments) <= {"치과"}
    tags = set(_cells(browser, "#chart-recall-table"))
    assert "임플란트 식립" in tags
    assert not tags & {"보톡스", "레이저 토닝"}
    assert browser.evaluate(CONTRAST) == []
    _shot(browser, tmp_path, "reports-4-dental")


def test_reception_sees_the_complaint_report_of_the_front_desk(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    browser.navigate(f"{stack.url}/console/")
    _sign_in(browser, stack, "reception", "front_desk")
    browser.evaluate("window.location.hash = '#/reports'")
    browser.wait_for("document.getElementById('main').dataset.charts > 0", timeout=20)
    assert browser.evaluate("!document.getElementById('report-recall')")
    assert browser.evaluate("!document.getElementById('report-messages')")
    assert set(_cells(browser, "#chart-department-table")) <= {"원무과"}
    assert "원무과" in _text(browser, "#screen-title")
