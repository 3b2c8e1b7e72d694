"""The complaints port's contract, run on the in-memory fake (`tests/fakes/complaints.py`) and on
the DynamoDB adapter over moto: what the domain tests rely on the fake for holds of the table."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from sotong import clock, store
from sotong.complaints.record import Complaint, Contact, Event
from sotong.complaints.repository import (
    ALL_DEPARTMENTS,
    MESSAGE_PART,
    ComplaintRepository,
    ContactConsent,
    DynamoComplaintRepository,
    ReceivedText,
    ReplyLink,
)
from sotong.notify import txoutbox
from sotong.notify.model import MessageRequest, Recipient
from tests.fakes.complaints import InMemoryComplaintRepository

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def stamp(hours: float) -> str:
    return clock.iso(T0 + timedelta(hours=hours))


@dataclass
class Backend:
    repo: ComplaintRepository
    sent: Callable[[], list[str]]
    """the idempotency keys of the outbox messages written so far"""
    entry: Callable[[bool], ReplyLink]
    """a recall conversation entry to link a complaint to: one that exists, or one that is gone"""


def _memory() -> Backend:
    fake = InMemoryComplaintRepository()

    def entry(exists: bool) -> ReplyLink:
        link = ReplyLink(partition="PAT#p1", sort=f"CONV#{exists}", urgency="high")
        if not exists:
            fake.gone_entries.add((link.partition, link.sort))
        return link

    return Backend(fake, lambda: sorted(r.idempotency_key for r in fake.outbox.requests), entry)


def _dynamo() -> Backend:
    def sent() -> list[str]:
        pending = txoutbox.pending(clock.now() + timedelta(days=3650), limit=1000)
        return sorted(json.loads(e["request"])["idempotency_key"] for e in pending)

    def entry(exists: bool) -> ReplyLink:
        link = ReplyLink(partition="PAT#p1", sort=f"CONV#{exists}", urgency="high")
        if exists:
            store.put_new({"pk": link.partition, "sk": link.sort, "direction": "in"})
        return link

    return Backend(DynamoComplaintRepository("demo"), sent, entry)


@pytest.fixture(params=["memory", "dynamo"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "dynamo":
        request.getfixturevalue("aws")
    clock.fix(T0)
    yield _memory() if request.param == "memory" else _dynamo()
    clock.fix(None)


def complaint(cid: str = "c1", **changes: object) -> Complaint:
    base = Complaint(
        id=cid,
        code=f"CODE-{cid}",
        fingerprint="f" * 16,
        channel="web",
        kind="complaint",
        category="wait_time",
        urgency="normal",
        department="front_desk",
        status="received",
        text="대기시간이 너무 길었습니다.",
        contact=Contact(phone="+821012345678"),
        consent_to_contact=True,
        classifier={"kind": "complaint", "matched": ["대기"], "by": "rules"},
        routing={"department": "front_desk", "by": "rules"},
        created_at=stamp(0),
        updated_at=stamp(0),
        sla_clocks={"ack": "calendar", "resolve": "calendar"},
        ack_due=stamp(24),
        ack_due_2=stamp(36),
        resolve_due=stamp(168),
        resolve_due_2=stamp(252),
        history=(Event(status="received", by="web", at=stamp(0)),),
        sla_next_check=stamp(24),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def alert(key: str) -> MessageRequest:
    return MessageRequest(
        idempotency_key=key,
        recipient=Recipient(kind="staff", name="당직", phone="010-2000-1999"),
        template_id="staff_alert",
        variables={"level": "긴급", "department": "-", "code": "X", "reason": "-"},
    )


def text(key: str, seq: int, body: str = "주차장이 좁아요") -> ReceivedText:
    return ReceivedText(
        key=key, seq=seq, received_at=stamp(seq), stored_at=stamp(seq), channel="sms", text=body
    )


def test_a_created_complaint_reads_back_as_written(backend: Backend) -> None:
    repo = backend.repo
    written = complaint(source={"kind": "recall_reply", "touchpoint": None})
    assert repo.create(written, messages=[alert("a:1")])
    stored = repo.get("c1")
    assert stored == replace(written, source={"kind": "recall_reply"})  # unset: left out
    assert repo.by_code(written.code) == stored
    assert repo.get_many(["c1", "nothing"]) == [stored]
    assert backend.sent() == ["a:1"]


def test_a_second_create_of_an_id_writes_nothing(backend: Backend) -> None:
    repo = backend.repo
    assert repo.create(complaint(), messages=[alert("a:1")])
    again = complaint(text="다른 내용")
    assert not repo.create(again, messages=[alert("a:2")], sender_key="s1")
    assert repo.get("c1") == complaint()
    assert backend.sent() == ["a:1"]
    assert repo.open_for_sender("s1") is None


def test_a_replace_from_a_stale_version_writes_nothing(backend: Backend) -> None:
    repo = backend.repo
    first = complaint()
    assert repo.create(first)
    second = replace(first, version=2, status="assigned")
    assert repo.replace(first, second, messages=[alert("a:2")], sender_key="s1")
    assert not repo.replace(
        first, replace(first, version=2, status="resolved"), messages=[alert("a:3")]
    )
    assert not repo.replace(complaint("c9"), complaint("c9", version=2))  # gone: refused too
    assert repo.get("c1") == second
    assert repo.get("c9") is None
    assert backend.sent() == ["a:2"]
    assert repo.open_for_sender("s1") == "c1"


def test_the_inbox_pages_newest_first_within_its_listing(backend: Backend) -> None:
    repo = backend.repo
    for n in range(5):
        department = "dental" if n == 2 else "front_desk"
        status = "assigned" if n == 3 else "received"
        channel = "phone" if n == 1 else "web"
        assert repo.create(
            complaint(
                f"c{n}", created_at=stamp(n), department=department, status=status, channel=channel
            )
        )
    assert repo.create(complaint("c9", status="resolved", sla_next_check=None))
    page, cursor = repo.inbox("front_desk", "open", limit=2)
    assert [c.id for c in page] == ["c4", "c3"]
    assert cursor is not None
    rest, _ = repo.inbox("front_desk", "open", limit=10, cursor=cursor)
    assert [c.id for c in rest] == ["c1", "c0"]
    everyone, _ = repo.inbox(ALL_DEPARTMENTS, "open", limit=10)
    assert [c.id for c in everyone] == ["c4", "c3", "c2", "c1", "c0"]
    ranged, _ = repo.inbox(ALL_DEPARTMENTS, "open", limit=10, since=stamp(1), until=stamp(3))
    assert [c.id for c in ranged] == ["c3", "c2", "c1"]
    assigned, _ = repo.inbox("front_desk", "open", limit=10, status="assigned")
    assert [c.id for c in assigned] == ["c3"]
    by_phone, _ = repo.inbox(ALL_DEPARTMENTS, "open", limit=10, channel="phone")
    assert [c.id for c in by_phone] == ["c1"]
    assert [c.id for c in repo.inbox("front_desk", "resolved", limit=10)[0]] == ["c9"]
    with pytest.raises(ValueError, match="another listing"):
        repo.inbox("dental", "open", limit=2, cursor=cursor)
    with pytest.raises(ValueError, match="not a cursor"):
        repo.inbox("front_desk", "open", limit=2, cursor=cursor[:-3] + "abc")


def test_due_sla_finds_the_checks_in_the_window(backend: Backend) -> None:
    repo = backend.repo
    for cid, hours in (("c1", 1), ("c2", 2), ("c3", 3)):
        assert repo.create(complaint(cid, sla_next_check=stamp(hours)))
    assert repo.create(complaint("c4", sla_next_check=None))
    due = repo.due_sla(T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    assert [c.id for c in due] == ["c2", "c3"]
    assert repo.sla_watermark() is None
    repo.set_sla_watermark(T0)
    assert repo.sla_watermark() == T0


def test_an_inbound_message_is_taken_once_and_read_back_whole(backend: Backend) -> None:
    repo = backend.repo
    long = "가" * MESSAGE_PART + "나" * 10
    assert repo.create(complaint(), received=text("m-1", 1, long))
    assert repo.inbound_seen("m-1")
    assert not repo.inbound_seen("m-2")
    first = complaint()
    second = replace(first, version=2, message_count=2)
    assert not repo.replace(first, second, received=text("m-1", 2))  # taken before
    assert repo.replace(first, second, received=text("m-2", 2))
    assert repo.messages("c1") == [
        {"id": "m-1", "received_at": stamp(1), "channel": "sms", "text": long},
        {"id": "m-2", "received_at": stamp(2), "channel": "sms", "text": "주차장이 좁아요"},
    ]
    assert repo.inbound_keys("c1") == {"m-1", "m-2"}
    assert not repo.create(complaint("c2"), received=text("m-2", 1))
    assert repo.get("c2") is None


def test_a_complaint_from_a_recall_reply_needs_the_reply(backend: Backend) -> None:
    repo = backend.repo
    assert not repo.create(complaint("c1"), reply=backend.entry(False))
    assert repo.get("c1") is None
    assert repo.create(complaint("c2"), reply=backend.entry(True))


def test_the_open_pointer_is_forgotten_only_for_its_complaint(backend: Backend) -> None:
    repo = backend.repo
    assert repo.create(complaint(), sender_key="s1")
    repo.forget_open("s1", "c2")
    assert repo.open_for_sender("s1") == "c1"
    repo.forget_open("s1", "c1")
    assert repo.open_for_sender("s1") is None


def test_corrections_are_listed_by_month(backend: Backend) -> None:
    repo = backend.repo
    for cid in ("c1", "c2"):
        first = complaint(cid)
        assert repo.create(first)
        at = stamp(5 if cid == "c1" else 3)
        fixed = replace(first, version=2, correction={"urgency": "high", "by": "x", "at": at})
        assert repo.replace(first, fixed, label_at=at)
    assert repo.corrected_in("2026-11") == ["c2", "c1"]
    assert repo.corrected_in("2026-12") == []


def test_erasing_a_complaint_removes_what_names_it(backend: Backend) -> None:
    repo = backend.repo
    consent = ContactConsent(address="+821012345678", source="form")
    assert repo.create(
        complaint(),
        contact_keys=["k1"],
        consents=[consent],
        sender_key="k1",
        received=text("m-1", 1),
    )
    assert repo.create(complaint("c2"), contact_keys=["k1"])
    assert repo.complaints_of_contact("k1") == ["c1", "c2"]
    found = repo.get("c1")
    removed = repo.erase("c1", ["k1"], found)
    assert removed["complaint_messages"] == 1
    assert repo.get("c1") is None
    assert repo.messages("c1") == []
    assert repo.complaints_of_contact("k1") == ["c2"]
    assert repo.open_for_sender("k1") is None
    assert repo.erase("c1", ["k1"], None)["complaint_messages"] == 0  # again: nothing left


def test_the_rate_limit_counts_per_window(backend: Backend) -> None:
    repo = backend.repo
    assert [repo.hit_rate_limit("submit:x", 60, 2) for _ in range(3)] == [False, False, True]
    assert not repo.hit_rate_limit("submit:y", 60, 2)
    clock.fix(T0 + timedelta(seconds=60))
    assert not repo.hit_rate_limit("submit:x", 60, 2)


def test_open_complaints_of_a_department_newest_first(backend: Backend) -> None:
    repo = backend.repo
    for n in range(4):
        assert repo.create(complaint(f"c{n}", created_at=stamp(n)))
    assert repo.create(complaint("c8", department="dental"))
    assert repo.create(complaint("c9", status="resolved", sla_next_check=None))
    assert [c.id for c in repo.open_complaints("front_desk", 10)] == ["c3", "c2", "c1", "c0"]
    assert [c.id for c in repo.open_complaints("front_desk", 2)] == ["c3", "c2"]
    assert repo.open_complaints("qi", 10) == []


def test_a_digest_is_written_once_per_department_and_day(backend: Backend) -> None:
    repo = backend.repo
    assert repo.record_digest("dental", "2026-11-23", [alert("digest:dental:1"), alert("d:2")])
    assert not repo.record_digest("dental", "2026-11-23", [alert("digest:dental:again")])
    assert repo.record_digest("dental", "2026-11-24", [alert("digest:dental:next")])
    assert repo.record_digest("qi", "2026-11-23", [alert("digest:qi:1")])
    assert backend.sent() == [
        "d:2",
        "digest:dental:1",
        "digest:dental:next",
        "digest:qi:1",
    ]
