"""The reports over the in-memory repositories: the complaint report's SLA percentages, medians,
previous period, trend and phrases as the desk leaves the complaints; the recall report per tag
from touchpoints in their final states. No DynamoDB (`conftest.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sotong import clock
from sotong.complaints import reports
from sotong.complaints.classification import Classification
from sotong.complaints.model import ComplaintSubmission, Resolution, SurveyAnswer
from sotong.complaints.service import ComplaintDesk
from sotong.config import load_hospital
from sotong.config.schema import HospitalConfig
from sotong.recall import reports as recall_reports
from sotong.recall.records import ConversationMessage, Touchpoint, Treatment
from sotong.staff import Staff
from tests.fakes.complaints import InMemoryComplaintRepository
from tests.fakes.recall import InMemoryPatientRepository

SEOUL = ZoneInfo("Asia/Seoul")
ADMIN = Staff(username="cs.kim", role="cs_admin", department="customer_service")
NOV = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # Monday 10:00 in Seoul


@dataclass
class Fixed:
    phrase: str = "대기"

    def classify(self, text: str, category_hint: str | None = None) -> Classification:
        return Classification("complaint", "wait_time", "normal", (self.phrase, "안내"), "rules")


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    clock.fix(NOV)
    yield
    clock.fix(None)


@pytest.fixture(scope="module")
def hospital() -> HospitalConfig:
    return load_hospital()


def _file(desk: ComplaintDesk, repo: InMemoryComplaintRepository, at: datetime) -> str:
    clock.fix(at)
    form = ComplaintSubmission(
        text="접수 대기시간이 1시간이 넘었는데 아무 안내도 없었습니다.",
        contact={"phone": "010-1234-5678"},
        consent_to_contact=True,
    )
    receipt, _ = desk.submit(form, channel="web")
    found = repo.by_code(receipt["tracking_code"])
    assert found is not None
    return found.id


def test_the_complaint_report_as_the_desk_left_the_complaints(hospital: HospitalConfig) -> None:
    repo = InMemoryComplaintRepository()
    desk = ComplaintDesk(hospital, Fixed(), repo)
    # October: one complaint, never acknowledged
    _file(desk, repo, datetime(2026, 10, 5, 1, 0, tzinfo=UTC))
    # November: three; acknowledged after 1 h, 3 h and 40 h (the normal SLA gives 24 h)
    ids = [_file(desk, repo, NOV + timedelta(days=d)) for d in (0, 1, 2)]
    for cid, hours in zip(ids, (1, 3, 40), strict=True):
        created = repo.get(cid)
        assert created is not None
        clock.fix(clock.parse(created.created_at) + timedelta(hours=hours))
        desk.change_status(ADMIN, cid, "acknowledged", None)
    # the first is resolved 5 h after it came in, and surveyed
    clock.fix(NOV + timedelta(hours=5))
    desk.resolve(ADMIN, ids[0], Resolution(outcome="대기 순서를 다시 안내했습니다."))
    desk.close(ADMIN, ids[0], None)  # the survey link goes with the closing message
    stored = repo.get(ids[0])
    assert stored is not None
    assert stored.survey_token
    desk.answer_survey(SurveyAnswer(code=stored.code, token=stored.survey_token, score=4))
    # 1 December 00:30 in Seoul is still 30 November in UTC: December's, not November's
    _file(desk, repo, datetime(2026, 11, 30, 15, 30, tzinfo=UTC))

    report = reports.build("2026-11", SEOUL, None, repo)
    assert report["total"] == 3
    assert report["acknowledged"] == 3
    assert report["acknowledged_within_sla"] == 2
    assert report["acknowledged_within_sla_percent"] == 66.7
    assert report["median_hours_to_acknowledge"] == 3.0
    assert (report["resolved"], report["resolved_within_sla_percent"]) == (1, 100.0)
    assert report["median_hours_to_resolve"] == 5.0
    assert (report["survey_answers"], report["survey_answer_rate_percent"]) == (1, 100.0)
    assert report["satisfaction_average"] == 4
    assert report["top_phrases"] == [  # a tie in the phrases' order
        {"phrase": "대기", "count": 3},
        {"phrase": "안내", "count": 3},
    ]
    assert report["previous"]["period"] == "2026-10"
    assert report["previous"]["total"] == 1
    assert report["compared"]["total"] == {
        "now": 3,
        "before": 1,
        "difference": 2,
        "percent": 200.0,
    }
    trend = {m["month"]: m["total"] for m in report["trend"]}
    assert next(iter(trend)) == "2025-12"
    assert list(trend)[-1] == "2026-11"
    assert (trend["2026-10"], trend["2026-11"]) == (1, 3)
    assert reports.build("2026-12", SEOUL, None, repo)["total"] == 1
    quarter = reports.build("2026-Q4", SEOUL, None, repo)
    assert quarter["total"] == 5
    assert quarter["previous"]["period"] == "2026-Q3"
    assert reports.build("2026-11", SEOUL, "dental", repo)["total"] == 0


def _touchpoint(treatment: Treatment, step: str, due: datetime, status: str) -> Touchpoint:
    planned = Touchpoint.planned(
        patient_id=treatment.patient_id,
        treatment_id=treatment.id,
        tag=treatment.tag,
        step=step,
        template="recall_checkup",
        purpose="care",
        cancel_if=(),
        treatment_date=date.fromisoformat(treatment.date),
        due=due,
        now=due - timedelta(days=200),
    )
    if status == "queued":
        return planned.queue(due)
    if status == "converted":
        return planned.queue(due).convert("visit", due + timedelta(days=3))
    if status == "cancelled":
        return planned.cancel("future_booking", due)
    return planned


def test_the_recall_report_per_tag() -> None:
    patients = InMemoryPatientRepository()
    due = datetime(2026, 11, 10, 1, 0, tzinfo=UTC)
    statuses = ["converted", "converted", "queued", "cancelled", "planned"]
    for n, status in enumerate(statuses):
        treatment = Treatment(
            id=f"t{n:016x}",
            patient_id=f"p{n:020x}",
            tag="implant",
            department="dental",
            date="2026-05-10",
        )
        patients.add_treatment(treatment)
        patients.add_touchpoints([_touchpoint(treatment, "recall", due, status)])
    # a reply to the queued one, and a touchpoint of another month that does not count
    patients.add_message(
        "p00000000000000000002",
        ConversationMessage(
            id="2026-11-10T02:00:00Z#a",
            direction="in",
            text="다음 주에 갈게요",
            by="patient",
            at="2026-11-10T02:00:00Z",
            touchpoint="t0000000000000002.recall",
        ),
    )
    late = Treatment(
        id="t00000000000000ff", patient_id="p" + "f" * 20, tag="implant", department="dental",
        date="2026-06-10",
    )  # fmt: skip
    patients.add_treatment(late)
    patients.add_touchpoints([_touchpoint(late, "recall", due + timedelta(days=30), "queued")])

    start, end = reports.period_bounds("2026-11", SEOUL)
    report = recall_reports.build("2026-11", start, end, {"implant": 186}, patients)
    (row,) = report["tags"]
    assert (row["due"], row["sent"], row["cancelled"], row["converted"]) == (5, 3, 1, 2)
    assert row["cancelled_by_reason"] == {"future_booking": 1}
    assert (row["replies"], row["planned"]) == (1, 1)
    assert row["return_rate_percent"] == 40.0
    assert row["band_position"] == "below_typical"
    assert report["total"]["due"] == 5
    december = recall_reports.build("2026-12", *reports.period_bounds("2026-12", SEOUL),
                                    {"implant": 186}, patients)  # fmt: skip
    assert december["total"]["due"] == 1
