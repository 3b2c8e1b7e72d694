"""Support programmes through the functions on moto, each held to its grants
(`-p tests.iam_guard`): a patient with a chemotherapy day recorded by staff signs up with a code
read from the outbox and is offered the sessions off that day; staff of the department see the
roster and record attendance; the notices schedule reminds once; the export is valid FHIR."""

from __future__ import annotations

import importlib
import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.healthcareservice import HealthcareService

from sotong import clock
from sotong.notify import txoutbox
from sotong.resources import function
from sotong_local.lambdas import LambdaContext
from tests.integration.api import ADMIN, DENTAL, call

KST = ZoneInfo("Asia/Seoul")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=KST)
ONCOLOGY = {"cognito:username": "onc.jung", "cognito:groups": "department_staff,dept-oncology"}
PHONE = "010-5550-1234"


def requests() -> list[dict[str, Any]]:
    pending = txoutbox.pending(NOW + timedelta(days=3650), limit=1_000)
    return [json.loads(p["request"]) for p in pending]


def _code() -> str:
    codes = [r for r in requests() if r["template_id"] == "programme_code"]
    return str(codes[-1]["variables"]["code"])


def _chemo_patient() -> str:
    registered = call(
        "POST",
        "/patients",
        {"name": "김하나", "phone": PHONE, "chart_no": "ONC-1001", "consents": {"contact": True}},
        claims=ADMIN,
    )
    assert registered.status == 201, registered.body
    pid = registered.body["id"]
    treated = call(
        "POST",
        f"/patients/{pid}/treatments",
        {"tag": "chemotherapy", "date": "2026-12-08"},
        claims=ADMIN,
    )
    assert treated.status == 201, treated.body
    return str(pid)


def test_a_patient_signs_up_around_their_chemotherapy_day(aws: dict[str, str]) -> None:
    clock.fix(NOW)
    _chemo_patient()
    listed = call("GET", "/programmes")
    assert listed.status == 200
    assert next(p["id"] for p in listed.body["programmes"]) == "healing_cafe"

    sent = call("POST", "/programmes/codes", {"phone": PHONE})
    assert sent.status == 202, sent.body
    wrong = call("POST", "/programmes/healing_cafe/offers", {"phone": PHONE, "code": "12345"})
    assert wrong.status == 422
    assert wrong.body["fields"][0]["field"] == "body.code"
    offered = call("POST", "/programmes/healing_cafe/offers", {"phone": PHONE, "code": _code()})
    assert offered.status == 200, offered.body
    assert [a["starts_at"] for a in offered.body["avoided"]] == ["2026-12-08T05:00:00Z"]
    first = offered.body["sessions"][0]
    signed = call(
        "POST",
        "/programmes/healing_cafe/signups",
        {
            "token": offered.body["token"],
            "starts_at": first["starts_at"],
            "name": "김하나",
            "consent_to_contact": True,
        },
    )
    assert signed.status == 201, signed.body
    assert signed.body["status"] == "confirmed"
    assert "programme_confirmed" in [r["template_id"] for r in requests()]
    clash = call(
        "POST",
        "/programmes/healing_cafe/signups",
        {
            "token": offered.body["token"],
            "starts_at": "2026-12-08T05:00:00Z",
            "name": "김하나",
            "consent_to_contact": True,
        },
    )
    assert clash.status == 409
    assert clash.body["field"] == "body.starts_at"
    no_consent = call(
        "POST",
        "/programmes/healing_cafe/signups",
        {
            "token": offered.body["token"],
            "starts_at": first["starts_at"],
            "name": "김하나",
            "consent_to_contact": False,
        },
    )
    assert no_consent.status == 400
    assert no_consent.body["field"] == "body.consent_to_contact"

    # staff: the oncology department and the CS admin, not dental
    roster = call("GET", "/programmes/healing_cafe/roster", claims=ONCOLOGY)
    assert roster.status == 200, roster.body
    (session,) = roster.body["sessions"]
    assert session["confirmed"] == 1
    assert call("GET", "/programmes/healing_cafe/roster", claims=DENTAL).status == 403
    clock.fix(datetime(2026, 12, 1, 15, 0, tzinfo=KST))
    came = call(
        "POST",
        "/programmes/healing_cafe/attendance",
        {
            "signup_id": session["signups"][0]["signup_id"],
            "starts_at": first["starts_at"],
            "attended": True,
        },
        claims=ONCOLOGY,
    )
    assert came.status == 200, came.body
    assert came.body["attendance"] == "attended"

    exported = call("GET", "/programmes/healing_cafe/export", claims=ADMIN)
    assert exported.status == 200
    HealthcareService.model_validate(exported.body["healthcare_service"])
    Bundle.model_validate(exported.body["appointments"])
    entries = exported.body["appointments"]["entry"]
    assert [Appointment.model_validate(e["resource"]).status for e in entries] == ["fulfilled"]

    cancelled = call(
        "POST", "/programmes/cancellations", {"cancel_token": signed.body["cancel_token"]}
    )
    assert cancelled.status == 409  # the session has started


