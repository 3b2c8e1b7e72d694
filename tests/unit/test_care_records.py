"""Care-plan rules on the records alone: reviews at 1 and 3 months (month ends clamped), the
reminder the day before, and the FHIR Task transitions an activity may make."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from sotong.careplans.records import (
    OPEN,
    TASK_STATUSES,
    TRANSITIONS,
    Activity,
    Review,
    TransitionError,
    add_months,
    changed,
    reminder_at,
    review_due,
)

KST = ZoneInfo("Asia/Seoul")
AT = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("held_on", "months", "due"),
    [
        (date(2026, 12, 1), 1, date(2027, 1, 1)),
        (date(2026, 12, 1), 3, date(2027, 3, 1)),
        (date(2027, 1, 31), 1, date(2027, 2, 28)),  # no 31 February
        (date(2028, 1, 31), 1, date(2028, 2, 29)),  # a leap year
        (date(2026, 11, 30), 3, date(2027, 2, 28)),
        (date(2027, 3, 31), 1, date(2027, 4, 30)),
        (date(2026, 10, 31), 3, date(2027, 1, 31)),  # across the year, the 31st kept
        (date(2026, 12, 31), 1, date(2027, 1, 31)),
    ],
)
def test_reviews_fall_due_whole_months_on_with_month_ends_clamped(
    held_on: date, months: int, due: date
) -> None:
    assert add_months(held_on, months) == due
    at = review_due(held_on, months, KST)
    assert (at.date(), at.hour, at.minute) == (due, 9, 0)
    assert at.tzinfo == KST


def test_the_reminder_is_at_nine_the_day_before() -> None:
    assert reminder_at(date(2027, 3, 1), KST) == datetime(2027, 2, 28, 9, 0, tzinfo=KST)


def activity(status: str = "requested") -> Activity:
    return Activity(
        id="a1", case_id="c1", agency="gangnam-welfare", title="식사배달", due="2026-12-04",
        status=status,  # type: ignore[arg-type]
        remind_at="2026-12-03T00:00:00.000000Z",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("start", "path"),
    [
        ("requested", ["accepted", "in-progress", "on-hold", "in-progress", "completed"]),
        ("requested", ["rejected"]),
        ("requested", ["accepted", "cancelled"]),
        ("requested", ["accepted", "in-progress", "failed"]),
    ],
)
def test_an_activity_moves_along_fhir_task_states(start: str, path: list[str]) -> None:
    current = activity(start)
    for n, status in enumerate(path, start=2):
        current = current.move(status, "welfare.lee", AT)  # type: ignore[arg-type]
        assert current.status == status
        assert current.record_version == n
        assert current.updated_by == "welfare.lee"
    assert not current.is_open
    assert not current.awaits_reminder  # a finished activity leaves the reminder index


@pytest.mark.parametrize("finished", ["completed", "cancelled", "rejected", "failed"])
def test_a_finished_activity_moves_nowhere(finished: str) -> None:
    for status in TASK_STATUSES:
        with pytest.raises(TransitionError):
            activity(finished).move(status, "x", AT)


def test_no_activity_goes_back_to_requested_and_the_table_is_closed() -> None:
    assert all("requested" not in targets for targets in TRANSITIONS.values())
    assert set(TRANSITIONS) == set(TASK_STATUSES)
    assert all(set(t) <= set(TASK_STATUSES) for t in TRANSITIONS.values())
    assert {"requested", "accepted", "in-progress", "on-hold"} == OPEN
    with pytest.raises(TransitionError):
        activity().move("completed", "x", AT)  # accepted first


def test_an_open_activity_awaits_its_reminder_until_reminded() -> None:
    assert activity().awaits_reminder
    reminded = activity().reminded(AT)
    assert not reminded.awaits_reminder
    assert reminded.record_version == 2


def test_a_review_falls_due_once_then_is_done() -> None:
    review = Review(
        id="f1.m1", case_id="c1", conference_id="f1", months=1,
        due_at="2027-01-01T00:00:00.000000Z",
    )  # fmt: skip
    due = review.fall_due(AT)
    assert due.status == "due"
    with pytest.raises(TransitionError):
        due.fall_due(AT)
    assert due.done("cs.kim", AT, "점검함").status == "done"


def test_records_round_trip_their_stored_attributes() -> None:
    item = {**activity().to_item(), "pk": "CASE#c1", "sk": "ACT#a1", "gsi1pk": "x", "later": 1}
    again = Activity.from_item(item)
    assert again == Activity.from_item(again.to_item())
    assert again.extra == {"later": 1}
    assert "pk" not in again.to_item()


def test_the_audit_keeps_only_what_changed() -> None:
    before = activity().to_item()
    after = activity().move("accepted", "x", AT, "확인").to_item()
    assert changed(before, after) == (
        {"status": "requested"},
        {"status": "accepted", "note": "확인"},
    )


def test_the_agency_directory_is_checked() -> None:
    from pydantic import ValidationError

    from sotong.config import load_hospital
    from sotong.config.schema import HospitalConfig

    demo = load_hospital().model_dump(mode="json")
    assert [a["id"] for a in demo["care_agencies"]][:2] == ["gangnam-care-sos", "gangnam-health"]
    twice = {**demo, "care_agencies": [*demo["care_agencies"], demo["care_agencies"][0]]}
    with pytest.raises(ValidationError, match="duplicate agency id 'gangnam-care-sos'"):
        HospitalConfig.model_validate(twice)
    bad = dict(demo["care_agencies"][0], id="Gangnam SOS")
    with pytest.raises(ValidationError, match=r"care_agencies\.0\.id"):
        HospitalConfig.model_validate({**demo, "care_agencies": [bad]})
    unreachable = dict(demo["care_agencies"][0], contact={"name": "담당", "channel": "sms"})
    with pytest.raises(ValidationError, match="a contact needs a phone or an e-mail address"):
        HospitalConfig.model_validate({**demo, "care_agencies": [unreachable]})
    assert HospitalConfig.model_validate({**demo, "care_agencies": []}).care_agencies == ()
