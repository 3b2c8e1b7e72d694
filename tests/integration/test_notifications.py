"""The notification pipeline inside one process: queue -> sender -> provider -> record."""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest
from botocore.exceptions import ClientError

from sotong import clock
from sotong.config.schema import HospitalConfig
from sotong.notify import outbox, ratelimit, records, txoutbox
from sotong.notify.model import MessageRequest, Recipient, message_id
from sotong.notify.providers.base import Lookup, OutgoingMessage, SendResult
from sotong.notify.release import release_due
from sotong.notify.sender import RetryLater, process
from sotong.resources import NOTIFICATIONS, function
from sotong_local.events import sqs_event
from sotong_local.lambdas import LambdaContext
from tests.integration.conftest import receive_all

KST = ZoneInfo("Asia/Seoul")
ARN = "arn:aws:sqs:ap-northeast-2:123456789012:sotong-local-notifications"
PATIENT = Recipient(name="홍길동", phone="010-1234-5678", contact_consent=True)


def at_kst(*args: int) -> datetime:
    return datetime(*args, tzinfo=KST)


def aftercare(key: str = "touchpoint-1", **changes: Any) -> MessageRequest:
    data: dict[str, Any] = {
        "idempotency_key": key,
        "recipient": PATIENT,
        "template_id": "dental_aftercare",
        "variables": {"hospital": "소통치과", "name": "홍길동", "callback": "02-555-0100"},
        "refs": {"touchpoint": key},
    }
    data.update(changes)
    return MessageRequest.model_validate(data)


def advert(key: str, recipient: Recipient) -> MessageRequest:
    return MessageRequest(
        idempotency_key=key,
        recipient=recipient,
        template_id="scaling_next_step",
        purpose="marketing",
        variables={
            "hospital": "소통치과",
            "name": "홍길동",
            "callback": "02-555-0100",
            "opt_out": "080-555-0100",
        },
    )


def run_sender(env: dict[str, str], redeliver_now: bool = False) -> dict[str, Any]:
    """Receive what is on the queue and hand it to the real handler as an SQS event; delete the
    successes as the Lambda service does, and optionally make the failures visible again now."""
    module = importlib.import_module("notification_sender")
    messages = receive_all(env[NOTIFICATIONS.env])
    if not messages:
        return {"batchItemFailures": [], "count": 0}
    result: dict[str, Any] = module.handler(
        sqs_event(messages, ARN), LambdaContext(function("notification_sender"))
    )
    sqs = boto3.client("sqs")
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    for message in messages:
        if message["MessageId"] not in failed:
            sqs.delete_message(
                QueueUrl=env[NOTIFICATIONS.env], ReceiptHandle=message["ReceiptHandle"]
            )
        elif redeliver_now:
            sqs.change_message_visibility(
                QueueUrl=env[NOTIFICATIONS.env],
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=0,
            )
    return {**result, "count": len(messages)}


def enqueue(requests: list[MessageRequest]) -> int:
    """What a producer does (outbox items), then what the relay does (publish them)."""
    txoutbox.write("demo", requests)
    return txoutbox.flush()


