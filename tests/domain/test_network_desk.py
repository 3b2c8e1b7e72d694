"""The network desk over the in-memory referral repository: the closed loop of a referral, who
may see and move it, the guardian told at each step without the reason, the escalation of an
unanswered urgent referral (once), and the monthly report."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sotong import clock, keys
from sotong.config import load_hospital
from sotong.errors import BadRequest, Conflict, Forbidden, NotFound
from sotong.health_terms import find_terms
from sotong.network.service import NetworkDesk, NewReferral
from sotong.notify.rules import fill
from sotong.staff import Staff
from tests.fakes.network import InMemoryReferralRepository

KST = ZoneInfo("Asia/Seoul")
START = datetime(2027, 2, 7, 20, 40, tzinfo=KST)  # 설날, in the evening
ADMIN = Staff("cs.kim", "cs_admin", "customer_service")
DOCTOR = Staff("dental.lee", "department_staff", "dental")
HANBIT = Staff("peds.kim", "partner", None, "hanbit-peds")
OTHER = Staff("night.park", "partner", None, "sarang-night-peds")
REASON = "39도 고열이 이틀째, 탈수 의심 (중등증): 수액 치료 필요"


@pytest.fixture
def repo() -> InMemoryReferralRepository:
    return InMemoryReferralRepository()


@pytest.fixture
def desk(repo: InMemoryReferralRepository) -> Iterator[NetworkDesk]:
    clock.fix(START)
    yield NetworkDesk(load_hospital(), repo)
    clock.fix(None)


def new(
    urgency: str = "urgent", partner_id: str | None = None, consent: bool = True
) -> NewReferral:
    return NewReferral(
        partner_id=partner_id,
        urgency=urgency,
        reason=REASON,
        child_name="김하준",
        child_birth_date="2022-05-01",
        guardian_name="박지은",
        guardian_phone="+821023456789",
        guardian_consent=consent,
    )


def texts(desk: NetworkDesk, repo: InMemoryReferralRepository) -> list[str]:
    out = []
    for request in repo.outbox.requests:
        template = desk.hospital.template(request.template_id)
        assert template is not None
        out.append(fill(template.text, request.variables))
    return out


def later(minutes: int) -> None:
    clock.fix(clock.now() + timedelta(minutes=minutes))


def test_a_partner_refers_and_the_hospital_closes_the_loop(
    desk: NetworkDesk, repo: InMemoryReferralRepository
) -> None:
    body, created = desk.refer(HANBIT, new())
    assert created
    assert body["status"] == "requested"
    assert body["direction"] == "to_hospital"
    assert body["receiver"] == "hospital"
    rid = body["id"]
    later(12)
    accepted = desk.act(ADMIN, rid, "accepted")
    assert accepted["status"] == "accepted"
    assert accepted["accepted_at"]
    visit = START + timedelta(minutes=50)
    scheduled = desk.act(ADMIN, rid, "accepted", scheduled_for=visit)
    assert scheduled["scheduled_for"] == clock.iso(visit)
    later(40)
    assert desk.act(DOCTOR, rid, "in-progress")["seen_at"]
    later(30)
    done = desk.act(DOCTOR, rid, "completed")
    assert done["status"] == "completed"
    assert done["closed_at"]
    assert [s["status"] for s in done["history"]] == [
        "requested",
        "accepted",
        "accepted",
        "in-progress",
        "completed",
    ]
    assert repo.outbox.templates() == [
        "referral_sent",
        "referral_accepted",
        "referral_scheduled",
        "referral_completed",
    ]
    # the guardian is told the place, the time and the number, never the reason
    for text in texts(desk, repo):
        assert "고열" not in text
        assert "탈수" not in text
        assert "수액" not in text
        assert find_terms(text) == []
        assert "김하준" in text
    assert "02월 07일 21:30" in texts(desk, repo)[2]
    assert all(r.recipient.phone == "+821023456789" for r in repo.outbox.requests)


def test_the_hospital_refers_to_a_partner_who_may_decline(
    desk: NetworkDesk, repo: InMemoryReferralRepository
) -> None:
    body, _ = desk.refer(ADMIN, new("routine", partner_id="hanbit-peds"))
    rid = body["id"]
    with pytest.raises(Forbidden) as refused:
        desk.act(ADMIN, rid, "accepted")  # the receiving side accepts: the partner
    assert refused.value.field == "body.status"
    with pytest.raises(BadRequest) as unsaid:
        desk.act(HANBIT, rid, "rejected")
    assert unsaid.value.field == "body.note"
    declined = desk.act(HANBIT, rid, "rejected", note="오늘 야간 진료 인력 부족")
    assert declined["status"] == "rejected"
    assert declined["status_reason"]
    assert repo.outbox.templates() == ["referral_sent", "referral_declined"]
    with pytest.raises(Conflict) as final:
        desk.act(HANBIT, rid, "accepted")
    assert final.value.field == "body.status"


def test_partners_see_only_their_own_organisations_referrals(desk: NetworkDesk) -> None:
    mine, _ = desk.refer(HANBIT, new())
    theirs, _ = desk.refer(OTHER, new())
    for_hanbit, _ = desk.refer(ADMIN, new(partner_id="hanbit-peds"))
    listed = {r["id"] for r in desk.listing(HANBIT)["referrals"]}
    assert listed == {mine["id"], for_hanbit["id"]}
    with pytest.raises(NotFound) as hidden:
        desk.view(HANBIT, theirs["id"])
    assert hidden.value.field == "path.referral_id"
    with pytest.raises(NotFound):
        desk.act(HANBIT, theirs["id"], "cancelled")
    # the hospital's staff see the hospital's: every referral of the month
    assert len(desk.listing(DOCTOR, "2027-02")["referrals"]) == 3
    # a partner refers as itself only, and only to the hospital
    with pytest.raises(Forbidden) as other:
        desk.refer(HANBIT, new(partner_id="sarang-night-peds"))
    assert other.value.field == "body.partner_id"
    with pytest.raises(BadRequest) as unknown:
        desk.refer(ADMIN, new(partner_id="nowhere-clinic"))
    assert unknown.value.field == "body.partner_id"


def test_the_requester_cancels_and_a_retry_is_the_same_referral(
    desk: NetworkDesk, repo: InMemoryReferralRepository
) -> None:
    first, created = desk.refer(HANBIT, new(), idempotency_key="emr-4711")
    again, created_again = desk.refer(HANBIT, new(), idempotency_key="emr-4711")
    assert created
    assert not created_again
    assert again["id"] == first["id"]
    with pytest.raises(Forbidden):
        desk.act(ADMIN, first["id"], "cancelled")  # the hospital did not request it
    desk.act(HANBIT, first["id"], "cancelled", note="보호자가 다른 병원으로 이동")
    assert repo.outbox.templates() == ["referral_sent", "referral_cancelled"]


def test_no_consent_no_message(desk: NetworkDesk, repo: InMemoryReferralRepository) -> None:
    body, _ = desk.refer(HANBIT, new(consent=False))
    desk.act(ADMIN, body["id"], "accepted")
    assert repo.outbox.requests == []


def test_an_unanswered_urgent_referral_pages_on_call_once(
    desk: NetworkDesk, repo: InMemoryReferralRepository
) -> None:
    urgent, _ = desk.refer(HANBIT, new("emergent"))  # accept within 30 minutes
    routine, _ = desk.refer(HANBIT, new("routine"))  # never escalates
    answered, _ = desk.refer(HANBIT, new("emergent"))
    desk.act(ADMIN, answered["id"], "accepted")
    assert desk.sweep(clock.now() + timedelta(minutes=29)) == {"escalated": 0}
    assert desk.sweep(clock.now() + timedelta(minutes=31)) == {"escalated": 1}
    assert desk.sweep(clock.now() + timedelta(minutes=36)) == {"escalated": 0}  # idempotent
    pages = [r for r in repo.outbox.requests if r.template_id == "staff_alert"]
    assert len(pages) == 1
    assert pages[0].recipient.kind == "staff"
    assert pages[0].urgent
    assert pages[0].variables["code"] == urgent["id"]
    assert REASON not in " ".join(pages[0].variables.values())
    assert desk.view(ADMIN, urgent["id"])["escalated_at"]
    assert "escalated_at" not in desk.view(ADMIN, routine["id"])


def test_the_monthly_report_by_partner_and_urgency(desk: NetworkDesk) -> None:
    one, _ = desk.refer(HANBIT, new("urgent"))
    two, _ = desk.refer(HANBIT, new("routine"))
    desk.refer(OTHER, new("urgent"))
    later(10)
    desk.act(ADMIN, one["id"], "accepted")
    later(20)
    desk.act(ADMIN, one["id"], "completed")
    desk.act(ADMIN, two["id"], "rejected", note="예약 마감")
    report = desk.report("2027-02")
    assert report["total"]["referrals"] == 3
    assert report["by_urgency"]["urgent"]["referrals"] == 2
    row = next(
        r for r in report["rows"] if r["partner_id"] == "hanbit-peds" and r["urgency"] == "urgent"
    )
    assert row["median_minutes_to_accept"] == 10.0
    assert row["median_minutes_to_be_seen"] == 30.0
    assert row["by_status"] == {"completed": 1}
    assert row["partner"] == "한빛소아청소년과의원"
    assert desk.report("2027-03")["total"]["referrals"] == 0


def test_urgent_referrals_tell_the_guardian_at_once_routine_ones_wait_for_morning(
    desk: NetworkDesk, repo: InMemoryReferralRepository
) -> None:
    desk.refer(HANBIT, new("emergent"))
    desk.refer(HANBIT, new("routine"))
    assert [r.urgent for r in repo.outbox.requests] == [True, False]  # 20:40: quiet hours at 21


def test_an_erased_guardians_referrals_still_count_and_tell_nobody(
    desk: NetworkDesk, repo: InMemoryReferralRepository
) -> None:
    one, _ = desk.refer(HANBIT, new("urgent"))
    later(10)
    desk.act(ADMIN, one["id"], "accepted")
    before = desk.report("2027-02")
    sent = len(repo.outbox.requests)
    assert repo.erase_guardian(keys.recipient_key("demo", "+821023456789")) == 1
    shown = desk.view(ADMIN, one["id"])
    assert (shown["child_name"], shown["guardian_phone"], shown["reason"]) == ("", "", "")
    assert desk.report("2027-02") == before  # the same anonymous counts
    later(20)
    desk.act(ADMIN, one["id"], "completed")
    assert len(repo.outbox.requests) == sent  # consent went with the guardian: no message
    assert desk.report("2027-02")["total"]["by_status"] == {"completed": 1}
