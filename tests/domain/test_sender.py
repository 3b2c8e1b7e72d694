"""The sender's promises over in-memory records and a counting provider: each message is
accepted by the provider once, whatever comes back twice, times out or races."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sotong import clock
from sotong.config import load_hospital
from sotong.config.schema import HospitalConfig
from sotong.notify.model import MessageRequest, Recipient, message_id
from sotong.notify.sender import LOOKUP_DELAY_S, BatchSender, Incoming
from tests.fakes.notify import CountingProvider, InMemoryMessageRecords, OneProvider, UnlimitedRate

NOON_KST = datetime(2027, 3, 2, 3, 0, tzinfo=UTC)
NIGHT_KST = datetime(2027, 3, 2, 14, 0, tzinfo=UTC)  # 23:00 in Seoul


@pytest.fixture(autouse=True)
def _fixed_clock() -> Iterator[None]:
    clock.fix(NOON_KST)
    yield
    clock.fix(None)


def _request(n: int, *, purpose: str = "care") -> MessageRequest:
    return MessageRequest(
        idempotency_key=f"domain:{n}",
        recipient=Recipient(name="홍길동", phone=f"010-5000-{n:04d}", contact_consent=True),
        template_id="dental_aftercare",
        variables={"hospital": "소통치과", "name": "홍길동", "callback": "02-555-0100"},
        refs={"touchpoint": f"tp-{n}"},
    )


def _sender(
    provider: CountingProvider,
    records: InMemoryMessageRecords,
    hospital: HospitalConfig | None = None,
    erased: frozenset[str] = frozenset(),
) -> BatchSender:
    return BatchSender(
        hospital or load_hospital(),
        OneProvider(provider),
        records=records,
        rate=UnlimitedRate(),
        erased=lambda _h, requests: [r.recipient.phone in erased for r in requests],
    )


def test_a_batch_with_a_request_twice_is_sent_once() -> None:
    provider, records = CountingProvider(), InMemoryMessageRecords()
    out = _sender(provider, records).process(
        [Incoming("a", _request(1)), Incoming("b", _request(1)), Incoming("c", _request(2))]
    )
    assert [out[k].status for k in "abc"] == ["sent", "duplicate", "sent"]
    assert sorted(provider.accepted.values()) == [1, 1]


def test_a_redelivered_request_after_the_send_is_not_sent_again() -> None:
    provider, records = CountingProvider(), InMemoryMessageRecords()
    sender = _sender(provider, records)
    sender.process([Incoming("a", _request(1))])
    again = sender.process([Incoming("a", _request(1), receives=2)])["a"]
    assert again.status == "sent"
    assert again.reason == "duplicate request: already handled"
    assert provider.calls == 1


def test_a_timeout_the_provider_kept_is_confirmed_by_lookup_never_resent() -> None:
    provider = CountingProvider(script=["uncertain_kept"])
    records = InMemoryMessageRecords()
    sender = _sender(provider, records)
    first = sender.process([Incoming("a", _request(1))])["a"]
    assert first.status == "uncertain"
    assert first.retry_in_s == LOOKUP_DELAY_S
    clock.fix(NOON_KST + timedelta(seconds=LOOKUP_DELAY_S + 1))
    second = sender.process([Incoming("a", _request(1), receives=2)])["a"]
    assert second.status == "sent"
    assert second.reason == "confirmed by the provider"
    assert provider.accepted[message_id("demo", "domain:1")] == 1
    assert provider.calls == 1


def test_a_timeout_the_provider_lost_is_sent_again_once_its_log_had_time() -> None:
    provider = CountingProvider(script=["uncertain_lost"])
    records = InMemoryMessageRecords()
    sender = _sender(provider, records)
    sender.process([Incoming("a", _request(1))])
    too_soon = sender.process([Incoming("a", _request(1), receives=2)])["a"]
    assert too_soon.status == "uncertain"
    assert provider.calls == 1
    clock.fix(NOON_KST + timedelta(seconds=LOOKUP_DELAY_S + 1))
    later = sender.process([Incoming("a", _request(1), receives=3)])["a"]
    assert later.status == "sent"
    assert sum(provider.accepted.values()) == 1
    assert provider.calls == 2


def test_a_sender_that_died_in_the_call_leaves_the_message_to_a_lookup() -> None:
    provider, records = CountingProvider(), InMemoryMessageRecords()
    request = _request(1)
    mid = message_id("demo", request.idempotency_key)
    assert records.claim_calling(mid, request, "demo", None, channel="alimtalk", provider="x")
    provider.accepted[mid] += 1  # the dead sender's call went through
    clock.fix(NOON_KST + records.LEASE + timedelta(seconds=LOOKUP_DELAY_S + 1))
    out = _sender(provider, records).process([Incoming("a", request, receives=2)])["a"]
    assert out.status == "sent"
    assert provider.accepted[mid] == 1
    assert provider.calls == 0


def test_a_live_claim_of_another_sender_is_left_alone() -> None:
    provider, records = CountingProvider(), InMemoryMessageRecords()
    request = _request(1)
    mid = message_id("demo", request.idempotency_key)
    records.claim_calling(mid, request, "demo", None, channel="alimtalk", provider="x")
    out = _sender(provider, records).process([Incoming("a", request, receives=2)])["a"]
    assert out.status == "calling"
    assert out.handed_back
    assert provider.calls == 0


def test_retryable_answers_go_back_then_end_as_failed_with_the_reason() -> None:
    provider = CountingProvider(script=["retryable"] * 6)
    records = InMemoryMessageRecords()
    sender = _sender(provider, records)
    outcomes = [sender.process([Incoming("a", _request(1), receives=n)])["a"] for n in range(1, 7)]
    assert [o.status for o in outcomes] == ["retry"] * 5 + ["failed"]
    assert outcomes[-1].reason == "retries_exhausted: scripted retryable"
    assert sum(provider.accepted.values()) == 0


def test_an_erased_patient_is_never_sent_and_gets_no_record() -> None:
    provider, records = CountingProvider(), InMemoryMessageRecords()
    sender = _sender(provider, records, erased=frozenset({"+821050000001"}))
    out = sender.process([Incoming("a", _request(1)), Incoming("b", _request(2))])
    assert out["a"].status == "suppressed"
    assert out["b"].status == "sent"
    assert provider.calls == 1
    assert message_id("demo", "domain:1") not in records.by_id


def test_an_opt_out_suppresses_without_a_call() -> None:
    provider, records = CountingProvider(), InMemoryMessageRecords()
    records.opt_outs["+821050000001"] = {"all"}
    out = _sender(provider, records).process([Incoming("a", _request(1))])["a"]
    assert out.status == "suppressed"
    assert provider.calls == 0
    assert records.by_id[message_id("demo", "domain:1")].status == "suppressed"
