"""The care-plan desk over the in-memory repository: the article's case (a man living alone on
dialysis three times a week, dizzy afterwards, early signs of dementia) taken to a case
conference, its decisions becoming five agencies' activities, the agencies told, reviews at 1
and 3 months, what agency users may see and do, and the audit of every change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from sotong import clock
from sotong.careplans.model import ActivityChange, ActivityPlan, CaseOpening, ConferenceRecord
from sotong.careplans.service import SCHEDULE, CarePlanDesk
from sotong.config import load_hospital
from sotong.config.schema import HospitalConfig
from sotong.errors import BadRequest, Conflict, NotFound
from sotong.health_terms import HealthTermsInText
from sotong.staff import Staff
from tests.fakes.careplans import InMemoryCarePlanRepository

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 10:00 KST
ADMIN = Staff("cs.kim", "cs_admin", "customer_service")
DENTAL = Staff("dental.lee", "department_staff", "dental")
WELFARE = Staff("welfare.lee", "agency", None, "gangnam-welfare")
HEALTH = Staff("health.oh", "agency", None, "gangnam-health")
ARTICLE_PLAN = [
    ("돌봄SOS 병원이동·동행 지원", "gangnam-care-sos", "2026-12-03"),
    ("보건소 건강동행서비스 연계", "gangnam-health", "2026-12-08"),
    ("복지관 식사배달 서비스 제공", "gangnam-welfare", "2026-12-04"),
    ("치매안심센터 치료비 지원 및 조호 물품 제공", "gangnam-dementia", "2026-12-15"),
    ("주거안심종합센터 주거상담소 주거 상향 지원", "gangnam-housing", "2026-12-31"),
]


@pytest.fixture
def hospital() -> HospitalConfig:
    return load_hospital()


@pytest.fixture
def repo() -> InMemoryCarePlanRepository:
    return InMemoryCarePlanRepository()


@pytest.fixture
def desk(hospital: HospitalConfig, repo: InMemoryCarePlanRepository) -> Iterator[CarePlanDesk]:
    clock.fix(NOW)
    yield CarePlanDesk(hospital, repo)
    clock.fix(None)


def open_case(desk: CarePlanDesk, staff: Staff = ADMIN, **overrides: Any) -> str:
    body = {
        "name": "김영수",
        "department": "customer_service",
        "summary": "홀몸 어르신. 주 3회 혈액투석 후 어지럼증·저혈압, 기억력 저하(초기 치매 의심)",
        "contact": {"name": "김영수", "phone": "010-3100-2001"},
        "consent_to_contact": True,
        **overrides,
    }
    return str(desk.open_case(staff, CaseOpening.model_validate(body))["id"])


def conference(case_ids: list[str], held_on: str = "2026-12-01") -> ConferenceRecord:
    return ConferenceRecord.model_validate(
        {
            "title": "2026년 제1차 의료·돌봄 통합지원회의",
            "held_on": held_on,
            "place": "구청 3층 대회의실",
            "agencies_present": [
                "gangnam-care-sos",
                "gangnam-health",
                "gangnam-welfare",
                "gangnam-dementia",
                "gangnam-housing",
                "gangnam-district",
            ],
            "cases": [
                {
                    "case_id": cid,
                    "decisions": [
                        {
                            "text": text,
                            "activities": [{"agency": agency, "title": text, "due": due}],
                        }
                        for text, agency, due in ARTICLE_PLAN
                    ],
                }
                for cid in case_ids
            ],
        }
    )


def test_a_conference_turns_decisions_into_activities_and_tells_every_agency(
    desk: CarePlanDesk, repo: InMemoryCarePlanRepository
) -> None:
    cid = open_case(desk)
    view, created = desk.hold_conference(ADMIN, conference([cid]))
    assert created
    (discussed,) = view["discussions"]
    assert [a["agency"] for a in discussed["activities"]] == [
        "gangnam-care-sos",
        "gangnam-welfare",
        "gangnam-health",
        "gangnam-dementia",
        "gangnam-housing",
    ]  # soonest due first
    assert {a["status"] for a in discussed["activities"]} == {"requested"}
    assert len(discussed["decisions"]) == 5
    # each agency by its contact's channel (sms or e-mail); the person one plain notice
    sent = sorted(repo.outbox.templates())
    assert sent == sorted(
        [
            "care_task",
            "care_task_email",
            "care_task",
            "care_task_email",
            "care_task",
            "care_plan_notice",
        ]
    )
    notice = next(r for r in repo.outbox.requests if r.template_id == "care_plan_notice")
    assert notice.recipient.kind == "patient"
    assert notice.recipient.contact_consent
    assert all(
        r.recipient.kind == "staff" and r.purpose == "service"
        for r in repo.outbox.requests
        if r is not notice
    )
    # reviews at one and three months, 09:00 KST
    reviews = discussed["reviews"]
    assert [(r["months"], r["due_at"]) for r in reviews] == [
        (1, "2027-01-01T00:00:00.000000Z"),
        (3, "2027-03-01T00:00:00.000000Z"),
    ]


def test_recording_the_same_conference_again_writes_nothing_twice(
    desk: CarePlanDesk, repo: InMemoryCarePlanRepository
) -> None:
    cid = open_case(desk)
    desk.hold_conference(ADMIN, conference([cid]))
    stored, sent = len(repo.stored), len(repo.outbox.requests)
    view, created = desk.hold_conference(ADMIN, conference([cid]))
    assert not created
    assert (len(repo.stored), len(repo.outbox.requests)) == (stored, sent)
    assert len(view["discussions"][0]["activities"]) == 5
    other = open_case(desk)
    with pytest.raises(Conflict) as refused:
        desk.hold_conference(ADMIN, conference([other]))
    assert refused.value.field == "body.title"


def test_an_agency_sees_and_moves_only_its_own_activities(desk: CarePlanDesk) -> None:
    cid = open_case(desk)
    desk.hold_conference(ADMIN, conference([cid]))
    mine = desk.agency_activities(WELFARE)["activities"]
    assert [(a["agency"], a["person"]) for a in mine] == [("gangnam-welfare", "김영수")]
    meals = mine[0]["id"]
    accepted = desk.change_activity(WELFARE, cid, meals, ActivityChange(status="accepted"))
    assert accepted["status"] == "accepted"
    assert accepted["updated_by"] == "welfare.lee"
    theirs = desk.agency_activities(HEALTH)["activities"][0]["id"]
    with pytest.raises(NotFound):
        desk.change_activity(WELFARE, cid, theirs, ActivityChange(status="accepted"))
    with pytest.raises(NotFound):
        desk.view(WELFARE, cid)
    with pytest.raises(BadRequest):  # declining is `rejected`; cancelling is the hospital's
        desk.change_activity(WELFARE, cid, meals, ActivityChange(status="cancelled"))
    with pytest.raises(Conflict):  # accepted -> requested is no Task transition
        desk.change_activity(WELFARE, cid, meals, ActivityChange(status="requested"))
    done = desk.change_activity(
        WELFARE, cid, meals, ActivityChange(status="completed", note="주 5회 배달 시작")
    )
    assert done["status"] == "completed"


def test_every_change_is_audited_in_the_case_with_before_and_after(desk: CarePlanDesk) -> None:
    cid = open_case(desk)
    desk.hold_conference(ADMIN, conference([cid]))
    meals = desk.agency_activities(WELFARE)["activities"][0]["id"]
    desk.change_activity(WELFARE, cid, meals, ActivityChange(status="accepted", note="확인"))
    audit = desk.view(ADMIN, cid)["audit"]
    actions = [a["action"] for a in audit]
    assert actions.count("activity_added") == 5
    assert actions.count("review_scheduled") == 2
    assert {"case_opened", "conference", "activity_status"} <= set(actions)
    change = next(a for a in audit if a["action"] == "activity_status")
    assert change["by"] == "welfare.lee"
    assert change["target"] == f"activity:{meals}"
    assert change["before"] == {"status": "requested"}
    assert change["after"] == {"status": "accepted", "note": "확인"}


def test_department_staff_run_only_their_departments_cases(desk: CarePlanDesk) -> None:
    cid = open_case(desk)
    with pytest.raises(NotFound):
        desk.view(DENTAL, cid)
    with pytest.raises(NotFound) as refused:
        desk.hold_conference(DENTAL, conference([cid]))
    assert refused.value.field == "body.cases[0].case_id"
    own = open_case(desk, DENTAL, department="dental")
    assert [c["id"] for c in desk.cases(DENTAL)["cases"]] == [own]
    assert {c["id"] for c in desk.cases(ADMIN)["cases"]} == {cid, own}


def test_an_unknown_agency_and_a_health_term_in_a_title_name_the_field(
    desk: CarePlanDesk,
) -> None:
    cid = open_case(desk)
    with pytest.raises(BadRequest) as unknown:
        desk.add_activity(
            ADMIN, cid, ActivityPlan(agency="nowhere", title="방문", due=date(2026, 12, 9))
        )
    assert unknown.value.field == "body.agency"
    plan = {"agency": "gangnam-care-sos", "title": "투석 후 귀가 동행", "due": "2026-12-09"}
    with pytest.raises(HealthTermsInText) as named:
        desk.add_activity(ADMIN, cid, ActivityPlan.model_validate(plan))
    assert named.value.field == "body.title"
    added = desk.add_activity(
        ADMIN, cid, ActivityPlan.model_validate({**plan, "confirm_health_terms": True})
    )
    assert added["status"] == "requested"


def test_the_schedule_brings_the_one_month_review_due_once_and_tells_the_agencies(
    desk: CarePlanDesk, repo: InMemoryCarePlanRepository
) -> None:
    cid = open_case(desk)
    desk.hold_conference(ADMIN, conference([cid]))
    meals = desk.agency_activities(WELFARE)["activities"][0]["id"]
    desk.change_activity(WELFARE, cid, meals, ActivityChange(status="accepted"))
    desk.change_activity(WELFARE, cid, meals, ActivityChange(status="completed"))
    repo.set_watermark(SCHEDULE, NOW)
    assert desk.reviews_due(ADMIN)["reviews"] == []
    before = len(repo.outbox.requests)
    month = datetime(2027, 1, 1, 0, 5, tzinfo=UTC)
    report = desk.run_schedule(month)
    assert report.reviews_due == 1
    due = desk.reviews_due(ADMIN)["reviews"]
    assert [(r["months"], r["status"]) for r in due] == [(1, "due")]
    review_messages = [r for r in repo.outbox.requests[before:] if "review" in r.template_id]
    # the four agencies with open activities (the meals are done): once each
    assert len(review_messages) == 4
    assert desk.run_schedule(month + timedelta(minutes=15)).reviews_due == 0
    assert len([r for r in repo.outbox.requests if "review" in r.template_id]) == 4
    done = desk.review_done(ADMIN, cid, due[0]["id"], "식사·동행 안정, 주거 상담 진행 중")
    assert done["status"] == "done"
    assert desk.reviews_due(ADMIN)["reviews"] == []


def test_an_agency_is_reminded_the_day_before_an_activity_is_due(
    desk: CarePlanDesk, repo: InMemoryCarePlanRepository
) -> None:
    cid = open_case(desk)
    desk.hold_conference(ADMIN, conference([cid]))
    repo.set_watermark(SCHEDULE, NOW)
    # the escort is due 2026-12-03: its reminder is at 09:00 KST on the 2nd
    report = desk.run_schedule(datetime(2026, 12, 2, 0, 1, tzinfo=UTC))
    assert report.reminders == 1
    reminders = [r for r in repo.outbox.requests if r.template_id.startswith("care_reminder")]
    assert [r.refs["activity"] for r in reminders] == [
        desk.agency_activities(Staff("sos", "agency", None, "gangnam-care-sos"))["activities"][0][
            "id"
        ]
    ]
    assert desk.run_schedule(datetime(2026, 12, 2, 0, 20, tzinfo=UTC)).reminders == 0
