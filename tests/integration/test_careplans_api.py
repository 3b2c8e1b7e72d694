"""Integrated care plans over moto through the real handlers (`careplans_api`,
`careplans_schedule`), every DynamoDB call held to the functions' grants (`-p tests.iam_guard`):
the article's case to a conference, the agencies told through the outbox, an agency updating
its own activity only, the 1-month review falling due, the audit and the FHIR export."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.bundle import Bundle

from sotong import clock
from sotong.notify import txoutbox
from sotong.resources import function
from sotong_local.lambdas import LambdaContext
from tests.integration.api import ADMIN, DENTAL, call

KST = ZoneInfo("Asia/Seoul")
START = datetime(2026, 12, 1, 10, 0, tzinfo=KST)
WELFARE = {"cognito:username": "welfare.lee", "cognito:groups": "agency,org-gangnam-welfare"}
HEALTH = {"cognito:username": "health.oh", "cognito:groups": "agency,org-gangnam-health"}
PLAN = [
    ("돌봄SOS 병원이동·동행 지원", "gangnam-care-sos", "2026-12-03"),
    ("보건소 건강동행서비스 연계", "gangnam-health", "2026-12-08"),
    ("복지관 식사배달 서비스 제공", "gangnam-welfare", "2026-12-04"),
    ("치매안심센터 치료비 지원 및 조호 물품 제공", "gangnam-dementia", "2026-12-15"),
    ("주거안심종합센터 주거상담소 주거 상향 지원", "gangnam-housing", "2026-12-31"),
]


@pytest.fixture
def care_env(aws: dict[str, str]) -> dict[str, str]:
    clock.fix(START)
    return aws


def pending() -> list[dict[str, Any]]:
    found = txoutbox.pending(START + timedelta(days=3650), limit=1_000)
    return [json.loads(p["request"]) for p in found]


def open_case(claims: dict[str, str] = ADMIN, department: str = "customer_service") -> str:
    body = {
        "name": "김영수",
        "department": department,
        "summary": "홀몸 어르신. 주 3회 외래 치료 후 어지럼증, 기억력 저하",
        "contact": {"name": "김영수", "phone": "010-3100-2001"},
        "consent_to_contact": True,
    }
    answer = call("POST", "/care/cases", body, claims=claims)
    assert answer.status == 201, answer.body
    return str(answer.body["id"])


def conference_body(case_id: str) -> dict[str, Any]:
    return {
        "title": "2026년 제1차 의료·돌봄 통합지원회의",
        "held_on": "2026-12-01",
        "place": "구청 3층 대회의실",
        "agencies_present": [agency for _, agency, _ in PLAN],
        "cases": [
            {
                "case_id": case_id,
                "decisions": [
                    {"text": text, "activities": [{"agency": agency, "title": text, "due": due}]}
                    for text, agency, due in PLAN
                ],
            }
        ],
    }


def run_schedule(at: datetime) -> dict[str, Any]:
    import careplans_schedule

    clock.fix(at)
    result: dict[str, Any] = careplans_schedule.handler(
        {}, LambdaContext(function("careplans_schedule"))
    )
    return result


def test_a_conference_plans_the_case_tells_the_agencies_and_reviews_it_a_month_on(
    care_env: dict[str, str],
) -> None:
    cid = open_case()
    held = call("POST", "/care/conferences", conference_body(cid), claims=ADMIN)
    assert held.status == 201, held.body
    again = call("POST", "/care/conferences", conference_body(cid), claims=ADMIN)
    assert again.status == 200
    assert again.body["id"] == held.body["id"]
    sent = pending()
    templates = sorted(r["template_id"] for r in sent)
    assert templates == sorted(
        ["care_task"] * 3 + ["care_task_email"] * 2 + ["care_plan_notice"]
    )  # once each, the second recording writing nothing
    notice = next(r for r in sent if r["template_id"] == "care_plan_notice")
    assert notice["variables"]["name"] == "김영수"
    assert "service" not in notice["variables"]  # the person's notice names no service

    view = call("GET", f"/care/cases/{cid}", claims=ADMIN).body
    assert len(view["activities"]) == 5
    assert [r["months"] for r in view["reviews"]] == [1, 3]
    assert call("GET", "/care/reviews", claims=ADMIN).body["reviews"] == []

    # a month on, 09:05 KST: the 1-month review falls due, the agencies hear of it once
    month = datetime(2027, 1, 1, 9, 5, tzinfo=KST)
    run_schedule(month - timedelta(days=1))  # sets the watermark; reminders fall due on the way
    report = run_schedule(month)
    assert report["reviews_due"] == 1
    assert report["messages"] == 5
    assert run_schedule(month + timedelta(minutes=15))["reviews_due"] == 0
    due = call("GET", "/care/reviews", claims=ADMIN).body["reviews"]
    assert [(r["case_id"], r["months"]) for r in due] == [(cid, 1)]
    reviews = [r for r in pending() if r["template_id"].startswith("care_review")]
    assert len(reviews) == 5
    done = call(
        "POST", f"/care/cases/{cid}/reviews/{due[0]['id']}/done", {"note": "안정"}, claims=ADMIN
    )
    assert done.status == 200, done.body
    audit = call("GET", f"/care/cases/{cid}", claims=ADMIN).body["audit"]
    assert {"review_due", "review_done", "conference"} <= {a["action"] for a in audit}


def test_an_agency_updates_only_its_own_activities(care_env: dict[str, str]) -> None:
    cid = open_case()
    call("POST", "/care/conferences", conference_body(cid), claims=ADMIN)
    mine = call("GET", "/care/activities", claims=WELFARE).body["activities"]
    assert [a["agency"] for a in mine] == ["gangnam-welfare"]
    meals = mine[0]["id"]
    moved = call(
        "POST",
        f"/care/cases/{cid}/activities/{meals}/status",
        {"status": "accepted", "note": "12/4부터 배달"},
        claims=WELFARE,
    )
    assert moved.status == 200, moved.body
    theirs = call("GET", "/care/activities", claims=HEALTH).body["activities"][0]["id"]
    other = call(
        "POST", f"/care/cases/{cid}/activities/{theirs}/status", {"status": "accepted"},
        claims=WELFARE,
    )  # fmt: skip
    assert other.status == 404
    assert other.body["field"] == "path.activity_id"
    assert call("GET", f"/care/cases/{cid}", claims=WELFARE).status == 403
    backwards = call(
        "POST", f"/care/cases/{cid}/activities/{meals}/status", {"status": "requested"},
        claims=WELFARE,
    )  # fmt: skip
    assert backwards.status == 409
    assert backwards.body["field"] == "body.status"
    audit = call("GET", f"/care/cases/{cid}", claims=ADMIN).body["audit"]
    change = next(a for a in audit if a["action"] == "activity_status")
    assert change["by"] == "welfare.lee"
    assert change["before"] == {"status": "requested"}
    assert change["after"] == {"status": "accepted", "note": "12/4부터 배달"}


def test_every_refusal_names_the_field(care_env: dict[str, str]) -> None:
    bad_department = call(
        "POST", "/care/cases", {"name": "김영수", "department": "nowhere"}, claims=ADMIN
    )
    assert (bad_department.status, bad_department.body["field"]) == (400, "body.department")
    missing = call("POST", "/care/cases", {"department": "dental"}, claims=ADMIN)
    assert missing.status == 422
    assert missing.body["fields"][0]["field"] == "body.name"
    cid = open_case()
    unknown = call(
        "POST", f"/care/cases/{cid}/activities",
        {"agency": "nowhere", "title": "방문", "due": "2026-12-09"}, claims=ADMIN,
    )  # fmt: skip
    assert (unknown.status, unknown.body["field"]) == (400, "body.agency")
    term = call(
        "POST", f"/care/cases/{cid}/activities",
        {"agency": "gangnam-care-sos", "title": "투석 후 귀가 동행", "due": "2026-12-09"},
        claims=ADMIN,
    )  # fmt: skip
    assert (term.status, term.body["field"]) == (422, "body.title")
    assert call("GET", f"/care/cases/{cid}", claims=DENTAL).status == 404  # not their department
    bad_id = call("GET", "/care/cases/nope", claims=ADMIN)
    assert bad_id.status == 422
    assert bad_id.body["fields"][0]["field"] == "path.case_id"


def test_the_fhir_export_validates(care_env: dict[str, str]) -> None:
    cid = open_case()
    call("POST", "/care/conferences", conference_body(cid), claims=ADMIN)
    exported = call("GET", f"/care/cases/{cid}/fhir", claims=ADMIN)
    assert exported.status == 200
    bundle = Bundle.model_validate_json(json.dumps(exported.body))
    kinds = [r["resource"]["resourceType"] for r in exported.body["entry"]]
    assert len(bundle.entry or []) == len(kinds)
    assert kinds.count("Task") == 5
    assert {"CarePlan", "CareTeam", "Patient", "Organization"} <= set(kinds)
