"""The role matrix (docs/roles.md) walked over the API: every staff route x every role, with the
status each must answer; then what department staff and reception may see once let in."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from sotong import clock, resources
from sotong.complaints.repository import DynamoComplaintRepository
from sotong.notify import outbox, records, txoutbox
from sotong.phone import mask_phone
from sotong.resources import NOTIFICATIONS
from tests.integration.api import ADMIN, DENTAL, DERMATOLOGY, DESK, QI, Answer, call
from tests.integration.test_notifications import run_sender

KST = ZoneInfo("Asia/Seoul")
PARTNER = {"cognito:username": "peds.kim", "cognito:groups": "partner,org-hanbit-peds"}
AGENCY = {"cognito:username": "welfare.lee", "cognito:groups": "agency,org-gangnam-welfare"}
ROLE_CLAIMS = {
    "cs_admin": ADMIN,
    "department_staff": DENTAL,
    "reception": DESK,
    "qi": QI,
    "partner": PARTNER,
    "agency": AGENCY,
}
DEPARTMENT = {"cs_admin": "dental", "department_staff": "dental", "reception": "front_desk"}

# Written out, not derived from resources.ROUTES: a careless edit of the routes' roles fails here.
A, D, R, Q = "cs_admin", "department_staff", "reception", "qi"
P, G = "partner", "agency"
EVERYONE, HANDLERS, REGISTRARS, CLINICAL, ADMIN_ONLY = (
    (A, D, R, Q),
    (A, D, R),
    (A, D, R),
    (A, D),
    (A,),
)
MATRIX: dict[tuple[str, str], tuple[str, ...]] = {
    ("GET", "/inbox"): EVERYONE,
    ("POST", "/staff/complaints"): HANDLERS,
    ("GET", "/complaints/{complaint_id}"): EVERYONE,
    ("POST", "/complaints/{complaint_id}/status"): HANDLERS,
    ("POST", "/complaints/{complaint_id}/assign"): HANDLERS,
    ("POST", "/complaints/{complaint_id}/classification"): HANDLERS,
    ("POST", "/complaints/{complaint_id}/replies"): HANDLERS,
    ("POST", "/complaints/{complaint_id}/resolve"): HANDLERS,
    ("POST", "/complaints/{complaint_id}/close"): HANDLERS,
    ("POST", "/complaints/{complaint_id}/reopen"): HANDLERS,
    ("GET", "/reports/complaints"): EVERYONE,
    ("GET", "/reports/recall"): (A, D, Q),
    ("GET", "/reports/messages"): (A, Q),
    ("GET", "/outbox"): ADMIN_ONLY,
    ("GET", "/messages"): HANDLERS,
    ("GET", "/messages/{message_id}"): ADMIN_ONLY,
    ("POST", "/patients"): REGISTRARS,
    ("GET", "/patients"): REGISTRARS,
    ("GET", "/patients/{patient_id}"): REGISTRARS,
    ("DELETE", "/patients/{patient_id}"): ADMIN_ONLY,
    ("POST", "/patients/{patient_id}/treatments"): CLINICAL,
    ("POST", "/patients/{patient_id}/treatments/{treatment_id}/date"): CLINICAL,
    ("POST", "/patients/{patient_id}/appointments"): REGISTRARS,
    ("GET", "/patients/{patient_id}/touchpoints"): CLINICAL,
    ("POST", "/patients/{patient_id}/touchpoints/{touchpoint_id}/cancel"): CLINICAL,
    ("POST", "/patients/{patient_id}/pause"): REGISTRARS,
    ("GET", "/patients/{patient_id}/conversation"): CLINICAL,
    ("POST", "/patients/{patient_id}/conversation"): CLINICAL,
    ("POST", "/patients/{patient_id}/conversation/handled"): CLINICAL,
    ("GET", "/replies"): CLINICAL,
    ("POST", "/segments/count"): CLINICAL,
    ("POST", "/segments/list"): CLINICAL,
    ("POST", "/campaigns"): ADMIN_ONLY,
    ("POST", "/campaigns/preview"): CLINICAL,
    ("GET", "/campaigns/{campaign_id}"): CLINICAL,
    ("POST", "/campaigns/{campaign_id}/cancel"): ADMIN_ONLY,
    ("POST", "/imports/treatments"): CLINICAL,
    # support programmes (docs/programmes.md): department staff their department's programmes
    ("GET", "/programmes/{programme_id}/roster"): CLINICAL,
    ("POST", "/programmes/{programme_id}/attendance"): CLINICAL,
    ("GET", "/programmes/{programme_id}/export"): CLINICAL,
    # integrated care plans (docs/care-plans.md)
    ("POST", "/care/cases"): CLINICAL,
    ("GET", "/care/cases"): CLINICAL,
    ("GET", "/care/cases/{case_id}"): CLINICAL,
    ("GET", "/care/cases/{case_id}/fhir"): CLINICAL,
    ("POST", "/care/cases/{case_id}/activities"): CLINICAL,
    ("POST", "/care/cases/{case_id}/activities/{activity_id}/status"): (A, D, G),
    ("POST", "/care/cases/{case_id}/reviews/{review_id}/done"): CLINICAL,
    ("GET", "/care/activities"): (G,),
    ("POST", "/care/conferences"): CLINICAL,
    ("GET", "/care/conferences/{conference_id}"): CLINICAL,
    ("GET", "/care/reviews"): CLINICAL,
    # the care network's referrals (docs/care-network.md): partners their own organisation's
    ("POST", "/referrals"): (A, D, P),
    ("GET", "/referrals"): (A, D, P),
    ("GET", "/referrals/{referral_id}"): (A, D, P),
    ("POST", "/referrals/{referral_id}/status"): (A, D, P),
    ("GET", "/referrals/{referral_id}/fhir"): (A, D, P),
    ("GET", "/reports/network"): (A, D, Q),
}


@dataclass
class Request:
    method: str
    path: str
    body: Any = None
    query: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, claims: dict[str, str] | None) -> Answer:
        return call(
            self.method,
            self.path,
            self.body,
            claims=claims,
            query=self.query,
            raw=self.raw,
            headers=self.headers,
        )


def _ok(answer: Answer) -> Any:
    assert answer.status < 300, answer.body
    return answer.body


class World:
    """Fresh things to act on, made by the CS admin; each in the department of the role asked."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.n = 0

    def _next(self) -> int:
        self.n += 1
        return self.n

    def complaint(self, role: str, status: str | None = None) -> str:
        department = DEPARTMENT.get(role, "dental")
        body = {
            "kind": "complaint",
            "text": "전화 문의: 대기 시간이 너무 길었다고 하십니다.",
            "contact": {"name": "김민지", "phone": "010-2345-6789"},
            "consent_to_contact": True,
            "department": department,
            "channel": "phone",
        }
        code = _ok(call("POST", "/staff/complaints", body, claims=ADMIN))["tracking_code"]
        found = DynamoComplaintRepository("demo").by_code(code)
        assert found is not None
        cid = found.id
        steps = {"resolved": ["resolve"], "closed": ["resolve", "close"]}.get(status or "", [])
        for step in steps:
            body = {"outcome": "대기 순서를 다시 안내했습니다."} if step == "resolve" else {}
            _ok(call("POST", f"/complaints/{cid}/{step}", body, claims=ADMIN))
        return cid

    def patient(self, treated: bool = True) -> str:
        n = self._next()
        body = {
            "name": "홍길동",
            "phone": f"010-7{n:03d}-{n:04d}",
            "chart_no": f"M-{n}",
            "consents": {"contact": True, "marketing": True},
        }
        pid = str(_ok(call("POST", "/patients", body, claims=ADMIN))["id"])
        if treated:
            treatment = {"tag": "implant_surgery", "date": "2026-11-30"}
            _ok(call("POST", f"/patients/{pid}/treatments", treatment, claims=ADMIN))
        return pid

    def treatment(self) -> tuple[str, str, str]:
        pid = self.patient(treated=False)
        treatment = {"tag": "implant_surgery", "date": "2026-11-30"}
        answer = _ok(call("POST", f"/patients/{pid}/treatments", treatment, claims=ADMIN))
        planned = next(t for t in answer["touchpoints"] if t["status"] == "planned")
        return pid, str(answer["id"]), str(planned["id"])

    def campaign(self) -> str:
        n = self._next()
        body = {
            "name": f"스케일링 안내 {n}",
            "segment": {"tag": "implant_surgery"},
            "template_id": "scaling_next_step",
            "send_on": f"2026-12-{n % 27 + 1:02d}",
        }
        answer = call(
            "POST", "/campaigns", body, claims=ADMIN, headers={"Idempotency-Key": f"k{n}"}
        )
        return str(_ok(answer)["id"])

    @functools.cached_property
    def message_id(self) -> str:
        """One message record (reading it changes nothing, so every role reads the same)."""
        boto3.client("sqs").purge_queue(QueueUrl=self.env[NOTIFICATIONS.env])  # others' messages
        cid = self.complaint("cs_admin")
        txoutbox.flush()
        for _ in range(30):
            if records.for_ref("complaint", cid, 10):
                break
            run_sender(self.env)
        return str(records.for_ref("complaint", cid, 10)[0]["message_id"])


