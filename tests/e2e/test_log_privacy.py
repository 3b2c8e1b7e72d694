"""No personal data in any log line: a whole day of the local stack, every line it printed read.

The stack runs as `python -m sotong_local` in a subprocess (its own lines, every function's
Powertools log and metrics, tracebacks, warnings: all of it lands in one file). A patient is
registered, treated and written to; complaints arrive from the form with a name, a phone and an
e-mail, are tracked with their code (right and wrong), answered and resolved; patients text the
hospital (valid, unsigned, malformed and oversized webhooks, one that fails validation); delivery
reports arrive; every kind of validation error is sent. Then no line may hold the name, the
phone in any spelling, the e-mail address or a tracking code.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sotong.notify.providers.solapi import CUSTOM_FIELD_MESSAGE_ID, sign_webhook
from tests.e2e.test_local_stack import Running, start_stack, stop_stack

pytestmark = pytest.mark.e2e

HTTP = requests.Session()
HTTP.trust_env = False
WEBHOOK_SECRET = "local-hmac_key"  # the placeholder the local stack gives sotong/demo/webhook

NAME = "윤하늘"
PHONE = "010-7319-2846"
EMAIL = "haneul.yoon77@example.org"
OTHER_NAME = "마동석"
OTHER_PHONE = "010-6602-9153"
OTHER_EMAIL = "dongseok.ma@example.net"
STRANGER_PHONE = "010-4187-5520"  # texts the hospital without being a patient
NEWCOMER_PHONE = "010-5238-0417"  # whose first message is nothing but control characters


def spellings(phone: str) -> list[str]:
    """Every way a log could spell the number, except the masked `*******2846` form."""
    digits = phone.replace("-", "")
    middle, last = digits[3:-4], digits[-4:]
    return [
        phone,
        digits,
        "+82" + digits[1:],
        "82" + digits[1:],
        digits[1:],
        f"{middle}-{last}",
        f"{middle} {last}",
        f"{middle}{last}",
        f"%2B82{digits[1:]}",
        f"{digits[:3]}.{middle}.{last}",
    ]


def forbidden(codes: list[str]) -> dict[str, str]:
    """What must not appear -> why."""
    found: dict[str, str] = {}
    for who, name, phone, email in (
        ("patient", NAME, PHONE, EMAIL),
        ("other patient", OTHER_NAME, OTHER_PHONE, OTHER_EMAIL),
        ("sender", "", STRANGER_PHONE, ""),
        ("newcomer", "", NEWCOMER_PHONE, ""),
    ):
        if name:
            found[name] = f"{who}'s name"
        for spelling in spellings(phone):
            found[spelling] = f"{who}'s phone"
        if email:
            local = email.split("@")[0]
            found[email] = f"{who}'s e-mail"
            found[local] = f"{who}'s e-mail (local part)"
    for code in codes:
        found[code] = "tracking code"
        found[code.replace("-", "")] = "tracking code"
        found[code.replace("-", "%2D")] = "tracking code"
    return found


@pytest.fixture(params=["compact", "json"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Running]:
    """The stack as `make run` starts it (compact lines), and with the functions' JSON log lines
    kept whole, every field of them, as CloudWatch receives them."""
    extra = ("--log-format", "json") if request.param == "json" else ()
    running = start_stack(tmp_path, *extra)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            stop_stack(running)
        running.log.close()


def _token(api: str, **body: Any) -> dict[str, str]:
    answer = HTTP.post(f"{api}/_local/token", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def _webhook(api: str, path: str, events: Any, *, sign: bool = True) -> requests.Response:
    body = events if isinstance(events, bytes) else json.dumps(events, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if sign:
        headers.update(sign_webhook(body, WEBHOOK_SECRET))
    return HTTP.post(f"{api}{path}", data=body, headers=headers, timeout=20)


def _inbound(phone: str, text: str, message_id: str | None, kind: str = "SMS") -> dict[str, Any]:
    data: dict[str, Any] = {"from": phone, "to": "025550100", "text": text, "type": kind}
    if message_id:
        data["messageId"] = message_id
    return {"eventDataId": f"e-{message_id}", "data": data}


def _day(stack: Running) -> list[str]:
    """Everything a hospital's day sends through the stack; returns the tracking codes."""
    api = stack.url
    admin = _token(api, username="privacy.admin", role="cs_admin")
    codes: list[str] = []

    # Staff register two patients, with e-mail and chart number, and record treatments.
    patient = HTTP.post(
        f"{api}/patients",
        json={
            "name": NAME,
            "phone": PHONE,
            "email": EMAIL,
            "chart_no": "C-73192",
            "consents": {"contact": True, "marketing": True},
        },
        headers=admin,
        timeout=10,
    )
    assert patient.status_code in (200, 201), patient.text
    pid = patient.json()["id"]
    other = HTTP.post(
        f"{api}/patients",
        json={"name": OTHER_NAME, "phone": OTHER_PHONE, "email": OTHER_EMAIL},
        headers=admin,
        timeout=10,
    )
    assert other.status_code in (200, 201), other.text
    today = time.strftime("%Y-%m-%d")
    treated = HTTP.post(
        f"{api}/patients/{pid}/treatments",
        json={"tag": "extraction", "date": today},
        headers=admin,
        timeout=10,
    )
    assert treated.status_code in (200, 201), treated.text
    HTTP.get(f"{api}/patients/{pid}", headers=admin, timeout=10)
    HTTP.get(f"{api}/patients/{pid}/touchpoints", headers=admin, timeout=10)
    # A reply into the patient's conversation (a recall was recently planned for them).
    HTTP.post(
        f"{api}/patients/{pid}/conversation",
        json={"message": f"{NAME}님, 내일 오전 10시에 오시면 됩니다."},
        headers=admin,
        timeout=10,
    )

    # Complaints from the form and from staff, with every kind of contact detail in them.
    for contact, text in (
        (
            {"name": NAME, "phone": PHONE, "email": EMAIL},
            f"접수 대기시간이 1시간이 넘었습니다. {NAME}, 연락처 {PHONE}, {EMAIL}",
        ),
        ({"name": OTHER_NAME, "email": OTHER_EMAIL}, "주차장 안내가 없어 30분을 헤맸습니다."),
    ):
        answer = HTTP.post(
            f"{api}/complaints",
            json={"text": text, "contact": contact, "consent_to_contact": True},
            headers={"Idempotency-Key": f"privacy-{len(codes)}"},
            timeout=10,
        )
        assert answer.status_code in (200, 201), answer.text
        codes.append(answer.json()["tracking_code"])
    entered = HTTP.post(
        f"{api}/staff/complaints",
        json={
            "kind": "complaint",
            "text": f"전화 문의: {OTHER_NAME}님({OTHER_PHONE})이 수납 오류를 말씀하셨습니다.",
            "contact": {"name": OTHER_NAME, "phone": OTHER_PHONE},
            "consent_to_contact": True,
            "channel": "phone",
        },
        headers=admin,
        timeout=10,
    )
    assert entered.status_code in (200, 201), entered.text
    if "tracking_code" in entered.json():
        codes.append(entered.json()["tracking_code"])

    # Patients track their complaints: right, wrong last 4, a lower-case spelling.
    last4 = PHONE[-4:]
    for code, digits in ((codes[0], last4), (codes[0], "0000"), (codes[0].lower(), last4)):
        HTTP.get(f"{api}/track/{code}", params={"phone_last4": digits}, timeout=10)
    HTTP.get(f"{api}/pages/track.html", params={"code": codes[0]}, timeout=10)

    # Staff work the inbox: read, reply, resolve (free text with the patient's name in it).
    inbox = HTTP.get(f"{api}/inbox", headers=admin, timeout=10)
    assert inbox.status_code == 200, inbox.text
    for item in inbox.json().get("items", []):
        HTTP.get(f"{api}/complaints/{item['id']}", headers=admin, timeout=10)
    first = next(i["id"] for i in inbox.json().get("items", []) if i.get("code") == codes[0])
    HTTP.post(
        f"{api}/complaints/{first}/replies",
        json={"message": f"{NAME}님, 담당 부서에서 확인 중입니다. 문의 {PHONE}"},
        headers=admin,
        timeout=10,
    )
    HTTP.post(
        f"{api}/complaints/{first}/resolve",
        json={"outcome": "접수 창구에 대기 안내 화면을 설치했습니다.", "note": f"{NAME} 통화"},
        headers=admin,
        timeout=10,
    )
    HTTP.get(f"{api}/messages", headers=admin, timeout=10)
    HTTP.get(f"{api}/outbox", headers=admin, timeout=10)

    # Patients text the hospital: a reply, a complaint, an opt-out, repeats, odd ones.
    text = f"{NAME}입니다. 제 번호 {PHONE}, 메일 {EMAIL} 로 연락 주세요. 발치 후 피가 나요"
    messages = [
        _inbound(PHONE, text, "priv-1"),
        _inbound(PHONE, text, "priv-1"),  # the provider retried
        _inbound(STRANGER_PHONE, f"주차장이 너무 좁아요. {OTHER_NAME} 드림 {EMAIL}", "priv-2"),
        _inbound(OTHER_PHONE, "수신거부", "priv-3", kind="ATA"),
        _inbound(STRANGER_PHONE, "\x00" * 6, "priv-4"),
        _inbound(STRANGER_PHONE, "\u202e" + NAME + " " * 3, None),
        _inbound("+82" + STRANGER_PHONE[1:].replace("-", ""), "ab", "x" * 300),
        _inbound("02-555-0100", f"{NAME} {EMAIL}", "priv-5"),  # from a landline
    ]
    for answer in (
        _webhook(api, "/webhooks/inbound", messages),
        _webhook(api, "/webhooks/inbound", messages[:2], sign=False),
        _webhook(api, "/webhooks/inbound", f'[{{"from": "{PHONE}", "text": "'.encode()),
        _webhook(api, "/webhooks/inbound", [{"data": {"from": PHONE, "text": 5}}]),
        _webhook(api, "/webhooks/inbound", [_inbound(PHONE, NAME, f"m{i}") for i in range(101)]),
    ):
        assert answer.status_code < 500, answer.text
    # A first message that the complaint model refuses (its text is empty once control
    # characters are dropped): a pydantic error inside the handler, whose text repeats the
    # input. Whatever its status (the hostile-input work decides), its log must not.
    _webhook(
        api,
        "/webhooks/inbound",
        [_inbound(NEWCOMER_PHONE, "\x00" * 6, "priv-6")],
    )
    # Delivery reports for what was sent, one opt-out through the 080 number.
    deadline = time.monotonic() + 10
    while True:
        sent = HTTP.get(f"{api}/_local/outbox", params={"limit": 50}, timeout=10).json()
        if len(sent) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert sent, "the queue consumer sent the day's messages"
    reports = [
        {
            "data": {
                "messageId": f"P{i}",
                "to": PHONE if i % 2 else OTHER_PHONE,
                "from": "025550100",
                "statusCode": "4000" if i % 3 else "3059",
                "type": "ATA",
                "customFields": {CUSTOM_FIELD_MESSAGE_ID: entry["message_id"]},
                "text": entry.get("text", ""),
            }
        }
        for i, entry in enumerate(sent[:10])
    ]
    reports.append({"data": {"messageId": "P-out", "to": OTHER_PHONE, "statusCode": "3104"}})
    applied = _webhook(api, "/webhooks/reports", reports)
    assert applied.status_code == 200, applied.text
    assert applied.json()["applied"] > 0, applied.text
    for answer in (
        _webhook(api, "/webhooks/reports", reports),
        _webhook(api, "/webhooks/reports", reports, sign=False),
        _webhook(api, "/webhooks/reports", b"{not json"),
    ):
        assert answer.status_code < 500, answer.text

    # Validation errors carrying personal data in the rejected values.
    for path, body, headers in (
        ("/complaints", {"text": NAME, "contact": {"name": NAME, "phone": PHONE}}, {}),
        (
            "/complaints",
            {
                "text": "대기시간이 너무 길었습니다.",
                "contact": {"name": NAME, "phone": PHONE + "9", "email": EMAIL + "@"},
                "consent_to_contact": "yes",
            },
            {},
        ),
        ("/patients", {"name": NAME, "phone": "02-" + PHONE, "email": EMAIL + "@x"}, admin),
        ("/patients", {"name": NAME * 20, "phone": PHONE, "nickname": NAME}, admin),
        ("/survey", {"code": codes[0], "token": EMAIL, "score": "5"}, {}),
        (f"/patients/{pid}/conversation", {"message": "", "to": PHONE}, admin),
        (f"/complaints/{first}/replies", {"message": NAME * 400}, admin),
    ):
        answer = HTTP.post(f"{api}{path}", json=body, headers=headers, timeout=10)
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)
    HTTP.post(
        f"{api}/complaints",
        data=f'{{"text": "{NAME} {PHONE}'.encode(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    HTTP.get(f"{api}/track/{codes[1]}", params={"phone_last4": "12a4"}, timeout=10)
    HTTP.get(f"{api}/inbox", params={"q": PHONE, "email": EMAIL}, headers=admin, timeout=10)
    HTTP.get(f"{api}/inbox", params={"recipient_phone": PHONE}, timeout=10)  # no token: 401

    # The care modules: a programme code and a wrong one, a referral naming the other patient's
    # child with the patient as guardian, a care case with the patient as its contact.
    sent = HTTP.post(f"{api}/programmes/codes", json={"phone": PHONE}, timeout=10)
    assert sent.status_code < 300, sent.text
    wrong = HTTP.post(
        f"{api}/programmes/healing_cafe/offers",
        json={"phone": PHONE, "code": "000000"},
        timeout=10,
    )
    assert 400 <= wrong.status_code < 500, wrong.text
    referral = HTTP.post(
        f"{api}/referrals",
        json={
            "child": {"birth_date": "2022-05-01", "name": OTHER_NAME},
            "guardian": {"consent_to_contact": True, "name": NAME, "phone": PHONE},
            "reason": "발열 이틀째, 수분 섭취 저하",
            "urgency": "urgent",
            "partner_id": "hanbit-peds",
        },
        headers=admin,
        timeout=10,
    )
    assert referral.status_code < 300, referral.text
    case = HTTP.post(
        f"{api}/care/cases",
        json={
            "consent_to_contact": True,
            "contact": {"name": NAME, "phone": PHONE, "relation": "self"},
            "department": "dental",
            "name": NAME,
            "summary": "홀몸 어르신, 주 3회 외래 치료 후 어지럼증",
        },
        headers=admin,
        timeout=10,
    )
    assert case.status_code < 300, case.text
    bad_case = HTTP.post(
        f"{api}/care/cases",
        json={"contact": {"name": NAME, "phone": PHONE + "x"}, "name": NAME},
        headers=admin,
        timeout=10,
    )
    assert 400 <= bad_case.status_code < 500, bad_case.text

    # The queue consumers send what the day queued (acknowledgements, replies, outcomes).
    time.sleep(4)
    HTTP.get(f"{api}/_local/outbox", timeout=10)
    return codes


def test_no_personal_data_in_any_log_line(stack: Running) -> None:
    codes = _day(stack)
    stop_stack(stack)
    output = stack.output()
    lines = output.splitlines()
    assert len(lines) > 50, output  # the run did log: requests, functions, metrics
    assert any("/track/" in line for line in lines), "the request log is there"
    assert any("provider_webhook" in line for line in lines)
    leaks = [
        f"{why} ({term!r}) in: {line}"
        for line in lines
        for term, why in forbidden(codes).items()
        if term.lower() in line.lower()
    ]
    assert not leaks, "\n".join(leaks[:40])
    # The masked forms are what a reader sees instead.
    assert not re.search(r"phone_last4=\d", output), "the tracking page's last 4 digits"
