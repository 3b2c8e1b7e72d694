"""The care network over its functions (`network_api`, `referral_sweeper`) on moto, every DynamoDB
call held to their grants (`-p tests.iam_guard`): who is open on 설날 at 21:00 (public), the
directory as HSDS 3 and FHIR `HealthcareService`, a referral's closed loop with the guardian told
through the outbox, partners kept to their own organisation, the FHIR `ServiceRequest` + `Task`,
the escalation of an unanswered urgent referral, and the monthly report."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from sotong import clock
from sotong.notify import txoutbox
from sotong.resources import function
from sotong_local.lambdas import LambdaContext
from tests.integration.api import ADMIN, DENTAL, QI, call

KST = ZoneInfo("Asia/Seoul")
HANBIT = {"cognito:username": "peds.kim", "cognito:groups": "partner,org-hanbit-peds"}
NIGHT = {"cognito:username": "night.park", "cognito:groups": "partner,org-sarang-night-peds"}
SEOLLAL_9PM = datetime(2027, 2, 7, 21, 0, tzinfo=KST)


@pytest.fixture
def env(aws: dict[str, str]) -> dict[str, str]:
    clock.fix(SEOLLAL_9PM - timedelta(minutes=30))
    return aws


def referral_body(**overrides: Any) -> dict[str, Any]:
    return {
        "urgency": "urgent",
        "reason": "38.9도 발열 이틀째, 수분 섭취 저하",
        "child": {"name": "김하준", "birth_date": "2022-05-01"},
        "guardian": {"name": "박지은", "phone": "010-2345-6789", "consent_to_contact": True},
        **overrides,
    }


def outbox_templates() -> list[str]:
    pending = txoutbox.pending(clock.now() + timedelta(days=3650), limit=1_000)
    requests = [json.loads(p["request"]) for p in pending]
    return sorted(r["template_id"] for r in requests)


def test_who_is_open_on_seollal_at_nine_pm_without_a_sign_in(env: dict[str, str]) -> None:
    answer = call("GET", "/network/open", query={"at": SEOLLAL_9PM.isoformat()})
    assert answer.status == 200, answer.body
    assert answer.body["holiday"]
    assert {e["id"] for e in answer.body["open"]} == {
        "dalbit-children",
        "dalbit-pharmacy",
        "open24-pharmacy",
    }
    assert all(e["phone"] for e in answer.body["open"])
    bad = call("GET", "/network/open", query={"at": "tomorrow"})
    assert bad.status == 422
    assert bad.body["fields"][0]["field"] == "query.at"
    kind = call("GET", "/network/open", query={"kind": "dentist"})
    assert kind.status == 422
    assert kind.body["fields"][0]["field"] == "query.kind"


def test_the_directory_exports_as_hsds_and_fhir(env: dict[str, str]) -> None:
    hsds = call("GET", "/network/directory").body
    assert len(hsds["organizations"]) == 12
    schedule = hsds["organizations"][0]["services"][0]["schedules"][0]
    assert {"freq", "byday", "opens_at", "closes_at", "service_id"} <= set(schedule)
    bundle = call("GET", "/network/services").body
    Bundle.model_validate(bundle)
    services = [HealthcareService.model_validate(e["resource"]) for e in bundle["entry"]]
    saebom = next(s for s in services if s.id == "saebom-peds")
    assert saebom.notAvailable
    assert any("설날" in (n.description or "") for n in saebom.notAvailable)
    dalbit = next(s for s in services if s.id == "dalbit-children")
    assert not dalbit.notAvailable  # open on holidays, with its hours in the exceptions
    assert "공휴일" in (dalbit.availabilityExceptions or "")


def test_a_referral_goes_round_the_loop_and_the_guardian_is_told(env: dict[str, str]) -> None:
    created = call("POST", "/referrals", referral_body(), claims=HANBIT)
    assert created.status == 201, created.body
    rid = created.body["id"]
    assert created.body["direction"] == "to_hospital"
    clock.fix(SEOLLAL_9PM - timedelta(minutes=20))
    accepted = call("POST", f"/referrals/{rid}/status", {"status": "accepted"}, claims=ADMIN)
    assert accepted.status == 200, accepted.body
    visit = {"status": "accepted", "scheduled_for": "2027-02-07T21:15:00+09:00"}
    assert call("POST", f"/referrals/{rid}/status", visit, claims=DENTAL).status == 200
    clock.fix(SEOLLAL_9PM + timedelta(minutes=15))
    started = call("POST", f"/referrals/{rid}/status", {"status": "in-progress"}, claims=DENTAL)
    assert started.status == 200, started.body
    clock.fix(SEOLLAL_9PM + timedelta(minutes=45))
    done = call("POST", f"/referrals/{rid}/status", {"status": "completed"}, claims=DENTAL)
    assert done.body["status"] == "completed"
    assert outbox_templates() == sorted(
        ["referral_sent", "referral_accepted", "referral_scheduled", "referral_completed"]
    )
    # a wrong step names the allowed ones; a bad body names the field
    again = call("POST", f"/referrals/{rid}/status", {"status": "accepted"}, claims=ADMIN)
    assert again.status == 409
    assert again.body["field"] == "body.status"
    bad = call("POST", f"/referrals/{rid}/status", {"status": "done"}, claims=ADMIN)
    assert bad.status == 422
    assert bad.body["fields"][0]["field"] == "body.status"
    # the partner sees it and reads it as FHIR: a ServiceRequest and its Task
    bundle = call("GET", f"/referrals/{rid}/fhir", claims=HANBIT)
    assert bundle.status == 200, bundle.body
    Bundle.model_validate(bundle.body)
    request = ServiceRequest.model_validate(bundle.body["entry"][0]["resource"])
    task = Task.model_validate(bundle.body["entry"][1]["resource"])
    assert request.priority == "urgent"
    assert request.status == "completed"
    assert task.status == "completed"
    assert task.businessStatus is not None
    assert task.restriction is not None
    assert task.output
    # the monthly report (hospital staff and QI, not partners)
    report = call("GET", "/reports/network", query={"period": "2027-02"}, claims=QI)
    assert report.status == 200, report.body
    row = report.body["rows"][0]
    assert row["partner_id"] == "hanbit-peds"
    assert row["median_minutes_to_accept"] == 10.0
    assert row["median_minutes_to_be_seen"] == 45.0
    assert call("GET", "/reports/network", query={"period": "2027-02"}, claims=HANBIT).status == 403


def test_partners_reach_only_their_own_organisations_referrals(env: dict[str, str]) -> None:
    mine = call("POST", "/referrals", referral_body(), claims=HANBIT).body["id"]
    theirs = call("POST", "/referrals", referral_body(), claims=NIGHT).body["id"]
    to_hanbit = call(
        "POST", "/referrals", referral_body(partner_id="hanbit-peds"), claims=ADMIN
    ).body["id"]
    listed = call("GET", "/referrals", claims=HANBIT).body["referrals"]
    assert {r["id"] for r in listed} == {mine, to_hanbit}
    for method, tail, body in (
        ("GET", "", None),
        ("GET", "/fhir", None),
        ("POST", "/status", {"status": "cancelled"}),
    ):
        answer = call(method, f"/referrals/{theirs}{tail}", body, claims=HANBIT)
        assert answer.status == 404, answer.body
        assert answer.body["field"] == "path.referral_id"
    hospital = call("GET", "/referrals", query={"month": "2027-02"}, claims=ADMIN).body
    assert len(hospital["referrals"]) == 3
    other = call("POST", "/referrals", referral_body(partner_id="sarang-night-peds"), claims=HANBIT)
    assert other.status == 403
    assert other.body["field"] == "body.partner_id"
    missing = call("POST", "/referrals", referral_body(guardian={"name": "박"}), claims=HANBIT)
    assert missing.status == 422
    assert {f["field"] for f in missing.body["fields"]} == {
        "body.guardian.phone",
        "body.guardian.consent_to_contact",
    }


def test_an_unanswered_emergent_referral_pages_on_call_once(env: dict[str, str]) -> None:
    import referral_sweeper

    rid = call("POST", "/referrals", referral_body(urgency="emergent"), claims=HANBIT).body["id"]
    context = LambdaContext(function("referral_sweeper"))
    clock.fix(clock.now() + timedelta(minutes=20))
    assert referral_sweeper.handler({}, context) == {"escalated": 0}
    clock.fix(clock.now() + timedelta(minutes=15))
    assert referral_sweeper.handler({}, context) == {"escalated": 1}
    assert referral_sweeper.handler({}, context) == {"escalated": 0}
    assert outbox_templates().count("staff_alert") == 1
    assert call("GET", f"/referrals/{rid}", claims=ADMIN).body["escalated_at"]


def test_the_guardians_page_is_served_with_its_script_and_no_inline_script(
    env: dict[str, str],
) -> None:
    page = call("GET", "/pages/open-now.html")
    assert page.status == 200
    assert "<script>" not in page.body
    assert '<script src="open-now.js"></script>' in page.body
    assert 'lang="ko"' in page.body
    script = call("GET", "/pages/open-now.js")
    assert script.status == 200
    assert "../network/open" in script.body