def requests(world: World) -> dict[tuple[str, str], Callable[[str], Request]]:
    entry = {
        "kind": "complaint",
        "text": "전화 문의: 주차장 안내가 부족합니다.",
        "contact": {"name": "김민지", "phone": "010-2345-6789"},
        "consent_to_contact": True,
        "channel": "phone",
    }
    csv = (
        "차트번호,환자명,휴대폰,시술,시술일\n"
        "M-900,김서연,010-2345-6781,implant_surgery,2026-11-25\n"
    )

    def on_complaint(action: str, body: Any, status: str | None = None) -> Callable[[str], Request]:
        return lambda role: Request(
            "POST", f"/complaints/{world.complaint(role, status)}/{action}", body
        )

    def on_patient(method: str, tail: str, body: Any = None) -> Callable[[str], Request]:
        return lambda role: Request(method, f"/patients/{world.patient()}{tail}", body)

    def change_date(role: str) -> Request:
        pid, tid, _ = world.treatment()
        return Request("POST", f"/patients/{pid}/treatments/{tid}/date", {"date": "2026-12-01"})

    def cancel_touchpoint(role: str) -> Request:
        pid, _, touchpoint = world.treatment()
        return Request("POST", f"/patients/{pid}/touchpoints/{touchpoint}/cancel")

    def care_case() -> str:
        body = {"name": "김영수", "department": "dental", "consent_to_contact": True}
        return str(_ok(call("POST", "/care/cases", body, claims=ADMIN))["id"])

    def care_conference(held_on: str = "2026-12-01") -> dict[str, Any]:
        """A conference on a new case; held long enough ago, its reviews are due already."""
        case_id = care_case()
        plan = {"agency": "gangnam-welfare", "title": "식사배달", "due": "2026-12-20"}
        body = {
            "title": f"통합지원회의 {world._next()}",
            "held_on": held_on,
            "cases": [
                {"case_id": case_id, "decisions": [{"text": "식사배달", "activities": [plan]}]}
            ],
        }
        return dict(_ok(call("POST", "/care/conferences", body, claims=ADMIN)))

    def care_activity(role: str) -> Request:
        held = care_conference()
        (activity,) = held["discussions"][0]["activities"]
        return Request(
            "POST",
            f"/care/cases/{activity['case_id']}/activities/{activity['id']}/status",
            {"status": "accepted"},
        )

    def care_review(role: str) -> Request:
        discussed = care_conference("2026-09-01")["discussions"][0]
        review = discussed["reviews"][0]
        return Request(
            "POST", f"/care/cases/{discussed['case_id']}/reviews/{review['id']}/done", {}
        )

    new_patient = {"name": "이영희", "phone": "010-5555-0101", "consents": {"contact": True}}
    return {
        ("GET", "/inbox"): lambda role: Request("GET", "/inbox"),
        ("POST", "/staff/complaints"): lambda role: Request(
            "POST", "/staff/complaints", {**entry, "department": DEPARTMENT.get(role, "dental")}
        ),
        ("GET", "/complaints/{complaint_id}"): lambda role: Request(
            "GET", f"/complaints/{world.complaint(role)}"
        ),
        ("POST", "/complaints/{complaint_id}/status"): on_complaint(
            "status", {"status": "in_progress", "note": "확인 중"}
        ),
        ("POST", "/complaints/{complaint_id}/assign"): on_complaint(
            "assign", {"assignee": "kim.minji"}
        ),
        ("POST", "/complaints/{complaint_id}/classification"): on_complaint(
            "classification", {"urgency": "high"}
        ),
        ("POST", "/complaints/{complaint_id}/replies"): on_complaint(
            "replies", {"message": "담당 부서에서 확인 중입니다."}
        ),
        ("POST", "/complaints/{complaint_id}/resolve"): on_complaint(
            "resolve", {"outcome": "대기 순서를 다시 안내했습니다."}
        ),
        ("POST", "/complaints/{complaint_id}/close"): on_complaint("close", {}, "resolved"),
        ("POST", "/complaints/{complaint_id}/reopen"): on_complaint(
            "reopen", {"note": "다시 확인"}, "closed"
        ),
        ("GET", "/reports/complaints"): lambda role: Request(
            "GET", "/reports/complaints", query={"period": "2026-11"}
        ),
        ("GET", "/reports/recall"): lambda role: Request(
            "GET", "/reports/recall", query={"period": "2026-11"}
        ),
        ("GET", "/reports/messages"): lambda role: Request(
            "GET", "/reports/messages", query={"period": "2026-11"}
        ),
        ("GET", "/outbox"): lambda role: Request("GET", "/outbox"),
        ("GET", "/messages"): lambda role: Request(
            "GET", "/messages", query={"complaint": world.complaint(role)}
        ),
        ("GET", "/messages/{message_id}"): lambda role: Request(
            "GET", f"/messages/{world.message_id}"
        ),
        ("POST", "/patients"): lambda role: Request(
            "POST", "/patients", {**new_patient, "chart_no": f"N-{world._next()}"}
        ),
        ("GET", "/patients"): lambda role: Request(
            "GET", "/patients", query={"chart_no": f"M-{world.n}"}
        ),
        ("GET", "/patients/{patient_id}"): on_patient("GET", ""),
        ("DELETE", "/patients/{patient_id}"): on_patient("DELETE", ""),
        ("POST", "/patients/{patient_id}/treatments"): lambda role: Request(
            "POST",
            f"/patients/{world.patient(treated=False)}/treatments",
            {"tag": "implant_surgery", "date": "2026-11-29"},
        ),
        ("POST", "/patients/{patient_id}/treatments/{treatment_id}/date"): change_date,
        ("POST", "/patients/{patient_id}/appointments"): on_patient(
            "POST", "/appointments", {"kind": "booking", "at": "2026-12-10T10:00:00+09:00"}
        ),
        ("GET", "/patients/{patient_id}/touchpoints"): on_patient("GET", "/touchpoints"),
        ("POST", "/patients/{patient_id}/touchpoints/{touchpoint_id}/cancel"): cancel_touchpoint,
        ("POST", "/patients/{patient_id}/pause"): on_patient(
            "POST", "/pause", {"paused": True, "reason": "환자 요청"}
        ),
        ("GET", "/patients/{patient_id}/conversation"): on_patient("GET", "/conversation"),
        ("POST", "/patients/{patient_id}/conversation/handled"): on_patient(
            "POST", "/conversation/handled", {"outcome": "handled"}
        ),
        ("GET", "/replies"): lambda role: Request("GET", "/replies"),
        ("POST", "/patients/{patient_id}/conversation"): on_patient(
            "POST", "/conversation", {"message": "네, 내일 오전에 오시면 됩니다."}
        ),
        ("POST", "/segments/count"): lambda role: Request(
            "POST", "/segments/count", {"tag": "implant_surgery"}
        ),
        ("POST", "/segments/list"): lambda role: Request(
            "POST", "/segments/list", {"tag": "implant_surgery"}
        ),
        ("POST", "/campaigns"): lambda role: Request(
            "POST",
            "/campaigns",
            {
                "name": "스케일링 안내",
                "segment": {"tag": "implant_surgery"},
                "template_id": "scaling_next_step",
                "send_on": "2026-12-28",
            },
            headers={"Idempotency-Key": f"new-{world._next()}"},
        ),
        ("POST", "/campaigns/preview"): lambda role: Request(
            "POST",
            "/campaigns/preview",
            {"segment": {"tag": "implant_surgery"}, "template_id": "scaling_next_step"},
        ),
        ("GET", "/campaigns/{campaign_id}"): lambda role: Request(
            "GET", f"/campaigns/{world.campaign()}"
        ),
        ("POST", "/campaigns/{campaign_id}/cancel"): lambda role: Request(
            "POST", f"/campaigns/{world.campaign()}/cancel"
        ),
        ("POST", "/imports/treatments"): lambda role: Request(
            "POST",
            "/imports/treatments",
            raw=csv.encode(),
            headers={"Content-Type": "text/csv; charset=utf-8"},
        ),
        # the dental department's programme: department staff see their department's only
        ("GET", "/programmes/{programme_id}/roster"): lambda role: Request(
            "GET", "/programmes/dental_care_class/roster"
        ),
        ("POST", "/programmes/{programme_id}/attendance"): lambda role: Request(
            "POST",
            "/programmes/dental_care_class/attendance",
            {**_programme_signup(world), "attended": True},
        ),
        ("GET", "/programmes/{programme_id}/export"): lambda role: Request(
            "GET", "/programmes/dental_care_class/export"
        ),
        ("POST", "/care/cases"): lambda role: Request(
            "POST", "/care/cases", {"name": "김영수", "department": "dental"}
        ),
        ("GET", "/care/cases"): lambda role: Request("GET", "/care/cases"),
        ("GET", "/care/cases/{case_id}"): lambda role: Request("GET", f"/care/cases/{care_case()}"),
        ("GET", "/care/cases/{case_id}/fhir"): lambda role: Request(
            "GET", f"/care/cases/{care_case()}/fhir"
        ),
        ("POST", "/care/cases/{case_id}/activities"): lambda role: Request(
            "POST",
            f"/care/cases/{care_case()}/activities",
            {"agency": "gangnam-welfare", "title": "식사배달", "due": "2026-12-20"},
        ),
        ("POST", "/care/cases/{case_id}/activities/{activity_id}/status"): care_activity,
        ("POST", "/care/cases/{case_id}/reviews/{review_id}/done"): care_review,
        ("GET", "/care/activities"): lambda role: Request("GET", "/care/activities"),
        ("POST", "/care/conferences"): lambda role: Request(
            "POST",
            "/care/conferences",
            {
                "title": f"통합지원회의 {world._next()}",
                "held_on": "2026-12-01",
                "cases": [{"case_id": care_case(), "decisions": [{"text": "경과 관찰"}]}],
            },
        ),
        ("GET", "/care/conferences/{conference_id}"): lambda role: Request(
            "GET", f"/care/conferences/{care_conference()['id']}"
        ),
        ("GET", "/care/reviews"): lambda role: Request("GET", "/care/reviews"),
        ("POST", "/referrals"): lambda role: Request("POST", "/referrals", referral_body(role)),
        ("GET", "/referrals"): lambda role: Request("GET", "/referrals"),
        ("GET", "/referrals/{referral_id}"): lambda role: Request(
            "GET", f"/referrals/{received_referral(role)}"
        ),
        ("POST", "/referrals/{referral_id}/status"): lambda role: Request(
            "POST", f"/referrals/{received_referral(role)}/status", {"status": "accepted"}
        ),
        ("GET", "/referrals/{referral_id}/fhir"): lambda role: Request(
            "GET", f"/referrals/{received_referral(role)}/fhir"
        ),
        ("GET", "/reports/network"): lambda role: Request(
            "GET", "/reports/network", query={"period": "2026-12"}
        ),
    }