class ScriptedProvider:
    """Answers from a script; `has` is what it really accepted, which `lookup` reports."""

    name = "scripted"
    max_batch = 100

    def __init__(self, *results: SendResult) -> None:
        self.results = list(results)
        self.sent: list[OutgoingMessage] = []
        self.has: set[str] = set()
        self.lookups = 0

    def send(self, message: OutgoingMessage) -> SendResult:
        self.sent.append(message)
        result = self.results.pop(0) if self.results else SendResult("accepted", "p-1")
        if result.outcome in ("accepted", "uncertain"):
            self.has.add(message.message_id)
        return result

    def send_many(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        return [self.send(m) for m in messages]

    def lookup(self, message: OutgoingMessage, sent_after: datetime) -> Lookup:
        self.lookups += 1
        return Lookup(found=message.message_id in self.has)


def no_secret(name: str) -> str | None:
    return None


def test_queued_request_reaches_the_outbox_once(aws: dict[str, str]) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    enqueue([aftercare(), aftercare()])  # a producer that retried: same business key twice

    result = run_sender(aws)

    assert result["batchItemFailures"] == []
    sent = outbox.recent()
    assert len(sent) == 1
    assert sent[0]["channel"] == "alimtalk"
    assert "홍길동님, 어제 치료 후" in sent[0]["text"]
    assert "#{" not in sent[0]["text"]
    record = records.get(message_id("demo", "touchpoint-1"))
    assert record is not None
    assert record["status"] == "sent"
    assert [e["status"] for e in record["events"]] == ["calling", "sent"]
    assert "5678" in record["recipient"]
    assert "1234" not in record["recipient"]


def test_records_are_listed_per_recipient_and_per_reference(aws: dict[str, str]) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    enqueue([aftercare("tp-a"), aftercare("tp-b")])
    run_sender(aws)

    assert len(records.for_recipient("demo", "+821012345678")) == 2
    (only,) = records.for_ref("touchpoint", "tp-a")
    assert only["status"] == "sent"
    assert "request" not in only


def test_night_advertising_is_held_until_eight_and_then_sent(aws: dict[str, str]) -> None:
    fan = Recipient(phone="010-2222-3333", contact_consent=True, marketing_consent=True)
    clock.fix(at_kst(2026, 11, 23, 22, 30))
    enqueue([advert("campaign-1:fan", fan)])
    run_sender(aws)

    record = records.get(message_id("demo", "campaign-1:fan"))
    assert record is not None
    assert record["status"] == "held"
    assert record["reason"] == "night_advertising"
    assert record["release_at"] == "2026-11-23T23:00:00.000000Z"  # 08:00 KST next day
    assert outbox.recent() == []

    clock.fix(at_kst(2026, 11, 24, 7, 55))
    assert release_due(clock.now(), "demo") == 0
    clock.fix(at_kst(2026, 11, 24, 8, 0))
    assert release_due(clock.now(), "demo") == 1
    txoutbox.flush()
    run_sender(aws)

    (sent,) = outbox.recent()
    assert (sent["channel"], sent["sms_type"]) == ("sms", "LMS")  # the record's word, then LMS
    assert sent["text"].startswith("(광고) [소통치과피부과]")
    assert "무료수신거부 080-555-0100" in sent["text"]
    assert records.get(message_id("demo", "campaign-1:fan"))["status"] == "sent"  # type: ignore[index]
    assert release_due(clock.now(), "demo") == 0  # the watermark moved on: nothing twice


def test_night_consent_lets_an_advert_go_at_night(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    owl = Recipient(
        phone="010-2222-4444", contact_consent=True, marketing_consent=True, night_consent=True
    )
    clock.fix(at_kst(2026, 11, 23, 22, 30))
    # The demo's quiet hours (21-08) do not hold an ad the patient consented to at night.
    outcome = process(advert("c:owl", owl), hospital, lambda _: ScriptedProvider(), no_secret)
    assert outcome.status == "sent"
    service = process(aftercare("tp-owl"), hospital, lambda _: ScriptedProvider(), no_secret)
    assert service.reason == "quiet_hours"
    # A hospital stricter by choice (marketing.night_ads: never) holds it until 08:00.
    strict = hospital.model_copy(
        update={"marketing": hospital.marketing.model_copy(update={"night_ads": "never"})}
    )
    outcome = process(advert("c:owl2", owl), strict, lambda _: ScriptedProvider(), no_secret)
    assert (outcome.status, outcome.reason) == ("held", "night_advertising")


def test_service_messages_wait_for_quiet_hours_to_end_but_staff_alerts_do_not(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    clock.fix(at_kst(2026, 11, 23, 23, 0))
    assert process(aftercare(), hospital, lambda _: ScriptedProvider(), no_secret).status == "held"
    alert = MessageRequest(
        idempotency_key="alert-1",
        recipient=Recipient(kind="staff", phone="010-2000-1999"),
        template_id="staff_alert",
        variables={"level": "긴급", "department": "QI", "code": "AB12CD", "reason": "환자안전"},
    )
    assert process(alert, hospital, lambda _: ScriptedProvider(), no_secret).status == "sent"


def test_missing_consent_or_opt_out_suppresses(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    no_ads = Recipient(phone="010-3333-4444", contact_consent=True)
    assert process(
        advert("c:1", no_ads), hospital, lambda _: ScriptedProvider(), no_secret
    ).reason == ("no_marketing_consent")
    records.record_opt_out("demo", "+821012345678", "alimtalk", "inbound 수신거부")
    outcome = process(aftercare(), hospital, lambda _: ScriptedProvider(), no_secret)
    assert (outcome.status, outcome.reason) == ("suppressed", "opted_out: alimtalk")


def test_alimtalk_falls_back_to_sms_only_through_the_provider(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    provider = ScriptedProvider()
    process(aftercare("a"), hospital, lambda _: provider, no_secret)
    assert provider.sent[0].fallback_text == provider.sent[0].text

    records.record_opt_out("demo", "+821012345678", "sms", "inbound STOP")
    process(aftercare("b"), hospital, lambda _: provider, no_secret)
    assert provider.sent[1].fallback_text is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"variables": {"hospital": "소통치과"}}, "missing variables: callback, name"),
        (
            {"variables": {"hospital": "h", "name": "n", "callback": "c", "diagnosis": "x"}},
            "unexpected variables: diagnosis",
        ),
        ({"template_id": "no_such_template"}, "unknown template"),
        ({"channel": "sms"}, "is for alimtalk, not sms"),
    ],
)
def test_template_mismatch_fails_without_sending(
    aws: dict[str, str], hospital: HospitalConfig, changes: dict[str, Any], reason: str
) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    provider = ScriptedProvider()
    outcome = process(aftercare(**changes), hospital, lambda _: provider, no_secret)
    assert outcome.status == "failed"
    assert outcome.reason is not None
    assert outcome.reason.startswith("invalid_template")
    assert reason in outcome.reason
    assert provider.sent == []


def test_an_advert_by_alimtalk_is_refused(aws: dict[str, str], hospital: HospitalConfig) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    request = aftercare(
        purpose="marketing", recipient=PATIENT.model_copy(update={"marketing_consent": True})
    )
    outcome = process(request, hospital, lambda _: ScriptedProvider(), no_secret)
    assert (outcome.status, outcome.reason) == (
        "failed",
        "ad_by_alimtalk: advertising never goes by AlimTalk",
    )


def test_provider_failures_are_retried_then_end_failed(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    busy = SendResult("retryable", reason="http_503")
    provider = ScriptedProvider(*[busy] * 5)
    mid = message_id("demo", "touchpoint-1")
    for attempt in range(1, 5):
        with pytest.raises(RetryLater) as later:
            process(
                aftercare(),
                hospital,
                lambda _: provider,
                no_secret,
                receive_count=attempt,
                max_receives=5,
            )
        assert later.value.delay_s == 30 * 2 ** (attempt - 1)
        assert records.get(mid)["status"] == "retry"  # type: ignore[index]
    with pytest.raises(RetryLater):
        process(
            aftercare(), hospital, lambda _: provider, no_secret, receive_count=5, max_receives=5
        )
    record = records.get(mid)
    assert record is not None
    assert (record["status"], record["reason"]) == ("failed", "retries_exhausted: http_503")
    assert record["attempts"] == 5
    assert len(provider.sent) == 5


def test_a_429_backs_off_for_as_long_as_the_provider_asks(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    provider = ScriptedProvider(SendResult("retryable", reason="http_429", retry_after_s=7))
    with pytest.raises(RetryLater) as later:
        process(aftercare(), hospital, lambda _: provider, no_secret)
    assert later.value.delay_s == 7
    assert (
        process(aftercare(), hospital, lambda _: provider, no_secret, receive_count=2).status
        == "sent"
    )


def test_a_failure_after_the_provider_accepted_is_looked_up_not_resent(
    aws: dict[str, str], hospital: HospitalConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    provider = ScriptedProvider()
    original = records.finish

    def crash(*args: Any, **kwargs: Any) -> bool:
        if args[1] == "sent":
            raise ConnectionError("the table failed after the provider accepted")
        return original(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(records, "finish", crash)
        with pytest.raises(RetryLater):  # handed back, waiting out its own lease
            process(aftercare(), hospital, lambda _: provider, no_secret)
    assert len(provider.sent) == 1
    mid = message_id("demo", "touchpoint-1")
    assert records.get(mid)["status"] == "calling"  # type: ignore[index]

    with pytest.raises(RetryLater):  # redelivered while the first sender's lease still runs
        process(aftercare(), hospital, lambda _: provider, no_secret, receive_count=2)
    clock.fix(at_kst(2026, 11, 23, 10, 5))
    outcome = process(aftercare(), hospital, lambda _: provider, no_secret, receive_count=3)
    assert (outcome.status, outcome.reason) == ("sent", "confirmed by the provider")
    assert len(provider.sent) == 1
    assert provider.lookups == 1
    events = [e["status"] for e in records.get(mid)["events"]]  # type: ignore[index]
    assert events == ["calling", "uncertain", "sent"]


def test_a_sender_that_died_before_the_call_is_resent_once_the_provider_says_no(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    provider = ScriptedProvider()
    mid = message_id("demo", "touchpoint-1")
    # claimed for the call, then the function was killed before the request left
    assert records.claim_calling(
        mid, aftercare(), "demo", None, channel="alimtalk", provider="scripted"
    )
    clock.fix(at_kst(2026, 11, 23, 10, 5))
    outcome = process(aftercare(), hospital, lambda _: provider, no_secret, receive_count=2)
    assert outcome.status == "sent"
    assert (provider.lookups, len(provider.sent)) == (1, 1)


def test_an_uncertain_call_is_left_for_staff_when_the_provider_cannot_tell(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    provider = ScriptedProvider(SendResult("uncertain", reason="provider_timeout"))
    provider.lookup = lambda message, since: Lookup(found=None, reason="list_unavailable")  # type: ignore[method-assign]
    with pytest.raises(RetryLater):
        process(aftercare(), hospital, lambda _: provider, no_secret)
    for attempt in range(2, 6):
        with pytest.raises(RetryLater):
            process(aftercare(), hospital, lambda _: provider, no_secret, receive_count=attempt)
    outcome = process(aftercare(), hospital, lambda _: provider, no_secret, receive_count=6)
    assert outcome.status == "uncertain"
    assert outcome.reason is not None
    assert "left for staff" in outcome.reason
    assert len(provider.sent) == 1  # never resent blindly
    record = records.get(message_id("demo", "touchpoint-1"))
    assert record is not None
    assert record["status"] == "uncertain"


def test_a_sent_message_is_never_sent_again(aws: dict[str, str], hospital: HospitalConfig) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    provider = ScriptedProvider()
    assert process(aftercare(), hospital, lambda _: provider, no_secret).status == "sent"
    again = process(aftercare(), hospital, lambda _: provider, no_secret, receive_count=2)
    assert again.status == "sent"
    assert again.reason == "duplicate request: already handled"
    assert len(provider.sent) == 1


def test_the_send_rate_is_shared_and_held(aws: dict[str, str]) -> None:
    clock.fix(datetime(2026, 11, 23, 1, 0, 1, 250_000, tzinfo=KST))
    cap = ratelimit.capacity(2)  # 10 per 5-second window
    first = ratelimit.reserve("sandbox", 7, 2, horizon_s=0)
    second = ratelimit.reserve("sandbox", 7, 2, horizon_s=0)
    assert (first.count, second.count) == (7, cap - 7)
    assert second.retry_in_s == pytest.approx(3.75)
    later = ratelimit.reserve("sandbox", 7, 2, horizon_s=10)
    assert [s.count for s in later.slots] == [7]
    assert later.slots[0].starts_at == clock.now().timestamp() + 3.75


def test_a_throttled_table_fails_only_that_record(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    enqueue([aftercare("ok"), aftercare("throttled")])
    original = records.claim_calling

    def claim(mid: str, request: MessageRequest, *args: Any, **kwargs: Any) -> Any:
        if request.idempotency_key == "throttled":
            raise ClientError(
                {
                    "Error": {
                        "Code": "ProvisionedThroughputExceededException",
                        "Message": "slow down",
                    }
                },
                "PutItem",
            )
        return original(mid, request, *args, **kwargs)

    monkeypatch.setattr(records, "claim_calling", claim)
    result = run_sender(aws, redeliver_now=True)
    assert len(result["batchItemFailures"]) == 1
    assert len(outbox.recent()) == 1
    monkeypatch.setattr(records, "claim_calling", original)
    run_sender(aws)  # the failed record stayed on the queue and succeeds on redelivery
    assert len(outbox.recent()) == 2


def test_a_malformed_request_fails_its_record_only(aws: dict[str, str]) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    boto3.client("sqs").send_message(
        QueueUrl=aws[NOTIFICATIONS.env], MessageBody='{"template_id": 1}'
    )
    enqueue([aftercare()])
    result = run_sender(aws)
    assert len(result["batchItemFailures"]) == 1
    assert len(outbox.recent()) == 1


def test_dead_letters_are_replayed_and_sent_once(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    from sotong.notify.replay import replay_dead_letters

    clock.fix(at_kst(2026, 11, 23, 10, 0))
    sqs = boto3.client("sqs")
    busy = ScriptedProvider(*[SendResult("retryable", reason="http_503")] * 6)
    for attempt in range(1, 7):
        with pytest.raises(RetryLater):
            process(aftercare(), hospital, lambda _: busy, no_secret, receive_count=attempt)
    # SQS parks the request in the DLQ after the fifth receive; so does a request nobody can read
    sqs.send_message(QueueUrl=aws[NOTIFICATIONS.dlq_env], MessageBody=aftercare().model_dump_json())
    sqs.send_message(QueueUrl=aws[NOTIFICATIONS.dlq_env], MessageBody="not a request")

    report = replay_dead_letters(sqs, aws[NOTIFICATIONS.dlq_env], aws[NOTIFICATIONS.env], "demo")
    assert (report.replayed, report.reopened, len(report.unreadable)) == (1, 1, 1)
    run_sender(aws)
    (sent,) = outbox.recent()
    assert sent["message_id"] == message_id("demo", "touchpoint-1")
    record = records.get(sent["message_id"])
    assert record is not None
    assert record["status"] == "sent"

    sqs.send_message(QueueUrl=aws[NOTIFICATIONS.dlq_env], MessageBody=aftercare().model_dump_json())
    again = replay_dead_letters(sqs, aws[NOTIFICATIONS.dlq_env], aws[NOTIFICATIONS.env], "demo")
    assert again.reopened == 0
    run_sender(aws)
    assert len(outbox.recent()) == 1  # replaying a sent message sends nothing


def test_delivery_reports_move_records_and_stop_a_resend(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    clock.fix(at_kst(2026, 11, 23, 10, 0))
    provider = ScriptedProvider(SendResult("uncertain", reason="provider_timeout"))
    with pytest.raises(RetryLater):
        process(aftercare(), hospital, lambda _: provider, no_secret)
    mid = message_id("demo", "touchpoint-1")
    # the timed-out attempt had reached the provider: its report arrives before the retry
    assert records.apply_report(mid, "delivered", None, "alimtalk")
    outcome = process(aftercare(), hospital, lambda _: provider, no_secret, receive_count=2)
    assert outcome.status == "delivered"
    assert len(provider.sent) == 1
    assert not records.apply_report(mid, "failed", "late report")  # final stays final


def test_ses_events_update_the_record_and_a_complaint_opts_out(
    aws: dict[str, str], hospital: HospitalConfig
) -> None:
    import email_events

    from sotong.notify.providers.ses import TAG_MESSAGE_ID

    clock.fix(at_kst(2026, 11, 23, 10, 0))
    request = MessageRequest(
        idempotency_key="mail-1",
        recipient=Recipient(email="patient@example.com", contact_consent=True),
        template_id="complaint_outcome_email",
        variables={
            "hospital": "소통치과",
            "code": "ABCD-2345",
            "outcome": "환불",
            "callback": "02",
        },
    )
    assert process(request, hospital, lambda _: ScriptedProvider(), no_secret).status == "sent"
    mid = message_id("demo", "mail-1")

    def ses_event(kind: str) -> dict[str, Any]:  # EventBridge's shape for SES events
        return {
            "version": "0",
            "id": "e-1",
            "detail-type": f"Email {kind}",
            "source": "aws.ses",
            "account": "123456789012",
            "time": "2026-11-23T01:00:05Z",
            "region": "ap-northeast-2",
            "resources": [],
            "detail": {
                "eventType": "Complaint" if kind == "Complaint Received" else kind,
                "mail": {
                    "messageId": "ses-1",
                    "destination": ["patient@example.com"],
                    "tags": {TAG_MESSAGE_ID: [mid]},
                },
            },
        }

    context = LambdaContext(function("email_events"))
    assert email_events.handler(ses_event("Delivery"), context) == {"applied": 1}
    assert records.get(mid)["status"] == "delivered"  # type: ignore[index]
    email_events.handler(ses_event("Complaint Received"), context)
    assert records.opted_out_channels("demo", "patient@example.com") == frozenset({"email"})
