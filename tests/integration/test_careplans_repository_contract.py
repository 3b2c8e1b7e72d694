"""One contract, two adapters: the in-memory `CarePlanRepository` the domain tests use behaves as
the DynamoDB one (over moto) does: what each stores and reads, and what each refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sotong import clock, keys
from sotong.careplans.records import (
    Activity,
    CareCase,
    Conference,
    Review,
    audit,
)
from sotong.careplans.repository import CarePlanRepository, Change, DynamoCarePlanRepository
from sotong.notify import txoutbox
from sotong.notify.model import MessageRequest, Recipient
from tests.fakes.careplans import InMemoryCarePlanRepository

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "dynamo"])
def repo(request: pytest.FixtureRequest) -> Iterator[CarePlanRepository]:
    if request.param == "dynamo":
        request.getfixturevalue("aws")
    clock.fix(NOW)
    yield DynamoCarePlanRepository() if request.param == "dynamo" else InMemoryCarePlanRepository()
    clock.fix(None)


def outbox(repo: CarePlanRepository) -> list[str]:
    if isinstance(repo, InMemoryCarePlanRepository):
        return sorted(r.idempotency_key for r in repo.outbox.requests)
    pending = txoutbox.pending(NOW + timedelta(days=3650), limit=1_000)
    return sorted(json.loads(p["request"])["idempotency_key"] for p in pending)


def case(n: int = 1, **overrides: Any) -> CareCase:
    given: dict[str, Any] = {
        "id": f"c{n:016x}",
        "name": f"사례{n}",
        "department": "customer_service",
        "created_at": clock.iso(NOW + timedelta(minutes=n)),
        **overrides,
    }
    return CareCase(**given)


def activity(n: int, case_id: str, **overrides: Any) -> Activity:
    given: dict[str, Any] = {
        "id": f"a{n:016x}",
        "case_id": case_id,
        "agency": "gangnam-welfare",
        "title": f"지원{n}",
        "due": f"2026-12-{n + 1:02d}",
        "remind_at": clock.iso(datetime(2026, 12, n, 0, 0, tzinfo=UTC)),
        "created_at": clock.iso(NOW),
        **overrides,
    }
    return Activity(**given)


def message(key: str) -> MessageRequest:
    return MessageRequest(
        idempotency_key=key,
        recipient=Recipient(kind="staff", name="담당", phone="+821030000103"),
        template_id="care_task",
    )


def test_a_new_record_is_written_once_with_its_audit_and_messages(
    repo: CarePlanRepository,
) -> None:
    first = case()
    entry = audit(first.id, "cs.kim", NOW, "case_opened", "case", None, first.to_item())
    change = Change(new=[first], audit=[entry], messages=[message("m1")])
    assert repo.write("demo", change)
    assert repo.case(first.id) == first
    again = Change(new=[first], audit=[entry], messages=[message("m2")])
    assert not repo.write("demo", again)
    found = repo.case_file(first.id)
    assert found is not None
    assert [a.action for a in found.audit] == ["case_opened"]
    assert found.audit[0].after == first.to_item()
    assert outbox(repo) == ["m1"]
    assert repo.case("c" + "f" * 16) is None
    assert repo.case_file("c" + "f" * 16) is None


def test_a_change_is_made_only_on_the_version_read(repo: CarePlanRepository) -> None:
    repo.write("demo", Change(new=[case()]))
    act = activity(1, case().id)
    repo.write("demo", Change(new=[act]))
    accepted = act.move("accepted", "welfare.lee", NOW)
    assert repo.write("demo", Change(moved=[(act, accepted)], messages=[message("m1")]))
    stale = act.move("rejected", "welfare.lee", NOW)
    assert not repo.write("demo", Change(moved=[(act, stale)], messages=[message("m2")]))
    assert repo.activity(act.case_id, act.id) == accepted
    assert outbox(repo) == ["m1"]
    gone = activity(9, case().id)
    assert not repo.write("demo", Change(moved=[(gone, gone.move("accepted", "x", NOW))]))


def test_open_cases_are_listed_by_department(repo: CarePlanRepository) -> None:
    repo.write("demo", Change(new=[case(1), case(2, department="dental")]))
    repo.write("demo", Change(new=[case(3, status="closed")]))
    assert [c.id for c in repo.cases(None, 10)] == [case(1).id, case(2).id]
    assert [c.id for c in repo.cases("dental", 10)] == [case(2).id]
    assert repo.cases("dermatology", 10) == []
    assert len(repo.cases(None, 1)) == 1


def test_an_agency_reads_its_own_activities_soonest_due_first(repo: CarePlanRepository) -> None:
    cid = case().id
    repo.write("demo", Change(new=[case()]))
    later, sooner = activity(5, cid), activity(2, cid)
    other = activity(3, cid, agency="gangnam-health")
    repo.write("demo", Change(new=[later, sooner, other]))
    assert [a.id for a in repo.agency_activities("gangnam-welfare", 10)] == [sooner.id, later.id]
    assert [a.id for a in repo.agency_activities("gangnam-health", 10)] == [other.id]
    found = repo.case_file(cid)
    assert found is not None
    assert [a.id for a in found.activities] == [sooner.id, other.id, later.id]


def test_reviews_fall_due_from_a_time_window_then_wait_on_the_due_list(
    repo: CarePlanRepository,
) -> None:
    cid = case().id
    repo.write("demo", Change(new=[case()]))
    month = Review(
        id="f1.m1", case_id=cid, conference_id="f1", months=1,
        due_at=clock.iso(datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
    )  # fmt: skip
    quarter = Review(
        id="f1.m3", case_id=cid, conference_id="f1", months=3,
        due_at=clock.iso(datetime(2027, 3, 1, 0, 0, tzinfo=UTC)),
    )  # fmt: skip
    repo.write("demo", Change(new=[month, quarter]))
    window = (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), datetime(2027, 1, 1, 0, 0, tzinfo=UTC))
    assert [r.id for r in repo.reviews_falling_due(*window)] == ["f1.m1"]
    assert repo.reviews_falling_due(window[1], window[1] + timedelta(days=1)) == []
    assert repo.reviews_due(10) == []
    due = month.fall_due(window[1])
    assert repo.write("demo", Change(moved=[(month, due)]))
    assert repo.reviews_falling_due(*window) == []
    assert [r.id for r in repo.reviews_due(10)] == ["f1.m1"]
    assert repo.review(cid, "f1.m1") == due
    done = due.done("cs.kim", window[1], None)
    assert repo.write("demo", Change(moved=[(due, done)]))
    assert repo.reviews_due(10) == []


def test_reminders_leave_their_index_once_sent_or_finished(repo: CarePlanRepository) -> None:
    cid = case().id
    repo.write("demo", Change(new=[case()]))
    first, second = activity(2, cid), activity(3, cid)
    repo.write("demo", Change(new=[first, second]))
    window = (datetime(2026, 12, 1, 12, 0, tzinfo=UTC), datetime(2026, 12, 3, 0, 0, tzinfo=UTC))
    assert [a.id for a in repo.reminders_due(*window)] == [first.id, second.id]
    repo.write("demo", Change(moved=[(first, first.reminded(NOW))]))
    finished = second.move("rejected", "x", NOW)
    repo.write("demo", Change(moved=[(second, finished)]))
    assert repo.reminders_due(*window) == []


def test_a_conference_and_the_watermark_are_read_back(repo: CarePlanRepository) -> None:
    conference = Conference(
        id="f" + "1" * 16, title="제1차 통합지원회의", held_on="2026-12-01",
        agencies_present=("gangnam-health",), cases=(case().id,), created_at=clock.iso(NOW),
    )  # fmt: skip
    assert repo.write("demo", Change(new=[conference]))
    assert repo.conference(conference.id) == conference
    assert not repo.write("demo", Change(new=[conference]))
    assert repo.watermark("careplans_schedule") is None
    repo.set_watermark("careplans_schedule", NOW)
    assert repo.watermark("careplans_schedule") == NOW


PHONE = "+821055551234"


def opened(n: int, **overrides: Any) -> tuple[CareCase, Any]:
    given = case(n, contact_name="김보호", contact_phone=PHONE, contact_consent=True, **overrides)
    return given, audit(given.id, "cs.kim", NOW, "case_opened", "case", None, given.to_item())


def test_a_case_is_found_by_its_contact_phone_and_erased_whole(
    repo: CarePlanRepository,
) -> None:
    mine, entry = opened(1, summary="홍길동 어르신, 독거, 당뇨")
    other = case(2)  # no contact: no pointer
    assert repo.write("demo", Change(new=[mine, other], audit=[entry]))
    act = activity(1, mine.id)
    review = Review(
        id="f1.m1",
        case_id=mine.id,
        conference_id="f1",
        months=1,
        due_at=clock.iso(datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
    )
    repo.write("demo", Change(new=[act, review]))
    phone_key = keys.recipient_key("demo", PHONE)
    assert [f.case.id for f in repo.contact_cases(phone_key)] == [mine.id]
    assert repo.contact_cases(keys.recipient_key("demo", "+821000000000")) == []

    removed = repo.erase_case(mine.id, phone_key)
    assert removed == {
        "care_cases": 1,
        "care_activities": 1,
        "care_reviews": 1,
        "care_audit_entries": 1,
    }
    assert repo.case_file(mine.id) is None
    assert repo.activity(mine.id, act.id) is None
    assert repo.agency_activities("gangnam-welfare", 10) == []
    assert repo.reviews_falling_due(NOW, NOW + timedelta(days=60)) == []
    assert repo.contact_cases(phone_key) == []
    assert repo.case(other.id) == other


def test_a_contact_is_unlinked_from_a_case_that_is_someone_elses(
    repo: CarePlanRepository,
) -> None:
    theirs, entry = opened(1, contact_relation="son")
    assert repo.write("demo", Change(new=[theirs], audit=[entry]))
    phone_key = keys.recipient_key("demo", PHONE)
    assert repo.unlink_contact(theirs.id, phone_key) == 2  # the case and its audit entry
    found = repo.case_file(theirs.id)
    assert found is not None
    text = json.dumps(
        [found.case.to_item(), *(a.to_item() for a in found.audit)], ensure_ascii=False
    )
    assert "김보호" not in text
    assert "55551234" not in text
    assert found.case.name == theirs.name
    assert found.case.contact_relation == "son"
    assert not found.case.contact_consent
    assert found.case.record_version == theirs.record_version + 1
    assert [a.action for a in found.audit] == ["case_opened"]
    assert found.audit[0].after is not None
    assert found.audit[0].after["name"] == theirs.name
    assert repo.contact_cases(phone_key) == []