def referral_body(role: str) -> dict[str, Any]:
    """A referral: a partner refers to the hospital; hospital staff refer to the partner."""
    return {
        **({} if role == P else {"partner_id": "hanbit-peds"}),
        "urgency": "urgent",
        "reason": "발열 이틀째",
        "child": {"name": "김하준"},
        "guardian": {"name": "박지은", "phone": "010-2345-6789", "consent_to_contact": True},
    }


def received_referral(role: str) -> str:
    """A new referral the role's side receives (the partner: from the hospital; the hospital's
    staff: from the partner), so each may accept it."""
    sender = ADMIN if role == P else PARTNER
    return str(
        _ok(call("POST", "/referrals", referral_body(A if role == P else P), claims=sender))["id"]
    )


def _programme_signup(world: World) -> dict[str, str]:
    """A sign-up for last Friday's session of the dental programme, seeded in the table."""
    from sotong.programmes.records import Signup
    from sotong.programmes.repository import DynamoProgrammeRepository

    n = world._next()
    signup = Signup(
        id=f"s{n:020x}",
        programme_id="dental_care_class",
        starts_at="2026-11-27T06:00:00Z",
        name=f"참여자{n}",
        phone=f"+8210777{n:05d}",
        status="confirmed",
    )
    DynamoProgrammeRepository("demo").take_seat(signup, 8, f"k{n}", "2026-11-27", [])
    return {"signup_id": signup.id, "starts_at": signup.starts_at}