def test_the_notices_schedule_reminds_the_day_before_once(aws: dict[str, str]) -> None:
    clock.fix(NOW)
    signed = call("POST", "/programmes/codes", {"phone": PHONE})
    assert signed.status == 202
    offered = call("POST", "/programmes/family_circle/offers", {"phone": PHONE, "code": _code()})
    assert offered.status == 200, offered.body
    session = offered.body["sessions"][0]  # Saturday 5 December, 10:00
    call(
        "POST",
        "/programmes/family_circle/signups",
        {
            "token": offered.body["token"],
            "starts_at": session["starts_at"],
            "name": "보호자",
            "consent_to_contact": True,
        },
    )
    module = importlib.import_module("programme_notices")
    context = LambdaContext(function("programme_notices"))
    clock.fix(datetime(2026, 12, 4, 18, 30, tzinfo=KST))
    assert module.handler({}, context)["reminders"] == 1
    assert module.handler({}, context)["reminders"] == 0  # a rerun sends once
    reminders = [r for r in requests() if r["template_id"] == "programme_reminder"]
    assert len(reminders) == 1
    assert reminders[0]["variables"]["when"] == "12월 5일(토) 10:00"


def test_every_4xx_names_its_field(aws: dict[str, str]) -> None:
    clock.fix(NOW)
    for method, path, body in (
        ("POST", "/programmes/codes", {"phone": "02-555-0100"}),
        ("POST", "/programmes/codes", {}),
        ("POST", "/programmes/nope/offers", {"phone": PHONE, "code": "123456"}),
        ("POST", "/programmes/healing_cafe/offers", {"phone": PHONE, "code": "123456"}),
        ("POST", "/programmes/healing_cafe/signups", {"token": "x" * 20}),
        ("POST", "/programmes/cancellations", {"cancel_token": "x" * 20}),
    ):
        answer = call(method, path, body)
        assert 400 <= answer.status < 500, (path, answer.body)
        named = answer.body.get("field") or answer.body.get("fields", [{}])[0].get("field")
        assert named, (path, answer.body)
    for _ in range(2):
        call("POST", "/programmes/codes", {"phone": PHONE})
    limited = call("POST", "/programmes/codes", {"phone": PHONE})
    assert limited.status == 202
    limited = call("POST", "/programmes/codes", {"phone": PHONE})
    assert limited.status == 429
    assert limited.body["field"] == "body.phone"


def test_erasing_the_patient_takes_their_signups_and_frees_the_seat(aws: dict[str, str]) -> None:
    clock.fix(NOW)
    pid = _chemo_patient()
    call("POST", "/programmes/codes", {"phone": PHONE})
    offered = call("POST", "/programmes/healing_cafe/offers", {"phone": PHONE, "code": _code()})
    first = offered.body["sessions"][0]
    signed = call(
        "POST",
        "/programmes/healing_cafe/signups",
        {
            "token": offered.body["token"],
            "starts_at": first["starts_at"],
            "name": "김하나",
            "consent_to_contact": True,
        },
    )
    assert signed.status == 201
    erased = call("DELETE", f"/patients/{pid}", claims=ADMIN)
    assert erased.status == 200, erased.body
    assert erased.body["removed"]["programme_signups"] == 1
    roster = call("GET", "/programmes/healing_cafe/roster", claims=ADMIN)
    assert roster.body["sessions"] == []
    listed = call("GET", "/programmes")
    cafe = listed.body["programmes"][0]
    seats = {s["starts_at"]: s["seats_left"] for s in cafe["next_sessions"]}
    assert seats[first["starts_at"]] == 12


def test_the_page_runs_no_inline_script_and_carries_the_security_headers(
    aws: dict[str, str],
) -> None:
    from sotong.web.headers import page_csp

    page = call("GET", "/pages/programmes.html")
    assert page.status == 200
    assert '<script src="programmes.js" defer></script>' in page.body
    assert "<script>" not in page.body  # no inline script: the CSP allows only 'self'
    directives = dict(d.split(" ", 1) for d in page_csp(page.body).split("; "))
    assert directives["script-src"] == "'self'"
    assert 'lang="ko"' in page.body
    assert 'name="viewport"' in page.body
    script = call("GET", "/pages/programmes.js")
    assert script.status == 200
    assert "../programmes" in script.body
