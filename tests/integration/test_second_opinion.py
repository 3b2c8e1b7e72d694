"""The second opinion: `complaint_reviewer` reads new complaints and recall replies from moto's
DynamoDB stream (the records Lambda would get), may raise urgency, recomputes the SLA and pages the
on-call contact once; a recall reply it finds critical becomes a complaint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sotong import clock
from sotong.complaints.bedrock import BedrockClassifier
from sotong.complaints.classify import build_classifier
from sotong.complaints.review import second_opinion_for
from sotong.complaints.rule_classifier import RuleClassifier
from sotong.config import load_hospital
from sotong.notify import txoutbox
from sotong.resources import MAIN, function
from sotong_local.lambdas import LambdaContext
from sotong_local.streams import kept, stream_event
from tests.integration.api import ADMIN, call
from tests.integration.test_recall import dispatch, register, treat

KST = ZoneInfo("Asia/Seoul")
REVIEWER = function("complaint_reviewer")
CALM = "접수처 안내가 조금 늦었어요. 다음엔 빨리 해 주세요"


class Bedrock:
    """A Bedrock runtime client that answers with a fixed classification, and counts calls."""

    def __init__(self, urgency: str = "critical", category: str = "safety") -> None:
        self.answer = {"kind": "complaint", "category": category, "urgency": urgency}
        self.calls = 0

    def converse(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        text = json.dumps(self.answer)
        return {"output": {"message": {"content": [{"text": text}]}}}


@pytest.fixture
def env(aws: dict[str, str]) -> Iterator[dict[str, str]]:
    clock.fix(datetime(2026, 11, 23, 10, 0, tzinfo=KST))
    txoutbox._sqs.cache_clear()
    yield aws
    txoutbox._sqs.cache_clear()


class Stream:
    """The table's stream from the start, as the event source mapping reads it."""

    def __init__(self, env: dict[str, str]) -> None:
        import boto3

        table = boto3.client("dynamodb").describe_table(TableName=env[MAIN.env])["Table"]
        self.arn = table["LatestStreamArn"]
        region = boto3.session.Session().region_name
        # moto's in-process mock matches the classic endpoint only
        endpoint = f"https://streams.dynamodb.{region}.amazonaws.com"
        self.streams = boto3.client("dynamodbstreams", endpoint_url=endpoint)
        self.seen = 0

    def new_records(self) -> list[dict[str, Any]]:
        records = []
        description = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]
        for shard in description["Shards"]:
            iterator = self.streams.get_shard_iterator(
                StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            records += self.streams.get_records(ShardIterator=iterator)["Records"]
        fresh, self.seen = records[self.seen :], len(records)
        assert REVIEWER.stream is not None
        return [r for r in fresh if kept(r, REVIEWER.stream)]


def review(stream: Stream, bedrock: Bedrock | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Hand the stream's new records to the function, as Lambda would; (answer, records)."""
    import complaint_reviewer

    hospital = load_hospital()
    opinion: Any = second_opinion_for(hospital)  # the shipped rules and model
    if bedrock is not None:
        rules = RuleClassifier(hospital)
        opinion = BedrockClassifier("test-model", rules, build_classifier(hospital), client=bedrock)
    complaint_reviewer.reviewer.classifier = opinion
    records = stream.new_records()
    answer = complaint_reviewer.handler(stream_event(records, stream.arn), LambdaContext(REVIEWER))
    return answer, records


def alerts() -> list[dict[str, Any]]:
    pending = txoutbox.pending(clock.now() + timedelta(days=1))
    requests = [json.loads(e["request"]) for e in pending]
    return [r for r in requests if r["template_id"] == "staff_critical"]


def paged(env: dict[str, str]) -> list[dict[str, Any]]:
    """What the provider (the sandbox) accepted for the on-call phone, after the relay and the
    sender have run: the real effect of an alert, counted in copies."""
    from sotong.notify import outbox
    from tests.integration.test_notifications import run_sender

    txoutbox.flush()
    run_sender(env)
    on_call = load_hospital().on_call.phone
    return [e for e in outbox.recent(500) if e.get("to") == on_call]


def submit(text: str) -> dict[str, Any]:
    body = {"text": text, "contact": {"phone": "010-2222-3333"}, "consent_to_contact": True}
    answer = call("POST", "/complaints", body)
    assert answer.status == 201, answer.body
    (item,) = call("GET", "/inbox", claims=ADMIN, query={"limit": "100"}).body["items"]
    return call("GET", f"/complaints/{item['id']}", claims=ADMIN).body  # type: ignore[no-any-return]


def test_a_raise_to_critical_recomputes_the_sla_and_pages_once(env: dict[str, str]) -> None:
    stream = Stream(env)
    before = submit(CALM)
    assert before["urgency"] == "normal"
    assert alerts() == []
    bedrock = Bedrock("critical", "safety")
    answer, records = review(stream, bedrock)
    assert answer == {"batchItemFailures": []}
    assert [r["eventName"] for r in records] == ["INSERT"]  # the complaint; its MODIFYs are not
    after = call("GET", f"/complaints/{before['id']}", claims=ADMIN).body
    assert (after["urgency"], after["category"]) == ("critical", "safety")
    assert after["classifier"]["urgency"] == "normal"  # intake's guess stays on record
    assert after["classifier"]["second_opinion"]["urgency"] == "critical"
    created = datetime.fromisoformat(after["created_at"].replace("Z", "+00:00"))
    ack_due = datetime.fromisoformat(after["ack_due"].replace("Z", "+00:00"))
    assert ack_due - created == timedelta(hours=1)  # the critical SLA, from when it came in
    assert after["history"][-1]["note"] == "2차 분류: 긴급"
    (alert,) = alerts()
    assert alert["recipient"]["phone"] == load_hospital().on_call.phone
    # the stream delivers the same record again (a retry): nothing more
    import complaint_reviewer

    assert len(paged(env)) == 1
    complaint_reviewer.handler(stream_event(records, stream.arn), LambdaContext(REVIEWER))
    assert alerts() == []  # nothing new in the outbox
    assert len(paged(env)) == 1  # and the on-call phone got one copy
    assert bedrock.calls == 2


def test_a_complaint_intake_found_critical_is_not_paged_twice(env: dict[str, str]) -> None:
    stream = Stream(env)
    submit("어머니가 화장실에서 넘어지셔서 머리를 부딪혔어요")
    assert len(alerts()) == 1
    review(stream, Bedrock("critical", "safety"))
    assert len(alerts()) == 1
    assert len(paged(env)) == 1


def test_the_second_opinion_never_lowers_and_never_overrules_staff(env: dict[str, str]) -> None:
    stream = Stream(env)
    critical = submit("어머니가 화장실에서 넘어지셔서 머리를 부딪혔어요")
    review(stream, Bedrock("normal", "wait_time"))
    kept_critical = call("GET", f"/complaints/{critical['id']}", claims=ADMIN).body
    assert (kept_critical["urgency"], kept_critical["category"]) == ("critical", "safety")


def test_staff_correction_stands(env: dict[str, str]) -> None:
    stream = Stream(env)
    calm = submit(CALM)
    fixed = call(
        "POST",
        f"/complaints/{calm['id']}/classification",
        {"urgency": "normal"},
        claims=ADMIN,
    )
    assert fixed.status == 200, fixed.body
    review(stream, Bedrock("critical", "safety"))
    assert call("GET", f"/complaints/{calm['id']}", claims=ADMIN).body["urgency"] == "normal"


def test_a_critical_recall_reply_becomes_a_complaint_with_one_alert(env: dict[str, str]) -> None:
    pid = register()
    treat(pid, tag="implant_surgery", day="2026-11-22")
    dispatch(datetime(2026, 11, 23, 11, 0, tzinfo=KST))
    stream = Stream(env)
    stream.new_records()  # what the treatment and the dispatch wrote
    from sotong.recall.service import RecallDesk

    clock.fix(datetime(2026, 11, 23, 12, 0, tzinfo=KST))
    reply = RecallDesk(load_hospital()).inbound(
        "+821012345678", "임플란트 한 곳에서 피가 계속 나요", provider_message_id="M-9"
    )
    assert reply is not None
    assert alerts() == []
    answer, records = review(stream, None)  # the shipped rules and model, no Bedrock
    assert answer == {"batchItemFailures": []}
    assert any(r["dynamodb"]["Keys"]["sk"]["S"].startswith("CONV#") for r in records)
    (item,) = call("GET", "/inbox", claims=ADMIN, query={"limit": "100"}).body["items"]
    complaint = call("GET", f"/complaints/{item['id']}", claims=ADMIN).body
    assert (complaint["urgency"], complaint["category"]) == ("critical", "safety")
    assert complaint["source"]["kind"] == "recall_reply"
    assert complaint["source"]["patient_id"] == pid
    assert complaint["contact"]["phone"] == "+821012345678"
    assert len(alerts()) == 1
    talk = RecallDesk(load_hospital()).conversation(pid)["messages"]
    (patient_says,) = [m for m in talk if m["direction"] == "in"]
    assert patient_says.get("complaint_id") == complaint["id"]
    # the new complaint's own stream record comes next: reviewed, nothing more is sent
    review(stream, None)
    assert len(alerts()) == 1
    assert len(paged(env)) == 1
    assert len(call("GET", "/inbox", claims=ADMIN).body["items"]) == 1


def test_a_calm_recall_reply_stays_in_the_conversation(env: dict[str, str]) -> None:
    pid = register()
    treat(pid, tag="implant_surgery", day="2026-11-22")
    dispatch(datetime(2026, 11, 23, 11, 0, tzinfo=KST))
    stream = Stream(env)
    stream.new_records()
    from sotong.recall.service import RecallDesk

    RecallDesk(load_hospital()).inbound("+821012345678", "네 감사합니다 잘 지내고 있어요")
    review(stream, None)
    assert call("GET", "/inbox", claims=ADMIN).body["items"] == []
    assert alerts() == []