@pytest.fixture
def world(aws: dict[str, str]) -> World:
    clock.fix(datetime(2026, 12, 1, 10, 0, tzinfo=KST))
    return World(aws)


def test_the_matrix_names_every_staff_route() -> None:
    staff_routes = {(r.method, r.path) for r in resources.ROUTES if r.auth == "staff"}
    assert set(MATRIX) == staff_routes
    for route in resources.ROUTES:
        if route.auth == "staff":
            assert set(route.roles) == set(MATRIX[(route.method, route.path)]), route.path
        else:
            assert route.roles == ()


def test_docs_roles_table_is_the_matrix() -> None:
    rows = {}
    for line in (Path(__file__).parents[2] / "docs" / "roles.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        # the hospital's routes: 4 role columns; the care network's: 6 (partner, agency too)
        if len(cells) in (6, 8) and cells[0].startswith("`"):
            method, path = cells[0].strip("`").split(" ", 1)
            roles = (A, D, R, Q) if len(cells) == 6 else (A, D, R, Q, P, G)
            rows[(method, path)] = tuple(
                r for r, c in zip(roles, cells[1 : len(roles) + 1], strict=True) if c == "✓"
            )
    assert rows == MATRIX


def test_every_staff_route_answers_every_role_as_the_matrix_says(world: World) -> None:
    build = requests(world)
    unexpected = []
    for key, allowed in MATRIX.items():
        refused = build[key]("cs_admin")  # is never acted on: asked only by those refused
        for role, claims in ROLE_CLAIMS.items():
            answer = (build[key](role) if role in allowed else refused).send(claims)
            ok = answer.status < 300
            refused_as_expected = (
                not ok
                and answer.status == 403
                and answer.body.get("allowed_roles") == list(allowed)
            )
            if ok != (role in allowed) or not (ok or refused_as_expected):
                unexpected.append((key, role, answer.status, answer.body))
        # no sign-in, or a sign-in without a role group: 401 before anything is read
        for claims in ({}, {"cognito:username": "x", "cognito:groups": "everyone"}):
            assert refused.send(claims).status == 401
    assert unexpected == []


def test_roles_come_from_groups_never_from_an_attribute_the_user_can_edit(world: World) -> None:
    pid = world.patient()
    edited = {
        "cognito:username": "derm.park",
        "cognito:groups": "department_staff,dept-dermatology",
        "custom:department": "dental",
    }
    assert call("GET", f"/patients/{pid}", claims=edited).status == 404
    # department staff and reception need exactly one department group
    for groups in ("department_staff", "reception", "department_staff,dept-dental,dept-qi"):
        claims = {"cognito:username": "x", "cognito:groups": groups}
        assert call("GET", "/inbox", claims=claims).status == 401
    assert call("GET", f"/patients/{pid}", claims=DENTAL).status == 200


def test_department_staff_reach_only_their_departments_patients(world: World) -> None:
    pid = world.patient()  # a dental (implant) patient
    before = len(outbox.recent(200))
    for method, tail, body in (
        ("GET", "", None),
        ("GET", "/touchpoints", None),
        ("GET", "/conversation", None),
        ("POST", "/conversation", {"message": "내일 오시면 됩니다."}),
        ("POST", "/conversation/handled", {"outcome": "converted"}),
        ("POST", "/pause", {"paused": True}),
        ("POST", "/appointments", {"kind": "booking", "at": "2026-12-10T10:00:00+09:00"}),
    ):
        answer = call(method, f"/patients/{pid}{tail}", body, claims=DERMATOLOGY)
        assert answer.status == 404, (method, tail, answer.body)
        assert answer.body["field"] == "path.patient_id"
    txoutbox.flush()
    assert len(outbox.recent(200)) == before  # the refused answer sent the patient nothing
    # nor may they change the patient's contact or consents by registering them again
    patient = _ok(call("GET", f"/patients/{pid}", claims=ADMIN))
    again = {
        "name": patient["name"],
        "phone": "010-9999-0000",
        "chart_no": patient["chart_no"],
        "consents": {"contact": True, "marketing": True, "night": True},
    }
    answer = call("POST", "/patients", again, claims=DERMATOLOGY)
    assert answer.status == 403
    assert answer.body["field"] == "body.chart_no"
    assert _ok(call("GET", f"/patients/{pid}", claims=ADMIN))["phone"] == patient["phone"]
    # a botox treatment makes them dermatology's patient too, and shows only dermatology's part
    botox = {"tag": "botox", "date": "2026-11-30"}
    _ok(call("POST", f"/patients/{pid}/treatments", botox, claims=DERMATOLOGY))
    view = _ok(call("GET", f"/patients/{pid}", claims=DERMATOLOGY))
    assert set(view["last_treatment"]) == {"botox"}
    assert {t["tag"] for t in view["upcoming"]} == {"botox"}
    touchpoints = _ok(call("GET", f"/patients/{pid}/touchpoints", claims=DERMATOLOGY))
    assert {t["tag"] for t in touchpoints["touchpoints"]} == {"botox"}
    of_dental = _ok(call("GET", f"/patients/{pid}/touchpoints", claims=DENTAL))["touchpoints"]
    assert {t["tag"] for t in of_dental} == {"implant_surgery"}
    implant = next(t for t in of_dental if t["status"] == "planned")
    moved = call(
        "POST",
        f"/patients/{pid}/treatments/{implant['treatment_id']}/date",
        {"date": "2026-12-02"},
        claims=DERMATOLOGY,
    )
    assert moved.status == 404
    assert moved.body["field"] == "path.treatment_id"
    cancelled = call(
        "POST", f"/patients/{pid}/touchpoints/{implant['id']}/cancel", claims=DERMATOLOGY
    )
    assert cancelled.status == 404
    assert cancelled.body["field"] == "path.touchpoint_id"


def test_reception_registers_and_books_but_sees_no_clinical_record(world: World) -> None:
    pid = world.patient()
    view = _ok(call("GET", f"/patients/{pid}", claims=DESK))
    assert {"name", "phone", "consents"} <= set(view)
    assert "last_treatment" not in view
    assert "upcoming" not in view
    booked = call(
        "POST",
        f"/patients/{pid}/appointments",
        {"kind": "booking", "at": "2026-12-10T10:00:00+09:00"},
        claims=DESK,
    )
    assert booked.status == 200
    for method, tail in (("GET", "/touchpoints"), ("GET", "/conversation")):
        assert call(method, f"/patients/{pid}{tail}", claims=DESK).status == 403


def test_staff_file_complaints_into_their_own_department_only(world: World) -> None:
    entry = {
        "kind": "complaint",
        "text": "전화 문의: 주차장 안내가 부족합니다.",
        "contact": {"name": "김민지", "phone": "010-2345-6789"},
        "consent_to_contact": True,
        "channel": "phone",
    }
    other = call("POST", "/staff/complaints", {**entry, "department": "dermatology"}, claims=DENTAL)
    assert other.status == 403
    assert other.body["field"] == "body.department"
    routed = call("POST", "/staff/complaints", entry, claims=DENTAL)  # the rules choose
    assert routed.status == 201


def test_qi_reads_every_department_and_changes_nothing(world: World) -> None:
    dental = world.complaint("department_staff")
    desk = world.complaint("reception")
    for cid in (dental, desk):
        seen = call("GET", f"/complaints/{cid}", claims=QI)
        assert seen.status == 200
        assert seen.body["contact"] == {"name": "***", "phone": mask_phone("+821023456789")}
        assert call("GET", f"/complaints/{cid}", claims=DESK).status == (
            200 if cid == desk else 404
        )
    inbox = _ok(call("GET", "/inbox", claims=QI))
    assert {dental, desk} <= {c["id"] for c in inbox["items"]}
    note = {"status": "in_progress", "note": "QI 확인"}
    assert call("POST", f"/complaints/{dental}/status", note, claims=QI).status == 403
