"""Erasure (PIPA) reaches the care network and the care plans, through the real handlers on moto
with every DynamoDB call held to the functions' grants: after `DELETE /patients/{id}` no
referral names the child or the guardian of the erased phone (the monthly network report still
counts them, anonymous), the care-plan case about the person is gone with its activities,
discussions, reviews, audit and the agencies' messages, and a case they are only the contact of
keeps its own person but loses them. Found by pointers keyed by the phone, never by a Scan (the
test Scans, only to prove absence)."""

from __future__ import annotations

import json
from typing import Any

from sotong import clock
from sotong.keys import recipient_key
from tests.integration.api import ADMIN, QI, call
from tests.integration.test_careplans_api import conference_body
from tests.integration.test_erasure import (
    EMAIL,
    NAME,
    PHONES,
    deliver,
    env,  # noqa: F401 - the fixture
    everything_stored,
    register,
)
from tests.integration.test_network_api import HANBIT

GUARDIAN = "홍엄마"
REASON = "38.9도 발열 이틀째, 수분 섭취 저하"
NOTE = "보호자 요청으로 취소합니다"
SUMMARY = "홀몸 어르신. 주 3회 외래 치료 후 어지럼증"
MOTHER = "홍어머니"
SIBLING = "홍동생"


def refer(
    child: str, guardian: str = GUARDIAN, phone: str = PHONES[0], reason: str = REASON
) -> str:
    body = {
        "urgency": "urgent",
        "reason": reason,
        "child": {"name": child, "birth_date": "2022-05-01"},
        "guardian": {"name": guardian, "phone": phone, "consent_to_contact": True},
    }
    answer = call("POST", "/referrals", body, claims=HANBIT)
    assert answer.status == 201, answer.body
    return str(answer.body["id"])


def open_case(name: str, contact: str, relation: str = "self", summary: str = SUMMARY) -> str:
    body = {
        "name": name,
        "department": "customer_service",
        "summary": summary,
        "contact": {"name": contact, "phone": PHONES[0], "relation": relation},
        "consent_to_contact": True,
    }
    answer = call("POST", "/care/cases", body, claims=ADMIN)
    assert answer.status == 201, answer.body
    return str(answer.body["id"])


def traces(text: str) -> list[str]:
    needles = [NAME, GUARDIAN, *PHONES[:3], EMAIL, "C-5678", REASON, NOTE, SUMMARY[:10]]
    return [needle for needle in needles if needle in text]


