"""The local SQS event source mapping, against a real (moto) queue: partial batch failures,
retries after the visibility timeout, the DLQ after maxReceiveCount, and the SQS event shape."""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from sotong.resources import Function, Queue, QueueTrigger
from sotong_local import aws
from sotong_local.lambdas import Invocation, Runtime
from sotong_local.queues import QueuePoller, failed_ids

JOBS = Queue(name="jobs", env="TEST_JOBS_QUEUE_URL", visibility_timeout_s=30, max_receive_count=2)
WORKER = Function(
    name="worker",
    handler="worker.handler",
    description="test only",
    trigger=QueueTrigger(queue="jobs", batch_size=10),
)
RECORD_KEYS = {
    "messageId",
    "receiptHandle",
    "body",
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server, url = aws.start_moto()
    yield url
    server.stop()


class Worker:
    """Fails every message whose body starts with `fail`, or the whole batch when told to."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.explode = False

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        if self.explode:
            raise RuntimeError("the whole batch fails")
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]}
                for r in event["Records"]
                if r["body"].startswith("fail")
            ]
        }


@pytest.fixture
def setup(
    endpoint: str, request: pytest.FixtureRequest
) -> tuple[QueuePoller, Worker, Any, dict[str, str]]:
    env = aws.create_resources(
        endpoint, prefix=f"t-{request.node.name[:40]}", tables=(), queues=(JOBS,)
    )
    worker = Worker()
    sqs = aws.client("sqs", endpoint)
    poller = QueuePoller(
        function=WORKER,
        trigger=QueueTrigger(queue="jobs", batch_size=10),
        queue_url=env[JOBS.env],
        runtime=Runtime([WORKER], handlers={"worker": worker}),
        sqs=sqs,
        visibility_timeout_s=0,  # failed messages are visible again at once
        max_receive_count=JOBS.max_receive_count,
    )
    return poller, worker, sqs, env


def depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_queue_and_dlq_are_made_from_the_definition(setup: Any) -> None:
    _, _, sqs, env = setup
    attributes = sqs.get_queue_attributes(QueueUrl=env[JOBS.env], AttributeNames=["All"])[
        "Attributes"
    ]
    policy = json.loads(attributes["RedrivePolicy"])
    assert int(policy["maxReceiveCount"]) == 2
    assert policy["deadLetterTargetArn"].endswith("-jobs-dlq")
    assert attributes["VisibilityTimeout"] == "30"
    assert env[JOBS.dlq_env].endswith("-jobs-dlq")


def test_partial_failures_stay_and_go_to_the_dlq_after_max_receives(setup: Any) -> None:
    poller, worker, sqs, env = setup
    url, dlq = env[JOBS.env], env[JOBS.dlq_env]
    for body in ("ok-1", "fail-2", "ok-3"):
        sqs.send_message(
            QueueUrl=url,
            MessageBody=body,
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
        )
    assert poller.poll_once() == 3
    assert depth(sqs, url) == 1  # only the failure is left
    record = worker.events[0]["Records"][0]
    assert set(record) >= RECORD_KEYS
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == poller.queue_arn
    assert record["awsRegion"] == "ap-northeast-2"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(
        record["attributes"]
    )
    assert record["messageAttributes"]["kind"]["stringValue"] == "test"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"

    assert poller.poll_once() == 1  # second receive of the failure (maxReceiveCount is 2)
    assert worker.events[1]["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert poller.poll_once() == 0  # a third receive would exceed it: SQS moves it to the DLQ
    assert depth(sqs, url) == 0
    moved = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0)["Messages"]
    assert [m["Body"] for m in moved] == ["fail-2"]
    assert (poller.stats.received, poller.stats.deleted, poller.stats.failed) == (4, 2, 2)


def test_an_exception_fails_the_whole_batch(setup: Any) -> None:
    poller, worker, sqs, env = setup
    url = env[JOBS.env]
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    worker.explode = True
    assert poller.poll_once() == 2
    assert depth(sqs, url) == 2
    worker.explode = False
    assert poller.poll_once() == 2
    assert depth(sqs, url) == 0


def test_the_poller_thread_consumes_and_stops(setup: Any) -> None:
    import time

    poller, worker, sqs, env = setup
    sqs.send_message(QueueUrl=env[JOBS.env], MessageBody="ok")
    poller.start()
    deadline = time.monotonic() + 5
    while not worker.events and time.monotonic() < deadline:
        time.sleep(0.05)
    poller.stop()
    started = time.monotonic()
    poller.join(timeout=3)
    assert time.monotonic() - started < 2.5
    assert worker.events


@pytest.mark.parametrize(
    ("answer", "error", "failed"),
    [
        (None, None, set()),
        ({}, None, set()),
        ({"batchItemFailures": []}, None, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, None, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, None, {"a", "b"}),
        ({"batchItemFailures": [{"id": "a"}]}, None, {"a", "b"}),
        ("not a dict", None, {"a", "b"}),
        (None, "RuntimeError: x", {"a", "b"}),
    ],
)
def test_which_messages_lambda_keeps(answer: Any, error: str | None, failed: set[str]) -> None:
    invocation = Invocation("worker", "req", value=answer, error=error)
    assert failed_ids(invocation, ["a", "b"]) == failed


def test_what_a_shifted_run_sent_is_handled_with_its_shift(setup: Any) -> None:
    """`sotong schedule X --shift-hours N`: the messages that run queued carry its clock."""
    import os

    from sotong.clock import OFFSET_ENV

    poller, _, sqs, env = setup
    url = env[JOBS.env]
    clocks: dict[str, str | None] = {}

    def worker(event: dict[str, Any], context: Any) -> None:
        for record in event["Records"]:
            clocks[record["body"]] = os.environ.get(OFFSET_ENV)

    def producer(event: dict[str, Any], context: Any) -> None:
        sqs.send_message(QueueUrl=url, MessageBody=event["body"])

    producer_function = Function(name="producer", handler="p.handler", description="test only")
    runtime = Runtime(
        [WORKER, producer_function], handlers={"worker": worker, "producer": producer}
    )
    poller.runtime = runtime
    assert runtime.invoke("producer", {"body": "shifted"}, clock_offset_seconds=3600).ok
    assert runtime.invoke("producer", {"body": "real"}).ok
    while poller.poll_once():
        pass
    assert clocks == {"shifted": "3600.0", "real": None}
    assert OFFSET_ENV not in os.environ


def test_a_message_read_before_its_shifted_run_returns_keeps_the_shift(setup: Any) -> None:
    """The consumer may receive what a shifted run sent while that run still goes on (a slow
    machine: the relay is still marking its outbox item): the message is its run's all the same."""
    import os
    import threading
    import time

    from sotong.clock import OFFSET_ENV

    poller, _, sqs, env = setup
    url = env[JOBS.env]
    clocks: dict[str, str | None] = {}
    consumer = threading.Thread(target=poller.poll_once)

    def worker(event: dict[str, Any], context: Any) -> None:
        for record in event["Records"]:
            clocks[record["body"]] = os.environ.get(OFFSET_ENV)

    def producer(event: dict[str, Any], context: Any) -> None:
        sqs.send_message(QueueUrl=url, MessageBody="early")
        consumer.start()  # receives it now; its invocation waits for this run to end
        time.sleep(0.5)

    producer_function = Function(name="producer", handler="p.handler", description="test only")
    poller.runtime = Runtime(
        [WORKER, producer_function], handlers={"worker": worker, "producer": producer}
    )
    assert poller.runtime.invoke("producer", {}, clock_offset_seconds=3600).ok
    consumer.join(timeout=10)
    assert clocks == {"early": "3600.0"}
