"""One contract, two adapters: the in-memory `ReferralRepository` the domain tests use behaves as
the DynamoDB one (over moto) does: what each stores, lists and refuses, and the outbox items
written with each change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sotong import clock, keys
from sotong.network.records import Referral
from sotong.network.repository import DynamoReferralRepository, ReferralRepository
from sotong.notify import txoutbox
from sotong.notify.model import MessageRequest, Recipient
from tests.fakes.network import InMemoryReferralRepository

NOW = datetime(2027, 2, 7, 12, 0, tzinfo=UTC)  # 21:00 in Seoul, 설날


@pytest.fixture(params=["memory", "dynamo"])
def repo(request: pytest.FixtureRequest) -> Iterator[ReferralRepository]:
    if request.param == "dynamo":
        request.getfixturevalue("aws")
    clock.fix(NOW)
    yield (
        DynamoReferralRepository("demo")
        if request.param == "dynamo"
        else (InMemoryReferralRepository())
    )
    clock.fix(None)


def outbox(repo: ReferralRepository) -> list[str]:
    if isinstance(repo, InMemoryReferralRepository):
        return sorted(r.idempotency_key for r in repo.outbox.requests)
    pending = txoutbox.pending(NOW + timedelta(days=3650), limit=1_000)
    return sorted(json.loads(p["request"])["idempotency_key"] for p in pending)


def referral(n: int, **overrides: object) -> Referral:
    given: dict[str, object] = {
        "id": f"r{n:016x}",
        "direction": "to_hospital",
        "partner_id": "hanbit-peds",
        "urgency": "urgent",
        "reason": "고열",
        "child_name": "김하준",
        "guardian_name": "박지은",
        "guardian_phone": "+821023456789",
        "guardian_consent": True,
        "requested_at": clock.iso(NOW + timedelta(minutes=n)),
        "requested_by": "peds.kim",
        "escalate_at": clock.iso(NOW + timedelta(minutes=n + 30)),
        **overrides,
    }
    return Referral(**given)  # type: ignore[arg-type]


def message(key: str) -> MessageRequest:
    return MessageRequest(
        idempotency_key=key,
        recipient=Recipient(phone="+821023456789", contact_consent=True),
        template_id="referral_sent",
        variables={"child": "김하준"},
    )


def test_add_read_and_refuse_twice(repo: ReferralRepository) -> None:
    first = referral(1)
    assert repo.add(first, [message("a")])
    assert not repo.add(first, [message("b")])  # stored once; its message with it, or not
    assert repo.referral(first.id) == first
    assert repo.referral("r" + "f" * 16) is None
    assert outbox(repo) == ["a"]


def test_save_is_conditional_on_the_version_read(repo: ReferralRepository) -> None:
    first = referral(1)
    repo.add(first, [])
    moved = first.moved("accepted", by="cs.kim", side="hospital", at=NOW)
    assert repo.save(first, moved, [message("accepted")])
    stale = first.moved("rejected", by="x", side="hospital", at=NOW, note="늦음")
    assert not repo.save(first, stale, [message("rejected")])
    assert repo.referral(first.id) == moved
    assert outbox(repo) == ["accepted"]


def test_lists_by_partner_and_by_month_newest_first(repo: ReferralRepository) -> None:
    for n, partner in ((1, "hanbit-peds"), (2, "sarang-night-peds"), (3, "hanbit-peds")):
        repo.add(referral(n, partner_id=partner), [])
    march = referral(4, requested_at="2027-03-01T00:00:00.000000Z")
    repo.add(march, [])
    assert [r.id for r in repo.of_partner("hanbit-peds")] == [
        march.id,
        referral(3).id,
        referral(1).id,
    ]
    assert [r.id for r in repo.of_month("2027-02")] == [referral(n).id for n in (3, 2, 1)]
    assert [r.id for r in repo.of_month("2027-03")] == [march.id]
    assert repo.of_partner("hanbit-peds", limit=1)[0].id == march.id


def test_unanswered_are_read_by_time_and_leave_when_answered_or_escalated(
    repo: ReferralRepository,
) -> None:
    waiting, answered, escalated = referral(1), referral(2), referral(3)
    never = referral(4, escalate_at=None)
    for r in (waiting, answered, escalated, never):
        repo.add(r, [])
    repo.save(answered, answered.moved("accepted", by="a", side="hospital", at=NOW), [])
    repo.save(escalated, escalated.escalated(NOW), [])
    found = repo.unanswered(NOW, NOW + timedelta(hours=2))
    assert [r.id for r in found] == [waiting.id]
    assert repo.unanswered(NOW + timedelta(minutes=31), NOW + timedelta(hours=2)) == []
    assert repo.unanswered(NOW, NOW + timedelta(minutes=30)) == []  # due at 31 minutes: not yet
    assert [r.id for r in repo.unanswered(NOW, NOW + timedelta(minutes=31))] == [waiting.id]


def test_watermarks(repo: ReferralRepository) -> None:
    assert repo.watermark("referral_escalation") is None
    repo.set_watermark("referral_escalation", NOW)
    assert repo.watermark("referral_escalation") == NOW


def test_a_referral_keeps_attributes_it_does_not_name(repo: ReferralRepository) -> None:
    first = replace(referral(1), extra={"emr_ref": "E-1"})
    repo.add(first, [])
    found = repo.referral(first.id)
    assert found is not None
    assert found.extra == {"emr_ref": "E-1"}


def test_an_erasure_anonymises_the_referrals_of_a_guardian_phone(repo: ReferralRepository) -> None:
    mine = referral(1, child_birth_date="2022-05-01", department="pediatrics")
    mine = mine.moved("rejected", by="cs.kim", side="hospital", at=NOW, note="김하준 보호자 요청")
    other_child = referral(2, child_name="김하은")
    someone_else = referral(3, guardian_phone="+821099998888", guardian_name="이영희")
    for r in (mine, other_child, someone_else):
        assert repo.add(r, [])
    phone_key = keys.recipient_key("demo", "+821023456789")
    assert sorted(r.id for r in repo.of_guardian(phone_key)) == [mine.id, other_child.id]

    # a phone another patient still has: only the erased child's referrals go
    assert repo.erase_guardian(phone_key, child_name="김하준") == 1
    gone = repo.referral(mine.id)
    assert gone is not None
    assert gone.erased_at == clock.iso(NOW)
    text = json.dumps(gone.to_item(), ensure_ascii=False)
    for needle in ("김하준", "박지은", "23456789", "고열", "2022-05-01", "보호자 요청"):
        assert needle not in text
    # what the monthly report counts stays
    assert (gone.partner_id, gone.urgency, gone.direction, gone.status) == (
        mine.partner_id,
        mine.urgency,
        mine.direction,
        "rejected",
    )
    assert (gone.requested_at, gone.closed_at, gone.department) == (
        mine.requested_at,
        mine.closed_at,
        "pediatrics",
    )
    assert [s.status for s in gone.history] == ["rejected"]
    assert not gone.guardian_consent
    assert repo.referral(other_child.id) == other_child

    # the phone's own erasure: the rest of it, once; someone else's phone untouched
    assert [r.id for r in repo.of_guardian(phone_key)] == [other_child.id]
    assert repo.erase_guardian(phone_key) == 1
    assert repo.erase_guardian(phone_key) == 0
    assert repo.of_guardian(phone_key) == []
    assert repo.referral(other_child.id).child_name == ""  # type: ignore[union-attr]
    assert repo.referral(someone_else.id) == someone_else
    assert len(repo.of_month("2027-02")) == 3  # still counted
    assert repo.erase_guardian(keys.recipient_key("demo", "+821000000000")) == 0


def test_an_erased_referral_sends_the_guardian_nothing_and_can_still_move(
    repo: ReferralRepository,
) -> None:
    first = referral(1)
    repo.add(first, [])
    repo.erase_guardian(keys.recipient_key("demo", first.guardian_phone))
    erased = repo.referral(first.id)
    assert erased is not None
    assert erased.version == 2
    later = erased.moved("accepted", by="cs.kim", side="hospital", at=NOW)
    assert repo.save(erased, later, [])
    assert repo.referral(first.id) == later