def test_an_erasure_reaches_the_referrals_and_care_plans_of_the_persons_phone(
    env: dict[str, str],  # noqa: F811
) -> None:
    pid = register().body["id"]

    # the child's referral, their guardian's phone the patient's; withdrawn with a note
    mine = refer(NAME)
    withdrawn = call(
        "POST", f"/referrals/{mine}/status", {"status": "cancelled", "note": NOTE}, claims=HANBIT
    )
    assert withdrawn.status == 200, withdrawn.body
    others = refer("김하준", guardian="박지은", phone="010-2345-6789", reason="기침")

    # a case about them with a conference's plan (the agencies' messages name them), and the
    # case of someone else they are the contact of
    case = open_case(NAME, NAME)
    held = call("POST", "/care/conferences", conference_body(case), claims=ADMIN)
    assert held.status == 201, held.body
    mothers = open_case(MOTHER, NAME, relation="아들", summary="어머니 낙상 후 재활")
    deliver(env)  # some messages sent (records), the rest still in the outbox
    call("POST", "/care/conferences", {**conference_body(mothers), "title": "2차"}, claims=ADMIN)
    assert set(traces(everything_stored())) >= {NAME, GUARDIAN, PHONES[2], REASON, NOTE}

    erased = call("DELETE", f"/patients/{pid}", claims=ADMIN)
    assert erased.status == 200, erased.body
    removed = erased.body["removed"]
    assert removed["referrals_anonymised"] == 1
    assert removed["care_cases"] == 1
    assert removed["care_activities"] == 5
    assert removed["care_discussions"] == 1
    assert removed["care_reviews"] == 2
    assert removed["care_audit_entries"] >= 8
    assert removed["care_case_contacts_unlinked"] == 1
    assert removed["message_records"] >= 1
    kept = erased.body["kept_counts"]
    assert (kept["referrals_anonymised"], kept["care_cases_erased"]) == (1, 1)
    assert not traces(json.dumps(erased.body, ensure_ascii=False))

    stored = everything_stored()
    assert not traces(stored), traces(stored)
    phone_key = recipient_key("demo", PHONES[2])
    assert f"REFGUARDIAN#{phone_key}" not in stored  # their pointers are gone
    assert f"CASECONTACT#{phone_key}" not in stored
    assert "REFGUARDIAN#" in stored  # the other guardian's stays

    # the referral is still counted, anonymous; the other guardian's is untouched
    left = call("GET", f"/referrals/{mine}", claims=ADMIN).body
    assert (left["child_name"], left["guardian_name"], left["guardian_phone"]) == ("", "", "")
    assert left["status"] == "cancelled"
    assert left["erased_at"]
    assert call("GET", f"/referrals/{others}", claims=ADMIN).body["child_name"] == "김하준"
    month = left["requested_at"][:7]
    report = call("GET", "/reports/network", query={"period": month}, claims=QI).body
    assert report["total"]["referrals"] == 2
    assert report["total"]["by_status"] == {"cancelled": 1, "requested": 1}

    # the case about them is gone; the mother's stays, without them
    assert call("GET", f"/care/cases/{case}", claims=ADMIN).status == 404
    theirs: dict[str, Any] = call("GET", f"/care/cases/{mothers}", claims=ADMIN).body
    assert theirs["name"] == MOTHER
    assert "contact_phone" not in theirs
    assert "contact_name" not in theirs
    assert theirs["contact_consent"] is False


def test_a_shared_phone_keeps_the_other_childs_referral(env: dict[str, str]) -> None:  # noqa: F811
    child = register().body["id"]
    parent = {"name": "홍부모", "phone": PHONES[0], "consents": {"contact": True}}
    assert call("POST", "/patients", parent, claims=ADMIN).status == 201
    mine, siblings = refer(NAME), refer(SIBLING)
    erased = call("DELETE", f"/patients/{child}", claims=ADMIN).body
    assert erased["removed"]["referrals_anonymised"] == 1
    assert erased["kept"]["referrals_and_care_cases_of_a_shared_phone"] != "none"
    assert call("GET", f"/referrals/{mine}", claims=ADMIN).body["child_name"] == ""
    kept = call("GET", f"/referrals/{siblings}", claims=ADMIN).body
    assert (kept["child_name"], kept["guardian_name"]) == (SIBLING, GUARDIAN)


def test_programme_signups_and_codes_leave_with_the_patient(aws: dict[str, str]) -> None:
    from tests.integration import test_programmes as programmes

    clock.fix(programmes.NOW)
    pid = programmes._chemo_patient()
    call("POST", "/programmes/codes", {"phone": programmes.PHONE})
    offered = call(
        "POST",
        "/programmes/healing_cafe/offers",
        {"phone": programmes.PHONE, "code": programmes._code()},
    )
    signed = call(
        "POST",
        "/programmes/healing_cafe/signups",
        {
            "token": offered.body["token"],
            "starts_at": offered.body["sessions"][0]["starts_at"],
            "name": "김하나",
            "consent_to_contact": True,
        },
    )
    assert signed.status == 201, signed.body
    call("POST", "/programmes/codes", {"phone": programmes.PHONE})  # a code still valid
    phone_key = recipient_key("demo", "+821055501234")
    assert f"SIGNUPBY#{phone_key}" in everything_stored()

    erased = call("DELETE", f"/patients/{pid}", claims=ADMIN)
    assert erased.status == 200, erased.body
    assert erased.body["removed"]["programme_signups"] == 1
    items = json.loads(everything_stored())
    # what stays on purpose: the consent audit, as proof (a keyed digest, without the patient)
    left = json.dumps([i for i in items if not i["pk"]["S"].startswith("CONSENT#")])
    for needle in ("김하나", "ONC-1001", "+821055501234", "010-5550-1234", phone_key, pid):
        assert needle not in left, needle
