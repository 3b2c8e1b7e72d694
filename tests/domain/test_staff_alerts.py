"""Staff alerts beyond escalation, over the in-memory repository: the department told when a
complaint is routed to it (by each contact's channel, held to the end of quiet hours unless
critical), the on-call page linking to the complaint in the console, and the daily digest per
department (one per day, however often it runs)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sotong import clock
from sotong.complaints.model import ComplaintSubmission
from sotong.complaints.service import PUBLIC_URL_ENV, ComplaintDesk
from sotong.config import load_hospital
from sotong.config.loader import parse_hospital
from sotong.config.schema import HospitalConfig
from sotong.notify.model import MessageRequest
from sotong.notify.rules import decide
from tests.domain.test_complaint_desk import WAIT, Fixed
from tests.fakes.complaints import InMemoryComplaintRepository

DAY = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Monday 10:00 in Seoul
NIGHT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 23:00 in Seoul: quiet hours
URL = "https://clinic.example"


@pytest.fixture(autouse=True)
def _setup(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(PUBLIC_URL_ENV, URL)
    clock.fix(DAY)
    yield
    clock.fix(None)


@pytest.fixture(scope="module")
def hospital() -> HospitalConfig:
    return load_hospital()


def _desk(
    hospital: HospitalConfig, urgency: str = "normal"
) -> tuple[ComplaintDesk, InMemoryComplaintRepository]:
    repo = InMemoryComplaintRepository()
    return ComplaintDesk(hospital, Fixed(urgency=urgency, category="treatment"), repo), repo


def _submit(desk: ComplaintDesk, department: str = "dental") -> str:
    receipt, _ = desk.submit(
        ComplaintSubmission(
            text=WAIT,
            contact={"phone": "010-1234-5678"},
            consent_to_contact=True,
            department=department,
        ),
        channel="web",
    )
    return str(receipt["tracking_code"])


def _staff(repo: InMemoryComplaintRepository) -> list[MessageRequest]:
    return [r for r in repo.outbox.requests if r.recipient.kind == "staff"]


def test_a_routed_complaint_tells_each_department_contact_by_their_channel(
    hospital: HospitalConfig,
) -> None:
    desk, repo = _desk(hospital)
    code = _submit(desk, "dental")
    cid = repo.by_code(code).id  # type: ignore[union-attr]
    sms, email = _staff(repo)  # demo.yaml: dental has an SMS and an e-mail contact
    assert (sms.template_id, sms.recipient.phone) == ("staff_routed", "+821020001002")
    assert (email.template_id, email.recipient.email) == (
        "staff_routed_email",
        "dental-desk@demo-clinic.example",
    )
    assert sms.variables["link"] == f"{URL}/console/#/complaints/{cid}"
    assert sms.variables["code"] == code
    assert WAIT not in str(sms.variables) + str(email.variables)  # never the text
    for request in (sms, email):  # they render with the sender's own code
        decision = decide(request, hospital, DAY)
        assert decision.action == "send", decision
        assert decision.rendered is not None
        assert f"{URL}/console/#/complaints/{cid}" in decision.rendered.text


def test_a_department_without_staff_contacts_tells_its_head(hospital: HospitalConfig) -> None:
    desk, repo = _desk(hospital)
    _submit(desk, "dermatology")
    (alert,) = _staff(repo)
    head = hospital.department("dermatology").head  # type: ignore[union-attr]
    assert (alert.recipient.name, alert.template_id) == (head.name, "staff_routed")


def test_at_night_a_routing_alert_waits_for_the_morning_unless_critical(
    hospital: HospitalConfig,
) -> None:
    clock.fix(NIGHT)
    desk, repo = _desk(hospital)
    _submit(desk, "dermatology")
    (alert,) = _staff(repo)
    assert not alert.urgent
    assert alert.not_before == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)  # 08:00 in Seoul
    assert decide(alert, hospital, NIGHT).action == "hold"

    desk, repo = _desk(hospital, urgency="critical")
    _submit(desk, "dermatology")
    routed = [r for r in _staff(repo) if r.template_id == "staff_routed"]
    assert [(r.urgent, r.not_before) for r in routed] == [(True, None)]
    (page,) = [r for r in _staff(repo) if r.template_id == "staff_critical"]
    assert page.variables["link"].startswith(f"{URL}/console/#/complaints/c")
    assert decide(page, hospital, NIGHT).action == "send"


def test_a_config_without_the_new_templates_sends_as_before() -> None:
    """An older hospital file: no routing alerts, the on-call page by `staff_alert`."""
    data = load_hospital().model_dump(mode="json", exclude_none=True)
    data["templates"] = [
        t
        for t in data["templates"]
        if t["id"] not in ("staff_critical", "staff_routed", "staff_routed_email")
    ]
    for department in data["departments"]:
        department.pop("staff", None)
    old = parse_hospital(data, "old.yaml")
    desk, repo = _desk(old, urgency="critical")
    _submit(desk, "dental")
    (page,) = _staff(repo)
    assert page.template_id == "staff_alert"
    assert set(page.variables) == {"level", "department", "code", "reason"}
    assert decide(page, old, DAY).action == "send"


def test_the_digest_counts_open_and_due_once_per_department_per_day(
    hospital: HospitalConfig,
) -> None:
    desk, repo = _desk(hospital)
    _submit(desk, "dental")  # ack due in 24 h: tomorrow
    clock.fix(DAY - timedelta(days=2))
    _submit(desk, "dental")  # overdue by now
    clock.fix(DAY)
    _submit(desk, "dermatology")
    repo.outbox.requests.clear()
    morning = DAY - timedelta(hours=1, minutes=30)  # 08:30 in Seoul

    report = desk.department_digest(morning)
    assert report["sent"] == 2  # dental and dermatology; the others have nothing open
    digests = [r for r in repo.outbox.requests if r.template_id.startswith("staff_digest")]
    assert sorted(r.template_id for r in digests) == [
        "staff_digest",
        "staff_digest",
        "staff_digest_email",
    ]
    dental = next(
        r
        for r in digests
        if r.template_id == "staff_digest" and r.variables["department"] == "치과"
    )
    assert dental.variables["open"] == "2"
    assert dental.variables["overdue"] == "1"
    assert dental.variables["link"] == f"{URL}/console/#/inbox"
    assert decide(dental, hospital, morning).action == "send"

    again = desk.department_digest(morning + timedelta(hours=2))  # a retried or second run
    assert (again["sent"], again["already_sent"]) == (0, 2)
    assert len([r for r in repo.outbox.requests if r.template_id.startswith("staff_digest")]) == 3
    tomorrow = desk.department_digest(morning + timedelta(days=1))
    assert tomorrow["sent"] == 2
